//! What a Deployment's ReplicaSets say about its past, whoever made it: which
//! revisions were rollbacks (a template returning, as `kubectl rollout undo`, another
//! backout, Argo CD or a CI job makes it), and which templates were rolled back from.
//!
//! Every process derives the same answer from the cluster alone, so a restarted
//! watcher, a second console and the CLI agree on what is known bad. backout's own
//! rollbacks add who, why and when through an annotation its patch puts on the
//! Deployment, which the Deployment controller copies onto the ReplicaSet it reuses.

pub use super::model::lineage::*;

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::model::flags::FlagState;
use super::rollout::Revision;
use super::state::{Service, ServiceKey, State};

/// Every revision number a ReplicaSet has held: the ones it left, then its current one.
fn numbers(rs: &Revision) -> Vec<u64> {
    let mut held = rs.held_before.clone();
    if rs.number > 0 {
        held.push(rs.number);
    }
    held
}

fn record(rs: &Revision, revision: u64) -> Option<RollbackRecord> {
    let r: RollbackRecord = serde_json::from_str(rs.rollback_record.as_deref()?).ok()?;
    (r.revision == revision && r.to_replicaset == rs.replicaset).then_some(r)
}

/// The earliest start of the ReplicaSet's pods: a reused ReplicaSet was scaled up by
/// the rollback, so its pods are no older than it.
fn pods_started(svc: &Service, replicaset: &str) -> Option<Timestamp> {
    svc.pods
        .values()
        .filter(|p| p.replicaset == replicaset)
        .filter_map(|p| p.created)
        .min()
}

/// Reads the Deployment's past from its ReplicaSets.
pub fn of(svc: &Service) -> Lineage {
    let mut at_revision: BTreeMap<u64, &Revision> = BTreeMap::new();
    for rs in svc.replicasets.values() {
        for n in numbers(rs) {
            at_revision.insert(n, rs);
        }
    }
    let current = at_revision.keys().next_back().copied();
    let mut lineage = Lineage::default();
    for (&n, &rs) in &at_revision {
        let returned = numbers(rs).iter().any(|&earlier| earlier < n);
        if !returned {
            continue;
        }
        let to = rs.replicaset.clone();
        // Going back to a template someone rolled back from is a deploy of a known-bad
        // build, not a rollback: it must not mark the good one as bad.
        if lineage.is_known_bad(&to) {
            continue;
        }
        let recorded = record(rs, n);
        let from = recorded
            .as_ref()
            .map(|r| r.from_replicaset.clone())
            .or_else(|| at_revision.get(&(n - 1)).map(|rs| rs.replicaset.clone()));
        let seen_live = svc
            .revision_seen
            .get(&n)
            .copied()
            .filter(|_| svc.revision_seen.keys().any(|&earlier| earlier < n));
        // A later revision began after this rollback: a bound when nothing else says.
        let next_began = at_revision
            .range(n + 1..)
            .next()
            .and_then(|(_, rs)| rs.created);
        let at = recorded
            .as_ref()
            .map(|r| r.at)
            .or(seen_live)
            .or_else(|| {
                (Some(n) == current)
                    .then(|| pods_started(svc, &to))
                    .flatten()
            })
            .or(next_began);
        let change_cause = rs.change_cause.as_deref();
        let seen = SeenRollback {
            revision: n,
            from_replicaset: from.clone(),
            to_replicaset: to,
            at,
            by: recorded.as_ref().map_or_else(
                || {
                    change_cause
                        .filter(|c| c.contains("rolled back") || c.contains("rollback"))
                        .map_or(
                            "someone outside backout (kubectl or a controller)".into(),
                            |c| format!("outside backout ({c})"),
                        )
                },
                |r| r.by.clone(),
            ),
            reason: recorded.as_ref().map(|r| r.reason.clone()),
            automatic: recorded.as_ref().is_some_and(|r| r.automatic),
            incident: recorded.as_ref().and_then(|r| r.incident.clone()),
            by_backout: recorded.is_some(),
        };
        if let Some(from) = from {
            lineage.known_bad.insert(
                from.clone(),
                KnownBad {
                    replicaset: from,
                    rollback: seen.clone(),
                },
            );
        }
        lineage.current_is_rollback = Some(n) == current;
        lineage.rollbacks.push(seen);
    }
    if let Some(aborted) = aborted_canary(svc, current) {
        lineage.known_bad.insert(
            aborted.from_replicaset.clone().unwrap_or_default(),
            KnownBad {
                replicaset: aborted.from_replicaset.clone().unwrap_or_default(),
                rollback: aborted.clone(),
            },
        );
        lineage.rollbacks.push(aborted);
    }
    // Marked bad on the object itself (a Lambda function's tag): it outlives the
    // record of the rollback, which the next deploy overwrites.
    let marked = svc.deployment.iter().flat_map(|d| &d.marked_bad);
    for (replicaset, at) in marked {
        lineage
            .known_bad
            .entry(replicaset.clone())
            .or_insert_with(|| KnownBad {
                replicaset: replicaset.clone(),
                rollback: SeenRollback {
                    revision: 0,
                    from_replicaset: Some(replicaset.clone()),
                    to_replicaset: String::new(),
                    at: Some(*at),
                    by: "backout (marked on the function)".into(),
                    reason: None,
                    automatic: false,
                    incident: None,
                    by_backout: true,
                },
            });
    }
    lineage
}

/// An Argo Rollouts canary aborted, by anyone: a rollback from the canary's template
/// to the stable one that makes no revision. It lasts while the abort holds (a new
/// template ends it); backout's record on the Rollout says who, if it was backout.
fn aborted_canary(svc: &Service, current: Option<u64>) -> Option<SeenRollback> {
    let canary = svc.deployment.as_ref()?.canary.as_ref()?;
    if !canary.aborted || canary.canary_replicaset == canary.stable_replicaset {
        return None;
    }
    let from = &canary.canary_replicaset;
    let revision = current.unwrap_or(0);
    let recorded = canary
        .record
        .as_deref()
        .and_then(|r| serde_json::from_str::<RollbackRecord>(r).ok())
        .filter(|r| r.from_replicaset == *from && r.to_replicaset == canary.stable_replicaset);
    Some(SeenRollback {
        revision,
        from_replicaset: Some(from.clone()),
        to_replicaset: canary.stable_replicaset.clone(),
        at: recorded.as_ref().map(|r| r.at).or(canary.aborted_at),
        by: recorded.as_ref().map_or_else(
            || "someone outside backout (kubectl argo rollouts abort, or an analysis)".into(),
            |r| r.by.clone(),
        ),
        reason: recorded.as_ref().map(|r| r.reason.clone()),
        automatic: recorded.as_ref().is_some_and(|r| r.automatic),
        incident: recorded.as_ref().and_then(|r| r.incident.clone()),
        by_backout: recorded.is_some(),
    })
}

/// When the current revision began rolling out. A new ReplicaSet is created by its
/// deploy; a template that returned (a rollback, or a known-bad build re-deployed)
/// is dated by the lineage or its pods, since its ReplicaSet's creation is when the
/// template first shipped. Seen changing this session is the last resort.
pub fn deployed_at(svc: &Service, history: &[Revision]) -> Option<Timestamp> {
    let current = history.last()?;
    let seen_live = || {
        svc.revision_seen
            .get(&current.number)
            .copied()
            .filter(|_| svc.revision_seen.len() > 1)
    };
    if !current.returned {
        return current.created.or_else(seen_live);
    }
    svc.lineage
        .rollbacks
        .iter()
        .find(|r| r.revision == current.number)
        .and_then(|r| r.at)
        .or_else(seen_live)
        .or_else(|| {
            svc.pods
                .values()
                .filter(|p| p.replicaset == current.replicaset)
                .filter_map(|p| p.created)
                .min()
        })
}

/// The revision a rollback goes to: the newest before the current one, as `kubectl
/// rollout undo` picks, except a template anyone rolled back from. Right after a
/// rollback the signal is still draining, and "back" would be the bad build.
pub fn target<'a>(svc: &Service, history: &'a [Revision]) -> Option<&'a Revision> {
    // A canary under way goes back to its stable ReplicaSet, whatever its number.
    let canary = svc.deployment.as_ref().and_then(|d| d.canary.as_ref());
    if let Some(c) = canary.filter(|c| c.in_progress()) {
        return history
            .iter()
            .find(|r| r.replicaset == c.stable_replicaset)
            .filter(|r| !svc.lineage.is_known_bad(&r.replicaset));
    }
    history
        .iter()
        .rev()
        .skip(1)
        .find(|r| !svc.lineage.is_known_bad(&r.replicaset))
}

/// When this service was last rolled back, by anyone: this process's memory, or the
/// cluster's. A rollback whose time nothing tells is taken as now: unknown is never
/// "long ago".
pub fn last_rollback(state: &State, key: &ServiceKey) -> Option<(Timestamp, String)> {
    last_rollback_of(state, key, state.services.get(key)?)
}

/// `last_rollback` of `svc`, the service under `key`, already looked up.
pub fn last_rollback_of(
    state: &State,
    key: &ServiceKey,
    svc: &Service,
) -> Option<(Timestamp, String)> {
    let (at, by) = latest_rollback(&state.flags, key, svc, state.now)?;
    let by = match by {
        RolledBackBy::Flag(f) => format!(
            "{} (flag {} turned off)",
            f.changed_by.as_deref().unwrap_or("someone"),
            f.name
        ),
        RolledBackBy::Cluster(r) if r.at.is_none() => {
            format!("{}, at a time the cluster does not tell", r.by)
        }
        RolledBackBy::Cluster(r) => r.by.clone(),
        RolledBackBy::Patch(by) => by.to_string(),
        RolledBackBy::Backout => "backout".to_string(),
    };
    Some((at, by))
}

/// When `svc` was last rolled back, as `last_rollback_of` finds it, without the words:
/// every answer of a poll asks, for thousands of services.
pub fn last_rollback_at(
    flags: &BTreeMap<String, FlagState>,
    key: &ServiceKey,
    svc: &Service,
    now: Timestamp,
) -> Option<Timestamp> {
    latest_rollback(flags, key, svc, now).map(|(at, _)| at)
}

/// Who rolled a service back; put into words only for the one shown.
enum RolledBackBy<'a> {
    Flag(&'a FlagState),
    Cluster(&'a SeenRollback),
    Patch(&'a str),
    Backout,
}

fn latest_rollback<'a>(
    flags: &'a BTreeMap<String, FlagState>,
    key: &ServiceKey,
    svc: &'a Service,
    now: Timestamp,
) -> Option<(Timestamp, RolledBackBy<'a>)> {
    let from_cluster = svc
        .lineage
        .latest()
        .map(|r| (r.at.unwrap_or(now), RolledBackBy::Cluster(r)));
    // This process's own rollback counts from its patch, before the cluster shows it.
    let patched = svc
        .rollback
        .as_ref()
        .filter(|p| p.committed)
        .map(|p| (p.started, RolledBackBy::Patch(&p.by)));
    // A kill switch thrown by anyone: the flag's provider says when, for every process.
    let killed = flags
        .values()
        .filter(|f| f.service == *key)
        .filter_map(|f| Some((f.turned_off_at()?, RolledBackBy::Flag(f))));
    let own = svc
        .last_rollback
        .map(|t| (t, RolledBackBy::Backout))
        .into_iter()
        .chain(patched)
        .chain(killed)
        .max_by_key(|(t, _)| *t);
    match (from_cluster, own) {
        (Some(c), Some(o)) => Some(if c.0 >= o.0 { c } else { o }),
        (c, o) => c.or(o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::PodInfo;
    use crate::k8s::template::{REVISION, REVISION_HISTORY, ROLLBACK_RECORD};
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use serde_json::json;

    fn rs(name: &str, revision: u64, history: &str, extra: serde_json::Value) -> ReplicaSet {
        let mut annotations = json!({REVISION: revision.to_string()});
        if !history.is_empty() {
            annotations[REVISION_HISTORY] = json!(history);
        }
        if let Some(m) = extra.as_object() {
            for (k, v) in m {
                annotations[k] = v.clone();
            }
        }
        serde_json::from_value(
            json!({"metadata": {"name": name, "annotations": annotations,
            "creationTimestamp": "2027-01-15T08:00:00Z"}}),
        )
        .unwrap()
    }

    fn service(sets: Vec<ReplicaSet>) -> Service {
        let mut svc = Service::default();
        for rs in sets {
            let revision = Revision::of(&rs);
            svc.replicasets
                .insert(revision.replicaset.clone(), Box::new(revision));
        }
        svc
    }

    #[test]
    fn a_returning_template_is_a_rollback_and_the_one_it_left_is_known_bad() {
        // 1: a, 2: b, then `kubectl rollout undo`: a becomes 3.
        let svc = service(vec![rs("a", 3, "1", json!({})), rs("b", 2, "", json!({}))]);
        let l = of(&svc);
        assert!(l.current_is_rollback);
        assert_eq!(l.rollbacks.len(), 1);
        assert_eq!(l.rollbacks[0].from_replicaset.as_deref(), Some("b"));
        assert!(l.is_known_bad("b") && !l.is_known_bad("a"));
        assert!(l.rollbacks[0].by.contains("outside backout"));
    }

    #[test]
    fn re_deploying_a_known_bad_template_is_a_deploy_and_leaves_the_good_one_good() {
        // 1: a, 2: b, 3: a (rollback), 4: b again, by hand.
        let svc = service(vec![rs("a", 3, "1", json!({})), rs("b", 4, "2", json!({}))]);
        let l = of(&svc);
        assert_eq!(l.rollbacks.len(), 1, "{l:?}");
        assert!(l.is_known_bad("b") && !l.is_known_bad("a"));
        assert!(!l.current_is_rollback);
    }

    #[test]
    fn backouts_record_names_who_and_when_only_where_it_belongs() {
        let at: Timestamp = "2027-01-15T09:00:00Z".parse().unwrap();
        let record = |revision| {
            json!({ROLLBACK_RECORD: serde_json::to_string(&RollbackRecord {
                revision, from_replicaset: "b".into(), to_replicaset: "a".into(), at,
                by: "dana@laptop".into(), reason: "error-rate 14%".into(), automatic: true, incident: None,
            }).unwrap()})
        };
        let svc = service(vec![rs("a", 3, "1", record(3)), rs("b", 2, "", json!({}))]);
        let l = of(&svc);
        let r = &l.rollbacks[0];
        assert_eq!(
            (r.by.as_str(), r.at, r.automatic),
            ("dana@laptop", Some(at), true)
        );
        // A record copied along with the annotations, at another revision, is ignored.
        let svc = service(vec![rs("a", 3, "1", record(7)), rs("b", 2, "", json!({}))]);
        assert!(!of(&svc).rollbacks[0].by_backout);
    }

    #[test]
    fn without_a_record_the_rollback_is_dated_by_its_pods() {
        let started: Timestamp = "2027-01-15T09:30:00Z".parse().unwrap();
        let mut svc = service(vec![rs("a", 3, "1", json!({})), rs("b", 2, "", json!({}))]);
        svc.pods.insert(
            "a-1".into(),
            PodInfo {
                ready: true,
                restarts: 0,
                replicaset: "a".into(),
                created: Some(started),
                ..PodInfo::default()
            },
        );
        assert_eq!(of(&svc).rollbacks[0].at, Some(started));
    }

    #[test]
    fn undoing_twice_never_returns_to_the_template_rolled_back_from() {
        // 1: a, 2: b, 3: c; undo → b is 4; a second kubectl undo would pick c (3).
        let svc = service(vec![
            rs("a", 1, "", json!({})),
            rs("b", 4, "2", json!({})),
            rs("c", 3, "", json!({})),
        ]);
        let l = of(&svc);
        assert!(l.is_known_bad("c") && !l.is_known_bad("a") && !l.is_known_bad("b"));
    }
}
