//! The Docker Engine API's paths that backout uses, as Docker serves them (API
//! v1.41; errors as `{"message": …}` with Docker's status codes): containers listed by
//! label, inspected, created, started, stopped, renamed and removed; images listed by
//! reference, inspected and tagged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{Container, Engine, Image};
use crate::SimState;

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1.41/_ping", get(|| async { "OK" }))
        .route("/v1.41/containers/json", get(list_containers))
        .route(
            "/v1.41/containers/create",
            axum::routing::post(create_container),
        )
        .route(
            "/v1.41/containers/{id}",
            axum::routing::delete(remove_container),
        )
        .route(
            "/v1.41/containers/{id}/{action}",
            get(inspect_container).post(act_on_container),
        )
        .route("/v1.41/images/json", get(list_images))
        .route("/v1.41/images/{*rest}", get(inspect_image).post(tag_image))
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

fn no_such(what: &str, name: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("No such {what}: {name}"))
}

/// The `filters` query parameter: `{"label": ["k=v"], "reference": ["repo"]}`.
fn filters(query: &HashMap<String, String>) -> BTreeMap<String, Vec<String>> {
    query
        .get("filters")
        .and_then(|f| serde_json::from_str(f).ok())
        .unwrap_or_default()
}

fn listed(c: &Container) -> Value {
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Labels": c.labels,
        "State": if c.running { "running" } else { "exited" },
        "Status": if c.running { "Up 1 minute" } else { "Exited (0) 1 second ago" },
        "Created": c.created,
    })
}

async fn list_containers(
    State(state): State<Arc<SimState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let engine = state.compose.lock().expect("compose lock");
    let all = query.get("all").is_some_and(|a| a == "true" || a == "1");
    let labels = filters(&query).remove("label").unwrap_or_default();
    let matches = |c: &Container| {
        labels.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => c.labels.get(k).is_some_and(|x| x == v),
            None => c.labels.contains_key(l),
        })
    };
    let out: Vec<Value> = engine
        .containers
        .iter()
        .filter(|c| (all || c.running) && matches(c))
        .map(listed)
        .collect();
    Json(out).into_response()
}

fn inspected(c: &Container) -> Value {
    json!({
        "Id": c.id,
        "Name": format!("/{}", c.name),
        "Image": c.image_id,
        "Created": jiff::Timestamp::from_second(c.created).map(|t| t.to_string()).unwrap_or_default(),
        "RestartCount": 0,
        "State": {
            "Running": c.running,
            "Restarting": false,
            "Status": if c.running { "running" } else { "exited" },
            "FinishedAt": "0001-01-01T00:00:00Z",
            "Health": {"Status": "healthy", "FailingStreak": 0, "Log": []},
        },
        "Config": {"Image": c.image, "Env": c.env, "Labels": c.labels, "Hostname": &c.id[..12]},
        "HostConfig": c.host_config,
        "NetworkSettings": {"Networks": {}},
    })
}

async fn inspect_container(
    State(state): State<Arc<SimState>>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    if action != "json" {
        return error(StatusCode::NOT_FOUND, format!("page not found: {action}"));
    }
    let mut engine = state.compose.lock().expect("compose lock");
    match engine.container(&id) {
        Some(c) => Json(inspected(c)).into_response(),
        None => no_such("container", &id),
    }
}

async fn create_container(
    State(state): State<Arc<SimState>>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    let mut engine = state.compose.lock().expect("compose lock");
    let name = query.get("name").cloned().unwrap_or_default();
    if engine.container(&name).is_some() {
        return error(
            StatusCode::CONFLICT,
            format!("Conflict. The container name \"/{name}\" is already in use"),
        );
    }
    let reference = body["Image"].as_str().unwrap_or_default();
    let labels = serde_json::from_value(body["Labels"].clone()).unwrap_or_default();
    let env = serde_json::from_value(body["Env"].clone()).unwrap_or_default();
    let host_config = body["HostConfig"].clone();
    match engine.create(&name, reference, labels, env, host_config) {
        Some(id) => (StatusCode::CREATED, Json(json!({"Id": id, "Warnings": []}))).into_response(),
        None => no_such("image", reference),
    }
}

async fn act_on_container(
    State(state): State<Arc<SimState>>,
    Path((id, action)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut engine = state.compose.lock().expect("compose lock");
    let taken = |engine: &mut Engine, name: &str| engine.container(name).is_some();
    let new_name = query.get("name").cloned().unwrap_or_default();
    if action == "rename" && taken(&mut engine, &new_name) {
        return error(
            StatusCode::CONFLICT,
            format!("Conflict. The container name \"/{new_name}\" is already in use"),
        );
    }
    let Some(c) = engine.container(&id) else {
        return no_such("container", &id);
    };
    match action.as_str() {
        "start" if c.running => StatusCode::NOT_MODIFIED.into_response(),
        "stop" if !c.running => StatusCode::NOT_MODIFIED.into_response(),
        "start" | "stop" => {
            c.running = action == "start";
            StatusCode::NO_CONTENT.into_response()
        }
        "rename" => {
            c.name = new_name;
            StatusCode::NO_CONTENT.into_response()
        }
        other => error(StatusCode::NOT_FOUND, format!("page not found: {other}")),
    }
}

async fn remove_container(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut engine = state.compose.lock().expect("compose lock");
    let force = query.get("force").is_some_and(|f| f == "true" || f == "1");
    let Some(c) = engine.container(&id) else {
        return no_such("container", &id);
    };
    if c.running && !force {
        return error(
            StatusCode::CONFLICT,
            format!("You cannot remove a running container {id}. Stop the container before attempting removal or force remove"),
        );
    }
    let gone = c.id.clone();
    engine.containers.retain(|c| c.id != gone);
    StatusCode::NO_CONTENT.into_response()
}

/// The repository a tag belongs to: `registry:5000/shop/web:2` → `registry:5000/shop/web`.
fn repository_of(tag: &str) -> &str {
    let slash = tag.rfind('/').map_or(0, |i| i + 1);
    tag[slash..].rfind(':').map_or(tag, |c| &tag[..slash + c])
}

fn image_listed(i: &Image) -> Value {
    json!({"Id": i.id, "RepoTags": i.tags, "Created": i.created, "Labels": i.labels})
}

async fn list_images(
    State(state): State<Arc<SimState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let engine = state.compose.lock().expect("compose lock");
    let references = filters(&query).remove("reference").unwrap_or_default();
    let matches = |i: &Image| {
        references.is_empty()
            || i.tags.iter().any(|t| {
                references
                    .iter()
                    .any(|r| t == r || repository_of(t) == r.as_str())
            })
    };
    let out: Vec<Value> = engine
        .images
        .iter()
        .filter(|i| matches(i))
        .map(image_listed)
        .collect();
    Json(out).into_response()
}

async fn inspect_image(State(state): State<Arc<SimState>>, Path(rest): Path<String>) -> Response {
    let Some(name) = rest.strip_suffix("/json") else {
        return error(StatusCode::NOT_FOUND, format!("page not found: {rest}"));
    };
    let engine = state.compose.lock().expect("compose lock");
    match engine.image(name) {
        Some(i) => Json(json!({
            "Id": i.id,
            "RepoTags": i.tags,
            "Created": jiff::Timestamp::from_second(i.created).map(|t| t.to_string()).unwrap_or_default(),
            "Config": {"Env": [], "Cmd": null, "Labels": i.labels},
        }))
        .into_response(),
        None => no_such("image", name),
    }
}

async fn tag_image(
    State(state): State<Arc<SimState>>,
    Path(rest): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(name) = rest.strip_suffix("/tag") else {
        return error(StatusCode::NOT_FOUND, format!("page not found: {rest}"));
    };
    let mut engine = state.compose.lock().expect("compose lock");
    let repo = query.get("repo").cloned().unwrap_or_default();
    let tag = query.get("tag").cloned().unwrap_or_else(|| "latest".into());
    let reference = format!("{repo}:{tag}");
    let Some(id) = engine.image(name).map(|i| i.id.clone()) else {
        return no_such("image", name);
    };
    // A tag names one image: it moves off any other.
    for i in engine.images.iter_mut() {
        i.tags.retain(|t| *t != reference);
        if i.id == id {
            i.tags.push(reference.clone());
        }
    }
    StatusCode::CREATED.into_response()
}
