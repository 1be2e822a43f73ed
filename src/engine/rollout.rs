//! What a Deployment's objects say: rollout progress judged as `kubectl rollout
//! status` judges it, the revision history from its ReplicaSets, and what changed
//! between two revisions' pod templates.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Serialize;

pub use super::kept::{images, Revision, Template, WorkloadSummary};
pub use crate::k8s::template::{CHANGE_CAUSE, DEPLOYED_BY, HASH_LABEL, REVISION};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "message", rename_all = "snake_case")]
pub enum Rollout {
    Progressing(String),
    Complete(String),
    Failed(String),
    Paused(String),
}

impl Rollout {
    pub fn message(&self) -> &str {
        match self {
            Rollout::Progressing(m)
            | Rollout::Complete(m)
            | Rollout::Failed(m)
            | Rollout::Paused(m) => m,
        }
    }
}

/// kubectl's rollout-status logic, message for message; for an Argo Rollout, its
/// phase with the canary's step and weight.
pub fn status(d: &WorkloadSummary) -> Rollout {
    if let Some(canary) = &d.canary {
        return canary_status(d, canary);
    }
    let name = &d.name;
    if d.generation > d.observed_generation {
        return Rollout::Progressing("Waiting for deployment spec update to be observed...".into());
    }
    if d.progress_reason.as_deref() == Some("ProgressDeadlineExceeded") {
        return Rollout::Failed(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    if d.paused {
        return Rollout::Paused(format!("deployment {name:?} is paused"));
    }
    let (spec_replicas, updated, replicas, available) = (
        d.replicas,
        d.updated_replicas,
        d.status_replicas,
        d.available_replicas,
    );
    if updated < spec_replicas {
        return Rollout::Progressing(format!(
            "Waiting for deployment {name:?} rollout to finish: {updated} out of {spec_replicas} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return Rollout::Progressing(format!(
            "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return Rollout::Progressing(format!(
            "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    Rollout::Complete(format!("deployment {name:?} successfully rolled out"))
}

/// An Argo Rollout's progress. An abort is complete once the stable ReplicaSet runs
/// every replica, available, and the canary none: that is the rollback rolled out.
fn canary_status(d: &WorkloadSummary, c: &super::kept::Canary) -> Rollout {
    if d.kind.kube_kind().is_none() {
        return alias_status(d, c);
    }
    let name = &d.name;
    if d.generation > d.observed_generation {
        return Rollout::Progressing("Waiting for rollout spec update to be observed...".into());
    }
    let (step, steps) = c.step;
    if c.aborted {
        let canary_left = d.updated_replicas;
        return match canary_left == 0 && d.available_replicas >= d.replicas {
            true => Rollout::Complete(format!(
                "rollout {name:?} aborted: stable ReplicaSet {} runs all {} replicas",
                c.stable_replicaset, d.replicas
            )),
            false => Rollout::Progressing(format!(
                "Waiting for rollout {name:?} to abort: {canary_left} canary replicas left, {} of {} available...",
                d.available_replicas, d.replicas
            )),
        };
    }
    match c.phase.as_str() {
        "Healthy" => Rollout::Complete(format!("rollout {name:?} is Healthy")),
        "Paused" => Rollout::Paused(format!(
            "rollout {name:?} is paused at step {step} of {steps}, the canary at {}%",
            c.weight
        )),
        "Degraded" => Rollout::Failed(format!("rollout {name:?} is Degraded: {}", c.message)),
        _ => Rollout::Progressing(format!(
            "Waiting for rollout {name:?}: step {step} of {steps}, the canary at {}%...",
            c.weight
        )),
    }
}

/// A Lambda alias moves its traffic in one call: it is complete as soon as it sends
/// none to the version rolled back from, and a weighted alias is a canary that holds.
fn alias_status(d: &WorkloadSummary, c: &super::kept::Canary) -> Rollout {
    let alias = d.handle.as_deref().unwrap_or(&d.name);
    if let Some(status) = d.kind.words().and_then(|w| w.status) {
        return status(d, c);
    }
    if c.in_progress() {
        return Rollout::Paused(format!(
            "alias {alias} sends {}% of its requests to version {} and the rest to version {}",
            c.weight, c.canary_replicaset, c.stable_replicaset
        ));
    }
    Rollout::Complete(format!(
        "alias {alias} sends every request to version {}",
        c.stable_replicaset
    ))
}

/// The revision the Deployment controller has made current (0 before it has).
pub fn revision_of_deployment(d: &Deployment) -> u64 {
    super::kept::revision(&d.metadata)
}

/// Revisions, oldest first.
pub fn history<'a, R: std::borrow::Borrow<Revision> + 'a>(
    revisions: impl IntoIterator<Item = &'a R>,
) -> Vec<Revision> {
    let mut out: Vec<Revision> = revisions.into_iter().map(|r| r.borrow().clone()).collect();
    out.sort_by_key(|r| r.number);
    out
}

/// The revision a plain rollback goes to: the second highest, as `kubectl rollout undo`.
pub fn previous(history: &[Revision]) -> Option<&Revision> {
    history.iter().rev().nth(1)
}

/// One difference between two pod templates, for the diff pane and the blast radius.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub container: String,
    pub field: String,
    pub from: String,
    pub to: String,
}

fn without_hash(t: &PodTemplateSpec) -> serde_json::Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    if let Some(labels) = v["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
        labels.remove(crate::k8s::template::ROLLOUT_HASH_LABEL);
    }
    v
}

fn shown(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "(none)".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The fields of a container that the diff pane and the blast radius name.
const CONTAINER_FIELDS: [&str; 8] = [
    "image",
    "env",
    "envFrom",
    "resources",
    "readinessProbe",
    "livenessProbe",
    "command",
    "args",
];

/// What changes in the pod template going from `from` to `to`: image, env, resources
/// and probes per container, plus anything else in the template as one line.
pub fn diff(from: &PodTemplateSpec, to: &PodTemplateSpec) -> Vec<Change> {
    let (mut a, mut b) = (without_hash(from), without_hash(to));
    let take = |v: &mut serde_json::Value| match v["spec"]
        .as_object_mut()
        .and_then(|s| s.remove("containers"))
    {
        Some(serde_json::Value::Array(c)) => c,
        _ => Vec::new(),
    };
    let (old, new) = (take(&mut a), take(&mut b));
    let mut names: Vec<&serde_json::Value> = Vec::new();
    for c in new.iter().chain(old.iter()) {
        if !names.contains(&&c["name"]) {
            names.push(&c["name"]);
        }
    }
    let mut changes = Vec::new();
    for name in names {
        let find = |list: &[serde_json::Value]| list.iter().find(|c| &c["name"] == name).cloned();
        let (o, n) = (find(&old), find(&new));
        for field in CONTAINER_FIELDS {
            let (fo, fnew) = (o.as_ref().map(|c| &c[field]), n.as_ref().map(|c| &c[field]));
            let (from, to) = (shown(fo), shown(fnew));
            if from != to {
                let container = name.as_str().unwrap_or("").to_string();
                changes.push(Change {
                    container,
                    field: field.into(),
                    from,
                    to,
                });
            }
        }
    }
    if a != b {
        changes.push(Change {
            container: String::new(),
            field: "template".into(),
            from: "…".into(),
            to: "other fields differ".into(),
        });
    }
    changes
}

/// What a pod template refers to by name, beyond itself: ConfigMaps, Secrets, the
/// service account and volume claims, as (kind, name). A rollback switches these
/// references back, but never the objects' contents.
pub fn references(
    template: &PodTemplateSpec,
) -> std::collections::BTreeSet<(&'static str, String)> {
    let t = serde_json::to_value(template).unwrap_or_default();
    let spec = &t["spec"];
    let mut out = std::collections::BTreeSet::new();
    let mut add = |kind: &'static str, name: &serde_json::Value| {
        if let Some(n) = name.as_str() {
            out.insert((kind, n.to_string()));
        }
    };
    let containers = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten());
    for c in containers {
        for from in c["envFrom"].as_array().into_iter().flatten() {
            add("ConfigMap", &from["configMapRef"]["name"]);
            add("Secret", &from["secretRef"]["name"]);
        }
        for env in c["env"].as_array().into_iter().flatten() {
            add("ConfigMap", &env["valueFrom"]["configMapKeyRef"]["name"]);
            add("Secret", &env["valueFrom"]["secretKeyRef"]["name"]);
        }
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        add("ConfigMap", &v["configMap"]["name"]);
        add("Secret", &v["secret"]["secretName"]);
        add(
            "PersistentVolumeClaim",
            &v["persistentVolumeClaim"]["claimName"],
        );
        for source in v["projected"]["sources"].as_array().into_iter().flatten() {
            add("ConfigMap", &source["configMap"]["name"]);
            add("Secret", &source["secret"]["name"]);
        }
    }
    add("ServiceAccount", &spec["serviceAccountName"]);
    out
}

/// The references that differ between `current` and `target`, per kind, as
/// "ConfigMap: cart-config-v2 → cart-config": what a rollback switches back.
pub fn reference_changes(
    current: &PodTemplateSpec,
    target: &PodTemplateSpec,
) -> Vec<(&'static str, Vec<String>, Vec<String>)> {
    let (now, then) = (references(current), references(target));
    let kinds: std::collections::BTreeSet<&'static str> =
        now.iter().chain(then.iter()).map(|(k, _)| *k).collect();
    kinds
        .into_iter()
        .filter_map(|kind| {
            let names = |set: &std::collections::BTreeSet<(&'static str, String)>,
                         other: &std::collections::BTreeSet<(&'static str, String)>|
             -> Vec<String> {
                set.iter()
                    .filter(|(k, n)| *k == kind && !other.contains(&(kind, n.clone())))
                    .map(|(_, n)| n.clone())
                    .collect()
            };
            let (gone, back) = (names(&now, &then), names(&then, &now));
            (!gone.is_empty() || !back.is_empty()).then_some((kind, gone, back))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_compared_by_kind() {
        let template = |config: &str, secret: &str| -> PodTemplateSpec {
            serde_json::from_value(json!({"spec": {"containers": [{"name": "c",
                "envFrom": [{"configMapRef": {"name": config}}],
                "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}}]}],
                "volumes": [{"name": "v", "configMap": {"name": "shared"}}]}}))
            .unwrap()
        };
        let changes = reference_changes(
            &template("cart-config-v2", "s"),
            &template("cart-config", "s"),
        );
        assert_eq!(
            changes,
            [(
                "ConfigMap",
                vec!["cart-config-v2".to_string()],
                vec!["cart-config".to_string()]
            )]
        );
        assert!(references(&template("a", "s")).contains(&("ConfigMap", "shared".to_string())));
    }

    /// A Deployment as it arrives, summarised as the engine keeps it.
    fn deployment(v: serde_json::Value) -> WorkloadSummary {
        WorkloadSummary::of(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn status_follows_kubectl_step_by_step() {
        let base = json!({"metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}});
        assert!(matches!(
            status(&deployment(base.clone())),
            Rollout::Complete(_)
        ));
        let mut waiting = base.clone();
        waiting["status"]["observedGeneration"] = json!(1);
        assert_eq!(
            status(&deployment(waiting)),
            Rollout::Progressing("Waiting for deployment spec update to be observed...".into())
        );
        let mut updating = base.clone();
        updating["status"]["updatedReplicas"] = json!(1);
        assert!(status(&deployment(updating))
            .message()
            .contains("1 out of 3 new replicas have been updated"));
        let mut terminating = base.clone();
        terminating["status"]["replicas"] = json!(4);
        assert!(status(&deployment(terminating))
            .message()
            .contains("1 old replicas are pending termination"));
        let mut unavailable = base.clone();
        unavailable["status"]["availableReplicas"] = json!(2);
        assert!(status(&deployment(unavailable))
            .message()
            .contains("2 of 3 updated replicas are available"));
        let mut failed = base;
        failed["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
        assert_eq!(
            status(&deployment(failed)),
            Rollout::Failed("deployment \"web\" exceeded its progress deadline".into())
        );
    }

    fn template(image: &str, env: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({"metadata": {"labels": {"app": "web", "pod-template-hash": image}},
            "spec": {"containers": [{"name": "web", "image": image, "env": [{"name": "MODE", "value": env}]}]}}))
        .unwrap()
    }

    #[test]
    fn the_diff_names_each_changed_field_and_ignores_the_hash() {
        let changes = diff(&template("web:1", "a"), &template("web:2", "b"));
        let fields: Vec<_> = changes
            .iter()
            .map(|c| (c.container.as_str(), c.field.as_str()))
            .collect();
        assert_eq!(fields, [("web", "image"), ("web", "env")]);
        assert_eq!(
            (changes[0].from.as_str(), changes[0].to.as_str()),
            ("web:1", "web:2")
        );
        assert!(diff(&template("web:1", "a"), &template("web:1", "a")).is_empty());
    }
}
