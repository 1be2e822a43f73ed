//! The ReplicaSet controller: keeps the number of pods at spec.replicas and reports
//! how many are ready and available, running the kubelet over each pod first.

use std::sync::Arc;

use serde_json::{json, Value};

use super::kubelet::{self, Behaviours, READY_AT};
use crate::resources::{PODS, REPLICASETS};
use crate::store::{meta_str, random_suffix, Store};

/// Syncs one ReplicaSet and its pods; returns when it next needs looking at.
pub fn sync(store: &mut Store, rs: &Value, now_ms: u64, behaviours: &Behaviours) -> Option<u64> {
    let uid = meta_str(rs, "uid").to_string();
    let mut wake: Option<u64> = None;
    let mut soonest = |w: Option<u64>| {
        if let Some(w) = w {
            wake = Some(wake.map_or(w, |x: u64| x.min(w)));
        }
    };
    let mut pods: Vec<Arc<Value>> = Vec::new();
    for pod in store.owned_by(&PODS, &uid) {
        let (next, w) = kubelet::step(&pod, now_ms, behaviours);
        soonest(w);
        pods.push(if next == *pod {
            pod
        } else {
            store.update(&PODS, next).unwrap_or(pod)
        });
    }
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    if pods.len() < want {
        for _ in pods.len()..want {
            if let Ok(pod) = store.create(
                &PODS,
                new_pod(rs, now_ms + behaviours.start_delay.as_millis() as u64),
            ) {
                soonest(Some(kubelet::ready_at(&pod)));
                pods.push(pod);
            }
        }
    } else if pods.len() > want {
        // Not-ready pods go first, then the youngest, as the real controller ranks them.
        pods.sort_by_key(|p| {
            (
                kubelet::is_ready(p),
                std::cmp::Reverse(kubelet::ready_at(p)),
            )
        });
        for pod in pods.drain(..pods.len() - want) {
            let _ = store.delete(&PODS, meta_str(&pod, "namespace"), meta_str(&pod, "name"));
        }
    }
    let min_ready_ms = rs["spec"]["minReadySeconds"].as_u64().unwrap_or(0) * 1000;
    let ready = pods.iter().filter(|p| kubelet::is_ready(p)).count();
    let available = pods
        .iter()
        .filter(|p| kubelet::is_ready(p))
        .filter(|p| {
            let at = kubelet::ready_at(p) + min_ready_ms;
            if at > now_ms {
                soonest(Some(at));
            }
            at <= now_ms
        })
        .count();
    let mut next = rs.clone();
    next["status"] = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs["metadata"]["generation"],
    });
    if next != *rs {
        let _ = store.update(&REPLICASETS, next);
    }
    wake
}

fn new_pod(rs: &Value, ready_at_ms: u64) -> Value {
    let template = &rs["spec"]["template"];
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    annotations[READY_AT] = json!(ready_at_ms.to_string());
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!("sim-node-1");
    json!({
        "metadata": {
            "name": format!("{}-{}", meta_str(rs, "name"), random_suffix()),
            "namespace": meta_str(rs, "namespace"),
            "labels": template["metadata"]["labels"],
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": meta_str(rs, "name"),
                "uid": meta_str(rs, "uid"), "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    })
}
