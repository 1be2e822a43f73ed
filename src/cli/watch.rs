//! `backout watch`: evaluates every watched service for as long as it runs, in a
//! terminal or in the cluster under a service account (assets/deploy/). It rolls back
//! on an auto_rollback decision only when auto-rollback is enabled explicitly;
//! otherwise it pages with the command filled in. Logs are the journal's records, as
//! text or JSON lines on stdout.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::signal::unix::{signal, SignalKind};

use super::ClusterArgs;
use crate::app::core::Core;
use crate::engine::Msg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Execute auto_rollback decisions (also `auto_rollback = true` under [policy]).
    #[arg(long)]
    pub auto_rollback: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// On SIGTERM, how long a rollback under way may take to finish; keep it under the
    /// pod's terminationGracePeriodSeconds.
    #[arg(long, default_value = "25s", value_parser = super::bounded_duration)]
    pub grace: Duration,
}

pub async fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.cluster.config()?;
    config.policy.auto_rollback |= args.auto_rollback;
    let auto = config.policy.auto_rollback;
    let journal = crate::actions::journal::default_path();
    let mut core = Core::start(config, args.cluster.core_options(Some(journal.clone()))).await?;
    tracing::info!(
        context = %core.target.context,
        namespace = %core.target.namespace,
        actor = %core.actor,
        auto_rollback = auto,
        journal = %journal.display(),
        read_only = core.state.read_only.as_deref().unwrap_or(""),
        "watching"
    );
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    // A watcher started from a shell that then hung up drains like any other stop.
    let mut hangup = signal(SignalKind::hangup())?;
    let why = loop {
        tokio::select! {
            alive = core.step() => {
                if !alive {
                    anyhow::bail!("every source stopped");
                }
            }
            _ = term.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = hangup.recv() => break "SIGHUP",
        }
    };
    drain(&mut core, args.grace, why).await;
    // The runner finishes the journal lines and Lease releases it was handed.
    core.shutdown(Duration::from_secs(5)).await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Orders nothing new, and lets a rollback under way finish within `grace`. A rollback
/// is one atomic patch, so one cut short is either done or not started; only its
/// verification can be abandoned, and that is logged.
async fn drain(core: &mut Core, grace: Duration, signal: &str) {
    let busy = |core: &Core| {
        core.state
            .services
            .iter()
            .filter(|(_, s)| s.rollback_in_flight())
            .map(|(k, s)| (k.clone(), s.rollback.as_ref().is_some_and(|r| r.committed)))
            .collect::<Vec<_>>()
    };
    core.apply(Msg::Drain).await;
    let in_flight: Vec<String> = busy(core).iter().map(|(k, _)| k.to_string()).collect();
    if !in_flight.is_empty() {
        tracing::warn!(services = ?in_flight, grace = %humantime::format_duration(grace), "shutting down: waiting for the rollback under way");
    }
    let until = tokio::time::Instant::now() + grace;
    // One step at least, so the drain and the last journal writes are applied.
    loop {
        let _ = tokio::time::timeout_at(until, core.step()).await;
        if busy(core).is_empty() || tokio::time::Instant::now() >= until {
            break;
        }
    }
    for (service, committed) in busy(core) {
        if committed {
            tracing::warn!(%service, "shut down during verification: the rollback is done, its verification was abandoned; check `backout status`");
            // Journaled too, so the handoff says the verification never ended, and why.
            let why = format!(
                "backout watch stopped ({signal}) after --grace {}",
                humantime::format_duration(grace)
            );
            core.apply(Msg::Abandon { service, why }).await;
        } else {
            tracing::warn!(%service, "shut down before the rollback reported its patch: being one atomic patch, it is wholly done or not at all; check `backout history`");
        }
    }
}
