//! The fault matrix: each case turns on faults in the simulator's switchboard while
//! checkout's bad deploy (25% errors) is under way, with automatic rollback on, and
//! holds backout to what it promises:
//! - no automatic rollback on missing or bad data, and a clear blind state;
//! - once the fault ends, reconnection and exactly one rollback;
//! - a failed or unanswered patch is retried or read again, never doubled.
//!
//! The helpers live in `tests/common/faults.rs`; `benches/fault_matrix.rs` runs the
//! same faults through them and tables the figures for BENCHMARKS.md.

mod common;

use std::time::Duration;

use common::faults::{self as matrix, bad_deploy, core_for, put_faults, rollbacks, run_for, until};
use common::{eventually, have, Cluster};
use serde_json::json;

const CHECKOUT: &str = "checkout";

/// A metrics fault from the start: blind and held while it lasts, then one rollback.
async fn held_while_blind(board: serde_json::Value, blind_words: &str) {
    if !have("kubectl") {
        return;
    }
    let c = bad_deploy().await;
    put_faults(&c, board.clone()).await;
    let mut core = core_for(&c).await;
    // The bad deploy ships at 3 s; a clean signal would roll it back within ~30 s.
    run_for(&mut core, Duration::from_secs(25)).await;
    let key = matrix::key();
    let svc = &core.state.services[&key];
    assert!(
        svc.last_rollback.is_none() && svc.rollback.is_none(),
        "{board}: rolled back on bad data"
    );
    assert_eq!(
        c.revision(CHECKOUT).await,
        "2",
        "{board}: nothing was written"
    );
    let blind = core.state.blind().unwrap_or_default();
    assert!(blind.contains(blind_words), "{board}: blind says {blind:?}");
    assert!(
        c.journal().contains("\"kind\":\"metrics_blind\""),
        "{board}: no metrics_blind record in {}",
        c.journal()
    );
    put_faults(&c, json!({})).await;
    let rolled = until(&mut core, Duration::from_secs(120), |core| {
        // The fault is on from the start: the service may not be listed yet.
        core.state
            .services
            .get(&key)
            .is_some_and(|s| s.last_rollback.is_some())
    })
    .await;
    assert!(rolled, "{board}: no rollback once the fault ended");
    run_for(&mut core, Duration::from_secs(3)).await;
    assert_eq!(rollbacks(&c), 1, "{board}: {}", c.journal());
    assert_eq!(c.revision(CHECKOUT).await, "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_down() {
    held_while_blind(json!({"metrics": {"down": true}}), "503").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_slower_than_the_poll() {
    held_while_blind(
        json!({"metrics": {"latency": "10s"}}),
        "did not answer in time",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_http_400() {
    held_while_blind(json!({"metrics": {"status": 400}}), "400").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_http_500() {
    held_while_blind(json!({"metrics": {"status": 500}}), "500").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_garbage() {
    held_while_blind(json!({"metrics": {"garbage": true}}), "malformed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_nan() {
    held_while_blind(json!({"metrics": {"value": "NaN"}}), "NaN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_infinite() {
    held_while_blind(json!({"metrics": {"value": "+Inf"}}), "inf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_two_series() {
    held_while_blind(json!({"metrics": {"duplicate_series": true}}), "2 series").await;
}

/// A Kubernetes fault for `lasting` from the start: whatever it does, the bad deploy
/// is rolled back exactly once in the end and the watch says Connected again.
async fn one_rollback_through(board: serde_json::Value, lasting: Duration) -> Cluster {
    let c = bad_deploy().await;
    let mut core = core_for(&c).await;
    put_faults(&c, board.clone()).await;
    run_for(&mut core, lasting).await;
    put_faults(&c, json!({})).await;
    let key = matrix::key();
    let rolled = until(&mut core, Duration::from_secs(150), |core| {
        // The fault is on from the start: the service may not be listed yet.
        core.state
            .services
            .get(&key)
            .is_some_and(|s| s.last_rollback.is_some())
    })
    .await;
    assert!(rolled, "{board}: no rollback; {}", c.journal());
    let connected = until(&mut core, Duration::from_secs(60), |core| {
        core.state
            .sources
            .get(&backout::engine::SourceId::Kubernetes)
            == Some(&backout::engine::SourceHealth::Connected)
    })
    .await;
    assert!(connected, "{board}: {:?}", core.state.sources);
    run_for(&mut core, Duration::from_secs(3)).await;
    assert_eq!(rollbacks(&c), 1, "{board}: {}", c.journal());
    assert_eq!(c.revision(CHECKOUT).await, "3", "{board}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_500s_then_recovery() {
    if have("kubectl") {
        one_rollback_through(
            json!({"kube": {"error_500": true}}),
            Duration::from_secs(15),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_throttled_with_retry_after() {
    if have("kubectl") {
        let board = json!({"kube": {"throttle_retry_after": 2}});
        one_rollback_through(board, Duration::from_secs(15)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_slow_answers_and_cut_watches() {
    if have("kubectl") {
        let board = json!({"kube": {"latency": "2s", "cut_watches_every": "3s"}});
        one_rollback_through(board, Duration::from_secs(40)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_410_storm() {
    if have("kubectl") {
        let board = json!({"kube": {"gone_storm": true}});
        one_rollback_through(board, Duration::from_secs(40)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_on_the_rollback_patch_is_planned_again() {
    if have("kubectl") {
        let board = json!({"kube": {"conflict_next_patch": true}});
        one_rollback_through(board, Duration::from_secs(40)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_on_the_rollback_patch_is_tried_again_after_a_pause() {
    if !have("kubectl") {
        return;
    }
    let board = json!({"kube": {"fail_next_patch": 500}});
    let c = one_rollback_through(board, Duration::from_secs(25)).await;
    let journal = c.journal();
    let failed = journal.find("\"kind\":\"rollback_failed\"");
    let landed = journal.find("\"kind\":\"rollback\"");
    assert!(
        failed.is_some() && failed < landed,
        "the first try failed, the second landed: {journal}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_to_the_rollback_patch_is_read_again_not_called_a_failure() {
    if !have("kubectl") {
        return;
    }
    let board = json!({"kube": {"lose_next_patch_answer": true}});
    let c = one_rollback_through(board, Duration::from_secs(25)).await;
    let journal = c.journal();
    assert!(
        !journal.contains("\"kind\":\"rollback_failed\""),
        "the patch landed; nothing failed: {journal}"
    );
    let intent = journal.find("\"kind\":\"rollback_intent\"");
    assert!(intent.is_some() && intent < journal.find("\"kind\":\"rollback\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switchboard_takes_a_board_over_http_and_refuses_nonsense() {
    let c = bad_deploy().await;
    let url = format!("{}/sim/faults", c.sim.url());
    let http = c.http();
    let refused = http
        .put(&url)
        .body(r#"{"metrics": {"value": "7"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("metrics.value"));
    put_faults(&c, json!({"metrics": {"status": 500}})).await;
    let board: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(board["metrics"]["status"], 500);
    let query = format!("{}/api/v1/query?query=up", c.sim.url());
    let answered = eventually(Duration::from_secs(5), "the fault to apply", async || {
        let r = http.get(&query).send().await.ok()?;
        (r.status() == 500).then_some(r)
    })
    .await;
    assert!(answered.text().await.unwrap().contains("simulated fault"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_keeps_its_wait_when_the_api_server_is_slow_to_start_with() {
    let c = bad_deploy().await;
    // Every call status makes before its first list (access review, whoami) takes 3 s.
    put_faults(&c, json!({"kube": {"latency": "3s"}})).await;
    let config = c.dir().join("backout.toml");
    let out = c
        .backout(
            &[
                "status",
                "--wait",
                "1s",
                "--config",
                config.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("did not answer within 1s") && stderr.contains("--wait"),
        "the wait covers start-up and says so: {stderr}"
    );
}

#[test]
fn sim_help_documents_every_fault_of_the_switchboard() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_backout"))
        .args(["sim", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("PUT  /sim/faults"), "{help}");
    let board = serde_json::to_value(backout_sim::faults::Faults::default()).unwrap();
    for (api, fields) in board.as_object().unwrap() {
        for field in fields.as_object().unwrap().keys() {
            let name = format!("{api}.{field}");
            assert!(help.contains(&name), "`backout sim --help` lacks {name}");
        }
    }
}
