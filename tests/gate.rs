//! `backout gate` as a pipeline runs it, right after `kubectl set image`: a healthy
//! deploy is accepted, a bad one rolled back, and a Prometheus that stops answering
//! mid-observation makes it say it cannot decide, without rolling back.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backout_sim::scenario::Scenario;
use backout_sim::tls::Pki;
use backout_sim::SimOptions;
use common::{free_port, have, instant, start, start_in, Cluster, RealPrometheus};
use serde_json::Value;

/// The scenario's services with its timeline dropped: the test deploys, as CI would.
fn quiet(name: &str) -> Scenario {
    let mut s = Scenario::load(name).unwrap();
    s.timeline.clear();
    s
}

/// backout.toml with `edit` applied, written beside the original.
fn config(c: &Cluster, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(c.dir().join("backout.toml")).unwrap();
    let path = c.dir().join("gate.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path.display().to_string()
}

fn shorter_verification(text: String) -> String {
    text.replace("[policy]\n", "[policy]\nverification_window = \"60s\"\n")
}

async fn deploy(c: &Cluster, image: &str) {
    c.kubectl_ok(&[
        "set",
        "image",
        "deploy/checkout",
        &format!("checkout={image}"),
    ])
    .await;
}

async fn gate(c: &Cluster, config: &str, observe: &str) -> (i32, Value) {
    gate_with(c, "checkout", config, observe, &[]).await
}

async fn gate_with(
    c: &Cluster,
    deployment: &str,
    config: &str,
    observe: &str,
    extra: &[&str],
) -> (i32, Value) {
    let mut args = vec![
        "gate",
        deployment,
        "--config",
        config,
        "--observe",
        observe,
        "--json",
    ];
    args.extend(extra);
    let out = c.backout(&args, &[]).await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "gate prints one JSON report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_deploy_is_accepted_with_exit_0() {
    if !have("kubectl") {
        return;
    }
    let c = start(quiet("healthy-deploy")).await;
    deploy(&c, "registry.local/shop/checkout:1.4.2").await;
    let (code, report) = gate(&c, &config(&c, shorter_verification), "15s").await;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "accepted");
    assert!(report["rollout"]
        .as_str()
        .unwrap()
        .contains("successfully rolled out"));
    assert!(
        report["observed_seconds"].as_u64().unwrap() >= 14,
        "it observed: {report:#}"
    );
    assert_eq!(c.revision("checkout").await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_deploy_is_rolled_back_with_exit_1_and_the_report_names_the_trigger() {
    if !have("kubectl") {
        return;
    }
    let c = start(quiet("bad-deploy")).await;
    deploy(&c, "registry.local/shop/checkout:1.4.1").await;
    let (code, report) = gate(&c, &config(&c, shorter_verification), "90s").await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["verdict"], "rolled_back");
    assert_eq!(report["rollback"]["to_revision"], 1);
    assert_eq!(
        c.revision("checkout").await,
        "3",
        "revision 1 came back as revision 3"
    );
    assert_eq!(
        c.image("checkout").await,
        "registry.local/shop/checkout:1.4.0"
    );

    let incident = report["incident"].as_str().expect("an incident id");
    let handoff = c.backout(&["report", incident], &[]).await;
    let text = String::from_utf8_lossy(&handoff.stdout);
    assert!(
        handoff.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&handoff.stderr)
    );
    assert!(
        text.contains("error-rate"),
        "the report names the trigger:\n{text}"
    );
    assert!(
        text.contains("checkout:1.4.1") && text.contains("checkout:1.4.0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_deployment_cannot_be_decided_and_says_so() {
    if !have("kubectl") {
        return;
    }
    let c = start(quiet("healthy-deploy")).await;
    let config = config(&c, shorter_verification);
    let (code, report) = gate_with(&c, "chekout", &config, "10s", &[]).await;
    assert_eq!(code, 2, "{report:#}");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("shop/chekout was not found"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_rolls_back_on_latency_alone_which_is_never_automatic() {
    if !have("kubectl") {
        return;
    }
    let c = start(quiet("latency-only")).await;
    c.kubectl_ok(&[
        "set",
        "image",
        "deploy/search",
        "search=registry.local/shop/search:3.2.0",
    ])
    .await;
    let config = config(&c, shorter_verification);
    let (code, report) = gate_with(&c, "search", &config, "90s", &["--strict"]).await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        report["decision"]["action"], "suggest",
        "not automatic by itself"
    );
    assert!(
        report["failed_gates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["number"] == 4),
        "gate 4 (latency alone) failed: {report:#}"
    );
    assert_eq!(c.revision("search").await, "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stopping_mid_observation_exits_2_without_a_rollback() {
    if !have("kubectl") || !have("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(Pki::generate([127, 0, 0, 1].into()).unwrap());
    std::fs::write(dir.path().join("ca.crt"), &pki.ca_pem).unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut prom = RealPrometheus::start(dir.path(), listen).await;
    let c = start_in(
        dir,
        quiet("bad-deploy"),
        SimOptions {
            listen,
            pki: Some(pki),
            ..SimOptions::default()
        },
    )
    .await;
    // The gate starts with real data: wait until Prometheus has recorded checkout's ratio.
    let http = reqwest::Client::new();
    common::eventually(
        Duration::from_secs(60),
        "recorded error ratios",
        async || {
            let now = jiff::Timestamp::now().as_second() as f64;
            instant(
                &http,
                &prom.url,
                "service:http_errors:ratio_rate1m{service=\"checkout\"}",
                now,
            )
            .await
        },
    )
    .await;
    let url = prom.url.clone();
    let path = config(&c, |text| {
        let text = text.replace("blind_after = \"30s\"", "blind_after = \"4s\"");
        let start = text.find("url = ").unwrap();
        let end = start + text[start..].find('\n').unwrap();
        let text = format!("{}url = {url:?}{}", &text[..start], &text[end..]);
        text.replace("ca_file = \"ca.crt\"\n", "")
    });
    // A deploy that would be rolled back, if backout could see it.
    deploy(&c, "registry.local/shop/checkout:1.4.1").await;
    let running = {
        let c = &c;
        let path = path.clone();
        async move { gate(c, &path, "60s").await }
    };
    let stop = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = prom.child.kill();
    };
    let ((code, report), ()) = tokio::join!(running, stop);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["verdict"], "undecided");
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("metrics blind") && reason.contains("error"),
        "{reason}"
    );
    assert!(report["rollback"].is_null());
    assert_eq!(
        c.revision("checkout").await,
        "2",
        "no rollback on missing data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_deleted_mid_observation_cannot_be_decided_and_nothing_panics() {
    if !have("kubectl") {
        return;
    }
    let c = start(quiet("healthy-deploy")).await;
    deploy(&c, "registry.local/shop/checkout:1.4.2").await;
    let path = config(&c, shorter_verification);
    let running = {
        let (c, path) = (&c, path.clone());
        async move { gate(c, &path, "20s").await }
    };
    let delete = async {
        // Long enough for the gate to list checkout and start observing it.
        tokio::time::sleep(Duration::from_secs(6)).await;
        c.kubectl_ok(&["delete", "deploy/checkout"]).await;
    };
    let ((code, report), ()) = tokio::join!(running, delete);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["verdict"], "undecided");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("cannot decide") && reason.contains("shop/checkout was deleted"),
        "{reason}"
    );
}
