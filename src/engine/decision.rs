//! The decision for one service: roll back automatically, suggest it, or only log.
//! `auto_rollback` needs every one of seven gates; each gate carries its evidence,
//! and each failed gate becomes a reason it is not automatic.

pub use super::model::decision::*;

use jiff::Timestamp;

use super::blast;
use super::gates;
use super::lineage;
use super::rollout::{self, Rollout};
use super::state::{Service, ServiceKey, State};
use crate::config::{Severity, Signal};

pub fn decide(state: &State, key: &ServiceKey) -> Decision {
    let Some(svc) = state.services.get(key) else {
        return Decision::default();
    };
    let history = rollout::history(svc.replicasets.values());
    // A flag turned on since the deploy is the latest change: the gates time from it.
    let window = state.config.policy.onset_window;
    let flag = super::model::flags::in_play(state.flags.values(), key, state.now, window);
    let deployed = match (lineage::deployed_at(svc, &history), flag) {
        (Some(d), Some((_, on))) => Some(d.max(on)),
        (d, f) => d.or(f.map(|(_, on)| on)),
    };
    let rollout_state = svc.deployment.as_ref().map(rollout::status);
    let paused = svc.deployment.as_ref().is_some_and(|d| d.paused);
    let target = lineage::target(svc, &history);

    let firing = firing(state, svc, rollout_state.as_ref(), deployed);
    let mut decision = Decision {
        current_revision: history.last().map(|r| r.number),
        target: target.map(|r| TargetRevision {
            revision: r.number,
            replicaset: r.replicaset.clone(),
            images: r.images.clone(),
        }),
        deployed_at: deployed,
        rollout: rollout_state.clone(),
        blast_radius: blast::notes(state, key, svc, &history, deployed),
        ..Decision::default()
    };
    if firing.is_empty() {
        return decision;
    }
    let onset = firing.iter().filter_map(|f| f.onset).min();
    let ctx = gates::Context {
        state,
        key,
        svc,
        history: &history,
        deployed,
        onset,
        firing: &firing,
        target,
        paused,
    };
    let gates: Vec<Gate> = gates::GATES.iter().map(|gate| gate(&ctx)).collect();

    let top = firing
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::LogOnly);
    let why = why_not_automatic(state, svc, &gates, &firing, top);
    decision.action = match top {
        Severity::AutoRollback if why.is_empty() => Action::AutoRollback,
        Severity::AutoRollback | Severity::PageAndSuggest => Action::Suggest,
        Severity::LogOnly => Action::Log,
    };
    decision.confidence = Some(confidence(
        state,
        key,
        svc,
        &firing,
        onset,
        deployed,
        &decision.blast_radius,
    ));
    decision.advice = super::forward::advice(&firing);
    decision.forward = Some(super::forward::estimate(
        state,
        svc,
        &history,
        &firing,
        &gates,
        &decision.blast_radius,
    ));
    decision.firing = firing;
    decision.gates = gates;
    decision.why_not_automatic = why;
    decision
}

/// The triggers firing, and a rollout past its deadline, which is a failure signal
/// of its own (seed 000's matrix).
fn firing(
    state: &State,
    svc: &Service,
    rollout: Option<&Rollout>,
    deployed: Option<Timestamp>,
) -> Vec<Firing> {
    let mut firing: Vec<Firing> = state
        .config
        .triggers
        .iter()
        .filter_map(|t| {
            let ts = svc.triggers.get(&t.name)?;
            ts.alert.is_firing().then(|| Firing {
                trigger: t.name.clone(),
                value: ts.value,
                threshold: t.threshold,
                severity: t.severity,
                signal: t.signal,
                onset: ts.onset,
            })
        })
        .collect();
    if let Some(Rollout::Failed(_)) = rollout {
        firing.push(Firing {
            trigger: "rollout-deadline".into(),
            value: None,
            threshold: 0.0,
            severity: Severity::AutoRollback,
            signal: Signal::CrashLoop,
            onset: deployed.map(|d| d.min(state.now)),
        });
    }
    firing
}

/// Each failed gate, the severities, a service that may not be rolled back
/// automatically again, and the policy's two-anomaly rule, in words.
fn why_not_automatic(
    state: &State,
    svc: &Service,
    gates: &[Gate],
    firing: &[Firing],
    top: Severity,
) -> Vec<String> {
    let mut why: Vec<String> = gates
        .iter()
        .filter(|g| !g.passed)
        .map(|g| format!("gate {} ({}): {}", g.number, g.name, g.evidence))
        .collect();
    if top != Severity::AutoRollback {
        let names: Vec<_> = firing
            .iter()
            .map(|f| format!("{} is {}", f.trigger, f.severity.label()))
            .collect();
        why.insert(
            0,
            format!("no auto_rollback trigger is firing: {}", names.join(", ")),
        );
    }
    if let Some(reason) = &svc.no_auto {
        why.push(format!("no further automatic rollback: {reason}"));
    }
    if state.config.policy.require_two_anomalies && firing.len() < 2 {
        why.push(format!(
            "the policy requires two anomalies; only {} is firing",
            firing[0].trigger
        ));
    }
    why
}

/// The most a regression that began before the deploy can score: under the 0.5 at
/// which the docs call a suggestion likely to be right.
pub const BEFORE_DEPLOY_CAP: f64 = 0.4;

fn confidence(
    state: &State,
    key: &ServiceKey,
    svc: &Service,
    firing: &[Firing],
    onset: Option<Timestamp>,
    deployed: Option<Timestamp>,
    blast: &[Note],
) -> Confidence {
    let strength = firing
        .iter()
        .filter_map(|f| {
            Some(
                ((f.value? / f.threshold.abs().max(1e-9)) - 1.0)
                    .abs()
                    .min(1.0),
            )
        })
        .fold(
            if firing.iter().any(|f| f.value.is_none()) {
                1.0
            } else {
                0.0
            },
            f64::max,
        );
    let quality = {
        let q: Vec<f64> = svc
            .triggers
            .values()
            .filter(|t| !t.recent.is_empty())
            .map(|t| t.quality())
            .collect();
        if q.is_empty() {
            0.0
        } else {
            q.iter().sum::<f64>() / q.len() as f64
        }
    };
    let window = state.config.policy.onset_window.as_secs_f64();
    let before_deploy = super::gates::began_before(state, onset, deployed);
    let proximity = match (onset, deployed) {
        _ if before_deploy => 0.0,
        (Some(o), Some(d)) => {
            let after = o.duration_since(d).as_secs_f64();
            (1.0 - after.max(0.0) / window).clamp(0.0, 1.0)
        }
        _ => 0.0,
    };
    let neighbours_firing = state.firing.len() - usize::from(state.firing.contains(key));
    let isolation = if neighbours_firing == 0 { 1.0 } else { 0.5 };
    let risks = blast.iter().filter(|n| n.risk).count();
    let safety = (1.0 - 0.25 * risks as f64).max(0.0);
    let parts = vec![
        Part {
            name: "signal strength",
            value: strength,
            weight: 0.3,
            note: "how far past the threshold".into(),
        },
        Part {
            name: "data quality",
            value: quality,
            weight: 0.2,
            note: "share of recent answers that were clean".into(),
        },
        Part {
            name: "onset proximity",
            value: proximity,
            weight: 0.2,
            note: "how soon after the deploy it began".into(),
        },
        Part {
            name: "isolation",
            value: isolation,
            weight: 0.15,
            note: format!("{neighbours_firing} other services have a trigger firing now"),
        },
        Part {
            name: "blast radius",
            value: safety,
            weight: 0.15,
            note: format!("{risks} things a rollback would not revert"),
        },
    ];
    let mut score = parts.iter().map(|p| p.value * p.weight).sum::<f64>();
    // A regression older than the deploy is not the deploy's, however strong it is.
    if before_deploy {
        score = score.min(BEFORE_DEPLOY_CAP);
    }
    Confidence {
        score: (score * 100.0).round() / 100.0,
        parts,
    }
}
