//! Names of things: a service, a source and its health, a kind of Kubernetes object.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServiceKey {
    pub namespace: String,
    /// The Deployment's name, which is also the `service` label of its metrics.
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceId {
    Kubernetes,
    Prometheus,
    Alertmanager,
    /// The Lambda API and MLflow, for the `[[lambda]]` and `[[model]]` aliases.
    Aliases,
}

impl SourceId {
    pub fn label(self) -> &'static str {
        match self {
            SourceId::Kubernetes => "kubernetes",
            SourceId::Prometheus => "prometheus",
            SourceId::Alertmanager => "alertmanager",
            SourceId::Aliases => "aliases",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum SourceHealth {
    Connecting,
    Connected,
    /// Failing; the source retries with backoff.
    Retrying {
        attempt: u32,
        retry_in_secs: u64,
        error: String,
    },
    /// RBAC said no: retrying will not help until someone grants access.
    Forbidden(String),
    /// Not configured, or given up on for a reason a person must fix.
    Unavailable(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum KubeKind {
    Deployment,
    /// Argo Rollouts' Rollout, watched only where its CRD is served.
    Rollout,
    ReplicaSet,
    Pod,
    Job,
    Event,
    Lease,
    Hpa,
    ConfigMap,
    Secret,
}
