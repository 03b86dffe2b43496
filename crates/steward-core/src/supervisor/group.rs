//! Stopping the agent's whole process group: SIGTERM, `stop_grace` for
//! everyone to leave, then SIGKILL.
//!
//! `kill_on_drop` and plain `Child::kill` reach only the direct child; an
//! agent that forked workers would leave them running. So every stop signals
//! the group (`killpg`), and "gone" means no live member is left: the group
//! is scanned in `/proc` (pgrp field of `/proc/<pid>/stat`), because members
//! whose parent died are reparented to PID 1, which may never reap them, and
//! a zombie must not count as alive.

use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::time::Instant;

/// How often the group is checked while waiting for it to empty.
const GROUP_POLL: Duration = Duration::from_millis(50);

/// After SIGKILL, how long to wait for the kernel to tear the group down
/// before logging that something survived (a process stuck in the kernel, in
/// uninterruptible sleep, cannot be killed sooner).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// The direct child's exit status, once reaped.
    pub status: Option<std::process::ExitStatus>,
    /// Whether SIGKILL was needed (something outlived the grace period).
    pub killed: bool,
}

/// Sends `signal` to every process in group `pgid`. Returns false when the
/// group no longer exists.
pub fn signal_group(pgid: u32, signal: Signal) -> bool {
    let Some(raw) = group_id(pgid) else { return false };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(errno) => {
            tracing::error!(pgid, %signal, error = %errno, "could not signal the agent's process group");
            false
        }
    }
}

/// `pgid` as a process group id that is safe to signal: never 0 (`killpg(0)`
/// would signal steward's own group) nor 1 (init).
fn group_id(pgid: u32) -> Option<i32> {
    i32::try_from(pgid).ok().filter(|&id| id > 1 && u32::try_from(id).ok() != Some(std::process::id()))
}

/// Pids of group `pgid`'s members that are still alive (zombies excluded).
pub fn live_members(pgid: u32) -> Vec<u32> {
    let Some(raw) = group_id(pgid) else { return Vec::new() };
    // Signal 0 checks existence: the cheap answer when the group is gone.
    if killpg(Pid::from_raw(raw), None) == Err(nix::errno::Errno::ESRCH) {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            // "pid (comm) state ppid pgrp ...": comm may hold spaces and ')', so split after the last ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else { return false };
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let pgrp = fields.nth(1).and_then(|p| p.parse::<u32>().ok());
            pgrp == Some(pgid) && !matches!(state, "Z" | "X")
        })
        .collect()
}

/// Stops the agent: SIGTERM to the group, up to `grace` for the child to
/// exit and the group to empty, then SIGKILL to the group. Reaps the direct
/// child. Cancel-safe only in the sense that `child` is still owned by the
/// caller; callers run it to completion.
pub async fn stop_group(child: &mut Child, pgid: u32, grace: Duration) -> Stopped {
    signal_group(pgid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    let mut status = tokio::time::timeout_at(deadline, child.wait()).await.ok().and_then(Result::ok);
    if status.is_some() && wait_empty(pgid, deadline).await {
        return Stopped { status, killed: false };
    }
    tracing::warn!(pgid, grace_ms = grace.as_millis(), "the agent outlived its stop grace; sending SIGKILL");
    signal_group(pgid, Signal::SIGKILL);
    if status.is_none() {
        status = child.wait().await.ok();
    }
    if !wait_empty(pgid, Instant::now() + KILL_WAIT).await {
        tracing::error!(pgid, members = ?live_members(pgid), "agent processes survived SIGKILL");
    }
    Stopped { status, killed: true }
}

/// Leftover members of a group whose leader already exited (workers the
/// agent did not take down with it): the same TERM, grace, KILL sequence.
/// Returns whether any were found.
pub async fn stop_leftovers(pgid: u32, grace: Duration) -> bool {
    if live_members(pgid).is_empty() {
        return false;
    }
    tracing::warn!(pgid, "the agent exited but left processes in its group; stopping them");
    signal_group(pgid, Signal::SIGTERM);
    if !wait_empty(pgid, Instant::now() + grace).await {
        signal_group(pgid, Signal::SIGKILL);
        if !wait_empty(pgid, Instant::now() + KILL_WAIT).await {
            tracing::error!(pgid, members = ?live_members(pgid), "agent processes survived SIGKILL");
        }
    }
    true
}

/// Waits until the group has no live member or `deadline` passes; true when empty.
async fn wait_empty(pgid: u32, deadline: Instant) -> bool {
    loop {
        if live_members(pgid).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep_until((Instant::now() + GROUP_POLL).min(deadline)).await;
    }
}

/// A run's box as recorded in the store: enough to recognise that very
/// process later (a pid alone may have been reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// The box's pid, also its process group.
    pub pid: u32,
    /// Its start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
}

impl RunRecord {
    /// The record of the live process `pid`; `None` when it is already gone.
    pub fn of(pid: u32) -> Option<RunRecord> {
        start_ticks(pid).map(|start_ticks| RunRecord { pid, start_ticks })
    }
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`, for a live (not zombie) process.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field N is fields[N - 3].
    if matches!(fields.first(), Some(&"Z" | &"X")) {
        return None;
    }
    fields.get(22 - 3)?.parse().ok()
}

/// Kills the recorded run and its group if that very process still runs;
/// returns whether it did. Waits (bounded) until the group is gone.
pub async fn reap(record: &RunRecord) -> bool {
    if start_ticks(record.pid) != Some(record.start_ticks) {
        return false;
    }
    signal_group(record.pid, Signal::SIGKILL);
    if !wait_empty(record.pid, Instant::now() + KILL_WAIT).await {
        tracing::error!(pid = record.pid, members = ?live_members(record.pid), "the last run survived SIGKILL");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steward_never_signals_its_own_group_or_init() {
        assert_eq!(group_id(0), None);
        assert_eq!(group_id(1), None);
        assert_eq!(group_id(std::process::id()), None);
        assert_eq!(group_id(u32::MAX), None);
        assert_eq!(group_id(4242), Some(4242));
        assert!(!signal_group(0, Signal::SIGTERM));
        assert!(live_members(0).is_empty());
    }

    #[test]
    fn a_run_record_recognises_its_process_and_not_another() {
        let me = RunRecord::of(std::process::id()).unwrap();
        assert!(me.start_ticks > 0);
        assert_eq!(RunRecord::of(std::process::id()), Some(me));
        assert_eq!(RunRecord::of(u32::MAX), None);
    }
}
