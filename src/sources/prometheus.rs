//! The Prometheus HTTP API client through reqwest: range queries with a timeout,
//! credentials, and every failure worded as an outcome the engine holds on, never a
//! breach. `poller` decides what to ask and when.

use std::time::Duration;

use std::borrow::Cow;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::PrometheusConfig;
use crate::engine::series::Series;
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

    /// A range query's HTTP answer, read by `read` (the body is parsed in place).
    async fn range_answer<T>(
        &self,
        query: &str,
        end: Timestamp,
        lookback: Duration,
        step: Duration,
        read: impl FnOnce(u16, &str, &str) -> Result<T, String>,
    ) -> Result<T, String> {
        // Fractional seconds: truncating `end` would hide a series younger than a second.
        let end_secs = end.as_millisecond() as f64 / 1000.0;
        let start = end_secs - lookback.as_secs_f64();
        let params = [
            ("query", query.to_string()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end_secs:.3}")),
            ("step", format!("{}s", step.as_secs().max(1))),
        ];
        let mut req = self
            .http
            .post(format!("{}/api/v1/query_range", self.base))
            .form(&params);
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
        read(status.as_u16(), &text, &self.shown)
    }

    /// The one series a trigger query must yield, over `[end - lookback, end]`.
    pub async fn range(
        &self,
        query: &str,
        end: Timestamp,
        lookback: Duration,
        step: Duration,
    ) -> QueryOutcome {
        self.range_answer(query, end, lookback, step, |status, text, shown| {
            Ok(range_outcome(decode(status, text, shown)))
        })
        .await
        .unwrap_or_else(|error| QueryOutcome::Failed { error })
    }

    /// The series a grouped query yields that `key_of` names from their labels, with
    /// the name it gave. The labels are read in place and dropped with the answer.
    pub async fn range_all<K>(
        &self,
        query: &str,
        end: Timestamp,
        lookback: Duration,
        step: Duration,
        key_of: impl Fn(&Labels) -> Option<K>,
    ) -> Result<Vec<(K, Series)>, String> {
        self.range_answer(query, end, lookback, step, |status, text, shown| {
            let all = decode(status, text, shown)?;
            Ok(all
                .into_iter()
                .filter_map(|series| Some((key_of(&series.metric)?, series.values.0)))
                .collect())
        })
        .await
    }
}

/// A series' labels, borrowed from the answer's text where JSON allows (an escaped
/// value is copied): a grouped answer of thousands of series read every label into a
/// String of its own, most of a poll's allocations.
#[derive(Default)]
pub struct Labels<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl Labels<'_> {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.as_ref())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Labels<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Labels<'a>, D::Error> {
        // serde borrows a `Cow` only when it is the field itself, not inside a map.
        #[derive(Deserialize)]
        struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Labels<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a series' labels")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Labels<'de>, M::Error> {
                let mut labels = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((Text(label), Text(value))) = map.next_entry()? {
                    labels.push((label, value));
                }
                Ok(Labels(labels))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The query API's envelope. `data` stays unparsed until `status` says success, and
/// the error fields are read loosely: a refusal is worded whatever their types.
#[derive(Deserialize)]
struct Envelope<'a> {
    status: Option<Value>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(rename = "errorType")]
    error_type: Option<Value>,
    error: Option<Value>,
}

/// A range query's `data`: typed, so an answer of thousands of series is read without
/// building a JSON tree first (at 2,000 services that tree was most of a poll's cost).
#[derive(Deserialize)]
struct Matrix<'a> {
    #[serde(borrow)]
    result: Vec<RawSeries<'a>>,
}

#[derive(Deserialize)]
struct RawSeries<'a> {
    #[serde(default, borrow)]
    metric: Labels<'a>,
    values: Points,
}

/// `[[unix secs, "value"], ...]` as (unix ms, value); "NaN" and "+Inf" included.
struct Points(Series);

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Points, D::Error> {
        struct Point(i64, f64);
        impl<'de> Deserialize<'de> for Point {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Point, D::Error> {
                // Borrowed: a sample value is a plain number string, never escaped.
                let (secs, text): (f64, &'de str) = Deserialize::deserialize(d)?;
                let value = match text {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    s => s.parse::<f64>().map_err(|_| {
                        serde::de::Error::custom(format!("unreadable sample value {s:?}"))
                    })?,
                };
                Ok(Point((secs * 1000.0).round() as i64, value))
            }
        }
        let points: Vec<Point> = Deserialize::deserialize(d)?;
        Ok(Points(points.into_iter().map(|p| (p.0, p.1)).collect()))
    }
}

/// An HTTP answer of the range API as its series, or why it is not one. Outside
/// input: any status and any body give a worded error, never a panic.
fn decode<'a>(status: u16, text: &'a str, shown: &str) -> Result<Vec<RawSeries<'a>>, String> {
    let status_text = reqwest::StatusCode::from_u16(status)
        .map_or_else(|_| status.to_string(), |s| s.to_string());
    let success = (200..300).contains(&status);
    let body: Envelope = serde_json::from_str(text).map_err(|e| {
        let start: String = text.chars().take(80).collect();
        if success {
            format!("malformed answer from Prometheus ({status_text}): {e}: {start:?}")
        } else {
            format!(
                "Prometheus at {shown} answered {status_text}, not the query API: {start:?}; check that it is up and that [prometheus] url points at it"
            )
        }
    })?;
    if body.status.as_ref().and_then(Value::as_str) == Some("success") {
        let data = body
            .data
            .ok_or("malformed answer from Prometheus: no data")?;
        let matrix: Matrix = serde_json::from_str(data.get())
            .map_err(|e| format!("malformed answer from Prometheus ({status_text}): {e}"))?;
        return Ok(matrix.result);
    }
    let text_of = |v: &Option<Value>| v.as_ref().and_then(Value::as_str).map(str::to_string);
    let (kind, error) = (
        text_of(&body.error_type).unwrap_or_else(|| "unknown".into()),
        text_of(&body.error).unwrap_or_default(),
    );
    Err(match status {
        401 | 403 => {
            format!("Prometheus refused the credentials ({status_text}); check [prometheus.auth]")
        }
        _ => format!("Prometheus rejected the query ({status_text}, {kind}): {error}"),
    })
}

/// A range query's decoded answer as the one series a trigger needs, or why not.
fn range_outcome(answer: Result<Vec<RawSeries>, String>) -> QueryOutcome {
    match answer {
        Err(error) => QueryOutcome::Failed { error },
        Ok(mut all) => match all.len() {
            0 => QueryOutcome::Empty,
            1 => QueryOutcome::Series {
                points: all.pop().expect("one series").values.0,
                requests_per_second: None,
            },
            count => QueryOutcome::SeveralSeries { count },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &str) -> Result<Vec<(i64, f64)>, serde_json::Error> {
        serde_json::from_str::<Points>(values).map(|p| p.0.iter().collect())
    }

    #[test]
    fn points_parse_with_special_values() {
        let p = points(r#"[[1700000000.5, "0.25"], [1700000001, "NaN"], [1700000002, "+Inf"]]"#)
            .unwrap();
        assert_eq!(p[0], (1_700_000_000_500, 0.25));
        assert!(p[1].1.is_nan());
        assert_eq!(p[2].1, f64::INFINITY);
        assert!(
            points("[[1, 2]]").is_err(),
            "a number where a string belongs is malformed"
        );
        assert!(
            points(r#"[["1", "2"]]"#).is_err(),
            "a time must be a number"
        );
    }

    #[test]
    fn labels_are_read_in_place_and_an_escaped_one_is_copied() {
        let text = r#"{"service":"web","namespace":"sh\u006fp","code":"5\"x"}"#;
        let labels: Labels = serde_json::from_str(text).unwrap();
        assert_eq!(labels.get("service"), Some("web"));
        assert_eq!(labels.get("namespace"), Some("shop"));
        assert_eq!(labels.get("code"), Some("5\"x"));
        assert_eq!(labels.get("pod"), None);
        let borrowed = |name: &str| {
            labels
                .0
                .iter()
                .any(|(label, value)| label == name && matches!(value, Cow::Borrowed(_)))
        };
        assert!(borrowed("service"), "a plain value is not copied");
        assert!(
            !borrowed("namespace"),
            "an escaped value cannot be borrowed"
        );
        assert!(serde_json::from_str::<Labels>(r#"{"service":1}"#).is_err());
        assert!(serde_json::from_str::<Labels>(r#"["service"]"#).is_err());
    }

    #[test]
    fn an_answer_is_read_as_its_series_or_worded_as_why_not() {
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"service":"a"},"values":[[1,"1"]]},
            {"metric":{"service":"b"},"values":[[1,"2"],[2,"3"]]}]}}"#;
        let all = decode(200, matrix, "p").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].metric.get("service"), Some("b"));
        assert_eq!(all[1].values.0, vec![(1000, 2.0), (2000, 3.0)].into());
        assert!(matches!(
            range_outcome(decode(200, matrix, "p")),
            QueryOutcome::SeveralSeries { count: 2 }
        ));
        let refused =
            r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        let error = decode(400, refused, "p").err().unwrap();
        assert!(
            error.contains("bad_data") && error.contains("parse error"),
            "{error}"
        );
        let odd = r#"{"status":"error","errorType":7}"#;
        assert!(decode(422, odd, "p").err().unwrap().contains("unknown"));
        let no_result = r#"{"status":"success","data":{"resultType":"matrix"}}"#;
        assert!(decode(200, no_result, "p")
            .err()
            .unwrap()
            .contains("malformed"));
        let html = "<html>proxy error</html>";
        assert!(decode(502, html, "p")
            .err()
            .unwrap()
            .contains("not the query API"));
    }
}
