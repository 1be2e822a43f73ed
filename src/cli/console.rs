//! `backout` alone: the console on the current kubeconfig context, as k9s opens.

use std::process::ExitCode;

use clap::Args;

use super::ClusterArgs;
use crate::app::core::Core;
use crate::ui::state::{Mode, UiState};

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Watch every namespace (as kubectl's -A), whatever backout.toml's [[watch]] says.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

pub async fn run(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    let config = args.cluster.config()?;
    let journal = crate::actions::journal::default_path();
    let mut opts = args.cluster.core_options(Some(journal));
    opts.read_only = args.cluster.read_only;
    opts.all_namespaces = args.all_namespaces;
    let core = match Core::start(config, opts).await {
        Ok(core) => core,
        Err(e) => {
            // The "no cluster" error already points to `backout demo`.
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let ui = UiState::new(
        Mode::Live,
        core.target.context.clone(),
        core.target.cluster_url.clone(),
    );
    crate::app::console::run(core, ui).await?;
    Ok(ExitCode::SUCCESS)
}
