//! Cluster signals need no metrics: with Prometheus configured but unreachable and the
//! default 10-minute progress deadline, a crash loop is caught from the pods' own
//! restarts, and the gate rolls it back; a failing deploy with nothing to roll back to
//! makes the gate exit 2, never 0.

mod common;

use backout_sim::scenario::Scenario;
use common::{have, start, Cluster};

/// One service, no progress deadline of its own (the default 10 minutes), and an image
/// that crashes.
fn scenario() -> Scenario {
    let text = r#"name = "crash"
description = "one service and a crashing image"
namespace = "shop"
pod_start_delay = "150ms"

[[service]]
name = "web"
image = "web:1"
replicas = 2
rps = 30
change_cause = "web 1"

[images."web:crash"]
crash = true
"#;
    Scenario::parse("crash.toml", text).expect("the test scenario parses")
}

/// The simulator's config with Prometheus pointed at a port nobody listens on, the
/// restarts trigger's for-duration short enough for a test, and `watched` watched.
async fn cluster(watched: &str) -> Option<Cluster> {
    if !have("kubectl") {
        return None;
    }
    let c = start(scenario()).await;
    let written = std::fs::read_to_string(c.dir().join("backout.toml")).unwrap();
    let url = written
        .lines()
        .find_map(|l| l.strip_prefix("url = "))
        .expect("the written config names Prometheus")
        .to_string();
    let config = written
        .replace(&url, "\"https://127.0.0.1:9\"")
        .replace("deployments = [\"web\"]", watched)
        + "\n[[trigger]]\nname = \"pod-restarts\"\nfor = \"4s\"\n";
    std::fs::write(c.dir().join("blind.toml"), config).unwrap();
    Some(c)
}

/// The exit code, and the JSON report (or, when there is none, the output).
async fn gate(c: &Cluster, deployment: &str, extra: &[&str]) -> (Option<i32>, String) {
    let config = c.dir().join("blind.toml");
    let args = [
        &[
            "gate",
            deployment,
            "--json",
            "--config",
            config.to_str().unwrap(),
        ][..],
        extra,
    ]
    .concat();
    let out = c.backout(&args, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let text = match serde_json::from_str::<serde_json::Value>(&stdout) {
        Ok(_) => stdout,
        Err(_) => stdout + &String::from_utf8_lossy(&out.stderr),
    };
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_is_rolled_back_from_restarts_while_prometheus_is_unreachable() {
    let Some(c) = cluster("deployments = [\"web\"]").await else {
        return;
    };
    c.kubectl_ok(&["set", "image", "deploy/web", "web=web:crash"])
        .await;
    let (code, report) = gate(&c, "web", &["--observe", "60s"]).await;
    assert_eq!(code, Some(1), "rolled back: {report}");
    let report: serde_json::Value =
        serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {report}"));
    let firing: Vec<&str> = report["decision"]["firing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["trigger"].as_str())
        .collect();
    assert!(firing.contains(&"pod-restarts"), "{report}");
    assert_eq!(c.image("web").await, "web:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_deploy_with_nothing_to_roll_back_to_is_undecided_not_accepted() {
    let Some(c) = cluster("deployments = [\"web\", \"solo\"]").await else {
        return;
    };
    let labels = serde_json::json!({"app": "solo"});
    let solo = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "solo", "namespace": "shop"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "solo", "image": "web:crash"}]}}}});
    let file = c.dir().join("solo.json");
    std::fs::write(&file, solo.to_string()).unwrap();
    c.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]).await;
    let (code, report) = gate(
        &c,
        "solo",
        &["--observe", "30s", "--rollout-deadline", "20s"],
    )
    .await;
    assert_eq!(code, Some(2), "{report}");
    assert!(report.contains("nothing to roll back to"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_deleted_during_the_gate_is_undecided_not_a_panic() {
    use tokio::io::AsyncBufReadExt;
    let Some(c) = cluster("deployments = [\"web\"]").await else {
        return;
    };
    // The simulator's own Prometheus: blindness must not end the gate first.
    let config = c.dir().join("backout.toml");
    let mut gate = tokio::process::Command::new(env!("CARGO_BIN_EXE_backout"))
        .args(["gate", "web", "--observe", "60s", "--config"])
        .arg(&config)
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .env("BACKOUT_JOURNAL", c.journal_path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(gate.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Deleted once the gate is watching, not before it has found the Deployment.
    while let Some(line) = lines.next_line().await.unwrap() {
        let observing = line.starts_with("observing the triggers");
        seen.push(line);
        if observing {
            break;
        }
    }
    c.kubectl_ok(&["delete", "deploy/web"]).await;
    while let Some(line) = lines.next_line().await.unwrap() {
        seen.push(line);
    }
    let status = gate.wait().await.unwrap();
    let stdout = seen.join("\n");
    assert_eq!(status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("was deleted"), "{stdout}");
}
