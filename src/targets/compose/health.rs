//! A Compose service's containers read for the triggers a Deployment's pods feed:
//! how long one has been unready (its health check failing, or exited), its
//! restarts, and those restarting. Read from each container's inspection, so every
//! time comes from the engine, never from when backout happened to look: a time the
//! engine does not give is left out, never taken as "now".

use jiff::Timestamp;
use serde_json::Value;

use crate::engine::cluster_signals::RESTART_WINDOW;
use crate::engine::kept::InstanceHealth;

/// A time as the engine writes it; Go's zero time (a container that never
/// finished) is none.
fn time(v: &Value) -> Option<Timestamp> {
    let t: Timestamp = v.as_str()?.parse().ok()?;
    (t > Timestamp::UNIX_EPOCH).then_some(t)
}

/// Since when one container is unready, if it is and the engine says since when.
fn unready_since(c: &Value) -> Option<Timestamp> {
    let state = &c["State"];
    if state["Running"] != Value::Bool(true) || state["Restarting"] == Value::Bool(true) {
        return time(&state["FinishedAt"]);
    }
    let health = &state["Health"];
    if health["Status"] != "unhealthy" {
        return None;
    }
    // The failing streak began with the check that many entries from the end.
    let log = health["Log"].as_array()?;
    let streak = health["FailingStreak"].as_u64().unwrap_or(1).max(1) as usize;
    let first_failing = log.get(log.len().checked_sub(streak)?)?;
    time(&first_failing["Start"])
}

/// Whether one container takes its share: running, not restarting, and healthy or
/// without a health check. One whose check has not answered yet is not ready.
pub fn ready(c: &Value) -> bool {
    let state = &c["State"];
    state["Running"] == Value::Bool(true)
        && state["Restarting"] != Value::Bool(true)
        && !matches!(
            state["Health"]["Status"].as_str(),
            Some("unhealthy" | "starting")
        )
}

/// The health of the service's containers, from their inspections.
pub fn of(inspections: &[Value], now: Timestamp) -> InstanceHealth {
    let recent = |c: &Value| {
        time(&c["Created"])
            .is_some_and(|at| now.duration_since(at).as_secs() <= RESTART_WINDOW.as_secs() as i64)
    };
    InstanceHealth {
        unready_since: inspections.iter().filter_map(unready_since).min(),
        restarts: inspections
            .iter()
            .filter(|c| recent(c))
            .filter_map(|c| c["RestartCount"].as_u64())
            .max()
            .unwrap_or(0) as u32,
        restarting: inspections
            .iter()
            .filter(|c| c["State"]["Restarting"] == Value::Bool(true))
            .count() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn an_unhealthy_container_is_unready_since_its_failing_streak_began() {
        let now = at("2026-12-07T06:00:00Z");
        let healthy = json!({"Created": "2026-12-07T05:58:00Z", "RestartCount": 0,
            "State": {"Running": true, "Health": {"Status": "healthy"}}});
        let failing = json!({"Created": "2026-12-07T05:58:00Z", "RestartCount": 2,
        "State": {"Running": true, "Health": {"Status": "unhealthy", "FailingStreak": 2,
            "Log": [
                {"Start": "2026-12-07T05:58:30Z", "ExitCode": 0},
                {"Start": "2026-12-07T05:59:00Z", "ExitCode": 1},
                {"Start": "2026-12-07T05:59:30Z", "ExitCode": 1},
            ]}}});
        let h = of(&[healthy, failing], now);
        assert_eq!(h.unready_since, Some(at("2026-12-07T05:59:00Z")));
        assert_eq!((h.restarts, h.restarting), (2, 0));
    }

    #[test]
    fn an_exited_container_counts_from_when_it_finished_and_an_unknown_time_is_left_out() {
        let now = at("2026-12-07T06:00:00Z");
        let restarting = json!({"Created": "2026-12-07T05:00:00Z", "RestartCount": 9,
            "State": {"Running": true, "Restarting": true, "FinishedAt": "2026-12-07T05:59:50Z"}});
        let never_finished = json!({"Created": "2026-12-07T05:59:00Z",
            "State": {"Running": false, "FinishedAt": "0001-01-01T00:00:00Z"}});
        let h = of(&[restarting, never_finished], now);
        assert_eq!(h.unready_since, Some(at("2026-12-07T05:59:50Z")));
        // The restarts of a container created an hour ago are not the new image's.
        assert_eq!((h.restarts, h.restarting), (0, 1));
        let starting = json!({"State": {"Running": true, "Health": {"Status": "starting"}}});
        assert_eq!(
            of(std::slice::from_ref(&starting), now),
            InstanceHealth::default()
        );
        assert!(!ready(&starting));
        let plain = json!({"State": {"Running": true}});
        assert!(ready(&plain));
    }
}
