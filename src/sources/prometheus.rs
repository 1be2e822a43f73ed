//! The Prometheus HTTP API client through reqwest: range queries with a timeout,
//! credentials, and every failure worded as an outcome the engine holds on, never a
//! breach. `poller` decides what to ask and when.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use crate::config::PrometheusConfig;
use crate::engine::signals::QueryOutcome;

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
        range_outcome(self.range_data(query, end, lookback, step).await)
    }

    /// Every series a grouped query yields, with its labels.
    pub async fn range_all(
        &self,
        query: &str,
        end: Timestamp,
        lookback: Duration,
        step: Duration,
    ) -> Result<Vec<LabelledSeries>, String> {
        let data = self.range_data(query, end, lookback, step).await?;
        let result = data["result"]
            .as_array()
            .ok_or("malformed answer from Prometheus: no result list")?;
        result
            .iter()
            .map(|one| {
                let labels = one["metric"].as_object().cloned().unwrap_or_default();
                let points = parse_points(&one["values"])
                    .ok_or("malformed answer from Prometheus: unreadable points")?;
                Ok((labels, points))
            })
            .collect()
    }

    async fn range_data(
        &self,
        query: &str,
        end: Timestamp,
        lookback: Duration,
        step: Duration,
    ) -> Result<Value, String> {
        // Fractional seconds: truncating `end` would hide a series younger than a second.
        let end_secs = end.as_millisecond() as f64 / 1000.0;
        let start = end_secs - lookback.as_secs_f64();
        let params = [
            ("query", query.to_string()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end_secs:.3}")),
            ("step", format!("{}s", step.as_secs().max(1))),
        ];
        self.get("/api/v1/query_range", &params).await
    }
}

/// A series' labels and its points (unix ms, value).
pub type LabelledSeries = (serde_json::Map<String, Value>, Vec<(i64, f64)>);

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
