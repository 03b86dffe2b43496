//! `steward agent-exec --spec JSON -- COMMAND...` and `steward agent-init
//! GRACE_MS -- COMMAND...` (both hidden): the agent's box and the init of its
//! PID namespace. The daemon starts the first; it starts the second; that
//! one starts the agent. See `steward_core::supervisor::sandbox`.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use steward_core::supervisor::sandbox::{self, BoxSpec, EXIT_BOX_REFUSED};

/// `steward agent-exec`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the box builds (JSON, written by the daemon).
    #[arg(long)]
    spec: String,
    /// The agent's program and arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

/// `steward agent-init`
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// How long processes the agent leaves behind get after SIGTERM, in ms.
    grace_ms: u64,
    /// The agent's program and arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

/// The box. Exit codes: the agent's; 78 when the box cannot be built (not
/// restarted); 126/127 when the agent cannot be executed (the shell's).
pub fn run(args: Args) -> ExitCode {
    let spec: BoxSpec = match serde_json::from_str(&args.spec) {
        Ok(spec) => spec,
        Err(err) => {
            // The agent's stderr is captured: this line ends up in `steward logs agent`.
            anstream::eprintln!(
                "steward: the agent's box got an unreadable spec ({err}); is this steward's own binary?"
            );
            return ExitCode::from(EXIT_BOX_REFUSED);
        }
    };
    sandbox::finish(sandbox::run_box(&spec, &args.command))
}

/// The init of the agent's PID namespace.
pub fn run_init(args: InitArgs) -> ExitCode {
    sandbox::finish(sandbox::run_init(Duration::from_millis(args.grace_ms), &args.command))
}
