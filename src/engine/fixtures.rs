//! Test fixtures: a small world of Deployments and trigger answers, built through
//! `update` the way the sources would build it. Shared by the engine's and the
//! console's tests.
#![allow(dead_code)]

use jiff::Timestamp;
use serde_json::json;

use super::msg::{Effect, KubeChange, KubeObject, Msg, QueryAnswer};
use super::rollbacks::{Preview, Step};
use super::signals::QueryOutcome;
use super::state::{ServiceKey, State};
use super::update::update;
use crate::config::Config;

pub const T0: i64 = 1_800_000_000;

pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

pub fn config(extra: &str) -> Config {
    let text = format!("[prometheus]\nurl = \"http://p\"\npoll_interval = \"15s\"\n[dependencies]\nfrontend = [\"checkout\"]\n{extra}");
    Config::parse(std::path::Path::new("test.toml"), &text).unwrap()
}

pub fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Box<T> {
    Box::new(serde_json::from_value(v).unwrap())
}

pub fn template(name: &str, image: &str) -> serde_json::Value {
    json!({"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": image, "envFrom": [{"configMapRef": {"name": format!("{name}-config")}}]}]}})
}

/// A Deployment `name` at revision `revisions.len()`, one ReplicaSet per image, the
/// last created `deployed_secs` after T0.
pub fn deploy(state: &mut State, name: &str, images: &[&str], deployed_secs: i64, paused: bool) {
    let ns = "shop";
    let current = images.len();
    let d = json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "generation": 1,
        "annotations": {"deployment.kubernetes.io/revision": current.to_string()}},
        "spec": {"replicas": 3, "paused": paused, "selector": {"matchLabels": {"app": name}}, "template": template(name, images[current - 1])},
        "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}});
    update(
        state,
        Msg::Kube(KubeChange::Applied(KubeObject::Deployment(obj(d)))),
    );
    for (i, image) in images.iter().enumerate() {
        let created = if i + 1 == current {
            t(deployed_secs)
        } else {
            t(-86_400 + i as i64)
        };
        let rs = json!({"metadata": {"name": format!("{name}-{i}"), "namespace": ns, "creationTimestamp": created.to_string(),
            "annotations": {"deployment.kubernetes.io/revision": (i + 1).to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": format!("uid-{name}"), "controller": true}]},
            "spec": {"replicas": if i + 1 == current { 3 } else { 0 }, "selector": {"matchLabels": {"app": name}}, "template": template(name, image)}});
        update(
            state,
            Msg::Kube(KubeChange::Applied(KubeObject::ReplicaSet(obj(rs)))),
        );
    }
}

pub fn world(extra: &str) -> State {
    let mut state = State::new(config(extra), t(0));
    deploy(
        &mut state,
        "checkout",
        &["checkout:1", "checkout:2"],
        0,
        false,
    );
    state
}

pub fn key(name: &str) -> ServiceKey {
    ServiceKey::new("shop", name)
}

/// A range-query answer for `trigger`: `before` until `onset`, then `after`, every 15 s up to `now`.
pub fn answer(service: &str, trigger: &str, before: f64, after: f64, onset: i64, now: i64) -> Msg {
    let points = (-300..=now)
        .step_by(15)
        .map(|s| {
            (
                t(s).as_millisecond(),
                if s >= onset { after } else { before },
            )
        })
        .collect();
    Msg::Query(QueryAnswer {
        trigger: trigger.into(),
        service: key(service),
        answered_at: t(now),
        outcome: QueryOutcome::Series {
            points,
            requests_per_second: Some(50.0),
        },
    })
}

/// Feeds answers every 15 s from `onset` to `until`, with ticks, as the sources would.
pub fn run(
    state: &mut State,
    service: &str,
    trigger: &str,
    before: f64,
    after: f64,
    onset: i64,
    until: i64,
) -> Vec<Effect> {
    let mut effects = Vec::new();
    for now in (onset..=until).step_by(15) {
        effects.extend(update(state, Msg::Tick(t(now))));
        effects.extend(update(
            state,
            answer(service, trigger, before, after, onset, now),
        ));
    }
    effects
}

/// What the dry run of rolling checkout back from revision `from` to `to` says.
pub fn preview(from: u64, to: u64) -> Preview {
    Preview {
        from_revision: from,
        from_images: vec![format!("checkout:{from}")],
        to_revision: to,
        to_images: vec![format!("checkout:{to}")],
        already_there: false,
        kubectl: format!("kubectl rollout undo deployment/checkout --to-revision={to} -n shop"),
    }
}

/// Orders a rollback of checkout, as a confirmed dialog (or the gate) would.
pub fn request(state: &mut State, to_revision: Option<u64>, automatic: bool) -> Vec<Effect> {
    update(
        state,
        Msg::RollbackRequested {
            service: key("checkout"),
            to_revision,
            reason: if automatic {
                "automatic: error-rate firing".into()
            } else {
                "confirmed in the console".into()
            },
            automatic,
        },
    )
}

/// One step of checkout's rollback under way, as the runner reports it.
pub fn step(state: &mut State, step: Step) -> Vec<Effect> {
    update(
        state,
        Msg::RollbackStep {
            service: key("checkout"),
            step,
        },
    )
}

/// A rollback of checkout from `from` to `to`, ordered, dry-run and patched by `by`.
pub fn rolled_back(state: &mut State, from: u64, to: u64, by: &str) -> Vec<Effect> {
    let mut effects = request(state, Some(to), false);
    effects.extend(step(state, Step::Prepared(preview(from, to))));
    effects.extend(step(state, Step::Committed { by: by.into() }));
    effects
}
