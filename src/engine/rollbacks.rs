//! A rollback's life in the state, from the dialog's dry-run preview to its verified
//! end: what the console shows live, and what the journal keeps for the handoff.

pub use super::model::rollback::*;

use super::model::journal::Entry;
use super::model::msg::Effect;
use super::state::{ServiceKey, State};

/// Why `to_revision` may not be rolled back to by this request: it was rolled back
/// from. Only a person who chose that revision by number may re-deploy it.
fn known_bad(state: &State, key: &ServiceKey, to_revision: u64) -> Option<RollbackError> {
    let svc = state.services.get(key)?;
    Some(RollbackError::KnownBad {
        revision: to_revision,
        why: svc.why_revision_bad(to_revision, state.now)?,
    })
}

/// `key`'s pods carry the label of a configured blue-green Service: it may be a live
/// colour, rolled back by a switch that needs no earlier revision. Only the runner's
/// read of the Service tells; without a revision it refuses anything but a switch.
pub fn may_switch(state: &State, key: &ServiceKey) -> bool {
    let Some(labels) = state
        .services
        .get(key)
        .and_then(|s| s.deployment.as_ref())
        .map(|d| &d.template_labels)
    else {
        return false;
    };
    state.config.blue_green.iter().any(|bg| {
        bg.namespace.as_deref().is_none_or(|n| n == key.namespace) && labels.contains_key(&bg.label)
    })
}

/// Orders a rollback of `key`, unless one is under way (by anyone): pressing `r`
/// twice, two triggers at once or a second engineer never makes a second. A request
/// without a revision goes to the decision's target, never to a known-bad template.
pub fn order(state: &mut State, key: &ServiceKey, request: Request, effects: &mut Vec<Effect>) {
    let Some(svc) = state.services.get(key) else {
        return;
    };
    let chosen = request.to_revision.filter(|_| !request.automatic);
    if let Some(running) = svc.rollback.as_ref().filter(|p| p.running()) {
        // Never two at once; but a person who names a revision while an earlier
        // rollback is only being verified wants to go further back: that rollback
        // has landed, so its verification gives way to the new order.
        let (Some(n), true) = (chosen, running.committed) else {
            return;
        };
        let why = format!(
            "superseded: {} ordered a rollback to revision {n}",
            request.by
        );
        super::verification::abandon(state, key, &why, effects);
    }
    let Some(svc) = state.services.get(key) else {
        return;
    };
    let to_revision = request
        .to_revision
        .or_else(|| svc.decision.target.as_ref().map(|t| t.revision));
    let refused = match to_revision {
        None if may_switch(state, key) => None,
        None => Some(RollbackError::NoHistory(key.name.clone())),
        Some(n) if chosen.is_none() => known_bad(state, key, n),
        Some(_) => None,
    };
    let now = state.now;
    let svc = state.services.get_mut(key).expect("checked above");
    let mut progress = Progress::new(
        now,
        request.automatic,
        request.reason.clone(),
        request.by.clone(),
        true,
    );
    progress.decision = Some(Box::new(svc.decision.clone()));
    let incident = svc.incident.clone();
    if let Some(refused) = refused {
        progress.phase = Phase::Ended;
        progress.ended = Some((now, Err(refused.to_string())));
        svc.rollback = Some(Box::new(progress));
        let entry = Entry::RollbackFailed {
            to_revision: to_revision.unwrap_or(0),
            by: request.by,
            error: refused.to_string(),
        };
        effects.push(state.journal(incident, &key.to_string(), entry));
        return;
    }
    svc.rollback = Some(Box::new(progress));
    let kind = svc.deployment.as_ref().map(|d| d.kind).unwrap_or_default();
    effects.push(Effect::Rollback(RollbackOrder {
        service: key.clone(),
        kind,
        to_revision,
        automatic: request.automatic,
        reason: request.reason,
        incident,
        expected: request.expected,
    }));
}

/// Records a step of this process's rollback; the commit is journaled as it happens.
pub fn step(state: &mut State, key: &ServiceKey, step: Step, effects: &mut Vec<Effect>) {
    let now = state.now;
    let Some(svc) = state.services.get_mut(key) else {
        return;
    };
    let incident = svc.incident.clone();
    let Some(progress) = svc.rollback.as_mut().filter(|p| p.running()) else {
        return;
    };
    match step {
        Step::Prepared(plan) => progress.plan = Some(plan),
        Step::Probed(checks) => {
            progress.checks.extend(checks);
            super::verification::finish(state, key, effects);
        }
        Step::AlreadyThere => {
            let to = progress.plan.as_ref().map_or(0, |p| p.to_revision);
            progress.phase = Phase::Ended;
            progress.ended = Some((
                now,
                Err(format!(
                    "already there: revision {to}'s template is running; nothing was changed"
                )),
            ));
            let entry = Entry::AlreadyThere {
                to_revision: to,
                by: progress.by.clone(),
            };
            effects.push(state.journal(incident, &key.to_string(), entry));
            effects.push(Effect::ReleaseLease {
                service: key.clone(),
            });
        }
        Step::Committed { by, at } => {
            progress.committed = true;
            progress.by.clone_from(&by);
            let Some(plan) = progress.plan.clone() else {
                return;
            };
            let entry = match plan.switch {
                // A switch makes no revision: verification watches the colour that
                // takes the traffic back instead.
                Some(s) => Entry::Switch {
                    label: s.label,
                    from: s.from,
                    to: s.to,
                    by,
                    reason: progress.reason.clone(),
                },
                None => {
                    // An abort makes no revision: the canary's stays current.
                    let made = if plan.abort { 0 } else { 1 };
                    progress.revision = Some(plan.from_revision + made);
                    Entry::Rollback {
                        from_revision: plan.from_revision,
                        from_images: plan.from_images,
                        to_revision: plan.to_revision,
                        to_images: plan.to_images,
                        by,
                        reason: progress.reason.clone(),
                        automatic: progress.automatic,
                    }
                }
            };
            effects.push(state.journal_at(at, incident, &key.to_string(), entry));
            super::verification::begin(state, key);
        }
    }
}

/// The dialog opened: ask the API server for a dry run of this target.
pub fn preview(
    state: &mut State,
    key: &ServiceKey,
    to_revision: Option<u64>,
    switch_to: Option<String>,
) -> Option<Effect> {
    let svc = state.services.get_mut(key)?;
    let to_replicaset = to_revision.and_then(|n| svc.replicaset_at(n).map(String::from));
    svc.preview = Some(Box::new(PreviewState {
        to_revision,
        result: None,
    }));
    Some(Effect::Preview {
        service: key.clone(),
        kind: svc.deployment.as_ref().map(|d| d.kind).unwrap_or_default(),
        to_revision,
        to_replicaset,
        switch_to,
    })
}

/// The dry run answered; an answer for a target no longer asked about is dropped.
pub fn previewed(
    state: &mut State,
    key: &ServiceKey,
    to_revision: Option<u64>,
    result: Result<Preview, String>,
) {
    if let Some(p) = state
        .services
        .get_mut(key)
        .and_then(|s| s.preview.as_mut())
        .filter(|p| p.to_revision == to_revision)
    {
        p.result = Some(result);
    }
}

/// This process's rollback did not happen. If someone else's did (a held Lease, or a
/// patch that lost the race), follow theirs; otherwise journal and page why.
pub fn failed(
    state: &mut State,
    key: &ServiceKey,
    error: RollbackError,
    effects: &mut Vec<Effect>,
) {
    let now = state.now;
    let Some(svc) = state.services.get_mut(key) else {
        return;
    };
    let incident = svc.incident.clone();
    let Some(progress) = svc.rollback.as_mut().filter(|p| p.running()) else {
        return;
    };
    let planned = progress.plan.as_ref().map_or(0, |p| p.to_revision);
    let by = progress.by.clone();
    effects.push(state.journal(
        incident.clone(),
        &key.to_string(),
        Entry::RollbackFailed {
            to_revision: planned,
            by,
            error: error.to_string(),
        },
    ));
    let svc = state.services.get_mut(key).expect("checked above");
    let progress = svc.rollback.as_mut().expect("checked above");
    // Someone else is rolling back (their Lease, or their patch first): follow them.
    let winner = match &error {
        RollbackError::Held {
            holder, expires, ..
        } => Some((holder.clone(), *expires)),
        RollbackError::Preempted { .. } => Some(("someone else".to_string(), None)),
        _ => None,
    };
    if let Some((by, lease_expires)) = winner {
        progress.lease_expires = lease_expires;
        progress.ours = false;
        progress.by = by;
        progress.phase = Phase::Following;
        progress.phase_since = now;
        super::following::adopt(state, key, effects);
        return;
    }
    progress.phase = Phase::Ended;
    progress.ended = Some((now, Err(error.to_string())));
    let attempt = progress.attempt;
    let again = (progress.automatic && !error.is_final()).then(|| {
        let pause = retry_pause(attempt);
        progress.retry_at = Some(now + pause);
        pause
    });
    if error.is_final() {
        svc.no_auto = Some(format!("the rollback at {now} did not happen: {error}"));
    }
    // One page for a run of tries: the retries are journaled, not paged again.
    let summary = match again {
        Some(_) if attempt > 1 => return,
        Some(pause) => format!(
            "rollback not done: {error}; backout tries again in {}s, and with longer pauses after, while the decision holds",
            pause.as_secs()
        ),
        None => format!("rollback not done: {error}"),
    };
    effects.push(Effect::Page {
        service: key.clone(),
        summary,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::*;
    // The module has its own `step` and `preview`; the tests mean the fixtures'.
    use crate::engine::fixtures::{preview, step};
    use crate::engine::msg::Outcome;
    use crate::engine::{update, Msg};

    #[test]
    fn each_step_shows_live_and_the_commit_and_the_verified_end_are_journaled() {
        let mut state = world("");
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        let effects = request(&mut state, Some(1), false);
        assert!(
            matches!(effects.first(), Some(Effect::Rollback(order)) if order.to_revision == Some(1)),
            "a rollback is ordered: {effects:?}"
        );
        assert!(journaled(&step(&mut state, Step::Prepared(preview(2, 1)))).is_empty());
        // The runner saw the patch land after the engine's last tick.
        let landed = state.now + jiff::SignedDuration::from_millis(40);
        let committed = step(
            &mut state,
            Step::Committed {
                by: "alice@bastion".into(),
                at: landed,
            },
        );
        assert!(
            matches!(&committed[..], [Effect::Journal(r), ..] if r.at == landed),
            "the record is stamped when the patch landed: {committed:?}"
        );
        assert!(matches!(
            journaled(&committed)[..],
            [Entry::Rollback { from_revision: 2, to_revision: 1, by, automatic: false, .. }] if by == "alice@bastion"
        ));
        let live = state.services[&key("checkout")].rollback.clone().unwrap();
        assert_eq!(live.phase, Phase::RollingOut);
        assert_eq!(live.waits.len(), 1, "verification waits on what fired");
        assert_eq!(live.waits[0].trigger, "error-rate");

        let mut effects =
            reverted_in_cluster(&mut state, Some(record("alice@bastion", 210, false)));
        let hold = state.config.policy.recovery_hold.as_secs() as i64;
        effects.extend(recovers(&mut state, 0.001, 220, 220 + hold + 30));
        let svc = &state.services[&key("checkout")];
        let ended = svc.rollback.as_ref().unwrap();
        assert!(
            matches!(ended.ended, Some((_, Ok(Outcome::Verified)))),
            "{ended:?}"
        );
        let names: Vec<&str> = ended.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "rollout completes",
                "error-rate recovers",
                "every pod ready"
            ]
        );
        assert!(journaled(&effects)
            .iter()
            .any(|e| matches!(e, Entry::Verification { outcome, .. } if outcome == "verified")));
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::ReleaseLease { .. })),
            "the Lease goes back at the end"
        );
        assert!(!svc.rollback_in_flight());
        assert!(svc.last_rollback.is_some());
    }

    #[test]
    fn a_rollback_that_did_not_happen_is_journaled_as_failed_with_its_target() {
        let mut state = world("");
        request(&mut state, Some(1), false);
        step(&mut state, Step::Prepared(preview(2, 1)));
        let effects = update(
            &mut state,
            Msg::RollbackFailed {
                service: key("checkout"),
                error: RollbackError::Forbidden("no patch on deployments".into()),
            },
        );
        assert!(matches!(
            journaled(&effects)[..],
            [Entry::RollbackFailed { to_revision: 1, error, .. }] if error.contains("no patch")
        ));
        let svc = &state.services[&key("checkout")];
        assert!(svc.last_rollback.is_none());
        assert!(svc.no_auto.is_some(), "forbidden will not work by itself");
    }

    #[test]
    fn a_transient_failure_does_not_stop_automatic_rollbacks() {
        let mut state = world("");
        request(&mut state, Some(1), true);
        update(
            &mut state,
            Msg::RollbackFailed {
                service: key("checkout"),
                error: RollbackError::Api("500 etcd timeout".into()),
            },
        );
        assert!(state.services[&key("checkout")].no_auto.is_none());
    }

    #[test]
    fn the_dialog_dry_run_keeps_only_the_answer_for_the_target_still_asked_about() {
        let mut state = world("");
        let ask = |state: &mut State, to| {
            update(
                state,
                Msg::PreviewRequested {
                    service: key("checkout"),
                    to_revision: Some(to),
                    switch_to: None,
                },
            )
        };
        assert!(matches!(
            ask(&mut state, 1)[..],
            [Effect::Preview {
                to_revision: Some(1),
                ..
            }]
        ));
        ask(&mut state, 3);
        let answer = |state: &mut State, to| {
            update(
                state,
                Msg::Previewed {
                    service: key("checkout"),
                    to_revision: Some(to),
                    result: Ok(preview(2, to)),
                },
            )
        };
        answer(&mut state, 1);
        let shown = state.services[&key("checkout")].preview.clone().unwrap();
        assert_eq!(
            (shown.to_revision, shown.result),
            (Some(3), None),
            "a late answer for 1 is dropped"
        );
        answer(&mut state, 3);
        let shown = state.services[&key("checkout")].preview.clone().unwrap();
        assert_eq!(shown.result, Some(Ok(preview(2, 3))));
    }

    #[test]
    fn a_revision_rolled_back_from_is_never_the_next_target() {
        let mut state = world("");
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        assert_eq!(
            state.services[&key("checkout")]
                .decision
                .target
                .as_ref()
                .map(|t| t.revision),
            Some(1)
        );
        // Revision 1 came back (3), and revision 2 was rolled back from; now 3 fails
        // too: going "back" would be revision 2, the bad build.
        reverted_in_cluster(&mut state, None);
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 260);
        let d = &state.services[&key("checkout")].decision;
        assert_eq!(d.target, None);
        let gate_7 = d.gates.iter().find(|g| g.number == 7).unwrap();
        assert!(
            !gate_7.passed && gate_7.evidence.contains("rolled back from (r2)"),
            "{}",
            gate_7.evidence
        );
    }
}
