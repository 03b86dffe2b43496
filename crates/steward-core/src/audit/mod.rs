//! The JSON-lines audit log: one record per call, redacted, in
//! `<logging.dir>/audit.jsonl`, rotated by size and aged out by retention.
//!
//! The file machinery below (writer thread, rotation, retention) is
//! [`LineLog`], shared with the agent's captured output (`agent.log`, see
//! `supervisor`) so both logs rotate and age out the same way.
//!
//! # Writing
//! [`AuditLog::write`] serializes the record, passes the whole line through
//! the redactor once more (defense in depth: the caller already redacted the
//! summary), and hands it to a dedicated writer thread over a bounded queue of
//! [`QUEUE_CAPACITY`] records. When the queue is full, writers wait
//! (backpressure): a record is never dropped. The thread takes everything
//! queued, appends it to the file with one `write(2)`, and only then
//! acknowledges each record of the batch. `write` returns after that
//! acknowledgement. When nothing is queued and the thread is not writing (a
//! quiet agent's pace), the caller makes that same `write(2)` itself and
//! returns, so a lone record costs no thread wake-up; the thread still runs
//! the timed sync. Such a caller also pays the `fdatasync` of a rotation
//! when its line is the one that rotates the file (once per `max_file_size`).
//!
//! # Durability trade-off
//! An acknowledged record is in the kernel's page cache: it survives a crash
//! or `kill -9` of steward. It reaches the disk at the next `fdatasync`, which
//! the writer issues at most every [`SYNC_INTERVAL`] while there is unsynced
//! data, and always before a rotation and at [`AuditLog::shutdown`]. A power
//! failure can therefore lose up to about one second of records; syncing every
//! batch would cap throughput at the disk's flush rate instead.
//!
//! # Rotation
//! Rename-based, never copy-and-truncate: when the next line would grow the
//! active file past `max_file_size`, the writer syncs it, renames it to
//! `audit-<YYYYMMDDTHHMMSS.mmmZ>-<seq>.jsonl` and opens a fresh `audit.jsonl`.
//! Lines are only ever appended whole, so no line is split across files, lost
//! or duplicated. A write that fails half-way is cut back to the last whole
//! line before the error is reported; a file found ending in a partial line at
//! open is trimmed the same way (those bytes were never acknowledged).
//!
//! # Failure
//! A failed write marks the log unhealthy ([`AuditLog::is_healthy`]; the
//! gateway refuses calls while it is) and returns the error; the thread keeps
//! running and the next write reopens the file. If `audit.jsonl` is deleted or
//! moved while open, the next batch notices and starts a new one rather than
//! writing into a file nobody can see.
//!
//! # Retention
//! [`AuditLog::run_retention`] (hourly, from the daemon) archives or deletes
//! rotated files older than `retention`, then deletes the oldest archives and
//! rotated files while the directory plus the state store exceed
//! `max_total_size`. See `retention.rs`.

mod lines;
mod retention;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::LoggingConfig;
use crate::redaction::SharedRedactor;

pub use lines::{AGENT, AUDIT, FAMILIES, Family, LineLog};
pub use retention::RetentionReport;

/// Records queued for the writer before [`AuditLog::write`] waits. Deep
/// enough to absorb a burst while the disk stalls, small enough (a few MB)
/// that a stuck disk shows up as backpressure quickly.
pub const QUEUE_CAPACITY: usize = 8192;

/// Longest time an acknowledged record stays unsynced (see the module doc).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Name of the active file inside `logging.dir`.
pub const ACTIVE_FILE: &str = AUDIT.active;

/// What can go wrong in the audit log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// A file system operation failed. The path names the log (`audit.jsonl`, `agent.log`).
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`write`, `create`, `rename`, ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error (shared: one failed batch fails many records).
        source: Arc<std::io::Error>,
    },
    /// The record could not be turned into JSON.
    #[error("audit record could not be serialized: {0}")]
    Serialize(#[source] Arc<serde_json::Error>),
    /// The writer thread has stopped (after shutdown).
    #[error("the log writer has stopped")]
    Stopped,
}

impl AuditError {
    fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        AuditError::Io { op, path: path.to_path_buf(), source: Arc::new(source) }
    }
}

/// One audit line. Field order is the JSON key order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    /// When the call arrived: RFC 3339 UTC with milliseconds (see [`crate::clock::format_ts`]).
    pub ts: String,
    /// UUIDv7 shared with the journal row and the `x-steward-call-id` header.
    pub call_id: String,
    /// `agent.name` from the config.
    pub agent: String,
    /// Front door: `api`, `llm`, `mcp`.
    pub door: String,
    /// Identified tool; absent for unmatched calls.
    pub tool: Option<String>,
    /// Upstream name.
    pub upstream: String,
    /// Method.
    pub method: String,
    /// Path relative to the upstream.
    pub path: String,
    /// Redacted and truncated by the caller.
    pub input_summary: String,
    /// SHA-256 of the raw input: proves what was sent without storing it.
    pub input_sha256: String,
    /// `allowed`, `killed`, `rate_limited`, `loop_detected`, `unmatched`,
    /// `unauthenticated`, `store_unavailable`, `bad_request`, `upstream_error`,
    /// `interrupted`...
    pub decision: String,
    /// Which moment of the call this line records: an allowed call has an
    /// `admitted` line before it is forwarded and a `completed` one after.
    pub phase: Phase,
    /// Why, for anything but a plain success.
    pub reason: Option<String>,
    /// HTTP status returned to the agent.
    pub status: Option<u16>,
    /// Wall time of the call.
    pub duration_ms: u64,
    /// Upstream attempts (retries included).
    pub attempts: u32,
    /// Door-specific fields (model, tokens, cost_usd, stream), flattened into
    /// the record. Keys must not repeat the fields above.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Which moment of a call an audit line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The call passed every check: written (and acknowledged) before it is
    /// forwarded, so no call reaches an upstream without its line.
    Admitted,
    /// The outcome of an admitted call: the upstream's answer, or why forwarding failed.
    Completed,
    /// Refused before forwarding: the call's only line.
    Refused,
    /// Stands for `sampled_count` unauthenticated or malformed requests of
    /// its `decision` (see `pipeline::junk`).
    Sampled,
    /// Written at start for a call the last run left unfinished (`kill -9`,
    /// crash, power loss): the upstream may or may not have executed it.
    Interrupted,
    /// Not a call: a supervised-mode approval request (`approval_pending`)
    /// or its decision (`approved`, `denied`, `expired`, with who, how and
    /// the time to decide), keyed by `approval_id` (see `pipeline::approval`).
    Approval,
    /// Not a call: a config reload (`door = "config"`), applied or refused,
    /// with the old and new SHA-256 of the file (see `daemon::reload`).
    Reload,
    /// Not a call: an operator action through the admin API (`door =
    /// "admin"`): stop, resume, approve, deny, undo, with `via` (`cli` or
    /// `dashboard`) and `by` (who: the dashboard session) as extra fields.
    Operator,
    /// Not a call: the MCP messages other than `tools/call` relayed for one
    /// server in the last minute, counted per method with their errors
    /// (`door = "mcp"`, `methods`; see `pipeline::mcp_summary`).
    Summary,
    /// Not a call: supervised mode switched (`door = "supervised"`,
    /// `steward graduate` or `steward supervise`; see `supervision`).
    Supervision,
}

/// The audit log. Share it behind an `Arc`; [`AuditLog::shutdown`] needs it
/// back by value.
pub struct AuditLog {
    cfg: LoggingConfig,
    redactor: SharedRedactor,
    lines: LineLog,
    /// `"instance":"NAME",` for a fleet's instance: the head of every line.
    instance: Option<String>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.cfg.dir)
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Creates `logging.dir` (0700) if needed, opens `audit.jsonl` (0600) and
    /// starts the writer thread.
    pub fn open(cfg: &LoggingConfig, redactor: SharedRedactor) -> Result<AuditLog, AuditError> {
        let lines = LineLog::open(&cfg.dir, AUDIT, cfg.max_file_size)?;
        Ok(AuditLog { cfg: cfg.clone(), redactor, lines, instance: None })
    }

    /// Every line names `instance`, the fleet's name of this steward
    /// (`[store] instance`; its characters need no JSON escaping), so that
    /// lines gathered from several hosts say where each call went through.
    #[must_use]
    pub fn with_instance(mut self, instance: &str) -> AuditLog {
        self.instance = Some(format!("\"instance\":{},", serde_json::Value::from(instance)));
        self
    }

    /// Appends one record. Returns once the line was written to the file
    /// (flushed to the kernel), or with the error that prevented it.
    pub async fn write(&self, rec: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_string(rec).map_err(|e| AuditError::Serialize(Arc::new(e)))?;
        if let Some(head) = &self.instance {
            line.insert_str(1, head);
        }
        let line = one_line(self.redactor.load().redact(&line).into_owned());
        self.lines.write_line(line).await
    }

    /// Runs [`WARM_UP_LINES`] lines shaped like this log's own (every door,
    /// admitted and completed, fresh call ids, digests, times and numbers)
    /// through the redactor now loaded, and writes nothing. The redactor's
    /// trigger scan is a lazy DFA whose states are built as text first
    /// reaches them: cold, it costs each line tens of µs, and at an
    /// agent's pace it would take hours of calls to warm (see the `redact`
    /// crate's `TriggerCaches`). The daemon runs this on a thread of its
    /// own after it is ready and after each reload swaps the redactor: a
    /// few tens of ms of CPU once, off every call's path.
    pub fn warm_up(&self) {
        let redactor = self.redactor.load_full();
        let started = SystemTime::now();
        for i in 0..WARM_UP_LINES {
            let line = warm_up_line(i, started + Duration::from_millis(u64::from(i) * 7919));
            std::hint::black_box(redactor.redact(&line));
        }
    }

    /// False after a failed write, until a later write succeeds.
    pub fn is_healthy(&self) -> bool {
        self.lines.is_healthy()
    }

    /// Archives or deletes rotated files older than `retention` as of `now`,
    /// then enforces `max_total_size` over the logs plus `store_bytes` (the
    /// state store's files, which are never deleted here). Blocking file
    /// work: call it from `spawn_blocking`. Fails only if the directory
    /// cannot be listed; a file that cannot be handled is listed in
    /// [`RetentionReport::failures`] and retried next run. Covers every
    /// [`FAMILIES`] member, the agent's log too.
    pub fn run_retention(&self, now: SystemTime, store_bytes: u64) -> Result<RetentionReport, AuditError> {
        retention::run(&self.cfg, now, store_bytes)
    }

    /// `<logging.dir>/audit.jsonl`.
    pub fn active_path(&self) -> PathBuf {
        self.lines.active_path()
    }

    /// Writes everything queued, fsyncs, and stops the writer thread.
    pub async fn shutdown(self) {
        self.lines.shutdown().await;
    }
}

/// How many lines [`AuditLog::warm_up`] redacts: past ~2,000 lines of this
/// shape a line costs the trigger scan a few µs, against ~50 µs cold
/// (measured with one redactor shared by four threads).
pub const WARM_UP_LINES: u32 = 3000;

/// Line `i` of the warm-up: a call record as [`AuditLog::write`] would
/// serialize it, with values varied the way real ones vary.
fn warm_up_line(i: u32, at: SystemTime) -> String {
    let door = ["llm", "api", "mcp"][(i % 3) as usize];
    let (phase, decision, status) = match i % 4 {
        0 => (Phase::Admitted, "allowed", None),
        1 => (Phase::Completed, "allowed", Some(200)),
        2 => (Phase::Completed, "upstream_error", Some(502)),
        _ => (Phase::Refused, "rate_limited", Some(429)),
    };
    let mut extra = serde_json::Map::new();
    if door == "llm" && phase == Phase::Completed {
        extra.insert("billing".into(), "reported".into());
        extra.insert("cached_tokens".into(), (i % 5).into());
        extra.insert("cost_usd".into(), (f64::from(i % 997) * 1.3e-6).into());
        extra.insert("input_tokens".into(), (9 + i % 4099).into());
        extra.insert("model".into(), "gpt-4o-mini".into());
        extra.insert("output_tokens".into(), (1 + i % 811).into());
        extra.insert("stream".into(), i.is_multiple_of(2).into());
    }
    let record = AuditRecord {
        ts: crate::clock::format_ts(at),
        call_id: uuid::Uuid::now_v7().to_string(),
        agent: "agent".into(),
        door: door.into(),
        tool: Some(format!("{door}:tool_{}", i % 7)),
        upstream: door.into(),
        method: "POST".into(),
        path: format!("/v1/items/{}", i.wrapping_mul(2_654_435_761)),
        input_summary: format!("{{\"n\":{i}}}"),
        input_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(i.to_le_bytes())),
        decision: decision.into(),
        phase,
        reason: None,
        status,
        duration_ms: u64::from(i.wrapping_mul(40_503) % 30_011),
        attempts: 1 + i % 3,
        extra,
    };
    serde_json::to_string(&record).unwrap_or_default()
}

/// A serialized record always is one line (serde_json escapes control
/// characters); this guards against a redaction rule that would put a raw
/// line break back.
fn one_line(line: String) -> String {
    if line.contains(['\n', '\r']) { line.replace('\n', "\\n").replace('\r', "\\r") } else { line }
}
