//! A Deployment that a GitOps controller syncs from Git, against a real git
//! repository (a local bare one, driven by the git CLI) and the simulator's sync
//! loop: the rollback is a revert of the commit that shipped the bad image, pushed,
//! and the sync brings the old image back; a repository that cannot be reached is
//! named and nothing changes.

mod common;

use std::process::Command;
use std::time::Duration;

use backout_sim::scenario::Scenario;
use common::{eventually, have, start, Cluster};
use serde_json::Value;

fn gitops_revert() -> Scenario {
    let mut scenario = Scenario::load("gitops-revert").expect("a shipped scenario");
    for e in &mut scenario.timeline {
        e.get_mut().at = Duration::from_secs(2);
    }
    scenario
}

fn git_log(repo: &std::path::Path) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["log", "--format=%an|%s|%b", "main"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn decided(c: &Cluster, config: &str) -> Value {
    eventually(Duration::from_secs(60), "checkout's decision", async || {
        let out = c
            .backout(&["status", "--config", config, "-o", "json"], &[])
            .await;
        let report: Value = serde_json::from_slice(&out.stdout).ok()?;
        let svc = report["services"]
            .as_array()?
            .iter()
            .find(|s| s["service"]["name"] == "checkout")?
            .clone();
        (svc["decision"]["action"] == "auto_rollback").then_some(svc)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollback_is_a_pushed_revert_of_the_commit_that_shipped_the_image() {
    if !have("git") || !have("kubectl") {
        return;
    }
    let c = start(gitops_revert()).await;
    let repo = backout::cli::sim::gitops_repo_in(c.dir());
    let config = c.dir().join("backout.toml").display().to_string();
    let svc = decided(&c, &config).await;
    let blast = svc["decision"]["blast_radius"].to_string();
    assert!(
        blast.contains("the rollback is a git revert there"),
        "{blast}"
    );
    let shipped = git_log(&repo);
    assert!(shipped.starts_with("dana@ci|checkout 1.4.1"), "{shipped}");

    let out = c
        .backout(
            &[
                "rollback",
                "checkout",
                "--yes",
                "--no-verify",
                "--config",
                &config,
            ],
            &[],
        )
        .await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("&& git revert "),
        "the equivalent command: {text}"
    );
    assert!(
        text.contains("(\"checkout 1.4.1: new coupon engine\" by dana@ci) reverts cleanly on main"),
        "the dry run is git's: {text}"
    );
    let log = git_log(&repo);
    let head = log.lines().next().unwrap_or_default();
    assert!(
        head.starts_with("backout (oncall-editor@")
            && head.contains("|Revert \"checkout 1.4.1: new coupon engine\""),
        "{log}"
    );
    assert!(
        log.contains("backout: rolled back shop/checkout by"),
        "{log}"
    );
    // The simulator's sync applies the branch: the old image, as a rollback.
    eventually(
        Duration::from_secs(30),
        "the sync to apply the revert",
        async || {
            let image = c.image("checkout").await;
            (image == "registry.local/shop/checkout:1.4.0").then_some(())
        },
    )
    .await;
    assert_eq!(c.revision("checkout").await, "3");
    c.sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_that_cannot_be_cloned_is_named_and_nothing_changes() {
    if !have("git") || !have("kubectl") {
        return;
    }
    let c = start(gitops_revert()).await;
    let written = std::fs::read_to_string(c.dir().join("backout.toml")).unwrap();
    let repo = backout::cli::sim::gitops_repo_in(c.dir());
    let broken = written.replace(
        &format!("repo = {:?}", repo.display().to_string()),
        "repo = \"/nonexistent/deploy.git\"",
    );
    assert_ne!(broken, written, "the config names the repository");
    let config = c.dir().join("broken.toml");
    std::fs::write(&config, broken).unwrap();
    let config = config.display().to_string();
    decided(&c, &config).await;
    let out = c
        .backout(&["rollback", "checkout", "--yes", "--config", &config], &[])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cloning /nonexistent/deploy.git"),
        "{stderr}"
    );
    assert_eq!(
        c.image("checkout").await,
        "registry.local/shop/checkout:1.4.1",
        "nothing was rolled back"
    );
    assert!(git_log(&repo).starts_with("dana@ci|"), "nothing was pushed");
    c.sim.stop().await;
}
