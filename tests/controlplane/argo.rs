//! Argo Rollouts judged on the real control plane: Argo's own controller (built from
//! its published module by build-argo.sh, with its CRD) runs the canary-abort
//! scenario's Rollout over the real ReplicaSet controller, and the workload half runs
//! the pods and their traffic for a real Prometheus. backout, under the shipped RBAC,
//! aborts the failing canary from the watcher and verifies the abort from what the
//! real controller writes; the undo that follows is Argo's to carry out.

use std::time::Duration;

use backout_sim::scenario::Scenario;
use serde_json::Value;

use super::common::{stop_with, wait_for};
use super::decisions::{journal, Incident};
use super::harness::ControlPlane;
use super::{shipped_rbac, text};

const ROLLOUT: &str = "rollouts.argoproj.io/checkout";

fn canary_abort() -> Scenario {
    let mut scenario = Scenario::load("canary-abort").expect("a shipped scenario");
    for e in &mut scenario.timeline {
        e.get_mut().at = Duration::from_secs(3);
    }
    scenario
}

async fn status(cp: &ControlPlane, path: &str) -> String {
    cp.jsonpath(ROLLOUT, &format!("{{.status.{path}}}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_aborts_a_real_argo_canary_and_verifies_it_then_undo_ends_the_abort() {
    let Some(mut cp) = ControlPlane::start().await else {
        return;
    };
    if !cp.start_argo_rollouts().await {
        return;
    }
    let incident = Incident::start(&cp, canary_abort()).await;
    let stable = status(&cp, "stableRS").await;
    let sa = shipped_rbac(&cp).await;
    let mut watch = cp.spawn_backout_as(
        &sa,
        &["watch", "--auto-rollback", "--config", incident.config()],
    );
    let play = incident.play(&cp).await;
    wait_for(
        "Argo to pause the canary at its first step",
        Duration::from_secs(120),
        async || status(&cp, "currentStepIndex").await == "1",
    )
    .await;
    let canary = status(&cp, "currentPodHash").await;
    assert_ne!(canary, stable, "a canary ReplicaSet of its own");

    wait_for(
        "backout to abort the canary",
        Duration::from_secs(180),
        async || status(&cp, "abort").await == "true",
    )
    .await;
    // Argo's controller, not backout, scales the canary away.
    wait_for(
        "Argo to scale the canary to zero",
        Duration::from_secs(90),
        async || {
            cp.jsonpath(&format!("rs/checkout-{canary}"), "{.spec.replicas}")
                .await
                == "0"
        },
    )
    .await;
    assert_eq!(status(&cp, "phase").await, "Degraded");
    assert!(status(&cp, "message").await.contains("RolloutAborted"));
    let verified = |r: &Value| r["service"] == "shop/checkout" && r["kind"] == "verification";
    wait_for(
        "backout to verify the abort",
        Duration::from_secs(180),
        async || journal(&cp).iter().any(verified),
    )
    .await;
    incident.assert_running();
    let stopped = stop_with(&mut watch, "TERM").await;
    assert!(stopped.success(), "exit status {stopped:?}");
    let records = journal(&cp);
    let verification = records.iter().find(|r| verified(r)).unwrap();
    assert_eq!(verification["outcome"], "verified", "{verification}");
    let rollbacks: Vec<&Value> = records.iter().filter(|r| r["kind"] == "rollback").collect();
    assert_eq!(rollbacks.len(), 1, "exactly one abort: {rollbacks:#?}");
    assert_eq!(rollbacks[0]["automatic"], true);
    assert_eq!(
        (&rollbacks[0]["from_revision"], &rollbacks[0]["to_revision"]),
        (&Value::from(2), &Value::from(1))
    );

    // The spec still holds the bad template; the undo puts stable's back and Argo
    // leaves the abort for a healthy Rollout on revision 1's template.
    let out = cp
        .backout(&[
            "rollback",
            "checkout",
            "--yes",
            "--no-verify",
            "--config",
            incident.config(),
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("kubectl argo rollouts undo checkout --to-revision=1"));
    wait_for(
        "Argo to leave the abort",
        Duration::from_secs(90),
        async || status(&cp, "phase").await == "Healthy" && status(&cp, "abort").await.is_empty(),
    )
    .await;
    assert_eq!(status(&cp, "stableRS").await, stable);
    assert!(!play.is_finished() || play.await.unwrap().is_ok());
}
