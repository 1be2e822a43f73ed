//! Applying Kubernetes changes to the state: which service a Deployment, ReplicaSet
//! or Pod belongs to, relists that replace what they cover, and when a ConfigMap or
//! Secret last changed. Part of `update`, and as pure.

use std::collections::BTreeSet;

use super::kept::{PodSeen, TargetKind, WorkloadSummary};
use super::msg::{KubeChange, KubeKind, KubeObject};
use super::state::{ConfigObject, EventInfo, ServiceKey, State, EVENTS_KEPT};

fn ns_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Applies a Kubernetes change; returns the services whose decisions it may move.
pub(super) fn kube(state: &mut State, change: KubeChange) -> Vec<ServiceKey> {
    match change {
        KubeChange::Applied(obj) => apply(state, obj, false),
        KubeChange::Unseen {
            kind,
            namespace,
            why,
        } => {
            state.unseen.insert((kind, namespace.clone()), why);
            state
                .services
                .keys()
                .filter(|k| within(&k.namespace, &namespace))
                .cloned()
                .collect()
        }
        KubeChange::Deleted(obj) => apply(state, obj, true),
        KubeChange::Relisted {
            kind,
            namespace,
            objects,
        } => {
            let first_sync = !state.synced.contains(&kind);
            state.unseen.remove(&(kind, namespace.clone()));
            forget_kind(state, kind, &namespace);
            forget_missing(state, kind, &namespace, &objects);
            let mut touched = BTreeSet::new();
            for obj in objects {
                if first_sync {
                    if let KubeObject::ConfigMap(m) | KubeObject::Secret(m) = &obj {
                        remember_config(state, obj.kind(), m, false);
                        continue;
                    }
                }
                touched.extend(apply(state, obj, false));
            }
            state.synced.insert(kind);
            touched.extend(
                state
                    .services
                    .keys()
                    .filter(|k| within(&k.namespace, &namespace))
                    .cloned(),
            );
            touched.into_iter().collect()
        }
    }
}

/// Whether `ns` is in a relist's namespace; a relist of `""` (`-A`) covers them all.
fn within(ns: &str, relisted: &str) -> bool {
    relisted.is_empty() || ns == relisted
}

/// Deployments, ConfigMaps and Secrets deleted while the watch was away: a relist
/// that no longer lists them forgets them (the others are replaced wholesale).
fn forget_missing(state: &mut State, kind: KubeKind, namespace: &str, objects: &[KubeObject]) {
    let listed: BTreeSet<String> = objects
        .iter()
        .filter_map(|o| match o {
            KubeObject::Deployment(d) => d.metadata.name.clone(),
            KubeObject::Rollout(r) => r.metadata.name.clone(),
            KubeObject::ConfigMap(m) | KubeObject::Secret(m) => m.name.clone(),
            _ => None,
        })
        .collect();
    match kind {
        KubeKind::Deployment | KubeKind::Rollout => {
            // Only the services this kind runs: a Rollout's is not a missing Deployment.
            let gone: Vec<ServiceKey> = state
                .services
                .iter()
                .filter(|(k, _)| within(&k.namespace, namespace) && !listed.contains(&k.name))
                .filter(|(_, s)| {
                    s.deployment
                        .as_ref()
                        .is_none_or(|d| runs_as(d.kind) == Some(kind))
                })
                .map(|(k, _)| k.clone())
                .collect();
            for key in gone {
                state.forget(&key);
            }
        }
        KubeKind::ConfigMap | KubeKind::Secret => {
            let label = config_label(kind);
            state.config_objects.retain(|(ns, l, name), _| {
                !within(ns, namespace) || *l != label || listed.contains(name)
            });
        }
        _ => {}
    }
}

/// The watched kind a target kind arrives as; `None` for one outside the cluster.
fn runs_as(kind: TargetKind) -> Option<KubeKind> {
    match kind {
        TargetKind::Deployment => Some(KubeKind::Deployment),
        TargetKind::ArgoRollout => Some(KubeKind::Rollout),
        TargetKind::LambdaAlias | TargetKind::ModelAlias | TargetKind::ComposeService => None,
    }
}

/// A service whose revisions and pods come from the cluster: a relist replaces them.
fn in_cluster(svc: &super::state::Service) -> bool {
    svc.deployment
        .as_ref()
        .is_none_or(|d| runs_as(d.kind).is_some())
}

/// The journal's and `config_objects`' name for a ConfigMap or Secret kind.
fn config_label(kind: KubeKind) -> &'static str {
    if kind == KubeKind::ConfigMap {
        "ConfigMap"
    } else {
        "Secret"
    }
}

/// Drops what a relist replaces, so deletions missed during a disconnect disappear.
fn forget_kind(state: &mut State, kind: KubeKind, namespace: &str) {
    match kind {
        KubeKind::ReplicaSet => {
            state
                .services
                .iter_mut()
                .filter(|(k, s)| within(&k.namespace, namespace) && in_cluster(s))
                .for_each(|(_, s)| s.replicasets.clear());
            state
                .parked_replicasets
                .retain(|(ns, _), _| !within(ns, namespace));
        }
        KubeKind::Pod => {
            state
                .services
                .iter_mut()
                .filter(|(k, s)| within(&k.namespace, namespace) && in_cluster(s))
                .for_each(|(_, s)| s.pods.clear());
            state
                .parked_pods
                .retain(|(ns, _), _| !within(ns, namespace));
        }
        KubeKind::Job => state.jobs.retain(|(ns, _), _| !within(ns, namespace)),
        KubeKind::Hpa => state.hpas.retain(|(ns, _), _| !within(ns, namespace)),
        KubeKind::Lease => state.leases.retain(|(ns, _), _| !within(ns, namespace)),
        _ => {}
    }
}

fn remember_config(
    state: &mut State,
    kind: KubeKind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    seen_live: bool,
) {
    let label = config_label(kind);
    let (ns, name) = ns_name(meta);
    let rv = meta.resource_version.clone().unwrap_or_default();
    let managed = meta
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max();
    let key = (ns, label, name);
    let changed_at = match state.config_objects.get(&key) {
        Some(known) if known.resource_version == rv => known.changed_at,
        Some(_) => Some(managed.unwrap_or(state.now)),
        None if seen_live => Some(
            managed
                .or(meta.creation_timestamp.as_ref().map(|t| t.0))
                .unwrap_or(state.now),
        ),
        None => managed,
    };
    state.config_objects.insert(
        key,
        ConfigObject {
            resource_version: rv,
            changed_at,
        },
    );
}

fn apply(state: &mut State, obj: KubeObject, deleted: bool) -> Vec<ServiceKey> {
    let (ns, name) = ns_name(obj.meta());
    let at = Place {
        ns,
        name,
        gone: deleted,
    };
    match obj {
        KubeObject::Deployment(d) => {
            let labels = d.metadata.labels.clone();
            workload(state, at, WorkloadSummary::of(&d), labels.as_ref())
        }
        KubeObject::Rollout(r) => {
            let summary = crate::targets::argo_rollout::summary(&r);
            workload(state, at, summary, r.metadata.labels.as_ref())
        }
        KubeObject::ReplicaSet(rs) => replicaset(state, at, rs),
        KubeObject::Pod(pod) => self::pod(state, at, *pod),
        KubeObject::Job(job) => {
            let key = (at.ns.clone(), at.name.clone());
            match at.gone {
                true => state.jobs.remove(&key),
                false => state.jobs.insert(key, *job),
            };
            in_ns(state, &at.ns)
        }
        KubeObject::Hpa(hpa) => {
            let key = (at.ns.clone(), at.name.clone());
            let target = hpa
                .spec
                .as_ref()
                .filter(|s| s.scale_target_ref.kind == "Deployment" && !at.gone)
                .map(|s| s.scale_target_ref.name.clone());
            match target {
                Some(t) => state.hpas.insert(key, t),
                None => state.hpas.remove(&key),
            };
            in_ns(state, &at.ns)
        }
        KubeObject::Lease(lease) => {
            self::lease(state, at, &lease);
            Vec::new()
        }
        KubeObject::Event(ev) => {
            if !at.gone {
                event(state, at.ns, &ev);
            }
            Vec::new()
        }
        other @ (KubeObject::ConfigMap(_) | KubeObject::Secret(_)) => {
            let kind = other.kind();
            if at.gone {
                let label = config_label(kind);
                state
                    .config_objects
                    .remove(&(at.ns.clone(), label, at.name));
            } else {
                remember_config(state, kind, other.meta(), true);
            }
            in_ns(state, &at.ns)
        }
    }
}

/// Where an object is, and whether it was deleted.
struct Place {
    ns: String,
    name: String,
    gone: bool,
}

fn in_ns(state: &State, ns: &str) -> Vec<ServiceKey> {
    state
        .services
        .keys()
        .filter(|k| k.namespace == ns)
        .cloned()
        .collect()
}

/// A Deployment or a Rollout arrived: the service it runs. A name that has both
/// (a Rollout with a `workloadRef` to its scaled-down Deployment) is the Rollout's.
fn workload(
    state: &mut State,
    at: Place,
    summary: WorkloadSummary,
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<ServiceKey> {
    let key = ServiceKey::new(&at.ns, &at.name);
    let held_by_rollout = |state: &State| {
        state
            .services
            .get(&key)
            .and_then(|s| s.deployment.as_ref())
            .is_some_and(|d| d.kind == TargetKind::ArgoRollout)
    };
    if summary.kind == TargetKind::Deployment && held_by_rollout(state) {
        return Vec::new();
    }
    if at.gone || !state.watches(&at.ns, &at.name, labels) {
        state.forget(&key);
        return Vec::new();
    }
    let now = state.now;
    let svc = state.service_mut(&key);
    if summary.revision > 0 {
        svc.revision_seen.entry(summary.revision).or_insert(now);
    }
    svc.deployment = Some(summary);
    adopt_parked(state, &key);
    relineage(state, &key);
    vec![key]
}

fn replicaset(
    state: &mut State,
    at: Place,
    rs: Box<k8s_openapi::api::apps::v1::ReplicaSet>,
) -> Vec<ServiceKey> {
    let owner = super::kept::controller(&rs.metadata, "Deployment")
        .or_else(|| super::kept::controller(&rs.metadata, "Rollout"));
    let Some(deployment) = owner.map(str::to_string) else {
        return Vec::new();
    };
    let key = ServiceKey::new(&at.ns, &deployment);
    let place = (at.ns.clone(), at.name.clone());
    if at.gone {
        state.rs_owner.remove(&place);
    } else {
        state.rs_owner.insert(place.clone(), deployment.clone());
    }
    let revision = super::rollout::Revision::of(&rs);
    let Some(svc) = state.services.get_mut(&key) else {
        let owner = (at.ns, deployment);
        let parked = state.parked_replicasets.entry(owner.clone()).or_default();
        match at.gone {
            true => parked.remove(&at.name),
            false => parked.insert(at.name, Box::new(revision)),
        };
        if parked.is_empty() {
            state.parked_replicasets.remove(&owner);
        }
        return Vec::new();
    };
    if at.gone {
        svc.replicasets.remove(&at.name);
        state.parked_pods.remove(&place);
    } else {
        svc.replicasets.insert(at.name, Box::new(revision));
        svc.pods
            .extend(state.parked_pods.remove(&place).into_iter().flatten());
    }
    relineage(state, &key);
    vec![key]
}

/// A Deployment has arrived: the ReplicaSets (and their pods) that came before it.
fn adopt_parked(state: &mut State, key: &ServiceKey) {
    let owner = (key.namespace.clone(), key.name.clone());
    let Some(replicasets) = state.parked_replicasets.remove(&owner) else {
        return;
    };
    let Some(svc) = state.services.get_mut(key) else {
        return;
    };
    for (name, rs) in replicasets {
        let place = (key.namespace.clone(), name.clone());
        svc.pods
            .extend(state.parked_pods.remove(&place).into_iter().flatten());
        svc.replicasets.insert(name, rs);
    }
}

fn pod(state: &mut State, at: Place, pod: PodSeen) -> Vec<ServiceKey> {
    let Some(info) = pod.info else {
        return Vec::new();
    };
    let rs = info.replicaset.clone();
    let info = (!at.gone).then_some(info);
    let owner = state.rs_owner.get(&(at.ns.clone(), rs.clone())).cloned();
    let Some(key) = owner
        .map(|d| ServiceKey::new(&at.ns, &d))
        .filter(|k| state.services.contains_key(k))
    else {
        // Its ReplicaSet has not arrived yet: keep it until it does.
        let parked = state.parked_pods.entry((at.ns, rs)).or_default();
        match info {
            Some(info) => parked.insert(at.name, info),
            None => parked.remove(&at.name),
        };
        return Vec::new();
    };
    let svc = state.services.get_mut(&key).expect("checked above");
    match info {
        Some(info) => svc.pods.insert(at.name, info),
        None => svc.pods.remove(&at.name),
    };
    relineage(state, &key);
    vec![key]
}

fn lease(state: &mut State, at: Place, lease: &k8s_openapi::api::coordination::v1::Lease) {
    let spec = lease.spec.as_ref();
    let holder = spec
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty() && !at.gone);
    // Deleted, or released (its holder cleared): nobody holds it.
    match holder {
        Some(holder) => {
            let since = spec.and_then(|s| s.acquire_time.as_ref()).map(|t| t.0);
            state.leases.insert((at.ns, at.name), (holder, since))
        }
        None => state.leases.remove(&(at.ns, at.name)),
    };
}

fn event(state: &mut State, namespace: String, ev: &k8s_openapi::api::core::v1::Event) {
    state.events.push_back(EventInfo {
        at: ev
            .last_timestamp
            .as_ref()
            .or(ev.first_timestamp.as_ref())
            .map(|t| t.0)
            .or(ev.event_time.as_ref().map(|t| t.0)),
        namespace,
        object: format!(
            "{}/{}",
            ev.involved_object.kind.clone().unwrap_or_default(),
            ev.involved_object.name.clone().unwrap_or_default()
        ),
        reason: ev.reason.clone().unwrap_or_default(),
        message: ev.message.clone().unwrap_or_default(),
        source: ev
            .reporting_component
            .clone()
            .or(ev.source.as_ref().and_then(|s| s.component.clone()))
            .unwrap_or_default(),
    });
    while state.events.len() > EVENTS_KEPT {
        state.events.pop_front();
    }
}

/// Re-reads a service's past from its ReplicaSets, and keeps the cluster-wide
/// cooldown aware of automatic rollbacks any backout made.
pub(super) fn relineage(state: &mut State, key: &ServiceKey) {
    let Some(svc) = state.services.get_mut(key) else {
        return;
    };
    svc.lineage = super::lineage::of(svc);
    let automatic = svc
        .lineage
        .rollbacks
        .iter()
        .filter(|r| r.automatic)
        .filter_map(|r| r.at)
        .max();
    state.last_auto_rollback = state.last_auto_rollback.max(automatic);
}
