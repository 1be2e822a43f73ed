//! Everything backout knows, owned by the one loop that runs `update`. The sources
//! fill it through messages; render and the headless commands only read it.

pub use super::model::keys::ServiceKey;

use std::collections::{BTreeMap, HashMap, VecDeque};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use serde::Serialize;

use super::model::decision::Decision;
use super::model::journal::{Entry, Record};
use super::model::keys::{SourceHealth, SourceId};
use super::model::msg::Effect;
use super::signals::{AlertState, DataState};
use crate::config::Config;

pub use super::kept::PodInfo;

/// Trigger states counted over every service (`State::tally`).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Tally {
    /// Triggers asked of a service whose data is not clean, or not there yet.
    pub blind: usize,
    /// Triggers asked of a service.
    pub total: usize,
    /// Prometheus triggers with an answer of any kind, of `asked`, one per service.
    pub answered: usize,
    pub asked: usize,
}

impl Tally {
    /// Counts `trigger`'s state for a service, which has pod-like instances or not.
    pub fn add(
        &mut self,
        trigger: &crate::config::Trigger,
        instances: bool,
        state: Option<&TriggerState>,
    ) {
        let queried = trigger.cluster.is_none();
        if queried || instances {
            self.total += 1;
            self.blind += usize::from(state.is_none_or(|s| !s.data.is_clean()));
        }
        if queried {
            self.asked += 1;
            self.answered += usize::from(state.is_some_and(|s| s.last_answer.is_some()));
        }
    }
}

pub use super::recent::QUALITY_WINDOW;

#[derive(Debug, Clone, Serialize)]
pub struct TriggerState {
    /// Points (unix ms, value) of the latest answer, for the graphs.
    pub points: super::series::Series,
    pub data: DataState,
    pub alert: AlertState,
    pub value: Option<f64>,
    pub onset: Option<Timestamp>,
    /// When Prometheus last answered this query with evidence.
    pub last_clean: Option<Timestamp>,
    pub last_answer: Option<Timestamp>,
    /// Since when the data has been anything but ok or breach.
    pub blind_since: Option<Timestamp>,
    pub paged_blind: bool,
    /// Whether each recent answer was clean, newest last.
    pub recent: super::recent::Recent,
}

impl Default for TriggerState {
    fn default() -> Self {
        TriggerState {
            points: Default::default(),
            data: DataState::NoData("not queried yet".into()),
            alert: AlertState::Inactive,
            value: None,
            onset: None,
            last_clean: None,
            last_answer: None,
            blind_since: None,
            paged_blind: false,
            recent: Default::default(),
        }
    }
}

impl TriggerState {
    pub fn quality(&self) -> f64 {
        if self.recent.is_empty() {
            return 0.0;
        }
        self.recent.clean() as f64 / self.recent.len() as f64
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Service {
    #[serde(skip)]
    pub deployment: Option<super::kept::WorkloadSummary>,
    #[serde(skip)]
    /// Boxed, as are the rarely present rollback and preview below: a BTreeMap's node
    /// holds eleven values inline, so one or two 200-byte revisions took a 2.5 KB node
    /// (5 MB at 2,000 services).
    pub replicasets: BTreeMap<String, Box<super::rollout::Revision>>,
    pub pods: BTreeMap<String, PodInfo>,
    /// Boxed for the same reason as `replicasets`: six 250-byte states took a 3 KB node.
    pub triggers: BTreeMap<String, Box<TriggerState>>,
    pub decision: Decision,
    /// When backout first saw each revision become current, this session.
    pub revision_seen: BTreeMap<u64, Timestamp>,
    pub incident: Option<String>,
    pub last_rollback: Option<Timestamp>,
    /// Rollbacks by anyone and the templates rolled back from, read from the
    /// ReplicaSets: never a rollback's target, whichever process asks.
    pub lineage: super::model::lineage::Lineage,
    /// The rollback under way, or the last one this session, for the live view.
    pub rollback: Option<Box<super::model::rollback::Progress>>,
    /// The rollback dialog's dry run.
    pub preview: Option<Box<super::model::rollback::PreviewState>>,
    /// Alertmanager's alerts naming this service, as of its last answer.
    pub alerts: Vec<super::model::alerts::FiringAlert>,
    /// Why backout will not roll this service back automatically again
    /// (a rollback that did not help, or one that failed).
    pub no_auto: Option<String>,
}

impl Service {
    /// Whether it runs as pods in the cluster, so that pod signals (restarts,
    /// readiness, progress) are asked of it: a Lambda alias has none.
    pub fn has_pods(&self) -> bool {
        self.deployment
            .as_ref()
            .is_none_or(|d| d.kind.kube_kind().is_some())
    }

    /// Whether it has instances that pod signals can be read from: its pods, or a
    /// kind's own that its engine reports (a Compose service's containers).
    pub fn has_instances(&self) -> bool {
        self.has_pods() || (self.deployment.as_ref()).is_some_and(|d| d.instances.is_some())
    }

    /// Whether `trigger` is asked of this service.
    pub fn asks(&self, trigger: &crate::config::Trigger) -> bool {
        trigger.cluster.is_none() || self.has_instances()
    }

    /// The ReplicaSet that holds revision `revision` now (numbers move on a rollback).
    pub fn replicaset_at(&self, revision: u64) -> Option<&str> {
        self.replicasets
            .iter()
            .find(|(_, rs)| rs.number == revision)
            .map(|(name, _)| name.as_str())
    }

    /// Why revision `revision` is known bad, in words, if it is.
    pub fn why_revision_bad(&self, revision: u64, now: Timestamp) -> Option<String> {
        self.lineage.why_bad(self.replicaset_at(revision)?, now)
    }

    /// This process ordered a rollback that has not ended: the Lease is this process's.
    pub fn rollback_in_flight(&self) -> bool {
        self.rollback
            .as_ref()
            .is_some_and(|p| p.ours && p.running())
    }

    /// (ready, desired) replicas from the Deployment's status, as `kubectl get deploy`
    /// shows READY: right from the first frame, whatever order the pods arrived in.
    pub fn ready_replicas(&self) -> (i32, i32) {
        self.deployment
            .as_ref()
            .map_or((0, 0), |d| (d.ready_replicas, d.replicas))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigObject {
    pub resource_version: String,
    /// When it last changed, if known: seen changing, created, or from managedFields.
    pub changed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventInfo {
    pub at: Option<Timestamp>,
    pub namespace: String,
    pub object: String,
    pub reason: String,
    pub message: String,
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct State {
    pub now: Timestamp,
    pub config: Config,
    /// Boxed: a `Service` is about a kilobyte, and a B-tree leaf holds room for
    /// eleven inline, half of it empty on average (4 MB of leaves at 2,000).
    pub services: BTreeMap<ServiceKey, Box<Service>>,
    /// (namespace, ReplicaSet) -> owning Deployment.
    pub rs_owner: HashMap<(String, String), String>,
    /// Pods whose ReplicaSet has not arrived yet, by (namespace, ReplicaSet): attached
    /// when it does, so counts are right from the first frame whatever the order.
    pub parked_pods: HashMap<(String, String), BTreeMap<String, PodInfo>>,
    /// ReplicaSets whose Deployment is not known (not arrived yet, deleted, or not
    /// watched), by (namespace, Deployment): attached when it arrives. A ReplicaSet
    /// alone never makes a service: a controller with a stale cache can create one for
    /// a Deployment already deleted.
    pub parked_replicasets:
        HashMap<(String, String), BTreeMap<String, Box<super::rollout::Revision>>>,
    pub jobs: BTreeMap<(String, String), Job>,
    /// (namespace, "ConfigMap" or "Secret", name).
    pub config_objects: BTreeMap<(String, &'static str, String), ConfigObject>,
    /// (namespace, HPA name) -> the Deployment it scales.
    pub hpas: BTreeMap<(String, String), String>,
    /// (namespace, Lease name) -> (holder, since).
    pub leases: BTreeMap<(String, String), (String, Option<Timestamp>)>,
    pub events: VecDeque<EventInfo>,
    pub sources: BTreeMap<SourceId, SourceHealth>,
    /// The last automatic rollback anywhere, for the cooldown.
    pub last_auto_rollback: Option<Timestamp>,
    /// Why writes are refused (`--read-only`, or RBAC), or `None` when they are allowed.
    pub read_only: Option<String>,
    /// Recent failures of the effect runner, newest last.
    pub effect_errors: VecDeque<String>,
    /// The latest journal records, oldest first, for the console's timeline.
    pub journaled: VecDeque<super::model::journal::Record>,
    /// Shutting down: no new automatic rollbacks.
    pub draining: bool,
    /// Who this process acts as (`user@host`), for the rollbacks it orders.
    pub actor: String,
    /// `blind()` as of the last tick: the console's header reads it, since scanning
    /// every trigger on every frame is work a frame should not do.
    pub blind_at_tick: Option<String>,
    /// `answered()` as of the last tick, for the console's progress while it fills in.
    pub answered_at_tick: (usize, usize),
    /// Services with a trigger firing now: the confidence's isolation counts them.
    pub firing: std::collections::BTreeSet<ServiceKey>,
    /// When the cluster signals were last sampled.
    pub cluster_sampled_at: Option<Timestamp>,
    /// Which kinds have finished their first list, so decisions wait for a full picture.
    /// Kinds RBAC hides from this user, by namespace, with the server's words.
    pub unseen: std::collections::BTreeMap<(super::model::keys::KubeKind, String), String>,
    pub synced: std::collections::BTreeSet<super::model::keys::KubeKind>,
    /// When Alertmanager last answered (its alerts are stale after that).
    pub alerts_answered_at: Option<Timestamp>,
    /// The alerts of that answer: a service that appears after it takes its own from
    /// here, rather than reading "no alerts" until the next answer.
    pub alerts: Vec<super::model::alerts::FiringAlert>,
    /// The Terraform states watched, by name, as last read.
    pub infra: BTreeMap<String, super::model::infra::InfraState>,
    /// The `[[flag]]` feature flags, by name, as last read.
    pub flags: BTreeMap<String, super::model::flags::FlagState>,
    /// What the configured registries said of rollback targets' images.
    pub images: BTreeMap<String, super::model::images::ImagePresence>,
    /// The pod the console has open, if any.
    pub pod_view: Option<super::model::pod_view::PodView>,
}

/// How many cluster Events the timeline keeps.
pub const EVENTS_KEPT: usize = 200;

impl State {
    pub fn new(config: Config, now: Timestamp) -> State {
        State {
            now,
            config,
            services: BTreeMap::new(),
            rs_owner: HashMap::new(),
            parked_pods: HashMap::new(),
            parked_replicasets: HashMap::new(),
            jobs: BTreeMap::new(),
            config_objects: BTreeMap::new(),
            hpas: BTreeMap::new(),
            leases: BTreeMap::new(),
            events: VecDeque::new(),
            pod_view: None,
            alerts_answered_at: None,
            alerts: Vec::new(),
            images: BTreeMap::new(),
            infra: BTreeMap::new(),
            flags: BTreeMap::new(),
            sources: BTreeMap::new(),
            last_auto_rollback: None,
            synced: Default::default(),
            unseen: Default::default(),
            draining: false,
            actor: String::new(),
            blind_at_tick: None,
            answered_at_tick: (0, 0),
            cluster_sampled_at: None,
            firing: Default::default(),
            journaled: VecDeque::new(),
            effect_errors: VecDeque::new(),
            read_only: None,
        }
    }

    /// Why the picture has no metrics, if it has none or some are missing: no
    /// Prometheus configured or reachable, or triggers whose data is not clean.
    pub fn blind(&self) -> Option<String> {
        self.blind_given(&self.tally())
    }

    /// `blind()`, from a tally of this state taken already.
    pub fn blind_given(&self, tally: &Tally) -> Option<String> {
        if self.config.prometheus.is_none() {
            return Some("no [prometheus] in backout.toml: no trigger is evaluated".into());
        }
        if let Some(SourceHealth::Unavailable(why) | SourceHealth::Forbidden(why)) =
            self.sources.get(&SourceId::Prometheus)
        {
            return Some(format!("prometheus: {why}"));
        }
        if tally.blind == 0 {
            return None;
        }
        // The first three blind triggers, by service and then in the config's order.
        let mut named = Vec::new();
        for (key, svc) in &self.services {
            for t in self.config.triggers.iter().filter(|t| svc.asks(t)) {
                let state = svc.triggers.get(&t.name).map(|ts| &ts.data);
                if state.is_none_or(|d| !d.is_clean()) {
                    let why = state.map_or("not answered yet".to_string(), |d| match d {
                        DataState::NoData(w) | DataState::Error(w) | DataState::Stale(w) => {
                            format!("{}: {w}", d.label())
                        }
                        other => other.label().to_string(),
                    });
                    named.push(format!("{} on {key} ({why})", t.name));
                }
                if named.len() == 3 {
                    break;
                }
            }
            if named.len() == 3 {
                break;
            }
        }
        let more = if tally.blind > named.len() {
            ", …"
        } else {
            ""
        };
        Some(format!(
            "{} of {} triggers have no clean data: {}{more}",
            tally.blind,
            tally.total,
            named.join("; ")
        ))
    }

    /// (answered, asked): how many (Prometheus trigger, service) pairs have had an
    /// answer of any kind, so a cold start can say how far it has got.
    pub fn answered(&self) -> (usize, usize) {
        let tally = self.tally();
        (tally.answered, tally.asked)
    }

    /// Every service's trigger states counted in one walk: what `blind()` and
    /// `answered()` report, read by the console's header every tick.
    pub fn tally(&self) -> Tally {
        let by_name = super::by_name::ByName::new(&self.config.triggers);
        let mut tally = Tally::default();
        for svc in self.services.values() {
            let instances = svc.has_instances();
            for (at, state) in by_name.pair(svc.triggers.iter()) {
                tally.add(&self.config.triggers[at], instances, state.map(|s| &**s));
            }
        }
        tally
    }

    /// The Deployment is gone or not watched: forget the service everywhere.
    pub fn forget(&mut self, key: &ServiceKey) {
        self.services.remove(key);
        self.firing.remove(key);
    }

    /// The service `key`, made when it first appears with what is already known of it
    /// beyond its own objects (the alerts naming it).
    pub fn service_mut(&mut self, key: &ServiceKey) -> &mut Service {
        let alerts = &self.alerts;
        self.services.entry(key.clone()).or_insert_with(|| {
            Box::new(Service {
                alerts: super::model::alerts::naming(alerts, &key.namespace, &key.name),
                ..Service::default()
            })
        })
    }

    /// A journal record of now, as an effect for the runner to append.
    pub fn journal(&self, incident: Option<String>, service: &str, entry: Entry) -> Effect {
        self.journal_at(self.now, incident, service, entry)
    }

    /// A record of what a runner saw at `at`, which may be newer than the last tick.
    pub fn journal_at(
        &self,
        at: Timestamp,
        incident: Option<String>,
        service: &str,
        entry: Entry,
    ) -> Effect {
        Effect::Journal(Record {
            at,
            incident,
            service: service.into(),
            entry,
        })
    }

    /// A rollback of `key` ended (or was seen): its blackout starts, its triggers start
    /// over, and an automatic one starts the cluster-wide cooldown.
    pub fn note_rollback(&mut self, key: &ServiceKey, at: Timestamp, automatic: bool) {
        if let Some(svc) = self.services.get_mut(key) {
            svc.last_rollback = Some(at);
            for t in svc.triggers.values_mut() {
                t.alert = AlertState::Inactive;
                t.onset = None;
            }
        }
        if automatic {
            self.last_auto_rollback = Some(at);
        }
    }

    /// Whether the config asks backout to watch this Deployment.
    pub fn watches(
        &self,
        namespace: &str,
        name: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> bool {
        if self.config.watch.is_empty() {
            return true;
        }
        self.config.watch.iter().any(|w| {
            w.namespace == namespace
                && (w.deployments.is_empty() || w.deployments.iter().any(|d| d == name))
                && w.selector.as_deref().is_none_or(|sel| {
                    let obj = serde_json::json!({"metadata": {"labels": labels}});
                    crate::k8s::selectors::LabelSelector::parse(sel).is_ok_and(|s| s.matches(&obj))
                })
        })
    }
}
