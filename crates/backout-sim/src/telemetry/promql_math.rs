//! The two PromQL functions the recorded series need, computed the way Prometheus
//! computes them, so that the simulator's answers agree with a real server's.

/// Upper bounds of the `http_request_duration_seconds` buckets, `+Inf` last.
pub const BUCKETS: [f64; 12] = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    f64::INFINITY,
];

/// `rate()` (or `increase()` with `per_second = false`) over counter samples
/// `(unix ms, value)` in the window `(end - range, end]`, with Prometheus'
/// extrapolation towards the window's edges. `None` with fewer than two samples.
pub fn extrapolated_rate(
    samples: &[(u64, f64)],
    end_ms: u64,
    range_ms: u64,
    per_second: bool,
) -> Option<f64> {
    let start_ms = end_ms.saturating_sub(range_ms);
    let points: Vec<(u64, f64)> = samples
        .iter()
        .copied()
        .filter(|(t, _)| *t > start_ms && *t <= end_ms)
        .collect();
    if points.len() < 2 {
        return None;
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let mut delta = last.1 - first.1;
    for w in points.windows(2) {
        if w[1].1 < w[0].1 {
            delta += w[0].1; // a counter reset: the counter restarted from zero
        }
    }
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average_gap = sampled / (points.len() - 1) as f64;
    let threshold = average_gap * 1.1;
    let mut to_start = (first.0 - start_ms) as f64 / 1000.0;
    let mut to_end = (end_ms - last.0) as f64 / 1000.0;
    if to_start >= threshold {
        to_start = average_gap / 2.0;
    }
    if delta > 0.0 && first.1 >= 0.0 {
        // A counter cannot have been below zero: do not extrapolate past that point.
        to_start = to_start.min(sampled * (first.1 / delta));
    }
    if to_end >= threshold {
        to_end = average_gap / 2.0;
    }
    let interval = sampled + to_start + to_end;
    let mut result = delta * (interval / sampled);
    if per_second {
        result /= range_ms as f64 / 1000.0;
    }
    Some(result)
}

/// `histogram_quantile(q, …)` over cumulative bucket rates aligned with [`BUCKETS`].
/// `None` when there were no observations.
pub fn histogram_quantile(q: f64, cumulative: &[f64]) -> Option<f64> {
    let total = *cumulative.last()?;
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    let rank = q * total;
    let i = cumulative.iter().position(|c| *c >= rank)?;
    if i == BUCKETS.len() - 1 {
        return Some(BUCKETS[BUCKETS.len() - 2]);
    }
    let (start, below) = if i == 0 {
        (0.0, 0.0)
    } else {
        (BUCKETS[i - 1], cumulative[i - 1])
    };
    let in_bucket = cumulative[i] - below;
    if in_bucket <= 0.0 {
        return Some(BUCKETS[i]);
    }
    Some(start + (BUCKETS[i] - start) * (rank - below) / in_bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_counter_rates_to_its_slope() {
        // 10 per second, sampled every second, over a full 60 s window.
        let samples: Vec<(u64, f64)> = (0..=60).map(|s| (s * 1000, s as f64 * 10.0)).collect();
        let r = extrapolated_rate(&samples, 60_000, 60_000, true).unwrap();
        assert!((r - 10.0).abs() < 1e-9, "{r}");
        let inc = extrapolated_rate(&samples, 60_000, 60_000, false).unwrap();
        assert!((inc - 600.0).abs() < 1e-6, "{inc}");
    }

    #[test]
    fn a_counter_reset_is_not_a_negative_rate() {
        let samples = [(1000, 50.0), (2000, 60.0), (3000, 5.0), (4000, 15.0)];
        assert!(extrapolated_rate(&samples, 4000, 4000, true).unwrap() > 0.0);
    }

    #[test]
    fn one_sample_is_no_rate() {
        assert_eq!(extrapolated_rate(&[(1000, 1.0)], 2000, 60_000, true), None);
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        // 100 observations: 50 at or below 0.1 s, all at or below 0.25 s.
        let mut cum = [0.0; 12];
        for (i, le) in BUCKETS.iter().enumerate() {
            cum[i] = if *le >= 0.25 {
                100.0
            } else if *le >= 0.1 {
                50.0
            } else {
                0.0
            };
        }
        let p99 = histogram_quantile(0.99, &cum).unwrap();
        assert!((p99 - (0.1 + 0.15 * 49.0 / 50.0)).abs() < 1e-9, "{p99}");
        assert_eq!(histogram_quantile(0.99, &[0.0; 12]), None);
    }
}
