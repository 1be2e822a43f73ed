//! Grouped answers that cover only the newest part of the lookback (the poller asks
//! only what is new since its last answer): the kept points are extended, and the
//! judgement reads all of them.

use super::decision::Action;
use super::fixtures::*;
use super::msg::{GroupedAnswer, GroupedOutcome, Msg};
use super::update::update;

/// A grouped answer for one service: (seconds after T0, value) points.
fn grouped(points: &[(i64, f64)], now: i64, partial_from: Option<i64>) -> Msg {
    let service = key("checkout");
    let points = points.iter().map(|&(s, v)| (t(s).as_millisecond(), v));
    Msg::Queries(GroupedAnswer {
        trigger: "error-rate".into(),
        services: vec![service.clone()],
        answered_at: t(now),
        partial_from: partial_from.map(|s| t(s).as_millisecond()),
        outcome: GroupedOutcome::Series {
            series: vec![(service.clone(), points.collect())],
            requests_per_second: [(service, 50.0)].into(),
        },
    })
}

#[test]
fn a_partial_answer_extends_the_kept_series_and_is_judged_on_all_of_it() {
    let mut state = world("");
    let lookback = state.config.prometheus.as_ref().unwrap().lookback.as_secs() as i64;
    let every_15s = |from: i64, to: i64, value: f64| -> Vec<(i64, f64)> {
        (from..=to).step_by(15).map(|s| (s, value)).collect()
    };
    // Healthy until 30 s, then breaching: the whole lookback once, then only what is
    // new with a step of overlap, as the poller asks.
    let mut whole = every_15s(-300, 15, 0.001);
    whole.extend(every_15s(30, 60, 0.25));
    update(&mut state, Msg::Tick(t(60)));
    update(&mut state, grouped(&whole, 60, None));
    for now in [75, 90, 105] {
        update(&mut state, Msg::Tick(t(now)));
        update(
            &mut state,
            grouped(&every_15s(now - 15, now, 0.25), now, Some(now - 15)),
        );
    }
    let kept = &state.services[&key("checkout")].triggers["error-rate"];
    let at: Vec<i64> = kept
        .points
        .iter()
        .map(|p| p.0 / 1000 - t(0).as_second())
        .collect();
    let expected: Vec<i64> = (-300..=105)
        .step_by(15)
        .filter(|s| *s >= 105 - lookback)
        .collect();
    assert_eq!(
        at, expected,
        "every point once, a step apart, none older than the lookback"
    );
    assert_eq!(
        kept.onset,
        Some(t(30)),
        "the onset lies in points only the first answer had"
    );
    assert_eq!(kept.data.label(), "breach");
    // A partial answer without the service's series is no data, never a healthy value.
    update(&mut state, Msg::Tick(t(120)));
    let mut empty = grouped(&[], 120, Some(105));
    if let Msg::Queries(g) = &mut empty {
        g.outcome = GroupedOutcome::Series {
            series: Vec::new(),
            requests_per_second: Default::default(),
        };
    }
    update(&mut state, empty);
    let kept = &state.services[&key("checkout")].triggers["error-rate"];
    assert_eq!(kept.data.label(), "no data");
    assert_ne!(
        state.services[&key("checkout")].decision.action,
        Action::AutoRollback
    );
}
