//! Blind data: every state that is not evidence (an error, no data, stale, a query
//! that never answers) holds the trigger, shows on it, counts in the banner, and
//! pages once it lasts; no sequence of them ever rolls back.

use proptest::prelude::*;

use super::decision::Action;
use super::fixtures::*;
use super::msg::{Effect, Msg, QueryAnswer};
use super::signals::QueryOutcome;
use super::update::update;

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
}
