//! A small time-series store for the recorded series: samples with staleness
//! markers, answered at an instant with Prometheus' 5-minute lookback.

use std::collections::{BTreeMap, VecDeque};

pub type Labels = BTreeMap<String, String>;

/// How far back an instant query looks for the latest sample.
pub const LOOKBACK_MS: u64 = 5 * 60 * 1000;
/// Three times the lookback backout's generated config asks for (5m). At one sample
/// a second, 2,000 services' seven series come to about 200 MB; an hour's retention
/// made the simulator grow for an hour, to gigabytes.
const RETENTION_MS: u64 = 15 * 60 * 1000;

/// Prometheus' own staleness marker: a NaN no computation produces.
const STALE: u64 = 0x7ff0_0000_0000_0002;

/// A sample in 16 bytes: milliseconds since the store's first sample, and the value
/// or the staleness marker.
#[derive(Clone, Copy)]
struct Sample {
    offset_ms: u32,
    value: f64,
}

impl Sample {
    fn value(self) -> Option<f64> {
        (self.value.to_bits() != STALE).then_some(self.value)
    }
}

#[derive(Default)]
pub struct Tsdb {
    /// When the first sample was taken: sample times are kept relative to it.
    base_ms: Option<u64>,
    /// Keyed by labels including `__name__`.
    series: BTreeMap<Labels, VecDeque<Sample>>,
}

impl Tsdb {
    /// Appends a sample; `None` is a staleness marker.
    pub fn append(&mut self, labels: Labels, t_ms: u64, value: Option<f64>) {
        let base = *self.base_ms.get_or_insert(t_ms);
        let offset_ms = u32::try_from(t_ms.saturating_sub(base)).unwrap_or(u32::MAX);
        let samples = self.series.entry(labels).or_default();
        if value.is_none() && samples.back().is_none_or(|s| s.value().is_none()) {
            return; // already stale, or never existed
        }
        samples.push_back(Sample {
            offset_ms,
            value: value.unwrap_or(f64::from_bits(STALE)),
        });
        while samples
            .front()
            .is_some_and(|s| base + s.offset_ms as u64 + RETENTION_MS < t_ms)
        {
            samples.pop_front();
        }
    }

    /// Each series matching `select` with its value at `t_ms`.
    pub fn at(&self, t_ms: u64, select: impl Fn(&Labels) -> bool) -> Vec<(&Labels, f64)> {
        self.range(t_ms, t_ms, 1, select)
            .into_iter()
            .filter_map(|(labels, points)| Some((labels, points.first()?.1)))
            .collect()
    }

    /// Each series matching `select` with its values at `start`, `start + step`, …
    /// up to `end`, leaving out the steps where it has none. The selector is asked
    /// once per series, not once per step: a grouped query names thousands of
    /// services in one regex, over every series in the store.
    pub fn range(
        &self,
        start: u64,
        end: u64,
        step: u64,
        select: impl Fn(&Labels) -> bool,
    ) -> Vec<(&Labels, Vec<(u64, f64)>)> {
        let Some(base) = self.base_ms else {
            return Vec::new();
        };
        let time = |s: &Sample| base + s.offset_ms as u64;
        self.series
            .iter()
            .filter(|(labels, _)| select(labels))
            .filter_map(|(labels, samples)| {
                let mut points = Vec::new();
                let mut t = start;
                while t <= end {
                    let after = samples.partition_point(|s| time(s) <= t);
                    if let Some(latest) = after.checked_sub(1).map(|i| samples[i]) {
                        match latest.value() {
                            Some(v) if time(&latest) + LOOKBACK_MS > t => points.push((t, v)),
                            _ => {}
                        }
                    }
                    t += step.max(1);
                }
                (!points.is_empty()).then_some((labels, points))
            })
            .collect()
    }

    /// How many samples the store holds, for the scale benchmark.
    pub fn samples(&self) -> usize {
        self.series.values().map(VecDeque::len).sum()
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

    #[test]
    fn samples_older_than_the_retention_are_dropped_so_memory_stays_flat() {
        let mut db = Tsdb::default();
        for second in 0..3 * 60 * 60 {
            db.append(labels("a"), second * 1000, Some(second as f64));
        }
        assert_eq!(db.samples() as u64, RETENTION_MS / 1000 + 1);
        assert!(db.at(0, |_| true).is_empty(), "the first hours are gone");
        assert_eq!(
            db.at(3 * 60 * 60 * 1000, |_| true)[0].1,
            (3 * 60 * 60 - 1) as f64
        );
    }

    #[test]
    fn a_range_is_the_instant_at_each_step_and_asks_the_selector_once_per_series() {
        let mut db = Tsdb::default();
        for second in 0..20u64 {
            db.append(labels("a"), second * 1000, Some(second as f64));
            db.append(labels("b"), second * 1000, (second < 10).then_some(1.0));
        }
        let asked = std::cell::Cell::new(0);
        let range = db.range(500, 15_500, 5_000, |_| {
            asked.set(asked.get() + 1);
            true
        });
        assert_eq!(asked.get(), 2, "once per series, not per step");
        let of = |name: &str| {
            range
                .iter()
                .find(|(l, _)| l["__name__"] == name)
                .map(|(_, p)| p.clone())
        };
        let a = [(500, 0.0), (5_500, 5.0), (10_500, 10.0), (15_500, 15.0)];
        assert_eq!(of("a").unwrap(), a);
        assert_eq!(
            of("b").unwrap(),
            [(500, 1.0), (5_500, 1.0)],
            "nothing after its staleness marker"
        );
    }
}
