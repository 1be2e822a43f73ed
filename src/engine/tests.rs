//! Unit and property tests of `update`: every gate, every data state, and the two
//! promises (blind data never rolls back; nothing rolls back in cooldown or blackout).

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::decision::Action;
use super::fixtures::*;
use super::msg::{Effect, KubeChange, KubeObject, Msg, QueryAnswer};
use super::signals::QueryOutcome;
use super::state::State;
use super::update::update;

#[test]
fn a_clean_error_rate_regression_after_a_deploy_is_automatic_with_every_gate_passing() {
    let mut state = world("");
    let effects = run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    let d = decision(&state, "checkout");
    assert_eq!(d.action, Action::AutoRollback, "{:#?}", d.why_not_automatic);
    assert_eq!(d.gates.len(), 7);
    assert!(d.gates.iter().all(|g| g.passed));
    assert_eq!(d.target.as_ref().unwrap().revision, 1);
    assert_eq!(d.target.as_ref().unwrap().images, ["checkout:1"]);
    let c = d.confidence.as_ref().unwrap();
    assert!(c.score > 0.7 && c.parts.len() == 5, "{c:?}");
    let journaled: Vec<_> = effects
        .iter()
        .filter_map(|e| {
            if let Effect::Journal(r) = e {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    assert!(journaled
        .iter()
        .any(|r| matches!(r.entry, super::journal::Entry::IncidentOpened { .. })));
    assert!(journaled.iter().all(|r| r.service.is_empty()
        || r.incident.is_some()
        || matches!(r.entry, super::journal::Entry::Trigger { .. })));
}

#[test]
fn pending_until_the_for_duration_has_passed() {
    let mut state = world("");
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 90);
    assert_eq!(
        decision(&state, "checkout").action,
        Action::None,
        "2m have not passed"
    );
    let t = &state.services[&key("checkout")].triggers["error-rate"];
    assert_eq!(t.alert.label(), "pending");
}

#[test]
fn gate_1_fails_when_the_regression_began_before_the_deploy() {
    let mut state = world("");
    run(&mut state, "checkout", "error-rate", 0.25, 0.25, -300, 200);
    assert_eq!(decision(&state, "checkout").action, Action::Suggest);
    assert!(failed_gates(&state, "checkout").contains(&1));
}

#[test]
fn gate_1_fails_when_the_regression_began_long_after_the_deploy() {
    let mut state = world("");
    run(
        &mut state,
        "checkout",
        "error-rate",
        0.001,
        0.25,
        1200,
        1400,
    );
    assert_eq!(failed_gates(&state, "checkout"), [1]);
}

#[test]
fn gate_2_fails_when_a_related_service_deployed_after_this_one() {
    let mut state = world("");
    deploy(
        &mut state,
        "frontend",
        &["frontend:1", "frontend:2"],
        20,
        false,
    );
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    assert_eq!(decision(&state, "checkout").action, Action::Suggest);
    assert_eq!(failed_gates(&state, "checkout"), [2]);
    assert!(decision(&state, "checkout").gates[1]
        .evidence
        .contains("frontend deployed"));
}

#[test]
fn gate_3_fails_when_a_referenced_configmap_changed_in_the_window() {
    let mut state = world("");
    let cm = |rv: &str| {
        KubeObject::ConfigMap(
            serde_json::from_value(
                json!({"name": "checkout-config", "namespace": "shop", "resourceVersion": rv}),
            )
            .unwrap(),
        )
    };
    update(
        &mut state,
        Msg::Kube(KubeChange::Relisted {
            kind: super::KubeKind::ConfigMap,
            namespace: "shop".into(),
            objects: vec![cm("1")],
        }),
    );
    update(&mut state, Msg::Tick(t(-5)));
    update(&mut state, Msg::Kube(KubeChange::Applied(cm("2"))));
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    assert_eq!(failed_gates(&state, "checkout"), [3]);
    let notes = &decision(&state, "checkout").blast_radius;
    assert!(
        notes
            .iter()
            .any(|n| n.risk && n.text.contains("ConfigMap checkout-config")),
        "{notes:?}"
    );
}

#[test]
fn gate_4_fails_on_latency_alone() {
    let mut state = world("[[trigger]]\nname = \"p99-latency\"\nseverity = \"auto_rollback\"\n");
    run(&mut state, "checkout", "p99-latency", 0.1, 7.0, 30, 300);
    assert_eq!(decision(&state, "checkout").action, Action::Suggest);
    assert_eq!(failed_gates(&state, "checkout"), [4]);
}

#[test]
fn a_page_and_suggest_trigger_suggests_and_says_why() {
    let mut state = world("");
    let effects = run(&mut state, "checkout", "p99-latency", 0.1, 7.0, 30, 300);
    let d = decision(&state, "checkout");
    assert_eq!(d.action, Action::Suggest);
    assert!(
        d.why_not_automatic[0].contains("page_and_suggest"),
        "{:?}",
        d.why_not_automatic
    );
    let pages: Vec<&String> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Page { summary, .. } => Some(summary),
            _ => None,
        })
        .collect();
    assert_eq!(
        pages.len(),
        1,
        "one page when the suggestion appears: {pages:?}"
    );
    assert!(
        pages[0].contains("kubectl rollout undo deployment/checkout --to-revision=1 -n shop")
            && pages[0].contains("page_and_suggest"),
        "the page carries the command and the reason: {}",
        pages[0]
    );
    let again = run(&mut state, "checkout", "p99-latency", 0.1, 7.0, 30, 320);
    assert!(
        !again.iter().any(|e| matches!(e, Effect::Page { .. })),
        "not paged again while it stays a suggestion"
    );
}

#[test]
fn gate_5_fails_with_a_migration_job_near_the_deploy() {
    let mut state = world("");
    let job = json!({"metadata": {"name": "checkout-migrate-7", "namespace": "shop", "annotations": {"backout.dev/migration": "true"}},
        "status": {"startTime": t(-600).to_string()}});
    update(
        &mut state,
        Msg::Kube(KubeChange::Applied(KubeObject::Job(obj(job)))),
    );
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    assert_eq!(failed_gates(&state, "checkout"), [5]);
}

#[test]
fn gate_6_fails_in_the_blackout_and_the_cooldown() {
    let mut state = world("");
    deploy(
        &mut state,
        "payments",
        &["payments:1", "payments:2"],
        0,
        false,
    );
    state.note_rollback(&key("payments"), t(10), true);
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    assert_eq!(
        failed_gates(&state, "checkout"),
        [6],
        "another service's automatic rollback starts the cooldown"
    );
    let evidence = &decision(&state, "checkout").gates[5].evidence;
    assert!(evidence.contains("cooldown"), "{evidence}");
}

#[test]
fn gate_7_fails_without_an_earlier_revision_or_when_paused() {
    let mut state = State::new(config(""), t(0));
    deploy(&mut state, "checkout", &["checkout:1"], 0, false);
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    assert_eq!(failed_gates(&state, "checkout"), [7]);
    let mut state = State::new(config(""), t(0));
    deploy(
        &mut state,
        "checkout",
        &["checkout:1", "checkout:2"],
        0,
        true,
    );
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    assert!(failed_gates(&state, "checkout").contains(&7));
}

#[test]
fn two_anomalies_can_be_required() {
    let mut state = world("[policy]\nrequire_two_anomalies = true\n");
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    let d = decision(&state, "checkout");
    assert_eq!(d.action, Action::Suggest);
    assert!(d
        .why_not_automatic
        .iter()
        .any(|w| w.contains("two anomalies")));
}

fn blind(outcome: QueryOutcome, service: &str, at: i64) -> Msg {
    Msg::Query(QueryAnswer {
        trigger: "error-rate".into(),
        service: key(service),
        answered_at: t(at),
        outcome,
    })
}

#[test]
fn every_blind_data_state_holds_and_shows_on_the_trigger() {
    let stale_points = vec![(t(-600).as_millisecond(), 0.9)];
    let cases = [
        (QueryOutcome::Empty, "no data"),
        (
            QueryOutcome::Series {
                points: vec![(t(100).as_millisecond(), f64::NAN)].into(),
                requests_per_second: Some(50.0),
            },
            "no data",
        ),
        (
            QueryOutcome::Series {
                points: vec![(t(100).as_millisecond(), 0.9)].into(),
                requests_per_second: Some(0.5),
            },
            "no data",
        ),
        (QueryOutcome::SeveralSeries { count: 2 }, "error"),
        (
            QueryOutcome::Failed {
                error: "400: bad_data: parse error".into(),
            },
            "error",
        ),
        (
            QueryOutcome::Series {
                points: stale_points.into(),
                requests_per_second: Some(50.0),
            },
            "stale",
        ),
    ];
    for (outcome, label) in cases {
        let mut state = world("");
        update(&mut state, Msg::Tick(t(100)));
        update(&mut state, blind(outcome.clone(), "checkout", 100));
        let trig = &state.services[&key("checkout")].triggers["error-rate"];
        assert_eq!(trig.data.label(), label, "{outcome:?}");
        assert_eq!(trig.alert.label(), "inactive");
        assert_eq!(decision(&state, "checkout").action, Action::None);
    }
}

#[test]
fn the_tick_counts_blind_and_answered_triggers_as_a_walk_of_its_own_would() {
    let mut state = world("");
    deploy(&mut state, "search", &["search:1", "search:2"], 0, false);
    let queried = state.config.queried().count();
    update(&mut state, Msg::Tick(t(1)));
    assert_eq!(
        state.answered_at_tick,
        (0, 2 * queried),
        "none answered yet"
    );
    assert_eq!(state.blind_at_tick, state.blind());
    let banner = state
        .blind_at_tick
        .clone()
        .expect("nothing answered is blind");
    assert!(
        banner.contains("error-rate on shop/checkout (no data"),
        "{banner}"
    );
    // Every service answered (`run` answers the others calm).
    run(&mut state, "checkout", "error-rate", 0.001, 0.001, 0, 60);
    update(&mut state, Msg::Tick(t(61)));
    assert_eq!(state.answered_at_tick, (2 * queried, 2 * queried));
    assert_eq!(state.answered_at_tick, state.answered());
    assert_eq!(state.blind_at_tick, state.blind());
    assert!(
        !state.blind_at_tick.iter().any(|b| b.contains("error-rate")),
        "{:?}",
        state.blind_at_tick
    );
    // Silent past the stale limit: still answered, and blind again.
    update(&mut state, Msg::Tick(t(200)));
    assert_eq!(state.answered_at_tick, (2 * queried, 2 * queried));
    let banner = state.blind_at_tick.clone().expect("stale is blind");
    assert_eq!(Some(&banner), state.blind().as_ref());
    assert!(banner.contains("stale: no answer for"), "{banner}");
}

#[test]
fn a_silent_prometheus_turns_data_stale_and_then_pages_metrics_blind() {
    let mut state = world("");
    run(&mut state, "checkout", "error-rate", 0.001, 0.001, 0, 60);
    update(&mut state, Msg::Tick(t(100)));
    assert_eq!(
        state.services[&key("checkout")].triggers["error-rate"]
            .data
            .label(),
        "stale"
    );
    let effects = update(&mut state, Msg::Tick(t(100 + 121)));
    assert!(
        effects.iter().any(
            |e| matches!(e, Effect::Page { summary, .. } if summary.contains("metrics blind"))
        ),
        "{effects:?}"
    );
    assert!(
        update(&mut state, Msg::Tick(t(300)))
            .iter()
            .all(|e| !matches!(e, Effect::Page { .. })),
        "pages once"
    );
}

#[test]
fn a_prometheus_that_never_answers_pages_metrics_blind_too() {
    let mut state = world("");
    let blind_after = state.config.policy.blind_after.as_secs() as i64;
    assert!(update(&mut state, Msg::Tick(t(0))).is_empty());
    update(&mut state, Msg::Tick(t(blind_after / 2)));
    let data = &state.services[&key("checkout")].triggers["error-rate"].data;
    assert_eq!(data.label(), "stale", "{data:?}");
    let effects = update(&mut state, Msg::Tick(t(blind_after)));
    let paged: Vec<&String> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Page { service, summary } if service == &key("checkout") => Some(summary),
            _ => None,
        })
        .collect();
    assert!(
        paged
            .iter()
            .any(|s| s.contains("metrics blind: error-rate") && s.contains("no answer")),
        "{effects:?}"
    );
    assert!(state.blind().is_some_and(|why| why.contains("no answer")));
    assert_eq!(decision(&state, "checkout").action, Action::None);
}

#[test]
fn a_firing_trigger_held_by_an_outage_does_not_resolve_the_incident() {
    let mut state = world("");
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    update(
        &mut state,
        blind(
            QueryOutcome::Failed {
                error: "connection refused".into(),
            },
            "checkout",
            215,
        ),
    );
    let trig = &state.services[&key("checkout")].triggers["error-rate"];
    assert_eq!((trig.alert.label(), trig.data.label()), ("firing", "error"));
}

fn blind_outcome() -> impl Strategy<Value = QueryOutcome> {
    prop_oneof![
        Just(QueryOutcome::Empty),
        (2usize..5).prop_map(|count| QueryOutcome::SeveralSeries { count }),
        "[a-z ]{1,20}".prop_map(|error| QueryOutcome::Failed { error }),
        (0.0f64..2.0).prop_map(|v| QueryOutcome::Series {
            points: vec![(t(-3600).as_millisecond(), v)].into(),
            requests_per_second: Some(50.0)
        }),
        (0.0f64..2.0).prop_map(|v| QueryOutcome::Series {
            points: vec![(t(0).as_millisecond(), v)].into(),
            requests_per_second: Some(0.1)
        }),
        Just(QueryOutcome::Series {
            points: Default::default(),
            requests_per_second: None
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn no_sequence_of_blind_answers_ever_yields_auto_rollback(steps in proptest::collection::vec((blind_outcome(), 1i64..120), 1..40)) {
        let mut state = world("");
        let mut now = 0;
        for (outcome, gap) in steps {
            now += gap;
            update(&mut state, Msg::Tick(t(now)));
            let outcome = match outcome {
                QueryOutcome::Series { points, requests_per_second: Some(rps) } if rps < 1.0 => {
                    QueryOutcome::Series { points: points.iter().map(|(_, v)| (t(now).as_millisecond(), v)).collect(), requests_per_second: Some(rps) }
                }
                other => other,
            };
            update(&mut state, blind(outcome, "checkout", now));
            prop_assert_ne!(decision(&state, "checkout").action, Action::AutoRollback);
            prop_assert!(!state.services[&key("checkout")].triggers["error-rate"].alert.is_firing());
        }
    }

    #[test]
    fn auto_rollback_never_fires_inside_the_cooldown_or_the_blackout(
        rollback_at in 0i64..600,
        same_service in any::<bool>(),
        checks in proptest::collection::vec(0i64..1500, 1..20),
    ) {
        let mut state = world("");
        deploy(&mut state, "payments", &["payments:1", "payments:2"], 0, false);
        let rolled = if same_service { "checkout" } else { "payments" };
        state.note_rollback(&key(rolled), t(rollback_at), true);
        let policy = state.config.policy.clone();
        let quiet = if same_service { policy.blackout } else { policy.cooldown };
        let mut checks = checks;
        checks.sort();
        for now in checks {
            let now = now.max(rollback_at);
            update(&mut state, Msg::Tick(t(now)));
            update(&mut state, answer("checkout", "error-rate", 0.001, 0.25, 30, now));
            if now - rollback_at < quiet.as_secs() as i64 {
                prop_assert_ne!(decision(&state, "checkout").action, Action::AutoRollback, "at {}s after the rollback", now - rollback_at);
            }
        }
    }
}

#[test]
fn the_quiet_windows_match_the_policy_defaults() {
    let p = config("").policy;
    assert_eq!(
        (p.cooldown, p.blackout),
        (Duration::from_secs(300), Duration::from_secs(600))
    );
}

#[test]
fn every_notification_is_journaled_and_a_failed_journal_write_is_kept_not_journaled_again() {
    let mut state = world("");
    let notified = |channel: &str, error: Option<&str>| Msg::Notified {
        service: Some(key("checkout")),
        channel: channel.into(),
        attempts: 2,
        error: error.map(String::from),
    };
    let effects = update(&mut state, notified("webhook", None));
    assert!(
        matches!(&effects[..], [Effect::Journal(r)] if matches!(&r.entry, super::journal::Entry::Notification { delivered: true, detail, .. } if detail == "2 attempts"))
    );
    let effects = update(&mut state, notified("slack", Some("slack answered 500")));
    assert!(
        matches!(&effects[..], [Effect::Journal(r)] if matches!(&r.entry, super::journal::Entry::Notification { delivered: false, .. }))
    );
    let effects = update(
        &mut state,
        Msg::JournalFailed {
            error: "disk full".into(),
        },
    );
    assert!(effects.is_empty());
    assert_eq!(state.effect_errors.len(), 2);
}

#[test]
fn an_auto_rollback_is_ordered_once_and_a_failed_one_stops_further_automatic_rollbacks() {
    let mut state = world("[policy]\nauto_rollback = true\n");
    let effects = run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    let orders: Vec<_> = effects
        .iter()
        .filter(|e| matches!(e, Effect::Rollback(_)))
        .collect();
    assert_eq!(orders.len(), 1, "one order while it is in flight");
    let effects = update(
        &mut state,
        Msg::RollbackFailed {
            service: key("checkout"),
            error: super::rollbacks::RollbackError::Paused,
        },
    );
    assert!(effects.iter().any(|e| matches!(e, Effect::Page { .. })));
    let effects = run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 300);
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Rollback(_))),
        "no second automatic attempt"
    );
    assert_eq!(decision(&state, "checkout").action, Action::Suggest);
    assert!(decision(&state, "checkout")
        .why_not_automatic
        .iter()
        .any(|w| w.contains("no further automatic rollback")));
}

#[test]
fn a_regression_that_began_before_the_deploy_scores_low_and_is_not_automatic() {
    for before in [30, 60, 300] {
        let mut state = world("");
        run(
            &mut state,
            "checkout",
            "error-rate",
            0.001,
            0.25,
            -before,
            200,
        );
        let d = decision(&state, "checkout");
        let score = d.confidence.as_ref().unwrap().score;
        assert!(
            score <= super::decision::BEFORE_DEPLOY_CAP,
            "began {before}s before the deploy, scored {score}"
        );
        assert_ne!(d.action, Action::AutoRollback);
        assert!(failed_gates(&state, "checkout").contains(&1));
    }
}

#[test]
fn a_pods_lines_reach_only_the_opening_they_were_read_for() {
    use super::model::pod_view::PodFeed;
    let mut state = world("");
    let line = |s: &str| PodFeed::Lines(vec![s.to_string()]);
    let open = |n: u64| Msg::PodOpened(Some((key("checkout"), format!("pod-{n}"), n)));
    update(&mut state, open(1));
    update(
        &mut state,
        Msg::Pod {
            opened: 1,
            feed: line("first"),
        },
    );
    update(&mut state, open(2));
    // The reader of the first opening has not stopped yet.
    update(
        &mut state,
        Msg::Pod {
            opened: 1,
            feed: line("late"),
        },
    );
    update(
        &mut state,
        Msg::Pod {
            opened: 2,
            feed: line("second"),
        },
    );
    let view = state.pod_view.as_ref().unwrap();
    assert_eq!(view.pod, "pod-2");
    assert_eq!(view.log, ["second"]);
    update(&mut state, Msg::PodOpened(None));
    update(
        &mut state,
        Msg::Pod {
            opened: 2,
            feed: line("after close"),
        },
    );
    assert!(state.pod_view.is_none());
}
