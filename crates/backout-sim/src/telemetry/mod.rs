//! The simulator's metrics: simulated traffic, its Prometheus exposition, and the
//! recorded series served through a Prometheus-compatible query API.

pub mod http;
pub mod promql_math;
pub mod recorded;
pub mod traffic;
pub mod tsdb;

use crate::controller::Behaviours;
use traffic::Traffic;
use tsdb::{Labels, Tsdb};

pub struct Telemetry {
    pub traffic: Traffic,
    pub tsdb: Tsdb,
}

impl Telemetry {
    pub fn new(seed: u64) -> Self {
        Telemetry {
            traffic: Traffic::new(seed),
            tsdb: Tsdb::default(),
        }
    }

    /// Advances traffic by `dt_ms` and records every series at `now_ms`, as one
    /// scrape plus one rule evaluation would in Prometheus.
    pub fn sample(
        &mut self,
        cluster: &impl traffic::Endpoints,
        behaviours: &Behaviours,
        now_ms: u64,
        dt_ms: u64,
    ) {
        self.traffic.advance(cluster, behaviours, now_ms, dt_ms);
        for ((namespace, service), values) in recorded::evaluate(&self.traffic, now_ms) {
            for (name, value) in recorded::ALL.iter().zip(values) {
                let labels: Labels = [
                    ("__name__".to_string(), name.to_string()),
                    ("namespace".to_string(), namespace.clone()),
                    ("service".to_string(), service.clone()),
                ]
                .into();
                self.tsdb.append(labels, now_ms, value);
            }
        }
    }
}
