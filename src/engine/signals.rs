//! One trigger on one service: what its latest query said (the data state) and where
//! it stands in inactive → pending → firing → keep-firing. Only a breach moves it
//! towards firing; no_data, error and stale hold it where it is and say so.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::series::Series;
use crate::config::Trigger;

/// What one Prometheus answer meant for a trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum DataState {
    Ok,
    Breach,
    NoData(String),
    Error(String),
    Stale(String),
}

impl DataState {
    /// Whether this answer is evidence at all. Anything else holds the trigger.
    pub fn is_clean(&self) -> bool {
        matches!(self, DataState::Ok | DataState::Breach)
    }

    pub fn label(&self) -> &'static str {
        match self {
            DataState::Ok => "ok",
            DataState::Breach => "breach",
            DataState::NoData(_) => "no data",
            DataState::Error(_) => "error",
            DataState::Stale(_) => "stale",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AlertState {
    Inactive,
    Pending { since: Timestamp },
    Firing { since: Timestamp },
    KeepFiring { since: Timestamp, until: Timestamp },
}

impl AlertState {
    pub fn is_firing(self) -> bool {
        matches!(
            self,
            AlertState::Firing { .. } | AlertState::KeepFiring { .. }
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending { .. } => "pending",
            AlertState::Firing { .. } => "firing",
            AlertState::KeepFiring { .. } => "keep-firing",
        }
    }
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// The next alert state. `onset` is when the current run of breaching samples began,
/// so a console opened mid-incident does not wait a whole `for` again.
pub fn step(
    alert: AlertState,
    data: &DataState,
    onset: Option<Timestamp>,
    now: Timestamp,
    trigger: &Trigger,
) -> AlertState {
    match data {
        DataState::Breach => {
            let since = onset.unwrap_or(now).min(now);
            match alert {
                AlertState::Firing { .. } => alert,
                AlertState::KeepFiring { since, .. } => AlertState::Firing { since },
                AlertState::Inactive | AlertState::Pending { .. } => {
                    let pending_since = match alert {
                        AlertState::Pending { since: s } => s.min(since),
                        _ => since,
                    };
                    if after(pending_since, trigger.for_) <= now {
                        AlertState::Firing { since: now }
                    } else {
                        AlertState::Pending {
                            since: pending_since,
                        }
                    }
                }
            }
        }
        DataState::Ok => match alert {
            AlertState::Inactive | AlertState::Pending { .. } => AlertState::Inactive,
            AlertState::Firing { since } if !trigger.keep_firing_for.is_zero() => {
                AlertState::KeepFiring {
                    since,
                    until: after(now, trigger.keep_firing_for),
                }
            }
            AlertState::Firing { .. } => AlertState::Inactive,
            AlertState::KeepFiring { until, .. } if now >= until => AlertState::Inactive,
            AlertState::KeepFiring { .. } => alert,
        },
        // Blind: never move towards (or away from) firing on missing evidence.
        DataState::NoData(_) | DataState::Error(_) | DataState::Stale(_) => alert,
    }
}

/// Time left in the current state: until pending fires, or keep-firing ends.
pub fn time_left(alert: AlertState, now: Timestamp, trigger: &Trigger) -> Option<Duration> {
    let until = match alert {
        AlertState::Pending { since } => after(since, trigger.for_),
        AlertState::KeepFiring { until, .. } => until,
        _ => return None,
    };
    let left = until.duration_since(now);
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}

/// What Prometheus answered for one (trigger, service) query.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum QueryOutcome {
    /// One series: its points (unix ms, value), oldest first, and the request rate
    /// of the same service when the trigger has a volume guard.
    Series {
        points: Series,
        requests_per_second: Option<f64>,
    },
    Empty,
    SeveralSeries {
        count: usize,
    },
    Failed {
        error: String,
    },
}

pub struct Judged {
    pub data: DataState,
    pub value: Option<f64>,
    pub onset: Option<Timestamp>,
}

/// The data state of one answer. `stale_after` is two poll intervals; `window` is the
/// rate window the request-volume guard counts requests over.
pub fn judge(
    outcome: &QueryOutcome,
    trigger: &Trigger,
    now: Timestamp,
    stale_after: Duration,
    min_requests: f64,
    window: Duration,
) -> Judged {
    let blind = |data| Judged {
        data,
        value: None,
        onset: None,
    };
    match outcome {
        QueryOutcome::Failed { error } => blind(DataState::Error(error.clone())),
        QueryOutcome::SeveralSeries { count } => blind(DataState::Error(format!(
            "the query returned {count} series for one service; a trigger must yield exactly one: select service=\"$SERVICE\" or aggregate with sum by (namespace, service)"
        ))),
        QueryOutcome::Empty => blind(DataState::NoData("the query returned no series".into())),
        QueryOutcome::Series { points, requests_per_second } => {
            let Some((last_ms, value)) = points.last() else {
                return blind(DataState::NoData("the series has no points in the window".into()));
            };
            let at = Timestamp::from_millisecond(last_ms).unwrap_or(now);
            if !value.is_finite() {
                return Judged { data: DataState::NoData(format!("the latest value is {value}")), value: None, onset: None };
            }
            if after(at, stale_after) < now {
                let age = now.duration_since(at).as_secs();
                return Judged { data: DataState::Stale(format!("the latest point is {age}s old")), value: Some(value), onset: None };
            }
            if let (Some(rps), true) = (requests_per_second, trigger.volume_query.is_some()) {
                let requests = rps * window.as_secs_f64();
                if !matches!(requests.partial_cmp(&min_requests), Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)) {
                    return Judged {
                        data: DataState::NoData(format!("only {requests:.0} requests in the window, fewer than the {min_requests:.0} a ratio needs")),
                        value: Some(value),
                        onset: None,
                    };
                }
            }
            if !trigger.comparison.breached(value, trigger.threshold) {
                return Judged { data: DataState::Ok, value: Some(value), onset: None };
            }
            let run_start = points
                .iter()
                .rev()
                .take_while(|(_, v)| v.is_finite() && trigger.comparison.breached(*v, trigger.threshold))
                .last()
                .map(|(t, _)| t)
                .unwrap_or(last_ms);
            Judged { data: DataState::Breach, value: Some(value), onset: Timestamp::from_millisecond(run_start).ok() }
        }
    }
}

/// Where a series was firing, for shading the graph: each run of breaching points
/// that lasted the for-duration, from the moment it had (when the alert fired) to the
/// run's last point. Times are unix milliseconds, as the points are.
pub fn firing_spans(
    points: impl IntoIterator<Item = (i64, f64)>,
    trigger: &Trigger,
) -> Vec<(i64, i64)> {
    let hold = trigger.for_.as_millis() as i64;
    let mut spans = Vec::new();
    let mut run: Option<(i64, i64)> = None;
    let breaching = points.into_iter().map(|(t, v)| {
        (
            t,
            v.is_finite() && trigger.comparison.breached(v, trigger.threshold),
        )
    });
    for (t, breach) in breaching.chain(std::iter::once((i64::MAX, false))) {
        match (breach, run) {
            (true, None) => run = Some((t, t)),
            (true, Some((start, _))) => run = Some((start, t)),
            (false, Some((start, end))) => {
                if end - start >= hold {
                    spans.push((start + hold, end));
                }
                run = None;
            }
            (false, None) => {}
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::triggers::built_in;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn error_rate() -> Trigger {
        built_in()
            .into_iter()
            .find(|t| t.name == "error-rate")
            .unwrap()
    }

    #[test]
    fn a_breach_pends_for_the_for_duration_then_fires() {
        let trig = error_rate(); // for 2m
        let a = step(
            AlertState::Inactive,
            &DataState::Breach,
            Some(t(0)),
            t(0),
            &trig,
        );
        assert_eq!(a, AlertState::Pending { since: t(0) });
        assert_eq!(time_left(a, t(30), &trig), Some(Duration::from_secs(90)));
        let a = step(a, &DataState::Breach, Some(t(0)), t(119), &trig);
        assert!(matches!(a, AlertState::Pending { .. }));
        let a = step(a, &DataState::Breach, Some(t(0)), t(120), &trig);
        assert!(a.is_firing());
    }

    #[test]
    fn an_onset_in_the_past_fires_at_once() {
        let a = step(
            AlertState::Inactive,
            &DataState::Breach,
            Some(t(-300)),
            t(0),
            &error_rate(),
        );
        assert!(
            a.is_firing(),
            "a console opened mid-incident sees it firing"
        );
    }

    #[test]
    fn blind_states_hold_and_ok_resets() {
        let trig = error_rate();
        let pending = AlertState::Pending { since: t(0) };
        for blind in [
            DataState::NoData("x".into()),
            DataState::Error("x".into()),
            DataState::Stale("x".into()),
        ] {
            assert_eq!(step(pending, &blind, None, t(500), &trig), pending);
            assert_eq!(
                step(AlertState::Inactive, &blind, None, t(500), &trig),
                AlertState::Inactive
            );
        }
        assert_eq!(
            step(pending, &DataState::Ok, None, t(10), &trig),
            AlertState::Inactive
        );
    }

    #[test]
    fn keep_firing_holds_after_recovery_until_it_runs_out() {
        let mut trig = error_rate();
        trig.keep_firing_for = Duration::from_secs(60);
        let a = step(
            AlertState::Firing { since: t(0) },
            &DataState::Ok,
            None,
            t(10),
            &trig,
        );
        assert_eq!(
            a,
            AlertState::KeepFiring {
                since: t(0),
                until: t(70)
            }
        );
        assert!(a.is_firing());
        assert_eq!(step(a, &DataState::Ok, None, t(69), &trig), a);
        assert_eq!(
            step(a, &DataState::Ok, None, t(70), &trig),
            AlertState::Inactive
        );
        assert_eq!(
            step(a, &DataState::Breach, None, t(20), &trig),
            AlertState::Firing { since: t(0) }
        );
    }

    fn series(points: &[(i64, f64)], rps: Option<f64>) -> QueryOutcome {
        QueryOutcome::Series {
            points: points
                .iter()
                .map(|(s, v)| (t(*s).as_millisecond(), *v))
                .collect(),
            requests_per_second: rps,
        }
    }

    #[test]
    fn judging_finds_the_onset_and_every_blind_state() {
        let trig = error_rate();
        let judge_at = |o: &QueryOutcome| {
            judge(
                o,
                &trig,
                t(60),
                Duration::from_secs(30),
                100.0,
                Duration::from_secs(60),
            )
        };
        let j = judge_at(&series(
            &[(0, 0.01), (15, 0.2), (30, 0.3), (45, 0.25)],
            Some(50.0),
        ));
        assert_eq!((j.data, j.onset), (DataState::Breach, Some(t(15))));
        assert_eq!(
            judge_at(&series(&[(45, 0.01)], Some(50.0))).data,
            DataState::Ok
        );
        assert!(matches!(
            judge_at(&series(&[(45, f64::NAN)], Some(50.0))).data,
            DataState::NoData(_)
        ));
        assert!(
            matches!(judge_at(&series(&[(45, 0.5)], Some(1.0))).data, DataState::NoData(m) if m.contains("fewer than"))
        );
        assert!(matches!(
            judge_at(&series(&[(10, 0.5)], Some(50.0))).data,
            DataState::Stale(_)
        ));
        assert!(matches!(
            judge_at(&QueryOutcome::Empty).data,
            DataState::NoData(_)
        ));
        assert!(
            matches!(judge_at(&QueryOutcome::SeveralSeries { count: 3 }).data, DataState::Error(m) if m.contains("3 series"))
        );
        assert!(matches!(
            judge_at(&QueryOutcome::Failed {
                error: "400 bad_data".into()
            })
            .data,
            DataState::Error(_)
        ));
    }

    #[test]
    fn firing_spans_start_once_a_breach_has_lasted_the_for_duration() {
        let mut trigger = crate::config::Config::default().triggers[0].clone();
        trigger.threshold = 0.05;
        trigger.for_ = std::time::Duration::from_secs(20);
        let at = |secs: i64, v: f64| (secs * 1000, v);
        let points = [
            at(0, 0.01),
            at(10, 0.2),
            at(20, 0.2), // a 10 s blip: pending, never firing
            at(30, 0.01),
            at(40, 0.2),
            at(50, f64::NAN), // a gap ends the run, as a missing sample would
            at(60, 0.3),
            at(70, 0.3),
            at(80, 0.3),
            at(90, 0.3),
        ];
        assert_eq!(firing_spans(points, &trigger), [(80_000, 90_000)]);
    }
}
