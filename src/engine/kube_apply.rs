//! Applying Kubernetes changes to the state: which service a Deployment, ReplicaSet
//! or Pod belongs to, relists that replace what they cover, and when a ConfigMap or
//! Secret last changed. Part of `update`, and as pure.

use std::collections::BTreeSet;

use super::msg::{KubeChange, KubeKind, KubeObject};
use super::rollout;
use super::state::{ConfigObject, EventInfo, PodInfo, ServiceKey, State, EVENTS_KEPT};

fn ns_name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn owner(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: &str,
) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == kind && o.controller == Some(true))
        .map(|o| o.name.clone())
}

/// Applies a Kubernetes change; returns the services whose decisions it may move.
pub(super) fn kube(state: &mut State, change: KubeChange) -> Vec<ServiceKey> {
    match change {
        KubeChange::Applied(obj) => apply(state, obj, false),
        KubeChange::Deleted(obj) => apply(state, obj, true),
        KubeChange::Relisted {
            kind,
            namespace,
            objects,
        } => {
            let first_sync = !state.synced.contains(&kind);
            forget_kind(state, kind, &namespace);
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
                    .filter(|k| k.namespace == namespace)
                    .cloned(),
            );
            touched.into_iter().collect()
        }
    }
}

/// Drops what a relist replaces, so deletions missed during a disconnect disappear.
fn forget_kind(state: &mut State, kind: KubeKind, namespace: &str) {
    match kind {
        KubeKind::ReplicaSet => state
            .services
            .iter_mut()
            .filter(|(k, _)| k.namespace == namespace)
            .for_each(|(_, s)| s.replicasets.clear()),
        KubeKind::Pod => {
            state
                .services
                .iter_mut()
                .filter(|(k, _)| k.namespace == namespace)
                .for_each(|(_, s)| s.pods.clear());
            state.parked_pods.retain(|(ns, _), _| ns != namespace);
        }
        KubeKind::Job => state.jobs.retain(|(ns, _), _| ns != namespace),
        KubeKind::Hpa => state.hpas.retain(|(ns, _), _| ns != namespace),
        KubeKind::Lease => state.leases.retain(|(ns, _), _| ns != namespace),
        _ => {}
    }
}

fn remember_config(
    state: &mut State,
    kind: KubeKind,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    seen_live: bool,
) {
    let label = if kind == KubeKind::ConfigMap {
        "ConfigMap"
    } else {
        "Secret"
    };
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
    let in_ns = |state: &State| {
        state
            .services
            .keys()
            .filter(|k| k.namespace == ns)
            .cloned()
            .collect::<Vec<_>>()
    };
    match obj {
        KubeObject::Deployment(d) => {
            let key = ServiceKey::new(&ns, &name);
            if deleted {
                state.services.remove(&key);
                return Vec::new();
            }
            if !state.watches(&ns, &name, d.metadata.labels.as_ref()) {
                return Vec::new();
            }
            let now = state.now;
            let svc = state.services.entry(key.clone()).or_default();
            let revision = d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(rollout::REVISION))
                .and_then(|r| r.parse().ok());
            if let Some(rev) = revision {
                svc.revision_seen.entry(rev).or_insert(now);
            }
            svc.deployment = Some(*d);
            relineage(state, &key);
            vec![key]
        }
        KubeObject::ReplicaSet(rs) => {
            let Some(deployment) = owner(&rs.metadata, "Deployment") else {
                return Vec::new();
            };
            let key = ServiceKey::new(&ns, &deployment);
            if deleted {
                state.rs_owner.remove(&(ns.clone(), name.clone()));
            } else {
                state
                    .rs_owner
                    .insert((ns.clone(), name.clone()), deployment.clone());
            }
            let parked = state.parked_pods.remove(&(ns.clone(), name.clone()));
            let svc = state.services.entry(key.clone()).or_default();
            if deleted {
                svc.replicasets.remove(&name);
            } else {
                svc.replicasets.insert(name, *rs);
                svc.pods.extend(parked.into_iter().flatten());
            }
            relineage(state, &key);
            vec![key]
        }
        KubeObject::Pod(pod) => {
            let Some(rs) = owner(&pod.metadata, "ReplicaSet") else {
                return Vec::new();
            };
            let info = (!deleted).then(|| pod_info(&pod, &rs));
            let owner = state.rs_owner.get(&(ns.clone(), rs.clone())).cloned();
            let Some(svc) = owner
                .as_ref()
                .and_then(|d| state.services.get_mut(&ServiceKey::new(&ns, d)))
            else {
                // Its ReplicaSet has not arrived yet: keep it until it does.
                let parked = state.parked_pods.entry((ns, rs)).or_default();
                match info {
                    Some(info) => parked.insert(name, info),
                    None => parked.remove(&name),
                };
                return Vec::new();
            };
            match info {
                Some(info) => svc.pods.insert(name, info),
                None => svc.pods.remove(&name),
            };
            let key = ServiceKey::new(&ns, owner.as_deref().unwrap_or_default());
            relineage(state, &key);
            vec![key]
        }
        KubeObject::Job(job) => {
            if deleted {
                state.jobs.remove(&(ns.clone(), name));
            } else {
                state.jobs.insert((ns.clone(), name), *job);
            }
            in_ns(state)
        }
        KubeObject::Hpa(hpa) => {
            if deleted {
                state.hpas.remove(&(ns.clone(), name));
            } else if let Some(target) = hpa
                .spec
                .as_ref()
                .filter(|s| s.scale_target_ref.kind == "Deployment")
            {
                state
                    .hpas
                    .insert((ns.clone(), name), target.scale_target_ref.name.clone());
            }
            in_ns(state)
        }
        KubeObject::Lease(lease) => {
            let holder = lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty());
            // Deleted, or released (its holder cleared): nobody holds it.
            if deleted || holder.is_none() {
                state.leases.remove(&(ns, name));
            } else if let (Some(spec), Some(holder)) = (&lease.spec, holder) {
                state.leases.insert(
                    (ns, name),
                    (holder, spec.acquire_time.as_ref().map(|t| t.0)),
                );
            }
            Vec::new()
        }
        KubeObject::Event(ev) => {
            if !deleted {
                state.events.push_back(EventInfo {
                    at: ev
                        .last_timestamp
                        .as_ref()
                        .or(ev.first_timestamp.as_ref())
                        .map(|t| t.0)
                        .or(ev.event_time.as_ref().map(|t| t.0)),
                    namespace: ns,
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
            Vec::new()
        }
        KubeObject::ConfigMap(_) if deleted => {
            state
                .config_objects
                .remove(&(ns.clone(), "ConfigMap", name));
            in_ns(state)
        }
        KubeObject::Secret(_) if deleted => {
            state.config_objects.remove(&(ns.clone(), "Secret", name));
            in_ns(state)
        }
        other @ (KubeObject::ConfigMap(_) | KubeObject::Secret(_)) => {
            let kind = other.kind();
            remember_config(state, kind, other.meta(), true);
            in_ns(state)
        }
    }
}

fn pod_info(pod: &k8s_openapi::api::core::v1::Pod, replicaset: &str) -> PodInfo {
    let status = pod.status.as_ref();
    PodInfo {
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        restarts: status
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |c| c.iter().map(|c| c.restart_count).sum()),
        replicaset: replicaset.into(),
        created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
    }
}

/// Re-reads a service's past from its ReplicaSets, and keeps the cluster-wide
/// cooldown aware of automatic rollbacks any backout made.
fn relineage(state: &mut State, key: &ServiceKey) {
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
