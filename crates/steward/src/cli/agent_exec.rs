//! `steward agent-exec PARENT_PID -- COMMAND...` (hidden): the trampoline
//! the supervisor starts the agent through. It arranges for the agent to be
//! killed when steward dies (parent-death signal), then becomes the agent by
//! `exec`. See `steward_core::supervisor::exec_agent`.

use std::ffi::OsString;
use std::process::ExitCode;

/// `steward agent-exec`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The steward daemon's pid: the agent only starts while it is the parent.
    parent: u32,
    /// The agent's program and arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

/// Exit codes follow the shell's: 127 command not found, 126 not executable.
pub fn run(args: Args) -> ExitCode {
    let err = steward_core::supervisor::exec_agent(args.parent, &args.command);
    let program = args.command.first().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    // The agent's stderr is captured: this line ends up in `steward logs agent`.
    anstream::eprintln!("steward: cannot run the agent command `{program}`: {err}");
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 })
}
