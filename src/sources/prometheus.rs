//! Prometheus through reqwest: one range query per trigger and service every poll
//! interval. At most one request per pair is in flight, concurrency is bounded, every
//! request has a timeout, and every failure becomes an outcome the engine holds on,
//! never a breach.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::config::{Config, PrometheusConfig, Trigger};
use crate::engine::signals::QueryOutcome;
use crate::engine::{Msg, QueryAnswer, ServiceKey, SourceHealth, SourceId};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("[prometheus] ca_file {path}: {error}")]
    Ca { path: String, error: String },
    #[error("[prometheus] auth: {0}")]
    Auth(String),
    #[error("[prometheus]: cannot build an HTTP client: {0}")]
    Client(String),
}

#[derive(Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    base: String,
    /// `base` as it may be printed: no credentials, no query values.
    shown: String,
    auth: Option<Auth>,
}

#[derive(Clone)]
enum Auth {
    Bearer(String),
    Basic(String, String),
}

fn secret(
    env: &Option<String>,
    file: &Option<std::path::PathBuf>,
    what: &str,
) -> Result<Option<String>, SetupError> {
    if let Some(var) = env {
        return std::env::var(var).map(Some).map_err(|_| {
            SetupError::Auth(format!("{what}: environment variable {var} is not set"))
        });
    }
    if let Some(path) = file {
        return std::fs::read_to_string(path)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| SetupError::Auth(format!("{what}: cannot read {}: {e}", path.display())));
    }
    Ok(None)
}

impl Prometheus {
    pub fn new(cfg: &PrometheusConfig) -> Result<Prometheus, SetupError> {
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)));
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|e| SetupError::Ca {
                path: path.display().to_string(),
                error: e.to_string(),
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| SetupError::Ca {
                path: path.display().to_string(),
                error: e.to_string(),
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let auth = match &cfg.auth {
            None => None,
            Some(a) => match (
                secret(&a.bearer_token_env, &a.bearer_token_file, "bearer token")?,
                &a.basic_user,
            ) {
                (Some(token), _) => Some(Auth::Bearer(token)),
                (None, Some(user)) => {
                    let password = secret(
                        &a.basic_password_env,
                        &a.basic_password_file,
                        "basic password",
                    )?
                    .unwrap_or_default();
                    Some(Auth::Basic(user.clone(), password))
                }
                (None, None) => None,
            },
        };
        let http = builder
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))?;
        Ok(Prometheus {
            http,
            base: cfg.url.trim_end_matches('/').to_string(),
            shown: crate::redact::url(cfg.url.trim_end_matches('/')),
            auth,
        })
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(params);
        req = match &self.auth {
            Some(Auth::Bearer(t)) => req.bearer_auth(t),
            Some(Auth::Basic(u, p)) => req.basic_auth(u, Some(p)),
            None => req,
        };
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("Prometheus at {} did not answer in time", self.shown)
            } else {
                format!(
                    "cannot reach Prometheus at {}: {}",
                    self.shown,
                    crate::redact::url(&root_cause(&e))
                )
            }
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            format!(
                "Prometheus at {} broke off its answer ({status}): {e}",
                self.shown
            )
        })?;
        decode(status.as_u16(), &text, &self.shown)
    }

    /// The one series a trigger query must yield, over `[end - lookback, end]`.
    pub async fn range(
        &self,
        query: &str,
        end: Timestamp,
        lookback: Duration,
        step: Duration,
    ) -> QueryOutcome {
        // Fractional seconds: truncating `end` would hide a series younger than a second.
        let end_secs = end.as_millisecond() as f64 / 1000.0;
        let start = end_secs - lookback.as_secs_f64();
        let params = [
            ("query", query.to_string()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end_secs:.3}")),
            ("step", format!("{}s", step.as_secs().max(1))),
        ];
        range_outcome(self.get("/api/v1/query_range", &params).await)
    }
}

/// An HTTP answer of the query API as its `data`, or why it is not one. Outside
/// input: any status and any body give a worded error, never a panic.
fn decode(status: u16, text: &str, shown: &str) -> Result<Value, String> {
    let status_text = reqwest::StatusCode::from_u16(status)
        .map_or_else(|_| status.to_string(), |s| s.to_string());
    let success = (200..300).contains(&status);
    let body: Value = serde_json::from_str(text).map_err(|e| {
        let start: String = text.chars().take(80).collect();
        if success {
            format!("malformed answer from Prometheus ({status_text}): {e}: {start:?}")
        } else {
            format!(
                "Prometheus at {shown} answered {status_text}, not the query API: {start:?}; check that it is up and that [prometheus] url points at it"
            )
        }
    })?;
    if body["status"] == "success" {
        return Ok(body["data"].clone());
    }
    let (kind, error) = (
        body["errorType"].as_str().unwrap_or("unknown"),
        body["error"].as_str().unwrap_or(""),
    );
    Err(match status {
        401 | 403 => {
            format!("Prometheus refused the credentials ({status_text}); check [prometheus.auth]")
        }
        _ => format!("Prometheus rejected the query ({status_text}, {kind}): {error}"),
    })
}

/// A range query's decoded answer as the one series a trigger needs, or why not.
fn range_outcome(answer: Result<Value, String>) -> QueryOutcome {
    match answer {
        Err(error) => QueryOutcome::Failed { error },
        Ok(data) => match data["result"].as_array().map(Vec::as_slice) {
            None => QueryOutcome::Failed {
                error: "malformed answer from Prometheus: no result list".into(),
            },
            Some([]) => QueryOutcome::Empty,
            Some([one]) => match parse_points(&one["values"]) {
                Some(points) => QueryOutcome::Series {
                    points,
                    requests_per_second: None,
                },
                None => QueryOutcome::Failed {
                    error: "malformed answer from Prometheus: unreadable points".into(),
                },
            },
            Some(many) => QueryOutcome::SeveralSeries { count: many.len() },
        },
    }
}

/// What a range query's HTTP answer (`status`, `body`) tells a trigger: the parse the
/// poller runs, open to fuzzing.
pub fn read_range_answer(status: u16, body: &str) -> QueryOutcome {
    range_outcome(decode(status, body, "the fuzzed server"))
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    cause
}

/// `[[unix secs, "value"], ...]` as (unix ms, value); "NaN" and "+Inf" included.
fn parse_points(values: &Value) -> Option<Vec<(i64, f64)>> {
    values
        .as_array()?
        .iter()
        .map(|p| {
            let t = p.get(0)?.as_f64()?;
            let v = match p.get(1)?.as_str()? {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                s => s.parse::<f64>().ok()?,
            };
            Some(((t * 1000.0).round() as i64, v))
        })
        .collect()
}

/// Polls every (trigger, service) until `tx` closes. The services come from the core
/// through `services`, so a newly seen Deployment is polled from the next round.
pub fn spawn(
    prom: Prometheus,
    config: &Config,
    services: watch::Receiver<Vec<ServiceKey>>,
    tx: mpsc::Sender<Msg>,
) -> JoinHandle<()> {
    let cfg = config
        .prometheus
        .clone()
        .expect("spawn is called only with a [prometheus] section");
    // Cluster signals are read from the Kubernetes API by the engine, not queried here.
    let triggers: Vec<Trigger> = config
        .triggers
        .iter()
        .filter(|t| t.cluster.is_none())
        .cloned()
        .collect();
    tokio::spawn(async move {
        let limit = Arc::new(Semaphore::new(cfg.max_concurrent.max(1)));
        let mut inflight: HashMap<(String, ServiceKey), JoinHandle<()>> = HashMap::new();
        let (health_tx, mut health_rx) = mpsc::unbounded_channel::<bool>();
        let mut ticker = tokio::time::interval(cfg.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let step = (cfg.poll_interval).max(Duration::from_secs(1));
        let mut last_health = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                Some(ok) = health_rx.recv() => {
                    let health = if ok { SourceHealth::Connected } else {
                        SourceHealth::Retrying { attempt: 0, retry_in_secs: cfg.poll_interval.as_secs(), error: "queries are failing; see the triggers".into() }
                    };
                    if last_health.as_ref() != Some(&health) {
                        last_health = Some(health.clone());
                        if tx.send(Msg::Source { source: SourceId::Prometheus, health }).await.is_err() { return; }
                    }
                    continue;
                }
            }
            let now = Timestamp::now();
            for service in services.borrow().clone() {
                for trigger in &triggers {
                    let key = (trigger.name.clone(), service.clone());
                    // A slow answer is still an answer: a request runs to its own timeout
                    // and this round skips the pair, so a Prometheus slower than the poll
                    // is seen (and, past blind_after, paged) instead of never answering.
                    if inflight.get(&key).is_some_and(|h| !h.is_finished()) {
                        continue;
                    }
                    let (prom, tx, limit, health) =
                        (prom.clone(), tx.clone(), limit.clone(), health_tx.clone());
                    let (trigger, lookback) = (trigger.clone(), cfg.lookback);
                    let svc = service.clone();
                    inflight.insert(
                        key,
                        tokio::spawn(async move {
                            let Ok(_permit) = limit.acquire().await else {
                                return;
                            };
                            let query = trigger.query_for(&svc.namespace, &svc.name, &svc.name);
                            let mut outcome = prom.range(&query, now, lookback, step).await;
                            if let (
                                QueryOutcome::Series {
                                    requests_per_second,
                                    ..
                                },
                                Some(volume),
                            ) = (&mut outcome, &trigger.volume_query)
                            {
                                let volume = crate::config::triggers::expand(
                                    volume,
                                    &svc.namespace,
                                    &svc.name,
                                    &svc.name,
                                );
                                if let QueryOutcome::Series { points, .. } =
                                    prom.range(&volume, now, step * 2, step).await
                                {
                                    *requests_per_second = points.last().map(|(_, v)| *v);
                                }
                            }
                            let _ = health.send(!matches!(outcome, QueryOutcome::Failed { .. }));
                            let answer = QueryAnswer {
                                trigger: trigger.name.clone(),
                                service: svc,
                                answered_at: Timestamp::now(),
                                outcome,
                            };
                            let _ = tx.send(Msg::Query(answer)).await;
                        }),
                    );
                }
            }
            inflight.retain(|_, h| !h.is_finished());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_with_special_values() {
        let v = serde_json::json!([
            [1700000000.5, "0.25"],
            [1700000001, "NaN"],
            [1700000002, "+Inf"]
        ]);
        let p = parse_points(&v).unwrap();
        assert_eq!(p[0], (1_700_000_000_500, 0.25));
        assert!(p[1].1.is_nan());
        assert_eq!(p[2].1, f64::INFINITY);
        assert!(
            parse_points(&serde_json::json!([[1, 2]])).is_none(),
            "a number where a string belongs is malformed"
        );
    }
}
