//! Whether a rollback target's image still exists in its registry: seed 001's
//! registry that garbage-collected the previous build, found before the rollback
//! rather than as ImagePullBackOff after it.

use serde::Serialize;

/// What the registry said of one image reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum ImagePresence {
    /// A HEAD on its manifest is under way.
    Asked,
    Present,
    /// The registry answered that the manifest is not there.
    Missing(String),
    /// It could not be told (unreachable, refused): never taken as missing.
    Unknown(String),
}

/// An image reference split as the distribution API addresses it: registry host,
/// repository, and tag or digest. `None` for an image with no registry host (Docker
/// Hub's short names), which backout does not check.
pub fn parse(image: &str) -> Option<(&str, &str, &str)> {
    let (host, rest) = image.split_once('/')?;
    if !(host.contains('.') || host.contains(':') || host == "localhost") {
        return None;
    }
    let (repo, reference) = match rest.split_once('@') {
        Some((repo, digest)) => (repo, digest),
        None => match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (rest, "latest"),
        },
    };
    Some((host, repo, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_as_the_distribution_api_addresses_them() {
        assert_eq!(
            parse("registry.local/shop/checkout:1.4.0"),
            Some(("registry.local", "shop/checkout", "1.4.0"))
        );
        assert_eq!(
            parse("127.0.0.1:5000/web@sha256:abc"),
            Some(("127.0.0.1:5000", "web", "sha256:abc"))
        );
        assert_eq!(
            parse("localhost:5000/team/web"),
            Some(("localhost:5000", "team/web", "latest"))
        );
        assert_eq!(parse("nginx:1.27"), None, "a Docker Hub short name");
        assert_eq!(parse("library/nginx:1.27"), None);
    }
}
