//! A rollback as data: the request and order, the dry run, each step, why it did not
//! happen, and its life (phases, waits, checks, outcome) as the console shows it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::keys::ServiceKey;

/// One verification check, as it completes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.passed { "✓" } else { "✗" };
        write!(f, "{mark} {}: {}", self.name, self.detail)
    }
}

/// What the API server's dry run of a rollback says it would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    pub from_revision: u64,
    pub from_images: Vec<String>,
    pub to_revision: u64,
    pub to_images: Vec<String>,
    /// The template already matches the target: confirming would change nothing.
    pub already_there: bool,
    pub kubectl: String,
    /// The Deployment as the dry run read it: a confirmed rollback must find it so.
    #[serde(default)]
    pub resource_version: String,
    /// The target's ReplicaSet: the template, whatever its revision number becomes.
    #[serde(default)]
    pub to_replicaset: String,
    /// The ReplicaSet whose template runs now: what a confirmed rollback replaces.
    #[serde(default)]
    pub from_replicaset: String,
    /// Set when the Deployment is the live colour of a blue-green Service: the rollback
    /// switches the Service's selector instead of undoing the template.
    #[serde(default)]
    pub switch: Option<Box<Switch>>,
    /// An Argo Rollouts canary is aborted: the stable ReplicaSet takes every replica
    /// back and no revision is made (the template stays until someone changes it).
    #[serde(default)]
    pub abort: bool,
    /// Set when a GitOps controller syncs the Deployment from Git: the rollback is a
    /// `git revert` pushed to the branch it syncs, never a patch it would undo.
    #[serde(default)]
    pub revert: Option<Box<GitRevert>>,
    /// Set when a feature flag turned on lately is the change: the rollback turns it
    /// off (the kill switch) and the template stays.
    #[serde(default)]
    pub flag: Option<Box<FlagKill>>,
}

/// The flag a kill switch turns off, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagKill {
    pub name: String,
    pub project: String,
    pub environment: String,
    /// Unleash's base URL.
    pub url: String,
    /// When it was turned on, and by whom, as Unleash's events say.
    pub turned_on_at: Option<Timestamp>,
    pub turned_on_by: Option<String>,
}

/// The commit a GitOps rollback reverts, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitRevert {
    pub repo: String,
    pub branch: String,
    pub commit: String,
    /// The commit's subject and author, as `git log` shows them.
    pub subject: String,
    pub author: String,
    /// The controller applies the branch by itself; otherwise someone must sync.
    pub auto_sync: bool,
}

/// A blue-green rollback: the Service's selector goes from one colour (or version)
/// back to another. The revisions and images of the preview are then the live
/// Deployment's and the one that takes the traffic back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Switch {
    /// The Kubernetes Service whose selector switches.
    pub service: String,
    pub label: String,
    pub from: String,
    pub to: String,
    /// The Deployment whose pods carry `to`: verification watches it take the traffic.
    pub to_deployment: Option<String>,
    /// The Service as the dry run read it: the switch must find it unchanged.
    pub resource_version: String,
}

/// The dialog's dry run: asked for one target, answered or still running.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreviewState {
    pub to_revision: Option<u64>,
    pub result: Option<Result<Preview, String>>,
}

/// How far a rollback under way has got, reported by the runner as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The Lease is held, the plan made from a fresh read, and the API server's dry
    /// run accepted it.
    Prepared(Preview),
    /// The patch landed, at `at` by the runner's clock: the journal's record of it
    /// comes after the intent the runner wrote before the patch.
    Committed { by: String, at: jiff::Timestamp },
    /// The template already matched the target: nothing was sent.
    AlreadyThere,
    /// The health URLs answered (or did not): the last checks of a verification.
    Probed(Vec<Check>),
}

/// Why a rollback did not happen. Typed, so that only what will not work by itself
/// (RBAC, a paused Deployment, no history) stops further automatic rollbacks; a
/// conflict or a held Lease means someone else is acting, and is followed instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum RollbackError {
    #[error("deployment {0:?} not found")]
    NotFound(String),
    #[error("you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again")]
    Paused,
    #[error("no rollout history found for deployment {0:?}")]
    NoHistory(String),
    #[error("unable to find specified revision {0} in history")]
    MissingRevision(u64),
    #[error("refused by the cluster: {0}")]
    Forbidden(String),
    #[error("deployment {0:?} changed since the rollback was previewed (someone else wrote it); nothing was changed. Look at it again and retry")]
    Conflict(String),
    #[error("another rollback of {deployment:?} is in progress: the lease is held by {holder}{since}; backout follows it{expires}",
        since = since.map_or(String::new(), |t| format!(" since {t}")),
        expires = expires.map_or(String::new(), |t| format!(". If that holder is gone (killed, disconnected), its lease lapses at {t}, and the next rollback takes it over")))]
    Held {
        deployment: String,
        holder: String,
        since: Option<Timestamp>,
        /// When the Lease lapses unless its holder renews it.
        expires: Option<Timestamp>,
    },
    /// Someone else's rollback got there first: the Deployment already runs the target.
    #[error("someone else rolled {deployment:?} back to revision {to_revision}'s template first; backout follows that rollback")]
    Preempted {
        deployment: String,
        to_revision: u64,
    },
    /// A colour of a blue-green Service that takes no traffic: nothing to roll back.
    #[error("deployment {deployment:?} takes no traffic: service {service:?} selects {label}={live}; roll back {live:?}'s Deployment instead, or switch with `backout rollback {service} --to VALUE`")]
    NotLive {
        deployment: String,
        service: String,
        label: String,
        live: String,
    },
    #[error("revision {revision} was rolled back from ({why}); confirm that target explicitly to re-deploy it")]
    KnownBad { revision: u64, why: String },
    #[error("{0}")]
    ReadOnly(String),
    #[error("the API server said: {0}")]
    Api(String),
}

impl RollbackError {
    /// Retrying will not help until a person changes something.
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            RollbackError::Conflict(_)
                | RollbackError::Held { .. }
                | RollbackError::Preempted { .. }
                | RollbackError::Api(_)
        )
    }
}

/// The pause before an automatic rollback's second try; it doubles with each try, up
/// to `LONGEST_RETRY_PAUSE`.
pub const FIRST_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);
pub const LONGEST_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(60);

/// How long to wait after try number `attempt` failed.
pub fn retry_pause(attempt: u32) -> std::time::Duration {
    FIRST_RETRY_PAUSE
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(8))
        .min(LONGEST_RETRY_PAUSE)
}

/// Where a rollback's life is: the same phases for this process's rollbacks and for
/// those anyone else made, which backout follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Lease, plan and dry run: nothing written yet.
    Preparing,
    /// Waiting for another rollback (its Lease is held) to show in the cluster.
    Following,
    RollingOut,
    Recovering,
    /// The health URLs are being asked.
    Probing,
    Ended,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Preparing => "mitigating",
            Phase::Following => "mitigating (someone else)",
            Phase::RollingOut => "rolling out",
            Phase::Recovering => "verifying",
            Phase::Probing => "verifying (health URLs)",
            Phase::Ended => "ended",
        }
    }
}

/// A trigger verification waits on: back past its recovery line, held long enough.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wait {
    pub trigger: String,
    pub comparison: crate::config::Comparison,
    pub threshold: f64,
    /// The threshold moved by the policy's margin: the value has to pass this line.
    pub recover_at: f64,
    /// The mean before the deploy, when the graph shows it: for the reader, not a gate.
    pub baseline: Option<f64>,
    pub value: Option<f64>,
    /// The data state of the latest answer (ok, breach, no data, …).
    pub data: String,
    /// Since when the value has been past the recovery line, on clean data.
    pub recovered_since: Option<Timestamp>,
}

/// A rollback under way or ended, this process's or anyone's, for the live view, the
/// incident's phases and the journal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub started: Timestamp,
    pub automatic: bool,
    pub reason: String,
    /// Who rolls back: this process's actor, or whoever the cluster names.
    pub by: String,
    /// Ordered by this process, which holds the Lease until verification ends.
    pub ours: bool,
    pub plan: Option<Preview>,
    pub committed: bool,
    /// The revision the rollback creates, once known.
    pub revision: Option<u64>,
    pub phase: Phase,
    pub phase_since: Timestamp,
    pub waits: Vec<Wait>,
    /// Triggers with no answer since the rollback began: recovery cannot be judged yet.
    pub unanswered: Vec<String>,
    pub checks: Vec<Check>,
    /// The decision that stood when it was ordered: what the report tells.
    #[serde(skip)]
    pub decision: Option<Box<super::decision::Decision>>,
    /// When and how it ended; `None` while it runs.
    pub ended: Option<(Timestamp, Result<Outcome, String>)>,
    /// Which try of an automatic rollback this is, from 1.
    pub attempt: u32,
    /// An automatic rollback that failed for a passing reason (an API error, a
    /// conflict) is ordered again at this time, if the decision still holds.
    pub retry_at: Option<Timestamp>,
    /// Following a holder's Lease: when it lapses unless renewed. Nothing in the
    /// cluster by then says the holder is gone.
    pub lease_expires: Option<Timestamp>,
}

impl Progress {
    pub(crate) fn new(
        now: Timestamp,
        automatic: bool,
        reason: String,
        by: String,
        ours: bool,
    ) -> Progress {
        Progress {
            started: now,
            automatic,
            reason,
            by,
            ours,
            plan: None,
            committed: false,
            revision: None,
            phase: Phase::Preparing,
            phase_since: now,
            waits: Vec::new(),
            unanswered: Vec::new(),
            checks: Vec::new(),
            decision: None,
            ended: None,
            attempt: 1,
            retry_at: None,
            lease_expires: None,
        }
    }

    pub fn running(&self) -> bool {
        self.ended.is_none()
    }
}

/// A rollback asked for: by a person (the console, the CLI) or by policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub to_revision: Option<u64>,
    pub automatic: bool,
    pub reason: String,
    /// Who asks: this process's actor.
    pub by: String,
    /// What the engineer saw in the dry run: the patch must find it unchanged.
    pub expected: Option<Expected>,
}

/// The Deployment as the dry run saw it, and the template it offered: the rollback
/// must find the one unchanged, and goes to the other by identity, not number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    pub from_revision: u64,
    pub from_replicaset: String,
    pub to_replicaset: String,
    /// For a blue-green Service: the switch that was previewed, pinned by the
    /// Service's resourceVersion.
    #[serde(default)]
    pub switch: Option<Switch>,
    /// For a GitOps Deployment: the commit the previewed revert undoes.
    #[serde(default)]
    pub revert_commit: Option<String>,
}

impl Expected {
    pub fn of(preview: &Preview) -> Expected {
        Expected {
            from_revision: preview.from_revision,
            from_replicaset: preview.from_replicaset.clone(),
            to_replicaset: preview.to_replicaset.clone(),
            switch: preview.switch.as_deref().cloned(),
            revert_commit: preview.revert.as_ref().map(|r| r.commit.clone()),
        }
    }
}

/// How a rollback ended, once verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Verified,
    /// The rollout finished but the signal did not recover: escalate, never roll back again automatically.
    DidNotHelp,
    RolloutStuck,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Verified => "verified",
            Outcome::DidNotHelp => "rollback did not help",
            Outcome::RolloutStuck => "rollout stuck",
        }
    }
}

/// A rollback for the runner to execute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackOrder {
    pub service: ServiceKey,
    /// What the service runs as, which says how it is reverted.
    pub kind: crate::targets::TargetKind,
    pub to_revision: Option<u64>,
    pub automatic: bool,
    pub reason: String,
    pub incident: Option<String>,
    /// What the engineer confirmed in the dry run; the patch tests for it.
    pub expected: Option<Expected>,
}
