//! `backout demo`: the console against a built-in simulated cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::app::core::{Core, Options};
use crate::config::Config;
use crate::ui::state::{Mode, UiState};
use backout_sim::scenario::Scenario;
use backout_sim::{Sim, SimOptions};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The incident to play: a shipped scenario name or a scenario file.
    #[arg(long, default_value = "bad-deploy")]
    pub scenario: String,
    /// Also write the demo cluster's kubeconfig and backout.toml here, for kubectl in a second terminal.
    #[arg(long, value_name = "DIR")]
    pub write_config: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let scenario = Scenario::load(&args.scenario)?;
    let keep = args.write_config.is_some();
    let dir = match &args.write_config {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("backout-demo-{}", std::process::id())),
    };
    let sim = Sim::start(SimOptions {
        scenario: Some(scenario.clone()),
        seed: args.seed,
        gitops_repo: Some(super::sim::gitops_repo_in(&dir)),
        ..SimOptions::default()
    })
    .await?;
    super::sim::write_config(&dir, &sim.url(), &sim.ca_pem, &scenario)?;
    let config_path = dir.join("backout.toml");
    let config = Config::parse(&config_path, &std::fs::read_to_string(&config_path)?)?;
    let opts = Options {
        kubeconfig: Some(dir.join("kubeconfig")),
        journal: Some(dir.join("journal.jsonl")),
        ..Options::default()
    };
    let core = Core::start(config, opts).await?;
    let ui = UiState::new(Mode::Demo, core.target.context.clone(), sim.url());
    let result = crate::app::console::run(core, ui).await;
    sim.stop().await;
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result.map(|_| ExitCode::SUCCESS)
}
