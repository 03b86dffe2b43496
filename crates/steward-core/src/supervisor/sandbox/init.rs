//! `steward agent-init`: PID 1 of the agent's PID namespace.
//!
//! It starts the agent, reaps every process of the namespace (orphans are
//! reparented to it), forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT to all of them
//! (`kill(-1)` from a namespace's init reaches every process in it but
//! itself), and exits when the agent does: processes the agent left behind
//! get SIGTERM and the grace period, then the init exits and the kernel
//! SIGKILLs whatever remains. Its exit status is the agent's (a signal N as
//! 128 + N).
//!
//! It waits with the signals blocked (`sigwait`): a namespace's init only
//! receives signals it handles or has blocked, and a blocked signal is never
//! discarded.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigmaskHow, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, Outcome, handled_signals};

/// How often leftovers are reaped while they have their grace period.
const LEFTOVER_POLL: Duration = Duration::from_millis(20);

/// The init's body. `grace` is how long leftovers get after the agent exits.
pub fn run_init(grace: Duration, command: &[OsString]) -> Outcome {
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || box_is_gone() {
        return Outcome::Exit(EXIT_CANNOT_EXECUTE);
    }
    let handled = handled_signals();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), None);
    let Some((program, args)) = command.split_first() else {
        let _ = writeln!(std::io::stderr(), "steward: no agent command given");
        return Outcome::Exit(EXIT_CANNOT_EXECUTE);
    };
    // The child's signal mask is reset by std before exec.
    let agent = match Command::new(program).args(args).stdin(Stdio::null()).spawn() {
        Ok(child) => Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX)),
        Err(err) => {
            // stderr is captured: this line ends up in `steward logs agent`.
            let _ = writeln!(
                std::io::stderr(),
                "steward: cannot run the agent command `{}`: {err}",
                program.to_string_lossy()
            );
            let code = if err.kind() == std::io::ErrorKind::NotFound { EXIT_NOT_FOUND } else { EXIT_CANNOT_EXECUTE };
            return Outcome::Exit(code);
        }
    };
    let outcome = loop {
        match handled.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(outcome) = reap(agent) {
                    break outcome;
                }
            }
            Ok(signal) => {
                let _ = kill(Pid::from_raw(-1), signal);
            }
            Err(_) => {}
        }
    };
    stop_leftovers(grace);
    outcome
}

/// Whether the box (our parent) already died: the pipe it holds open as our
/// stdin reads end-of-file (POLLHUP) once it is gone.
fn box_is_gone() -> bool {
    let stdin = std::io::stdin();
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
    match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => false,
        Ok(_) => fds[0].revents().is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLIN)),
        Err(_) => true,
    }
}

/// Reaps every child that ended; returns the agent's outcome once it is among them.
fn reap(agent: Pid) -> Option<Outcome> {
    let mut outcome = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == agent => {
                outcome = Some(Outcome::Exit(u8::try_from(code).unwrap_or(u8::MAX)));
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == agent => {
                outcome = Some(Outcome::Exit(u8::try_from(128 + signal as i32).unwrap_or(u8::MAX)));
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return outcome,
            Ok(_) => {}
        }
    }
}

/// SIGTERM to every process left in the namespace, then up to `grace` for
/// them to leave. Whatever remains dies with this process.
fn stop_leftovers(grace: Duration) {
    if kill(Pid::from_raw(-1), Signal::SIGTERM) == Err(Errno::ESRCH) {
        return;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Err(Errno::ECHILD) => return,
                Err(_) => break,
                Ok(_) => {}
            }
        }
        std::thread::sleep(LEFTOVER_POLL);
    }
}
