//! The simulator's HTTP surface: the Kubernetes API (discovery plus the REST verbs
//! in `handlers`) and, on the same port, the Prometheus endpoints, the Lambda API's
//! (`crate::lambda::api`) and the Docker Engine API's (`crate::compose::api`).

pub mod admission;
pub mod auth;
pub mod discovery;
pub mod handlers;
mod list;
pub mod logs;
pub mod openapi;
pub mod patch;
pub mod reviews;
pub mod status;
pub mod table;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::telemetry::http as prom;
use crate::SimState;
use status::ApiError;

pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/version", get(|| async { Json(discovery::version()) }))
        .route("/api", get(|| async { Json(discovery::core_versions()) }))
        .route(
            "/api/v1",
            get(|| async { json_or_404(discovery::resource_list("", "v1"), "/api/v1") }),
        )
        .route("/apis", get(|| async { Json(discovery::group_list()) }))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(|| async { Json(openapi::index()) }))
        .route(
            "/openapi/v3/{*gv}",
            get(|Path(gv): Path<String>| async move {
                json_or_404(openapi::group_version(&gv), &format!("openapi/v3/{gv}"))
            }),
        )
        .route(
            "/apis/{group}",
            get(|Path(g): Path<String>| async move { json_or_404(discovery::group(&g), &g) }),
        )
        .route(
            "/apis/{group}/{version}",
            get(|Path((g, v)): Path<(String, String)>| async move {
                json_or_404(discovery::resource_list(&g, &v), &format!("{g}/{v}"))
            }),
        )
        .route("/metrics", get(prom::metrics))
        .route("/api/v1/query", get(prom::query).post(prom::query))
        .route(
            "/api/v1/query_range",
            get(prom::query_range).post(prom::query_range),
        )
        .route(
            "/sim/faults",
            get(crate::faults::show).put(crate::faults::set),
        )
        .merge(crate::lambda::api::routes())
        .merge(crate::lambda::registry::routes())
        .merge(crate::flags::routes())
        .merge(crate::compose::api::routes())
        .fallback(kube)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::faults::layer,
        ))
        .with_state(state)
}

fn json_or_404(doc: Option<serde_json::Value>, what: &str) -> Response {
    match doc {
        Some(d) => Json(d).into_response(),
        None => ApiError::not_found(format!(
            "the server could not find the requested resource ({what})"
        ))
        .into_response(),
    }
}

async fn kube(
    State(sim): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    match handlers::serve(sim, method, uri.path(), &headers, params, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
