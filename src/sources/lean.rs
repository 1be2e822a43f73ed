//! Watched objects trimmed as they arrive, before they are buffered or sent: what the
//! engine never reads is not kept. Pods, the most numerous, are read whole into
//! `engine::kept::PodSeen` instead.

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
