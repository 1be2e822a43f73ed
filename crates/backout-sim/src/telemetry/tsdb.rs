//! A small time-series store for the recorded series: samples with staleness
//! markers, answered at an instant with Prometheus' 5-minute lookback.

use std::collections::{BTreeMap, VecDeque};

pub type Labels = BTreeMap<String, String>;

/// How far back an instant query looks for the latest sample.
pub const LOOKBACK_MS: u64 = 5 * 60 * 1000;
const RETENTION_MS: u64 = 60 * 60 * 1000;

#[derive(Default)]
pub struct Tsdb {
    /// Keyed by labels including `__name__`. `None` is a staleness marker.
    series: BTreeMap<Labels, VecDeque<(u64, Option<f64>)>>,
}

impl Tsdb {
    pub fn append(&mut self, labels: Labels, t_ms: u64, value: Option<f64>) {
        let samples = self.series.entry(labels).or_default();
        if value.is_none() && samples.back().is_none_or(|(_, v)| v.is_none()) {
            return; // already stale, or never existed
        }
        samples.push_back((t_ms, value));
        while samples
            .front()
            .is_some_and(|(t, _)| *t + RETENTION_MS < t_ms)
        {
            samples.pop_front();
        }
    }

    /// Each series matching `select` with its value at `t_ms`.
    pub fn at(&self, t_ms: u64, select: impl Fn(&Labels) -> bool) -> Vec<(&Labels, f64)> {
        self.series
            .iter()
            .filter(|(labels, _)| select(labels))
            .filter_map(|(labels, samples)| {
                let latest = samples.iter().rev().find(|(t, _)| *t <= t_ms)?;
                match latest {
                    (t, Some(v)) if *t + LOOKBACK_MS > t_ms => Some((labels, *v)),
                    _ => None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str) -> Labels {
        [("__name__".to_string(), name.to_string())].into()
    }

    #[test]
    fn an_instant_sees_the_latest_sample_until_it_goes_stale() {
        let mut db = Tsdb::default();
        db.append(labels("a"), 1000, Some(1.0));
        db.append(labels("a"), 2000, Some(2.0));
        assert_eq!(db.at(1500, |_| true)[0].1, 1.0);
        assert_eq!(db.at(2500, |_| true)[0].1, 2.0);
        assert!(db.at(500, |_| true).is_empty());
        assert!(
            db.at(2000 + LOOKBACK_MS, |_| true).is_empty(),
            "past the lookback"
        );
        db.append(labels("a"), 3000, None);
        assert!(
            db.at(3500, |_| true).is_empty(),
            "a staleness marker ends the series"
        );
        assert_eq!(
            db.at(2500, |_| true)[0].1,
            2.0,
            "history before the marker remains"
        );
    }
}
