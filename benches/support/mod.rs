//! What the benches share: a State with 2,000 Deployments of two revisions each, and
//! Prometheus answers for them, built with the engine's own fixtures.

// Each bench uses its own part of this.
#![allow(dead_code)]

pub use backout::engine::fixtures::t;
use backout::engine::fixtures::{deployment_in, replicaset_in, series};
use backout::engine::{Msg, ServiceKey, State};

pub const SERVICES: usize = 2_000;

pub fn name(i: usize) -> String {
    format!("svc-{i:04}")
}

pub fn populate(state: &mut State) {
    for i in 0..SERVICES {
        let n = name(i);
        deployment_in(state, "scale", &n, "app:2", 2, true, false, 10);
        for rev in 1..=2u64 {
            let created = t(-3600 * (3 - rev as i64));
            let image = format!("app:{rev}");
            let none = serde_json::json!({});
            replicaset_in(
                state,
                "scale",
                &n,
                rev as usize,
                &image,
                rev,
                "",
                created,
                none,
            );
        }
    }
}

/// 20 points, one every 15 s, as a 5-minute range query returns them.
pub fn answer(service: usize, trigger: &str, value: f64, now: i64) -> Msg {
    answer_with(service, trigger, |_| value, now, 20)
}

/// `count` points one every 15 s up to `now`, the k-th (oldest first) valued `value(k)`.
pub fn answer_with(
    service: usize,
    trigger: &str,
    value: impl Fn(usize) -> f64,
    now: i64,
    count: usize,
) -> Msg {
    let key = ServiceKey::new("scale", &name(service));
    let points = (0..count)
        .map(|k| (now - 15 * (count - 1 - k) as i64, value(k)))
        .collect();
    series(&key, trigger, points, now, 100.0)
}
