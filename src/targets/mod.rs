//! What backout can roll back, side by side. A target is a kind of workload with
//! revisions (ReplicaSets), signals, a blast radius, a revert and a verification:
//!
//! | kind | read from | revert | the command it equals |
//! |---|---|---|---|
//! | Deployment | `apps/v1` Deployments (`engine::kept`) | `actions::rollback` (undo to a revision), or `actions::bluegreen` for a live colour | `kubectl rollout undo` |
//! | Argo Rollout | `argoproj.io/v1alpha1` Rollouts (`argo_rollout`) | abort during a canary, undo after promotion (`argo_rollout::revert`) | `kubectl argo rollouts abort` / `undo` |
//! | Deployment synced from Git (`[[gitops]]`) | as a Deployment | `git revert` of the commit that shipped the image, pushed (`gitops`) | `git revert SHA && git push` |
//! | Deployment whose code reads a feature flag (`[[flag]]`), the flag turned on lately | as a Deployment, and the flag from Unleash (`sources::flags`) | turn the flag off: the kill switch (`flag`) | `curl -X POST …/environments/ENV/off` |
//! | MLflow model alias (`[[model]]`) | the MLflow REST API, polled (`sources::aliases`) | one alias write back to the previous version (`model`) | `MlflowClient().set_registered_model_alias(…)` |
//! | AWS Lambda alias (`[[lambda]]`) | the Lambda API, polled (`sources::aliases`) | one `UpdateAlias` back to the stable or previous version (`lambda::revert`) | `aws lambda update-alias` |
//! | Docker Compose service (`[[compose]]`) | the Docker Engine API, polled (`sources::aliases`) | its containers recreated on the previous image (`compose::revert`) | `docker compose up -d --no-deps` |
//!
//! Everything downstream of the summary (`engine::kept::WorkloadSummary`) works over
//! any kind: decisions, the console, `status`, `gate`, `watch` and the report. A kind
//! outside the cluster is told in its own words (`words::Words`), kept beside it.
//! Adding such a kind touches its own file or folder here, the registration below
//! (`TargetKind`, `KINDS`, `words`), its `[[section]]` in `config/`, and the two
//! dispatchers: the reader (`sources::aliases`) and the writer (`actions::alias_shift`).

pub mod alias;
pub mod argo_rollout;
pub mod compose;
pub mod flag;
pub mod gitops;
pub mod lambda;
pub mod model;
pub mod words;

use serde::Serialize;

use crate::engine::rollbacks::RollbackError;

/// A failed call to a kind's own API (Lambda's, a Docker engine's), worded for the
/// person reading it and sorted the way a rollback must treat it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    /// What the call was pinned to changed since it was read.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Other(String),
}

impl TargetError {
    /// The same failure, with what was done about it.
    pub fn and(self, done: &str) -> TargetError {
        let add = |m: String| format!("{m}; {done}");
        match self {
            TargetError::NotFound(m) => TargetError::NotFound(add(m)),
            TargetError::Forbidden(m) => TargetError::Forbidden(add(m)),
            TargetError::Conflict(m) => TargetError::Conflict(add(m)),
            TargetError::Other(m) => TargetError::Other(add(m)),
        }
    }
}

impl From<TargetError> for RollbackError {
    fn from(e: TargetError) -> RollbackError {
        match e {
            TargetError::NotFound(m) => RollbackError::NotFound(m),
            TargetError::Forbidden(m) => RollbackError::Forbidden(m),
            TargetError::Conflict(m) => RollbackError::Conflict(m),
            TargetError::Other(m) => RollbackError::Api(m),
        }
    }
}

/// The kind of workload a service runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    #[default]
    Deployment,
    ArgoRollout,
    LambdaAlias,
    ModelAlias,
    ComposeService,
}

/// Every kind, in the order the console lists them: the one registration.
pub const KINDS: &[TargetKind] = &[
    TargetKind::Deployment,
    TargetKind::ArgoRollout,
    TargetKind::LambdaAlias,
    TargetKind::ModelAlias,
    TargetKind::ComposeService,
];

impl TargetKind {
    /// The Kubernetes kind its objects carry (and its ReplicaSets' owner); `None`
    /// for a kind that lives outside the cluster.
    pub fn kube_kind(self) -> Option<&'static str> {
        match self {
            TargetKind::Deployment => Some("Deployment"),
            TargetKind::ArgoRollout => Some("Rollout"),
            TargetKind::LambdaAlias | TargetKind::ModelAlias | TargetKind::ComposeService => None,
        }
    }

    /// How its own tools name one: `deployment/NAME`, `rollout/NAME`, `alias FN:ALIAS`.
    pub fn resource(self, name: &str) -> String {
        match self {
            TargetKind::Deployment => format!("deployment/{name}"),
            TargetKind::ArgoRollout => format!("rollout/{name}"),
            TargetKind::LambdaAlias => format!("alias {name}"),
            TargetKind::ModelAlias => format!("model alias {name}"),
            TargetKind::ComposeService => format!("compose service {name}"),
        }
    }

    /// The qualified name a rollback's result line uses, as kubectl prints it.
    pub fn qualified(self) -> &'static str {
        match self {
            TargetKind::Deployment => "deployment.apps",
            TargetKind::ArgoRollout => "rollout.argoproj.io",
            TargetKind::LambdaAlias => "lambda alias",
            TargetKind::ModelAlias => "mlflow model alias",
            TargetKind::ComposeService => "compose service",
        }
    }

    /// How the kind's revert is told, for a kind outside the cluster (`None` for a
    /// Deployment or a Rollout, whose words are the cluster's).
    pub fn words(self) -> Option<&'static words::Words> {
        match self {
            TargetKind::Deployment | TargetKind::ArgoRollout => None,
            TargetKind::LambdaAlias => Some(&lambda::WORDS),
            TargetKind::ModelAlias => Some(&model::WORDS),
            TargetKind::ComposeService => Some(&compose::WORDS),
        }
    }

    /// The short word the service list shows.
    pub fn short(self) -> &'static str {
        match self {
            TargetKind::Deployment => "deploy",
            TargetKind::ArgoRollout => "rollout",
            TargetKind::LambdaAlias => "lambda",
            TargetKind::ModelAlias => "model",
            TargetKind::ComposeService => "compose",
        }
    }

    /// The kind whose object controls a ReplicaSet, by its owner reference's kind.
    pub fn owning(kind: &str) -> Option<TargetKind> {
        KINDS.iter().copied().find(|k| k.kube_kind() == Some(kind))
    }

    /// The command a rollback to revision `to` equals, before a dry run has said the
    /// exact one: `handle` is the name its tools use (a Lambda's `FUNCTION:ALIAS`, a
    /// model's `MODEL@ALIAS`, a Compose service's `PROJECT/SERVICE`), `to` the revision
    /// (a Compose service's image reference once it is known), `canary` whether a
    /// canary is under way.
    pub fn command(self, handle: &str, namespace: &str, to: &str, canary: bool) -> String {
        match (self, canary) {
            (TargetKind::ArgoRollout, true) => {
                format!("kubectl argo rollouts abort {handle} -n {namespace}")
            }
            (TargetKind::ArgoRollout, false) => {
                format!("kubectl argo rollouts undo {handle} --to-revision={to} -n {namespace}")
            }
            (TargetKind::Deployment, _) => {
                format!(
                    "kubectl rollout undo deployment/{handle} --to-revision={to} -n {namespace}"
                )
            }
            (TargetKind::ModelAlias, _) => {
                let (model, alias) = handle.split_once('@').unwrap_or((handle, "champion"));
                format!(
                    "python -c 'from mlflow import MlflowClient; MlflowClient().set_registered_model_alias(\"{model}\", \"{alias}\", \"{to}\")'"
                )
            }
            (TargetKind::ComposeService, _) => {
                // Compose has no flag for an image: the file names it, then `up`
                // recreates the service alone, as backout's revert does.
                let (project, service) = handle.split_once('/').unwrap_or(("", handle));
                format!(
                    "docker compose -p {project} up -d --no-deps {service}  # after setting {service}'s image to {to} in the compose file"
                )
            }
            (TargetKind::LambdaAlias, _) => {
                let (function, alias) = handle.split_once(':').unwrap_or((handle, "live"));
                format!(
                    "aws lambda update-alias --function-name {function} --name {alias} --function-version {to} --routing-config AdditionalVersionWeights={{}}"
                )
            }
        }
    }
}
