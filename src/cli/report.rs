//! `backout report [INCIDENT]`: the handoff for the engineer who takes over, from the
//! journal alone. Markdown by default, `--json` for tools; the latest incident when
//! none is named.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::engine::handoff::{incidents, Handoff};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The incident id, as `backout gate` and the journal print it; else the latest.
    pub incident: Option<String>,
    /// The journal to read; else $BACKOUT_JOURNAL, else the state directory's.
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// One document (-o json|yaml) instead of Markdown.
    #[command(flatten)]
    pub output: super::output::OutputArgs,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let path = args
        .journal
        .unwrap_or_else(crate::actions::journal::default_path);
    let (records, torn) = match crate::actions::journal::read(&path) {
        Ok(read) => read,
        Err(e) => {
            eprintln!(
                "error: cannot read the journal {}: {e}; pass --journal PATH or set BACKOUT_JOURNAL",
                path.display()
            );
            return Ok(ExitCode::from(2));
        }
    };
    for t in &torn {
        eprintln!(
            "warning: {}: skipped a line that is not a record: {t}",
            path.display()
        );
    }
    let known = incidents(&records);
    let Some(id) = args.incident.or_else(|| known.last().cloned()) else {
        eprintln!("error: the journal {} records no incident", path.display());
        return Ok(ExitCode::from(2));
    };
    let Some(handoff) = Handoff::build(&records, &id) else {
        eprintln!(
            "error: no incident {id:?} in {}; it records: {}",
            path.display(),
            known.join(", ")
        );
        return Ok(ExitCode::from(2));
    };
    if !args.output.print(&handoff)? {
        print!("{}", handoff.to_markdown());
    }
    Ok(ExitCode::SUCCESS)
}
