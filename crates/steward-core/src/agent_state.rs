//! The agent's lifecycle as persisted in the store's `kv` table: written
//! by the supervisor, read by `steward status` and the alert engine, and
//! the resume request `steward resume` leaves for a running daemon. It
//! depends on the store alone, so every reader can use these typed records
//! without importing the supervisor.
//!
//! - [`STATUS_KEY`]: the latest [`AgentStatus`] as JSON, written on every
//!   transition and every few seconds, so `steward status` can show it
//!   whether or not it runs in the daemon's process.
//! - [`FATAL_KEY`]: the sticky crash-loop record ([`FatalRecord`]); empty when
//!   clear. It survives a daemon restart: a crash-looping agent is not
//!   started again until `steward resume`.
//! - [`RESUME_KEY`]: epoch ms of the last `steward resume`. A supervisor that
//!   holds the agent (crash loop, exit 78) starts it again once this is newer
//!   than the hold.
//! - [`RUN_KEY`]: the box of the current run (pid and start time), so that
//!   the next start reaps a run a killed steward could not stop.

use crate::store::{Store, StoreError};

/// `kv` key of the published [`AgentStatus`].
pub const STATUS_KEY: &str = "supervisor.status";
/// `kv` key of the sticky [`FatalRecord`] (empty string: none).
pub const FATAL_KEY: &str = "supervisor.fatal";
/// `kv` key of the last resume request, epoch ms.
pub const RESUME_KEY: &str = "supervisor.resume_ms";
/// `kv` key of the current (or last) run's box: pid and start time, JSON.
pub const RUN_KEY: &str = "supervisor.run";

/// The agent's lifecycle state, as `steward status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// No `[agent] command`: steward does not run the agent.
    Disabled,
    /// Spawned, not yet confirmed up (first 2xx health check, or `min_uptime` without one).
    Starting,
    /// Up (and healthy, when a health check is configured).
    Running,
    /// Exited; waiting to be restarted.
    Backoff,
    /// Not running on purpose: kill switch, exit 78, daemon stopped.
    Stopped,
    /// Crash loop: not restarted until `steward resume`.
    Fatal,
}

impl AgentState {
    /// The lower-case name used in JSON and on the terminal.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Disabled => "disabled",
            AgentState::Starting => "starting",
            AgentState::Running => "running",
            AgentState::Backoff => "backoff",
            AgentState::Stopped => "stopped",
            AgentState::Fatal => "fatal",
        }
    }
}

/// How the last run ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastExit {
    /// Exit code, when it exited on its own.
    pub code: Option<i32>,
    /// Signal that ended it, when one did.
    pub signal: Option<i32>,
    /// How long it ran, ms.
    pub uptime_ms: u64,
    /// When it ended, epoch ms.
    pub at_ms: i64,
}

/// The supervisor's published view of the agent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgentStatus {
    /// Lifecycle state.
    pub state: AgentState,
    /// Why it is in this state, for `stopped`, `fatal` and `backoff`.
    pub reason: Option<String>,
    /// Pid (and process group) of the running agent.
    pub pid: Option<u32>,
    /// When the current run started, epoch ms; uptime is computed from it.
    pub started_ms: Option<i64>,
    /// Restarts after an exit since the daemon started (not counting
    /// starts after `steward resume` or a released kill switch).
    pub restarts: u64,
    /// How the previous run ended.
    pub last_exit: Option<LastExit>,
    /// Result of the last health check; `None` without `health_url` or before the first.
    pub healthy: Option<bool>,
    /// In `backoff`: when the next start is due, epoch ms.
    pub next_start_ms: Option<i64>,
    /// When this status was written, epoch ms: a stale value means the daemon is gone.
    pub updated_ms: i64,
}

impl AgentStatus {
    /// A status with nothing known yet but the state.
    pub fn new(state: AgentState, now_ms: i64) -> Self {
        Self {
            state,
            reason: None,
            pid: None,
            started_ms: None,
            restarts: 0,
            last_exit: None,
            healthy: None,
            next_start_ms: None,
            updated_ms: now_ms,
        }
    }
}

/// The sticky crash-loop verdict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FatalRecord {
    /// When the crash loop was declared, epoch ms.
    pub since_ms: i64,
    /// Short-lived exits counted.
    pub exits: u32,
    /// The message shown in `steward status`.
    pub reason: String,
}

/// The last status a daemon published, if any (it may be stale: check
/// [`AgentStatus::updated_ms`] and whether the daemon runs).
pub async fn read_status(store: &Store) -> Result<Option<AgentStatus>, StoreError> {
    Ok(store.kv_get(STATUS_KEY).await?.and_then(|text| serde_json::from_str(&text).ok()))
}

/// The sticky crash-loop record, if the agent is held as `fatal`.
pub async fn read_fatal(store: &Store) -> Result<Option<FatalRecord>, StoreError> {
    Ok(store.kv_get(FATAL_KEY).await?.filter(|text| !text.is_empty()).and_then(|text| serde_json::from_str(&text).ok()))
}

/// Persists the crash-loop verdict.
pub async fn write_fatal(store: &Store, record: &FatalRecord, now_ms: i64) -> Result<(), StoreError> {
    let text = serde_json::to_string(record).map_err(|e| StoreError::Unavailable(format!("encode: {e}")))?;
    store.kv_set(FATAL_KEY, &text, now_ms).await
}

/// `steward resume` for the supervisor: clears the crash-loop record and
/// stamps a resume request that a running daemon picks up. Returns the
/// record that was cleared, if any.
pub async fn request_resume(store: &Store, now_ms: i64) -> Result<Option<FatalRecord>, StoreError> {
    let previous = read_fatal(store).await?;
    store.kv_set(FATAL_KEY, "", now_ms).await?;
    store.kv_set(RESUME_KEY, &now_ms.to_string(), now_ms).await?;
    Ok(previous)
}

/// When `steward resume` last ran, epoch ms (0: never).
pub async fn last_resume_ms(store: &Store) -> Result<i64, StoreError> {
    Ok(store.kv_get(RESUME_KEY).await?.and_then(|text| text.parse().ok()).unwrap_or(0))
}
