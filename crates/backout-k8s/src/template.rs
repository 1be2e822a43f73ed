//! Pod-template identity: the hash that names a ReplicaSet, the equality that finds
//! a Deployment's new ReplicaSet (and a rollback's target), and revision numbers.

use serde_json::Value;

/// Kubernetes' alphabet for generated names: no vowels, no look-alikes.
pub const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// Who deployed a revision. CI pipelines set it; backout shows it beside change-cause.
pub const DEPLOYED_BY: &str = "backout.dev/deployed-by";
/// backout's record of a rollback it made (JSON): put on the Deployment by the
/// rollback's patch, copied by the controller onto the ReplicaSet it reuses.
pub const ROLLBACK_RECORD: &str = "backout.dev/rollback";
/// The reason of the Event backout posts on every rollback, which timelines show.
pub const EVENT_REASON: &str = "BackoutRollback";
/// Marks a Job as a schema migration, for the migration gate.
pub const MIGRATION: &str = "backout.dev/migration";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Argo Rollouts' own names for the same things: its ReplicaSets carry this hash
/// label and these revision annotations instead of the Deployment controller's.
pub const ROLLOUT_HASH_LABEL: &str = "rollouts-pod-template-hash";
pub const ROLLOUT_REVISION: &str = "rollout.argoproj.io/revision";
pub const ROLLOUT_REVISION_HISTORY: &str = "rollout.argoproj.io/revision-history";

/// Annotations the controller never copies from a Deployment onto its ReplicaSets.
pub const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// Drops nulls and empty maps and lists, so that nil and empty compare equal.
fn pruned(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let m: serde_json::Map<_, _> = m
                .iter()
                .filter_map(|(k, v)| pruned(v).map(|v| (k.clone(), v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => (!a.is_empty())
            .then(|| Value::Array(a.iter().map(|v| pruned(v).unwrap_or(Value::Null)).collect())),
        other => Some(other.clone()),
    }
}

/// The template as it identifies a revision: without the hash label, pruned.
pub fn canonical(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
        labels.remove(ROLLOUT_HASH_LABEL);
    }
    pruned(&t).unwrap_or(Value::Null)
}

pub fn equal(a: &Value, b: &Value) -> bool {
    canonical(a) == canonical(b)
}

/// FNV-1a over the canonical JSON, spelled in Kubernetes' safe alphabet.
pub fn hash(template: &Value) -> String {
    let bytes = serde_json::to_vec(&canonical(template)).expect("JSON values serialize");
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// A Deployment's or ReplicaSet's revision, or an Argo Rollout's (or its
/// ReplicaSet's): 0 before a controller has set one.
pub fn revision(obj: &Value) -> u64 {
    let annotations = &obj["metadata"]["annotations"];
    annotations[REVISION]
        .as_str()
        .or(annotations[ROLLOUT_REVISION].as_str())
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Resolves an int-or-percent like `25%` against `total`, rounding as the controller does.
pub fn int_or_percent(v: &Value, total: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(pct) if round_up => (pct * total + 99) / 100,
            Some(pct) => pct * total / 100,
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// (maxSurge, maxUnavailable) for a rolling update; both zero means unavailable 1.
pub fn surge_and_unavailable(strategy: &Value, replicas: i64) -> (i64, i64) {
    let ru = &strategy["rollingUpdate"];
    let surge = int_or_percent(&ru["maxSurge"], replicas, true);
    let unavailable = int_or_percent(&ru["maxUnavailable"], replicas, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_equal_ignoring_the_hash_label_and_empty_fields() {
        let a = json!({"metadata": {"labels": {"app": "web", HASH_LABEL: "abc"}}, "spec": {"containers": [{"name": "a", "image": "x", "env": []}]}});
        let b = json!({"metadata": {"labels": {"app": "web"}, "annotations": {}}, "spec": {"containers": [{"name": "a", "image": "x"}]}});
        assert!(equal(&a, &b));
        assert_eq!(hash(&a), hash(&b));
        let c = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a", "image": "y"}]}});
        assert!(!equal(&a, &c));
        assert_ne!(hash(&a), hash(&c));
        assert!(hash(&a).bytes().all(|b| SAFE_ALPHABET.contains(&b)));
    }

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        let strategy = json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
        assert_eq!(surge_and_unavailable(&strategy, 3), (1, 0));
        assert_eq!(surge_and_unavailable(&strategy, 4), (1, 1));
        assert_eq!(surge_and_unavailable(&strategy, 10), (3, 2));
        let zero = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}});
        assert_eq!(surge_and_unavailable(&zero, 3), (0, 1));
    }
}
