//! The fault switchboard: faults of the Kubernetes API and of the metrics API that a
//! drill or a test turns on and off while a scenario runs, from a scenario
//! `[[event]]` (`[event.faults]`) or over HTTP (`GET`/`PUT /sim/faults`).
//!
//! The faults are applied as a layer in front of the real handlers, so a request that
//! gets through is served exactly as without faults.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::status::ApiError;
use crate::SimState;

/// Every fault the simulator can inject; all off by default. A `PUT` or an event
/// replaces the whole board, so a drill states the faults it wants, not a change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    pub kube: KubeFaults,
    pub metrics: MetricsFaults,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeFaults {
    /// Every API request answers 500 InternalError.
    pub error_500: bool,
    /// Every API request answers 429 TooManyRequests with this Retry-After, in seconds.
    pub throttle_retry_after: Option<u64>,
    /// Added before every API answer.
    #[serde(with = "humantime_serde")]
    pub latency: Option<Duration>,
    /// Every open watch stream is ended this often.
    #[serde(with = "humantime_serde")]
    pub cut_watches_every: Option<Duration>,
    /// The watch history is dropped every second, so every watch resumes into a
    /// 410 Expired and relists: a storm of relists.
    pub gone_storm: bool,
    /// The next PATCH of a Deployment answers 409 Conflict and changes nothing.
    pub conflict_next_patch: bool,
    /// The next PATCH of a Deployment answers this error status (500, 503, …) and
    /// changes nothing.
    pub fail_next_patch: Option<u16>,
    /// The next PATCH of a Deployment is applied, but its answer is lost: a 504 comes
    /// back instead.
    pub lose_next_patch_answer: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsFaults {
    /// The metrics API answers 503 with a plain-text body, as a proxy in front of a
    /// stopped Prometheus does.
    pub down: bool,
    /// Added before every metrics answer.
    #[serde(with = "humantime_serde")]
    pub latency: Option<Duration>,
    /// Every query answers this HTTP status (400 or 500) with a Prometheus error body.
    pub status: Option<u16>,
    /// Every query answers 200 with a body that is not JSON.
    pub garbage: bool,
    /// Every sample's value is replaced by this one: "NaN", "+Inf" or "-Inf".
    pub value: Option<String>,
    /// Every query answers its first series twice, with different labels.
    pub duplicate_series: bool,
}

impl Faults {
    /// Refuses what the switchboard cannot do, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(code) = self.metrics.status.or(self.kube.fail_next_patch) {
            if !(400..=599).contains(&code) {
                return Err(format!(
                    "status {code}: give an HTTP error status, 400 to 599"
                ));
            }
        }
        if let Some(v) = &self.metrics.value {
            if !matches!(v.as_str(), "NaN" | "+Inf" | "-Inf") {
                return Err(format!(
                    "metrics.value = {v:?}: give \"NaN\", \"+Inf\" or \"-Inf\""
                ));
            }
        }
        if self.kube.cut_watches_every.is_some_and(|d| d.is_zero()) {
            return Err("kube.cut_watches_every must be more than 0s".into());
        }
        Ok(())
    }

    pub fn any(&self) -> bool {
        self != &Faults::default()
    }
}

/// `GET /sim/faults`: the board as it stands.
pub async fn show(State(sim): State<Arc<SimState>>) -> Json<Faults> {
    Json(sim.faults.lock().expect("faults lock").clone())
}

/// `PUT /sim/faults`: replaces the board. A bad body changes nothing.
pub async fn set(State(sim): State<Arc<SimState>>, body: axum::body::Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return refuse(format!("the body is not a fault board: {e}")),
    };
    if let Err(e) = faults.validate() {
        return refuse(e);
    }
    tracing::info!("faults set: {faults:?}");
    *sim.faults.lock().expect("faults lock") = faults.clone();
    Json(faults).into_response()
}

fn refuse(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn is_metrics(path: &str) -> bool {
    matches!(path, "/api/v1/query" | "/api/v1/query_range" | "/metrics")
}

/// The layer: what the board says about this request, before and after the handler.
pub async fn layer(State(sim): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/sim/") {
        return next.run(req).await;
    }
    let faults = sim.faults.lock().expect("faults lock").clone();
    if !faults.any() {
        return next.run(req).await;
    }
    if is_metrics(&path) {
        metrics(&faults.metrics, req, next).await
    } else {
        kube(&sim, &faults.kube, req, next).await
    }
}

async fn metrics(f: &MetricsFaults, req: Request, next: Next) -> Response {
    if let Some(d) = f.latency {
        tokio::time::sleep(d).await;
    }
    if f.down {
        let body = "503 Service Unavailable: no healthy upstream (simulated)";
        return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    if let Some(code) = f.status {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = if code < 500 { "bad_data" } else { "internal" };
        let body = json!({"status": "error", "errorType": kind, "error": format!("simulated fault: every query answers {code}")});
        return (status, Json(body)).into_response();
    }
    if f.garbage {
        let html = "<html><body>502 Bad Gateway (simulated)</body></html>";
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            html,
        )
            .into_response();
    }
    let response = next.run(req).await;
    if f.value.is_none() && !f.duplicate_series {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, 64 << 20).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(mut doc) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let Some(result) = doc["data"]["result"].as_array_mut() {
        if let Some(v) = &f.value {
            for series in result.iter_mut() {
                replace_values(series, v);
            }
        }
        if f.duplicate_series {
            if let Some(mut twin) = result.first().cloned() {
                twin["metric"]["pod"] = json!("simulated-duplicate");
                result.push(twin);
            }
        }
    }
    let mut response = Response::from_parts(parts, Body::from(doc.to_string()));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

/// Replaces the value of every `[t, "v"]` sample (range) or the one `value` (instant).
fn replace_values(series: &mut Value, with: &str) {
    if let Some(values) = series["values"].as_array_mut() {
        for sample in values {
            sample[1] = json!(with);
        }
    }
    if series["value"].is_array() {
        series["value"][1] = json!(with);
    }
}

async fn kube(sim: &SimState, f: &KubeFaults, req: Request, next: Next) -> Response {
    if let Some(d) = f.latency {
        tokio::time::sleep(d).await;
    }
    if f.error_500 {
        let e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "Internal error occurred: simulated fault",
        );
        return e.into_response();
    }
    if let Some(secs) = f.throttle_retry_after {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later (simulated)",
        );
        let mut response = e.into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return response;
    }
    let one_shot = req.method() == Method::PATCH
        && req.uri().path().contains("/deployments/")
        && !req.uri().query().is_some_and(|q| q.contains("dryRun"));
    if !one_shot {
        return next.run(req).await;
    }
    if let Some(code) = take_status(sim) {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let e = ApiError::new(
            status,
            "InternalError",
            format!("simulated fault: this PATCH answers {code}; nothing was changed"),
        );
        return e.into_response();
    }
    if take(sim, |k| &mut k.conflict_next_patch) {
        let e = ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (simulated)",
        );
        return e.into_response();
    }
    let lose = take(sim, |k| &mut k.lose_next_patch_answer);
    let response = next.run(req).await;
    if lose && response.status().is_success() {
        let e = ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            "the server was unable to return a response in the time allotted (simulated; the change was applied)",
        );
        return e.into_response();
    }
    response
}

/// A one-shot fault: true once, and off from then on.
fn take(sim: &SimState, field: impl Fn(&mut KubeFaults) -> &mut bool) -> bool {
    let mut board = sim.faults.lock().expect("faults lock");
    std::mem::take(field(&mut board.kube))
}

fn take_status(sim: &SimState) -> Option<u16> {
    sim.faults
        .lock()
        .expect("faults lock")
        .kube
        .fail_next_patch
        .take()
}

/// What the control loop does for the faults that act on open streams.
pub struct Streams {
    last_cut: std::time::Instant,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            last_cut: std::time::Instant::now(),
        }
    }
}

impl Streams {
    /// Ends watches and drops history when the board says so; called once a second or
    /// more often.
    pub fn tick(&mut self, sim: &SimState) {
        let f = sim.faults.lock().expect("faults lock").kube.clone();
        let every = match (f.gone_storm, f.cut_watches_every) {
            (true, _) => Some(Duration::from_secs(1)),
            (false, every) => every,
        };
        let Some(every) = every else { return };
        if self.last_cut.elapsed() < every {
            return;
        }
        self.last_cut = std::time::Instant::now();
        if f.gone_storm {
            sim.store.lock().expect("store lock").compact();
        }
        let _ = sim.watch_resets.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_reads_from_toml_and_json_alike_and_refuses_nonsense() {
        let toml_board: Faults = toml::from_str(
            "[metrics]\nlatency = \"10s\"\nvalue = \"NaN\"\n[kube]\nthrottle_retry_after = 2\n",
        )
        .unwrap();
        let json_board: Faults = serde_json::from_value(json!({
            "metrics": {"latency": "10s", "value": "NaN"},
            "kube": {"throttle_retry_after": 2}
        }))
        .unwrap();
        assert_eq!(toml_board, json_board);
        assert_eq!(toml_board.metrics.latency, Some(Duration::from_secs(10)));
        assert!(toml_board.validate().is_ok() && toml_board.any());
        assert!(!Faults::default().any());
        let bad = Faults {
            metrics: MetricsFaults {
                value: Some("7".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("metrics.value"));
        assert!(serde_json::from_value::<Faults>(json!({"kube": {"eror_500": true}})).is_err());
    }

    #[test]
    fn special_values_replace_every_sample() {
        let mut series = json!({"metric": {}, "values": [[1, "0.1"], [2, "0.2"]]});
        replace_values(&mut series, "+Inf");
        assert_eq!(series["values"], json!([[1, "+Inf"], [2, "+Inf"]]));
        let mut instant = json!({"metric": {}, "value": [1, "0.1"]});
        replace_values(&mut instant, "NaN");
        assert_eq!(instant["value"], json!([1, "NaN"]));
    }
}
