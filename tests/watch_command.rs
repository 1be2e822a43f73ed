//! `backout watch --auto-rollback` on two services that go bad at once, where only one
//! qualifies: exactly one rollback, none again inside the blackout, a page with the
//! command for the other, JSON logs on stdout, and a clean stop on SIGTERM; a hangup
//! drains the same way and journals the verification it cut short.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{bad_and_slow, bad_deploy_at, have, start, stop_with, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_two_bad_services_is_rolled_back_and_the_blackout_holds() {
    if !have("kubectl") {
        return;
    }
    let c = start(bad_and_slow(Duration::from_secs(1))).await;
    let config = c.dir().join("backout.toml");
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_backout"))
        .args([
            "watch",
            "--auto-rollback",
            "--log-format",
            "json",
            "--config",
        ])
        .arg(&config)
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .env("BACKOUT_JOURNAL", c.journal_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("backout watch starts");

    wait_for(
        "checkout's rollback",
        Duration::from_secs(120),
        async || c.revision("checkout").await == "3",
    )
    .await;
    assert_eq!(
        c.image("checkout").await,
        "registry.local/shop/checkout:1.4.0"
    );

    // The same bad image again, inside the blackout: it fires, and nothing rolls back.
    c.kubectl_ok(&[
        "set",
        "image",
        "deploy/checkout",
        "checkout=registry.local/shop/checkout:1.4.1",
    ])
    .await;
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(
        c.revision("checkout").await,
        "4",
        "no second rollback in the blackout"
    );
    assert_eq!(
        c.revision("search").await,
        "2",
        "latency alone is never automatic"
    );

    // Read the logs while the watcher drains: a full pipe would stall its exit.
    let mut pipe = watch.stdout.take().unwrap();
    let logs = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut stdout = String::new();
        pipe.read_to_string(&mut stdout).await.map(|_| stdout)
    });
    let status = stop_with(&mut watch, "TERM").await;
    let stdout = logs.await.unwrap().unwrap();
    let out = (status, stdout);
    assert!(out.0.success(), "exit status {:?}", out.0);
    let logs: Vec<serde_json::Value> = out
        .1
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a JSON log line ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = logs
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("rolled back r2 → r1")),
        "{messages:#?}"
    );
    assert_eq!(messages.last(), Some(&"stopped"));
    let journal = c.journal();
    assert_eq!(
        journal.matches(r#""kind":"rollback""#).count(),
        1,
        "exactly one rollback journaled:\n{journal}"
    );
    let stderr_and_pages: String = logs
        .iter()
        .filter(|l| l["level"] == "WARN")
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        stderr_and_pages.contains("kubectl rollout undo deployment/search --to-revision=1 -n shop"),
        "search is paged with the command filled in:\n{stderr_and_pages}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hangup_drains_like_sigterm_and_journals_the_verification_it_cut_short() {
    if !have("kubectl") {
        return;
    }
    let c = start(bad_deploy_at(1)).await;
    let config = c.dir().join("backout.toml");
    let config = config.to_str().unwrap();
    let mut watch = c.spawn_backout(&[
        "watch",
        "--auto-rollback",
        "--grace",
        "1s",
        "--config",
        config,
    ]);
    wait_for(
        "checkout's rollback",
        Duration::from_secs(120),
        async || c.revision("checkout").await == "3",
    )
    .await;
    // Verification holds recovery for a minute: the hangup lands inside it.
    let status = stop_with(&mut watch, "HUP").await;
    assert_eq!(status.code(), Some(0), "drained, not killed by the signal");
    let journal = c.journal();
    let abandoned = journal
        .lines()
        .find(|l| l.contains(r#""kind":"verification""#) && l.contains("verification abandoned"));
    assert!(
        abandoned.is_some_and(|l| l.contains("SIGHUP")),
        "the cut-short verification is journaled with its cause:\n{journal}"
    );
}
