//! A trigger's series kept across answers: a grouped query asks only for what is new
//! since its last answer, and the kept points are extended with it. Pure.

/// `kept` extended by `fresh`, an answer whose points begin at `from` (unix ms): the
/// kept points at least `spacing` before `from` stand and the answer's replace the rest,
/// so the seam keeps the points a step apart, as one range query's would. Points older
/// than `oldest` are dropped.
pub fn extend(
    mut kept: Vec<(i64, f64)>,
    from: i64,
    fresh: Vec<(i64, f64)>,
    spacing: i64,
    oldest: i64,
) -> Vec<(i64, f64)> {
    kept.retain(|&(at, _)| at >= oldest && at <= from - spacing);
    kept.extend(fresh.into_iter().filter(|&(at, _)| at >= from.max(oldest)));
    keep_little_room(&mut kept);
    kept
}

/// A whole answer, or a series grown a point at a time, has the spare room of a
/// growing Vec (128 places for 75 points; at 2,000 services × 6 series about 6 MB of
/// heap). A little room stays, so a steady series (one point in, one out) does not
/// reallocate every poll.
pub fn keep_little_room(points: &mut Vec<(i64, f64)>) {
    let room = points.len() + SPARE;
    if points.capacity() > room + SPARE {
        points.shrink_to(room);
    }
}

/// The points of room a kept series keeps beyond its length.
const SPARE: usize = 4;

#[cfg(test)]
mod tests {
    use super::extend;

    fn at(points: &[(i64, f64)]) -> Vec<i64> {
        points.iter().map(|p| p.0).collect()
    }

    #[test]
    fn the_answer_replaces_what_it_covers_and_the_seam_stays_a_step_apart() {
        // Kept on the grid of an earlier round (…, 92, 96, 100); the new answer's grid
        // is anchored two units later: 94, 98, 102.
        let kept = vec![(88, 1.0), (92, 1.0), (96, 1.0), (100, 1.0)];
        let fresh = vec![(94, 2.0), (98, 2.0), (102, 2.0)];
        let merged = extend(kept, 94, fresh, 4, 0);
        assert_eq!(at(&merged), [88, 94, 98, 102]);
        assert!(merged.windows(2).all(|w| w[1].0 - w[0].0 >= 4));
        assert_eq!(
            merged.last(),
            Some(&(102, 2.0)),
            "the newest is the answer's"
        );
    }

    #[test]
    fn points_older_than_the_lookback_go_and_nothing_before_from_is_taken_from_the_answer() {
        let kept = vec![(10, 1.0), (20, 1.0), (30, 1.0)];
        let fresh = vec![(25, 9.0), (40, 2.0), (50, 2.0)];
        let merged = extend(kept, 40, fresh, 10, 15);
        assert_eq!(at(&merged), [20, 30, 40, 50]);
        assert!(extend(Vec::new(), 40, Vec::new(), 10, 0).is_empty());
    }

    #[test]
    fn a_kept_series_holds_little_spare_room_and_a_steady_one_does_not_move() {
        let mut grown: Vec<(i64, f64)> = Vec::new();
        for at in 0..75 {
            grown.push((at * 4, 1.0));
        }
        assert!(grown.capacity() >= 128, "a pushed Vec doubles");
        let mut kept = extend(grown, 300, vec![(300, 1.0)], 4, 4);
        assert_eq!(kept.len(), 75);
        assert!(
            kept.capacity() <= 75 + 2 * super::SPARE,
            "{}",
            kept.capacity()
        );
        let (capacity, place) = (kept.capacity(), kept.as_ptr());
        for at in (304..400).step_by(4) {
            kept = extend(kept, at, vec![(at, 1.0)], 4, at - 296);
        }
        assert_eq!(kept.len(), 75);
        assert_eq!(
            (kept.capacity(), kept.as_ptr()),
            (capacity, place),
            "no reallocation"
        );
    }
}
