//! What the benches share: a State with 2,000 Deployments of two revisions each, and
//! Prometheus answers for them, built through `update` as the sources would.

// Each bench uses its own part of this.
#![allow(dead_code)]

use backout::engine::signals::QueryOutcome;
use backout::engine::{update, KubeChange, KubeObject, Msg, QueryAnswer, ServiceKey, State};
use jiff::Timestamp;
use serde_json::json;

pub const SERVICES: usize = 2_000;
const T0: i64 = 1_800_000_000;

pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

fn kube<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Box<T> {
    Box::new(serde_json::from_value(v).unwrap())
}

pub fn name(i: usize) -> String {
    format!("svc-{i:04}")
}

pub fn populate(state: &mut State) {
    for i in 0..SERVICES {
        let n = name(i);
        let template = |image: &str| json!({"metadata": {"labels": {"app": n}}, "spec": {"containers": [{"name": "app", "image": image}]}});
        let d = json!({"metadata": {"name": n, "namespace": "scale", "generation": 1, "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 10, "selector": {"matchLabels": {"app": n}}, "template": template("app:2")},
            "status": {"observedGeneration": 1, "replicas": 10, "updatedReplicas": 10, "availableReplicas": 10}});
        update(
            state,
            Msg::Kube(KubeChange::Applied(KubeObject::Deployment(kube(d)))),
        );
        for rev in 1..=2 {
            let rs = json!({"metadata": {"name": format!("{n}-{rev}"), "namespace": "scale", "creationTimestamp": t(-3600 * (3 - rev)).to_string(),
                "annotations": {"deployment.kubernetes.io/revision": rev.to_string()},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": n, "uid": "u", "controller": true}]},
                "spec": {"replicas": if rev == 2 { 10 } else { 0 }, "selector": {"matchLabels": {"app": n}}, "template": template(&format!("app:{rev}"))}});
            update(
                state,
                Msg::Kube(KubeChange::Applied(KubeObject::ReplicaSet(kube(rs)))),
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
    let points = (0..count)
        .map(|k| {
            (
                t(now - 15 * (count - 1 - k) as i64).as_millisecond(),
                value(k),
            )
        })
        .collect();
    Msg::Query(QueryAnswer {
        trigger: trigger.into(),
        service: ServiceKey::new("scale", &name(service)),
        answered_at: t(now),
        outcome: QueryOutcome::Series {
            points,
            requests_per_second: Some(100.0),
        },
    })
}
