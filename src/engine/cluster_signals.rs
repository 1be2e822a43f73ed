//! Triggers read from the Kubernetes API, not Prometheus: restarts of new pods,
//! CrashLoopBackOff, pods unready too long, the progress deadline. Sampled on the
//! clock into a series like any answer, so the same judgement, for-duration, graphs
//! and gates apply. They are clean while the watch is connected, and blind (never
//! evidence) while it is not, whatever Prometheus is doing. A kind that reports its
//! own instances (a Compose service's containers, `kept::InstanceHealth`) is read
//! the same way, clean while its engine's reader is.

use std::time::Duration;

use jiff::Timestamp;

use super::model::keys::{SourceHealth, SourceId};
use super::model::msg::PlacedAnswer;
use super::rollout::{self, Rollout};
use super::signals::QueryOutcome;
use super::state::{Service, State};
use crate::config::ClusterSignal;

/// Restarts count for pods started this recently: a pod that has run for a month with
/// a few restarts is not a crash loop of the new revision.
pub const RESTART_WINDOW: Duration = Duration::from_secs(600);

/// How often the cluster signals are sampled: with the Prometheus poll, or every 5 s.
pub fn every(state: &State) -> Duration {
    state
        .config
        .prometheus
        .as_ref()
        .map_or(Duration::from_secs(5), |p| p.poll_interval)
}

/// How far apart a cluster series' points are kept: a Prometheus series' step.
fn spacing(state: &State) -> Duration {
    state.config.prometheus.as_ref().map_or_else(
        || kept(state) / crate::config::POINTS_PER_SERIES,
        |p| p.step(),
    )
}

/// How much of a cluster series is kept, for the graphs and the onset.
fn kept(state: &State) -> Duration {
    state
        .config
        .prometheus
        .as_ref()
        .map_or(Duration::from_secs(600), |p| p.lookback)
}

/// The value of `signal` for the pods of the revision that runs now.
pub fn value(signal: ClusterSignal, svc: &Service, now: Timestamp) -> f64 {
    let Some(d) = svc.deployment.as_ref() else {
        return 0.0;
    };
    let seconds = |since: Timestamp| now.duration_since(since).as_secs().max(0) as f64;
    if let Some(h) = &d.instances {
        // A kind's own instances (a Compose service's containers), as its engine says.
        return match signal {
            ClusterSignal::Restarts => f64::from(h.restarts),
            ClusterSignal::CrashLoopBackOff => f64::from(h.restarting),
            ClusterSignal::Unready => h.unready_since.map_or(0.0, seconds),
            ClusterSignal::Alerts => svc.alerts.len() as f64,
            ClusterSignal::ProgressDeadline => 0.0,
        };
    }
    let current = svc.replicaset_at(d.revision);
    let pods = svc
        .pods
        .values()
        .filter(|p| Some(p.replicaset.as_str()) == current);
    match signal {
        ClusterSignal::Restarts => pods
            .filter(|p| {
                p.created
                    .is_some_and(|c| seconds(c) <= RESTART_WINDOW.as_secs_f64())
            })
            .map(|p| f64::from(p.restarts))
            .fold(0.0, f64::max),
        ClusterSignal::CrashLoopBackOff => pods.filter(|p| p.crash_looping).count() as f64,
        ClusterSignal::Unready => pods
            .filter_map(|p| p.unready_since)
            .map(seconds)
            .fold(0.0, f64::max),
        ClusterSignal::Alerts => svc.alerts.len() as f64,
        ClusterSignal::ProgressDeadline => {
            let failed =
                matches!(rollout::status(d), Rollout::Failed(m) if m.contains("progress deadline"));
            f64::from(u8::from(failed))
        }
    }
}

/// `None` before a source has reported at all; else why it is down, if it is.
fn source_down(state: &State, source: SourceId) -> Option<Option<String>> {
    match state.sources.get(&source) {
        None | Some(SourceHealth::Connecting) => None,
        Some(SourceHealth::Connected) => Some(None),
        Some(SourceHealth::Retrying { error, .. }) => Some(Some(error.clone())),
        Some(SourceHealth::Forbidden(e) | SourceHealth::Unavailable(e)) => Some(Some(e.clone())),
    }
}

/// Why Alertmanager's alerts are not evidence now: it is down, has not answered, or
/// its last answer is too old. A quiet Alertmanager is never "no alerts".
fn alertmanager_down(state: &State) -> Option<String> {
    let config = state.config.alertmanager.as_ref()?;
    if let Some(Some(why)) = source_down(state, SourceId::Alertmanager) {
        return Some(format!(
            "Alertmanager is down, so this is not evidence: {why}"
        ));
    }
    match state.alerts_answered_at {
        None => Some("Alertmanager has not answered yet".into()),
        Some(at)
            if state.now.duration_since(at).as_secs() > config.stale_after().as_secs() as i64 =>
        {
            Some(format!(
                "Alertmanager's last answer is {}s old, so this is not evidence",
                state.now.duration_since(at).as_secs()
            ))
        }
        Some(_) => None,
    }
}

/// One answer per cluster trigger and watched service, when a sample is due: the
/// trigger's series so far plus the value now, or an error while the watch is down.
pub fn sample(state: &mut State) -> Vec<PlacedAnswer> {
    let now = state.now;
    let due = state
        .cluster_sampled_at
        .is_none_or(|at| now.duration_since(at).as_secs() >= every(state).as_secs() as i64);
    let triggers: Vec<_> = state
        .config
        .triggers
        .iter()
        .enumerate()
        .filter_map(|(at, t)| Some((at, t.name.clone(), t.cluster?)))
        .collect();
    if !due || triggers.is_empty() {
        return Vec::new();
    }
    // Before the watch reports at all there is no answer: unanswered, not blind. Nor is
    // it a sample: the first one follows the watch's first list at the next tick.
    let Some(down) = source_down(state, SourceId::Kubernetes) else {
        return Vec::new();
    };
    state.cluster_sampled_at = Some(now);
    let down = down.map(|e| format!("the Kubernetes watch is down, so this is not evidence: {e}"));
    // A kind's own instances are read by the aliases' reader: its health is theirs.
    let engine_down = match source_down(state, SourceId::Aliases) {
        None => Some("the engine has not been read yet".to_string()),
        Some(why) => {
            why.map(|e| format!("the engine cannot be read, so this is not evidence: {e}"))
        }
    };
    let alerts_down = alertmanager_down(state);
    let oldest = now.as_millisecond() - kept(state).as_millis() as i64;
    let spacing_ms = spacing(state).as_millis() as i64;
    let mut answers = Vec::new();
    // A kind outside the cluster (a Lambda alias) has no pods to read these from,
    // unless it reports its own instances (a Compose service's containers).
    for (key, svc) in state.services.iter_mut().filter(|(_, s)| s.has_instances()) {
        let own = !svc.has_pods();
        for (trigger_at, name, signal) in &triggers {
            let down = match signal {
                ClusterSignal::Alerts => &alerts_down,
                _ if own => &engine_down,
                _ => &down,
            };
            let outcome = match down {
                Some(error) => QueryOutcome::Failed {
                    error: error.clone(),
                },
                None => {
                    let value = value(*signal, svc, now);
                    // The kept points move into the answer and come back when it is
                    // applied (`update::query`), as a partial answer's do: copying
                    // them cost a poll a copy of every cluster series.
                    let mut points = svc
                        .triggers
                        .get_mut(name)
                        .map(|t| std::mem::take(&mut t.points))
                        .unwrap_or_default();
                    points.retain(|at, _| at >= oldest);
                    // The newest point follows the cluster as it is; those before it
                    // stay a step apart, as a range query's would.
                    let at = now.as_millisecond();
                    let crowded = {
                        let mut newest = points.iter().rev().map(|(at, _)| at);
                        matches!(
                            (newest.next(), newest.next()),
                            (Some(last), Some(before)) if last - before < spacing_ms
                        )
                    };
                    if crowded {
                        points.pop();
                    }
                    points.push((at, value));
                    points.keep_little_room();
                    QueryOutcome::Series {
                        points,
                        requests_per_second: None,
                    }
                }
            };
            answers.push(PlacedAnswer {
                trigger_at: *trigger_at,
                service: key.clone(),
                answered_at: now,
                outcome,
            });
        }
    }
    answers
}
