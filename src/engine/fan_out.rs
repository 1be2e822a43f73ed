//! A grouped answer (one trigger, many services) as the per-service answers the
//! rest of `update` judges. Pure, as `update` is.

use std::collections::HashMap;

use super::msg::{GroupedAnswer, GroupedOutcome};
use super::series::Series;
use super::signals::QueryOutcome;
use super::state::ServiceKey;

/// One outcome per service asked for, in the order asked. A service the answer has
/// no series for got none (no data, never "healthy"); one with several got an
/// ambiguous answer, as a per-service query returning several would be. The trigger
/// and the time stay with the grouped answer: a copy of each per service was an
/// allocation per answer, thousands a poll.
pub fn fan_out(
    services: Vec<ServiceKey>,
    outcome: GroupedOutcome,
) -> Vec<(ServiceKey, QueryOutcome)> {
    match outcome {
        GroupedOutcome::Failed { error } => services
            .into_iter()
            .map(|s| {
                let error = error.clone();
                (s, QueryOutcome::Failed { error })
            })
            .collect(),
        GroupedOutcome::Series {
            series,
            requests_per_second,
        } => {
            let mut by_service = by_service(series);
            services
                .into_iter()
                .map(|s| {
                    let outcome = match by_service.remove(&s) {
                        None => QueryOutcome::Empty,
                        Some(mut all) if all.len() == 1 => QueryOutcome::Series {
                            points: all.pop().expect("one"),
                            requests_per_second: requests_per_second.get(&s).copied(),
                        },
                        Some(all) => QueryOutcome::SeveralSeries { count: all.len() },
                    };
                    (s, outcome)
                })
                .collect()
        }
    }
}

/// `grouped` as answers of at most `size` services each, every service with exactly
/// its own series: the core applies one message at a time, and a key press waits
/// behind the one being applied (2,000 services take tens of milliseconds).
pub fn split(grouped: GroupedAnswer, size: usize) -> Vec<GroupedAnswer> {
    if grouped.services.len() <= size {
        return vec![grouped];
    }
    let GroupedAnswer {
        trigger,
        services,
        answered_at,
        partial_from,
        outcome,
    } = grouped;
    let (mut series, mut rates) = match outcome {
        GroupedOutcome::Series {
            series,
            requests_per_second,
        } => {
            let by_service = by_service(series);
            (Some(by_service), requests_per_second)
        }
        GroupedOutcome::Failed { error } => {
            return services
                .chunks(size.max(1))
                .map(|chunk| GroupedAnswer {
                    trigger: trigger.clone(),
                    services: chunk.to_vec(),
                    answered_at,
                    partial_from,
                    outcome: GroupedOutcome::Failed {
                        error: error.clone(),
                    },
                })
                .collect();
        }
    };
    // Keys are moved, not cloned, into the parts: at 2,000 services a clone of each
    // was thousands of allocations a poll.
    let mut services = services.into_iter();
    let mut parts = Vec::new();
    loop {
        let chunk: Vec<ServiceKey> = services.by_ref().take(size.max(1)).collect();
        if chunk.is_empty() {
            return parts;
        }
        let by_service = series.as_mut().expect("a series answer");
        let mut own_series = Vec::with_capacity(chunk.len());
        let mut own_rates = HashMap::with_capacity(chunk.len());
        for k in &chunk {
            if let Some((key, all)) = by_service.remove_entry(k) {
                let mut all = all.into_iter();
                // A key is cloned only for a service with several series (ambiguous).
                let last = all.next_back();
                own_series.extend(all.map(|points| (key.clone(), points)));
                own_series.extend(last.map(|points| (key, points)));
            }
            if let Some((key, rate)) = rates.remove_entry(k) {
                own_rates.insert(key, rate);
            }
        }
        parts.push(GroupedAnswer {
            trigger: trigger.clone(),
            services: chunk,
            answered_at,
            partial_from,
            outcome: GroupedOutcome::Series {
                series: own_series,
                requests_per_second: own_rates,
            },
        });
    }
}

/// Each service's series, in the order the answer gave them.
fn by_service(series: Vec<(ServiceKey, Series)>) -> HashMap<ServiceKey, Vec<Series>> {
    let mut by_service: HashMap<ServiceKey, Vec<Series>> = HashMap::new();
    for (key, points) in series {
        by_service.entry(key).or_default().push(points);
    }
    by_service
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    #[test]
    fn each_service_gets_its_own_series_and_the_silent_ones_get_no_data() {
        let key = |n: &str| ServiceKey::new("shop", n);
        let grouped = GroupedAnswer {
            trigger: "error-rate".into(),
            services: vec![key("checkout"), key("web"), key("search")],
            answered_at: Timestamp::UNIX_EPOCH,
            partial_from: None,
            outcome: GroupedOutcome::Series {
                series: vec![
                    (key("checkout"), vec![(0, 0.2)].into()),
                    (key("search"), vec![(0, 0.1)].into()),
                    (key("search"), vec![(0, 0.3)].into()),
                ],
                requests_per_second: HashMap::from([(key("checkout"), 40.0)]),
            },
        };
        let answers: Vec<(String, QueryOutcome)> = fan_out(grouped.services, grouped.outcome)
            .into_iter()
            .map(|(service, outcome)| (service.name, outcome))
            .collect();
        assert_eq!(
            answers,
            [
                (
                    "checkout".to_string(),
                    QueryOutcome::Series {
                        points: vec![(0, 0.2)].into(),
                        requests_per_second: Some(40.0)
                    }
                ),
                ("web".to_string(), QueryOutcome::Empty),
                (
                    "search".to_string(),
                    QueryOutcome::SeveralSeries { count: 2 }
                ),
            ]
        );
    }

    #[test]
    fn split_answers_fan_out_as_the_whole_one_does() {
        let key = |i: usize| ServiceKey::new("shop", &format!("s{i}"));
        let whole = || GroupedAnswer {
            trigger: "error-rate".into(),
            services: (0..7).map(key).collect(),
            answered_at: Timestamp::UNIX_EPOCH,
            partial_from: None,
            outcome: GroupedOutcome::Series {
                // s1 twice (ambiguous), s4 silent.
                series: [0, 1, 1, 2, 3, 5, 6]
                    .iter()
                    .map(|&i| (key(i), vec![(0, i as f64)].into()))
                    .collect(),
                requests_per_second: (0..7).map(|i| (key(i), 10.0 * i as f64)).collect(),
            },
        };
        let parts = split(whole(), 3);
        assert_eq!(
            parts.iter().map(|p| p.services.len()).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        let pieces: Vec<(ServiceKey, QueryOutcome)> = parts
            .into_iter()
            .flat_map(|p| fan_out(p.services, p.outcome))
            .collect();
        let whole = whole();
        assert_eq!(pieces, fan_out(whole.services, whole.outcome));
    }

    #[test]
    fn a_failed_grouped_query_is_a_failure_for_every_service_asked() {
        let grouped = GroupedAnswer {
            trigger: "error-rate".into(),
            services: vec![ServiceKey::new("shop", "a"), ServiceKey::new("shop", "b")],
            answered_at: Timestamp::UNIX_EPOCH,
            partial_from: None,
            outcome: GroupedOutcome::Failed {
                error: "timeout".into(),
            },
        };
        let answers = fan_out(grouped.services, grouped.outcome);
        assert_eq!(answers.len(), 2);
        assert!(answers.iter().all(
            |(_, outcome)| matches!(outcome, QueryOutcome::Failed { error } if error == "timeout")
        ));
    }
}
