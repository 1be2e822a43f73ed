//! The Docker Engine API, as much of it as a Compose service's read and revert need:
//! one client per `[[compose]]` entry (a Unix socket, or TCP with TLS), the read of a
//! service (its containers, its repository's images, the marks), and the calls a
//! container's swap makes. Every error names the service and the engine and says
//! what to do.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{known_bad_of, known_bad_repository, repository_of, ASIDE_SUFFIX, RECORD_LABEL};
use super::{PROJECT_LABEL, SERVICE_LABEL};
use crate::config::compose::{ComposeConfig, EngineAddress};
use crate::targets::alias::{Alias, Version};
use crate::targets::{TargetError, TargetKind};

/// The API version asked for: Docker 20.10 and podman 4 serve it.
const API: &str = "v1.41";

/// A client for one entry's engine.
#[derive(Clone)]
pub struct Engine {
    http: reqwest::Client,
    base: String,
    /// The entry, as errors name it: `compose service shop/web at unix:///…`.
    what: String,
}

pub fn client(cfg: &ComposeConfig) -> Result<Engine, String> {
    let named = |e: String| format!("[[compose]] {}: {e}", cfg.handle());
    // A stop waits out the container's own timeout: the client must outwait it.
    let timeout = std::time::Duration::from_secs(u64::from(cfg.stop_timeout) + 20);
    let mut builder = reqwest::Client::builder().timeout(timeout);
    let (base, shown) = match cfg.address().map_err(|e| e.to_string())? {
        EngineAddress::Socket(path) => {
            let shown = format!("unix://{}", path.display());
            builder = builder.unix_socket(path);
            (format!("http://docker/{API}"), shown)
        }
        EngineAddress::Url(url) => (format!("{url}/{API}"), url),
    };
    if let Some(ca) = &cfg.ca_file {
        let pem = std::fs::read(ca).map_err(|e| named(format!("ca_file {}: {e}", ca.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| named(format!("ca_file {}: {e}", ca.display())))?;
        builder = builder.add_root_certificate(cert);
    }
    let http = builder.build().map_err(|e| named(e.to_string()))?;
    Ok(Engine {
        http,
        base,
        what: format!("compose service {} at {shown}", cfg.handle()),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedContainer {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    image: String,
    #[serde(rename = "ImageID", default)]
    image_id: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    created: i64,
}

impl ListedContainer {
    fn name(&self) -> &str {
        self.names.first().map_or("", |n| n.trim_start_matches('/'))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedImage {
    id: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    created: i64,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// One of the service's containers, as a read found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image_id: String,
    /// Running, and healthy where it has a health check.
    pub ready: bool,
    /// Its process runs, healthy or not.
    pub running: bool,
}

impl Engine {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder, call: &str) -> Result<Value, TargetError> {
        let what = format!("{}: {call}", self.what);
        let resp = req.send().await.map_err(|e| {
            TargetError::Other(format!(
                "{what}: cannot reach the Docker engine ({e}); is it running, and is `engine` in [[compose]] right?"
            ))
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = match text.trim() {
            "" => Value::Null,
            t => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())),
        };
        let message = || {
            body.get("message")
                .and_then(Value::as_str)
                .map_or_else(|| text.trim().to_string(), str::to_string)
        };
        match status.as_u16() {
            200..=299 | 304 => Ok(body),
            404 => Err(TargetError::NotFound(format!("{what}: not found ({})", message()))),
            401 | 403 => Err(TargetError::Forbidden(format!(
                "{what}: refused ({}); the engine's socket or TLS client needs access to containers and images",
                message()
            ))),
            409 => Err(TargetError::Conflict(format!("{what}: {}", message()))),
            code => Err(TargetError::Other(format!("{what}: HTTP {code}: {}", message()))),
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, TargetError> {
        let value = self
            .send(self.http.get(self.url(path)).query(query), path)
            .await?;
        serde_json::from_value(value).map_err(|e| {
            TargetError::Other(format!(
                "{}: {path}: an answer backout cannot read ({e}); is `engine` a Docker engine?",
                self.what
            ))
        })
    }

    /// A POST with an optional JSON body; the answer's JSON.
    pub async fn post(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, TargetError> {
        let mut req = self.http.post(self.url(path)).query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req, path).await
    }

    pub async fn delete(&self, path: &str, query: &[(&str, String)]) -> Result<(), TargetError> {
        self.send(self.http.delete(self.url(path)).query(query), path)
            .await
            .map(|_| ())
    }

    /// A container's or an image's whole inspection.
    pub async fn inspect(&self, path: &str) -> Result<Value, TargetError> {
        self.get(path, &[]).await
    }

    async fn containers(&self, cfg: &ComposeConfig) -> Result<Vec<ListedContainer>, TargetError> {
        let filters = json!({"label": [
            format!("{PROJECT_LABEL}={}", cfg.project),
            format!("{SERVICE_LABEL}={}", cfg.service),
        ]});
        self.get(
            "/containers/json",
            &[("all", "true".into()), ("filters", filters.to_string())],
        )
        .await
    }

    async fn images(&self, reference: &str) -> Result<Vec<ListedImage>, TargetError> {
        let filters = json!({"reference": [reference]});
        self.get("/images/json", &[("filters", filters.to_string())])
            .await
    }
}

/// One of the service's containers, as a read sees it.
fn container(c: &ListedContainer) -> Container {
    Container {
        id: c.id.clone(),
        name: c.name().to_string(),
        image_id: c.image_id.clone(),
        // Until its inspection says more (`health::ready`).
        ready: c.state == "running",
        running: c.state == "running",
    }
}

/// The service's containers split in two: those that run it now (every one not set
/// aside, and one set aside whose replacement never came, a swap cut short), and
/// those set aside whose replacement exists (left by a swap cut short after it).
fn split(listed: Vec<ListedContainer>) -> (Vec<ListedContainer>, Vec<Container>) {
    let names: Vec<String> = listed.iter().map(|c| c.name().to_string()).collect();
    let (current, leftovers): (Vec<_>, Vec<_>) =
        listed
            .into_iter()
            .partition(|c| match c.name().strip_suffix(ASIDE_SUFFIX) {
                Some(own) => !names.iter().any(|n| n == own),
                None => true,
            });
    (current, leftovers.iter().map(container).collect())
}

/// What one read of a service found.
#[derive(Debug, Clone)]
pub struct ServiceRead {
    pub alias: Alias,
    /// Its containers, by name.
    pub containers: Vec<Container>,
    /// Containers set aside by a swap that was cut short after their replacement
    /// was made: removed by the next rollback.
    pub leftovers: Vec<Container>,
}

/// One read of the service: its containers, the images of its repository and the
/// marks, as the alias every versioned kind shares.
pub async fn read(engine: &Engine, cfg: &ComposeConfig) -> Result<ServiceRead, TargetError> {
    let (mut running, leftovers) = split(engine.containers(cfg).await?);
    if running.is_empty() {
        return Err(TargetError::NotFound(format!(
            "{}: no container has the labels {PROJECT_LABEL}={} and {SERVICE_LABEL}={}; check `project` and `service` in [[compose]]",
            engine.what, cfg.project, cfg.service
        )));
    }
    running.sort_by(|a, b| a.name().cmp(b.name()));
    // The newest container says what the service runs: a scale-out or a recreate in
    // progress moves it first.
    let newest = running.iter().max_by_key(|c| c.created).expect("not empty");
    let version = newest.image_id.clone();
    let record_text = newest.labels.get(RECORD_LABEL).cloned().unwrap_or_default();
    let reference = match newest.image.starts_with("sha256:") {
        true => String::new(),
        false => newest.image.clone(),
    };
    let repository = repository_of(&reference).to_string();
    let mut listed = match repository.is_empty() {
        true => Vec::new(),
        false => engine.images(&repository).await?,
    };
    if !listed.iter().any(|i| i.id == version) {
        // Its tag moved to another image: the image still runs, known by its id.
        listed.push(ListedImage {
            id: version.clone(),
            repo_tags: None,
            created: i64::MAX,
            labels: None,
        });
    }
    listed.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    // The newest image any of its containers runs, or ran before a swap that was
    // cut short: what a rollback goes back from (a half-done deploy or revert is
    // still on its way to that image).
    let in_use = |i: &&ListedImage| {
        running.iter().any(|c| c.image_id == i.id) || leftovers.iter().any(|c| c.image_id == i.id)
    };
    let version = listed
        .iter()
        .rfind(in_use)
        .map_or(version, |i| i.id.clone());
    let versions = listed
        .iter()
        .enumerate()
        .map(|(i, image)| Version {
            number: i as u64 + 1,
            id: image.id.clone(),
            identity: tag_in(image, &repository, &reference)
                .unwrap_or_else(|| super::short_id(&image.id)),
            description: image
                .labels
                .as_ref()
                .and_then(|l| l.get("org.opencontainers.image.description"))
                .cloned()
                .unwrap_or_default(),
            created: (image.created != i64::MAX)
                .then(|| jiff::Timestamp::from_second(image.created).ok())
                .flatten(),
        })
        .collect();
    let marks_repository = known_bad_repository(&cfg.project, &cfg.service);
    let marked: Vec<(String, Vec<String>)> = engine
        .images(&marks_repository)
        .await?
        .into_iter()
        .map(|i| (i.id, i.repo_tags.unwrap_or_default()))
        .collect();
    let mut containers: Vec<Container> = running.iter().map(container).collect();
    let mut inspections = Vec::with_capacity(containers.len());
    for c in containers.iter_mut() {
        let inspected = engine
            .inspect(&format!("/containers/{}/json", c.id))
            .await?;
        c.ready = super::health::ready(&inspected);
        inspections.push(inspected);
    }
    let ready = containers.iter().filter(|c| c.ready).count() as i32;
    let alias = Alias {
        kind: TargetKind::ComposeService,
        handle: cfg.handle(),
        resource: repository,
        version,
        weights: BTreeMap::new(),
        instances: Some((containers.len() as i32, ready)),
        health: Some(super::health::of(&inspections, jiff::Timestamp::now())),
        record_text,
        revision_id: containers
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(","),
        versions,
        known_bad: known_bad_of(&marks_repository, &marked),
    };
    Ok(ServiceRead {
        alias,
        containers,
        leftovers,
    })
}

/// The image's tag in `repository`: the one the service was deployed by if it has
/// it, else its first.
fn tag_in(image: &ListedImage, repository: &str, deployed_by: &str) -> Option<String> {
    let tags = image.repo_tags.as_ref()?;
    let in_repository = |t: &&String| repository_of(t).ends_with(repository);
    tags.iter()
        .find(|t| *t == deployed_by)
        .or_else(|| tags.iter().find(in_repository))
        .cloned()
}
