//! A trigger's series: its points held in 12 bytes each, and kept across answers (a
//! grouped query asks only for what is new since its last answer, and the kept points
//! are extended with it). Pure.
//!
//! At 2,000 services a console holds 16,000 series of 75 points (8 triggers at a 2 s
//! poll over 5 minutes), most of its live heap: 20 MB as (i64, f64) pairs, 15 MB as
//! these. Values stay `f64`: a value of exactly the threshold (5 errors in 100
//! requests against 0.05) would read as a breach in `f32`.

use serde::ser::{Serialize, Serializer};

/// One point: milliseconds after its series' base, and the value. Packed, so a point
/// is 12 bytes, not the 16 an aligned `f64` beside a `u32` would take.
#[derive(Clone, Copy, PartialEq)]
#[repr(C, packed(4))]
struct Point {
    after_base: u32,
    value: f64,
}

/// How far apart a series' oldest and newest points may be: what a `u32` of
/// milliseconds holds, 49 days. An older point is dropped as it would be at the end
/// of a lookback that long.
const SPAN_MS: i64 = u32::MAX as i64;

/// Points (unix ms, value) in the order they came: oldest first from Prometheus and
/// from the cluster sampler.
#[derive(Clone, Default)]
pub struct Series {
    base: i64,
    points: Vec<Point>,
}

impl Series {
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// How many points it has room for without growing.
    pub fn capacity(&self) -> usize {
        self.points.capacity()
    }

    /// (unix ms, value) of each point, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (i64, f64)> + ExactSizeIterator + '_ {
        let base = self.base;
        self.points
            .iter()
            .map(move |p| (base + i64::from(p.after_base), p.value))
    }

    /// The newest point.
    pub fn last(&self) -> Option<(i64, f64)> {
        self.iter().next_back()
    }

    /// The newest `n` points, oldest first.
    pub fn tail(&self, n: usize) -> Vec<(i64, f64)> {
        self.iter().skip(self.len().saturating_sub(n)).collect()
    }

    /// Adds a point after the others. One that does not fit beside them (more than 49
    /// days away, or before the base) rebuilds the series.
    pub fn push(&mut self, (at, value): (i64, f64)) {
        if self.points.is_empty() {
            self.base = at;
        }
        match u32::try_from(at - self.base) {
            Ok(after_base) => self.points.push(Point { after_base, value }),
            Err(_) => *self = self.iter().chain([(at, value)]).collect(),
        }
    }

    /// Keeps the points `keep` says yes to, then counts time from the earliest kept.
    pub fn retain(&mut self, mut keep: impl FnMut(i64, f64) -> bool) {
        let base = self.base;
        self.points
            .retain(|p| keep(base + i64::from(p.after_base), p.value));
        self.rebase();
    }

    /// Removes the newest point.
    pub fn pop(&mut self) -> Option<(i64, f64)> {
        let last = self.last();
        self.points.pop();
        last
    }

    /// The series extended by `fresh`, an answer whose points begin at `from` (unix
    /// ms): the kept points at least `spacing` before `from` stand and the answer's
    /// replace the rest, so the seam keeps the points a step apart, as one range
    /// query's would. Points older than `oldest` are dropped.
    pub fn extend(mut self, from: i64, fresh: Series, spacing: i64, oldest: i64) -> Series {
        self.retain(|at, _| at >= oldest && at <= from - spacing);
        for point in fresh.iter().filter(|&(at, _)| at >= from.max(oldest)) {
            self.push(point);
        }
        self.keep_little_room();
        self
    }

    /// A whole answer, or a series grown a point at a time, has the spare room of a
    /// growing Vec (128 places for 75 points). A little room stays, so a steady series
    /// (one point in, one out) does not reallocate every poll.
    pub fn keep_little_room(&mut self) {
        let room = self.points.len() + SPARE;
        if self.points.capacity() > room + SPARE {
            self.points.shrink_to(room);
        }
    }

    /// Counts time from the earliest point, so the newest has 49 days of room. The
    /// earliest, not the first: a malformed answer's points may come in any order.
    fn rebase(&mut self) {
        let Some(earliest) = self.points.iter().map(|p| p.after_base).min() else {
            return;
        };
        if earliest > 0 {
            self.base += i64::from(earliest);
            for p in &mut self.points {
                p.after_base -= earliest;
            }
        }
    }
}

/// The points of room a kept series keeps beyond its length.
const SPARE: usize = 4;

impl FromIterator<(i64, f64)> for Series {
    /// Any points at all (a malformed answer's too): those more than 49 days older
    /// than the newest are dropped, the rest keep their order.
    fn from_iter<I: IntoIterator<Item = (i64, f64)>>(points: I) -> Series {
        let points: Vec<(i64, f64)> = points.into_iter().collect();
        let newest = points.iter().map(|p| p.0).max().unwrap_or(0);
        let base = points
            .iter()
            .map(|p| p.0)
            .min()
            .unwrap_or(0)
            .max(newest.saturating_sub(SPAN_MS));
        Series {
            base,
            points: points
                .into_iter()
                .filter_map(|(at, value)| {
                    let after_base = u32::try_from(at.checked_sub(base)?).ok()?;
                    Some(Point { after_base, value })
                })
                .collect(),
        }
    }
}

impl From<Vec<(i64, f64)>> for Series {
    fn from(points: Vec<(i64, f64)>) -> Series {
        points.into_iter().collect()
    }
}

/// Equal when they hold the same points, whatever each counts its time from.
impl PartialEq for Series {
    fn eq(&self, other: &Series) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// As the (unix ms, value) pairs it holds: `[[ms, value], ...]` in JSON.
impl Serialize for Series {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::Series;

    fn at(points: &Series) -> Vec<i64> {
        points.iter().map(|p| p.0).collect()
    }

    #[test]
    fn a_point_takes_twelve_bytes_and_reads_back_as_it_went_in() {
        assert_eq!(std::mem::size_of::<super::Point>(), 12);
        let given = vec![(1_800_000_000_000, 0.05), (1_800_000_004_000, f64::NAN)];
        let series = Series::from(given.clone());
        assert_eq!(series.len(), 2);
        assert_eq!(series.iter().next(), Some(given[0]));
        let (newest, value) = series.last().unwrap();
        assert!(newest == given[1].0 && value.is_nan());
        assert_eq!(
            serde_json::to_string(&Series::from(vec![(5, 0.25)])).unwrap(),
            "[[5,0.25]]"
        );
    }

    #[test]
    fn series_are_equal_by_their_points_not_by_their_base() {
        let mut rebased = Series::from(vec![(10, 1.0), (20, 2.0), (30, 3.0)]);
        rebased.retain(|at, _| at >= 20);
        let built = Series::from(vec![(20, 2.0), (30, 3.0)]);
        assert_eq!(rebased, built);
        // Out of order, as a malformed answer may be: counted from its oldest point.
        let unordered = Series::from(vec![(30, 3.0), (20, 2.0)]);
        assert_eq!(unordered.iter().next(), Some((30, 3.0)));
        assert_ne!(unordered, built, "the order is part of a series");
        assert_ne!(Series::from(vec![(20, 2.0)]), built);
    }

    #[test]
    fn points_out_of_order_keep_their_times_through_a_retain_and_an_extend() {
        let mut unordered = Series::from(vec![(30, 3.0), (20, 2.0), (40, 4.0)]);
        unordered.retain(|_, _| true);
        assert_eq!(at(&unordered), [30, 20, 40]);
        unordered.retain(|at, _| at >= 25);
        assert_eq!(at(&unordered), [30, 40]);
        let extended = Series::from(vec![(30, 3.0), (20, 2.0), (40, 4.0)]).extend(
            50,
            Series::from(vec![(50, 5.0)]),
            5,
            0,
        );
        assert_eq!(at(&extended), [30, 20, 40, 50]);
    }

    #[test]
    fn points_further_apart_than_a_u32_of_milliseconds_drop_the_oldest() {
        let day = 86_400_000;
        let series = Series::from(vec![(0, 1.0), (10 * day, 2.0), (60 * day, 3.0)]);
        assert_eq!(
            at(&series),
            [60 * day],
            "older than 49 days before the newest"
        );
        let mut pushed = Series::from(vec![(0, 1.0), (40 * day, 2.0)]);
        pushed.push((80 * day, 3.0));
        assert_eq!(at(&pushed), [40 * day, 80 * day]);
        pushed.push((45 * day, 4.0));
        assert_eq!(at(&pushed), [40 * day, 80 * day, 45 * day], "order kept");
        pushed.push((10 * day, 5.0));
        assert_eq!(at(&pushed), [40 * day, 80 * day, 45 * day], "too old");
        let far = Series::from(vec![(i64::MIN, 1.0), (i64::MAX, 2.0)]);
        assert_eq!(at(&far), [i64::MAX], "a malformed answer's extremes");
    }

    #[test]
    fn a_series_kept_for_longer_than_49_days_keeps_taking_points() {
        let step = 15_000;
        let mut series = Series::default();
        for n in 0..400_000i64 {
            series.push((n * step, 0.0));
            series.retain(|at, _| at >= n * step - 300_000);
        }
        assert_eq!(series.len(), 21);
        assert_eq!(series.last().map(|p| p.0), Some(399_999 * step));
    }

    #[test]
    fn the_answer_replaces_what_it_covers_and_the_seam_stays_a_step_apart() {
        // Kept on the grid of an earlier round (…, 92, 96, 100); the new answer's grid
        // is anchored two units later: 94, 98, 102.
        let kept = Series::from(vec![(88, 1.0), (92, 1.0), (96, 1.0), (100, 1.0)]);
        let fresh = Series::from(vec![(94, 2.0), (98, 2.0), (102, 2.0)]);
        let merged = kept.extend(94, fresh, 4, 0);
        assert_eq!(at(&merged), [88, 94, 98, 102]);
        assert_eq!(
            merged.last(),
            Some((102, 2.0)),
            "the newest is the answer's"
        );
    }

    #[test]
    fn points_older_than_the_lookback_go_and_nothing_before_from_is_taken_from_the_answer() {
        let kept = Series::from(vec![(10, 1.0), (20, 1.0), (30, 1.0)]);
        let fresh = Series::from(vec![(25, 9.0), (40, 2.0), (50, 2.0)]);
        let merged = kept.extend(40, fresh, 10, 15);
        assert_eq!(at(&merged), [20, 30, 40, 50]);
        assert!(Series::default()
            .extend(40, Series::default(), 10, 0)
            .is_empty());
    }

    #[test]
    fn a_kept_series_holds_little_spare_room_and_a_steady_one_does_not_move() {
        let mut grown = Series::default();
        for at in 0..75 {
            grown.push((at * 4, 1.0));
        }
        assert!(grown.points.capacity() >= 128, "a pushed Vec doubles");
        let mut kept = grown.extend(300, Series::from(vec![(300, 1.0)]), 4, 4);
        assert_eq!(kept.len(), 75);
        assert!(
            kept.points.capacity() <= 75 + 2 * super::SPARE,
            "{}",
            kept.points.capacity()
        );
        let (capacity, place) = (kept.points.capacity(), kept.points.as_ptr());
        for at in (304..400).step_by(4) {
            kept = kept.extend(at, Series::from(vec![(at, 1.0)]), 4, at - 296);
        }
        assert_eq!(kept.len(), 75);
        assert_eq!(
            (kept.points.capacity(), kept.points.as_ptr()),
            (capacity, place),
            "no reallocation"
        );
        assert_eq!(
            at(&kept).first(),
            Some(&100),
            "times read back after rebasing"
        );
    }
}
