//! Alerts read from Alertmanager, as the engine keeps them on the service they name.

use jiff::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FiringAlert {
    /// The service and namespace its labels name (`None`: no namespace label, so
    /// it names the service in every watched namespace).
    pub namespace: Option<String>,
    pub service: String,
    pub name: String,
    pub severity: Option<String>,
    /// Its `summary` annotation, else `description`.
    pub summary: Option<String>,
    pub since: Option<Timestamp>,
}

impl FiringAlert {
    pub fn names(&self, namespace: &str, service: &str) -> bool {
        self.service == service && self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }
}

/// The alerts of `alerts` that name `namespace/service`.
pub fn naming(alerts: &[FiringAlert], namespace: &str, service: &str) -> Vec<FiringAlert> {
    alerts
        .iter()
        .filter(|a| a.names(namespace, service))
        .cloned()
        .collect()
}
