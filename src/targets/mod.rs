//! What backout can roll back, side by side. A target is a kind of workload with
//! revisions (ReplicaSets), signals, a blast radius, a revert and a verification:
//!
//! | kind | read from | revert | the command it equals |
//! |---|---|---|---|
//! | Deployment | `apps/v1` Deployments (`engine::kept`) | `actions::rollback` (undo to a revision), or `actions::bluegreen` for a live colour | `kubectl rollout undo` |
//! | Argo Rollout | `argoproj.io/v1alpha1` Rollouts (`argo_rollout`) | abort during a canary, undo after promotion (`argo_rollout::revert`) | `kubectl argo rollouts abort` / `undo` |
//! | Deployment synced from Git (`[[gitops]]`) | as a Deployment | `git revert` of the commit that shipped the image, pushed (`gitops`) | `git revert SHA && git push` |
//!
//! Everything downstream of the summary (`engine::kept::WorkloadSummary`) works over
//! any kind: decisions, the console, `status`, `gate`, `watch` and the report.

pub mod argo_rollout;
pub mod gitops;

use serde::Serialize;

/// The kind of workload a service runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    #[default]
    Deployment,
    ArgoRollout,
}

/// Every kind, in the order the console lists them: the one registration.
pub const KINDS: &[TargetKind] = &[TargetKind::Deployment, TargetKind::ArgoRollout];

impl TargetKind {
    /// The Kubernetes kind its objects carry (and its ReplicaSets' owner).
    pub fn kube_kind(self) -> &'static str {
        match self {
            TargetKind::Deployment => "Deployment",
            TargetKind::ArgoRollout => "Rollout",
        }
    }

    /// How kubectl names one: `deployment/NAME`, `rollout/NAME`.
    pub fn resource(self, name: &str) -> String {
        match self {
            TargetKind::Deployment => format!("deployment/{name}"),
            TargetKind::ArgoRollout => format!("rollout/{name}"),
        }
    }

    /// The short word the service list shows.
    pub fn short(self) -> &'static str {
        match self {
            TargetKind::Deployment => "deploy",
            TargetKind::ArgoRollout => "rollout",
        }
    }

    /// The kind whose object controls a ReplicaSet, by its owner reference's kind.
    pub fn owning(kind: &str) -> Option<TargetKind> {
        KINDS.iter().copied().find(|k| k.kube_kind() == kind)
    }
}
