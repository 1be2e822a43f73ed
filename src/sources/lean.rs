//! Watched objects trimmed as they arrive, before they are buffered or sent: what the
//! engine never reads is not kept. At 20,000 pods this is most of the memory.

use k8s_openapi::api::core::v1::Pod;
use kube::Resource;

/// `kubectl apply`'s copy of the whole object, which backout never reads.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An object without what backout never reads and the server repeats on every
/// object (managedFields, the last-applied copy): often half its size.
pub fn lean<K: Resource>(mut object: K) -> K {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(LAST_APPLIED);
    }
    object
}

/// A pod as the engine reads it: who owns it, when it was made, and its readiness,
/// restarts and container states. Pods are the most numerous objects by far, and
/// their specs are never read.
pub fn lean_pod(pod: Pod) -> Pod {
    use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let meta = pod.metadata;
    let status = pod.status.map(|s| PodStatus {
        phase: s.phase,
        conditions: s.conditions,
        start_time: s.start_time,
        container_statuses: s.container_statuses.map(|all| {
            all.into_iter()
                .map(|c| ContainerStatus {
                    name: c.name,
                    ready: c.ready,
                    restart_count: c.restart_count,
                    state: c.state,
                    last_state: c.last_state,
                    ..ContainerStatus::default()
                })
                .collect()
        }),
        ..PodStatus::default()
    });
    Pod {
        metadata: ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            owner_references: meta.owner_references,
            creation_timestamp: meta.creation_timestamp,
            deletion_timestamp: meta.deletion_timestamp,
            resource_version: meta.resource_version,
            ..ObjectMeta::default()
        },
        spec: None,
        status,
    }
}
