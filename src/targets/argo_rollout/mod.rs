//! Argo Rollouts' Rollout as a rollback target: the typed object backout watches
//! (the fields it reads, nothing more), and what the engine keeps of it. A Rollout
//! runs its pods through ReplicaSets as a Deployment does, so history, lineage and
//! pods work unchanged; the canary's own state (stable and canary ReplicaSets, the
//! weight, the step, an abort) is read from its status.
//!
//! `revert.rs` is the write side: abort during a canary, undo after promotion.

pub mod revert;

use std::borrow::Cow;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::NamespaceResourceScope;
use serde::{Deserialize, Serialize};

use super::TargetKind;
use crate::engine::kept::{self, Canary, Template, WorkloadSummary};

pub const GROUP: &str = "argoproj.io";
pub const VERSION: &str = "v1alpha1";

/// An `argoproj.io/v1alpha1` Rollout, as far as backout reads it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rollout {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<RolloutSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RolloutStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    pub replicas: Option<i32>,
    pub selector: Option<LabelSelector>,
    /// Absent when the Rollout references a Deployment's template (`workloadRef`).
    pub template: Option<PodTemplateSpec>,
    pub paused: Option<bool>,
    pub strategy: Option<Strategy>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Strategy {
    pub canary: Option<CanaryStrategy>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CanaryStrategy {
    #[serde(default)]
    pub steps: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub abort: Option<bool>,
    pub aborted_at: Option<Time>,
    pub current_pod_hash: Option<String>,
    #[serde(rename = "stableRS")]
    pub stable_rs: Option<String>,
    pub current_step_index: Option<i32>,
    /// A string in Argo's API, unlike a Deployment's.
    pub observed_generation: Option<String>,
    pub phase: Option<String>,
    pub message: Option<String>,
    pub replicas: Option<i32>,
    pub updated_replicas: Option<i32>,
    pub ready_replicas: Option<i32>,
    pub available_replicas: Option<i32>,
}

impl kube::Resource for Rollout {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Rollout".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "rollouts".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Whether the cluster serves Rollouts (the CRD is installed). Asked once when the
/// watchers start; a cluster without Argo Rollouts simply has none.
pub async fn served(client: &kube::Client) -> bool {
    client
        .list_api_group_resources(&format!("{GROUP}/{VERSION}"))
        .await
        .is_ok_and(|list| list.resources.iter().any(|r| r.name == "rollouts"))
}

/// A ReplicaSet's name from the hash Argo names it by.
fn replicaset(rollout: &str, hash: Option<&str>) -> String {
    hash.filter(|h| !h.is_empty())
        .map(|h| format!("{rollout}-{h}"))
        .unwrap_or_default()
}

/// The weight the canary has at step `index`: the last `setWeight` reached.
fn weight_at(steps: &[serde_json::Value], index: usize) -> u32 {
    let reached = (index + 1).min(steps.len());
    steps[..reached]
        .iter()
        .rev()
        .find_map(|s| s["setWeight"].as_u64())
        .unwrap_or(0) as u32
}

/// What the engine keeps of a Rollout.
pub fn summary(ro: &Rollout) -> WorkloadSummary {
    let name = ro.metadata.name.clone().unwrap_or_default();
    let spec = ro.spec.clone().unwrap_or_default();
    let status = ro.status.clone().unwrap_or_default();
    let template = spec.template.as_ref();
    let steps = spec
        .strategy
        .as_ref()
        .and_then(|s| s.canary.as_ref())
        .map(|c| c.steps.as_slice())
        .unwrap_or_default();
    let index = status.current_step_index.unwrap_or(0).max(0) as usize;
    let canary_replicaset = replicaset(&name, status.current_pod_hash.as_deref());
    let stable_replicaset = replicaset(&name, status.stable_rs.as_deref());
    let promoted = canary_replicaset == stable_replicaset;
    let aborted = status.abort == Some(true);
    let weight = match (aborted, promoted) {
        (true, _) => 0,
        (false, true) => 100,
        (false, false) => weight_at(steps, index),
    };
    let phase = status.phase.clone().unwrap_or_default();
    let generation = ro.metadata.generation.unwrap_or(0);
    WorkloadSummary {
        kind: TargetKind::ArgoRollout,
        revision: kept::revision(&ro.metadata),
        generation,
        observed_generation: status
            .observed_generation
            .as_deref()
            .and_then(|g| g.parse().ok())
            .unwrap_or(0),
        paused: spec.paused == Some(true),
        replicas: spec.replicas.unwrap_or(1),
        status_replicas: status.replicas.unwrap_or(0),
        updated_replicas: status.updated_replicas.unwrap_or(0),
        ready_replicas: status.ready_replicas.unwrap_or(0),
        available_replicas: status.available_replicas.unwrap_or(0),
        progress_reason: None,
        template_labels: template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default(),
        references: template.map_or_else(Vec::new, kept::referenced),
        manager: kept::manager(&ro.metadata),
        template: template.and_then(Template::of),
        canary: Some(Canary {
            canary_replicaset,
            stable_replicaset,
            weight,
            step: (index.min(steps.len()), steps.len()),
            aborted,
            aborted_at: status.aborted_at.map(|t| t.0),
            phase,
            message: status.message.unwrap_or_default(),
            record: ro
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::k8s::template::ROLLBACK_RECORD))
                .cloned(),
        }),
        handle: None,
        marked_bad: Vec::new(),
        instances: None,
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout(status: serde_json::Value) -> Rollout {
        serde_json::from_value(json!({
            "metadata": {"name": "checkout", "generation": 4,
                "annotations": {"rollout.argoproj.io/revision": "2"}},
            "spec": {"replicas": 5, "template": {"metadata": {"labels": {"app": "checkout"}},
                "spec": {"containers": [{"name": "checkout", "image": "checkout:1.4.1"}]}},
                "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]}}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_paused_canary_reads_as_its_weight_step_and_two_replicasets() {
        let s = summary(&rollout(json!({"currentPodHash": "c2", "stableRS": "s1",
            "currentStepIndex": 1, "phase": "Paused", "message": "CanaryPauseStep",
            "observedGeneration": "4", "replicas": 5, "readyReplicas": 5})));
        assert_eq!(
            (s.kind, s.revision, s.observed_generation),
            (TargetKind::ArgoRollout, 2, 4)
        );
        let c = s.canary.unwrap();
        assert_eq!(c.canary_replicaset, "checkout-c2");
        assert_eq!(c.stable_replicaset, "checkout-s1");
        assert_eq!((c.weight, c.step), (20, (1, 3)));
        assert!(c.in_progress() && !c.aborted);
    }

    #[test]
    fn an_abort_and_a_promotion_end_the_canary() {
        let aborted = summary(&rollout(json!({"currentPodHash": "c2", "stableRS": "s1",
            "abort": true, "abortedAt": "2026-12-06T01:00:00Z", "phase": "Degraded"})))
        .canary
        .unwrap();
        assert!(aborted.aborted && !aborted.in_progress());
        assert_eq!(aborted.weight, 0);
        assert!(aborted.aborted_at.is_some());
        let promoted = summary(&rollout(json!({"currentPodHash": "c2", "stableRS": "c2",
            "currentStepIndex": 3, "phase": "Healthy"})))
        .canary
        .unwrap();
        assert!(!promoted.in_progress());
        assert_eq!((promoted.weight, promoted.step), (100, (3, 3)));
    }
}
