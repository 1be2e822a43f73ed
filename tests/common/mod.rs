//! Test harness: a simulator per test on its own port, the real kubectl against it,
//! and a rule for real components: skip when absent locally, fail under CI=true.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use backout_sim::scenario::Scenario;
use backout_sim::{Sim, SimOptions};

pub mod faults;

pub struct Cluster {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
}

/// A scenario with one Deployment `web` (3 replicas) and fast time constants.
/// `web:crash` crashes; any other image is healthy.
pub fn small_scenario(extra: &str) -> Scenario {
    let text = format!(
        r#"name = "small"
description = "one service with fast time constants"
namespace = "shop"
pod_start_delay = "150ms"

[[service]]
name = "web"
image = "web:1"
replicas = 3
rps = 30
progress_deadline = "3s"
change_cause = "web 1"

[images."web:crash"]
crash = true
{extra}
"#
    );
    Scenario::parse("small.toml", &text).expect("the test scenario parses")
}

/// The shipped bad-deploy scenario with its deploy moved to `secs` in: checkout
/// 1.4.1 (25% errors) ships that soon after the simulator starts.
pub fn bad_deploy_at(secs: u64) -> Scenario {
    let mut scenario = Scenario::load("bad-deploy").expect("a shipped scenario");
    for e in &mut scenario.timeline {
        e.get_mut().at = Duration::from_secs(secs);
    }
    scenario
}

pub async fn start(scenario: Scenario) -> Cluster {
    start_in(
        tempfile::tempdir().expect("a temp dir"),
        scenario,
        SimOptions::default(),
    )
    .await
}

/// Starts a simulator in `dir` with `opts`, the scenario and fast controller ticks.
pub async fn start_in(dir: tempfile::TempDir, scenario: Scenario, opts: SimOptions) -> Cluster {
    let opts = SimOptions {
        scenario: Some(scenario.clone()),
        tick: Duration::from_millis(50),
        gitops_repo: Some(backout::cli::sim::gitops_repo_in(dir.path())),
        ..opts
    };
    let sim = Sim::start(opts).await.expect("the simulator starts");
    backout::cli::sim::write_config(dir.path(), &sim.url(), &sim.ca_pem, &scenario)
        .expect("config is written");
    Cluster { sim, dir }
}

/// A shipped scenario with every event moved to `at` after the start.
pub fn shipped_at(name: &str, at: Duration) -> Scenario {
    let mut scenario = Scenario::load(name).expect("a shipped scenario");
    for e in &mut scenario.timeline {
        e.get_mut().at = at;
    }
    scenario
}

/// The config `backout sim` wrote beside the cluster.
pub fn config_of(c: &Cluster) -> String {
    c.dir().join("backout.toml").display().to_string()
}

/// One service's entry in `backout status -o json`, with `extra` arguments (null
/// when the status does not list it).
pub async fn status_of(c: &Cluster, service: &str, extra: &[&str]) -> serde_json::Value {
    let config = config_of(c);
    let mut args = vec!["status", "--config", &config, "-o", "json"];
    args.extend(extra);
    let out = c.backout(&args, &[]).await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    report["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["service"]["name"] == service)
        .cloned()
        .unwrap_or_default()
}

/// A real server a test started on loopback; killed on drop.
pub struct Served {
    pub url: String,
    child: std::process::Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` (its output discarded) and waits until GET `url` + `health` answers
/// with success.
pub async fn serve(mut cmd: Command, url: String, health: &str, within: Duration) -> Served {
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} starts: {e}"));
    let served = Served { url, child };
    let http = reqwest::Client::new();
    let probe = format!("{}{health}", served.url);
    eventually(within, &format!("{probe} to answer"), async || {
        let r = http.get(&probe).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    served
}

/// True when `tool` is on PATH. Under CI a missing tool fails the test instead.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required under CI=true but is not installed"
        );
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

impl Cluster {
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Runs the real kubectl with its own discovery cache, off the async runtime.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        let kubeconfig = self.kubeconfig();
        let cache = self.dir.path().join("kubectl-cache");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            Command::new("kubectl")
                .env("KUBECONFIG", &kubeconfig)
                .arg("--cache-dir")
                .arg(&cache)
                .args(&args)
                .output()
                .expect("kubectl runs")
        })
        .await
        .expect("the kubectl task completes")
    }

    /// Appends `entries` to the backout.toml `backout sim` wrote; returns its path.
    pub fn add_config(&self, entries: &str) -> String {
        let path = self.dir().join("backout.toml");
        let mut toml = std::fs::read_to_string(&path).expect("backout.toml");
        toml.push_str(entries);
        std::fs::write(&path, toml).expect("backout.toml is written");
        path.display().to_string()
    }

    /// Runs backout as [`Cluster::backout`] does: whether it exited 0, and what it
    /// said on stdout and stderr together.
    pub async fn backout_said(&self, args: &[&str], env: &[(&str, String)]) -> (bool, String) {
        let out = self.backout(args, env).await;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    }

    /// Runs the real backout binary against this cluster, off the async runtime, with
    /// its journal kept in the cluster's own directory.
    pub async fn backout(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        let bin = env!("CARGO_BIN_EXE_backout");
        let (kubeconfig, journal) = (self.kubeconfig(), self.journal_path());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        tokio::task::spawn_blocking(move || {
            Command::new(bin)
                .args(&args)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .env("BACKOUT_JOURNAL", journal)
                .envs(env)
                .output()
                .expect("backout runs")
        })
        .await
        .expect("the backout task completes")
    }

    /// `backout ARGS` on this cluster, running in the background until killed or
    /// dropped: a watcher, or a command to kill part-way.
    pub fn spawn_backout(&self, args: &[&str]) -> tokio::process::Child {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_backout"))
            .args(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .env("BACKOUT_JOURNAL", self.journal_path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("backout starts")
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.path().join("journal.jsonl")
    }

    /// The journal backout wrote, or empty.
    pub fn journal(&self) -> String {
        std::fs::read_to_string(self.journal_path()).unwrap_or_default()
    }

    /// `kubectl get WHAT -o jsonpath=PATH`, which must succeed.
    pub async fn jsonpath(&self, what: &str, path: &str) -> String {
        self.kubectl_ok(&["get", what, "-o", &format!("jsonpath={path}")])
            .await
    }

    /// A Deployment's revision, as its annotation says.
    pub async fn revision(&self, deployment: &str) -> String {
        self.jsonpath(
            &format!("deploy/{deployment}"),
            r"{.metadata.annotations.deployment\.kubernetes\.io/revision}",
        )
        .await
    }

    /// The image a Deployment's pod template runs.
    pub async fn image(&self, deployment: &str) -> String {
        self.jsonpath(
            &format!("deploy/{deployment}"),
            "{.spec.template.spec.containers[0].image}",
        )
        .await
    }

    /// kubectl that must succeed; returns its stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An HTTPS client that trusts the simulator's CA.
    pub fn http(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.sim.ca_pem.as_bytes()).expect("the CA parses");
        reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .expect("a client")
    }
}

/// Polls `check` until it returns Some or `timeout` passes.
/// Polls `check` every half second until it holds; fails the test after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sends `signal` (TERM, HUP, ...) to `child` and waits up to 30 s for it to exit.
pub async fn stop_with(
    child: &mut tokio::process::Child,
    signal: &str,
) -> std::process::ExitStatus {
    let pid = child.id().expect("still running").to_string();
    let sent = Command::new("kill")
        .args([format!("-{signal}"), pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap_or_else(|_| panic!("it stops on SIG{signal}"))
        .expect("its status")
}

pub async fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A real Prometheus on a free loopback port, scraping the simulator every second
/// with assets/prometheus/backout-rules.yml loaded. Killed on drop.
pub struct RealPrometheus {
    pub url: String,
    pub child: std::process::Child,
}

impl Drop for RealPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl RealPrometheus {
    /// Starts Prometheus in `dir` scraping `target` over TLS with `dir/ca.crt`;
    /// the target may come up later.
    pub async fn start(dir: &Path, target: std::net::SocketAddr) -> RealPrometheus {
        let tls = format!(
            "    scheme: https\n    tls_config:\n      ca_file: {:?}\n",
            dir.join("ca.crt").display().to_string()
        );
        Self::start_scraping(dir, target, &tls).await
    }

    /// Starts Prometheus in `dir` scraping `target` over plain HTTP, as it scrapes
    /// the workload half's exporter.
    pub async fn start_http(dir: &Path, target: std::net::SocketAddr) -> RealPrometheus {
        Self::start_scraping(dir, target, "").await
    }

    async fn start_scraping(dir: &Path, target: std::net::SocketAddr, tls: &str) -> RealPrometheus {
        let rules =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/prometheus/backout-rules.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules:?}\nscrape_configs:\n  - job_name: backout-sim\n    honor_labels: true\n{tls}    static_configs:\n      - targets: [\"{target}\"]\n",
            rules = rules.display().to_string(),
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("prometheus.yml is written");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("a log file"))
            .spawn()
            .expect("prometheus starts");
        let prom = RealPrometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let http = reqwest::Client::new();
        eventually(
            Duration::from_secs(30),
            "Prometheus to be ready",
            async || {
                let ready = http
                    .get(format!("{}/-/ready", prom.url))
                    .send()
                    .await
                    .ok()?;
                ready.status().is_success().then_some(())
            },
        )
        .await;
        // Ready is not enough: discovery hands targets to the scrape loop a few seconds
        // later. Wait for the first scrape attempt (it fails while the target is down).
        eventually(
            Duration::from_secs(30),
            "Prometheus to attempt its first scrape",
            async || {
                let targets = get_json(&http, &format!("{}/api/v1/targets", prom.url)).await?;
                let last = targets["data"]["activeTargets"][0]["lastScrape"]
                    .as_str()?
                    .to_string();
                (!last.starts_with("0001")).then_some(())
            },
        )
        .await;
        prom
    }
}

/// A JSON answer from `url`, or None while it cannot be had.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

/// The value of an instant query's single series, or None.
pub async fn instant(http: &reqwest::Client, base: &str, query: &str, at_secs: f64) -> Option<f64> {
    let body: serde_json::Value = http
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query), ("time", &at_secs.to_string())])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let result = body["data"]["result"].as_array()?;
    assert!(result.len() <= 1, "one series per service, got {result:?}");
    result.first()?["value"][1].as_str()?.parse().ok()
}

/// `web` from web:1 through the given images, each rolled out: a history to roll back in.
pub async fn web_with_history(images: &[&str]) -> Option<Cluster> {
    if !have("kubectl") {
        return None;
    }
    let c = start(small_scenario("")).await;
    for image in images {
        c.kubectl_ok(&["set", "image", "deploy/web", &format!("web={image}")])
            .await;
        c.kubectl_ok(&["rollout", "status", "deploy/web", "--timeout=30s"])
            .await;
    }
    Some(c)
}

/// A core on the cluster, as the console runs one, listed and ready for keys.
pub async fn console_core(c: &Cluster, read_only: bool) -> backout::app::core::Core {
    console_core_with(c, "backout.toml", read_only).await
}

/// A console's core with the configuration in `config`, a file in the cluster's dir.
pub async fn console_core_with(
    c: &Cluster,
    config: &str,
    read_only: bool,
) -> backout::app::core::Core {
    use backout::app::core::{Core, Options};
    let config = backout::config::Config::load(Some(&c.dir().join(config))).unwrap();
    let opts = Options {
        kubeconfig: Some(c.kubeconfig()),
        namespace: Some("shop".into()),
        journal: Some(c.journal_path()),
        read_only,
        ..Options::default()
    };
    let mut core = Core::start(config, opts).await.unwrap();
    assert!(core.run_until(Duration::from_secs(30), Core::listed).await);
    core
}

/// The dialog's dry run of `to_revision` for `service`, as the console shows it.
pub async fn previewed(
    core: &mut backout::app::core::Core,
    service: &backout::engine::ServiceKey,
    to_revision: impl Into<Option<u64>>,
) -> Result<backout::engine::rollbacks::Preview, String> {
    use backout::engine::{Msg, State};
    core.apply(Msg::PreviewRequested {
        service: service.clone(),
        to_revision: to_revision.into(),
        switch_to: None,
    })
    .await;
    let answered = |s: &State| {
        s.services[service]
            .preview
            .as_ref()
            .is_some_and(|p| p.result.is_some())
    };
    assert!(core.run_until(Duration::from_secs(20), answered).await);
    core.state.services[service]
        .preview
        .clone()
        .and_then(|p| p.result)
        .expect("answered")
}

/// Confirms the dialog's `preview` of a rollback to `to_revision` (`None`: the
/// previous one), as the engineer does: the request is pinned to what was previewed.
pub async fn confirm(
    core: &mut backout::app::core::Core,
    service: &backout::engine::ServiceKey,
    preview: &backout::engine::rollbacks::Preview,
    to_revision: Option<u64>,
    reason: &str,
) {
    use backout::engine::rollbacks::{Expected, Request};
    let request = Request {
        to_revision,
        automatic: false,
        reason: reason.into(),
        by: core.actor.clone(),
        expected: Some(Expected::of(preview)),
    };
    core.apply(backout::engine::Msg::RollbackRequested {
        service: service.clone(),
        request,
    })
    .await;
}

/// Bad-deploy's checkout (errors: every gate holds) beside latency-only's search
/// (slow only: gate 4 fails), both deploying `at` into the timeline.
pub fn bad_and_slow(at: Duration) -> Scenario {
    let mut both = Scenario::load("bad-deploy").expect("a shipped scenario");
    let slow = Scenario::load("latency-only").expect("a shipped scenario");
    both.services.extend(slow.services);
    both.images.extend(slow.images);
    both.timeline.extend(slow.timeline);
    for e in &mut both.timeline {
        e.get_mut().at = at;
    }
    both
}

/// Steps the core until the service's rollback ends; how it ended.
pub async fn rollback_ended(
    core: &mut backout::app::core::Core,
    service: &backout::engine::ServiceKey,
    limit: Duration,
) -> Result<backout::engine::msg::Outcome, String> {
    let ended = |s: &backout::engine::State| {
        s.services[service]
            .rollback
            .as_ref()
            .is_some_and(|p| p.ended.is_some())
    };
    assert!(core.run_until(limit, ended).await, "the rollback ended");
    let progress = core.state.services[service].rollback.clone().unwrap();
    progress.ended.unwrap().1
}
