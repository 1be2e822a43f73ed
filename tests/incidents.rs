//! Incidents after the first rollback, against the simulator with the real kubectl:
//! a rollback someone made with `kubectl rollout undo` is never undone by a watcher
//! that starts after it, and a watcher replaced in the middle of verifying its own
//! rollback does not roll the rollback back.

mod common;

use std::time::Duration;

use backout_sim::scenario::Scenario;
use common::{eventually, have, start, Cluster};

const GOOD: &str = "registry.local/shop/checkout:1.4.0";
const BAD: &str = "registry.local/shop/checkout:1.4.1";

fn watch(c: &Cluster) -> tokio::process::Child {
    let config = c.dir().join("backout.toml");
    c.spawn_backout(&[
        "watch",
        "--auto-rollback",
        "--config",
        config.to_str().unwrap(),
    ])
}

/// bad-deploy, with checkout:1.4.1 out and failing in the simulator's metrics.
async fn failing() -> Option<Cluster> {
    if !have("kubectl") {
        return None;
    }
    let c = start(Scenario::load("bad-deploy").unwrap()).await;
    eventually(Duration::from_secs(60), "the bad deploy", async || {
        (c.image("checkout").await == BAD).then_some(())
    })
    .await;
    let ratio = r#"service:http_errors:ratio_rate1m{service="checkout"}"#;
    eventually(Duration::from_secs(60), "checkout to fail", async || {
        let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        common::instant(&c.http(), &c.sim.url(), ratio, now)
            .await
            .filter(|v| *v > 0.1)
    })
    .await;
    Some(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_undo_then_a_watcher_leaves_the_good_build_and_targets_no_known_bad_image() {
    let Some(c) = failing().await else { return };
    c.kubectl_ok(&["rollout", "undo", "deploy/checkout"]).await;
    c.kubectl_ok(&["rollout", "status", "deploy/checkout", "--timeout=30s"])
        .await;
    assert_eq!(c.revision("checkout").await, "3");
    // The errors of 1.4.1 are still draining from the rate window as the watcher starts.
    let mut watcher = watch(&c);
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert!(
        watcher.try_wait().unwrap().is_none(),
        "the watcher is still running"
    );
    watcher.kill().await.unwrap();
    assert_eq!(c.revision("checkout").await, "3", "no new revision");
    assert_eq!(c.image("checkout").await, GOOD);
    let journal = c.journal();
    assert!(
        journal.contains(r#""kind":"rollback""#) && journal.contains("outside backout"),
        "the watcher journaled the rollback it found: {journal}"
    );

    let out = c
        .backout(
            &[
                "status",
                "--json",
                "--config",
                &c.dir().join("backout.toml").to_string_lossy(),
            ],
            &[],
        )
        .await;
    let status: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status prints JSON");
    let checkout = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"]["name"] == "checkout")
        .expect("checkout is in the status");
    let target = &checkout["decision"]["target"];
    assert!(
        !target.to_string().contains(BAD),
        "status never targets the build rolled back from: {target}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_replaced_mid_verification_does_not_undo_the_rollback() {
    let Some(c) = failing().await else { return };
    let mut first = watch(&c);
    eventually(
        Duration::from_secs(90),
        "the automatic rollback",
        async || (c.revision("checkout").await == "3").then_some(()),
    )
    .await;
    // The pod is replaced while the rollback is being verified: no goodbye at all.
    first.kill().await.unwrap();
    let mut second = watch(&c);
    tokio::time::sleep(Duration::from_secs(30)).await;
    second.kill().await.unwrap();
    assert_eq!(c.revision("checkout").await, "3", "no new revision");
    assert_eq!(c.image("checkout").await, GOOD);
}
