//! What flows into `update` (messages, by value, from the sources and the effect
//! runner) and what flows out of it (effects, performed by the runner).

pub use super::keys::{KubeKind, SourceHealth, SourceId};
pub use super::rollback::{Outcome, RollbackOrder};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod};

use crate::engine::kept::PodSeen;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::journal::Record;
use super::keys::ServiceKey;
use super::rollback::{Preview, Request, RollbackError, Step};
use crate::engine::signals::QueryOutcome;

#[derive(Debug, Clone)]
pub enum Msg {
    Kube(KubeChange),
    Query(QueryAnswer),
    /// One trigger asked for many services at once; `update` fans it out.
    Queries(GroupedAnswer),
    Source {
        source: SourceId,
        health: SourceHealth,
    },
    Tick(Timestamp),
    /// The journal could not be written: shown, and kept in memory, never swallowed.
    JournalFailed {
        error: String,
    },
    /// A notification was delivered, or given up on after its attempts.
    Notified {
        service: Option<ServiceKey>,
        channel: String,
        attempts: u32,
        error: Option<String>,
    },
    /// This process's rollback did not happen; why, typed.
    RollbackFailed {
        service: ServiceKey,
        error: RollbackError,
    },
    /// A rollback asked for: a key in the console, `backout rollback`, or the gate.
    RollbackRequested {
        service: ServiceKey,
        request: Request,
    },
    /// Stop verifying this service's rollback (the terminal went, `q` twice, a CLI
    /// told not to verify): journaled as abandoned, and the Lease given back.
    Abandon {
        service: ServiceKey,
        why: String,
    },
    /// Shutting down: order no new automatic rollback; let those under way finish.
    Drain,
    /// The rollback under way got a step further.
    RollbackStep {
        service: ServiceKey,
        step: Step,
    },
    /// The rollback dialog opened: dry-run this target.
    PreviewRequested {
        service: ServiceKey,
        to_revision: Option<u64>,
        /// For the live colour of a blue-green Service: the colour to switch to
        /// (`--to`); by default the one recorded at the last switch.
        switch_to: Option<String>,
    },
    /// The API server's dry run answered.
    Previewed {
        service: ServiceKey,
        to_revision: Option<u64>,
        result: Result<Preview, String>,
    },
    /// Alertmanager's firing alerts that name a service, as of `at`: all of them,
    /// so an alert missing from it has stopped.
    Alerts {
        at: Timestamp,
        alerts: Vec<super::alerts::FiringAlert>,
    },
    /// A watched Terraform state, as last read.
    Infra(super::infra::InfraState),
    /// A target outside the cluster (a Lambda alias), as last read.
    Target(TargetRead),
    /// A `[[flag]]` feature flag, as last read.
    Flag(super::flags::FlagState),
    /// The registries' answers about rollback targets' images.
    ImagesChecked(Vec<(String, super::images::ImagePresence)>),
    /// The console opened a pod (`opened` numbers the opening), or closed it (`None`).
    PodOpened(Option<(ServiceKey, String, u64)>),
    /// The pod reader of opening `opened` learnt something.
    Pod {
        opened: u64,
        feed: super::pod_view::PodFeed,
    },
}

/// One read of a target that lives outside the cluster: the same summary and
/// revisions a Deployment gives, or why it could not be read.
#[derive(Debug, Clone)]
pub struct TargetRead {
    pub service: ServiceKey,
    pub read: Result<
        (
            crate::engine::kept::WorkloadSummary,
            Vec<crate::engine::kept::Revision>,
        ),
        String,
    >,
}

#[derive(Debug, Clone)]
pub enum KubeChange {
    Applied(KubeObject),
    Deleted(KubeObject),
    /// A (re)list finished: these are all the objects of `kind` in `namespace`.
    Relisted {
        kind: KubeKind,
        namespace: String,
        objects: Vec<KubeObject>,
    },
    /// RBAC will not let this user list `kind` in `namespace` (Kubernetes' own `view`
    /// role grants no Secrets): what depends on it is unknown, never "none".
    Unseen {
        kind: KubeKind,
        namespace: String,
        why: String,
    },
}

#[derive(Debug, Clone)]
pub enum KubeObject {
    Deployment(Box<Deployment>),
    Rollout(Box<crate::targets::argo_rollout::Rollout>),
    ReplicaSet(Box<ReplicaSet>),
    /// Read as it arrives: a typed pod is never held.
    Pod(Box<PodSeen>),
    Job(Box<Job>),
    Event(Box<Event>),
    Lease(Box<Lease>),
    Hpa(Box<HorizontalPodAutoscaler>),
    /// ConfigMaps and Secrets arrive as metadata only: backout never reads their data.
    ConfigMap(Box<ObjectMeta>),
    Secret(Box<ObjectMeta>),
}

impl KubeObject {
    pub fn kind(&self) -> KubeKind {
        match self {
            KubeObject::Deployment(_) => KubeKind::Deployment,
            KubeObject::Rollout(_) => KubeKind::Rollout,
            KubeObject::ReplicaSet(_) => KubeKind::ReplicaSet,
            KubeObject::Pod(_) => KubeKind::Pod,
            KubeObject::Job(_) => KubeKind::Job,
            KubeObject::Event(_) => KubeKind::Event,
            KubeObject::Lease(_) => KubeKind::Lease,
            KubeObject::Hpa(_) => KubeKind::Hpa,
            KubeObject::ConfigMap(_) => KubeKind::ConfigMap,
            KubeObject::Secret(_) => KubeKind::Secret,
        }
    }

    /// A pod as the engine reads it.
    pub fn pod(pod: &Pod) -> KubeObject {
        KubeObject::Pod(Box::new(PodSeen::of(pod)))
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            KubeObject::Deployment(o) => &o.metadata,
            KubeObject::Rollout(o) => &o.metadata,
            KubeObject::ReplicaSet(o) => &o.metadata,
            KubeObject::Pod(o) => &o.metadata,
            KubeObject::Job(o) => &o.metadata,
            KubeObject::Event(o) => &o.metadata,
            KubeObject::Lease(o) => &o.metadata,
            KubeObject::Hpa(o) => &o.metadata,
            KubeObject::ConfigMap(m) | KubeObject::Secret(m) => m,
        }
    }
}

/// One (trigger, service) range query, answered.
#[derive(Debug, Clone)]
pub struct QueryAnswer {
    pub trigger: String,
    pub service: ServiceKey,
    pub answered_at: Timestamp,
    pub outcome: QueryOutcome,
}

/// A `QueryAnswer` whose trigger is known by its place in the config's triggers: a
/// grouped answer's thousands of services share one trigger, found once, and a
/// cluster sample names no trigger per service. Made inside the engine only.
#[derive(Debug)]
pub struct PlacedAnswer {
    pub trigger_at: usize,
    pub service: ServiceKey,
    pub answered_at: Timestamp,
    pub outcome: QueryOutcome,
}

/// One trigger's grouped range query, answered for many services at once.
#[derive(Debug, Clone)]
pub struct GroupedAnswer {
    pub trigger: String,
    /// The services asked for: one the answer has no series for got no data.
    pub services: Vec<ServiceKey>,
    pub answered_at: Timestamp,
    /// Where the points begin (unix ms) when the answer covers only what is new since
    /// the last one: the points kept from before stand. `None`: the whole lookback.
    pub partial_from: Option<i64>,
    pub outcome: GroupedOutcome,
}

#[derive(Debug, Clone)]
pub enum GroupedOutcome {
    /// The query failed: every service asked for holds, none is judged.
    Failed { error: String },
    Series {
        /// Each series the answer labelled with a service asked for.
        series: Vec<(ServiceKey, crate::engine::series::Series)>,
        /// The volume query's latest value, by service.
        requests_per_second: std::collections::HashMap<ServiceKey, f64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Append to the incident journal (fsync'd).
    Journal(Record),
    /// Tell the on-call engineer; notifiers arrive with the rollback executor.
    Page {
        service: ServiceKey,
        summary: String,
    },
    /// Ask the configured registries whether these images still exist (a read, like
    /// a probe): the answers come back as `Msg::ImagesChecked`.
    CheckImages { images: Vec<String> },
    /// Tell the team the incident is over: this process's rollback was verified.
    Resolve {
        service: ServiceKey,
        summary: String,
        incident: Option<String>,
    },
    /// Roll a Deployment back; the runner refuses it in read-only mode.
    Rollback(RollbackOrder),
    /// Plan a rollback and have the API server dry-run it; nothing is written.
    Preview {
        service: ServiceKey,
        kind: crate::targets::TargetKind,
        to_revision: Option<u64>,
        /// The target's ReplicaSet, which a concurrent rollback does not renumber.
        to_replicaset: Option<String>,
        switch_to: Option<String>,
    },
    /// Ask the health URLs configured under `names` (the Deployment, and the
    /// blue-green Service it switched), the last checks of a verification.
    Probe {
        service: ServiceKey,
        names: Vec<String>,
    },
    /// This process's rollback has been verified (or has ended): give its Lease back.
    ReleaseLease { service: ServiceKey },
}
