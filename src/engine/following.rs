//! Following a rollback this process did not make: one the cluster shows (by
//! kubectl, another backout, a CI job), or the winner of a race this process lost. It
//! is journaled as seen and verified like this process's own, so a second console,
//! the loser of a race and a restarted watcher tell one story.

use super::model::journal::Entry;
use super::model::lineage::SeenRollback;
use super::model::msg::Effect;
use super::model::rollback::{Phase, Preview, Progress};
use super::rollout;
use super::state::{Service, ServiceKey, State};
use super::verification;

fn preview_of(svc: &Service, r: &SeenRollback) -> Preview {
    let history = rollout::history(svc.replicasets.values());
    let find = |rs: Option<&str>| history.iter().find(|h| Some(h.replicaset.as_str()) == rs);
    let from = find(r.from_replicaset.as_deref());
    let to = find(Some(&r.to_replicaset));
    Preview {
        from_revision: from.map_or(0, |h| h.number),
        from_images: from.map_or_else(Vec::new, |h| h.images.clone()),
        to_revision: r.revision,
        to_images: to.map_or_else(Vec::new, |h| h.images.clone()),
        already_there: false,
        kubectl: String::new(),
        resource_version: String::new(),
        to_replicaset: r.to_replicaset.clone(),
        from_replicaset: r.from_replicaset.clone().unwrap_or_default(),
        switch: None,
        abort: false,
        revert: None,
        flag: None,
    }
}

/// A rollback the cluster shows and this process did not make: follow it as if it
/// were ours (journaled as seen, verified the same way), so a second console, the
/// loser of a race and a restarted watcher tell one story.
pub fn adopt(state: &mut State, key: &ServiceKey, effects: &mut Vec<Effect>) {
    let now = state.now;
    let blackout = state.config.policy.blackout;
    let Some(svc) = state.services.get(key) else {
        return;
    };
    let Some(seen) = svc
        .lineage
        .latest()
        .filter(|_| svc.lineage.current_is_rollback)
        .cloned()
    else {
        return;
    };
    let recent = seen
        .at
        .is_none_or(|at| verification::elapsed(now, at) < blackout);
    let covered = svc.rollback.as_ref().is_some_and(|p| {
        p.revision == Some(seen.revision) || (p.running() && p.phase != Phase::Following)
    });
    if !recent || covered {
        return;
    }
    let plan = preview_of(svc, &seen);
    let decision = svc.decision.clone();
    let incident = svc.incident.clone();
    let following = state
        .services
        .get_mut(key)
        .and_then(|s| s.rollback.take())
        .filter(|p| p.phase == Phase::Following);
    let mut p = following.unwrap_or_else(|| {
        let reason = seen
            .reason
            .clone()
            .unwrap_or_else(|| "seen in the cluster".into());
        let mut p = Progress::new(now, seen.automatic, reason, seen.by.clone(), false);
        p.started = seen.at.unwrap_or(now);
        p.phase = Phase::Following;
        p.decision = Some(Box::new(decision));
        Box::new(p)
    });
    p.by.clone_from(&seen.by);
    p.plan = Some(plan.clone());
    p.committed = true;
    p.revision = Some(seen.revision);
    let svc = state.services.get_mut(key).expect("checked above");
    svc.rollback = Some(p);
    effects.push(state.journal(
        incident,
        &key.to_string(),
        Entry::Rollback {
            from_revision: plan.from_revision,
            from_images: plan.from_images,
            to_revision: plan.to_revision,
            to_images: plan.to_images,
            by: seen.by,
            reason: seen.reason.unwrap_or_else(|| "seen in the cluster".into()),
            automatic: seen.automatic,
        },
    ));
    verification::begin(state, key);
}
