//! The Deployment controller, one sync per call, as kube-controller-manager's:
//! find or create the new ReplicaSet (reusing an old one on rollback, which bumps
//! its revision), take one rolling-update step, clean up history, write status.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::kubelet::Behaviours;
use super::replicaset;
use super::Wake;
use crate::resources::{DEPLOYMENTS, REPLICASETS};
use crate::store::{controller_owner, meta_str, now_rfc3339, Store};
use backout_k8s::template::{
    self, DESIRED_REPLICAS, HASH_LABEL, MAX_REPLICAS, NOT_COPIED, REVISION, REVISION_HISTORY,
};

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn replicas(rs: &Value) -> i64 {
    int(&rs["spec"]["replicas"])
}

fn available(rs: &Value) -> i64 {
    int(&rs["status"]["availableReplicas"])
}

fn created(rs: &Value) -> (String, String) {
    (
        meta_str(rs, "creationTimestamp").to_string(),
        meta_str(rs, "name").to_string(),
    )
}

/// Syncs one Deployment; returns when it next needs looking at (unix ms).
pub fn sync(
    store: &mut Store,
    ns: &str,
    name: &str,
    now_ms: u64,
    behaviours: &Behaviours,
) -> Option<u64> {
    let d = store.get(&DEPLOYMENTS, ns, name)?;
    let mut wake = Wake(None);
    for rs in owned(store, &d) {
        wake.add(replicaset::sync(store, &rs, now_ms, behaviours));
    }
    let mut d = (*d).clone();
    let paused = d["spec"]["paused"] == true;
    let mut created_new = false;
    let new_rs = if paused {
        owned(store, &d)
            .into_iter()
            .find(|rs| template::equal(&rs["spec"]["template"], &d["spec"]["template"]))
    } else {
        let (rs, was_created) = ensure_new_rs(store, &mut d);
        created_new = was_created;
        Some(rs)
    };
    if let (Some(new_rs), false) = (&new_rs, paused) {
        let all = owned(store, &d);
        // The ReplicaSet controller acts on a scaling on its own next sync, as the real
        // one does; the status written now must not count pods that do not exist yet,
        // or the Progressing condition misses the progress that follows.
        let scaled = rollout_step(store, &d, new_rs, &all);
        if !scaled && complete(&d, &status_sums(&d, new_rs, &all)) {
            cleanup(store, &d, new_rs, &all);
        }
    }
    let all = owned(store, &d);
    let new_rs = new_rs.and_then(|rs| {
        all.iter()
            .find(|r| meta_str(r, "name") == meta_str(&rs, "name"))
            .cloned()
    });
    wake.add(write_status(
        store,
        d,
        new_rs.as_deref(),
        &all,
        created_new,
        now_ms,
    ));
    wake.0
}

/// ReplicaSets this Deployment controls, oldest first.
fn owned(store: &Store, d: &Value) -> Vec<Arc<Value>> {
    let name = meta_str(d, "name");
    let mut rss: Vec<_> = store
        .owned_by(&REPLICASETS, meta_str(d, "uid"))
        .into_iter()
        .filter(|rs| controller_owner(rs, "Deployment") == Some(name))
        .collect();
    rss.sort_by_key(|rs| created(rs));
    rss
}

fn copied_annotations(d: &Value) -> Map<String, Value> {
    d["metadata"]["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Finds the ReplicaSet whose template is the Deployment's, or creates it, and makes
/// its revision the newest. Returns it and whether it was created.
fn ensure_new_rs(store: &mut Store, d: &mut Value) -> (Arc<Value>, bool) {
    let all = owned(store, d);
    let tmpl = d["spec"]["template"].clone();
    let existing = all
        .iter()
        .find(|rs| template::equal(&rs["spec"]["template"], &tmpl))
        .cloned();
    let max_old = all
        .iter()
        .filter(|rs| {
            existing
                .as_ref()
                .is_none_or(|e| meta_str(e, "name") != meta_str(rs, "name"))
        })
        .map(|rs| template::revision(rs))
        .max()
        .unwrap_or(0);
    let n = int(&d["spec"]["replicas"]);
    let (surge, _) = template::surge_and_unavailable(&d["spec"]["strategy"], n);
    let (rs, was_created) = match existing {
        Some(rs) => {
            let mut next = (*rs).clone();
            let current = template::revision(&rs);
            let mut annotations = copied_annotations(d);
            if let Some(own) = rs["metadata"]["annotations"].as_object() {
                for key in [REVISION_HISTORY] {
                    if let Some(v) = own.get(key) {
                        annotations.insert(key.into(), v.clone());
                    }
                }
            }
            let revision = if current <= max_old {
                // A rollback reuses this ReplicaSet: it becomes the newest revision and
                // remembers the number it had.
                let history = match annotations.get(REVISION_HISTORY).and_then(Value::as_str) {
                    Some(h) if !h.is_empty() => format!("{h},{current}"),
                    _ => current.to_string(),
                };
                annotations.insert(REVISION_HISTORY.into(), json!(history));
                max_old + 1
            } else {
                current
            };
            annotations.insert(REVISION.into(), json!(revision.to_string()));
            annotations.insert(DESIRED_REPLICAS.into(), json!(n.to_string()));
            annotations.insert(MAX_REPLICAS.into(), json!((n + surge).to_string()));
            next["metadata"]["annotations"] = Value::Object(annotations);
            next["spec"]["minReadySeconds"] = d["spec"]["minReadySeconds"].clone();
            let stored = if next == *rs {
                rs
            } else {
                store.update(&REPLICASETS, next).unwrap_or(rs)
            };
            (stored, false)
        }
        None => {
            let hash = template::hash(&tmpl);
            let mut rs_template = tmpl.clone();
            rs_template["metadata"]["labels"][HASH_LABEL] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"][HASH_LABEL] = json!(hash);
            let mut annotations = copied_annotations(d);
            annotations.insert(REVISION.into(), json!((max_old + 1).to_string()));
            annotations.insert(DESIRED_REPLICAS.into(), json!(n.to_string()));
            annotations.insert(MAX_REPLICAS.into(), json!((n + surge).to_string()));
            let rs = json!({
                "metadata": {
                    "name": format!("{}-{hash}", meta_str(d, "name")),
                    "namespace": meta_str(d, "namespace"),
                    "labels": rs_template["metadata"]["labels"],
                    "annotations": annotations,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta_str(d, "name"),
                        "uid": meta_str(d, "uid"), "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": {"replicas": 0, "minReadySeconds": d["spec"]["minReadySeconds"], "selector": selector, "template": rs_template},
            });
            match store.create(&REPLICASETS, rs) {
                Ok(rs) => (rs, true),
                Err(e) => {
                    tracing::warn!(
                        deployment = meta_str(d, "name"),
                        "could not create the new ReplicaSet: {e}"
                    );
                    return (Arc::new(Value::Null), false);
                }
            }
        }
    };
    let revision = template::revision(&rs).to_string();
    if d["metadata"]["annotations"][REVISION] != json!(revision) {
        d["metadata"]["annotations"][REVISION] = json!(revision);
        if let Ok(stored) = store.update(&DEPLOYMENTS, d.clone()) {
            *d = (*stored).clone();
        }
    }
    (rs, was_created)
}

fn set_replicas(store: &mut Store, rs: &Value, n: i64) {
    let mut next = rs.clone();
    next["spec"]["replicas"] = json!(n);
    let _ = store.update(&REPLICASETS, next);
}

/// One step: scale the new ReplicaSet up, or else scale old ones down. Returns whether it scaled.
fn rollout_step(store: &mut Store, d: &Value, new_rs: &Value, all: &[Arc<Value>]) -> bool {
    let n = int(&d["spec"]["replicas"]);
    let new_name = meta_str(new_rs, "name");
    let olds: Vec<&Arc<Value>> = all
        .iter()
        .filter(|rs| meta_str(rs, "name") != new_name)
        .collect();
    let Some(new_rs) = all.iter().find(|rs| meta_str(rs, "name") == new_name) else {
        return false;
    };
    if d["spec"]["strategy"]["type"] == "Recreate" {
        let running: Vec<_> = olds.iter().filter(|rs| replicas(rs) > 0).collect();
        if !running.is_empty() {
            for rs in running {
                set_replicas(store, rs, 0);
            }
            return true;
        }
        if olds.iter().any(|rs| int(&rs["status"]["replicas"]) > 0) || replicas(new_rs) == n {
            return false;
        }
        set_replicas(store, new_rs, n);
        return true;
    }
    let (surge, unavailable) = template::surge_and_unavailable(&d["spec"]["strategy"], n);
    let spec_sum: i64 = all.iter().map(|rs| replicas(rs)).sum();
    let current_new = replicas(new_rs);
    let wanted_new = if current_new < n {
        let room = (n + surge - spec_sum).max(0);
        current_new + room.min(n - current_new)
    } else if olds.iter().all(|rs| replicas(rs) == 0) {
        n
    } else {
        current_new
    };
    if wanted_new != current_new {
        set_replicas(store, new_rs, wanted_new);
        return true;
    }
    let min_available = n - unavailable;
    let new_unavailable = current_new - available(new_rs);
    let max_scaled_down = spec_sum - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return false;
    }
    let mut targets: Vec<(Arc<Value>, i64)> = olds
        .iter()
        .map(|rs| ((*rs).clone(), replicas(rs)))
        .collect();
    // First drop old pods that are not available anyway, then available ones down to the floor.
    let mut cleaned = 0;
    for (rs, want) in targets.iter_mut() {
        let unhealthy = (*want - available(rs)).max(0);
        let cut = unhealthy.min(max_scaled_down - cleaned);
        *want -= cut;
        cleaned += cut;
    }
    let available_total: i64 = all.iter().map(|rs| available(rs)).sum();
    let mut budget = (available_total - min_available)
        .max(0)
        .min(max_scaled_down - cleaned);
    for (_, want) in targets.iter_mut() {
        let cut = (*want).min(budget);
        *want -= cut;
        budget -= cut;
    }
    let mut scaled = false;
    for (rs, want) in targets {
        if want != replicas(&rs) {
            set_replicas(store, &rs, want);
            scaled = true;
        }
    }
    scaled
}

/// Deletes the oldest fully scaled-down ReplicaSets beyond revisionHistoryLimit.
fn cleanup(store: &mut Store, d: &Value, new_rs: &Value, all: &[Arc<Value>]) {
    let limit = d["spec"]["revisionHistoryLimit"]
        .as_i64()
        .unwrap_or(10)
        .max(0) as usize;
    let mut olds: Vec<&Arc<Value>> = all
        .iter()
        .filter(|rs| meta_str(rs, "name") != meta_str(new_rs, "name"))
        .collect();
    if olds.len() <= limit {
        return;
    }
    olds.sort_by_key(|rs| template::revision(rs));
    let excess = olds.len() - limit;
    for rs in olds.into_iter().take(excess) {
        if replicas(rs) == 0 && int(&rs["status"]["replicas"]) == 0 {
            let _ = store.delete(
                &REPLICASETS,
                meta_str(rs, "namespace"),
                meta_str(rs, "name"),
            );
        }
    }
}

struct Sums {
    spec: i64,
    replicas: i64,
    updated: i64,
    ready: i64,
    available: i64,
}

fn status_sums(_d: &Value, new_rs: &Value, all: &[Arc<Value>]) -> Sums {
    let sum = |f: &dyn Fn(&Value) -> i64| all.iter().map(|rs| f(rs)).sum::<i64>();
    let new_name = meta_str(new_rs, "name");
    Sums {
        spec: sum(&|rs| replicas(rs)),
        replicas: sum(&|rs| int(&rs["status"]["replicas"])),
        updated: all
            .iter()
            .filter(|rs| meta_str(rs, "name") == new_name)
            .map(|rs| int(&rs["status"]["replicas"]))
            .sum(),
        ready: sum(&|rs| int(&rs["status"]["readyReplicas"])),
        available: sum(&|rs| available(rs)),
    }
}

fn complete(d: &Value, s: &Sums) -> bool {
    let n = int(&d["spec"]["replicas"]);
    s.updated == n && s.replicas == n && s.available == n
}

fn condition(kind: &str, status: &str, reason: &str, message: String, now: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": message, "lastUpdateTime": now, "lastTransitionTime": now})
}

fn ts_ms(v: &Value) -> Option<u64> {
    v.as_str()?
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond().max(0) as u64)
}

/// Writes observedGeneration, the replica sums and the Available and Progressing
/// conditions; returns when the progress deadline would pass.
fn write_status(
    store: &mut Store,
    d: Value,
    new_rs: Option<&Value>,
    all: &[Arc<Value>],
    created_new: bool,
    now_ms: u64,
) -> Option<u64> {
    let n = int(&d["spec"]["replicas"]);
    let empty = Value::Null;
    let sums = status_sums(&d, new_rs.unwrap_or(&empty), all);
    let (_, unavailable) = template::surge_and_unavailable(&d["spec"]["strategy"], n);
    let now = now_rfc3339();
    let old = &d["status"];
    let old_conditions = old["conditions"].as_array().cloned().unwrap_or_default();
    let find = |kind: &str| old_conditions.iter().find(|c| c["type"] == kind).cloned();
    let keep_transition = |mut c: Value, prior: &Option<Value>| {
        if let Some(p) = prior {
            if p["status"] == c["status"] {
                c["lastTransitionTime"] = p["lastTransitionTime"].clone();
                if p["reason"] == c["reason"] && p["message"] == c["message"] {
                    c["lastUpdateTime"] = p["lastUpdateTime"].clone();
                }
            }
        }
        c
    };
    let available_cond = if sums.available >= n - unavailable {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            &now,
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            &now,
        )
    };
    let available_cond = keep_transition(available_cond, &find("Available"));
    let rs_name = new_rs
        .map(|rs| meta_str(rs, "name").to_string())
        .unwrap_or_default();
    let prior = find("Progressing");
    let deadline_ms = d["spec"]["progressDeadlineSeconds"]
        .as_u64()
        .map(|s| s * 1000);
    let old_old = int(&old["replicas"]) - int(&old["updatedReplicas"]);
    let progressed = sums.updated > int(&old["updatedReplicas"])
        || sums.ready > int(&old["readyReplicas"])
        || sums.available > int(&old["availableReplicas"])
        || old_old > sums.replicas - sums.updated;
    let mut wake = None;
    let progressing = if d["spec"]["paused"] == true {
        Some(condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            &now,
        ))
    } else if complete(&d, &sums) {
        Some(condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            &now,
        ))
    } else if created_new {
        Some(condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set \"{rs_name}\""),
            &now,
        ))
    } else if progressed
        || prior
            .as_ref()
            .is_some_and(|p| p["reason"] == "DeploymentPaused")
    {
        let mut c = condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
            &now,
        );
        if let Some(p) = prior.as_ref().filter(|p| p["status"] == "True") {
            c["lastTransitionTime"] = p["lastTransitionTime"].clone();
        }
        Some(c)
    } else {
        match (&prior, deadline_ms) {
            (Some(p), Some(deadline))
                if p["reason"] != "NewReplicaSetAvailable"
                    && p["reason"] != "ProgressDeadlineExceeded" =>
            {
                let since = ts_ms(&p["lastUpdateTime"]).unwrap_or(now_ms);
                if now_ms >= since + deadline {
                    Some(condition(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                        &now,
                    ))
                } else {
                    wake = Some(since + deadline);
                    Some(p.clone())
                }
            }
            (Some(p), _) => Some(p.clone()),
            (None, _) => None,
        }
    };
    let mut conditions = vec![available_cond];
    if let Some(c) = progressing {
        let c = if c["reason"] == "ReplicaSetUpdated" {
            c
        } else {
            keep_transition(c, &prior)
        };
        conditions.push(c);
    }
    let mut next = d.clone();
    next["status"] = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": sums.replicas,
        "updatedReplicas": sums.updated,
        "readyReplicas": sums.ready,
        "availableReplicas": sums.available,
        "unavailableReplicas": (sums.spec - sums.available).max(0),
        "conditions": conditions,
    });
    if next != d {
        let _ = store.update(&DEPLOYMENTS, next);
    }
    wake
}
