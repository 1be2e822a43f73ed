//! Watched objects trimmed as they arrive, before they are buffered or sent: what the
//! engine never reads is not kept. Pods, the most numerous, are read as a `LeanPod`
//! (metadata and status, no spec) and turned into `engine::kept::PodSeen` at once.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
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

/// A pod as the watcher reads it: the metadata `kept::PodSeen` reads and the status,
/// nothing else. Read whole and typed, a pod's spec and managedFields were most of a
/// relist's time (about 18 µs a pod; 20,000 of them in 40 pages, one after another,
/// before the first full frame).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct LeanPod {
    #[serde(deserialize_with = "pod_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: Option<PodStatus>,
}

impl LeanPod {
    /// The pod `kept::PodSeen` reads: this one's metadata and status, no spec.
    pub fn into_pod(self) -> Pod {
        Pod {
            metadata: self.metadata,
            spec: None,
            status: self.status,
        }
    }
}

impl k8s_openapi::Resource for LeanPod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for LeanPod {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The pod metadata `kept::PodSeen` reads; labels, annotations and managedFields are
/// skipped as they are parsed, never allocated.
fn pod_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Read {
        name: Option<String>,
        namespace: Option<String>,
        resource_version: Option<String>,
        owner_references: Option<Vec<OwnerReference>>,
        creation_timestamp: Option<Time>,
        deletion_timestamp: Option<Time>,
    }
    let read = <Read as serde::Deserialize>::deserialize(d)?;
    Ok(ObjectMeta {
        name: read.name,
        namespace: read.namespace,
        resource_version: read.resource_version,
        owner_references: read.owner_references,
        creation_timestamp: read.creation_timestamp,
        deletion_timestamp: read.deletion_timestamp,
        ..ObjectMeta::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kept::PodSeen;

    /// A pod as the API sends it, with what `LeanPod` skips: a spec, labels,
    /// annotations and managedFields.
    fn pod(deleting: bool) -> serde_json::Value {
        let mut pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-7d4b9-abcde", "namespace": "shop", "resourceVersion": "42",
                "creationTimestamp": "2026-12-06T10:00:00Z",
                "labels": {"app": "web", "pod-template-hash": "7d4b9"},
                "annotations": {"note": "x"},
                "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9", "uid": "u", "controller": true}]
            },
            "spec": {"containers": [{"name": "web", "image": "web:2", "resources": {"limits": {"memory": "512Mi"}}}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-12-06T10:01:00Z"}],
                "containerStatuses": [{
                    "name": "web", "image": "web:2", "imageID": "", "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}
                }]
            }
        });
        if deleting {
            pod["metadata"]["deletionTimestamp"] = "2026-12-06T10:02:00Z".into();
        }
        pod
    }

    #[test]
    fn a_lean_pod_is_seen_as_the_whole_pod_is() {
        for deleting in [false, true] {
            let json = pod(deleting);
            let whole: Pod = serde_json::from_value(json.clone()).expect("a pod");
            let lean: LeanPod = serde_json::from_value(json).expect("a lean pod");
            assert!(lean.metadata.managed_fields.is_none() && lean.metadata.labels.is_none());
            let (whole, lean) = (PodSeen::of(&whole), PodSeen::of(&lean.into_pod()));
            assert_eq!(format!("{whole:?}"), format!("{lean:?}"));
            let info = lean.info.expect("a ReplicaSet's pod");
            assert_eq!(
                (info.replicaset.as_str(), info.restarts, info.crash_looping),
                ("web-7d4b9", 3, true)
            );
            let word = if deleting {
                "Terminating"
            } else {
                "CrashLoopBackOff"
            };
            assert_eq!(info.status_word(), word);
            assert_eq!(lean.metadata.resource_version.as_deref(), Some("42"));
        }
    }
}
