//! The simulated control plane: the Deployment, Argo Rollout and ReplicaSet
//! controllers and the kubelet. Each tick syncs the workloads that changed or asked
//! to be woken.

pub mod deployment;
pub mod kubelet;
pub mod replicaset;
pub mod rollout;

use std::collections::HashMap;

use crate::store::{ObjKey, Store};
pub use kubelet::Behaviours;

#[derive(Default)]
pub struct ControlPlane {
    wake_at: HashMap<ObjKey, u64>,
}

impl ControlPlane {
    /// Syncs every workload touched since the last tick or due for a timed check.
    pub fn tick(&mut self, store: &mut Store, now_ms: u64, behaviours: &Behaviours) {
        let mut due = store.take_dirty();
        due.extend(
            self.wake_at
                .iter()
                .filter(|(_, at)| **at <= now_ms)
                .map(|(k, _)| k.clone()),
        );
        due.sort();
        due.dedup();
        for key in due {
            // The name is a Deployment's or a Rollout's; the other sync finds nothing.
            let mut next = Wake(deployment::sync(store, &key.0, &key.1, now_ms, behaviours));
            next.add(rollout::sync(store, &key.0, &key.1, now_ms, behaviours));
            match next.0 {
                Some(at) => self.wake_at.insert(key, at),
                None => self.wake_at.remove(&key),
            };
        }
    }
}

/// The earliest of the times a controller asked to be woken at (unix ms).
pub(crate) struct Wake(pub Option<u64>);

impl Wake {
    pub fn add(&mut self, w: Option<u64>) {
        if let Some(w) = w {
            self.0 = Some(self.0.map_or(w, |x| x.min(w)));
        }
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
