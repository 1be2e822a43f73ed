//! MLflow's model-registry REST paths that backout uses, over the simulator's
//! versioned aliases: a registered model's aliases and tags, the search of its
//! versions, setting tags, and moving an alias. Errors as MLflow words them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Alias, Function};
use crate::SimState;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/api/2.0/mlflow/registered-models/get", get(model))
        .route("/api/2.0/mlflow/model-versions/search", get(versions))
        .route("/api/2.0/mlflow/model-versions/set-tag", post(version_tag))
        .route("/api/2.0/mlflow/registered-models/set-tag", post(model_tag))
        .route("/api/2.0/mlflow/registered-models/alias", post(set_alias))
}

fn missing(what: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": what})),
    )
        .into_response()
}

fn tags(t: &BTreeMap<String, String>) -> Vec<Value> {
    t.iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

/// Runs `f` on the model named `name`, or answers MLflow's not-found.
fn with_model(state: &SimState, name: &str, f: impl FnOnce(&mut Function) -> Response) -> Response {
    let mut functions = state.lambda.lock().expect("lambda lock");
    match functions.by_name.get_mut(name) {
        Some(m) => f(m),
        None => missing(format!("Registered Model with name={name} not found")),
    }
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

async fn model(State(state): State<Arc<SimState>>, Query(q): Query<Named>) -> Response {
    with_model(&state, &q.name, |m| {
        let aliases: Vec<Value> = m
            .aliases
            .iter()
            .map(|(alias, a)| json!({"alias": alias, "version": a.version}))
            .collect();
        Json(json!({"registered_model": {"name": m.name, "aliases": aliases, "tags": tags(&m.tags)}}))
            .into_response()
    })
}

#[derive(Deserialize)]
struct Search {
    filter: String,
}

async fn versions(State(state): State<Arc<SimState>>, Query(q): Query<Search>) -> Response {
    let name = q
        .filter
        .trim()
        .strip_prefix("name=")
        .map(|n| n.trim_matches('\''))
        .unwrap_or_default()
        .to_string();
    with_model(&state, &name, |m| {
        let versions: Vec<Value> = m
            .versions
            .iter()
            .rev()
            .map(|v| {
                json!({"name": m.name, "version": v.number.to_string(),
                    "creation_timestamp": v.created.as_millisecond(),
                    "description": v.description, "source": v.image,
                    "status": "READY", "tags": tags(&v.tags)})
            })
            .collect();
        Json(json!({"model_versions": versions})).into_response()
    })
}

#[derive(Deserialize)]
struct VersionTag {
    name: String,
    version: String,
    key: String,
    value: String,
}

async fn version_tag(State(state): State<Arc<SimState>>, Json(t): Json<VersionTag>) -> Response {
    with_model(&state, &t.name, |m| {
        match m
            .versions
            .iter_mut()
            .find(|v| v.number.to_string() == t.version)
        {
            Some(v) => {
                v.tags.insert(t.key, t.value);
                Json(json!({})).into_response()
            }
            None => missing(format!(
                "Model Version (name={}, version={}) not found",
                t.name, t.version
            )),
        }
    })
}

#[derive(Deserialize)]
struct ModelTag {
    name: String,
    key: String,
    value: String,
}

async fn model_tag(State(state): State<Arc<SimState>>, Json(t): Json<ModelTag>) -> Response {
    with_model(&state, &t.name, |m| {
        m.tags.insert(t.key, t.value);
        Json(json!({})).into_response()
    })
}

#[derive(Deserialize)]
struct SetAlias {
    name: String,
    alias: String,
    version: String,
}

async fn set_alias(State(state): State<Arc<SimState>>, Json(a): Json<SetAlias>) -> Response {
    with_model(&state, &a.name, |m| {
        if !m.versions.iter().any(|v| v.number.to_string() == a.version) {
            return missing(format!(
                "Model Version (name={}, version={}) not found",
                a.name, a.version
            ));
        }
        let entry = m.aliases.entry(a.alias).or_insert_with(|| Alias {
            version: String::new(),
            weights: BTreeMap::new(),
            description: String::new(),
            revision_id: String::new(),
        });
        entry.version = a.version;
        entry.weights.clear();
        entry.revision_id = uuid::Uuid::new_v4().to_string();
        Json(json!({})).into_response()
    })
}
