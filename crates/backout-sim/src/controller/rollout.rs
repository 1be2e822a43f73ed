//! A minimal Argo Rollouts controller for the canary strategy without a traffic
//! router, as Argo runs it: the weight is the share of replicas on the canary
//! ReplicaSet. It walks `setWeight` and `pause` steps, promotes the canary to stable
//! after the last step, and on `status.abort` scales the canary away and gives the
//! stable ReplicaSet every replica until the template changes. ReplicaSets are named
//! and labelled by `rollouts-pod-template-hash`, and the status carries the fields
//! `kubectl argo rollouts get rollout` reads.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::kubelet::Behaviours;
use super::replicaset;
use super::Wake;
use crate::resources::{REPLICASETS, ROLLOUTS};
use crate::store::{controller_owner, meta_str, now_rfc3339, Store};
use backout_k8s::template::{
    self, CHANGE_CAUSE, DEPLOYED_BY, ROLLOUT_HASH_LABEL, ROLLOUT_REVISION, ROLLOUT_REVISION_HISTORY,
};

/// Annotations a Rollout passes to the ReplicaSet it creates (Argo copies all but
/// its own bookkeeping; the simulator copies the ones backout reads).
const COPIED: [&str; 3] = [
    CHANGE_CAUSE,
    DEPLOYED_BY,
    backout_k8s::template::ROLLBACK_RECORD,
];

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Syncs one Rollout; returns when a timed pause ends (unix ms).
pub fn sync(
    store: &mut Store,
    ns: &str,
    name: &str,
    now_ms: u64,
    behaviours: &Behaviours,
) -> Option<u64> {
    let ro = store.get(&ROLLOUTS, ns, name)?;
    let mut wake = Wake(None);
    for rs in owned(store, &ro) {
        wake.add(replicaset::sync(store, &rs, now_ms, behaviours));
    }
    let mut ro = (*ro).clone();
    let current = ensure_current_rs(store, &mut ro);
    let all = owned(store, &ro);
    let n = int(&ro["spec"]["replicas"]);
    let current_hash = hash_of(&current);
    let steps = ro["spec"]["strategy"]["canary"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut status = ro["status"].as_object().cloned().unwrap_or_default();
    let stable_hash = match status.get("stableRS").and_then(Value::as_str) {
        // The first template is stable at once: Argo skips the steps on creation.
        None | Some("") => current_hash.clone(),
        Some(h) => h.to_string(),
    };
    if status.get("currentPodHash").and_then(Value::as_str) != Some(current_hash.as_str()) {
        // A new template: a new canary, and whatever abort there was is over.
        status.insert("currentPodHash".into(), json!(current_hash));
        status.insert("currentStepIndex".into(), json!(0));
        for field in ["abort", "abortedAt", "pauseConditions", "controllerPause"] {
            status.remove(field);
        }
    }
    let aborted = status.get("abort") == Some(&json!(true));
    let mut index = status
        .get("currentStepIndex")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    if current_hash == stable_hash {
        index = steps.len();
    } else if aborted {
        index = 0; // an abort reverts every step
    }
    // Advance through the steps the pods already satisfy.
    while !aborted && index < steps.len() {
        let step = &steps[index];
        if step.get("setWeight").is_some() {
            let (canary, stable) = split(n, weight_at(&steps, index));
            scale_to(store, &all, &current_hash, &stable_hash, canary, stable);
            if !settled(store, &ro, &current_hash, &stable_hash, canary, stable) {
                break;
            }
            index += 1;
        } else if let Some(pause) = step.get("pause") {
            match pause_over(&mut status, pause, now_ms) {
                Pause::Over => {
                    status.remove("pauseConditions");
                    status.remove("controllerPause");
                    index += 1;
                }
                Pause::Until(at) => {
                    wake.add(at);
                    break;
                }
            }
        } else {
            index += 1; // analysis and other steps: nothing to simulate
        }
    }
    let promoted = !aborted && index >= steps.len();
    let stable_hash = if promoted {
        current_hash.clone()
    } else {
        stable_hash
    };
    let (canary, stable) = match (aborted, promoted) {
        (true, _) => (0, n),
        (false, true) => (n, 0),
        (false, false) => split(n, weight_at(&steps, index)),
    };
    scale_to(store, &all, &current_hash, &stable_hash, canary, stable);
    status.insert("currentStepIndex".into(), json!(index.min(steps.len())));
    status.insert("stableRS".into(), json!(stable_hash));
    if aborted && !status.contains_key("abortedAt") {
        status.insert("abortedAt".into(), json!(now_rfc3339()));
    }
    write_status(store, ro, status, &current, aborted, promoted);
    wake.0
}

/// The weight in force at step `index`: the last `setWeight` before it.
fn weight_at(steps: &[Value], index: usize) -> i64 {
    steps[..index.min(steps.len()) + usize::from(index < steps.len())]
        .iter()
        .rev()
        .find_map(|s| s["setWeight"].as_i64())
        .unwrap_or(0)
}

/// (canary, stable) replicas for a weight, as Argo's basic canary rounds them.
fn split(n: i64, weight: i64) -> (i64, i64) {
    let canary = (n * weight + 99) / 100;
    (canary.min(n), (n - canary).max(0))
}

enum Pause {
    Over,
    Until(Option<u64>),
}

/// Enters or checks a pause step: a timed one ends by the clock, an indefinite one
/// when someone promotes (clears the pause conditions the controller set).
fn pause_over(status: &mut Map<String, Value>, pause: &Value, now_ms: u64) -> Pause {
    let conditions = status.get("pauseConditions").and_then(Value::as_array);
    let entered = status.get("controllerPause") == Some(&json!(true));
    if entered && conditions.is_none_or(|c| c.is_empty()) {
        return Pause::Over;
    }
    let started = conditions
        .and_then(|c| c.first())
        .and_then(|c| c["startTime"].as_str())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(now_ms, |t| t.as_millisecond().max(0) as u64);
    if !entered {
        status.insert(
            "pauseConditions".into(),
            json!([{"reason": "CanaryPauseStep", "startTime": now_rfc3339()}]),
        );
        status.insert("controllerPause".into(), json!(true));
    }
    let duration = pause["duration"]
        .as_str()
        .and_then(|d| humantime::parse_duration(d).ok())
        .or_else(|| {
            pause["duration"]
                .as_u64()
                .map(std::time::Duration::from_secs)
        });
    match duration {
        Some(d) if now_ms >= started + d.as_millis() as u64 => Pause::Over,
        Some(d) => Pause::Until(Some(started + d.as_millis() as u64)),
        None => Pause::Until(None),
    }
}

fn hash_of(rs: &Value) -> String {
    rs["metadata"]["labels"][ROLLOUT_HASH_LABEL]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// ReplicaSets this Rollout controls, oldest first.
fn owned(store: &Store, ro: &Value) -> Vec<Arc<Value>> {
    let name = meta_str(ro, "name");
    let mut rss: Vec<_> = store
        .owned_by(&REPLICASETS, meta_str(ro, "uid"))
        .into_iter()
        .filter(|rs| controller_owner(rs, "Rollout") == Some(name))
        .collect();
    rss.sort_by_key(|rs| meta_str(rs, "creationTimestamp").to_string());
    rss
}

/// Finds or creates the ReplicaSet of the Rollout's template and makes its revision
/// the newest (a template that comes back keeps its old numbers in the history).
fn ensure_current_rs(store: &mut Store, ro: &mut Value) -> Value {
    let all = owned(store, ro);
    let tmpl = ro["spec"]["template"].clone();
    let existing = all
        .iter()
        .find(|rs| template::equal(&rs["spec"]["template"], &tmpl));
    let max_other = all
        .iter()
        .filter(|rs| existing.is_none_or(|e| meta_str(e, "name") != meta_str(rs, "name")))
        .map(|rs| template::revision(rs))
        .max()
        .unwrap_or(0);
    let rs = match existing {
        Some(rs) if template::revision(rs) > max_other => (**rs).clone(),
        Some(rs) => {
            let mut next = (**rs).clone();
            let old = template::revision(rs);
            let annotations = &mut next["metadata"]["annotations"];
            let history = match annotations[ROLLOUT_REVISION_HISTORY].as_str() {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old.to_string(),
            };
            annotations[ROLLOUT_REVISION_HISTORY] = json!(history);
            annotations[ROLLOUT_REVISION] = json!((max_other + 1).to_string());
            copy_annotations(ro, annotations);
            store
                .update(&REPLICASETS, next.clone())
                .map_or(next, |s| (*s).clone())
        }
        None => {
            let hash = template::hash(&tmpl);
            let mut rs_template = tmpl;
            rs_template["metadata"]["labels"][ROLLOUT_HASH_LABEL] = json!(hash);
            let mut selector = ro["spec"]["selector"].clone();
            selector["matchLabels"][ROLLOUT_HASH_LABEL] = json!(hash);
            let mut annotations = json!({ROLLOUT_REVISION: (max_other + 1).to_string()});
            copy_annotations(ro, &mut annotations);
            let rs = json!({
                "metadata": {
                    "name": format!("{}-{hash}", meta_str(ro, "name")),
                    "namespace": meta_str(ro, "namespace"),
                    "labels": rs_template["metadata"]["labels"],
                    "annotations": annotations,
                    "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                        "name": meta_str(ro, "name"), "uid": meta_str(ro, "uid"),
                        "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": {"replicas": 0, "selector": selector, "template": rs_template},
            });
            match store.create(&REPLICASETS, rs) {
                Ok(rs) => (*rs).clone(),
                Err(e) => {
                    tracing::warn!(
                        rollout = meta_str(ro, "name"),
                        "could not create its ReplicaSet: {e}"
                    );
                    Value::Null
                }
            }
        }
    };
    let revision = template::revision(&rs).to_string();
    if ro["metadata"]["annotations"][ROLLOUT_REVISION] != json!(revision) {
        ro["metadata"]["annotations"][ROLLOUT_REVISION] = json!(revision);
        if let Ok(stored) = store.update(&ROLLOUTS, ro.clone()) {
            *ro = (*stored).clone();
        }
    }
    rs
}

fn copy_annotations(ro: &Value, into: &mut Value) {
    for key in COPIED {
        match ro["metadata"]["annotations"].get(key) {
            Some(v) => into[key] = v.clone(),
            None => {
                if let Some(m) = into.as_object_mut() {
                    m.remove(key);
                }
            }
        }
    }
}

/// Scales the canary and stable ReplicaSets, and every other one to zero.
fn scale_to(
    store: &mut Store,
    all: &[Arc<Value>],
    canary_hash: &str,
    stable_hash: &str,
    canary: i64,
    stable: i64,
) {
    for rs in all {
        let hash = hash_of(rs);
        let want = if hash == canary_hash {
            if canary_hash == stable_hash {
                canary.max(stable)
            } else {
                canary
            }
        } else if hash == stable_hash {
            stable
        } else {
            0
        };
        if int(&rs["spec"]["replicas"]) != want {
            let mut next = (**rs).clone();
            next["spec"]["replicas"] = json!(want);
            let _ = store.update(&REPLICASETS, next);
        }
    }
}

/// Both ReplicaSets have the replicas a step asked for, available.
fn settled(
    store: &Store,
    ro: &Value,
    canary_hash: &str,
    stable_hash: &str,
    canary: i64,
    stable: i64,
) -> bool {
    owned(store, ro).iter().all(|rs| {
        let hash = hash_of(rs);
        let available = int(&rs["status"]["availableReplicas"]);
        match hash {
            h if h == canary_hash => available >= canary,
            h if h == stable_hash => available >= stable,
            _ => int(&rs["status"]["replicas"]) == 0,
        }
    })
}

fn write_status(
    store: &mut Store,
    ro: Value,
    mut status: Map<String, Value>,
    current: &Value,
    aborted: bool,
    promoted: bool,
) {
    let all = owned(store, &ro);
    let sum = |field: &str| -> i64 { all.iter().map(|rs| int(&rs["status"][field])).sum() };
    let current_name = meta_str(current, "name");
    let updated: i64 = all
        .iter()
        .filter(|rs| meta_str(rs, "name") == current_name)
        .map(|rs| int(&rs["status"]["replicas"]))
        .sum();
    let n = int(&ro["spec"]["replicas"]);
    let available = sum("availableReplicas");
    let paused = status.get("controllerPause") == Some(&json!(true));
    let revision = template::revision(current);
    let (phase, message) = if aborted {
        (
            "Degraded",
            format!("RolloutAborted: Rollout aborted update to revision {revision}"),
        )
    } else if paused {
        ("Paused", "CanaryPauseStep".to_string())
    } else if promoted && updated == n && available >= n && sum("replicas") == n {
        ("Healthy", String::new())
    } else {
        (
            "Progressing",
            "more replicas need to be updated".to_string(),
        )
    };
    let selector = ro["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    for (field, value) in [
        ("replicas", json!(sum("replicas"))),
        ("updatedReplicas", json!(updated)),
        ("readyReplicas", json!(sum("readyReplicas"))),
        ("availableReplicas", json!(available)),
        ("HPAReplicas", json!(sum("replicas"))),
        ("selector", json!(selector)),
        (
            "observedGeneration",
            json!(int(&ro["metadata"]["generation"]).to_string()),
        ),
        ("phase", json!(phase)),
        ("message", json!(message)),
        ("canary", json!({})),
    ] {
        status.insert(field.into(), value);
    }
    let progressing = if aborted {
        json!({"type": "Progressing", "status": "False", "reason": "RolloutAborted", "message": message})
    } else if phase == "Healthy" {
        json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
            "message": format!("ReplicaSet \"{current_name}\" has successfully progressed.")})
    } else {
        json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
            "message": format!("ReplicaSet \"{current_name}\" is progressing.")})
    };
    let now = now_rfc3339();
    let old = ro["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let conditions: Vec<Value> = [
        progressing,
        json!({"type": "Available", "status": if available >= n { "True" } else { "False" },
            "reason": "AvailableReason", "message": "Rollout has minimum availability"}),
    ]
    .into_iter()
    .map(|mut c| {
        let prior = old.iter().find(|o| o["type"] == c["type"]);
        let same = prior.filter(|p| p["status"] == c["status"] && p["reason"] == c["reason"]);
        c["lastTransitionTime"] = same.map_or(json!(now), |p| p["lastTransitionTime"].clone());
        c["lastUpdateTime"] = same.map_or(json!(now), |p| p["lastUpdateTime"].clone());
        c
    })
    .collect();
    status.insert("conditions".into(), json!(conditions));
    let mut next = ro.clone();
    next["status"] = Value::Object(status);
    if next != ro {
        let _ = store.update(&ROLLOUTS, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_is_the_last_set_weight_reached() {
        let steps: Vec<Value> = vec![
            json!({"setWeight": 20}),
            json!({"pause": {}}),
            json!({"setWeight": 60}),
        ];
        assert_eq!(weight_at(&steps, 0), 20, "setting 20% is step 0");
        assert_eq!(weight_at(&steps, 1), 20, "paused at 20%");
        assert_eq!(weight_at(&steps, 2), 60);
        assert_eq!(weight_at(&[], 0), 0);
    }

    #[test]
    fn a_weight_rounds_the_canary_up_as_argo_does() {
        assert_eq!(split(5, 20), (1, 4));
        assert_eq!(split(3, 20), (1, 2));
        assert_eq!(split(4, 50), (2, 2));
        assert_eq!(split(2, 100), (2, 0));
        assert_eq!(split(3, 0), (0, 3));
    }
}
