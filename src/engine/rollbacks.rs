//! A rollback's life in the state, from the dialog's dry-run preview to its verified
//! end: what the console shows live, and what the journal keeps for the handoff.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::decision::Firing;
use super::journal::Entry;
use super::msg::{Effect, Outcome, RollbackOrder, RollbackReport};
use super::state::{ServiceKey, State};
use super::update::{journal, note_rollback};

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
    /// Planned, and accepted by the API server's dry run.
    Prepared(Preview),
    /// The patch landed, or nothing needed sending.
    Committed {
        by: String,
    },
    Checked(Check),
}

/// The rollback under way, or the last one, for the live view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub started: Timestamp,
    pub automatic: bool,
    pub reason: String,
    pub plan: Option<Preview>,
    pub committed: bool,
    pub checks: Vec<Check>,
    /// When and how it ended; `None` while it runs.
    pub ended: Option<(Timestamp, Result<Outcome, String>)>,
}

/// (trigger, query) pairs that fired: what verification waits to see recover.
fn fired_queries(state: &State, key: &ServiceKey, firing: &[Firing]) -> Vec<(String, String)> {
    firing
        .iter()
        .filter_map(|f| state.config.triggers.iter().find(|t| t.name == f.trigger))
        .map(|t| {
            (
                t.name.clone(),
                t.query_for(&key.namespace, &key.name, &key.name),
            )
        })
        .collect()
}

/// Orders a rollback of `key`, unless one is already under way: pressing `r` twice,
/// or two triggers at once, never makes a second.
pub fn order(
    state: &mut State,
    key: &ServiceKey,
    firing: &[Firing],
    to_revision: Option<u64>,
    automatic: bool,
    reason: String,
) -> Option<Effect> {
    let fired = fired_queries(state, key, firing);
    let now = state.now;
    let svc = state
        .services
        .get_mut(key)
        .filter(|s| !s.rollback_in_flight)?;
    svc.rollback_in_flight = true;
    svc.rollback = Some(Progress {
        started: now,
        automatic,
        reason: reason.clone(),
        plan: None,
        committed: false,
        checks: Vec::new(),
        ended: None,
    });
    Some(Effect::Rollback(RollbackOrder {
        service: key.clone(),
        to_revision,
        automatic,
        reason,
        incident: svc.incident.clone(),
        fired,
    }))
}

/// Records a step of the rollback under way; the commit is journaled as it happens.
pub fn step(state: &mut State, key: &ServiceKey, step: Step, effects: &mut Vec<Effect>) {
    let Some(svc) = state.services.get_mut(key) else {
        return;
    };
    let incident = svc.incident.clone();
    let Some(progress) = svc.rollback.as_mut().filter(|p| p.ended.is_none()) else {
        return;
    };
    match step {
        Step::Prepared(plan) => progress.plan = Some(plan),
        Step::Checked(check) => progress.checks.push(check),
        Step::Committed { by } => {
            progress.committed = true;
            let Some(plan) = progress.plan.clone() else {
                return;
            };
            if !plan.already_there {
                svc.rolled_back_from.insert(plan.from_revision);
            }
            let entry = Entry::Rollback {
                from_revision: plan.from_revision,
                from_images: plan.from_images,
                to_revision: plan.to_revision,
                to_images: plan.to_images,
                by,
                reason: progress.reason.clone(),
                automatic: progress.automatic,
            };
            effects.push(journal(state, incident, &key.to_string(), entry));
        }
    }
}

/// The dialog opened: ask the API server for a dry run of this target.
pub fn preview(state: &mut State, key: &ServiceKey, to_revision: Option<u64>) -> Option<Effect> {
    let svc = state.services.get_mut(key)?;
    svc.preview = Some(PreviewState {
        to_revision,
        result: None,
    });
    Some(Effect::Preview {
        service: key.clone(),
        to_revision,
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

/// A rollback ended: start the blackout, or stop automatic rollbacks of this service
/// if it did not help or did not happen; journal and page either way.
pub fn finished(
    state: &mut State,
    report: RollbackReport,
    effects: &mut Vec<Effect>,
) -> Vec<ServiceKey> {
    let key = report.service.clone();
    let Some(svc) = state.services.get_mut(&key) else {
        return Vec::new();
    };
    svc.rollback_in_flight = false;
    let incident = svc.incident.clone();
    let page = match &report.result {
        Ok(Outcome::Verified) => None,
        Ok(outcome) => {
            svc.no_auto = Some(format!(
                "the rollback at {} ended: {}",
                report.at,
                outcome.label()
            ));
            Some(format!(
                "{}: escalating; backout will not roll {key} back automatically again",
                outcome.label()
            ))
        }
        Err(e) => {
            svc.no_auto = Some(format!("the rollback at {} did not happen: {e}", report.at));
            Some(format!("rollback not done: {e}"))
        }
    };
    let planned = svc.rollback.as_ref().and_then(|p| p.plan.clone());
    if let Some(progress) = svc.rollback.as_mut() {
        progress.ended = Some((report.at, report.result.clone()));
        progress.checks.clone_from(&report.checks);
    }
    if report.result.is_ok() {
        note_rollback(state, &key, report.at, report.automatic);
    }
    let entry = match &report.result {
        Ok(o) => Entry::Verification {
            outcome: o.label().to_string(),
            checks: report.checks.iter().map(Check::to_string).collect(),
        },
        Err(e) => Entry::RollbackFailed {
            to_revision: planned.map_or(0, |p| p.to_revision),
            by: report.by.clone(),
            error: e.clone(),
        },
    };
    effects.push(journal(state, incident, &key.to_string(), entry));
    if let Some(summary) = page {
        effects.push(Effect::Page {
            service: key.clone(),
            summary,
        });
    }
    vec![key]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixtures::*;
    // The module has its own `step` and `preview`; the tests mean the fixtures'.
    use crate::engine::fixtures::{preview, step};
    use crate::engine::{update, Msg};

    fn journaled(effects: &[Effect]) -> Vec<&Entry> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Journal(r) => Some(&r.entry),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_step_shows_live_and_the_commit_and_the_end_are_journaled() {
        let mut state = world("");
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        let effects = request(&mut state, Some(1), false);
        let Some(Effect::Rollback(order)) = effects.first() else {
            panic!("a rollback is ordered: {effects:?}");
        };
        assert_eq!(
            order.fired[0].0, "error-rate",
            "verification waits on what fired"
        );
        assert!(journaled(&step(&mut state, Step::Prepared(preview(2, 1)))).is_empty());
        let committed = step(
            &mut state,
            Step::Committed {
                by: "alice@bastion".into(),
            },
        );
        assert!(matches!(
            journaled(&committed)[..],
            [Entry::Rollback { from_revision: 2, to_revision: 1, by, automatic: false, .. }] if by == "alice@bastion"
        ));
        let rollout_done = Check {
            name: "rollout completes".into(),
            passed: true,
            detail: "done".into(),
        };
        step(&mut state, Step::Checked(rollout_done.clone()));
        let live = state.services[&key("checkout")].rollback.clone().unwrap();
        assert!(live.committed && live.ended.is_none());
        assert_eq!(live.checks, std::slice::from_ref(&rollout_done));

        let ended = update(
            &mut state,
            Msg::RollbackFinished(RollbackReport {
                service: key("checkout"),
                automatic: false,
                at: t(260),
                by: "alice@bastion".into(),
                result: Ok(Outcome::Verified),
                checks: vec![rollout_done],
            }),
        );
        let verification = journaled(&ended)
            .into_iter()
            .find_map(|e| match e {
                Entry::Verification { outcome, checks } => Some((outcome.clone(), checks.clone())),
                _ => None,
            })
            .expect("the end is journaled");
        assert_eq!(verification.0, "verified");
        assert_eq!(verification.1, ["✓ rollout completes: done"]);
        let svc = &state.services[&key("checkout")];
        assert!(!svc.rollback_in_flight);
        assert_eq!(
            svc.rollback.as_ref().unwrap().ended,
            Some((t(260), Ok(Outcome::Verified)))
        );
        assert_eq!(svc.last_rollback, Some(t(260)));
    }

    #[test]
    fn a_rollback_that_did_not_happen_is_journaled_as_failed_with_its_target() {
        let mut state = world("");
        request(&mut state, Some(1), false);
        step(&mut state, Step::Prepared(preview(2, 1)));
        let effects = update(
            &mut state,
            Msg::RollbackFinished(RollbackReport {
                service: key("checkout"),
                automatic: false,
                at: t(100),
                by: "alice@bastion".into(),
                result: Err("held by bob@laptop".into()),
                checks: Vec::new(),
            }),
        );
        assert!(matches!(
            journaled(&effects)[..],
            [Entry::RollbackFailed { to_revision: 1, error, .. }] if error.contains("bob")
        ));
        assert!(state.services[&key("checkout")].last_rollback.is_none());
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
        // As if revision 1 had been rolled back from: it must not be offered again.
        rolled_back(&mut state, 1, 2, "alice@bastion");
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 260);
        let d = &state.services[&key("checkout")].decision;
        assert_eq!(d.target, None);
        let gate_7 = d.gates.iter().find(|g| g.number == 7).unwrap();
        assert!(
            !gate_7.passed && gate_7.evidence.contains("rolled back from (r1)"),
            "{}",
            gate_7.evidence
        );
    }
}
