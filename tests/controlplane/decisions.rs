//! Decisions judged on the real control plane: the simulator's workload half runs
//! the scenario's pods as the narrow kubelet identity of
//! assets/deploy/sim-kubelet.yaml and serves their traffic to a real Prometheus
//! that loads assets/prometheus/backout-rules.yml; backout reads only those two.

use std::path::PathBuf;
use std::time::Duration;

use backout_sim::scenario::Scenario;
use backout_sim::workload::metrics::{Exporter, SharedTraffic};
use backout_sim::workload::{self, Kubelet};
use serde_json::Value;

use super::common::{bad_and_slow, eventually, instant, stop_with, wait_for, RealPrometheus};
use super::harness::ControlPlane;
use super::{revision_of, shipped_rbac, text};

/// The workload half and a Prometheus scraping it on one control plane, with a
/// backout.toml that points at that Prometheus. Everything stops when dropped.
pub(super) struct Incident {
    config: PathBuf,
    traffic: SharedTraffic,
    scenario: Scenario,
    kubelet: tokio::task::JoinHandle<anyhow::Result<()>>,
    exporter: tokio::task::JoinHandle<anyhow::Result<()>>,
    prometheus: RealPrometheus,
}

impl Drop for Incident {
    fn drop(&mut self) {
        self.kubelet.abort();
        self.exporter.abort();
    }
}

impl Incident {
    /// Seeds `scenario` (its timeline not yet played), runs its pods until every
    /// Deployment has rolled out, and waits until Prometheus has recorded each
    /// Service's request rate: the baseline a deploy is judged against.
    pub(super) async fn start(cp: &ControlPlane, scenario: Scenario) -> Incident {
        let as_kubelet = cp.sim_kubelet().await;
        let kubelet_client = cp.client_as(&as_kubelet).await;
        let admin = cp.client_as(&cp.kubeconfig()).await;
        workload::scenario::seed(&admin, &scenario).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = listener.local_addr().unwrap();
        let exporter = Exporter::new(kubelet_client.clone(), &scenario, 1);
        let traffic = exporter.traffic();
        let kubelet = Kubelet::new(kubelet_client, "backout-sim-node", &scenario);
        let (kubelet, exporter) = (
            tokio::spawn(kubelet.run()),
            tokio::spawn(exporter.run(listener)),
        );
        let prometheus = RealPrometheus::start_http(cp.dir.path(), metrics).await;
        for svc in &scenario.services {
            if svc.canary_steps.is_some() {
                // An Argo Rollout: its own controller says when it is Healthy.
                let rollout = format!("rollouts.argoproj.io/{}", svc.name);
                let started = std::time::Instant::now();
                while cp.jsonpath(&rollout, "{.status.phase}").await != "Healthy" {
                    assert!(
                        started.elapsed() < Duration::from_secs(90),
                        "{rollout} not Healthy in 90 s: {}\nthe controller said:\n{}",
                        cp.kubectl_ok(&["get", &rollout, "-o", "yaml"]).await,
                        cp.log("rollouts-controller")
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                continue;
            }
            let deployment = format!("deploy/{}", svc.name);
            let done = cp
                .kubectl(&["rollout", "status", &deployment, "--timeout=90s"])
                .await;
            assert!(
                done.status.success(),
                "{}; the kubelet: {kubelet:?}",
                text(&done)
            );
        }
        let http = reqwest::Client::new();
        for svc in &scenario.services {
            let query = format!("service:http_requests:rate1m{{service=\"{}\"}}", svc.name);
            eventually(
                Duration::from_secs(60),
                "Prometheus to record the request rate",
                async || {
                    let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
                    let rate = instant(&http, &prometheus.url, &query, now).await?;
                    (rate > 0.0).then_some(())
                },
            )
            .await;
        }
        let config = cp.dir.path().join("backout.toml");
        let toml = backout::cli::sim::backout_toml(&prometheus.url, None, &scenario);
        std::fs::write(&config, toml).unwrap();
        Incident {
            config,
            traffic,
            scenario,
            kubelet,
            exporter,
            prometheus,
        }
    }

    /// Plays the scenario's timeline from now, as its admin would deploy.
    pub(super) async fn play(
        &self,
        cp: &ControlPlane,
    ) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let admin = cp.client_as(&cp.kubeconfig()).await;
        let (scenario, traffic) = (self.scenario.clone(), self.traffic.clone());
        tokio::spawn(async move { workload::scenario::play(&admin, &scenario, &traffic).await })
    }

    pub(super) fn config(&self) -> &str {
        self.config.to_str().unwrap()
    }

    /// The workload half is still up: a failure of its own explains a failed wait.
    pub(super) fn assert_running(&self) {
        assert!(
            !self.kubelet.is_finished() && !self.exporter.is_finished(),
            "the workload half stopped: kubelet {:?}, exporter {:?}; Prometheus at {}",
            self.kubelet,
            self.exporter,
            self.prometheus.url
        );
    }
}

pub(super) fn journal(cp: &ControlPlane) -> Vec<Value> {
    let text = std::fs::read_to_string(cp.journal_path()).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a journal record"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_service_account_rolls_back_bad_deploy_once_and_only_suggests_latency_only() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    let incident = Incident::start(&cp, bad_and_slow(Duration::from_secs(3))).await;
    let sa = shipped_rbac(&cp).await;
    let mut watch = cp.spawn_backout_as(
        &sa,
        &[
            "watch",
            "--auto-rollback",
            "--log-format",
            "json",
            "--config",
            incident.config(),
        ],
    );
    let play = incident.play(&cp).await;

    wait_for(
        "checkout's rollback",
        Duration::from_secs(180),
        async || revision_of(&cp, "checkout").await == "3",
    )
    .await;
    assert_eq!(
        cp.jsonpath(
            "deploy/checkout",
            "{.spec.template.spec.containers[0].image}"
        )
        .await,
        "registry.local/shop/checkout:1.4.0"
    );
    let suggested = |r: &Value| {
        r["service"] == "shop/search" && r["kind"] == "decision" && r["action"] == "suggest"
    };
    wait_for(
        "search's suggestion",
        Duration::from_secs(120),
        async || journal(&cp).iter().any(suggested),
    )
    .await;
    incident.assert_running();
    assert!(!play.is_finished() || play.await.unwrap().is_ok());

    let status = stop_with(&mut watch, "TERM").await;
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        revision_of(&cp, "search").await,
        "2",
        "latency alone is never automatic"
    );

    let records = journal(&cp);
    let rollbacks: Vec<&Value> = records.iter().filter(|r| r["kind"] == "rollback").collect();
    assert_eq!(rollbacks.len(), 1, "exactly one rollback: {rollbacks:#?}");
    let rollback = rollbacks[0];
    assert_eq!(rollback["service"], "shop/checkout");
    assert_eq!(rollback["automatic"], true);
    assert_eq!(
        (&rollback["from_revision"], &rollback["to_revision"]),
        (&Value::from(2), &Value::from(1))
    );
    assert!(
        rollback["by"]
            .as_str()
            .is_some_and(|by| by.contains("system:serviceaccount:backout:backout")),
        "the real server named the shipped account: {rollback}"
    );
    let suggestion = records.iter().find(|r| suggested(r)).unwrap();
    assert!(
        suggestion["why_not_automatic"]
            .as_array()
            .is_some_and(|why| why.iter().any(|w| w.as_str().unwrap().contains("latency"))),
        "the suggestion says why it is not automatic: {suggestion}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_accepts_healthy_deploy_with_0_and_rolls_back_bad_deploy_with_1() {
    let Some(cp) = ControlPlane::start().await else {
        return;
    };
    // bad-deploy's services with no timeline: the pipeline deploys, then gates.
    let mut scenario = Scenario::load("bad-deploy").unwrap();
    scenario.timeline.clear();
    let incident = Incident::start(&cp, scenario).await;
    let config = std::fs::read_to_string(&incident.config).unwrap();
    let gate_config = cp.dir.path().join("gate.toml");
    std::fs::write(
        &gate_config,
        config.replace("[policy]\n", "[policy]\nverification_window = \"60s\"\n"),
    )
    .unwrap();
    let gate_config = gate_config.to_str().unwrap();
    let image_of = |name: &str| {
        let s = Scenario::load(name).unwrap();
        let deploy = s.actions().into_iter().find_map(|(_, a)| match a {
            backout_sim::scenario::Action::Deploy(d) => Some(d.image),
            _ => None,
        });
        deploy.expect("the scenario deploys")
    };
    // As a pipeline does: deploy, then gate the deploy.
    let deploy_then_gate = async |image: &str, observe: &str| {
        cp.kubectl_ok(&[
            "set",
            "image",
            "deploy/checkout",
            &format!("checkout={image}"),
        ])
        .await;
        let out = cp
            .backout(&[
                "gate",
                "checkout",
                "-n",
                "shop",
                "--config",
                gate_config,
                "--observe",
                observe,
                "--json",
            ])
            .await;
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("one JSON report ({e}): {}", text(&out)));
        (out.status.code(), report)
    };

    let healthy = image_of("healthy-deploy");
    let (code, report) = deploy_then_gate(&healthy, "15s").await;
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["verdict"], "accepted");
    assert_eq!(revision_of(&cp, "checkout").await, "2");

    let bad = image_of("bad-deploy");
    let (code, report) = deploy_then_gate(&bad, "90s").await;
    incident.assert_running();
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["verdict"], "rolled_back");
    assert_eq!(report["rollback"]["to_revision"], 2);
    assert_eq!(revision_of(&cp, "checkout").await, "4");
    assert_eq!(
        cp.jsonpath(
            "deploy/checkout",
            "{.spec.template.spec.containers[0].image}"
        )
        .await,
        healthy,
        "the healthy deploy is back, not the older 1.4.0"
    );
}
