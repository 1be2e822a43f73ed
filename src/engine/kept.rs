//! What the engine keeps of the Deployments, ReplicaSets and pods it watches: the
//! facts its readers use, read once as each object arrives, and pod templates as
//! compact JSON. A typed Deployment or ReplicaSet takes about 6 KB however small its
//! template, and a typed pod about 3 KB: at 2,000 services they were most of the
//! console's memory.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::k8s::template::{
    CHANGE_CAUSE, DEPLOYED_BY, REVISION, REVISION_HISTORY, ROLLBACK_RECORD, ROLLOUT_REVISION,
    ROLLOUT_REVISION_HISTORY,
};
pub use crate::targets::TargetKind;

/// What the engine reads of a pod.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PodInfo {
    pub ready: bool,
    pub restarts: i32,
    pub replicaset: String,
    pub created: Option<Timestamp>,
    /// A container waits in CrashLoopBackOff.
    #[serde(default)]
    pub crash_looping: bool,
    /// Since when it has been unready (its Ready condition's last change, else its
    /// creation); `None` while ready.
    #[serde(default)]
    pub unready_since: Option<Timestamp>,
    /// What `kubectl get pods` shows as STATUS when it is not plain "Running": a
    /// container's waiting or terminated reason, the phase, or "Terminating".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<str>>,
    /// How a container's previous run ended: (reason, exit code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<(Box<str>, i32)>,
}

impl PodInfo {
    pub fn status_word(&self) -> &str {
        self.status.as_deref().unwrap_or("Running")
    }
}

/// A pod as it arrives from a watch, read at once (in the source, before a relist's
/// 20,000 are buffered): its name and namespace, and what its status says.
#[derive(Debug, Clone)]
pub struct PodSeen {
    /// Name, namespace and resourceVersion only.
    pub metadata: ObjectMeta,
    /// `None` for a pod no ReplicaSet controls: it belongs to no Deployment.
    pub info: Option<PodInfo>,
}

impl PodSeen {
    pub fn of(pod: &Pod) -> PodSeen {
        let meta = &pod.metadata;
        let replicaset = controller(meta, "ReplicaSet");
        PodSeen {
            metadata: ObjectMeta {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                resource_version: meta.resource_version.clone(),
                ..ObjectMeta::default()
            },
            info: replicaset.map(|rs| pod_info(pod, rs)),
        }
    }
}

fn pod_info(pod: &Pod, replicaset: &str) -> PodInfo {
    let status = pod.status.as_ref();
    let ready_condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let ready = ready_condition.is_some_and(|c| c.status == "True");
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let containers = status.and_then(|s| s.container_statuses.as_ref());
    PodInfo {
        ready,
        restarts: containers.map_or(0, |c| c.iter().map(|c| c.restart_count).sum()),
        replicaset: replicaset.into(),
        created,
        crash_looping: containers.is_some_and(|c| {
            c.iter().any(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
            })
        }),
        unready_since: if ready {
            None
        } else {
            ready_condition
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0)
                .or(created)
        },
        status: status_word(pod),
        last_exit: containers.and_then(|c| {
            c.iter().find_map(|c| {
                let ended = c.last_state.as_ref()?.terminated.as_ref()?;
                let reason = ended.reason.as_deref().unwrap_or("Terminated");
                Some((reason.into(), ended.exit_code))
            })
        }),
    }
}

/// The STATUS column as kubectl prints it, or `None` for "Running".
fn status_word(pod: &Pod) -> Option<Box<str>> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some("Terminating".into());
    }
    let status = pod.status.as_ref()?;
    let container_reason = status.container_statuses.iter().flatten().find_map(|c| {
        let state = c.state.as_ref()?;
        state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .or_else(|| state.terminated.as_ref().and_then(|t| t.reason.clone()))
    });
    match (container_reason, status.phase.as_deref()) {
        (Some(reason), _) => Some(reason.into()),
        (None, Some("Running") | None) => None,
        (None, Some(phase)) => Some(phase.into()),
    }
}

/// The name of the object of `kind` that controls `meta`'s object, if one does.
pub fn controller<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == kind && o.controller == Some(true))
        .map(|o| o.name.as_str())
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The revision an object is annotated with (0 before the controller has set it):
/// the Deployment controller's annotation, or Argo Rollouts'.
pub fn revision(meta: &ObjectMeta) -> u64 {
    annotation(meta, REVISION)
        .or_else(|| annotation(meta, ROLLOUT_REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The images of a template's containers, in order.
pub fn images(template: Option<&PodTemplateSpec>) -> Vec<String> {
    template
        .and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// One revision of a Deployment: what the engine keeps of a ReplicaSet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Revision {
    pub number: u64,
    pub replicaset: String,
    pub images: Vec<String>,
    pub change_cause: Option<String>,
    pub deployed_by: Option<String>,
    pub created: Option<jiff::Timestamp>,
    pub replicas: i32,
    /// Its template was current before, under an earlier number: a rollback to it,
    /// or a build re-deployed.
    pub returned: bool,
    /// The numbers it held before this one, oldest first: a rollback reuses a
    /// ReplicaSet and the controller keeps its old numbers in an annotation.
    #[serde(skip)]
    pub held_before: Vec<u64>,
    /// backout's record of the rollback that made it current, as annotated.
    #[serde(skip)]
    pub rollback_record: Option<String>,
    #[serde(skip)]
    pub template: Option<Template>,
}

/// A pod template as compact JSON: a few hundred bytes where the typed one takes
/// kilobytes, and shared between the copies a history hands out.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(std::sync::Arc<str>);

impl Template {
    pub fn of(template: &PodTemplateSpec) -> Option<Template> {
        serde_json::to_string(template)
            .ok()
            .map(|json| Template(json.into()))
    }

    /// The typed template; it was serialized from one, so it parses.
    pub fn spec(&self) -> Option<PodTemplateSpec> {
        serde_json::from_str(&self.0).ok()
    }
}

impl Revision {
    pub fn of(rs: &ReplicaSet) -> Revision {
        let template = rs.spec.as_ref().and_then(|s| s.template.as_ref());
        let held_before: Vec<u64> = annotation(&rs.metadata, REVISION_HISTORY)
            .or_else(|| annotation(&rs.metadata, ROLLOUT_REVISION_HISTORY))
            .unwrap_or("")
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        Revision {
            number: revision(&rs.metadata),
            replicaset: rs.metadata.name.clone().unwrap_or_default(),
            images: images(template),
            change_cause: annotation(&rs.metadata, CHANGE_CAUSE).map(str::to_string),
            deployed_by: annotation(&rs.metadata, DEPLOYED_BY).map(str::to_string),
            created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
            replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            returned: !held_before.is_empty(),
            held_before,
            rollback_record: annotation(&rs.metadata, ROLLBACK_RECORD).map(str::to_string),
            template: template.and_then(Template::of),
        }
    }
}

/// ConfigMaps and Secrets a pod template reads, as ("ConfigMap" | "Secret", name).
pub fn referenced(template: &PodTemplateSpec) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut add = |kind: &'static str, name: &str| {
        if !out.iter().any(|(k, n)| *k == kind && n == name) {
            out.push((kind, name.to_string()));
        }
    };
    let Some(spec) = template.spec.as_ref() else {
        return out;
    };
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                add("ConfigMap", &r.name);
            }
            if let Some(r) = &from.secret_ref {
                add("Secret", &r.name);
            }
        }
        for env in c.env.iter().flatten() {
            if let Some(r) = env
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
            {
                add("ConfigMap", &r.name);
            }
            if let Some(r) = env
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
            {
                add("Secret", &r.name);
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            add("ConfigMap", &cm.name);
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) {
            add("Secret", name);
        }
    }
    out
}

/// Who else deploys this Deployment: a GitOps controller puts the bad version back
/// after a rollback unless it is told not to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    ArgoCd,
    Flux,
}

/// What the engine keeps of the workload a service runs as: a Deployment, or a kind
/// that works like one over ReplicaSets (an Argo Rollout; see `crate::targets`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSummary {
    pub kind: TargetKind,
    pub name: String,
    /// The revision the Deployment controller has made current (0 before it has).
    pub revision: u64,
    pub generation: i64,
    pub observed_generation: i64,
    pub paused: bool,
    /// Desired replicas (1 when unset, as the API server defaults it).
    pub replicas: i32,
    pub status_replicas: i32,
    pub updated_replicas: i32,
    pub ready_replicas: i32,
    pub available_replicas: i32,
    /// The Progressing condition's reason.
    pub progress_reason: Option<String>,
    pub template_labels: BTreeMap<String, String>,
    /// The ConfigMaps and Secrets its template reads.
    pub references: Vec<(&'static str, String)>,
    pub manager: Option<Manager>,
    pub template: Option<Template>,
    /// A canary under way or aborted (Argo Rollouts, a weighted Lambda alias);
    /// `None` for a Deployment.
    pub canary: Option<Canary>,
    /// The name its own tools use when it is not `name`: a Lambda's `FUNCTION:ALIAS`.
    pub handle: Option<String>,
    /// Revisions marked bad on the object itself, with when: a Lambda function's
    /// known-bad tag, which outlives the alias's record of the rollback.
    pub marked_bad: Vec<(String, Timestamp)>,
    /// For a kind outside the cluster that runs its own instances (a Compose
    /// service's containers): their health as its engine reports it, in place of
    /// pods. `None` for every other kind.
    pub instances: Option<InstanceHealth>,
}

/// The health of a kind's own instances, read from its engine, for the triggers a
/// Deployment's pods feed (`cluster_signals`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceHealth {
    /// When the longest-unready instance stopped being ready: its health check's
    /// failing streak began, or it exited. `None` while every one is ready.
    pub unready_since: Option<Timestamp>,
    /// The most restarts of one instance created in the restart window.
    pub restarts: u32,
    /// Instances restarting after exiting (Docker's crash loop).
    pub restarting: u32,
}

/// Where an Argo Rollouts canary stands, as its status says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Canary {
    /// The ReplicaSet of the template the Rollout is moving to.
    pub canary_replicaset: String,
    /// The ReplicaSet that takes the traffic when the canary is aborted.
    pub stable_replicaset: String,
    /// The share of the replicas the canary runs now, in percent.
    pub weight: u32,
    /// (current step, number of steps).
    pub step: (usize, usize),
    pub aborted: bool,
    pub aborted_at: Option<Timestamp>,
    /// Argo's phase (Healthy, Progressing, Paused, Degraded) and message.
    pub phase: String,
    pub message: String,
    /// backout's record of the abort, annotated on the Rollout before it.
    pub record: Option<String>,
}

impl Canary {
    /// A canary that is neither promoted nor back on stable: the moment to abort.
    pub fn in_progress(&self) -> bool {
        !self.aborted && self.canary_replicaset != self.stable_replicaset
    }
}

impl WorkloadSummary {
    pub fn of(d: &Deployment) -> WorkloadSummary {
        let spec = d.spec.as_ref();
        let status = d.status.as_ref();
        let count = |f: fn(&k8s_openapi::api::apps::v1::DeploymentStatus) -> Option<i32>| {
            status.and_then(f).unwrap_or(0)
        };
        WorkloadSummary {
            kind: TargetKind::Deployment,
            name: d.metadata.name.clone().unwrap_or_default(),
            revision: revision(&d.metadata),
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: status.and_then(|s| s.observed_generation).unwrap_or(0),
            paused: spec.and_then(|s| s.paused) == Some(true),
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            status_replicas: count(|s| s.replicas),
            updated_replicas: count(|s| s.updated_replicas),
            ready_replicas: count(|s| s.ready_replicas),
            available_replicas: count(|s| s.available_replicas),
            progress_reason: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Progressing"))
                .and_then(|c| c.reason.clone()),
            template_labels: spec
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default(),
            references: spec.map_or_else(Vec::new, |s| referenced(&s.template)),
            manager: manager(&d.metadata),
            template: spec.and_then(|s| Template::of(&s.template)),
            canary: None,
            handle: None,
            marked_bad: Vec::new(),
            instances: None,
        }
    }
}

pub(crate) fn manager(meta: &ObjectMeta) -> Option<Manager> {
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    let argo = annotations.contains_key("argocd.argoproj.io/tracking-id")
        || labels.contains_key("argocd.argoproj.io/instance")
        || labels.contains_key("app.kubernetes.io/instance")
            && annotations
                .keys()
                .any(|k| k.starts_with("argocd.argoproj.io/"));
    let flux = labels.keys().any(|k| {
        k.starts_with("kustomize.toolkit.fluxcd.io/") || k.starts_with("helm.toolkit.fluxcd.io/")
    });
    match (argo, flux) {
        (true, _) => Some(Manager::ArgoCd),
        (false, true) => Some(Manager::Flux),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(metadata: serde_json::Value) -> WorkloadSummary {
        let d = json!({"metadata": metadata, "spec": {"selector": {}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:2",
                "envFrom": [{"configMapRef": {"name": "web-config"}}],
                "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "web-key", "key": "k"}}}]}]}}},
            "status": {"observedGeneration": 3, "readyReplicas": 2}});
        WorkloadSummary::of(&serde_json::from_value(d).unwrap())
    }

    #[test]
    fn a_deployment_keeps_what_its_readers_use() {
        let d = summary(json!({"name": "web", "generation": 3,
            "annotations": {"deployment.kubernetes.io/revision": "7"}}));
        assert_eq!((d.name.as_str(), d.revision, d.generation), ("web", 7, 3));
        assert_eq!(
            (d.replicas, d.ready_replicas),
            (1, 2),
            "replicas default to 1"
        );
        assert_eq!(d.template_labels["app"], "web");
        assert_eq!(
            d.references,
            [
                ("ConfigMap", "web-config".to_string()),
                ("Secret", "web-key".to_string())
            ]
        );
        let template = d.template.as_ref().and_then(Template::spec).unwrap();
        assert_eq!(
            images(Some(&template)),
            ["web:2"],
            "the template survives its JSON"
        );
        assert_eq!(d.manager, None);
    }

    #[test]
    fn argo_cd_and_flux_are_recognised_by_their_marks() {
        let argo = [
            json!({"name": "a", "annotations": {"argocd.argoproj.io/tracking-id": "x"}}),
            json!({"name": "a", "labels": {"argocd.argoproj.io/instance": "x"}}),
            json!({"name": "a", "labels": {"app.kubernetes.io/instance": "x"},
                "annotations": {"argocd.argoproj.io/sync-wave": "1"}}),
        ];
        for meta in argo {
            assert_eq!(
                summary(meta.clone()).manager,
                Some(Manager::ArgoCd),
                "{meta}"
            );
        }
        let flux = json!({"name": "a", "labels": {"kustomize.toolkit.fluxcd.io/name": "x"}});
        assert_eq!(summary(flux).manager, Some(Manager::Flux));
        let helm_only = json!({"name": "a", "labels": {"app.kubernetes.io/instance": "x"}});
        assert_eq!(
            summary(helm_only).manager,
            None,
            "an instance label alone is Helm's"
        );
    }

    #[test]
    fn a_pod_is_read_as_it_arrives_into_its_replicaset_and_status() {
        let pod = |owner: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "web-1", "namespace": "shop", "resourceVersion": "7",
                    "creationTimestamp": "2026-12-01T00:00:00Z",
                    "labels": {"app": "web"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner, "name": "web-abc",
                        "uid": "u", "controller": true}]},
                "spec": {"containers": [{"name": "web", "image": "web:2"}]},
                "status": {
                    "conditions": [{"type": "Ready", "status": "False",
                        "lastTransitionTime": "2026-12-01T00:01:00Z"}],
                    "containerStatuses": [
                        {"name": "web", "image": "web:2", "imageID": "", "ready": false, "restartCount": 4,
                         "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                         "lastState": {"terminated": {"reason": "Error", "exitCode": 101}}},
                        {"name": "side", "image": "s", "imageID": "", "ready": true, "restartCount": 1}]}
            }))
            .unwrap()
        };
        let seen = PodSeen::of(&pod("ReplicaSet"));
        assert_eq!(seen.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(seen.metadata.resource_version.as_deref(), Some("7"));
        assert!(
            seen.metadata.labels.is_none(),
            "only what the engine reads is kept"
        );
        let info = seen.info.unwrap();
        assert_eq!(info.replicaset, "web-abc");
        assert_eq!(info.restarts, 5);
        assert!(!info.ready && info.crash_looping);
        assert_eq!(info.status_word(), "CrashLoopBackOff");
        assert_eq!(info.last_exit, Some(("Error".into(), 101)));
        assert_eq!(
            info.unready_since,
            Some("2026-12-01T00:01:00Z".parse().unwrap())
        );
        assert!(
            PodSeen::of(&pod("Job")).info.is_none(),
            "no ReplicaSet, no service"
        );
    }

    #[test]
    fn a_pods_status_word_is_kubectls() {
        let word = |status: serde_json::Value, deleting: bool| {
            let mut pod = json!({"metadata": {"name": "p", "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]}, "status": status});
            if deleting {
                pod["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
            }
            let pod: Pod = serde_json::from_value(pod).unwrap();
            PodSeen::of(&pod).info.unwrap().status_word().to_string()
        };
        let running = json!({"phase": "Running", "containerStatuses": [{"name": "a", "image": "i",
            "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]});
        assert_eq!(word(running.clone(), false), "Running");
        assert_eq!(word(running, true), "Terminating");
        assert_eq!(word(json!({"phase": "Pending"}), false), "Pending");
        let pulling = json!({"phase": "Pending", "containerStatuses": [{"name": "a", "image": "i",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff"}}}]});
        assert_eq!(word(pulling, false), "ImagePullBackOff");
    }
}
