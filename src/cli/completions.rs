//! `backout completions SHELL` and `backout man`: generated from the same clap
//! definition the binary parses with, so they never drift from the flags.

use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    let name = cmd.get_name().to_string();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// The man page, in roff: `backout man > backout.1`, or `backout man | man -l -`.
pub fn man() -> anyhow::Result<ExitCode> {
    clap_mangen::Man::new(super::Cli::command()).render(&mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}
