//! A simulated kubelet: pods start Pending, turn Ready after the start delay, or,
//! for an image the scenario marks as crashing, restart forever and never turn Ready.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::scenario::{ImageBehaviour, Scenario};

/// When a pod turns Ready (unix ms). The kubelet's own clock, kept on the pod so a
/// drill can read it with kubectl.
pub const READY_AT: &str = "sim.backout.dev/ready-at";
const NEXT_CRASH_AT: &str = "sim.backout.dev/next-crash-at";

#[derive(Debug, Clone)]
pub struct Behaviours {
    pub images: BTreeMap<String, ImageBehaviour>,
    pub start_delay: Duration,
    pub crash_interval: Duration,
}

impl Default for Behaviours {
    fn default() -> Self {
        Behaviours {
            images: BTreeMap::new(),
            start_delay: Duration::from_millis(500),
            crash_interval: Duration::from_secs(3),
        }
    }
}

impl Behaviours {
    pub fn from_scenario(s: &Scenario) -> Self {
        Behaviours {
            images: s.images.clone(),
            start_delay: s.pod_start_delay,
            ..Behaviours::default()
        }
    }

    pub fn of(&self, image: &str) -> ImageBehaviour {
        self.images.get(image).cloned().unwrap_or_default()
    }
}

pub fn image_of(pod: &Value) -> &str {
    pod["spec"]["containers"][0]["image"].as_str().unwrap_or("")
}

fn annotation_ms(pod: &Value, key: &str) -> Option<u64> {
    pod["metadata"]["annotations"][key]
        .as_str()
        .and_then(|v| v.parse().ok())
}

/// When the pod became ready, in unix ms: the simulator's own annotation, or else
/// (a pod on a real API server) its status' startTime.
pub fn ready_at(pod: &Value) -> u64 {
    annotation_ms(pod, READY_AT)
        .or_else(|| {
            let started: jiff::Timestamp = pod["status"]["startTime"].as_str()?.parse().ok()?;
            u64::try_from(started.as_millisecond()).ok()
        })
        .unwrap_or(0)
}

pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

pub fn restarts(pod: &Value) -> u64 {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["restartCount"].as_u64())
        .sum()
}

/// The pod's next status at `now_ms`, and when it next needs looking at.
pub fn step(pod: &Value, now_ms: u64, behaviours: &Behaviours) -> (Value, Option<u64>) {
    let mut next = pod.clone();
    let behaviour = behaviours.of(image_of(pod));
    let start = ready_at(pod);
    let since = crate::store::now_rfc3339();
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if now_ms < start {
        next["status"] = json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]});
        return (keep_times(pod, next), Some(start));
    }
    let (ready, wake, restart_count, state) = if behaviour.crash {
        let mut restarts = restarts(pod);
        let mut due = annotation_ms(pod, NEXT_CRASH_AT).unwrap_or(start);
        if now_ms >= due {
            restarts += 1;
            due = now_ms + behaviours.crash_interval.as_millis() as u64;
            next["metadata"]["annotations"][NEXT_CRASH_AT] = json!(due.to_string());
        }
        let waiting = json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}});
        (false, Some(due), restarts, waiting)
    } else {
        (true, None, 0, json!({"running": {"startedAt": since}}))
    };
    let flag = if ready { "True" } else { "False" };
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            let mut s = json!({"name": c["name"], "image": c["image"], "ready": ready, "started": ready,
                "restartCount": restart_count, "state": state});
            if behaviour.crash {
                s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error"}});
            }
            s
        })
        .collect();
    next["status"] = json!({
        "phase": "Running",
        "podIP": pod_ip(pod),
        "hostIP": "10.0.0.10",
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": flag},
            {"type": "Ready", "status": flag},
        ],
        "containerStatuses": statuses,
    });
    (keep_times(pod, next), wake)
}

/// Keeps timestamps from the previous status where the state did not change, so a
/// settled pod produces no write at all.
fn keep_times(pod: &Value, mut next: Value) -> Value {
    let old = &pod["status"];
    let stamp = |v: &Value| v.get("startTime").cloned();
    next["status"]["startTime"] = stamp(old).unwrap_or_else(|| json!(crate::store::now_rfc3339()));
    if let (Some(new_c), Some(old_c)) = (
        next["status"]["conditions"].as_array_mut(),
        old["conditions"].as_array(),
    ) {
        for c in new_c.iter_mut() {
            let prior = old_c
                .iter()
                .find(|o| o["type"] == c["type"] && o["status"] == c["status"]);
            c["lastTransitionTime"] = prior
                .and_then(|o| o.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| json!(crate::store::now_rfc3339()));
        }
    }
    if let (Some(new_s), Some(old_s)) = (
        next["status"]["containerStatuses"].as_array_mut(),
        old["containerStatuses"].as_array(),
    ) {
        for (n, o) in new_s.iter_mut().zip(old_s) {
            if n["state"].get("running").is_some() && o["state"].get("running").is_some() {
                n["state"] = o["state"].clone();
            }
        }
    }
    next
}

fn pod_ip(pod: &Value) -> String {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let h = name
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("10.{}.{}.{}", 244, (h >> 8) % 250 + 1, h % 250 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(image: &str) -> Value {
        json!({"metadata": {"name": "p", "annotations": {READY_AT: "1000"}}, "spec": {"containers": [{"name": "app", "image": image}]}})
    }

    #[test]
    fn a_pod_is_pending_until_its_start_delay_then_ready() {
        let b = Behaviours::default();
        let (early, wake) = step(&pod("ok:1"), 500, &b);
        assert!(!is_ready(&early));
        assert_eq!(wake, Some(1000));
        let (late, wake) = step(&early, 1000, &b);
        assert!(is_ready(&late));
        assert_eq!(wake, None);
        let (again, _) = step(&late, 5000, &b);
        assert_eq!(again, late, "a settled pod does not change");
    }

    #[test]
    fn a_crashing_image_restarts_and_never_turns_ready() {
        let mut b = Behaviours::default();
        b.images.insert(
            "bad:1".into(),
            ImageBehaviour {
                crash: true,
                ..Default::default()
            },
        );
        let (mut p, _) = step(&pod("bad:1"), 1000, &b);
        let interval = b.crash_interval.as_millis() as u64;
        for i in 1..4 {
            let (next, _) = step(&p, 1000 + i * interval, &b);
            p = next;
        }
        assert!(!is_ready(&p));
        assert_eq!(restarts(&p), 4);
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "CrashLoopBackOff"
        );
    }
}
