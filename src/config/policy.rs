//! `[policy]`: the windows, thresholds and durations the decision and the rollback
//! run by, their defaults, and the bounds every duration of backout.toml keeps.

use std::time::Duration;

use serde::Deserialize;

use super::PrometheusConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    #[serde(with = "humantime_serde")]
    pub onset_window: Duration,
    #[serde(with = "humantime_serde")]
    pub migration_window: Duration,
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    #[serde(with = "humantime_serde")]
    pub blackout: Duration,
    /// How long no_data, error or stale may last before backout pages "metrics blind".
    #[serde(with = "humantime_serde")]
    pub blind_after: Duration,
    /// Fewer requests than this in a ratio's window make it no_data, not a breach.
    pub min_requests: f64,
    /// Act automatically only when at least two triggers fire (seed 003's detector).
    pub require_two_anomalies: bool,
    /// Whether the watcher may execute auto_rollback decisions. Off unless set.
    pub auto_rollback: bool,
    /// How long the triggers that fired have to recover after a rollback.
    #[serde(with = "humantime_serde")]
    pub verification_window: Duration,
    /// How long the rollback's rollout has to complete.
    #[serde(with = "humantime_serde")]
    pub rollout_deadline: Duration,
    /// How long a trigger must stay past its recovery line to count as recovered.
    #[serde(with = "humantime_serde")]
    pub recovery_hold: Duration,
    /// How far past the threshold recovery is: 0.2 means an error rate must fall to
    /// 80% of a `>` threshold, so a value just under the line does not count.
    pub recovery_margin: f64,
    /// How long a rollback's Lease lasts unrenewed: how long a holder that died (a
    /// kill -9, a lost node) keeps everyone else from rolling back the same
    /// Deployment. The holder renews it every third of this.
    #[serde(with = "humantime_serde")]
    pub lease_duration: Duration,
}

/// The longest any duration may be, in a flag or in backout.toml: long enough for any
/// watch, short enough that adding it to a clock never overflows.
pub const LONGEST: Duration = Duration::from_secs(30 * 86_400);

/// The shortest Lease: renewals every third of it must not outrun a slow API server.
pub const SHORTEST_LEASE: Duration = Duration::from_secs(3);

impl Default for Policy {
    fn default() -> Self {
        Policy {
            onset_window: Duration::from_secs(15 * 60),
            migration_window: Duration::from_secs(30 * 60),
            cooldown: Duration::from_secs(5 * 60),
            blackout: Duration::from_secs(10 * 60),
            blind_after: Duration::from_secs(2 * 60),
            min_requests: 100.0,
            require_two_anomalies: false,
            auto_rollback: false,
            verification_window: Duration::from_secs(5 * 60),
            rollout_deadline: Duration::from_secs(10 * 60),
            recovery_hold: Duration::from_secs(60),
            recovery_margin: 0.2,
            lease_duration: Duration::from_secs(60),
        }
    }
}

/// Every duration of the file at most [`LONGEST`], so no clock arithmetic overflows,
/// named by its key when it is not.
pub(super) fn durations_in_range(
    policy: &Policy,
    prometheus: Option<&PrometheusConfig>,
) -> Result<(), String> {
    let mut keys = vec![
        ("[policy] onset_window", policy.onset_window),
        ("[policy] migration_window", policy.migration_window),
        ("[policy] cooldown", policy.cooldown),
        ("[policy] blackout", policy.blackout),
        ("[policy] blind_after", policy.blind_after),
        ("[policy] verification_window", policy.verification_window),
        ("[policy] rollout_deadline", policy.rollout_deadline),
        ("[policy] recovery_hold", policy.recovery_hold),
        ("[policy] lease_duration", policy.lease_duration),
    ];
    if let Some(p) = prometheus {
        keys.push(("[prometheus] poll_interval", p.poll_interval));
        keys.push(("[prometheus] timeout", p.timeout));
        keys.push(("[prometheus] lookback", p.lookback));
    }
    if let Some((key, d)) = keys.iter().find(|(_, d)| *d > LONGEST) {
        return Err(format!(
            "{key} = \"{}\" is longer than the longest backout accepts ({})",
            humantime::format_duration(*d),
            humantime::format_duration(LONGEST)
        ));
    }
    if policy.lease_duration < SHORTEST_LEASE {
        return Err(format!(
            "[policy] lease_duration must be at least {}, for example \"60s\"",
            humantime::format_duration(SHORTEST_LEASE)
        ));
    }
    Ok(())
}
