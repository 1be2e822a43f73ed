//! `pods/{name}/log`: what the scenario's images print, as a kubelet would serve it.
//! Lines are made up on request from the pod's start time and its image's behaviour
//! (one request line a second; errors at the image's error ratio; a panic that ends
//! each run of a crashing image), so nothing is stored and `kubectl logs` works.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::handlers::{is_true, Target};
use super::status::ApiError;
use crate::controller::kubelet;
use crate::controller::unix_ms;
use crate::scenario::ImageBehaviour;
use crate::SimState;

/// Without `tailLines`, the last this many lines: a real kubelet serves the whole
/// file, which here would be a line for every second since the pod started.
const MOST_LINES: u64 = 1_000;

/// The lines of one run of a crashing container: it starts, serves a little, panics.
const CRASH_RUN: [&str; 5] = [
    "level=info msg=\"starting\" version={image}",
    "level=info msg=\"connecting to the database\" host=db:5432",
    "level=warn msg=\"PAYMENTS_URL is not set\"",
    "thread 'main' panicked at src/config.rs:42:10:",
    "called `Result::unwrap()` on an `Err` value: missing required setting PAYMENTS_URL",
];

pub fn serve(
    sim: Arc<SimState>,
    target: &Target,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let name = target.name.as_deref().unwrap_or("");
    let pod = {
        let store = sim.store.lock().expect("store lock");
        store
            .get(target.res, target.namespace.as_deref().unwrap_or(""), name)
            .ok_or_else(|| ApiError::not_found(format!("pods \"{name}\" not found")))?
    };
    let container = container(&pod, name, params.get("container"))?;
    let ask = Ask::of(params);
    let behaviour = sim.behaviours.of(kubelet::image_of(&pod));
    let now = unix_ms();
    let started = kubelet::ready_at(&pod);
    if now < started {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let restarts = kubelet::restarts(&pod);
    if ask.previous && restarts == 0 {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let image = kubelet::image_of(&pod).to_string();
    let text = if behaviour.crash {
        let run = if ask.previous { restarts - 1 } else { restarts };
        let interval = sim.behaviours.crash_interval.as_millis() as u64;
        crash_run(&image, started + run * interval, &ask)
    } else {
        requests(name, &behaviour, started, now, &ask)
    };
    if !ask.follow || behaviour.crash || ask.previous {
        return Ok(plain(Body::from(text)));
    }
    // Follow: what was there, then a line a second until the client goes or the pod does.
    let (ns, pod_name) = (
        target.namespace.clone().unwrap_or_default(),
        name.to_string(),
    );
    let res = target.res;
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(text) });
    let more = futures::stream::unfold(now / 1000 + 1, move |second| {
        let (sim, ns, pod_name, behaviour) =
            (sim.clone(), ns.clone(), pod_name.clone(), behaviour.clone());
        async move {
            let due = second * 1000;
            tokio::time::sleep(Duration::from_millis(due.saturating_sub(unix_ms()))).await;
            let alive = sim
                .store
                .lock()
                .expect("store lock")
                .get(res, &ns, &pod_name);
            alive?;
            let line = request_line(&pod_name, &behaviour, second, ask.timestamps);
            Some((Ok(line), second + 1))
        }
    });
    Ok(plain(Body::from_stream(futures::StreamExt::chain(
        first, more,
    ))))
}

fn plain(body: Body) -> Response {
    ([(CONTENT_TYPE, "text/plain")], body).into_response()
}

/// The query parameters a kubelet reads.
#[derive(Clone, Copy)]
struct Ask {
    previous: bool,
    follow: bool,
    timestamps: bool,
    tail: Option<u64>,
    since_secs: Option<u64>,
}

impl Ask {
    fn of(params: &HashMap<String, String>) -> Ask {
        let number = |k: &str| params.get(k).and_then(|v| v.parse::<i64>().ok());
        Ask {
            previous: is_true(params.get("previous")),
            follow: is_true(params.get("follow")),
            timestamps: is_true(params.get("timestamps")),
            // kubectl sends -1 for "all".
            tail: number("tailLines").and_then(|n| u64::try_from(n).ok()),
            since_secs: number("sinceSeconds").and_then(|n| u64::try_from(n).ok()),
        }
    }

    /// The first second to print, of lines from `first` to `last`.
    fn first_second(&self, first: u64, last: u64, now_secs: u64) -> u64 {
        let tail = self.tail.unwrap_or(MOST_LINES).min(MOST_LINES);
        let by_tail = (last + 1).saturating_sub(tail);
        let by_since = self.since_secs.map_or(0, |s| now_secs.saturating_sub(s));
        first.max(by_tail).max(by_since)
    }
}

/// The container asked for, or the only one; a pod with several needs a name.
fn container(pod: &Value, pod_name: &str, asked: Option<&String>) -> Result<String, ApiError> {
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match (asked, names.as_slice()) {
        (Some(a), _) if names.contains(&a.as_str()) => Ok(a.clone()),
        (Some(a), _) => Err(ApiError::bad_request(format!(
            "container {a} is not valid for pod {pod_name}"
        ))),
        (None, [only]) => Ok((*only).to_string()),
        (None, _) => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// A healthy or erroring server: one request line a second since it started.
fn requests(pod: &str, b: &ImageBehaviour, started_ms: u64, now_ms: u64, ask: &Ask) -> String {
    let (first, last) = (started_ms / 1000, now_ms / 1000);
    let mut out = String::new();
    for second in ask.first_second(first, last, last)..=last {
        out.push_str(&request_line(pod, b, second, ask.timestamps));
    }
    out
}

fn request_line(pod: &str, b: &ImageBehaviour, second: u64, timestamps: bool) -> String {
    let h = hash(pod, second);
    let failed = (h % 10_000) as f64 / 10_000.0 < b.error_ratio;
    let latency = b.latency_p50_ms * (0.5 + (h >> 16) as f64 % 100.0 / 100.0);
    let path = ["/api/orders", "/api/cart", "/api/items", "/healthz"][(h >> 8) as usize % 4];
    let line = if failed {
        format!(
            "level=error msg=\"request failed\" path={path} status=500 latency_ms={latency:.0} error=\"upstream connect error: connection refused\""
        )
    } else {
        format!("level=info msg=\"request served\" path={path} status=200 latency_ms={latency:.0}")
    };
    stamped(second * 1000, &line, timestamps)
}

fn crash_run(image: &str, started_ms: u64, ask: &Ask) -> String {
    let lines: Vec<String> = CRASH_RUN
        .iter()
        .enumerate()
        .map(|(i, l)| {
            stamped(
                started_ms + i as u64 * 50,
                &l.replace("{image}", image),
                ask.timestamps,
            )
        })
        .collect();
    let tail = ask.tail.unwrap_or(MOST_LINES) as usize;
    lines[lines.len().saturating_sub(tail)..].concat()
}

fn stamped(at_ms: u64, line: &str, timestamps: bool) -> String {
    if !timestamps {
        return format!("{line}\n");
    }
    let at = jiff::Timestamp::from_millisecond(at_ms as i64).unwrap_or_default();
    format!("{} {line}\n", at.strftime("%Y-%m-%dT%H:%M:%S.%9fZ"))
}

fn hash(pod: &str, second: u64) -> u64 {
    pod.bytes()
        .chain(second.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(tail: Option<u64>) -> Ask {
        Ask {
            previous: false,
            follow: false,
            timestamps: false,
            tail,
            since_secs: None,
        }
    }

    #[test]
    fn a_bad_image_logs_errors_at_its_ratio_and_a_good_one_rarely() {
        let bad = ImageBehaviour {
            error_ratio: 0.5,
            ..ImageBehaviour::default()
        };
        let good = ImageBehaviour::default();
        let count = |b: &ImageBehaviour| {
            requests("web-1", b, 0, 999_000, &ask(None))
                .lines()
                .filter(|l| l.contains("status=500"))
                .count()
        };
        let (bad, good) = (count(&bad), count(&good));
        assert!(
            (400..600).contains(&bad),
            "{bad} errors in 1,000 lines at 0.5"
        );
        assert!(good < 20, "{good} errors in 1,000 lines at 0.002");
    }

    #[test]
    fn tail_lines_and_the_cap_bound_what_is_served() {
        let b = ImageBehaviour::default();
        assert_eq!(
            requests("p", &b, 0, 9_999_000, &ask(Some(3)))
                .lines()
                .count(),
            3
        );
        let all = requests("p", &b, 0, 9_999_000, &ask(None));
        assert_eq!(all.lines().count() as u64, MOST_LINES);
        assert_eq!(
            requests("p", &b, 5_000, 7_000, &ask(None)).lines().count(),
            3
        );
    }

    #[test]
    fn a_crashing_run_ends_in_its_panic() {
        let run = crash_run("web:crash", 0, &ask(None));
        assert!(run.starts_with("level=info msg=\"starting\" version=web:crash"));
        assert!(run.lines().any(|l| l.contains("panicked at")));
        assert_eq!(crash_run("x", 0, &ask(Some(1))).lines().count(), 1);
    }

    #[test]
    fn timestamps_are_rfc3339_with_nanoseconds() {
        let line = stamped(1_000, "x", true);
        assert_eq!(line, "1970-01-01T00:00:01.000000000Z x\n");
    }
}
