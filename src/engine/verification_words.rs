//! A rollback's verification in words: the line a trigger must pass, a recovered or
//! still-waiting check, and what is pending with its time left, as the console and
//! `backout rollback` print them. The steps themselves are in `verification.rs`.

use std::time::Duration;

use jiff::Timestamp;

use super::model::rollback::{Phase, Progress, Wait};
use super::state::{Service, State};
use crate::config::Comparison;

/// Whole seconds from `since` to `now`; none when `since` is later.
pub(super) fn elapsed(now: Timestamp, since: Timestamp) -> Duration {
    Duration::from_secs(now.duration_since(since).as_secs().max(0) as u64)
}

fn left(now: Timestamp, since: Timestamp, limit: Duration) -> String {
    let gone = elapsed(now, since);
    humantime::format_duration(Duration::from_secs(limit.saturating_sub(gone).as_secs()))
        .to_string()
}

fn line(w: &Wait) -> String {
    let toward = match w.comparison {
        Comparison::Above | Comparison::AtLeast => "<=",
        Comparison::Below | Comparison::AtMost => ">=",
    };
    format!("{toward} {:.4}", w.recover_at)
}

/// "0.0100 < 0.05, recovered": the value against the threshold first, so a passing
/// check never reads like a breach; then the line and hold it passed.
pub(super) fn recovered(w: &Wait, hold: Duration) -> String {
    let toward = match w.comparison {
        Comparison::Above | Comparison::AtLeast => "<",
        Comparison::Below | Comparison::AtMost => ">",
    };
    format!(
        "{:.4} {toward} {}, recovered: past {:.4} for {}{}",
        w.value.unwrap_or(f64::NAN),
        w.threshold,
        w.recover_at,
        humantime::format_duration(hold),
        w.baseline
            .map_or(String::new(), |b| format!(", baseline {b:.4}"))
    )
}

pub(super) fn still(w: &Wait) -> String {
    match w.value {
        _ if !matches!(w.data.as_str(), "ok" | "breach") => {
            format!("metrics blind ({}): recovery was not seen", w.data)
        }
        Some(v) => format!("still {v:.4}; recovers at {}", line(w)),
        None => "no value".into(),
    }
}

/// What the console shows for a check still pending on `svc`'s rollback, with its
/// time left.
pub fn pending(state: &State, svc: &Service, p: &Progress) -> Vec<String> {
    let policy = &state.config.policy;
    let now = state.now;
    // A kind outside the cluster takes no Lease and has no dry run.
    let polled = svc
        .deployment
        .as_ref()
        .is_some_and(|d| d.kind.words().is_some());
    match p.phase {
        Phase::Preparing if polled => vec!["… plan from a fresh read".into()],
        Phase::Preparing => vec!["… lease, plan and dry run".into()],
        Phase::Following => vec![match p.lease_expires {
            Some(lapses) => format!(
                "… waiting for {}'s rollback to show in the cluster; if that holder is gone \
                 (killed, disconnected), its lease lapses at {lapses} ({} from now) and \
                 backout takes it over",
                p.by,
                humantime::format_duration(elapsed(lapses, now))
            ),
            None => format!(
                "… waiting for {}'s rollback to show in the cluster, {} left",
                p.by,
                left(now, p.phase_since, policy.rollout_deadline)
            ),
        }],
        Phase::RollingOut => vec![format!(
            "… rollout completes, {} left",
            left(now, p.phase_since, policy.rollout_deadline)
        )],
        Phase::Recovering => p
            .unanswered
            .iter()
            .map(|t| {
                format!(
                    "… {t}: waiting for its first answer, {} left",
                    left(now, p.phase_since, policy.verification_window)
                )
            })
            .chain(p.waits.iter().map(|w| {
                let now_at = w.value.map_or(w.data.clone(), |v| format!("now {v:.4}"));
                let held = w.recovered_since.map_or(String::new(), |s| {
                    format!(", held {}", humantime::format_duration(elapsed(now, s)))
                });
                format!(
                    "… {} {} for {} ({now_at}{held}), {} left",
                    w.trigger,
                    line(w),
                    humantime::format_duration(policy.recovery_hold),
                    left(now, p.phase_since, policy.verification_window)
                )
            }))
            .collect(),
        Phase::Probing => vec!["… health URLs".into()],
        Phase::Ended => Vec::new(),
    }
}
