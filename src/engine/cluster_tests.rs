//! What the engine learns from the Kubernetes watch itself: which Deployments it
//! keeps (the watch list, relists, garbage-collected ReplicaSets) and the cluster
//! signals that need no Prometheus.

use serde_json::json;

use super::decision::Action;
use super::fixtures::*;
use super::model::keys::{KubeKind, SourceHealth, SourceId};
use super::msg::{KubeChange, KubeObject, Msg, QueryAnswer};
use super::signals::QueryOutcome;
use super::state::State;
use super::update::update;

#[test]
fn a_deployment_outside_the_watch_list_leaves_no_entry_even_when_its_replicaset_came_first() {
    let mut state = State::new(
        config("[[watch]]\nnamespace = \"shop\"\ndeployments = [\"checkout\"]\n"),
        t(0),
    );
    replicaset(&mut state, "other", 0, "other:1", 1, "", t(0), json!({}));
    assert!(
        !state.services.contains_key(&key("other"))
            && state
                .parked_replicasets
                .contains_key(&("shop".to_string(), "other".to_string())),
        "parked until its owner arrives"
    );
    deployment(&mut state, "other", "other:1", 1, true, false);
    deployment(&mut state, "checkout", "checkout:1", 1, true, false);
    let watched: Vec<&str> = state.services.keys().map(|k| k.name.as_str()).collect();
    assert_eq!(watched, ["checkout"]);
}

/// A pod of checkout's revision 2 (ReplicaSet `checkout-1`), crash looping.
fn crash_looping_pod(state: &mut State, created: i64, restarts: i32) {
    let pod = json!({"metadata": {"name": "checkout-1-abcde", "namespace": "shop", "creationTimestamp": t(created).to_string(),
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-1", "uid": "u", "controller": true}]},
        "spec": {"containers": [{"name": "checkout", "image": "checkout:2"}]},
        "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": t(created).to_string()}],
            "containerStatuses": [{"name": "checkout", "image": "checkout:2", "imageID": "", "ready": false, "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
    update(
        state,
        Msg::Kube(KubeChange::Applied(KubeObject::pod(&obj(pod)))),
    );
}

#[test]
fn a_crash_loop_is_caught_from_the_cluster_while_prometheus_is_blind() {
    let mut state = world("");
    let health = |source, health| Msg::Source { source, health };
    update(
        &mut state,
        health(SourceId::Kubernetes, SourceHealth::Connected),
    );
    let refused = SourceHealth::Retrying {
        attempt: 3,
        retry_in_secs: 15,
        error: "connection refused".into(),
    };
    update(&mut state, health(SourceId::Prometheus, refused));
    crash_looping_pod(&mut state, 10, 4);
    let promql: Vec<String> = state.config.queried().map(|t| t.name.clone()).collect();
    for now in (20..=120).step_by(5) {
        update(&mut state, Msg::Tick(t(now)));
        for trigger in &promql {
            let outcome = QueryOutcome::Failed {
                error: "connection refused".into(),
            };
            let answer = QueryAnswer {
                trigger: trigger.clone(),
                service: key("checkout"),
                answered_at: t(now),
                outcome,
            };
            update(&mut state, Msg::Query(answer));
        }
    }
    let svc = &state.services[&key("checkout")];
    assert!(svc.triggers["pod-restarts"].alert.is_firing());
    assert!(svc.triggers["crash-loop-backoff"].alert.is_firing());
    assert!(
        !svc.triggers["error-rate"].data.is_clean(),
        "the metrics are blind"
    );
    assert_eq!(decision(&state, "checkout").action, Action::AutoRollback);
    assert!(decision(&state, "checkout").gates.iter().all(|g| g.passed));
}

#[test]
fn a_cluster_signal_is_not_evidence_while_the_watch_is_down() {
    let mut state = world("");
    let down = SourceHealth::Retrying {
        attempt: 1,
        retry_in_secs: 5,
        error: "watch stream ended".into(),
    };
    update(
        &mut state,
        Msg::Source {
            source: SourceId::Kubernetes,
            health: down,
        },
    );
    crash_looping_pod(&mut state, 10, 9);
    for now in (20..=120).step_by(5) {
        update(&mut state, Msg::Tick(t(now)));
    }
    let restarts = &state.services[&key("checkout")].triggers["pod-restarts"];
    assert!(!restarts.data.is_clean(), "{:?}", restarts.data);
    assert!(!restarts.alert.is_firing());
    assert_ne!(decision(&state, "checkout").action, Action::AutoRollback);
}

#[test]
fn the_first_cluster_sample_follows_the_watch_not_a_poll_interval_later() {
    // A tick while the watch was still listing used to count as the sample, and the
    // next came a whole poll later: `backout status --wait` took 16 s at a 15 s poll.
    let mut state = world("");
    let health = |health| Msg::Source {
        source: SourceId::Kubernetes,
        health,
    };
    let answered = |state: &State| {
        state.services[&key("checkout")]
            .triggers
            .get("pod-restarts")
            .is_some_and(|t| t.last_answer.is_some())
    };
    update(&mut state, health(SourceHealth::Connecting));
    update(&mut state, Msg::Tick(t(1)));
    assert!(!answered(&state), "no answer before the watch has listed");
    update(&mut state, health(SourceHealth::Connected));
    update(&mut state, Msg::Tick(t(2)));
    assert!(
        answered(&state),
        "answered at the first tick after it listed"
    );
}

#[test]
fn a_relist_forgets_a_deployment_deleted_while_the_watch_was_away() {
    let mut state = world("");
    deploy(&mut state, "payments", &["payments:1"], 0, false);
    let still = json!({"metadata": {"name": "payments", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "payments"}}, "template": template("payments", "payments:1")}});
    update(
        &mut state,
        Msg::Kube(KubeChange::Relisted {
            kind: KubeKind::Deployment,
            namespace: "shop".into(),
            objects: vec![KubeObject::Deployment(obj(still))],
        }),
    );
    let names: Vec<&str> = state.services.keys().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["payments"], "checkout was deleted meanwhile");
}

#[test]
fn a_replicaset_collected_after_its_deployment_went_does_not_bring_it_back() {
    let mut state = world("");
    let gone = json!({"metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "checkout"}}, "template": template("checkout", "checkout:2")}});
    update(
        &mut state,
        Msg::Kube(KubeChange::Deleted(KubeObject::Deployment(obj(gone)))),
    );
    let rs = json!({"metadata": {"name": "checkout-1", "namespace": "shop",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout", "uid": "u", "controller": true}]}});
    update(
        &mut state,
        Msg::Kube(KubeChange::Deleted(KubeObject::ReplicaSet(obj(rs)))),
    );
    assert!(
        state.services.is_empty(),
        "{:?}",
        state.services.keys().collect::<Vec<_>>()
    );
}

#[test]
fn a_replicaset_a_stale_controller_makes_for_a_deleted_deployment_makes_no_service() {
    let mut state = world("");
    let gone = json!({"metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "checkout"}}, "template": template("checkout", "checkout:2")}});
    update(
        &mut state,
        Msg::Kube(KubeChange::Deleted(KubeObject::Deployment(obj(gone)))),
    );
    // Seen on a real control plane: a controller manager whose cache still held the
    // Deployment created a ReplicaSet for it after the delete.
    replicaset(
        &mut state,
        "checkout",
        7,
        "checkout:2",
        3,
        "",
        t(5),
        json!({}),
    );
    assert!(
        state.services.is_empty(),
        "{:?}",
        state.services.keys().collect::<Vec<_>>()
    );
}

#[test]
fn replicasets_and_pods_that_came_before_their_deployment_join_it_when_it_arrives() {
    let mut state = State::new(config(""), t(0));
    replicaset(
        &mut state,
        "checkout",
        0,
        "checkout:1",
        1,
        "",
        t(-60),
        json!({}),
    );
    replicaset(
        &mut state,
        "checkout",
        1,
        "checkout:2",
        2,
        "",
        t(0),
        json!({}),
    );
    let pod = json!({"metadata": {"name": "checkout-1-a", "namespace": "shop",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-1", "uid": "r", "controller": true}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    update(
        &mut state,
        Msg::Kube(KubeChange::Applied(KubeObject::pod(&obj(pod)))),
    );
    assert!(state.services.is_empty());
    deployment(&mut state, "checkout", "checkout:2", 2, true, false);
    let svc = &state.services[&key("checkout")];
    let replicasets: Vec<&str> = svc.replicasets.keys().map(String::as_str).collect();
    assert_eq!(replicasets, ["checkout-0", "checkout-1"]);
    assert!(svc.pods["checkout-1-a"].ready, "{:?}", svc.pods);
    assert!(state.parked_replicasets.is_empty() && state.parked_pods.is_empty());
}

#[test]
fn a_configmap_rbac_hides_is_unknown_never_unchanged_until_it_can_be_listed() {
    let mut state = world("");
    // Firing, so the decision weighs its gates.
    run(&mut state, "checkout", "error-rate", 0.001, 0.25, 30, 200);
    let unseen = |state: &State| {
        let d = decision(state, "checkout");
        let gate = d.gates.iter().find(|g| g.number == 3).cloned().unwrap();
        let noted = d.blast_radius.iter().any(|n| {
            n.risk
                && n.text
                    .contains("ConfigMap checkout-config is not visible to you")
        });
        (gate.passed, gate.evidence, noted)
    };
    update(
        &mut state,
        Msg::Kube(KubeChange::Unseen {
            kind: KubeKind::ConfigMap,
            namespace: "shop".into(),
            why: "configmaps is forbidden".into(),
        }),
    );
    update(&mut state, Msg::Tick(t(201)));
    let (passed, evidence, noted) = unseen(&state);
    assert!(
        !passed && evidence.contains("cannot be ruled out"),
        "{evidence}"
    );
    assert!(noted, "{:?}", decision(&state, "checkout").blast_radius);
    // Access granted later: the relist makes it seen, and the gate judges it again.
    update(
        &mut state,
        Msg::Kube(KubeChange::Relisted {
            kind: KubeKind::ConfigMap,
            namespace: "shop".into(),
            objects: Vec::new(),
        }),
    );
    update(&mut state, Msg::Tick(t(202)));
    let (passed, evidence, noted) = unseen(&state);
    assert!(passed && !noted, "{evidence}");
}

#[test]
fn a_cluster_series_keeps_its_points_a_step_apart_and_its_newest_current() {
    let text = "[prometheus]\nurl = \"http://p\"\npoll_interval = \"2s\"\nlookback = \"5m\"\n";
    let config = crate::config::Config::parse(std::path::Path::new("b.toml"), text).unwrap();
    let step_ms = config.prometheus.as_ref().unwrap().step().as_millis() as i64;
    assert_eq!(step_ms, 4_000, "sampled every 2 s, kept 4 s apart");
    let mut state = State::new(config, t(0));
    deploy(
        &mut state,
        "checkout",
        &["checkout:1", "checkout:2"],
        0,
        false,
    );
    let connected = Msg::Source {
        source: SourceId::Kubernetes,
        health: SourceHealth::Connected,
    };
    update(&mut state, connected);
    for now in (2..=600).step_by(2) {
        if now == 598 {
            crash_looping_pod(&mut state, 590, 4);
        }
        update(&mut state, Msg::Tick(t(now)));
    }
    let points = &state.services[&key("checkout")].triggers["pod-restarts"].points;
    assert!(points.len() <= 77, "{} points over 5 minutes", points.len());
    // Each sample rebuilds the series from the kept points plus the new one: none are
    // lost on the way, and it holds no spare room beyond a point or two.
    assert!(points.len() >= 70, "{} points over 5 minutes", points.len());
    assert!(
        points.capacity() <= points.len() + 2,
        "{}",
        points.capacity()
    );
    let points: Vec<(i64, f64)> = points.iter().collect();
    let (older, newest) = points.split_at(points.len() - 1);
    assert!(
        older.windows(2).all(|w| w[1].0 - w[0].0 >= step_ms),
        "a step apart: {older:?}"
    );
    assert_eq!(
        newest[0],
        (t(600).as_millisecond(), 4.0),
        "the newest is now"
    );
}

#[test]
fn an_alert_naming_a_service_fires_its_alerts_trigger_and_a_stale_answer_is_not_evidence() {
    use super::model::alerts::FiringAlert;
    use super::model::keys::{SourceHealth, SourceId};
    let mut state = world("[alertmanager]\nurl = \"http://am\"\npoll_interval = \"10s\"\n");
    for source in [SourceId::Kubernetes, SourceId::Alertmanager] {
        update(
            &mut state,
            Msg::Source {
                source,
                health: SourceHealth::Connected,
            },
        );
    }
    let alert = FiringAlert {
        namespace: Some("shop".into()),
        service: "checkout".into(),
        name: "HighErrors".into(),
        severity: Some("critical".into()),
        summary: None,
        since: Some(t(0)),
    };
    update(
        &mut state,
        Msg::Alerts {
            at: t(0),
            alerts: vec![alert],
        },
    );
    update(&mut state, Msg::Tick(t(1)));
    let alerts = &state.services[&key("checkout")].triggers["alerts"];
    assert_eq!(alerts.value, Some(1.0));
    assert!(alerts.alert.is_firing(), "{:?}", alerts.alert);
    assert!(decision(&state, "checkout")
        .firing
        .iter()
        .any(|f| f.trigger == "alerts"));
    assert_ne!(
        decision(&state, "checkout").action,
        Action::AutoRollback,
        "an alert alone never rolls back"
    );
    // No answer for longer than three polls and a timeout: unknown, not "no alerts"
    // and not still firing on old news.
    update(&mut state, Msg::Tick(t(60)));
    let alerts = &state.services[&key("checkout")].triggers["alerts"];
    assert!(!alerts.data.is_clean(), "{:?}", alerts.data);
}

#[test]
fn an_alert_answered_before_its_service_appeared_is_the_services_from_its_first_sample() {
    use super::model::alerts::FiringAlert;
    // Alertmanager can answer before the Deployments have listed; the service must not
    // read "no alerts" (clean) until Alertmanager's next answer.
    let mut state = State::new(
        config("[alertmanager]\nurl = \"http://am\"\npoll_interval = \"10s\"\n"),
        t(0),
    );
    for source in [SourceId::Kubernetes, SourceId::Alertmanager] {
        let health = SourceHealth::Connected;
        update(&mut state, Msg::Source { source, health });
    }
    let alert = FiringAlert {
        namespace: Some("shop".into()),
        service: "checkout".into(),
        name: "HighErrors".into(),
        severity: None,
        summary: None,
        since: Some(t(0)),
    };
    let alerts = vec![alert];
    update(&mut state, Msg::Alerts { at: t(0), alerts });
    assert!(state.services.is_empty(), "answered before any Deployment");
    deploy(
        &mut state,
        "checkout",
        &["checkout:1", "checkout:2"],
        0,
        false,
    );
    assert_eq!(state.services[&key("checkout")].alerts.len(), 1);
    update(&mut state, Msg::Tick(t(1)));
    let alerts = &state.services[&key("checkout")].triggers["alerts"];
    assert_eq!(alerts.value, Some(1.0), "{:?}", alerts.data);
    assert!(alerts.alert.is_firing(), "{:?}", alerts.alert);
}
