//! Incidents that outlive the first rollback, driven through `update` alone: rollbacks
//! by anyone, known-bad templates, one story while a rollback runs, restarts and
//! switches that forget nothing, and the property that no rollback ever goes back to a
//! template that was rolled back from.

use proptest::prelude::*;

use super::decision::Action;
use super::fixtures::*;
use super::journal::Entry;
use super::msg::{Effect, Msg, Outcome};
use super::rollbacks::{Phase, RollbackError};
use super::state::State;
use super::update::update;

const AUTO: &str = "[policy]\nauto_rollback = true\n";

fn orders(effects: &[Effect]) -> Vec<Option<u64>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Rollback(o) => Some(o.to_revision),
            _ => None,
        })
        .collect()
}

/// checkout:2 deployed at 0, failing from 30 to 200, with automatic rollback on but
/// the order not yet acted on: the state a person finds when they reach for kubectl.
fn firing(extra: &str) -> State {
    let mut state = world(extra);
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    state
}

#[test]
fn kubectl_undo_mid_incident_is_a_rollback_followed_and_verified_not_a_deploy() {
    let mut state = world(AUTO.replace("true", "false").as_str());
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    let incident = state.services[&key("checkout")].incident.clone();
    assert!(incident.is_some());
    let effects = reverted_in_cluster(&mut state, None);
    let svc = &state.services[&key("checkout")];
    assert!(svc.lineage.current_is_rollback);
    assert!(
        svc.lineage.is_known_bad("checkout-1"),
        "checkout:2 was rolled back from"
    );
    let p = svc.rollback.as_ref().expect("the rollback is followed");
    assert!(!p.ours && p.by.contains("outside backout"), "{}", p.by);
    assert_eq!(p.phase, Phase::RollingOut);
    assert!(
        journaled(&effects).iter().any(
            |e| matches!(e, Entry::Rollback { from_images, to_images, .. }
            if from_images == &["checkout:2"] && to_images == &["checkout:1"])
        ),
        "journaled as a rollback: {effects:?}"
    );
    assert_eq!(svc.incident, incident, "the same incident goes on");
    // The bad build's errors drain: never a reason to go "back" to checkout:2.
    let effects = run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 230);
    assert!(orders(&effects).is_empty());
    let d = &state.services[&key("checkout")].decision;
    assert!(
        d.target.as_ref().is_none_or(|t| t.images != ["checkout:2"]),
        "{:?}",
        d.target
    );
    let effects = recovers(&mut state, 0.001, 245, 400);
    let svc = &state.services[&key("checkout")];
    assert!(
        matches!(
            svc.rollback.as_ref().unwrap().ended,
            Some((_, Ok(Outcome::Verified)))
        ),
        "{:#?}",
        svc.rollback
    );
    assert!(journaled(&effects)
        .iter()
        .any(|e| matches!(e, Entry::Verification { outcome, .. } if outcome == "verified")));
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::ReleaseLease { .. })),
        "someone else's Lease is not ours to give back"
    );
}

#[test]
fn a_restarted_watcher_knows_the_rollback_and_never_undoes_it() {
    // A new process: it has only the cluster, which shows backout's record.
    let mut state = world(AUTO);
    reverted_in_cluster(&mut state, Some(record("backout-watch@pod-1", 150, true)));
    let p = state.services[&key("checkout")]
        .rollback
        .clone()
        .expect("it follows the verification");
    assert_eq!(
        (p.by.as_str(), p.automatic, p.ours),
        ("backout-watch@pod-1", true, false)
    );
    assert!(
        state.last_auto_rollback.is_some(),
        "the cooldown counts another process's automatic rollback"
    );
    let (at, by) = super::lineage::last_rollback(&state, &key("checkout")).unwrap();
    assert_eq!((at, by.as_str()), (t(150), "backout-watch@pod-1"));
    // The bad build's errors drain through the blackout, then linger past it.
    let mut effects = run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    effects.extend(run(
        &mut state,
        "checkout",
        "error-rate",
        0.001,
        0.25,
        30,
        1_500,
    ));
    assert!(orders(&effects).is_empty(), "{effects:?}");
    let d = &state.services[&key("checkout")].decision;
    assert_ne!(d.action, Action::AutoRollback);
    let gate_1 = d.gates.iter().find(|g| g.number == 1).unwrap();
    assert!(
        !gate_1.passed && gate_1.evidence.contains("is a rollback"),
        "{}",
        gate_1.evidence
    );
    assert_eq!(
        d.target, None,
        "revision 2 was rolled back from, revision 1 is current"
    );
}

#[test]
fn the_bad_build_re_deployed_by_hand_is_a_new_deploy_and_the_good_one_stays_the_target() {
    let mut state = world(AUTO);
    verified_rollback(&mut state, 205);
    // Someone ships checkout:2 again: ReplicaSet 1 comes back as revision 4.
    replicaset(
        &mut state,
        "checkout",
        1,
        "checkout:2",
        4,
        "2",
        t(-86_399),
        serde_json::json!({}),
    );
    deployment(&mut state, "checkout", "checkout:2", 4, true, false);
    let svc = &state.services[&key("checkout")];
    assert!(
        !svc.lineage.current_is_rollback,
        "a known-bad build re-deployed is not a rollback"
    );
    assert!(
        !svc.lineage.is_known_bad("checkout-0"),
        "the good build stays good"
    );
    // After the blackout it fails again: roll back to checkout:1, by number 3 now.
    let effects = run(
        &mut state,
        "checkout",
        "error-rate",
        0.001,
        0.25,
        1_000,
        1_200,
    );
    let d = &state.services[&key("checkout")].decision;
    assert_eq!(
        d.target.as_ref().map(|t| t.images.clone()),
        Some(vec!["checkout:1".to_string()])
    );
    assert_eq!(orders(&effects), [Some(3)], "{:?}", d.why_not_automatic);
}

#[test]
fn a_rollback_by_another_backout_names_who_and_why() {
    let mut state = firing("");
    let effects = reverted_in_cluster(&mut state, Some(record("dana@laptop", 195, false)));
    let p = state.services[&key("checkout")].rollback.clone().unwrap();
    assert_eq!(
        (p.by.as_str(), p.reason.as_str()),
        ("dana@laptop", "error-rate 25%")
    );
    assert!(journaled(&effects)
        .iter()
        .any(|e| matches!(e, Entry::Rollback { by, .. } if by == "dana@laptop")));
}

/// The runner's answer when `holder` has held checkout's Lease since `since`, until
/// `expires` unless renewed.
fn held_by(holder: &str, since: i64, expires: i64) -> Msg {
    Msg::RollbackFailed {
        service: key("checkout"),
        error: RollbackError::Held {
            deployment: "checkout".into(),
            holder: holder.into(),
            since: Some(t(since)),
            expires: Some(t(expires)),
        },
    }
}

#[test]
fn the_loser_of_a_race_follows_the_winner() {
    let mut state = firing(AUTO);
    assert_eq!(
        state.services[&key("checkout")]
            .rollback
            .as_ref()
            .map(|p| p.ours),
        Some(true)
    );
    update(&mut state, held_by("dana@laptop#77-ab", 199, 259));
    let p = state.services[&key("checkout")].rollback.clone().unwrap();
    assert_eq!(
        (p.phase, p.by.as_str(), p.ours),
        (Phase::Following, "dana@laptop#77-ab", false)
    );
    assert!(
        state.services[&key("checkout")].no_auto.is_none(),
        "someone acting is not a failure"
    );
    let effects = reverted_in_cluster(&mut state, Some(record("dana@laptop", 201, false)));
    let p = state.services[&key("checkout")].rollback.clone().unwrap();
    assert_eq!((p.phase, p.by.as_str()), (Phase::RollingOut, "dana@laptop"));
    assert!(orders(&effects).is_empty(), "no second rollback");
}

#[test]
fn a_holder_whose_lease_lapses_with_nothing_done_is_called_gone_and_the_rollback_tried_again() {
    let mut state = firing(AUTO);
    update(&mut state, held_by("ghost@bastion#9-dead", 150, 210));
    update(&mut state, Msg::Tick(t(211)));
    let p = state.services[&key("checkout")].rollback.clone().unwrap();
    assert_eq!(
        p.phase,
        Phase::Following,
        "inside the clock margin: still following"
    );
    update(&mut state, Msg::Tick(t(215)));
    let p = state.services[&key("checkout")].rollback.clone().unwrap();
    let Some((_, Err(why))) = &p.ended else {
        panic!("the follow ends once the lease lapsed: {p:?}");
    };
    assert!(
        why.contains("ghost@bastion#9-dead") && why.contains("gone"),
        "{why}"
    );
    assert!(p.retry_at.is_some(), "the decision holds: tried again");
    assert!(state.services[&key("checkout")].no_auto.is_none());
}

#[test]
fn a_named_revision_goes_further_back_than_a_rollback_being_verified() {
    let mut state = firing("");
    reverted_in_cluster(&mut state, Some(record("dana@laptop", 201, false)));
    let p = state.services[&key("checkout")].rollback.clone().unwrap();
    assert!(
        p.running() && p.committed,
        "dana's rollback is being verified"
    );
    // Without a revision: never two at once.
    assert!(orders(&request(&mut state, None, false)).is_empty());
    // With one, named by a person: that rollback gives way and this one is ordered.
    let effects = request(&mut state, Some(1), false);
    assert_eq!(orders(&effects), [Some(1)]);
    assert!(journaled(&effects).iter().any(|e| matches!(e,
        Entry::Verification { outcome, .. } if outcome.contains("superseded: alice@bastion ordered a rollback to revision 1"))));
    let p = state.services[&key("checkout")].rollback.clone().unwrap();
    assert!(p.ours && p.running(), "the new order is this process's own");
}

#[test]
fn a_verification_that_times_out_did_not_help_and_stops_automatic_rollbacks() {
    let mut state = firing("");
    rolled_back(&mut state, 2, 1, "alice@bastion");
    reverted_in_cluster(&mut state, Some(record("alice@bastion", 205, false)));
    let window = state.config.policy.verification_window.as_secs() as i64;
    let effects = recovers(&mut state, 0.25, 210, 240 + window);
    let svc = &state.services[&key("checkout")];
    let p = svc.rollback.as_ref().unwrap();
    assert!(
        matches!(p.ended, Some((_, Ok(Outcome::DidNotHelp)))),
        "{p:?}"
    );
    let last = p
        .checks
        .iter()
        .find(|c| c.name == "error-rate recovers")
        .unwrap();
    assert!(
        !last.passed && last.detail.contains("still 0.2500"),
        "{}",
        last.detail
    );
    assert!(svc.no_auto.is_some());
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Page { summary, .. } if summary.contains("did not help"))));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::ReleaseLease { .. })));
}

#[test]
fn a_new_deploy_during_verification_ends_it_and_gets_a_decision_of_its_own() {
    let mut state = firing(AUTO);
    rolled_back(&mut state, 2, 1, "alice@bastion");
    reverted_in_cluster(&mut state, Some(record("alice@bastion", 205, false)));
    // checkout:3 ships while the rollback is still being verified.
    let extra = serde_json::json!({});
    let mut effects = replicaset(
        &mut state,
        "checkout",
        2,
        "checkout:3",
        4,
        "",
        t(230),
        extra,
    );
    effects.extend(deployment(
        &mut state,
        "checkout",
        "checkout:3",
        4,
        true,
        false,
    ));
    let p = state.services[&key("checkout")].rollback.clone().unwrap();
    assert!(
        matches!(&p.ended, Some((_, Err(e))) if e.contains("superseded by a new deploy, revision 4")),
        "{p:?}"
    );
    assert!(journaled(&effects).iter().any(
        |e| matches!(e, Entry::Verification { outcome, .. } if outcome.contains("superseded"))
    ));
    // The new build fails on its own: a decision with its evidence, about revision 4.
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 250, 400);
    let d = &state.services[&key("checkout")].decision;
    assert_eq!(d.current_revision, Some(4));
    assert_ne!(d.action, Action::None, "{d:?}");
}

#[test]
fn a_value_just_under_the_threshold_is_not_a_recovery() {
    let mut state = firing("");
    rolled_back(&mut state, 2, 1, "alice@bastion");
    reverted_in_cluster(&mut state, Some(record("alice@bastion", 205, false)));
    recovers(&mut state, 0.045, 210, 400);
    let p = state.services[&key("checkout")].rollback.clone().unwrap();
    assert_eq!(
        p.ended, None,
        "0.045 is under 0.05 but not past the 20% margin"
    );
    assert_eq!(p.phase, Phase::Recovering);
    recovers(&mut state, 0.002, 415, 600);
    let p = state.services[&key("checkout")].rollback.clone().unwrap();
    assert!(matches!(p.ended, Some((_, Ok(Outcome::Verified)))), "{p:?}");
}

#[test]
fn one_story_while_a_rollback_runs_no_second_decision_and_no_page() {
    let mut state = firing("");
    rolled_back(&mut state, 2, 1, "alice@bastion");
    let effects = reverted_in_cluster(&mut state, Some(record("alice@bastion", 205, false)));
    let mut effects = effects;
    effects.extend(run(
        &mut state,
        "checkout",
        "error-rate",
        0.001,
        0.25,
        30,
        260,
    ));
    assert!(
        !journaled(&effects)
            .iter()
            .any(|e| matches!(e, Entry::Decision { .. })),
        "{effects:?}"
    );
    assert!(!effects.iter().any(|e| matches!(e, Effect::Page { .. })));
    assert!(orders(&effects).is_empty());
}

#[test]
fn a_switch_and_back_keeps_the_incident_id_and_the_evidence() {
    let before = firing("");
    // The console starts a new core later: the same cluster, the same series.
    let mut after = State::new(config(""), t(240));
    deploy(
        &mut after,
        "checkout",
        &["checkout:1", "checkout:2"],
        0,
        false,
    );
    run(&mut after, "checkout", "error-rate", 0.001, 0.25, 30, 260);
    let (a, b) = (
        &before.services[&key("checkout")],
        &after.services[&key("checkout")],
    );
    assert_eq!(a.incident, b.incident);
    let gate_1 = |s: &super::state::Service| s.decision.gates[0].evidence.clone();
    assert_eq!(gate_1(a), gate_1(b));
    assert!(gate_1(a).contains("30s after revision 2"), "{}", gate_1(a));
}

#[test]
fn pods_that_arrive_before_their_replicaset_are_counted() {
    let mut state = State::new(config(""), t(0));
    let pod = serde_json::json!({"metadata": {"name": "checkout-1-a", "namespace": "shop",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-1", "controller": true}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    update(
        &mut state,
        Msg::Kube(super::msg::KubeChange::Applied(
            super::msg::KubeObject::pod(&obj(pod)),
        )),
    );
    deploy(
        &mut state,
        "checkout",
        &["checkout:1", "checkout:2"],
        0,
        false,
    );
    let svc = &state.services[&key("checkout")];
    assert_eq!(svc.pods.len(), 1);
    assert!(svc.pods["checkout-1-a"].ready);
    assert_eq!(svc.ready_replicas(), (3, 3), "READY as kubectl shows it");
}

/// What can happen to checkout, in any order.
#[derive(Debug, Clone)]
enum Event {
    Breach(f64),
    Blind,
    /// Anyone rolls back to the newest template not rolled back from.
    RollbackByAnyone,
    /// A new build ships.
    Deploy,
    /// A known-bad build is shipped again by hand.
    Redeploy,
    /// A person presses `r` (or runs `backout rollback` with no revision).
    PressR,
    Wait(i64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0.0f64..0.5).prop_map(Event::Breach),
        Just(Event::Blind),
        Just(Event::RollbackByAnyone),
        Just(Event::Deploy),
        Just(Event::Redeploy),
        Just(Event::PressR),
        (15i64..900).prop_map(Event::Wait),
    ]
}

/// The cluster's ReplicaSets of checkout, replayed as the controller numbers them.
struct Cluster {
    /// Per template index: the revision numbers it has held, oldest first.
    held: Vec<Vec<u64>>,
    /// The template index at each revision.
    at: Vec<usize>,
    /// When each template's ReplicaSet was created: a reused one keeps its date.
    created: Vec<i64>,
}

impl Cluster {
    fn current(&self) -> usize {
        *self.at.last().unwrap()
    }

    fn make_current(&mut self, state: &mut State, index: usize, now: i64) {
        let revision = self.at.len() as u64 + 1;
        if index == self.held.len() {
            self.held.push(Vec::new());
            self.created.push(now);
        }
        self.held[index].push(revision);
        self.at.push(index);
        let held = &self.held[index];
        let history: Vec<String> = held[..held.len() - 1].iter().map(u64::to_string).collect();
        let image = format!("checkout:{index}");
        let created = t(self.created[index]);
        replicaset(
            state,
            "checkout",
            index,
            &image,
            revision,
            &history.join(","),
            created,
            serde_json::json!({}),
        );
        deployment(state, "checkout", &image, revision, true, false);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_rollback_ever_targets_a_template_that_was_rolled_back_from(
        events in proptest::collection::vec(event(), 1..40)
    ) {
        let mut state = State::new(config(AUTO), t(0));
        let mut cluster = Cluster { held: Vec::new(), at: Vec::new(), created: Vec::new() };
        cluster.make_current(&mut state, 0, 0);
        cluster.make_current(&mut state, 1, 10);
        let mut now = 10;
        for e in events {
            now += 15;
            let mut effects = update(&mut state, Msg::Tick(t(now)));
            match e {
                Event::Breach(v) => effects.extend(update(&mut state, answer("checkout", "error-rate", 0.001, v, now - 60, now))),
                Event::Blind => effects.extend(update(&mut state, Msg::Query(super::msg::QueryAnswer {
                    trigger: "error-rate".into(),
                    service: key("checkout"),
                    answered_at: t(now),
                    outcome: super::signals::QueryOutcome::Failed { error: "timeout".into() },
                }))),
                Event::RollbackByAnyone => {
                    let bad = &state.services[&key("checkout")].lineage;
                    let back = (0..cluster.current()).rev().find(|i| !bad.is_known_bad(&format!("checkout-{i}")));
                    if let Some(i) = back {
                        cluster.make_current(&mut state, i, now);
                    }
                }
                Event::Deploy => {
                    let next = cluster.held.len();
                    cluster.make_current(&mut state, next, now);
                }
                Event::Redeploy => {
                    let bad = state.services[&key("checkout")].lineage.known_bad.keys().next().cloned();
                    if let Some(i) = bad.and_then(|b| b.trim_start_matches("checkout-").parse().ok()) {
                        if i != cluster.current() {
                            cluster.make_current(&mut state, i, now);
                        }
                    }
                }
                Event::PressR => effects.extend(request(&mut state, None, false)),
                Event::Wait(s) => now += s,
            }
            for to in orders(&effects).into_iter().flatten() {
                let index = cluster.at[(to - 1) as usize];
                let target = format!("checkout-{index}");
                let known_bad = &state.services[&key("checkout")].lineage.known_bad;
                prop_assert!(
                    !known_bad.contains_key(&target),
                    "ordered a rollback to revision {to} ({target}), rolled back from: {:?}",
                    known_bad.keys().collect::<Vec<_>>()
                );
                // The runner would answer; here the rollback stays in flight until
                // the test's own cluster events show one.
                update(&mut state, Msg::RollbackFailed { service: key("checkout"), error: RollbackError::Api("not executed in this test".into()) });
            }
        }
    }
}

#[test]
fn only_the_process_that_rolled_back_tells_the_team_it_is_resolved() {
    let mut state = firing("");
    let effects = verified_rollback(&mut state, 205);
    let resolved: Vec<&Effect> = effects
        .iter()
        .filter(|e| matches!(e, Effect::Resolve { .. }))
        .collect();
    assert_eq!(resolved.len(), 1, "{effects:#?}");
    assert!(
        matches!(resolved[0], Effect::Resolve { summary, .. } if summary.contains("verified")),
        "{resolved:?}"
    );

    // A rollback someone else made is followed and verified, but not announced.
    let mut state = world(AUTO.replace("true", "false").as_str());
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    reverted_in_cluster(&mut state, None);
    let effects = recovers(&mut state, 0.001, 245, 400);
    assert!(!effects.iter().any(|e| matches!(e, Effect::Resolve { .. })));
}
