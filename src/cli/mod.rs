//! The command line: one subcommand per mode, all over the same core.

pub mod completions;
pub mod console;
#[cfg(feature = "sim")]
pub mod demo;
pub mod gate;
pub mod history;
pub mod not_found;
pub mod output;
pub mod report;
pub mod rollback;
#[cfg(feature = "sim")]
pub mod sim;
pub mod status;
pub mod triggers;
pub mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::app::core::Options;
use crate::config::Config;

/// Where to look, as kubectl takes it, plus backout's own config file.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// backout.toml; else $BACKOUT_CONFIG, else $XDG_CONFIG_HOME/backout/backout.toml.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// The kubeconfig to use; else $KUBECONFIG, else ~/.kube/config.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace to watch when backout.toml names none.
    #[arg(long, short = 'n', global = true)]
    pub namespace: Option<String>,
    /// Refuse every write (rollbacks, switches), whatever RBAC allows: one check, in
    /// the effect runner, for the console, `rollback`, `gate` and `watch` alike.
    #[arg(long, global = true)]
    pub read_only: bool,
}

impl ClusterArgs {
    pub fn config(&self) -> anyhow::Result<Config> {
        Ok(Config::load(self.config.as_deref())?)
    }

    pub fn core_options(&self, journal: Option<PathBuf>) -> Options {
        Options {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            journal,
            read_only: self.read_only,
            observe_only: false,
            only: None,
            all_namespaces: false,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "backout",
    version,
    about = "A terminal incident console for deploy rollbacks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// With no command: the console on the current kubeconfig context.
    #[command(flatten)]
    pub console: console::ConsoleArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The console against a built-in simulated cluster with a bad deploy.
    #[cfg(feature = "sim")]
    Demo(demo::DemoArgs),
    /// Run a simulated cluster (Kubernetes API and Prometheus API) for drills, demos and tests.
    #[cfg(feature = "sim")]
    Sim(sim::SimArgs),
    /// Print the state and decision of every watched service once, then exit.
    Status(status::StatusArgs),
    /// Roll a Deployment back: prepared, dry-run by the server, confirmed, guarded.
    Rollback(rollback::RollbackArgs),
    /// A Deployment's revisions, or one revision's template against the current one.
    History(history::HistoryArgs),
    /// A pipeline's last step: accept the deploy (exit 0), roll it back (1), or cannot decide (2).
    Gate(gate::GateArgs),
    /// The handoff report of an incident, from the journal alone.
    Report(report::ReportArgs),
    /// Evaluate every watched service until stopped; roll back only with --auto-rollback.
    Watch(watch::WatchArgs),
    /// Triggers from what a team already has: `triggers import rules.yml`.
    Triggers(triggers::TriggersArgs),
    /// Print a shell completion script: `source <(backout completions bash)`.
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff): `backout man | man -l -`.
    Man,
}

/// Warnings on stderr, out of the way; `watch` logs its records at info on stdout,
/// as text or JSON lines; the console logs to `console.log` beside the journal, since
/// anything written to the terminal would tear through the screen. BACKOUT_LOG
/// overrides the level.
fn init_logs(command: &Option<Command>) {
    use std::io::IsTerminal;
    // kube-runtime's watcher warns on every retry (forty 403 lines in five seconds for
    // a context without rights); backout's Kubernetes source says it once, as health.
    let filter = |default: &str| {
        tracing_subscriber::EnvFilter::try_from_env("BACKOUT_LOG")
            .unwrap_or_else(|_| format!("{default},kube_runtime::watcher=off").into())
    };
    let builder = tracing_subscriber::fmt();
    match command {
        Some(Command::Watch(w)) if w.log_format == watch::LogFormat::Json => builder
            .json()
            .with_env_filter(filter("warn,backout=info"))
            .with_writer(std::io::stdout)
            .init(),
        Some(Command::Watch(_)) => builder
            .with_env_filter(filter("warn,backout=info"))
            .with_writer(std::io::stdout)
            .init(),
        #[cfg(feature = "sim")]
        Some(Command::Demo(_)) => console_logs(filter("warn,backout=info")),
        None => console_logs(filter("warn,backout=info")),
        _ => builder
            .with_env_filter(filter("warn"))
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init(),
    }
}

/// The console draws the whole terminal: its logs go to console.log beside the journal.
fn console_logs(filter: tracing_subscriber::EnvFilter) {
    let path = crate::actions::journal::default_path().with_file_name("console.log");
    let file = crate::actions::journal::private_file(&path).ok();
    let writer = std::sync::Mutex::new(match file {
        Some(f) => Box::new(f) as Box<dyn std::io::Write + Send>,
        None => Box::new(std::io::sink()),
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(writer)
        .init()
}

/// The console and `watch` run on one worker thread; every other command keeps one
/// per core. mimalloc keeps a heap per thread, and the state built by whichever worker
/// ran the update loop left partly used pages in each: at 2,000 services the console
/// on one worker held 5–9 MiB less at the same idle CPU (BENCHMARKS.md, stop 37). The
/// simulator serves many clients at once, and `demo` runs it in-process.
fn worker_threads(command: &Option<Command>) -> Option<usize> {
    match command {
        None | Some(Command::Watch(_)) => Some(1),
        _ => None,
    }
}

pub fn main() -> ExitCode {
    let cli = parse(std::env::args_os());
    init_logs(&cli.command);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = worker_threads(&cli.command) {
        builder.worker_threads(workers);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            None => console::run(cli.console).await,
            #[cfg(feature = "sim")]
            Some(Command::Demo(args)) => demo::demo(args).await,
            #[cfg(feature = "sim")]
            Some(Command::Sim(args)) => sim::run(args).await,
            Some(Command::Status(args)) => status::run(args).await,
            Some(Command::Rollback(args)) => rollback::run(args).await,
            Some(Command::History(args)) => history::run(args).await,
            Some(Command::Gate(args)) => gate::run(args).await,
            Some(Command::Report(args)) => report::run(args).await,
            Some(Command::Watch(args)) => watch::run(args).await,
            Some(Command::Triggers(args)) => triggers::run(args).await,
            Some(Command::Completions(args)) => completions::completions(&args),
            Some(Command::Man) => completions::man(),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Parses argv; as `kubectl-backout` (a kubectl plugin, run as `kubectl backout …`)
/// the help and errors name it the way it was typed.
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let as_plugin = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n.to_string_lossy().starts_with("kubectl-backout"));
    let mut cmd = Cli::command();
    if as_plugin {
        cmd = cmd.bin_name("kubectl backout");
    }
    let matches = cmd.get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

pub use crate::config::LONGEST;

/// A duration flag (`5m`, `90s`), at most [`LONGEST`].
pub fn bounded_duration(raw: &str) -> Result<std::time::Duration, String> {
    let d =
        humantime::parse_duration(raw).map_err(|e| format!("{e}; write it like 90s, 5m or 2h"))?;
    if d > LONGEST {
        return Err(format!(
            "{raw} is longer than the longest backout accepts ({})",
            humantime::format_duration(LONGEST)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::{parse, worker_threads};

    fn workers(args: &[&str]) -> Option<usize> {
        worker_threads(&parse(args.iter().map(Into::into)).command)
    }

    #[test]
    fn the_console_and_watch_run_on_one_worker_and_the_simulator_on_one_per_core() {
        assert_eq!(workers(&["backout"]), Some(1));
        assert_eq!(workers(&["backout", "watch"]), Some(1));
        assert_eq!(workers(&["backout", "status"]), None);
        #[cfg(feature = "sim")]
        assert_eq!(workers(&["backout", "sim"]), None);
    }
}
