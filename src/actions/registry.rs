//! Asking a registry whether an image still exists: a HEAD on its manifest, as the
//! OCI distribution API defines it, for the hosts listed in `[[registry]]`. A 404 is
//! missing; anything else that is not a 200 (refused, unreachable, slow) is unknown,
//! never missing.

use std::time::Duration;

use crate::config::registry::RegistryConfig;
use crate::engine::model::images::{parse, ImagePresence};

/// The manifest types a registry may hold for a tag: OCI and Docker, single and index.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

pub async fn check(
    registries: &[RegistryConfig],
    images: Vec<String>,
) -> Vec<(String, ImagePresence)> {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            let why = format!("no HTTP client: {e}");
            return images
                .into_iter()
                .map(|i| (i, ImagePresence::Unknown(why.clone())))
                .collect();
        }
    };
    let mut out = Vec::new();
    for image in images {
        let presence = presence(&http, registries, &image).await;
        out.push((image, presence));
    }
    out
}

async fn presence(
    http: &reqwest::Client,
    registries: &[RegistryConfig],
    image: &str,
) -> ImagePresence {
    let Some((host, repo, reference)) = parse(image) else {
        return ImagePresence::Unknown("no registry host in the image name".into());
    };
    let Some(registry) = registries.iter().find(|r| r.host == host) else {
        return ImagePresence::Unknown(format!("{host} is not in [[registry]]"));
    };
    let url = format!("{}/v2/{repo}/manifests/{reference}", registry.base_url());
    let mut head = http.head(&url).header(reqwest::header::ACCEPT, ACCEPT);
    if let Some(token) = registry
        .token_env
        .as_ref()
        .and_then(|v| std::env::var(v).ok())
    {
        head = head.bearer_auth(token);
    }
    match head.send().await {
        Ok(r) if r.status().is_success() => ImagePresence::Present,
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
            ImagePresence::Missing(format!("{host} answered 404 for its manifest"))
        }
        Ok(r) => ImagePresence::Unknown(format!("{host} answered {}", r.status())),
        Err(e) if e.is_timeout() => ImagePresence::Unknown(format!("{host} did not answer in 5s")),
        Err(_) => ImagePresence::Unknown(format!("{host} could not be reached")),
    }
}
