//! The recorded series, computed from the simulated pods' counters exactly as
//! assets/prometheus/backout-rules.yml computes them in a real Prometheus.

use std::collections::BTreeMap;

use super::promql_math::{extrapolated_rate, histogram_quantile, BUCKETS};
use super::traffic::{Counters, PodSeries, Traffic};

pub const REQUEST_RATE: &str = "service:http_requests:rate1m";
pub const ERROR_RATIO: &str = "service:http_errors:ratio_rate1m";
pub const LATENCY_P99: &str = "service:http_request_duration_seconds:p99_1m";
pub const RESTARTS: &str = "service:kube_pod_container_restarts:increase5m";
pub const SLO_BURN: &str = "service:slo_error_budget:burn_rate1m";
pub const CPU: &str = "service:container_cpu_usage:cores_rate1m";
pub const MEMORY: &str = "service:container_memory_working_set:bytes";

/// Every recorded series name, in the order the rules file defines them.
pub const ALL: [&str; 7] = [
    REQUEST_RATE,
    ERROR_RATIO,
    LATENCY_P99,
    RESTARTS,
    SLO_BURN,
    CPU,
    MEMORY,
];

/// The SLO the burn rate is measured against: 99% of requests succeed.
pub const SLO_ERROR_BUDGET: f64 = 0.01;

const MINUTE: u64 = 60_000;

fn rate_of(
    pod: &PodSeries,
    now_ms: u64,
    range_ms: u64,
    per_second: bool,
    field: impl Fn(&Counters) -> f64,
) -> Option<f64> {
    let samples: Vec<(u64, f64)> = pod.history.iter().map(|(t, c)| (*t, field(c))).collect();
    extrapolated_rate(&samples, now_ms, range_ms, per_second)
}

/// Sums per-pod rates as `sum by (...) (rate(...))` does: pods without a rate drop out,
/// and no pod with a rate means no result.
fn sum_rates<'a>(pods: &[&'a PodSeries], f: impl Fn(&'a PodSeries) -> Option<f64>) -> Option<f64> {
    pods.iter()
        .filter_map(|p| f(p))
        .fold(None, |acc, v| Some(acc.unwrap_or(0.0) + v))
}

/// The value of each recorded series per (namespace, service) at `now_ms`.
/// `Some(NaN)` is what Prometheus records for 0/0; `None` means no series at all.
pub fn evaluate(traffic: &Traffic, now_ms: u64) -> BTreeMap<(String, String), [Option<f64>; 7]> {
    let mut by_service: BTreeMap<(String, String), Vec<&PodSeries>> = BTreeMap::new();
    for key in traffic.services() {
        by_service.entry(key.clone()).or_default();
    }
    for pod in traffic.pods.values() {
        by_service
            .entry((pod.namespace.clone(), pod.service.clone()))
            .or_default()
            .push(pod);
    }
    by_service
        .into_iter()
        .map(|(key, pods)| {
            // The app's own series carry `service`, so ended pods count while their
            // samples are in the window; the kube_pod_labels joins see live pods only.
            let live: Vec<&PodSeries> = pods.iter().copied().filter(|p| !p.ended).collect();
            let rate =
                |f: fn(&Counters) -> f64| sum_rates(&pods, |p| rate_of(p, now_ms, MINUTE, true, f));
            let total = rate(|c| c.ok + c.errors);
            let errors = rate(|c| c.errors);
            let ratio = match (errors, total) {
                (Some(e), Some(t)) => Some(e / t), // 0/0 is NaN, as in Prometheus
                _ => None,
            };
            let p99 = {
                let cumulative: Option<Vec<f64>> = (0..BUCKETS.len())
                    .map(|i| {
                        sum_rates(&pods, |p| {
                            rate_of(p, now_ms, MINUTE, true, |c| c.buckets[i])
                        })
                    })
                    .collect();
                cumulative.map(|c| histogram_quantile(0.99, &c).unwrap_or(f64::NAN))
            };
            let restarts = sum_rates(&pods, |p| {
                let samples: Vec<(u64, f64)> = p.restarts.iter().copied().collect();
                extrapolated_rate(&samples, now_ms, 5 * MINUTE, false)
            });
            let burn = ratio.map(|r| r / SLO_ERROR_BUDGET);
            let cpu = sum_rates(&live, |p| {
                rate_of(p, now_ms, MINUTE, true, |c| c.cpu_seconds)
            });
            let memory = sum_rates(&live, |p| p.history.back().map(|(_, c)| c.memory_bytes));
            (key, [total, ratio, p99, restarts, burn, cpu, memory])
        })
        .collect()
}
