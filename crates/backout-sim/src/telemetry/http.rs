//! `/metrics` in the Prometheus text format, and `/api/v1/query` and
//! `/api/v1/query_range` over the recorded series in Prometheus' JSON envelope.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use promql_parser::parser::{self, Expr};
use serde_json::{json, Value};

use super::promql_math::BUCKETS;
use super::tsdb::Labels;
use crate::controller::unix_ms;
use crate::SimState;

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Runs a handler that locks the metrics off the async workers: the lock can be held
/// for a sample (about 200 ms at 20,000 pods), and a worker waiting on it serves no
/// Kubernetes request meanwhile.
async fn off_workers(answer: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(answer)
        .await
        .unwrap_or_else(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"status": "error", "errorType": "internal", "error": e.to_string()})),
            )
                .into_response()
        })
}

pub async fn metrics(State(sim): State<Arc<SimState>>) -> Response {
    off_workers(move || {
        let out = exposition(&sim.telemetry.lock().expect("telemetry lock").traffic);
        exposition_response(out)
    })
    .await
}

/// A `/metrics` answer in the text format Prometheus scrapes.
pub fn exposition_response(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Every live pod's counters, as its app, kube-state-metrics and cAdvisor export them.
pub fn exposition(traffic: &super::traffic::Traffic) -> String {
    let mut out = String::new();
    let live: std::collections::BTreeMap<_, _> =
        traffic.pods.iter().filter(|(_, s)| !s.ended).collect();
    let pods = &live;
    let mut family = |name: &str, kind: &str, help: &str, lines: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        lines(&mut out);
    };
    family(
        "http_requests_total",
        "counter",
        "HTTP requests served, by status code.",
        &mut |out| {
            for ((ns, pod), s) in pods {
                for (code, v) in [("200", s.now.ok), ("500", s.now.errors)] {
                    let _ = writeln!(out, "http_requests_total{{namespace=\"{}\",service=\"{}\",pod=\"{}\",code=\"{code}\"}} {}", esc(ns), esc(&s.service), esc(pod), float(v));
                }
            }
        },
    );
    family(
        "http_request_duration_seconds",
        "histogram",
        "HTTP request latency.",
        &mut |out| {
            for ((ns, pod), s) in pods {
                let labels = format!(
                    "namespace=\"{}\",service=\"{}\",pod=\"{}\"",
                    esc(ns),
                    esc(&s.service),
                    esc(pod)
                );
                for (le, v) in BUCKETS.iter().zip(s.now.buckets) {
                    let _ = writeln!(
                        out,
                        "http_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {}",
                        float(*le),
                        float(v)
                    );
                }
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_sum{{{labels}}} {}",
                    float(s.now.duration_sum)
                );
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_count{{{labels}}} {}",
                    float(s.now.buckets[BUCKETS.len() - 1])
                );
            }
        },
    );
    let per_container = |name: &'static str, field: fn(&super::traffic::Counters) -> f64| {
        move |out: &mut String| {
            for ((ns, pod), s) in pods {
                let _ = writeln!(
                    out,
                    "{name}{{namespace=\"{}\",pod=\"{}\",container=\"{}\"}} {}",
                    esc(ns),
                    esc(pod),
                    esc(&s.container),
                    float(field(&s.now))
                );
            }
        }
    };
    family(
        "kube_pod_container_status_restarts_total",
        "counter",
        "Container restarts, as kube-state-metrics exports them.",
        &mut per_container("kube_pod_container_status_restarts_total", |c| c.restarts),
    );
    family(
        "container_cpu_usage_seconds_total",
        "counter",
        "CPU time used, as cAdvisor exports it.",
        &mut per_container("container_cpu_usage_seconds_total", |c| c.cpu_seconds),
    );
    family(
        "container_memory_working_set_bytes",
        "gauge",
        "Working-set memory, as cAdvisor exports it.",
        &mut per_container("container_memory_working_set_bytes", |c| c.memory_bytes),
    );
    family(
        "kube_pod_labels",
        "gauge",
        "Pod labels, as kube-state-metrics exports them.",
        &mut |out| {
            for ((ns, pod), s) in pods {
                let _ = writeln!(
                    out,
                    "kube_pod_labels{{namespace=\"{}\",pod=\"{}\",label_app=\"{}\"}} 1",
                    esc(ns),
                    esc(pod),
                    esc(&s.service)
                );
            }
        },
    );
    out
}

fn bad_data(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "error", "errorType": "bad_data", "error": message.into()})),
    )
        .into_response()
}

/// Query parameters from the URL and, for POST, the form body, as Prometheus takes them.
fn params(query: HashMap<String, String>, body: &[u8]) -> HashMap<String, String> {
    let mut all: HashMap<String, String> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    all.extend(query);
    all
}

fn parse_time(name: &str, raw: Option<&String>, default_ms: Option<u64>) -> Result<u64, String> {
    let Some(raw) = raw else {
        return default_ms.ok_or_else(|| format!("invalid parameter \"{name}\": missing"));
    };
    if let Ok(secs) = raw.parse::<f64>() {
        return Ok((secs * 1000.0).round().max(0.0) as u64);
    }
    raw.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond().max(0) as u64)
        .map_err(|_| {
            format!("invalid parameter \"{name}\": cannot parse {raw:?} to a valid timestamp")
        })
}

fn parse_step(raw: Option<&String>) -> Result<u64, String> {
    let raw = raw.ok_or("invalid parameter \"step\": missing")?;
    let ms = match raw.parse::<f64>() {
        Ok(secs) => (secs * 1000.0) as u64,
        Err(_) => humantime::parse_duration(raw)
            .map_err(|_| {
                format!("invalid parameter \"step\": cannot parse {raw:?} to a valid duration")
            })?
            .as_millis() as u64,
    };
    if ms == 0 {
        return Err("zero or negative query resolution step widths are not accepted. Try a positive integer".into());
    }
    Ok(ms)
}

/// The label matchers of a plain selector; anything else is refused with the reason.
fn selector(query: &str) -> Result<impl Fn(&Labels) -> bool, String> {
    let expr = parser::parse(query).map_err(|e| format!("invalid parameter \"query\": {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!(
            "the simulator serves recorded series only, so {query:?} cannot be evaluated here; query a recorded series such as service:http_errors:ratio_rate1m{{namespace=\"shop\"}}, or point backout at a real Prometheus loaded with assets/prometheus/backout-rules.yml"
        ));
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err(
            "the simulator does not evaluate offset or @ modifiers; query the series plainly"
                .into(),
        );
    }
    Ok(move |labels: &Labels| {
        let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
        vs.name.as_deref().is_none_or(|n| get("__name__") == n)
            && vs
                .matchers
                .matchers
                .iter()
                .all(|m| m.is_match(get(&m.name)))
            && (vs.matchers.or_matchers.is_empty()
                || vs
                    .matchers
                    .or_matchers
                    .iter()
                    .any(|group| group.iter().all(|m| m.is_match(get(&m.name)))))
    })
}

/// A sample as Prometheus writes it: `[seconds, "value"]`.
fn point(t_ms: u64, v: f64) -> (f64, String) {
    (t_ms as f64 / 1000.0, float(v))
}

fn sample(t_ms: u64, v: f64) -> Value {
    json!(point(t_ms, v))
}

pub async fn query(
    State(sim): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let p = params(q, &body);
    off_workers(move || instant_answer(&sim, &p)).await
}

fn instant_answer(sim: &SimState, p: &HashMap<String, String>) -> Response {
    let Some(query) = p.get("query") else {
        return bad_data("invalid parameter \"query\": missing");
    };
    let t = match parse_time("time", p.get("time"), Some(unix_ms())) {
        Ok(t) => t,
        Err(e) => return bad_data(e),
    };
    let select = match selector(query) {
        Ok(s) => s,
        Err(e) => return bad_data(e),
    };
    let telemetry = sim.telemetry.lock().expect("telemetry lock");
    let result: Vec<Value> = telemetry
        .tsdb
        .at(t, &select)
        .into_iter()
        .map(|(l, v)| json!({"metric": l, "value": sample(t, v)}))
        .collect();
    Json(json!({"status": "success", "data": {"resultType": "vector", "result": result}}))
        .into_response()
}

/// Prometheus' limit on points per series in one range query.
const MAX_POINTS: u64 = 11_000;

pub async fn query_range(
    State(sim): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let p = params(q, &body);
    // A grouped query over 2,000 services is also hundreds of milliseconds of work.
    off_workers(move || range_answer(&sim, &p)).await
}

/// One series of a range answer, as Prometheus writes it: `[seconds, "value"]` pairs.
#[derive(serde::Serialize)]
struct RangeSeries {
    metric: Labels,
    values: Vec<(f64, String)>,
}

/// A successful range answer, written straight to bytes (no JSON tree between).
#[derive(serde::Serialize)]
struct RangeAnswer {
    status: &'static str,
    data: Matrix,
}

#[derive(serde::Serialize)]
struct Matrix {
    #[serde(rename = "resultType")]
    result_type: &'static str,
    result: Vec<RangeSeries>,
}

fn range_answer(sim: &SimState, p: &HashMap<String, String>) -> Response {
    let Some(query) = p.get("query") else {
        return bad_data("invalid parameter \"query\": missing");
    };
    let parsed = (|| -> Result<_, String> {
        let start = parse_time("start", p.get("start"), None)?;
        let end = parse_time("end", p.get("end"), None)?;
        let step = parse_step(p.get("step"))?;
        if end < start {
            return Err(
                "invalid parameter \"end\": end timestamp must not be before start time".into(),
            );
        }
        if (end - start) / step > MAX_POINTS {
            return Err("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into());
        }
        Ok((start, end, step, selector(query)?))
    })();
    let (start, end, step, select) = match parsed {
        Ok(v) => v,
        Err(e) => return bad_data(e),
    };
    // The lock is held only to pick the points, not to write them out: a sample
    // waits for it.
    let picked: Vec<(Labels, Vec<(u64, f64)>)> = {
        let telemetry = sim.telemetry.lock().expect("telemetry lock");
        telemetry
            .tsdb
            .range(start, end, step, &select)
            .into_iter()
            .map(|(labels, points)| (labels.clone(), points))
            .collect()
    };
    let result = picked
        .into_iter()
        .map(|(metric, points)| RangeSeries {
            metric,
            values: points.into_iter().map(|(t, v)| point(t, v)).collect(),
        })
        .collect();
    Json(RangeAnswer {
        status: "success",
        data: Matrix {
            result_type: "matrix",
            result,
        },
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_names_and_every_matcher_kind() {
        let l = labels(&[
            ("__name__", "service:http_errors:ratio_rate1m"),
            ("namespace", "shop"),
            ("service", "checkout"),
        ]);
        for (q, want) in [
            ("service:http_errors:ratio_rate1m", true),
            (
                "service:http_errors:ratio_rate1m{service=\"checkout\"}",
                true,
            ),
            (
                "service:http_errors:ratio_rate1m{service!=\"checkout\"}",
                false,
            ),
            (
                "service:http_errors:ratio_rate1m{service=~\"check.*\"}",
                true,
            ),
            (
                "service:http_errors:ratio_rate1m{service!~\"check.*\"}",
                false,
            ),
            ("{__name__=~\"service:.*\",namespace=\"shop\"}", true),
            ("other_metric", false),
        ] {
            assert_eq!(selector(q).map(|s| s(&l)).unwrap(), want, "{q}");
        }
    }

    #[test]
    fn anything_but_a_selector_is_refused_with_the_way_forward() {
        let err = selector("sum(rate(http_requests_total[1m]))")
            .err()
            .unwrap();
        assert!(
            err.contains("recorded series only") && err.contains("backout-rules.yml"),
            "{err}"
        );
        let err = selector("foo{").err().unwrap();
        assert!(err.starts_with("invalid parameter \"query\""), "{err}");
    }

    #[test]
    fn times_and_steps_parse_as_prometheus_takes_them() {
        assert_eq!(
            parse_time("time", Some(&"1700000000.5".into()), None),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            parse_time("time", Some(&"2023-11-14T22:13:20Z".into()), None),
            Ok(1_700_000_000_000)
        );
        assert!(parse_time("time", Some(&"yesterday".into()), None).is_err());
        assert_eq!(parse_step(Some(&"15s".into())), Ok(15_000));
        assert_eq!(parse_step(Some(&"0.5".into())), Ok(500));
        assert!(parse_step(Some(&"0".into())).is_err());
    }
}
