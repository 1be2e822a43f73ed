//! Simulated feature flags, served on the paths of Unleash's admin API that backout
//! uses: a flag's state per environment, turning it on or off, and the event search
//! that says who toggled it when. A flag that is on makes its service fail as the
//! scenario says (a fault on its traffic); off, the service behaves as its images do.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::scenario::{Fault, FlagSpec};
use crate::SimState;

/// The one environment simulated flags live in.
pub const ENVIRONMENT: &str = "production";
pub const PROJECT: &str = "default";

#[derive(Debug, Clone)]
pub struct Flag {
    pub spec: FlagSpec,
    /// The namespace of the service that reads it.
    pub namespace: String,
    pub on: bool,
    /// (event type, when, by), oldest first.
    pub events: Vec<(String, jiff::Timestamp, String)>,
}

impl Flag {
    /// The fault its state puts on its service's traffic, or `None` to clear it.
    pub fn fault(&self) -> Option<Fault> {
        self.on.then(|| Fault {
            service: self.spec.service.clone(),
            error_ratio: Some(self.spec.error_ratio),
            latency_p99_ms: None,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub by_name: BTreeMap<String, Flag>,
}

impl Flags {
    pub fn seed(specs: &[FlagSpec], namespace: &str) -> Flags {
        let by_name = specs
            .iter()
            .map(|s| {
                let flag = Flag {
                    spec: s.clone(),
                    namespace: namespace.into(),
                    on: false,
                    events: vec![(
                        "feature-created".into(),
                        jiff::Timestamp::now(),
                        "platform".into(),
                    )],
                };
                (s.name.clone(), flag)
            })
            .collect();
        Flags { by_name }
    }

    /// Turns `name` on or off as `by`; the flag after, if there is one.
    pub fn toggle(&mut self, name: &str, on: bool, by: &str) -> Option<Flag> {
        let flag = self.by_name.get_mut(name)?;
        if flag.on != on {
            let kind = if on {
                "feature-environment-enabled"
            } else {
                "feature-environment-disabled"
            };
            flag.events
                .push((kind.into(), jiff::Timestamp::now(), by.into()));
        }
        flag.on = on;
        Some(flag.clone())
    }
}

/// Turns the flag on or off and applies its fault: flags lock, then telemetry.
pub fn toggle(state: &SimState, name: &str, on: bool, by: &str) -> Option<Flag> {
    let flag = state
        .flags
        .lock()
        .expect("flags lock")
        .toggle(name, on, by)?;
    let mut telemetry = state.telemetry.lock().expect("telemetry lock");
    match flag.fault() {
        Some(fault) => telemetry.traffic.set_fault(&flag.namespace, fault),
        None => telemetry
            .traffic
            .clear_fault(&flag.namespace, &flag.spec.service),
    }
    Some(flag)
}

pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route(
            "/api/admin/projects/{project}/features/{name}",
            get(feature),
        )
        .route(
            "/api/admin/projects/{project}/features/{name}/environments/{env}/{state}",
            post(set),
        )
        .route("/api/admin/search/events", get(events))
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"name": "NotFoundError", "message": format!("There's no feature named {name:?} in project {PROJECT:?}.")})),
    )
        .into_response()
}

async fn feature(
    State(state): State<Arc<SimState>>,
    Path((project, name)): Path<(String, String)>,
) -> Response {
    let flags = state.flags.lock().expect("flags lock");
    match flags.by_name.get(&name).filter(|_| project == PROJECT) {
        Some(f) => Json(json!({
            "name": name,
            "project": PROJECT,
            "environments": [{"name": ENVIRONMENT, "enabled": f.on}],
        }))
        .into_response(),
        None => not_found(&name),
    }
}

async fn set(
    State(state): State<Arc<SimState>>,
    Path((project, name, env, to)): Path<(String, String, String, String)>,
) -> Response {
    let on = match to.as_str() {
        "on" => true,
        "off" => false,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if project != PROJECT || env != ENVIRONMENT {
        return not_found(&name);
    }
    match toggle(&state, &name, on, "admin-api") {
        Some(_) => StatusCode::OK.into_response(),
        None => not_found(&name),
    }
}

#[derive(Deserialize)]
struct Search {
    feature: Option<String>,
}

async fn events(State(state): State<Arc<SimState>>, Query(q): Query<Search>) -> Response {
    let name = q
        .feature
        .as_deref()
        .and_then(|f| f.strip_prefix("IS:"))
        .unwrap_or_default();
    let flags = state.flags.lock().expect("flags lock");
    let events: Vec<_> = flags
        .by_name
        .get(name)
        .into_iter()
        .flat_map(|f| f.events.iter().rev())
        .map(|(kind, at, by)| {
            json!({"type": kind, "createdAt": at.to_string(), "createdBy": by,
                "featureName": name, "environment": ENVIRONMENT})
        })
        .collect();
    Json(json!({"total": events.len(), "events": events})).into_response()
}
