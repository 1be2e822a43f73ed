//! Fixtures: Deployments, ReplicaSets and trigger answers, built through `update`
//! the way the sources would build them. The engine's and the console's unit tests
//! use them, and so do the benches (through the `fixtures` feature), so a world is
//! described in one place.
#![allow(dead_code)]

use jiff::Timestamp;
use serde_json::json;

use super::msg::{Effect, KubeChange, KubeObject, Msg, QueryAnswer};
use super::rollbacks::{Preview, Request, Step};
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

/// The Deployment `name` as the controller leaves it: at `revision`, running `image`,
/// its rollout complete or still going.
pub fn deployment(
    state: &mut State,
    name: &str,
    image: &str,
    revision: u64,
    complete: bool,
    paused: bool,
) -> Vec<Effect> {
    deployment_in(state, "shop", name, image, revision, complete, paused, 3)
}

/// [`deployment`] in any namespace, with any number of replicas.
#[allow(clippy::too_many_arguments)]
pub fn deployment_in(
    state: &mut State,
    ns: &str,
    name: &str,
    image: &str,
    revision: u64,
    complete: bool,
    paused: bool,
    replicas: i32,
) -> Vec<Effect> {
    let (updated, available) = if complete {
        (replicas, replicas)
    } else {
        (1, 0)
    };
    let d = json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "generation": revision,
        "annotations": {"deployment.kubernetes.io/revision": revision.to_string()}},
        "spec": {"replicas": replicas, "paused": paused, "selector": {"matchLabels": {"app": name}}, "template": template(name, image)},
        "status": {"observedGeneration": revision, "replicas": replicas, "updatedReplicas": updated, "availableReplicas": available, "readyReplicas": available}});
    update(
        state,
        Msg::Kube(KubeChange::Applied(KubeObject::Deployment(obj(d)))),
    )
}

/// ReplicaSet `{name}-{index}` for `image`, at `revision`, having held the numbers in
/// `history` before (a rollback or a re-deploy brought it back), with any extra
/// annotations (backout's rollback record).
#[allow(clippy::too_many_arguments)]
pub fn replicaset(
    state: &mut State,
    name: &str,
    index: usize,
    image: &str,
    revision: u64,
    history: &str,
    created: Timestamp,
    extra: serde_json::Value,
) -> Vec<Effect> {
    replicaset_in(
        state, "shop", name, index, image, revision, history, created, extra,
    )
}

/// [`replicaset`] in any namespace.
#[allow(clippy::too_many_arguments)]
pub fn replicaset_in(
    state: &mut State,
    ns: &str,
    name: &str,
    index: usize,
    image: &str,
    revision: u64,
    history: &str,
    created: Timestamp,
    extra: serde_json::Value,
) -> Vec<Effect> {
    let mut annotations = json!({"deployment.kubernetes.io/revision": revision.to_string()});
    if !history.is_empty() {
        annotations["deployment.kubernetes.io/revision-history"] = json!(history);
    }
    for (k, v) in extra.as_object().into_iter().flatten() {
        annotations[k] = v.clone();
    }
    let rs = json!({"metadata": {"name": format!("{name}-{index}"), "namespace": ns, "creationTimestamp": created.to_string(),
        "annotations": annotations,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": format!("uid-{name}"), "controller": true}]},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}}, "template": template(name, image)}});
    update(
        state,
        Msg::Kube(KubeChange::Applied(KubeObject::ReplicaSet(obj(rs)))),
    )
}

/// A Deployment `name` at revision `images.len()`, one ReplicaSet per image, the
/// last created `deployed_secs` after T0.
pub fn deploy(state: &mut State, name: &str, images: &[&str], deployed_secs: i64, paused: bool) {
    let current = images.len();
    deployment(
        state,
        name,
        images[current - 1],
        current as u64,
        true,
        paused,
    );
    for (i, image) in images.iter().enumerate() {
        let created = if i + 1 == current {
            t(deployed_secs)
        } else {
            t(-86_400 + i as i64)
        };
        replicaset(
            state,
            name,
            i,
            image,
            (i + 1) as u64,
            "",
            created,
            json!({}),
        );
    }
}

/// The cluster after anyone rolled checkout back from revision 2 (`checkout:2`) to
/// revision 1's template: the controller reuses ReplicaSet 0 as revision 3.
/// `record` is backout's annotation, when backout made it.
pub fn reverted_in_cluster(
    state: &mut State,
    record: Option<super::lineage::RollbackRecord>,
) -> Vec<Effect> {
    let extra = record.map_or(
        json!({}),
        |r| json!({crate::k8s::template::ROLLBACK_RECORD: serde_json::to_string(&r).unwrap()}),
    );
    let mut effects = replicaset(
        state,
        "checkout",
        0,
        "checkout:1",
        3,
        "1",
        t(-86_400),
        extra,
    );
    effects.extend(deployment(state, "checkout", "checkout:1", 3, false, false));
    effects
}

/// backout's record of rolling checkout back from revision 2 to 1, by `by`, at `at`.
pub fn record(by: &str, at: i64, automatic: bool) -> super::lineage::RollbackRecord {
    super::lineage::RollbackRecord {
        revision: 3,
        from_replicaset: "checkout-1".into(),
        to_replicaset: "checkout-0".into(),
        at: t(at),
        by: by.into(),
        reason: "error-rate 25%".into(),
        automatic,
        incident: None,
    }
}

/// The rollout of revision 3 completes, and error-rate answers `value` every 15 s
/// from `from` to `until`: what verification watches.
pub fn recovers(state: &mut State, value: f64, from: i64, until: i64) -> Vec<Effect> {
    let mut effects = deployment(state, "checkout", "checkout:1", 3, true, false);
    let others: Vec<String> = state
        .config
        .triggers
        .iter()
        .map(|t| t.name.clone())
        .filter(|n| n != "error-rate")
        .collect();
    for now in (from..=until).step_by(15) {
        effects.extend(update(state, Msg::Tick(t(now))));
        effects.extend(update(
            state,
            answer("checkout", "error-rate", 0.25, value, from, now),
        ));
        for other in &others {
            effects.extend(update(
                state,
                answer("checkout", other, 0.001, 0.001, from, now),
            ));
        }
    }
    effects
}

/// checkout as a Rollout: 5 replicas, stable ReplicaSet `checkout-0` (revision 1),
/// canary `checkout-1` (revision 2, created at T0) paused at step 1 with 20%;
/// `status` overrides the Rollout's status fields.
pub fn canary(state: &mut State, status: serde_json::Value) {
    let mut ro = json!({"metadata": {"name": "checkout", "namespace": "shop", "uid": "uid-checkout", "generation": 2,
            "annotations": {"rollout.argoproj.io/revision": "2"}},
        "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "checkout"}},
            "template": template("checkout", "checkout:2"),
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}},
        "status": {"observedGeneration": "2", "currentPodHash": "1", "stableRS": "0", "currentStepIndex": 1,
            "phase": "Paused", "message": "CanaryPauseStep", "replicas": 5, "updatedReplicas": 1,
            "readyReplicas": 5, "availableReplicas": 5}});
    for (k, v) in status.as_object().into_iter().flatten() {
        ro["status"][k] = v.clone();
    }
    update(
        state,
        Msg::Kube(KubeChange::Applied(KubeObject::Rollout(obj(ro)))),
    );
    for (index, image, created) in [(0, "checkout:1", t(-86_400)), (1, "checkout:2", t(0))] {
        let rs = json!({"metadata": {"name": format!("checkout-{index}"), "namespace": "shop",
                "creationTimestamp": created.to_string(),
                "annotations": {"rollout.argoproj.io/revision": (index + 1).to_string()},
                "labels": {"rollouts-pod-template-hash": index.to_string()},
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "checkout",
                    "uid": "uid-checkout", "controller": true}]},
            "spec": {"replicas": if index == 0 { 4 } else { 1 }, "selector": {"matchLabels": {"app": "checkout"}},
                "template": template("checkout", image)}});
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
        .map(|s| (s, if s >= onset { after } else { before }))
        .collect();
    series(&key(service), trigger, points, now, 50.0)
}

/// One range query's answer: (seconds after T0, value) points, answered at `now`,
/// over `rps` requests a second.
pub fn series(
    service: &ServiceKey,
    trigger: &str,
    points: Vec<(i64, f64)>,
    now: i64,
    rps: f64,
) -> Msg {
    Msg::Query(QueryAnswer {
        trigger: trigger.into(),
        service: service.clone(),
        answered_at: t(now),
        outcome: QueryOutcome::Series {
            points: points
                .into_iter()
                .map(|(s, v)| (t(s).as_millisecond(), v))
                .collect(),
            requests_per_second: Some(rps),
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
        for calm in calm_answers(state, (service, trigger), now) {
            effects.extend(update(state, calm));
        }
    }
    effects
}

/// A healthy Prometheus answers every other query too: a value well clear of each
/// trigger's threshold, for every (service, Prometheus trigger) but `except` and
/// those a test already drove into a breach.
pub fn calm_answers(state: &State, except: (&str, &str), now: i64) -> Vec<Msg> {
    use crate::config::Comparison;
    let mut answers = Vec::new();
    for (key, svc) in &state.services {
        for trig in state.config.queried() {
            let driven = svc.triggers.get(&trig.name).is_some_and(|ts| {
                ts.data == super::signals::DataState::Breach || ts.alert.is_firing()
            });
            if driven || (key.name.as_str(), trig.name.as_str()) == except {
                continue;
            }
            let value = match trig.comparison {
                Comparison::Above | Comparison::AtLeast if trig.threshold > 0.001 => 0.001,
                Comparison::Above | Comparison::AtLeast => trig.threshold - 1.0,
                Comparison::Below | Comparison::AtMost => trig.threshold.max(0.0) + 1.0,
            };
            let points = (-300..=now).step_by(15).map(|s| (s, value)).collect();
            answers.push(series(key, &trig.name, points, now, 50.0));
        }
    }
    answers
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
        resource_version: "41".into(),
        to_replicaset: format!("checkout-{}", to.saturating_sub(1)),
        from_replicaset: format!("checkout-{}", from.saturating_sub(1)),
        switch: None,
        abort: false,
        revert: None,
        flag: None,
    }
}

/// Orders a rollback of checkout, as a confirmed dialog (or the gate) would.
pub fn request(state: &mut State, to_revision: Option<u64>, automatic: bool) -> Vec<Effect> {
    let request = Request {
        to_revision,
        automatic,
        reason: if automatic {
            "automatic: error-rate firing".into()
        } else {
            "confirmed in the console".into()
        },
        by: "alice@bastion".into(),
        expected: None,
    };
    update(
        state,
        Msg::RollbackRequested {
            service: key("checkout"),
            request,
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
    let at = state.now;
    effects.extend(step(state, Step::Committed { by: by.into(), at }));
    effects
}

/// checkout's rollback from 2 to 1, patched, rolled out and recovered (verified).
pub fn verified_rollback(state: &mut State, at: i64) -> Vec<Effect> {
    let mut effects = rolled_back(state, 2, 1, "alice@bastion");
    effects.extend(reverted_in_cluster(
        state,
        Some(record("alice@bastion", at, false)),
    ));
    let hold = state.config.policy.recovery_hold.as_secs() as i64;
    effects.extend(recovers(state, 0.001, at, at + hold + 30));
    effects
}

/// The journal entries among `effects`, in order.
pub fn journaled(effects: &[Effect]) -> Vec<&super::journal::Entry> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Journal(r) => Some(&r.entry),
            _ => None,
        })
        .collect()
}

/// A pod of ReplicaSet `replicaset` in shop, created at `created_secs`; a crashing
/// one waits in CrashLoopBackOff after `restarts` runs that exited 1.
pub fn pod(state: &mut State, name: &str, replicaset: &str, created_secs: i64, restarts: i32) {
    let crashing = restarts > 0;
    let mut container = json!({"name": "app", "image": "img", "imageID": "", "ready": !crashing,
        "restartCount": restarts, "state": {"running": {}}});
    if crashing {
        container["state"] = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        container["lastState"] = json!({"terminated": {"reason": "Error", "exitCode": 1}});
    }
    let ready = if crashing { "False" } else { "True" };
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": t(created_secs).to_string(),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replicaset,
                "uid": "u", "controller": true}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}],
            "containerStatuses": [container]}
    }))
    .expect("a pod");
    update(state, Msg::Kube(KubeChange::Applied(KubeObject::pod(&pod))));
}

/// The decision on shop/`name`.
pub fn decision<'a>(state: &'a State, name: &str) -> &'a super::Decision {
    &state.services[&key(name)].decision
}

/// The numbers of the gates that fail for shop/`name`.
pub fn failed_gates(state: &State, name: &str) -> Vec<u8> {
    decision(state, name)
        .gates
        .iter()
        .filter(|g| !g.passed)
        .map(|g| g.number)
        .collect()
}
