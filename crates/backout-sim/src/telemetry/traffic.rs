//! Simulated request traffic: each Service's requests spread over its ready pods,
//! and each pod's counters grow as its image's behaviour says. This is what the
//! simulator's `/metrics` exports and what the recorded series are computed from.
//! The pods come from an [`Endpoints`] view: the simulator's own store, or the
//! workload half's watch of another API server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::promql_math::BUCKETS;
use crate::controller::kubelet::{self, Behaviours};
use crate::resources::{PODS, SERVICES};
use crate::scenario::{Fault, ImageBehaviour};
use crate::store::{meta_str, Store};
use backout_k8s::selectors::LabelSelector;

/// Counters of one pod, as its app and the kubelet export them.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub ok: f64,
    pub errors: f64,
    pub buckets: [f64; 12],
    pub duration_sum: f64,
    pub restarts: f64,
    pub cpu_seconds: f64,
    pub memory_bytes: f64,
}

#[derive(Debug)]
pub struct PodSeries {
    pub namespace: String,
    pub service: String,
    pub container: String,
    pub now: Counters,
    /// The last minute's samples (and a margin), newest last: the 1 m rate windows.
    pub history: VecDeque<(u64, Counters)>,
    /// The restart count's samples over the 5 m `increase` window, newest last. Only
    /// this one counter is kept that long: whole counters (18 numbers) for six
    /// minutes were 1.5 GB at 20,000 pods.
    pub restarts: VecDeque<(u64, f64)>,
    /// The pod is gone: no new samples, but range windows still see the old ones,
    /// as Prometheus' range vectors see a series that went stale.
    pub ended: bool,
}

/// Which pods serve a Service: what traffic needs to know of the cluster.
pub trait Endpoints {
    /// The pods `namespace/service` selects; `None` when there is no such Service.
    fn pods_of(&self, namespace: &str, service: &str) -> Option<Vec<Arc<Value>>>;

    /// [`Endpoints::pods_of`] for many services at once, in their order. A store
    /// answers from an index built once: scanning every pod for each service is
    /// 40 million selector checks a second at 2,000 services × 20,000 pods.
    fn pods_of_all(&self, services: &[(String, String)]) -> Vec<Option<Vec<Arc<Value>>>> {
        services.iter().map(|(ns, s)| self.pods_of(ns, s)).collect()
    }
}

/// Every traffic service's pods as read at one moment: sampling reads this instead of
/// the store, so the store's lock is not held through a sample (about 200 ms at
/// 20,000 pods, when every list and watch waited on it).
pub struct EndpointsSnapshot(HashMap<(String, String), Option<Vec<Arc<Value>>>>);

impl EndpointsSnapshot {
    pub fn of(cluster: &impl Endpoints, services: Vec<(String, String)>) -> Self {
        let pods = cluster.pods_of_all(&services);
        EndpointsSnapshot(services.into_iter().zip(pods).collect())
    }
}

impl Endpoints for EndpointsSnapshot {
    fn pods_of(&self, namespace: &str, service: &str) -> Option<Vec<Arc<Value>>> {
        self.0
            .get(&(namespace.to_string(), service.to_string()))
            .cloned()
            .flatten()
    }
}

impl Endpoints for Store {
    fn pods_of(&self, namespace: &str, service: &str) -> Option<Vec<Arc<Value>>> {
        let svc = self.get(&SERVICES, namespace, service)?;
        let selector = selector_of(&svc);
        Some(
            self.list(&PODS, Some(namespace))
                .filter(|p| selector.matches(p))
                .cloned()
                .collect(),
        )
    }

    fn pods_of_all(&self, services: &[(String, String)]) -> Vec<Option<Vec<Arc<Value>>>> {
        // (namespace, label key) -> label value -> pods carrying it.
        type ByValue<'a> = HashMap<&'a str, Vec<&'a Arc<Value>>>;
        let mut index: HashMap<(&str, String), ByValue> = HashMap::new();
        services
            .iter()
            .map(|(ns, name)| {
                let svc = self.get(&SERVICES, ns, name)?;
                let selector = selector_of(&svc);
                let Some((key, value)) = selector.required_pair() else {
                    return self.pods_of(ns, name);
                };
                let by_value = index
                    .entry((ns.as_str(), key.to_string()))
                    .or_insert_with(|| {
                        let mut by_value: ByValue = HashMap::new();
                        for pod in self.list(&PODS, Some(ns)) {
                            if let Some(v) = pod["metadata"]["labels"][key].as_str() {
                                by_value.entry(v).or_default().push(pod);
                            }
                        }
                        by_value
                    });
                Some(
                    by_value
                        .get(value)
                        .into_iter()
                        .flatten()
                        .filter(|p| selector.matches(p))
                        .map(|p| Arc::clone(p))
                        .collect(),
                )
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
struct Load {
    rps: f64,
    fault: Option<Fault>,
}

/// How long whole counters are kept: the 1 m rate windows plus a margin.
const HISTORY_MS: u64 = 62 * 1000;
/// How long restart counts are kept: the 5 m restart window plus a margin.
const RESTARTS_MS: u64 = 6 * 60 * 1000;
const MIB: f64 = 1024.0 * 1024.0;

pub struct Traffic {
    services: BTreeMap<(String, String), Load>,
    pub pods: BTreeMap<(String, String), PodSeries>,
    rng: ChaCha8Rng,
}

impl Traffic {
    /// The services traffic is sent to, as (namespace, name).
    pub fn service_keys(&self) -> Vec<(String, String)> {
        self.services.keys().cloned().collect()
    }
}

/// Share of requests at or below `le` seconds: piecewise linear through
/// (0, 0), (p50, 0.5), (p99, 0.99) and (2·p99, 1).
fn latency_cdf(b: &ImageBehaviour, le: f64) -> f64 {
    let (p50, p99) = (
        b.latency_p50_ms / 1000.0,
        b.latency_p99_ms.max(b.latency_p50_ms) / 1000.0,
    );
    let points = [(0.0, 0.0), (p50, 0.5), (p99, 0.99), (2.0 * p99, 1.0)];
    if le >= points[3].0 {
        return 1.0;
    }
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if le <= x1 {
            return if x1 > x0 {
                y0 + (y1 - y0) * (le - x0) / (x1 - x0)
            } else {
                y1
            };
        }
    }
    1.0
}

fn mean_latency(b: &ImageBehaviour) -> f64 {
    let (p50, p99) = (b.latency_p50_ms / 1000.0, b.latency_p99_ms / 1000.0);
    0.5 * p50 / 2.0 + 0.49 * (p50 + p99) / 2.0 + 0.01 * 1.5 * p99
}

impl Traffic {
    pub fn new(seed: u64) -> Self {
        Traffic {
            services: BTreeMap::new(),
            pods: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn set_rps(&mut self, namespace: &str, service: &str, rps: f64) {
        self.services
            .entry((namespace.into(), service.into()))
            .or_default()
            .rps = rps;
    }

    pub fn set_fault(&mut self, namespace: &str, fault: Fault) {
        let key = (namespace.to_string(), fault.service.clone());
        self.services.entry(key).or_default().fault = Some(fault);
    }

    /// Ends the fault on `namespace/service`: its images behave as they do again.
    pub fn clear_fault(&mut self, namespace: &str, service: &str) {
        if let Some(load) = self
            .services
            .get_mut(&(namespace.to_string(), service.to_string()))
        {
            load.fault = None;
        }
    }

    /// The services receiving traffic, as (namespace, name).
    pub fn services(&self) -> impl Iterator<Item = &(String, String)> {
        self.services.keys()
    }

    /// Advances every counter by `dt_ms` of traffic ending at `now_ms`.
    pub fn advance(
        &mut self,
        cluster: &impl Endpoints,
        behaviours: &Behaviours,
        now_ms: u64,
        dt_ms: u64,
    ) {
        let dt = dt_ms as f64 / 1000.0;
        let mut seen = std::collections::HashSet::new();
        let services: Vec<_> = self
            .services
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let keys: Vec<(String, String)> = services.iter().map(|(k, _)| k.clone()).collect();
        let endpoints = cluster.pods_of_all(&keys);
        for (((ns, name), load), pods) in services.into_iter().zip(endpoints) {
            let Some(pods) = pods else {
                continue;
            };
            let ready = pods.iter().filter(|p| kubelet::is_ready(p)).count();
            let jitter: f64 = self.rng.random_range(-1.0..=1.0);
            for pod in pods {
                let key = (ns.clone(), meta_str(&pod, "name").to_string());
                seen.insert(key.clone());
                let mut b = behaviours.of(kubelet::image_of(&pod));
                if let Some(f) = &load.fault {
                    b.error_ratio = f.error_ratio.unwrap_or(b.error_ratio);
                    b.latency_p99_ms = f.latency_p99_ms.unwrap_or(b.latency_p99_ms);
                }
                let is_ready = kubelet::is_ready(&pod);
                let n = if is_ready && ready > 0 {
                    load.rps * dt / ready as f64
                } else {
                    0.0
                };
                let ratio = (b.error_ratio * (1.0 + b.error_noise * jitter)).clamp(0.0, 1.0);
                let series = self.pods.entry(key).or_insert_with(|| PodSeries {
                    namespace: ns.clone(),
                    service: name.clone(),
                    container: pod["spec"]["containers"][0]["name"]
                        .as_str()
                        .unwrap_or("app")
                        .to_string(),
                    now: Counters::default(),
                    history: VecDeque::new(),
                    restarts: VecDeque::new(),
                    ended: false,
                });
                let c = &mut series.now;
                c.ok += n * (1.0 - ratio);
                c.errors += n * ratio;
                for (i, le) in BUCKETS.iter().enumerate() {
                    c.buckets[i] += n * latency_cdf(&b, *le);
                }
                c.duration_sum += n * mean_latency(&b);
                c.restarts = kubelet::restarts(&pod) as f64;
                let cores = if is_ready {
                    b.cpu_millicores / 1000.0
                } else {
                    0.01
                };
                c.cpu_seconds += cores * dt;
                let minutes_up = now_ms.saturating_sub(kubelet::ready_at(&pod)) as f64 / 60_000.0;
                c.memory_bytes = if is_ready {
                    (b.memory_mb + b.memory_growth_mb_per_min * minutes_up) * MIB
                } else {
                    20.0 * MIB
                };
                series.history.push_back((now_ms, c.clone()));
                series.restarts.push_back((now_ms, c.restarts));
                forget_before(&mut series.history, now_ms.saturating_sub(HISTORY_MS));
                forget_before(&mut series.restarts, now_ms.saturating_sub(RESTARTS_MS));
            }
        }
        // A deleted pod's series end; they are forgotten once no window reaches them.
        for (key, series) in self.pods.iter_mut() {
            series.ended = !seen.contains(key);
        }
        self.pods.retain(|_, s| {
            !s.ended
                || s.restarts
                    .back()
                    .is_some_and(|(t, _)| *t + RESTARTS_MS >= now_ms)
        });
    }
}

/// Drops the samples taken before `oldest`, and most of the spare room: at 20,000
/// pods a doubled deque's spare half is hundreds of MB. A little room stays, so a
/// steady window (one sample in, one out) does not reallocate.
fn forget_before<T>(samples: &mut VecDeque<(u64, T)>, oldest: u64) {
    while samples.front().is_some_and(|(t, _)| *t < oldest) {
        samples.pop_front();
    }
    if samples.capacity() > samples.len() + samples.len() / 4 + 8 {
        samples.shrink_to(samples.len() + 4);
    }
}

pub fn selector_of(svc: &Value) -> LabelSelector {
    let raw = backout_k8s::selectors::from_labels(&svc["spec"]["selector"]);
    // An empty selector would select every pod; a Service without one selects none.
    LabelSelector::parse(if raw.is_empty() {
        "!__none__,__none__"
    } else {
        &raw
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_latency_distribution_has_the_configured_quantiles() {
        let b = ImageBehaviour {
            latency_p50_ms: 100.0,
            latency_p99_ms: 1000.0,
            ..Default::default()
        };
        assert!((latency_cdf(&b, 0.1) - 0.5).abs() < 1e-9);
        assert!((latency_cdf(&b, 1.0) - 0.99).abs() < 1e-9);
        assert_eq!(latency_cdf(&b, f64::INFINITY), 1.0);
        assert!(latency_cdf(&b, 0.05) < latency_cdf(&b, 0.25));
    }

    #[test]
    fn the_indexed_endpoints_are_the_scanned_ones() {
        let mut store = Store::new(100);
        let ns = json!({"metadata": {"name": "shop"}});
        store.create(&crate::resources::NAMESPACES, ns).unwrap();
        for (svc, selector) in [
            ("a", json!({"app": "a"})),
            ("b", json!({"app": "b", "tier": "web"})),
        ] {
            let service = json!({"metadata": {"name": svc, "namespace": "shop"}, "spec": {"selector": selector}});
            store.create(&SERVICES, service).unwrap();
        }
        for (pod, labels) in [
            ("a-1", json!({"app": "a"})),
            ("a-2", json!({"app": "a", "tier": "web"})),
            ("b-1", json!({"app": "b", "tier": "web"})),
            ("b-2", json!({"app": "b"})),
            ("c-1", json!({"app": "c"})),
        ] {
            let p = json!({"metadata": {"name": pod, "namespace": "shop", "labels": labels}});
            store.create(&PODS, p).unwrap();
        }
        let services: Vec<(String, String)> = ["a", "b", "missing"]
            .iter()
            .map(|s| ("shop".to_string(), s.to_string()))
            .collect();
        let names = |pods: Option<Vec<Arc<Value>>>| {
            pods.map(|ps| {
                ps.iter()
                    .map(|p| meta_str(p, "name").to_string())
                    .collect::<Vec<_>>()
            })
        };
        let indexed: Vec<_> = store
            .pods_of_all(&services)
            .into_iter()
            .map(names)
            .collect();
        let scanned: Vec<_> = services
            .iter()
            .map(|(ns, s)| names(store.pods_of(ns, s)))
            .collect();
        assert_eq!(indexed, scanned);
        assert_eq!(
            indexed,
            [
                Some(vec!["a-1".to_string(), "a-2".to_string()]),
                Some(vec!["b-1".to_string()]),
                None
            ]
        );
    }
}

#[cfg(test)]
mod kept_samples {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_keeps_a_minute_of_counters_and_five_minutes_of_restarts_however_long_it_runs() {
        let mut store = Store::new(100);
        let ns = json!({"metadata": {"name": "shop"}});
        store.create(&crate::resources::NAMESPACES, ns).unwrap();
        let service = json!({"metadata": {"name": "web", "namespace": "shop"}, "spec": {"selector": {"app": "web"}}});
        store.create(&SERVICES, service).unwrap();
        let pod =
            json!({"metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}}});
        store.create(&PODS, pod).unwrap();
        let mut traffic = Traffic::new(1);
        traffic.set_rps("shop", "web", 10.0);
        let behaviours = Behaviours::default();
        let second = 1_000;
        let mut now = 1_000_000;
        for _ in 0..(20 * 60) {
            now += second;
            traffic.advance(&store, &behaviours, now, second);
        }
        let series = &traffic.pods[&("shop".to_string(), "web-1".to_string())];
        let span = |times: Vec<u64>| times.last().unwrap() - times.first().unwrap();
        let counters: Vec<u64> = series.history.iter().map(|(t, _)| *t).collect();
        let restarts: Vec<u64> = series.restarts.iter().map(|(t, _)| *t).collect();
        assert!(span(counters.clone()) <= HISTORY_MS && span(counters) >= 60_000);
        assert!(span(restarts.clone()) <= RESTARTS_MS && span(restarts) >= 5 * 60_000);
        let (len, capacity) = (series.history.len(), series.history.capacity());
        assert!(capacity <= len + len / 4 + 8, "{len} kept in {capacity}");
        let (len, capacity) = (series.restarts.len(), series.restarts.capacity());
        assert!(capacity <= len + len / 4 + 8, "{len} kept in {capacity}");
        // The windows the recorded series read still see what they need.
        let recorded = super::super::recorded::evaluate(&traffic, now);
        let values = recorded[&("shop".to_string(), "web".to_string())];
        assert_eq!(values[3], Some(0.0), "no restarts in five minutes");
    }
}
