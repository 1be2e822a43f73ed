//! Feature-flag kill switches, in Unleash through its admin API. A flag a deploy
//! turned on is the fastest rollback there is: turning it off is instant and leaves
//! the template where it is. backout reads each `[[flag]]` (its state in the
//! environment, and who last turned it on or off, from Unleash's events), and its
//! only write is `POST …/environments/ENV/off`. It never turns a flag on.

use jiff::Timestamp;
use serde::Deserialize;

use crate::config::flags::FlagConfig;
use crate::engine::model::flags::FlagState;
use crate::engine::rollbacks::{FlagKill, Preview, RollbackError};
use crate::engine::ServiceKey;

#[derive(Deserialize)]
struct Feature {
    #[serde(default)]
    environments: Vec<Environment>,
}

#[derive(Deserialize)]
struct Environment {
    name: String,
    enabled: bool,
}

#[derive(Deserialize)]
struct Events {
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    created_at: Timestamp,
    #[serde(default)]
    created_by: Option<String>,
}

/// The HTTP client every read and write of `cfg`'s flag uses: an unanswered call
/// ends, and the entry's CA is trusted beside the system's.
pub fn http(cfg: &FlagConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5));
    if let Some(ca) = &cfg.ca_file {
        let named = |e: String| format!("[[flag]] {:?}: ca_file {}: {e}", cfg.name, ca.display());
        let pem = std::fs::read(ca).map_err(|e| named(e.to_string()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| named(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|e| format!("[[flag]] {:?}: {e}", cfg.name))
}

fn get(
    http: &reqwest::Client,
    cfg: &FlagConfig,
    url: &str,
) -> Result<reqwest::RequestBuilder, String> {
    let mut req = http.get(url);
    if let Some(token) = cfg.token()? {
        req = req.header(reqwest::header::AUTHORIZATION, token);
    }
    Ok(req)
}

async fn fetch<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    cfg: &FlagConfig,
    url: &str,
) -> Result<T, String> {
    let answer = get(http, cfg, url)?
        .send()
        .await
        .map_err(|e| format!("cannot reach Unleash at {}: {e}", cfg.base_url()))?;
    let status = answer.status();
    match status.as_u16() {
        200..=299 => answer
            .json()
            .await
            .map_err(|e| format!("Unleash answered {url} with something unreadable: {e}")),
        401 | 403 => Err(format!(
            "Unleash refused ({status}): set token_env to a variable holding an admin API token"
        )),
        404 => Err(format!(
            "no flag {:?} in project {:?} (check name and project)",
            cfg.name, cfg.project
        )),
        _ => Err(format!("Unleash answered {status} for {url}")),
    }
}

/// The flag as Unleash has it now; what cannot be read is said, never guessed.
pub async fn read(http: &reqwest::Client, cfg: &FlagConfig, service: ServiceKey) -> FlagState {
    let base = cfg.base_url();
    let feature_url = format!(
        "{base}/api/admin/projects/{}/features/{}",
        cfg.project, cfg.name
    );
    let events_url = format!(
        "{base}/api/admin/search/events?feature=IS:{}&environment=IS:{}&limit=50",
        cfg.name, cfg.environment
    );
    let mut state = FlagState {
        name: cfg.name.clone(),
        service,
        on: None,
        changed_at: None,
        changed_by: None,
        error: None,
    };
    let read = async {
        let feature: Feature = fetch(http, cfg, &feature_url).await?;
        let env = feature
            .environments
            .iter()
            .find(|e| e.name == cfg.environment)
            .ok_or_else(|| {
                format!(
                    "flag {:?} has no environment {:?}",
                    cfg.name, cfg.environment
                )
            })?;
        let events: Events = fetch(http, cfg, &events_url).await?;
        let toggled = events
            .events
            .into_iter()
            .filter(|e| {
                e.kind == "feature-environment-enabled" || e.kind == "feature-environment-disabled"
            })
            .max_by_key(|e| e.created_at);
        Ok::<_, String>((env.enabled, toggled))
    };
    match read.await {
        Ok((on, toggled)) => {
            state.on = Some(on);
            state.changed_at = toggled.as_ref().map(|e| e.created_at);
            state.changed_by = toggled.and_then(|e| e.created_by);
        }
        Err(e) => state.error = Some(format!("[[flag]] {:?}: {e}", cfg.name)),
    }
    state
}

/// A fresh read with a client of its own; a client that cannot be made is an
/// unread flag, said so.
pub async fn read_afresh(cfg: &FlagConfig, service: ServiceKey) -> FlagState {
    match http(cfg) {
        Ok(client) => read(&client, cfg, service).await,
        Err(e) => FlagState {
            name: cfg.name.clone(),
            service,
            on: None,
            changed_at: None,
            changed_by: None,
            error: Some(e),
        },
    }
}

/// The kill switch planned from a fresh read: the flag must still be on.
pub fn preview(
    cfg: &FlagConfig,
    read: &FlagState,
    revision: u64,
) -> Result<Preview, RollbackError> {
    if let Some(e) = &read.error {
        return Err(RollbackError::Api(e.clone()));
    }
    let off = format!("flag {} off", cfg.name);
    Ok(Preview {
        from_revision: revision,
        from_images: vec![format!("flag {} on", cfg.name)],
        to_revision: revision,
        to_images: vec![off],
        already_there: read.on == Some(false),
        kubectl: format!(
            "curl -X POST -H \"Authorization: ${}\" {}",
            cfg.token_env.as_deref().unwrap_or("UNLEASH_TOKEN"),
            cfg.toggle_url(false)
        ),
        resource_version: String::new(),
        to_replicaset: format!("flag:{}", cfg.name),
        from_replicaset: format!("flag:{}", cfg.name),
        switch: None,
        // A kill switch makes no revision.
        abort: true,
        revert: None,
        flag: Some(Box::new(FlagKill {
            name: cfg.name.clone(),
            project: cfg.project.clone(),
            environment: cfg.environment.clone(),
            url: crate::redact::url(cfg.base_url()),
            turned_on_at: read.changed_at.filter(|_| read.on == Some(true)),
            turned_on_by: read.changed_by.clone().filter(|_| read.on == Some(true)),
        })),
    })
}

/// Turns the flag off. Unleash answers 200 when it already was: idempotent.
pub async fn kill(http: &reqwest::Client, cfg: &FlagConfig) -> Result<(), RollbackError> {
    let mut req = http.post(cfg.toggle_url(false));
    if let Some(token) = cfg.token().map_err(RollbackError::Api)? {
        req = req.header(reqwest::header::AUTHORIZATION, token);
    }
    let answer = req.send().await.map_err(|e| {
        RollbackError::Api(format!("cannot reach Unleash at {}: {e}", cfg.base_url()))
    })?;
    match answer.status().as_u16() {
        200..=299 => Ok(()),
        401 | 403 => Err(RollbackError::Forbidden(format!(
            "Unleash refused to turn off flag {:?}: the token needs update-feature-environment",
            cfg.name
        ))),
        404 => Err(RollbackError::NotFound(format!(
            "flag {:?} in project {:?}",
            cfg.name, cfg.project
        ))),
        s => Err(RollbackError::Api(format!(
            "Unleash answered {s} to turning off flag {:?}",
            cfg.name
        ))),
    }
}
