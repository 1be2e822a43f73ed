//! Roll back or roll forward, and what to do instead of rolling back: seed 001's
//! decision table and seed 000's signal matrix, applied to what the engine knows.
//! backout cannot know how long a fix would take, so the estimate says below which
//! fix time rolling forward wins, beside what a rollback would cost here.

pub use super::model::decision::{Forward, ForwardVerdict};

use super::model::decision::{Firing, Gate, Note};
use super::rollout::Revision;
use super::state::{Service, State};
use crate::config::Signal;

/// Seed 001: a fix that ships in under 5 minutes beats a rollback; one that takes
/// more than 15 loses to it.
const QUICK_FIX_SECS: u64 = 300;
/// How long one pod takes to start when nothing measured says.
const POD_START_SECS: u64 = 10;

pub fn estimate(
    state: &State,
    svc: &Service,
    history: &[Revision],
    firing: &[Firing],
    gates: &[Gate],
    blast: &[Note],
) -> Forward {
    let (rollback_secs, rollback_from) = rollback_time(svc, history.last());
    let impact: Vec<&str> = firing
        .iter()
        .filter(|f| f.signal.is_failure())
        .map(|f| f.trigger.as_str())
        .collect();
    let migration = gates.iter().any(|g| g.number == 5 && !g.passed);
    let risks = blast.iter().filter(|n| n.risk).count();
    let others = state.firing.len().saturating_sub(1);
    let mut factors = Vec::new();
    if !impact.is_empty() {
        factors.push(format!(
            "user impact is active ({} firing): roll back",
            impact.join(", ")
        ));
    }
    factors.push("the root cause is not known here: roll back".into());
    if others > 0 {
        factors.push(format!("{others} other service(s) firing too: roll back"));
    }
    if migration {
        factors.push(
            "a schema migration is involved: roll back carefully (stop traffic, reverse the migration, deploy the old code, start traffic), or forward if the fix is simple".into(),
        );
    }
    if risks > 0 {
        factors.push(format!(
            "the rollback has {risks} known risk(s) (blast radius): roll forward"
        ));
    }
    let verdict = match (migration, risks > 0 && impact.is_empty()) {
        (true, _) => ForwardVerdict::RollBackCarefully,
        (false, true) => ForwardVerdict::RollForward,
        (false, false) => ForwardVerdict::RollBack,
    };
    Forward {
        verdict,
        rollback_secs,
        rollback_from,
        fix_under_secs: QUICK_FIX_SECS,
        factors,
    }
}

/// How long the rollback would take to run here: an abort or a switch moves traffic
/// at once; an undo rolls pods, as long as the current revision's took to start.
fn rollback_time(svc: &Service, current: Option<&Revision>) -> (u64, String) {
    let Some(workload) = svc.deployment.as_ref() else {
        return (POD_START_SECS, "nothing measured".into());
    };
    if let Some(words) = workload.kind.words() {
        let (secs, how) = words.revert_time;
        return (secs, how.into());
    }
    if workload.canary.as_ref().is_some_and(|c| c.in_progress()) {
        return (
            POD_START_SECS,
            "an abort: the stable pods are already running".into(),
        );
    }
    let started: Vec<_> = current
        .iter()
        .flat_map(|rs| {
            svc.pods
                .values()
                .filter(|p| p.replicaset == rs.replicaset)
                .filter_map(|p| p.created)
        })
        .collect();
    match (started.iter().min(), started.iter().max(), current) {
        (Some(first), Some(last), Some(rs)) => {
            let spread = last.duration_since(*first).as_secs().max(0) as u64;
            (
                spread + POD_START_SECS,
                format!(
                    "revision {}'s {} pods started over {spread}s",
                    rs.number,
                    started.len()
                ),
            )
        }
        _ => (
            POD_START_SECS * workload.replicas.max(1) as u64,
            format!("{} pods at about {POD_START_SECS}s each", workload.replicas),
        ),
    }
}

/// Seed 000's signal matrix for the signals that must not roll back: what to do
/// instead, one line per such trigger firing.
pub fn advice(firing: &[Firing]) -> Vec<String> {
    let failing = firing.iter().any(|f| f.signal.is_failure());
    firing
        .iter()
        .filter_map(|f| match f.signal {
            Signal::Saturation => Some(format!(
                "{}: CPU saturated — scale out, not roll back",
                f.trigger
            )),
            Signal::Memory => Some(format!(
                "{}: memory growing — alert and schedule a fix; a rollback only restarts the leak",
                f.trigger
            )),
            Signal::Latency if !failing => Some(format!(
                "{}: latency alone — check capacity and dependencies, and decide by hand",
                f.trigger
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;
    use crate::engine::fixtures::*;
    use crate::engine::msg::{KubeChange, KubeObject, Msg};
    use crate::engine::update::update;
    use serde_json::json;

    fn firing(trigger: &str, signal: Signal) -> Firing {
        Firing {
            trigger: trigger.into(),
            value: Some(1.0),
            threshold: 0.5,
            severity: Severity::AutoRollback,
            signal,
            onset: None,
        }
    }

    fn forward_of(state: &State) -> Forward {
        let d = &state.services[&key("checkout")].decision;
        d.forward
            .clone()
            .expect("an estimate while something fires")
    }

    #[test]
    fn a_failing_service_rolls_back_and_a_migration_makes_it_careful() {
        let mut state = world("");
        assert!(
            decision(&state, "checkout").forward.is_none(),
            "nothing firing, nothing to weigh"
        );
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        let f = forward_of(&state);
        assert_eq!(f.verdict, ForwardVerdict::RollBack);
        assert!(f.factors[0].contains("user impact is active (error-rate firing)"));
        assert_eq!(f.fix_under_secs, 300);
        assert!(
            f.summary().contains("roll back or forward: roll back"),
            "{}",
            f.summary()
        );

        let mut state = world("");
        let job = json!({"metadata": {"name": "checkout-migrate-7", "namespace": "shop",
            "annotations": {"backout.dev/migration": "true"}},
            "status": {"startTime": t(-600).to_string()}});
        update(
            &mut state,
            Msg::Kube(KubeChange::Applied(KubeObject::Job(obj(job)))),
        );
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        let f = forward_of(&state);
        assert_eq!(f.verdict, ForwardVerdict::RollBackCarefully);
        assert!(
            f.factors
                .iter()
                .any(|x| x.contains("reverse the migration")),
            "{f:?}"
        );
    }

    #[test]
    fn known_risks_without_user_impact_lean_forward_and_an_abort_is_quick() {
        let mut state = world("");
        // checkout's template reads ConfigMap checkout-config, changed with the deploy.
        let cm = |rv: &str| {
            KubeObject::ConfigMap(obj(
                json!({"name": "checkout-config", "namespace": "shop", "resourceVersion": rv}),
            ))
        };
        let listed = KubeChange::Relisted {
            kind: crate::engine::KubeKind::ConfigMap,
            namespace: "shop".into(),
            objects: vec![cm("1")],
        };
        update(&mut state, Msg::Kube(listed));
        update(&mut state, Msg::Tick(t(-5)));
        update(&mut state, Msg::Kube(KubeChange::Applied(cm("2"))));
        run(&mut state, "checkout", "p99-latency", 0.2, 7.0, 30, 400);
        let f = forward_of(&state);
        assert_eq!(f.verdict, ForwardVerdict::RollForward, "{f:?}");
        assert!(f.factors.iter().any(|x| x.contains("known risk")), "{f:?}");

        let mut state = State::new(config(""), t(0));
        canary(&mut state, json!({}));
        run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
        let f = forward_of(&state);
        assert_eq!(f.rollback_secs, POD_START_SECS);
        assert!(f.rollback_from.contains("an abort"), "{f:?}");
    }

    #[test]
    fn saturation_and_memory_say_what_to_do_instead() {
        let both = advice(&[
            firing("cpu", Signal::Saturation),
            firing("rss-growth", Signal::Memory),
        ]);
        assert_eq!(both.len(), 2);
        assert!(both[0].contains("scale out, not roll back"));
        assert!(both[1].contains("schedule a fix"));
        assert!(advice(&[firing("error-rate", Signal::ErrorRate)]).is_empty());
        let latency = advice(&[firing("p99", Signal::Latency)]);
        assert!(latency[0].contains("latency alone"), "{latency:?}");
        let with_errors = advice(&[
            firing("p99", Signal::Latency),
            firing("error-rate", Signal::ErrorRate),
        ]);
        assert!(with_errors.is_empty(), "latency beside errors is not alone");
    }
}
