//! `steward completions SHELL` and `steward man`: shell completion scripts
//! (clap_complete) and manual pages (clap_mangen), generated from the same
//! clap definition as `--help`, so neither can drift from the commands. The
//! Debian package installs both (see `packaging/build-deb`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use super::{Cli, CliError, exit};

/// `steward completions`
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish (also elvish, powershell).
    shell: clap_complete::Shell,
}

/// `steward man`
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write steward.1 and one page per command (steward-run.1, ...) into this
    /// directory instead of printing steward.1.
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> Result<ExitCode, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "steward", &mut script);
    write_stdout(&script)?;
    Ok(ExitCode::from(exit::OK))
}

pub fn man(args: ManArgs) -> Result<ExitCode, CliError> {
    let command = Cli::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page).context("cannot render the manual page")?;
            write_stdout(&page)?;
        }
    }
    Ok(ExitCode::from(exit::OK))
}

/// Writes `bytes` to stdout as they are (no colour handling: roff and shell
/// scripts are not terminal text).
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush()).context("cannot write to stdout")
}
