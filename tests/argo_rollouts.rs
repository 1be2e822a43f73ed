//! An Argo Rollouts canary as a rollback target, against the simulator's Rollout
//! controller: the failing canary is decided on, aborted as `kubectl argo rollouts
//! abort` does and verified; the next rollback is the undo that ends the abort; and
//! the canary's template, rolled back from, is never offered again.

mod common;

use std::time::Duration;

use backout_sim::scenario::Scenario;
use common::{eventually, start, Cluster};
use serde_json::Value;

/// The shipped canary-abort scenario, its bad canary shipped 2 s in.
fn canary_abort() -> Scenario {
    common::shipped_at("canary-abort", Duration::from_secs(2))
}

fn config(c: &Cluster) -> String {
    common::config_of(c)
}

async fn checkout(c: &Cluster) -> Value {
    common::status_of(c, "checkout", &[]).await
}

async fn rollout(c: &Cluster) -> Value {
    let json = c
        .kubectl_ok(&["get", "rollouts.argoproj.io/checkout", "-o", "json"])
        .await;
    serde_json::from_str(&json).expect("the Rollout as JSON")
}

async fn rollback(c: &Cluster, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["rollback", "checkout", "--yes", "--config"];
    let config = config(c);
    args.push(&config);
    args.extend(extra);
    let out = c.backout(&args, &[]).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_aborted_then_undone_and_its_template_never_offered_again() {
    if !common::have("kubectl") {
        return;
    }
    let c = start(canary_abort()).await;
    let decided = eventually(
        Duration::from_secs(60),
        "the canary's decision",
        async || {
            let s = checkout(&c).await;
            (s["decision"]["action"] == "auto_rollback").then_some(s)
        },
    )
    .await;
    let d = &decided["decision"];
    assert_eq!(decided["kind"], "argo_rollout");
    assert_eq!(d["target"]["revision"], 1, "stable is the target: {d}");
    let gates = d["gates"].to_string();
    assert!(gates.contains("revision 2's canary began"), "{gates}");
    let blast = d["blast_radius"].to_string();
    assert!(
        blast.contains("an abort moves the canary's 20% of the replicas back"),
        "{blast}"
    );

    let (ok, text) = rollback(&c, &[]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("as   kubectl argo rollouts abort checkout -n shop"),
        "{text}"
    );
    assert!(
        text.contains("rollout completes: rollout \"checkout\" aborted"),
        "{text}"
    );
    assert!(text.contains("verified"), "{text}");
    let ro = rollout(&c).await;
    assert_eq!(ro["status"]["abort"], true, "{}", ro["status"]);
    let record = ro["metadata"]["annotations"]["backout.dev/rollback"]
        .as_str()
        .unwrap_or_default();
    assert!(
        record.contains("rolled back by hand"),
        "who and why: {record}"
    );
    let canary = format!(
        "rs/checkout-{}",
        ro["status"]["currentPodHash"].as_str().unwrap()
    );
    assert_eq!(c.jsonpath(&canary, "{.spec.replicas}").await, "0");

    // Aborted, the spec still holds the bad template: the next step is the undo.
    let after = checkout(&c).await;
    assert!(
        after["decision"]["blast_radius"]
            .to_string()
            .contains("the canary is aborted"),
        "{after}"
    );
    // The abort was verified above; the undo's own verification is not waited for.
    let (ok, text) = rollback(&c, &["--no-verify"]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("kubectl argo rollouts undo checkout --to-revision=1 -n shop"),
        "{text}"
    );
    let ro = rollout(&c).await;
    assert_eq!(
        ro["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/shop/checkout:1.4.0"
    );
    assert!(
        ro["status"]["abort"].is_null(),
        "the undo ended the abort: {}",
        ro["status"]
    );

    // Back on 1.4.0 as revision 3, "previous" is the canary rolled back from: never
    // the target offered, and named as such when someone asks for it by number.
    let back = checkout(&c).await;
    assert_ne!(back["decision"]["target"]["revision"], 2, "{back}");
    let (_, text) = rollback(&c, &["--to-revision", "2", "--dry-run"]).await;
    assert!(
        text.contains("warning: revision 2 was rolled back from"),
        "{text}"
    );
    c.sim.stop().await;
}
