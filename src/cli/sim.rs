//! `backout sim`: a simulated cluster in the foreground until interrupted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use serde_json::json;

use backout_sim::api::auth::{EDITOR_TOKEN, OUTSIDER_TOKEN, VIEWER_TOKEN};
use backout_sim::scenario::Scenario;
use backout_sim::{Sim, SimOptions};

/// The fault switchboard, as `backout sim --help` shows it.
const FAULTS_HELP: &str = "\
Fault switchboard (drills and tests): turn faults on and off while a scenario runs.
  GET  /sim/faults           the faults in force
  PUT  /sim/faults           replace them all with a JSON body; {} turns every fault off
  or in a scenario file:     [[event]]
                             at = \"30s\"
                             faults = { metrics = { down = true } }

  kube.error_500 = true                  every API request answers 500
  kube.throttle_retry_after = SECONDS    every API request answers 429 with Retry-After
  kube.latency = \"2s\"                    added before every API answer
  kube.cut_watches_every = \"3s\"          open watch streams are ended this often
  kube.gone_storm = true                 every watch resumes into 410 Gone and relists
  kube.conflict_next_patch = true        the next Deployment PATCH answers 409
  kube.fail_next_patch = STATUS          the next Deployment PATCH answers STATUS (400-599)
  kube.lose_next_patch_answer = true     the next Deployment PATCH lands; a 504 comes back
  metrics.down = true                    the metrics API answers 503 in plain text
  metrics.latency = \"10s\"                added before every metrics answer
  metrics.status = 400 | 500             every query answers that status
  metrics.garbage = true                 every query answers 200 with a body that is not JSON
  metrics.value = \"NaN\" | \"+Inf\" | \"-Inf\"  every sample has that value
  metrics.duplicate_series = true        every query answers its first series twice

Example (the simulator's CA is in the kubeconfig that --write-config writes):
  curl -k -X PUT https://127.0.0.1:6443/sim/faults -d '{\"metrics\":{\"down\":true}}'";

#[derive(Debug, Args)]
#[command(after_long_help = FAULTS_HELP)]
pub struct SimArgs {
    /// Address to serve the Kubernetes and Prometheus APIs on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// A shipped scenario name (bad-deploy, crashloop, ...) or a path to a scenario TOML file.
    #[arg(long, default_value = "bad-deploy")]
    pub scenario: String,
    /// Seed for the simulated traffic noise.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write DIR/kubeconfig and DIR/backout.toml for this cluster.
    #[arg(long, value_name = "DIR")]
    pub write_config: Option<PathBuf>,
    /// Run only the workload half against the API server of this kubeconfig: the
    /// scenario's objects, a node and a kubelet that runs their pods, their traffic
    /// metrics (see --metrics-listen), and the scenario's timeline at its times.
    #[arg(long, value_name = "KUBECONFIG", conflicts_with_all = ["write_config"])]
    pub against: Option<PathBuf>,
    /// With --against: serve the pods' traffic at http://ADDR/metrics, for a
    /// Prometheus that loads assets/prometheus/backout-rules.yml.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9464",
        requires = "against"
    )]
    pub metrics_listen: SocketAddr,
    /// With --against: run the node and kubelet as this kubeconfig's user (for
    /// example the ServiceAccount of assets/deploy/sim-kubelet.yaml), not as the
    /// one that creates the scenario's objects and deploys.
    #[arg(long, value_name = "KUBECONFIG", requires = "against")]
    pub kubelet_kubeconfig: Option<PathBuf>,
}

pub async fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let scenario = Scenario::load(&args.scenario)?;
    if let Some(kubeconfig) = &args.against {
        return against(kubeconfig, &args, &scenario).await;
    }
    let repo_dir = args.write_config.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("backout-sim-{}", std::process::id()))
    });
    let sim = Sim::start(SimOptions {
        listen: args.listen,
        scenario: Some(scenario.clone()),
        seed: args.seed,
        gitops_repo: Some(gitops_repo_in(&repo_dir)),
        ..SimOptions::default()
    })
    .await?;
    println!(
        "simulated cluster for scenario {:?} at {}",
        scenario.name,
        sim.url()
    );
    println!("  {}", scenario.description);
    if let Some(dir) = &args.write_config {
        write_config(dir, &sim.url(), &sim.ca_pem, &scenario)?;
        println!("  wrote {0}/kubeconfig and {0}/backout.toml", dir.display());
        println!(
            "  try: KUBECONFIG={}/kubeconfig kubectl get deploy",
            dir.display()
        );
    }
    println!(
        "  faults: GET/PUT {}/sim/faults (see `backout sim --help`)",
        sim.url()
    );
    println!("press Ctrl-C to stop");
    wait_for_stop().await;
    sim.stop().await;
    if args.write_config.is_none() {
        // Only a GitOps scenario made it: its repository, in a directory of its own.
        let _ = std::fs::remove_dir_all(&repo_dir);
    }
    Ok(ExitCode::SUCCESS)
}

/// The workload half on another API server, until interrupted.
async fn against(
    kubeconfig: &Path,
    args: &SimArgs,
    scenario: &Scenario,
) -> anyhow::Result<ExitCode> {
    use backout_sim::workload::{self, metrics::Exporter, Kubelet};
    let target = crate::sources::kube::connect(Some(kubeconfig), None, None).await?;
    let kubelet_client = match &args.kubelet_kubeconfig {
        Some(path) => {
            crate::sources::kube::connect(Some(path), None, None)
                .await?
                .client
        }
        None => target.client.clone(),
    };
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| {
            format!(
                "cannot serve metrics on --metrics-listen {}: choose a free address",
                args.metrics_listen
            )
        })?;
    workload::scenario::seed(&target.client, scenario).await?;
    let kubelet = Kubelet::new(kubelet_client.clone(), "backout-sim-node", scenario);
    let exporter = Exporter::new(kubelet_client, scenario, args.seed);
    let traffic = exporter.traffic();
    println!(
        "scenario {:?} on {} ({}), with node backout-sim-node",
        scenario.name, target.cluster_url, target.context
    );
    println!(
        "  traffic metrics at http://{}/metrics (load assets/prometheus/backout-rules.yml beside them)",
        args.metrics_listen
    );
    println!("press Ctrl-C to stop");
    tokio::select! {
        ran = kubelet.run() => ran?,
        served = exporter.run(listener) => served?,
        played = workload::scenario::play(&target.client, scenario, &traffic) => played?,
        _ = wait_for_stop() => {}
    }
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { if let Some(s) = term.as_mut() { s.recv().await; } else { std::future::pending::<()>().await } } => {}
        _ = async { if let Some(s) = hup.as_mut() { s.recv().await; } else { std::future::pending::<()>().await } } => {}
    }
}

/// The built-in triggers with for-durations to suit a one-minute incident.
const SCALED_TRIGGERS: &str = "[[trigger]]\nname = \"error-rate\"\nfor = \"6s\"\n\n\
[[trigger]]\nname = \"crash-loop\"\nfor = \"4s\"\n\n\
[[trigger]]\nname = \"p99-latency\"\nfor = \"6s\"\n\n\
[[trigger]]\nname = \"slo-burn\"\nfor = \"6s\"\n";

/// A kubeconfig with an editor and a viewer context (JSON is valid kubeconfig YAML),
/// and a backout.toml pointing at the simulator's Prometheus API.
pub fn write_config(
    dir: &Path,
    url: &str,
    ca_pem: &str,
    scenario: &Scenario,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ns = &scenario.namespace;
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "backout-sim", "cluster": {"server": url, "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca_pem)}}],
        "users": [
            {"name": "oncall-editor", "user": {"token": EDITOR_TOKEN}},
            {"name": "oncall-viewer", "user": {"token": VIEWER_TOKEN}},
            {"name": "outsider", "user": {"token": OUTSIDER_TOKEN}},
        ],
        "contexts": [
            {"name": "backout-sim", "context": {"cluster": "backout-sim", "user": "oncall-editor", "namespace": ns}},
            {"name": "backout-sim-viewer", "context": {"cluster": "backout-sim", "user": "oncall-viewer", "namespace": ns}},
            {"name": "backout-sim-outsider", "context": {"cluster": "backout-sim", "user": "outsider", "namespace": ns}},
        ],
        "current-context": "backout-sim",
    });
    let ca_path = dir.join("ca.crt");
    std::fs::write(&ca_path, ca_pem)
        .with_context(|| format!("cannot write {}", ca_path.display()))?;
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_json::to_string_pretty(&kubeconfig)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut toml = backout_toml(url, Some("ca.crt"), scenario);
    toml.push_str(&gitops_toml(dir, scenario));
    toml.push_str(&lambda_toml(url, scenario));
    toml.push_str(&flags_toml(url, scenario));
    toml.push_str(&models_toml(url, scenario));
    toml.push_str(&compose_toml(url, scenario));
    let path = dir.join("backout.toml");
    std::fs::write(&path, toml).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A `[[lambda]]` entry for each of the scenario's functions: the simulator serves
/// the Lambda API on its own port, trusting its CA, and checks no signature.
fn lambda_toml(url: &str, scenario: &Scenario) -> String {
    scenario
        .functions
        .iter()
        .map(|f| {
            format!(
                "\n[[lambda]]\nfunction = {:?}\nalias = {:?}\nnamespace = {:?}\nregion = {:?}\nendpoint = {:?}\nca_file = \"ca.crt\"\nunsigned = true\n",
                f.name,
                f.alias,
                f.namespace,
                backout_sim::lambda::REGION,
                url.trim_end_matches('/')
            )
        })
        .collect()
}

/// A `[[compose]]` entry for each of the scenario's Compose services: the simulator
/// serves the Docker Engine API on its own port, over TLS with its CA.
fn compose_toml(url: &str, scenario: &Scenario) -> String {
    scenario
        .compose
        .iter()
        .map(|c| {
            format!(
                "\n[[compose]]\nproject = {:?}\nservice = {:?}\nengine = {:?}\nca_file = \"ca.crt\"\n",
                c.project,
                c.service,
                url.trim_end_matches('/')
            )
        })
        .collect()
}

/// A `[[model]]` entry for each of the scenario's registered models: the simulator
/// serves MLflow's REST paths on its own port.
fn models_toml(url: &str, scenario: &Scenario) -> String {
    scenario
        .models
        .iter()
        .map(|m| {
            format!(
                "\n[[model]]\nname = {:?}\nalias = {:?}\nnamespace = {:?}\nurl = {:?}\nca_file = \"ca.crt\"\n",
                m.name,
                m.alias,
                m.namespace,
                url.trim_end_matches('/')
            )
        })
        .collect()
}

/// A `[[flag]]` entry for each of the scenario's flags: the simulator serves
/// Unleash's admin API paths on its own port.
fn flags_toml(url: &str, scenario: &Scenario) -> String {
    scenario
        .flags
        .iter()
        .map(|f| {
            format!(
                "\n[[flag]]\nname = {:?}\nnamespace = {:?}\ndeployment = {:?}\nurl = {:?}\nenvironment = {:?}\nca_file = \"ca.crt\"\n",
                f.name,
                scenario.namespace,
                f.service,
                url.trim_end_matches('/'),
                backout_sim::flags::ENVIRONMENT
            )
        })
        .collect()
}

/// Where the simulator keeps the GitOps repository of a scenario whose config is
/// written to `dir`.
pub fn gitops_repo_in(dir: &Path) -> PathBuf {
    dir.join("gitops.git")
}

/// A `[[gitops]]` entry for each of the scenario's GitOps services, pointing at the
/// simulator's repository in `dir`.
fn gitops_toml(dir: &Path, scenario: &Scenario) -> String {
    let repo = gitops_repo_in(dir);
    let repo = std::path::absolute(&repo).unwrap_or(repo);
    scenario
        .services
        .iter()
        .filter(|s| s.gitops.is_some())
        .map(|s| {
            format!(
                "\n[[gitops]]\nnamespace = {:?}\ndeployment = {:?}\nrepo = {:?}\nbranch = {:?}\npath = {:?}\n",
                scenario.namespace,
                s.name,
                repo.display().to_string(),
                backout_sim::gitops::BRANCH,
                backout_sim::gitops::manifest_path(&s.name)
            )
        })
        .collect()
}

/// backout.toml for `scenario` with Prometheus at `prometheus_url` (trusting
/// `ca_file`, relative to the file, when given) and time constants scaled down to
/// the simulator's one-minute incidents.
pub fn backout_toml(prometheus_url: &str, ca_file: Option<&str>, scenario: &Scenario) -> String {
    let ns = &scenario.namespace;
    let services = scenario
        .services
        .iter()
        .map(|s| format!("{:?}", s.name))
        .collect::<Vec<_>>()
        .join(", ");
    let ca = ca_file.map_or(String::new(), |f| format!("ca_file = {f:?}\n"));
    let mut toml = format!(
        "# Written by `backout sim` for scenario {name:?}.\n\
         # The simulator's incidents unfold in about a minute, so the time constants\n\
         # below are scaled down from production defaults (2m for-durations, 15s polls).\n\n\
         [prometheus]\nurl = {prometheus_url:?}\n{ca}poll_interval = \"2s\"\nlookback = \"5m\"\n\n\
         [[watch]]\nnamespace = {ns:?}\ndeployments = [{services}]\n\n\
         [policy]\nmin_requests = 20\nblind_after = \"30s\"\nblackout = \"2m\"\ncooldown = \"1m\"\nrecovery_hold = \"10s\"\n\n{SCALED_TRIGGERS}",
        name = scenario.name,
    );
    let deps: Vec<_> = scenario
        .services
        .iter()
        .filter(|s| !s.depends_on.is_empty())
        .collect();
    if !deps.is_empty() {
        toml.push_str("\n[dependencies]\n");
        for s in deps {
            let on: Vec<String> = s.depends_on.iter().map(|d| format!("{d:?}")).collect();
            toml.push_str(&format!("{:?} = [{}]\n", s.name, on.join(", ")));
        }
    }
    toml
}
