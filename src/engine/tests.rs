//! Unit and property tests of `update`: every gate, every data state, and the two
//! promises (blind data never rolls back; nothing rolls back in cooldown or blackout).

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use super::decision::Action;
use super::fixtures::*;
use super::msg::{Effect, KubeChange, KubeObject, Msg};
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

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
