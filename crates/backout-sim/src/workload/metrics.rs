//! The workload half's traffic: each scenario Service's requests spread over the pods
//! it selects on the API server, advanced every second and served at `/metrics` in
//! the text format, for a real Prometheus to scrape with
//! assets/prometheus/backout-rules.yml. The model is the simulator's own
//! (`telemetry::traffic`); only where the pods come from differs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use crate::controller::kubelet::Behaviours;
use crate::scenario::Scenario;
use crate::telemetry::http::{exposition, exposition_response};
use crate::telemetry::traffic::{selector_of, Endpoints, Traffic};

use super::watched;

/// How often traffic advances: Prometheus' 1 s scrapes see every step.
const STEP: Duration = Duration::from_secs(1);

/// The scenario's traffic, shared by the exporter and whoever plays the scenario's
/// traffic changes and faults.
pub type SharedTraffic = Arc<Mutex<Traffic>>;

pub struct Exporter {
    client: Client,
    namespace: String,
    traffic: SharedTraffic,
    behaviours: Behaviours,
}

impl Exporter {
    /// Traffic at each of the scenario's Services' rates, with noise from `seed`.
    pub fn new(client: Client, scenario: &Scenario, seed: u64) -> Exporter {
        let mut traffic = Traffic::new(seed);
        for svc in &scenario.services {
            traffic.set_rps(&scenario.namespace, &svc.name, svc.rps);
        }
        Exporter {
            client,
            namespace: scenario.namespace.clone(),
            traffic: Arc::new(Mutex::new(traffic)),
            behaviours: Behaviours::from_scenario(scenario),
        }
    }

    pub fn traffic(&self) -> SharedTraffic {
        self.traffic.clone()
    }

    /// Serves `/metrics` on `listener` and advances traffic until the task is dropped.
    pub async fn run(self, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        let pods = watched::<Pod>(Api::namespaced(self.client.clone(), &self.namespace));
        let services = watched::<Service>(Api::namespaced(self.client.clone(), &self.namespace));
        let app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(self.traffic.clone());
        let _server = super::AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!("the workload's /metrics server: {e}");
            }
        }));
        let mut every = tokio::time::interval(STEP);
        let mut last = tokio::time::Instant::now();
        loop {
            every.tick().await;
            let now = tokio::time::Instant::now();
            let dt_ms = now.duration_since(last).as_millis() as u64;
            last = now;
            let view = Watched::of(&pods.0, &services.0);
            let now_ms = jiff::Timestamp::now().as_millisecond().max(0) as u64;
            self.traffic.lock().expect("traffic lock").advance(
                &view,
                &self.behaviours,
                now_ms,
                dt_ms,
            );
        }
    }
}

async fn metrics(State(traffic): State<SharedTraffic>) -> axum::response::Response {
    let body = exposition(&traffic.lock().expect("traffic lock"));
    exposition_response(body)
}

/// One step's snapshot of the watched Services and pods, as JSON like the store's.
struct Watched {
    services: BTreeMap<(String, String), Value>,
    pods: Vec<Arc<Value>>,
}

impl Watched {
    fn of(pods: &Store<Pod>, services: &Store<Service>) -> Watched {
        let json = |o: &Service| serde_json::to_value(o).unwrap_or_default();
        Watched {
            services: services
                .state()
                .iter()
                .map(|s| ((s.namespace().unwrap_or_default(), s.name_any()), json(s)))
                .collect(),
            pods: pods
                .state()
                .iter()
                .map(|p| Arc::new(serde_json::to_value(&**p).unwrap_or_default()))
                .collect(),
        }
    }
}

impl Endpoints for Watched {
    fn pods_of(&self, namespace: &str, service: &str) -> Option<Vec<Arc<Value>>> {
        let svc = self
            .services
            .get(&(namespace.to_string(), service.to_string()))?;
        let selector = selector_of(svc);
        let in_namespace = |p: &&Arc<Value>| p["metadata"]["namespace"] == namespace;
        Some(
            self.pods
                .iter()
                .filter(in_namespace)
                .filter(|p| selector.matches(p))
                .cloned()
                .collect(),
        )
    }
}
