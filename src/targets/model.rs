//! MLflow registered-model aliases (`champion`) as a rollback target, through the
//! MLflow REST API. The alias points at one model version; a rollback moves it back
//! to the newest earlier version not rolled back from.
//!
//! Where every process reads it back: backout's record as the registered model's tag
//! [`RECORD_TAG`], and each version rolled back from tagged [`KNOWN_BAD_TAG`] with the
//! time. MLflow's alias has no revision to write against, so the alias is read again
//! just before the write, and a version moved since is a conflict.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use crate::actions::rollback::Request;
use crate::config::model::ModelConfig;
use crate::engine::lineage::RollbackRecord;
use crate::engine::rollbacks::RollbackError;
use crate::targets::alias::{self, Alias, Plan, Version};
use crate::targets::words::Words;
use crate::targets::TargetKind;

/// How a model alias's move is told.
pub const WORDS: Words = Words {
    holds: "a version holds the model (its weights and signature)",
    beside: "the serving code and its feature pipeline, other aliases, and the predictions the new version already served or stored",
    ..super::lambda::WORDS
};

/// The registered model's tag that holds backout's record of its last rollback.
pub const RECORD_TAG: &str = "backout.rollback";
/// The model version's tag that marks it rolled back from, with when.
pub const KNOWN_BAD_TAG: &str = "backout.rolled_back_from";

#[derive(Deserialize)]
struct Tag {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct AliasEntry {
    alias: String,
    version: String,
}

#[derive(Deserialize)]
struct Registered {
    #[serde(default)]
    aliases: Vec<AliasEntry>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
struct RegisteredAnswer {
    registered_model: Registered,
}

#[derive(Deserialize)]
struct ModelVersion {
    version: String,
    #[serde(default)]
    creation_timestamp: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
struct VersionsAnswer {
    #[serde(default)]
    model_versions: Vec<ModelVersion>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

/// The HTTP client for the entry: an unanswered call ends; its CA is trusted.
pub fn http(cfg: &ModelConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5));
    if let Some(ca) = &cfg.ca_file {
        let named = |e: String| format!("[[model]] {:?}: ca_file {}: {e}", cfg.name, ca.display());
        let pem = std::fs::read(ca).map_err(|e| named(e.to_string()))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| named(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|e| format!("[[model]] {:?}: {e}", cfg.name))
}

fn authorized(
    cfg: &ModelConfig,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::RequestBuilder, RollbackError> {
    match &cfg.token_env {
        None => Ok(req),
        Some(var) => std::env::var(var).map(|t| req.bearer_auth(t)).map_err(|_| {
            RollbackError::Api(format!(
                "[[model]] {:?}: token_env {var} is not set",
                cfg.name
            ))
        }),
    }
}

/// Sends one call and sorts MLflow's answer the way a rollback must treat it.
async fn call<T: serde::de::DeserializeOwned>(
    cfg: &ModelConfig,
    req: reqwest::RequestBuilder,
    what: &str,
) -> Result<T, RollbackError> {
    let named = |m: String| format!("MLflow {what} for {}@{}: {m}", cfg.name, cfg.alias);
    let answer = authorized(cfg, req)?
        .send()
        .await
        .map_err(|e| RollbackError::Api(named(format!("cannot reach {}: {e}", cfg.base_url()))))?;
    let status = answer.status();
    let body = answer.bytes().await.unwrap_or_default();
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|e| RollbackError::Api(named(format!("an unreadable answer: {e}"))));
    }
    let e: ErrorAnswer = serde_json::from_slice(&body).unwrap_or(ErrorAnswer {
        error_code: status.to_string(),
        message: String::from_utf8_lossy(&body).chars().take(200).collect(),
    });
    Err(match (status.as_u16(), e.error_code.as_str()) {
        (401 | 403, _) | (_, "PERMISSION_DENIED" | "UNAUTHENTICATED") => {
            RollbackError::Forbidden(named(format!(
                "refused ({}); set token_env to a variable holding a token that may edit the model",
                e.message
            )))
        }
        (404, _) | (_, "RESOURCE_DOES_NOT_EXIST") => RollbackError::NotFound(named(format!(
            "not found ({}); check name and alias in [[model]]",
            e.message
        ))),
        _ => RollbackError::Api(named(format!("{} {}", e.error_code, e.message))),
    })
}

fn api(cfg: &ModelConfig, path: &str) -> String {
    format!("{}/api/2.0/mlflow/{path}", cfg.base_url())
}

/// One read of the alias: the registered model (its aliases and tags) and every
/// version (with its tags).
pub async fn read(http: &reqwest::Client, cfg: &ModelConfig) -> Result<Alias, RollbackError> {
    let model: RegisteredAnswer = call(
        cfg,
        http.get(api(cfg, "registered-models/get"))
            .query(&[("name", &cfg.name)]),
        "registered-models/get",
    )
    .await?;
    let model = model.registered_model;
    let version = model
        .aliases
        .iter()
        .find(|a| a.alias == cfg.alias)
        .map(|a| a.version.clone())
        .ok_or_else(|| {
            RollbackError::NotFound(format!(
                "MLflow model {:?} has no alias {:?}; check alias in [[model]]",
                cfg.name, cfg.alias
            ))
        })?;
    let mut versions = Vec::new();
    let mut known_bad = BTreeMap::new();
    let mut page: Option<String> = None;
    loop {
        let filter = format!("name='{}'", cfg.name.replace('\'', "\\'"));
        let mut query = vec![("filter", filter), ("max_results", "200".into())];
        if let Some(token) = &page {
            query.push(("page_token", token.clone()));
        }
        let answer: VersionsAnswer = call(
            cfg,
            http.get(api(cfg, "model-versions/search")).query(&query),
            "model-versions/search",
        )
        .await?;
        for v in answer.model_versions {
            let Ok(number) = v.version.parse::<u64>() else {
                continue;
            };
            if let Some(t) = v.tags.iter().find(|t| t.key == KNOWN_BAD_TAG) {
                let at = t.value.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                known_bad.insert(v.version.clone(), at);
            }
            versions.push(Version {
                number,
                id: number.to_string(),
                identity: v.source.unwrap_or_else(|| format!("version {number}")),
                description: v.description.unwrap_or_default(),
                created: v
                    .creation_timestamp
                    .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()),
            });
        }
        page = answer.next_page_token.filter(|t| !t.is_empty());
        if page.is_none() {
            break;
        }
    }
    versions.sort_by_key(|v| v.number);
    Ok(Alias {
        kind: TargetKind::ModelAlias,
        handle: format!("{}@{}", cfg.name, cfg.alias),
        resource: cfg.name.clone(),
        version,
        weights: BTreeMap::new(),
        instances: None,
        health: None,
        record_text: model
            .tags
            .iter()
            .find(|t| t.key == RECORD_TAG)
            .map(|t| t.value.clone())
            .unwrap_or_default(),
        revision_id: String::new(),
        versions,
        known_bad,
    })
}

/// Reads the alias afresh and plans the move back.
pub async fn plan(
    http: &reqwest::Client,
    cfg: &ModelConfig,
    req: &Request,
) -> Result<Plan, RollbackError> {
    alias::plan_from(read(http, cfg).await?, req)
}

/// Marks the version rolled back from, records the rollback on the model, reads the
/// alias once more (a move since is a conflict), then moves it.
pub async fn apply(
    http: &reqwest::Client,
    cfg: &ModelConfig,
    plan: &Plan,
    record: &RollbackRecord,
) -> Result<(), RollbackError> {
    let at = record.at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let _: serde_json::Value = call(
        cfg,
        http.post(api(cfg, "model-versions/set-tag")).json(&json!({
            "name": cfg.name, "version": plan.from, "key": KNOWN_BAD_TAG, "value": at})),
        "model-versions/set-tag",
    )
    .await?;
    let text = serde_json::to_string(record).unwrap_or_default();
    let _: serde_json::Value = call(
        cfg,
        http.post(api(cfg, "registered-models/set-tag"))
            .json(&json!({
            "name": cfg.name, "key": RECORD_TAG, "value": text})),
        "registered-models/set-tag",
    )
    .await?;
    let now = read(http, cfg).await?;
    if now.version != plan.alias.version {
        return Err(RollbackError::Conflict(format!(
            "model alias {}@{} (it moved to version {})",
            cfg.name, cfg.alias, now.version
        )));
    }
    let _: serde_json::Value = call(
        cfg,
        http.post(api(cfg, "registered-models/alias")).json(&json!({
            "name": cfg.name, "alias": cfg.alias, "version": plan.to})),
        "registered-models/alias",
    )
    .await?;
    Ok(())
}
