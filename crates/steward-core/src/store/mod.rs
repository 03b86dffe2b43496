//! The state store: the call journal, the persistent rate windows, the
//! loop breaker's memory, the kill switch and a small key/value table; in
//! the embedded SQLite file (the default, described below), or with
//! `[store] url` in a PostgreSQL database a fleet of instances shares
//! (`pg.rs`, `docs/fleet.md`). [`Store`] is the same API on both.
//!
//! # Why it looks like this
//! - **One writer thread per [`Store`]** owns the write connection. Every write
//!   is an op sent over a bounded channel with a `oneshot` reply. The thread
//!   blocks for one op, drains up to [`MAX_BATCH_EXTRA`] more that are already
//!   queued, and runs them all inside one `BEGIN IMMEDIATE … COMMIT` (group
//!   commit): one WAL commit pays for the whole batch. Ops are evaluated
//!   **sequentially** inside that transaction, so a check-and-reserve (rate
//!   window, loop breaker, kill switch) sees the effect of every op before it:
//!   twenty concurrent admits against `10/hour` admit exactly ten.
//! - Each op of a batch runs under its own savepoint: an op that fails on its
//!   own (a duplicate call id) is rolled back alone. A batch of one op (the
//!   usual case at agent rates) skips the savepoint and rolls back the whole
//!   transaction instead, which undoes the same writes for less work. The
//!   savepoints' sub-journal is kept in memory (`temp_store = MEMORY`), never
//!   spilled to a temporary file inside a commit. When SQLite rolls back the whole
//!   transaction (I/O error, disk full) or the commit fails, **every** op of the
//!   batch gets the error: the caller refuses its call (fail closed).
//! - A lone op at rest (no other write in flight or begun in the last 200 µs,
//!   nothing queued, the writer thread idle) runs on its caller's thread, on
//!   the same connection under the same mutex, in the transaction the thread
//!   would have run: no thread wake-ups for an agent's call at an agent's
//!   pace. It never waits for the write lock: when another process holds it,
//!   the op is queued as above.
//! - `BEGIN IMMEDIATE` takes SQLite's write lock up front, so several
//!   processes (the daemon and `steward stop`) can share one file: their
//!   batches serialize on the lock (`busy_timeout` 5 s) and stay exact.
//! - Reads use a separate read-only connection behind a mutex, on
//!   `spawn_blocking`. WAL lets them run while the writer commits, and they see
//!   every committed write, including another process's. The kill switch,
//!   which every agent call reads first, has a read connection of its own,
//!   used on the caller's thread (see [`Store::kill_state`]).
//! - Time is never read here: every call passes `now_ms` (unix epoch
//!   milliseconds), so tests inject time.
//! - Before every batch and every read the store checks that the database path
//!   still names the file it opened. A deleted, moved or replaced database
//!   makes every call fail with [`StoreError::Unavailable`] instead of
//!   silently journaling into an unlinked file.
//! - Durability: WAL with `synchronous=NORMAL`. A committed write survives a
//!   crash or `kill -9` of steward (it is in the WAL, in the kernel); a power
//!   failure may roll back the commits made since the WAL was last synced
//!   (at checkpoints).
//! - The WAL stays bounded at any write rate: a checkpointer thread copies it
//!   back with passive checkpoints and, when continuous writes keep a pass
//!   from finishing, has the writer run a short `RESTART` between two
//!   batches; `journal_size_limit` cuts the rewound file back. See
//!   `checkpoint.rs`; [`Store::wal_stats`] feeds `/metrics`.
//!
//! - **The rules are written once, against `db::Db`:** admission
//!   (`admission.rs`: kill switch, loop breaker, rate window, spend stop,
//!   cap and reservation), a call's end (`completion.rs`: completion,
//!   settlement, withdrawal, undo plan, a restart's settlement of the calls
//!   left in flight), approvals (`approvals.rs`), undo plans (`undo.rs`),
//!   the spend ledger (`spend.rs`), the journal's and kv's reads and
//!   retention (`queries.rs`) and the report's counts (`report.rs`). The
//!   writer runs the writes on its SQLite connection, at once
//!   (`db::at_once`), and `on_db!` the reads on the read connection;
//!   `pg.rs` runs the same functions on PostgreSQL for a fleet
//!   (`[store] url`, `docs/fleet.md`). What speaks `rusqlite`
//!   directly is SQLite's own: opening and migrating the file
//!   (`schema.rs`), the transaction, its savepoints and the checkpoints
//!   (`writer.rs`, `checkpoint.rs`), the kill switch gate's fast read, and
//!   the file's bytes in use.
//!
//! - **Only redacted text is stored.** Every [`Store`] owns a redactor
//!   ([`SharedRedactor`]) and passes every free-text value of every write
//!   through it before the op is queued (see `redaction.rs` for what counts as
//!   free text, and why the rest does not): the path, method, upstream,
//!   input summary, refusal and error text, the upstream's response id, the
//!   door's JSON details, the kill switch's reason, the spend ledger's model
//!   and provider, kv values. The redaction runs on the caller's task, not on
//!   the single writer thread; the writer redacts only the kill switch's
//!   reason it copies onto a refused call, because the process that engaged
//!   the switch (`steward stop`) may have known fewer secrets. The daemon
//!   passes the audit log's redactor, so a credential reload reaches both;
//!   the CLI passes one that knows the agent token and the credentials it can
//!   read without running a program or asking Vault.
//!
//! The async API works on any tokio runtime, including the current-thread
//! runtime a CLI command builds (`Runtime::block_on(store.engage_kill(..))`).
//!
//! # Schema (see `schema::MIGRATIONS`)
//! - `calls`: one row per call the gateway saw. `id` is the caller's UUIDv7;
//!   `started_ms`/`finished_ms` are epoch ms; `decision` is `allowed` for an
//!   admitted call (in flight while `finished_ms` is NULL) or the refusal
//!   (`killed`, `loop_detected`, `rate_limited`, `unmatched`, ...); `status`
//!   is the HTTP status returned to the agent (NULL when none, or for refusals
//!   decided by [`Store::admit`], whose status the gateway chooses);
//!   `counts_as_error` is the error-rate alert's flag, written with the
//!   row's outcome ([`Decision::counts_as_error`]: NULL while in flight or
//!   when the alert leaves the call out, else 0 or 1; migration 4 added it).
//!   Indexes: `(tool, decision, started_ms)` for rate windows,
//!   `(tool, loop_key, started_ms)` for the loop breaker, `(started_ms)` for
//!   `steward last`, and a partial index on in-flight rows for
//!   [`Store::settle_interrupted`].
//! - `kill_switch`: exactly one row (`id = 1`): `engaged`, `reason`, `source`,
//!   `changed_ms` (when it was last engaged or released).
//! - `kv`: small persisted state (alert states, last backup time).
//! - `approvals` (migration 5): supervised mode's approval requests, one row
//!   each: the call's digest and redacted summary (never its body), its
//!   expiry, and the decision (`pending`, `approved`, `released`, `denied`,
//!   `expired`) with who made it, how and when.
//! - `undos` (migration 6): the undo plan of each released call whose tool
//!   declares one, and where its undo stands (see `undo.rs` for why it is a
//!   table of its own).

/// Runs `$body`, a rule's future over `$db: &impl Db`, on whichever
/// backend `$store` has: on SQLite's read connection (its future is ready
/// at once), or in a transaction on a pooled PostgreSQL connection. The
/// body's captures are moved on SQLite (it runs on the blocking pool) and
/// borrowed on PostgreSQL.
macro_rules! on_db {
    ($store:expr, |$db:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(inner) => {
                $crate::store::Inner::read(inner, move |conn| {
                    let $db = &$crate::store::db::Sqlite(conn);
                    $crate::store::db::at_once($body)
                })
                .await
            }
            $crate::store::Backend::Fleet(inner) => {
                let started = std::time::Instant::now();
                let mut client = inner.fleet.client().await?;
                let out = $crate::store::pg::in_tx!(client, "a read of the fleet's store", |$db| $body);
                inner.fleet.times.record($crate::store::pg::timing::Op::Read, started.elapsed());
                Ok(out)
            }
        }
    };
}

mod admission;
mod approvals;
mod checkpoint;
mod completion;
mod db;
mod durations;
pub mod mcp_servers;
pub mod pg;
pub mod pins;
mod queries;
mod redaction;
mod report;
mod schema;
mod spend;
mod undo;
mod writer;

#[cfg(test)]
pub(crate) mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::config::{LoopBreakerConfig, RateLimit};
use crate::decision::Decision;
use crate::redaction::SharedRedactor;

pub use approvals::{ApprovalDecision, ApprovalRow, ApprovalState, Decided, NewApproval, VIA_EXPIRY, Verdict};
pub use checkpoint::{CHECKPOINT_BUCKETS, CheckpointHistogram, CheckpointMode, JOURNAL_SIZE_LIMIT, WalStats};
pub use report::{ApprovalOutcome, ToolBucket, UpstreamErrors};
pub use spend::{MAX_STORED_MICROS, MAX_STORED_TOKENS, STOP_KEY, SpendHold, SpendRow, SpendSettlement, SpendStop};
pub use undo::{ClaimOutcome, UndoClaim, UndoPlan, UndoQuery, UndoRow, UndoState};
use writer::{Op, Request, Response};

/// Ops queued for the writer beyond this wait in `send`: backpressure instead
/// of unbounded memory when the disk is slow.
pub const WRITE_QUEUE: usize = 1024;

/// Ops a batch may take on top of the one the writer blocked for. Bounds the
/// time one transaction holds SQLite's write lock (another process waits for
/// it) and the latency of the first op in the batch.
pub const MAX_BATCH_EXTRA: usize = 256;

/// How long a connection waits for another process's write lock before the
/// call fails as [`StoreError::Unavailable`]. Long enough for any batch, short
/// enough that the agent gets an answer.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What can go wrong in the store. The gateway maps each variant to a refusal;
/// none of them lets a call through.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot answer now: I/O error, disk full, locked by another
    /// process past [`BUSY_TIMEOUT`], file missing or replaced, writer gone.
    /// The gateway answers 503 `store_unavailable`.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// The file is not a steward database or is damaged.
    #[error("state store is damaged: {0}; restore it from a backup")]
    Corrupt(String),
    /// The database was migrated by a newer steward.
    #[error(
        "state store schema version {found} is newer than this steward supports ({supported}); \
         run the newer steward or restore a backup made by this version"
    )]
    TooNew {
        /// `PRAGMA user_version` found in the file.
        found: i64,
        /// Highest version this binary knows.
        supported: i64,
    },
    /// The thing asked for does not exist (e.g. completing an unknown call id).
    #[error("{0} not found in the state store")]
    NotFound(String),
}

/// A call asking to be let through, or to be journaled as refused.
#[derive(Debug, Clone)]
pub struct Admission {
    /// UUIDv7 text (see [`new_call_id`]); the journal's primary key.
    pub call_id: String,
    /// When the call arrived, epoch ms; the start of every window test.
    pub now_ms: i64,
    /// Front door: `api`, `llm` or `mcp`.
    pub door: String,
    /// Tool the call was identified as; `None` for unmatched calls (no limit,
    /// no loop breaker).
    pub tool: Option<String>,
    /// Upstream name.
    pub upstream: String,
    /// HTTP method (or MCP method).
    pub method: String,
    /// Path relative to the upstream.
    pub path: String,
    /// Hex hash of tool + normalized input, computed by the caller; equal keys
    /// are "identical calls" for the loop breaker.
    pub loop_key: String,
    /// Redacted, truncated input summary; stored as given.
    pub input_summary: String,
    /// SHA-256 of the raw input, hex.
    pub input_sha256: String,
    /// Persistent window for this tool, if any.
    pub limit: Option<RateLimit>,
    /// `max_identical == 0` disables the loop breaker.
    pub loop_breaker: LoopBreakerConfig,
    /// Worst-case spend to reserve against the daily cap (priced LLM calls).
    pub spend: Option<SpendHold>,
    /// An undo the operator ran (`steward undo`, never the agent): the kill
    /// switch does not refuse it, because stopping the agent and then
    /// cleaning up is the normal sequence. Every other gate applies.
    pub undo_by_operator: bool,
}

/// What [`Store::admit`] decided. Every variant has been journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitOutcome {
    /// Row inserted with decision `allowed`, in flight until [`Store::complete`].
    Admitted,
    /// The kill switch is engaged; row inserted with decision `killed`.
    Killed {
        /// The kill switch's reason.
        reason: String,
    },
    /// This call completes a run of `max_identical` identical calls: the kill
    /// switch is now engaged (source `loop_breaker`) and the row inserted with
    /// decision `loop_detected`.
    LoopDetected {
        /// `loop detected: <tool>`.
        reason: String,
    },
    /// The tool's window is full; row inserted with decision `rate_limited`.
    RateLimited {
        /// Milliseconds until enough calls leave the window for this one to
        /// fit (at least 1).
        retry_after_ms: i64,
    },
    /// The day's spend plus this call's worst case would pass the cap; row
    /// inserted with decision `spend_cap`, nothing reserved.
    SpendCapped {
        /// The day's committed spend (settled + reserved), micro-dollars.
        spent_micros: u64,
        /// The cap, micro-dollars.
        cap_micros: u64,
        /// This call's worst case, which did not fit, micro-dollars.
        reserve_micros: u64,
    },
    /// An earlier call of the same spend day used more than its
    /// reservation, which stopped priced calls for the day ([`SpendStop`]);
    /// row inserted with decision `spend_cap`, nothing reserved.
    SpendStopped {
        /// The stop's reason (provider, model, billed against reserved).
        reason: String,
    },
}

/// A time window ending at some moment: the calls **started strictly after**
/// its start. The one rule for every window steward counts: a tool's rate
/// limit and the loop breaker at admission, `steward status`'s use of each
/// limit and its last hour, the error-rate alert's hour. A call exactly one
/// window length old has left the window, so a `10/hour` tool admits its
/// next call exactly an hour after the oldest of its ten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Epoch ms; calls started at this instant are outside.
    after_ms: i64,
}

impl Window {
    /// The calls started strictly after `after_ms` (up to now).
    pub fn after(after_ms: i64) -> Window {
        Window { after_ms }
    }

    /// The window of length `length` ending at `now_ms`.
    pub fn ending_at(now_ms: i64, length: std::time::Duration) -> Window {
        Window { after_ms: now_ms.saturating_sub(duration_ms(length)) }
    }

    /// The same window, cut to the calls started after `ms` too.
    pub fn and_after(self, ms: i64) -> Window {
        Window { after_ms: self.after_ms.max(ms) }
    }

    /// Whether a call started at `started_ms` is inside. The SQL of every
    /// window reads `started_ms > ?` with [`Window::after_ms`]: this rule.
    pub fn contains(self, started_ms: i64) -> bool {
        started_ms > self.after_ms
    }

    /// The instant the window starts after, epoch ms.
    pub fn after_ms(self) -> i64 {
        self.after_ms
    }
}

/// Final outcome of an admitted call.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The admitted call.
    pub call_id: String,
    /// When the call finished, epoch ms.
    pub now_ms: i64,
    /// HTTP status returned to the agent; `None` when no response was relayed.
    pub status: Option<u16>,
    /// Wall time of the call.
    pub duration_ms: u64,
    /// Upstream attempts made (retries included).
    pub attempts: u32,
    /// Pointer to a stored response (for rollback), if any.
    pub response_ref: Option<String>,
    /// Redacted error text; stored as the row's `reason`.
    pub error: Option<String>,
    /// Door-specific details (model, tokens, ...) as a JSON object.
    pub extra_json: Option<String>,
    /// The real cost of a priced call, settling its reservation.
    pub spend: Option<SpendSettlement>,
    /// The undo plan of a call whose tool declares an undo, recorded with
    /// the completion (see `undo.rs`).
    pub undo: Option<UndoPlan>,
}

/// The persisted kill switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillState {
    /// While true every admission is refused.
    pub engaged: bool,
    /// Why it was engaged (kept after release for `steward status`).
    pub reason: Option<String>,
    /// Who engaged it: `cli`, `loop_breaker`, `dashboard`, ...
    pub source: Option<String>,
    /// When it was last engaged or released, epoch ms (0: never).
    pub changed_ms: i64,
}

impl KillState {
    /// What a call refused by the switch hears, and what its journal row
    /// says, whichever check refused it: `reason` is
    /// [`KillState::refusal_reason`]'s.
    pub fn refusal_message(reason: &str) -> String {
        format!("steward's kill switch is engaged ({reason}); an operator must run `steward resume`")
    }

    /// The reason every call is refused with while the switch is engaged
    /// (`None` when released), passed through `redactor`: `steward stop`
    /// wrote it knowing fewer secrets than the daemon. The one wording both
    /// kill-switch checks give (the pipeline's first read and admission's
    /// transactional one).
    pub fn refusal_reason(&self, redactor: &redact::Redactor) -> Option<String> {
        if !self.engaged {
            return None;
        }
        Some(match &self.reason {
            Some(reason) => redaction::text(redactor, reason.clone()),
            None => "kill switch engaged".to_owned(),
        })
    }
}

/// Filter for [`Store::last`].
#[derive(Debug, Clone)]
pub struct LastQuery {
    /// At most this many rows, newest first.
    pub limit: u32,
    /// Only this tool.
    pub tool: Option<String>,
    /// Only calls started at or after this time, epoch ms.
    pub since_ms: Option<i64>,
    /// Only failed calls: refused, status >= 400, or finished without a status.
    pub failed_only: bool,
    /// Only the calls this instance of a fleet admitted (`None`: every
    /// instance's; on the embedded store every call).
    pub instance: Option<String>,
}

impl Default for LastQuery {
    /// The 20 newest calls: what fits on a terminal.
    fn default() -> Self {
        Self { limit: 20, tool: None, since_ms: None, failed_only: false, instance: None }
    }
}

/// One journaled call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallRow {
    /// UUIDv7 call id.
    pub id: String,
    /// Arrival, epoch ms.
    pub started_ms: i64,
    /// Completion, epoch ms; `None` while in flight.
    pub finished_ms: Option<i64>,
    /// Front door.
    pub door: String,
    /// Identified tool; `None` for unmatched calls.
    pub tool: Option<String>,
    /// Upstream name.
    pub upstream: String,
    /// Method.
    pub method: String,
    /// Path relative to the upstream.
    pub path: String,
    /// Loop-breaker key.
    pub loop_key: String,
    /// Redacted input summary.
    pub input_summary: String,
    /// SHA-256 of the raw input.
    pub input_sha256: String,
    /// `allowed` or the refusal.
    pub decision: String,
    /// Refusal reason, error text, or `interrupted`.
    pub reason: Option<String>,
    /// HTTP status returned to the agent.
    pub status: Option<u16>,
    /// Wall time of the call.
    pub duration_ms: Option<u64>,
    /// Upstream attempts.
    pub attempts: u32,
    /// Pointer to a stored response.
    pub response_ref: Option<String>,
    /// Cost of the call in USD (written by the spend ledger).
    pub cost_usd: Option<f64>,
    /// Door-specific details, JSON.
    pub extra_json: Option<String>,
    /// The fleet's instance that admitted it (`[store] instance`); `None`
    /// on the embedded store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl CallRow {
    /// Refused, answered with status >= 400, or finished without a status.
    pub fn is_failed(&self) -> bool {
        self.decision != Decision::Allowed.as_str()
            || self.status.is_some_and(|s| s >= 400)
            || (self.status.is_none() && self.finished_ms.is_some())
    }
}

/// What the journal holds and costs on disk ([`Store::journal_footprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalFootprint {
    /// Calls started at or after the time asked for.
    pub recent_calls: u64,
    /// When the first of them started, epoch ms.
    pub recent_first_ms: Option<i64>,
    /// Every row of the journal.
    pub rows: u64,
    /// Bytes of the database file in use (its pages not on the free list):
    /// the journal, its indexes, the spend ledger and the small tables.
    pub used_bytes: u64,
}

/// Writer activity since [`Store::open`], for metrics: `ops / batches` is the
/// group-commit factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: u64,
    /// Ops those transactions carried.
    pub ops: u64,
    /// Of those transactions, the lone ops run on their caller's thread
    /// (nothing queued, the writer idle: see `writer.rs`).
    pub inline: u64,
}

/// The writer's counters (see [`WriterStats`]).
#[derive(Debug, Default)]
struct WriterCounters {
    batches: AtomicU64,
    ops: AtomicU64,
    inline: AtomicU64,
}

/// A fresh call id: UUIDv7, so ids sort by time.
pub fn new_call_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Handle to the store. Cheap to clone; every clone shares one writer (its
/// thread and its connection) and two read connections (the queries' and
/// the kill switch's). Dropping the last clone stops the writer after it
/// finished the ops already queued.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

/// Where the state lives: the embedded SQLite file (one instance), or the
/// PostgreSQL database a fleet of instances shares (`pg/fleet.rs`).
#[derive(Clone)]
enum Backend {
    Sqlite(Arc<Inner>),
    Fleet(Arc<FleetInner>),
}

/// The fleet backend and the redactor every write passes.
struct FleetInner {
    fleet: pg::fleet::Fleet,
    redactor: SharedRedactor,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Sqlite(inner) => f.debug_struct("Store").field("path", &inner.path).finish_non_exhaustive(),
            Backend::Fleet(inner) => f.debug_struct("Store").field("fleet", &inner.fleet).finish_non_exhaustive(),
        }
    }
}

struct Inner {
    // Field order matters: `ops` is dropped before `_writer_thread`, so the
    // writer sees its channel close and exits before the join.
    ops: mpsc::Sender<Op>,
    /// The writer's connection, for a lone op run on its caller's thread.
    writer: Arc<writer::Shared>,
    /// Writes from this handle not answered yet (see [`Store::write`]).
    writes_in_flight: AtomicUsize,
    /// When the last write began (see [`Store::write`]).
    pace: Pace,
    /// Dropping it stops the checkpointer thread and waits for its last
    /// checkpoint (the writer still runs then: it is joined last).
    _checkpointer: Option<checkpoint::Checkpointer>,
    path: PathBuf,
    reader: Mutex<schema::Opened>,
    /// The kill switch's own read connection, used on the caller's thread
    /// (see [`Store::kill_state`]).
    gate: Mutex<schema::Opened>,
    /// Every write's free text passes it before it is queued.
    redactor: SharedRedactor,
    /// Checkpoint durations and the WAL's frames, for [`Store::wal_stats`].
    checkpoints: Arc<checkpoint::Counters>,
    _writer_thread: WriterThread,
}

/// Joins the writer thread on drop, so the last `Store` clone closes the
/// database before its drop returns (a reopen in the same process then finds
/// it closed).
struct WriterThread(Option<JoinHandle<()>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && handle.join().is_err()
        {
            tracing::error!("state store writer thread panicked");
        }
    }
}

impl Store {
    /// Opens (creating if needed, mode 0600) and migrates the database at
    /// `path`, and starts its writer thread. The parent directory must exist.
    /// Blocking, but cheap (about a millisecond): fine for CLI commands and
    /// daemon startup. Many processes may open the same file. Every free-text
    /// value written through this handle passes `redactor` first.
    pub fn open(path: &Path, redactor: SharedRedactor) -> Result<Store, StoreError> {
        let mut writer = schema::open_writer(path, schema::MIGRATIONS)?;
        let reader = schema::open_reader(path, BUSY_TIMEOUT)?;
        let gate = schema::open_reader(path, std::time::Duration::ZERO)?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let checkpoints = Arc::new(checkpoint::Counters::default());
        let checkpointer = checkpoint::spawn(path, &mut writer.conn, &tx, &checkpoints);
        let (shared, handle) = writer::spawn(writer, rx, Arc::clone(&redactor))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer thread: {e}")))?;
        Ok(Store {
            backend: Backend::Sqlite(Arc::new(Inner {
                ops: tx,
                writer: shared,
                writes_in_flight: AtomicUsize::new(0),
                pace: Pace::new(),
                _checkpointer: checkpointer,
                path: path.to_path_buf(),
                reader: Mutex::new(reader),
                gate: Mutex::new(gate),
                redactor,
                checkpoints,
                _writer_thread: WriterThread(Some(handle)),
            })),
        })
    }

    /// Opens the store `config` names: the embedded SQLite file in
    /// `[state] dir`, or with `[store] url` the fleet's PostgreSQL database
    /// (`store_url`: the URL's resolved value; see `docs/fleet.md`).
    /// Refuses a fleet database whose schema is not this steward's (the
    /// message names `steward migrate`) or that sits behind a
    /// transaction-mode pooler.
    pub async fn open_configured(
        config: &crate::config::Config,
        store_url: Option<&str>,
        redactor: SharedRedactor,
    ) -> Result<Store, StoreError> {
        let Some(fleet) = &config.store.fleet else { return Store::open(&config.state.db_path(), redactor) };
        let url = store_url.ok_or_else(|| {
            StoreError::Unavailable("[store] url did not resolve; check it with `steward config check`".into())
        })?;
        Store::open_fleet(url, &fleet.instance, fleet.pool, redactor).await
    }

    /// Connects to the fleet's PostgreSQL database at `url` as `instance`
    /// (see [`Store::open_configured`]).
    pub async fn open_fleet(
        url: &str,
        instance: &str,
        pool: usize,
        redactor: SharedRedactor,
    ) -> Result<Store, StoreError> {
        let fleet = pg::fleet::Fleet::open(url, instance, pool).await?;
        Ok(Store { backend: Backend::Fleet(Arc::new(FleetInner { fleet, redactor })) })
    }

    /// Whether this instance notifies the alerts about state a fleet
    /// shares (its journal, spend, kill switch): always on the embedded
    /// store; on a fleet, the live instance with the first name (so one
    /// notice, not one per instance; another takes over within seconds of
    /// its death). When that cannot be read, yes: a duplicate alert beats
    /// a silent one.
    pub async fn speaks_for_fleet(&self, now_ms: i64) -> bool {
        match &self.backend {
            Backend::Sqlite(_) => true,
            Backend::Fleet(inner) => inner.fleet.speaks(now_ms).await.unwrap_or(true),
        }
    }

    /// The fleet's database handle, when this store is one.
    pub fn fleet(&self) -> Option<&pg::fleet::Fleet> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Fleet(inner) => Some(&inner.fleet),
        }
    }

    /// The SQLite backend (tests reach into its writer).
    #[cfg(test)]
    fn inner(&self) -> &Inner {
        match &self.backend {
            Backend::Sqlite(inner) => inner,
            Backend::Fleet(_) => panic!("a fleet store has no SQLite writer"),
        }
    }

    /// The database file (`None`: the store is the fleet's database).
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(inner) => Some(&inner.path),
            Backend::Fleet(_) => None,
        }
    }

    /// Decides whether a call may go through, and journals it either way. See
    /// [`AdmitOutcome`]. Order, inside one transaction: kill switch, loop
    /// breaker, rate limit, insert.
    pub async fn admit(&self, a: Admission) -> Result<AdmitOutcome, StoreError> {
        match self.write(Request::Admit(a)).await? {
            Response::Admit(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
    }

    /// What [`Store::admit`] would decide for `a` right now (kill switch,
    /// rate limit, spend cap and stop; not the loop breaker), with nothing
    /// journaled or reserved: supervised mode asks it before holding a call
    /// for a human, so nobody is asked about a call that would be refused
    /// anyway. Advisory only: the admission after the approval decides.
    pub async fn precheck(&self, a: Admission) -> Result<AdmitOutcome, StoreError> {
        match self.write(Request::Precheck(a)).await? {
            Response::Admit(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
    }

    /// Journals a call refused before admission (killed, unmatched, bad
    /// request, body too large...): finished at once with `status`. Only the
    /// row's facts are read from `a`; its gates (limit, loop breaker, spend)
    /// are not applied.
    pub async fn record_refused(
        &self,
        a: Admission,
        decision: Decision,
        reason: &str,
        status: u16,
    ) -> Result<(), StoreError> {
        let req = Request::Refused { admission: a, decision, reason: reason.to_owned(), status };
        self.write_done(req).await
    }

    /// Records the final outcome of an admitted call. [`StoreError::NotFound`]
    /// when no call has that id.
    pub async fn complete(&self, c: Completion) -> Result<(), StoreError> {
        self.write_done(Request::Complete(c)).await
    }

    /// Turns an admitted call that was never forwarded into a refusal (the
    /// audit log could not record its admission): the row gets `decision`,
    /// `reason` and `status` and is finished, which takes it out of its rate
    /// window and the loop breaker's count; an open spend reservation is
    /// released at no cost. [`StoreError::NotFound`] unless the call is in flight.
    pub async fn withdraw(
        &self,
        call_id: &str,
        decision: Decision,
        reason: &str,
        status: u16,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.write_done(Request::Withdraw {
            call_id: call_id.to_owned(),
            decision,
            reason: reason.to_owned(),
            status,
            now_ms,
        })
        .await
    }

    /// Engages the kill switch. Already engaged: nothing changes, so the
    /// first cause (reason, source, time) stays on record.
    pub async fn engage_kill(&self, reason: &str, source: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write_done(Request::EngageKill { reason: reason.to_owned(), source: source.to_owned(), now_ms }).await
    }

    /// Releases the kill switch (a human `steward resume`). Always stamps
    /// `changed_ms = now_ms`, which also restarts the loop breaker's count.
    pub async fn release_kill(&self, now_ms: i64) -> Result<(), StoreError> {
        self.write_done(Request::ReleaseKill { now_ms }).await
    }

    /// The kill switch as committed right now (any process's write included).
    ///
    /// Every agent call reads it first, so it is read on the caller's thread
    /// through a connection of its own: one row of a WAL database, a stat and
    /// a few reads from the page cache (microseconds), where a hop to the
    /// blocking pool and back cost a wake-up of two idle threads per call.
    /// That connection never waits: when another caller holds it, or SQLite
    /// reports a lock (a checkpoint restarting the WAL), the read goes the
    /// usual way, through the shared read connection on `spawn_blocking`.
    /// Either way it sees every committed write, another process's too.
    ///
    /// A fleet's instance reads its watch's memory (`pg/kill.rs`: kept up
    /// by notification and poll), and fails when that is stale: the call is
    /// refused (fail closed).
    pub async fn kill_state(&self) -> Result<KillState, StoreError> {
        let inner = match &self.backend {
            Backend::Sqlite(inner) => inner,
            Backend::Fleet(inner) => return inner.fleet.kill_state(),
        };
        if let Some(state) = Self::kill_state_inline(inner) {
            return state;
        }
        inner.read(queries::kill_state).await
    }

    /// [`Store::kill_state`] through the gate's connection; `None` when that
    /// connection is taken or the database is locked.
    fn kill_state_inline(inner: &Inner) -> Option<Result<KillState, StoreError>> {
        let gate = inner.gate.try_lock().ok()?;
        if let Err(gone) = gate.check_same_file() {
            return Some(Err(gone));
        }
        match queries::read_kill_state(&gate.conn) {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ffi::ErrorCode::DatabaseBusy | rusqlite::ffi::ErrorCode::DatabaseLocked
                ) =>
            {
                None
            }
            read => Some(read.map_err(queries::kill_state_error)),
        }
    }

    /// Journal rows matching `q`, newest first.
    pub async fn last(&self, q: LastQuery) -> Result<Vec<CallRow>, StoreError> {
        on_db!(self, |db| queries::last(db, &q))
    }

    /// Allowed calls per tool started in `window`, sorted by tool: what
    /// counts against a tool's limit, by the rule admission uses.
    pub async fn tool_counts_in(&self, window: Window) -> Result<Vec<(String, u64)>, StoreError> {
        on_db!(self, |db| queries::tool_counts_in(db, window))
    }

    /// How many calls started since `since_ms`, how many rows the journal
    /// holds in all, and the database bytes they use (for `steward doctor`'s
    /// disk projection).
    pub async fn journal_footprint(&self, since_ms: i64) -> Result<JournalFootprint, StoreError> {
        match &self.backend {
            Backend::Sqlite(inner) => {
                inner
                    .read(move |conn| {
                        let counts = db::at_once(queries::footprint(&db::Sqlite(conn), since_ms))?;
                        Ok(JournalFootprint { used_bytes: queries::used_bytes(conn)?, ..counts })
                    })
                    .await
            }
            // The fleet's database is not on this host's disk.
            Backend::Fleet(_) => on_db!(self, |db| queries::footprint(db, since_ms)),
        }
    }

    /// `(judged, failed)`: the finished calls started in `window` that the
    /// error-rate alert weighs, as each row's `counts_as_error` flag says.
    /// The flag is written with the row's outcome from
    /// [`Decision::counts_as_error`] (see [`crate::decision::ErrorWeight`]
    /// for what is failed, judged, or left out); calls still in flight and
    /// calls `interrupted` by a steward restart carry none.
    pub async fn error_counts_in(&self, window: Window) -> Result<(u64, u64), StoreError> {
        on_db!(self, |db| queries::error_counts_in(db, window))
    }

    /// Calls still in flight, oldest first: at startup, before
    /// [`Store::settle_interrupted`], the calls the last run left unfinished.
    pub async fn in_flight(&self) -> Result<Vec<CallRow>, StoreError> {
        let instance = self.fleet().map(|fleet| fleet.instance().to_owned());
        on_db!(self, |db| queries::in_flight(db, instance.as_deref()))
    }

    /// Marks calls still in flight (left by a daemon that crashed) as
    /// finished at `now_ms` with reason `interrupted`; decision unchanged,
    /// status NULL. Returns how many. Only the daemon holding the daemon lock
    /// may call this, at startup: it cannot tell a crashed call from a live one.
    pub async fn settle_interrupted(&self, now_ms: i64) -> Result<u64, StoreError> {
        match self.write(Request::SettleInterrupted { now_ms }).await? {
            Response::Count(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes up to `max_rows` finished journal rows of calls started before
    /// `before_ms`, oldest first, and returns how many. Calls still in flight
    /// are kept whatever their age. The spend ledger is not touched: it is
    /// `steward spend`'s history, kept longer ([`Store::prune_spend`]).
    pub async fn prune_journal(&self, before_ms: i64, max_rows: u64) -> Result<u64, StoreError> {
        match self.write(Request::PruneJournal { before_ms, max_rows }).await? {
            Response::Count(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes up to `max_rows` settled spend ledger records of days before
    /// `before_day` (`YYYY-MM-DD`), oldest first, and returns how many. Open
    /// reservations are kept whatever their age. A day whose records are all
    /// gone loses its running total too, so `steward spend` shows nothing
    /// rather than a total it can no longer break down.
    pub async fn prune_spend(&self, before_day: &str, max_rows: u64) -> Result<u64, StoreError> {
        match self.write(Request::PruneSpend { before_day: before_day.to_owned(), max_rows }).await? {
            Response::Count(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// The journal row of call `id`, if any.
    pub async fn call(&self, id: &str) -> Result<Option<CallRow>, StoreError> {
        let id = id.to_owned();
        on_db!(self, |db| queries::call(db, &id))
    }

    /// Undo plans matching `q`, newest original call first.
    pub async fn undos(&self, q: UndoQuery) -> Result<Vec<UndoRow>, StoreError> {
        on_db!(self, |db| undo::query(db, &q))
    }

    /// Journal ids matching what an operator typed (a whole id, the short
    /// id `steward last` shows, or a prefix of either), newest first, at most 10.
    pub async fn find_call_ids(&self, text: &str) -> Result<Vec<String>, StoreError> {
        let text = text.to_owned();
        on_db!(self, |db| undo::find_call_ids(db, &text))
    }

    /// Marks the undo of `claim.call_id` as running under `claim`, if it can
    /// run (planned, or failed before); otherwise returns the row as it
    /// stands. One transaction: two concurrent undos of a call send one.
    pub async fn claim_undo(&self, claim: UndoClaim) -> Result<ClaimOutcome, StoreError> {
        match self.write(Request::ClaimUndo(claim)).await? {
            Response::Claim(outcome) => Ok(*outcome),
            other => Err(unexpected(&other)),
        }
    }

    /// Ends a running undo: `undone`, `gone` or `failed` (with `reason`).
    pub async fn finish_undo(
        &self,
        call_id: &str,
        state: UndoState,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let req = Request::FinishUndo { call_id: call_id.to_owned(), state, reason: reason.map(str::to_owned), now_ms };
        self.write_done(req).await
    }

    /// Batches and ops committed by this handle's writer.
    pub fn writer_stats(&self) -> WriterStats {
        match &self.backend {
            Backend::Sqlite(inner) => inner.writer.stats(),
            Backend::Fleet(_) => WriterStats::default(),
        }
    }

    /// The store's files on disk and its checkpoints since it opened, for
    /// `/metrics` and retention. Three `stat` calls: cheap enough for every scrape.
    /// A fleet's store has no local files: zeros.
    pub fn wal_stats(&self) -> WalStats {
        let Backend::Sqlite(inner) = &self.backend else {
            return WalStats {
                wal_bytes: 0,
                db_bytes: 0,
                shm_bytes: 0,
                wal_frames: 0,
                checkpoints: CheckpointMode::ALL
                    .iter()
                    .map(|&mode| checkpoint::Counters::default().histogram(mode))
                    .collect(),
            };
        };
        let len = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let counters = &inner.checkpoints;
        WalStats {
            wal_bytes: len(&checkpoint::wal_path(&inner.path)),
            db_bytes: len(&inner.path),
            shm_bytes: len(&checkpoint::side_file(&inner.path, "-shm")),
            wal_frames: counters.frames.load(Ordering::Relaxed),
            checkpoints: CheckpointMode::ALL.iter().map(|&mode| counters.histogram(mode)).collect(),
        }
    }

    /// A small persisted value.
    ///
    /// On a fleet's store most keys are this instance's own (see
    /// [`pg::fleet::Fleet::kv_key`]).
    pub async fn kv_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = self.kv_key(key);
        on_db!(self, |db| queries::kv_get(db, &key))
    }

    /// Sets a small persisted value.
    pub async fn kv_set(&self, key: &str, value: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write_done(Request::KvSet { key: self.kv_key(key), value: value.to_owned(), now_ms }).await
    }

    /// Removes a persisted value (no error when it is absent).
    pub async fn kv_delete(&self, key: &str) -> Result<(), StoreError> {
        self.write_done(Request::KvDelete { key: self.kv_key(key) }).await
    }

    /// `key` as this store keeps it (see [`Store::kv_get`]): on a fleet,
    /// `key` itself or `INSTANCE/key`, so a prefix maps as its keys do.
    fn kv_key(&self, key: &str) -> String {
        match &self.backend {
            Backend::Sqlite(_) => key.to_owned(),
            Backend::Fleet(inner) => inner.fleet.kv_key(key).into_owned(),
        }
    }

    /// The committed spend of `day` (settled costs plus open reservations), micro-dollars.
    pub async fn spend_total(&self, day: &str) -> Result<u64, StoreError> {
        let day = day.to_owned();
        on_db!(self, |db| spend::day_total(db, &day))
    }

    /// The stop in force on spend day `day`, if a call of that day used
    /// more than its reservation (see [`SpendStop`]).
    pub async fn spend_stop(&self, day: &str) -> Result<Option<SpendStop>, StoreError> {
        let day = day.to_owned();
        on_db!(self, |db| spend::stop_on(db, &day))
    }

    /// Lifts the spend stop, whatever its day (`steward resume`: an operator
    /// checked the provider's bill). Returns the stop that was recorded.
    pub async fn lift_spend_stop(&self) -> Result<Option<SpendStop>, StoreError> {
        let previous = self.kv_get(STOP_KEY).await?.and_then(|text| serde_json::from_str(&text).ok());
        self.kv_delete(STOP_KEY).await?;
        Ok(previous)
    }

    /// Spend per day and model for `from_day..=to_day` (`YYYY-MM-DD`), newest day first.
    pub async fn spend_by_day(&self, from_day: &str, to_day: &str) -> Result<Vec<SpendRow>, StoreError> {
        let (from, to) = (from_day.to_owned(), to_day.to_owned());
        on_db!(self, |db| spend::by_day(db, &from, &to))
    }

    /// Rewrites one small row and commits: `Ok` means a call could be
    /// journaled right now (for `/readyz`, the alerts, the heartbeat and
    /// `steward doctor`). A real write, because an empty transaction writes
    /// nothing and succeeds on a file that refuses writes (`chattr +i`).
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        self.write_done(Request::Ping).await
    }

    async fn write_done(&self, req: Request) -> Result<(), StoreError> {
        match self.write(req).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn write(&self, req: Request) -> Result<Response, StoreError> {
        match &self.backend {
            Backend::Sqlite(inner) => inner.write(req).await,
            Backend::Fleet(inner) => {
                let redactor = inner.redactor.load();
                inner.fleet.write(&req.redacted(&redactor), &redactor).await
            }
        }
    }

    /// Runs raw SQL on the writer connection inside a batch (tests only: to
    /// simulate a full disk).
    #[cfg(test)]
    pub(crate) async fn exec_on_writer(&self, sql: &str) -> Result<(), StoreError> {
        self.write_done(Request::Exec(sql.to_owned())).await
    }
}

impl Inner {
    /// Queues (or runs at once) one write on the SQLite writer.
    async fn write(&self, req: Request) -> Result<Response, StoreError> {
        let req = req.redacted(&self.redactor.load());
        // At rest (no other write in flight or begun in the last
        // [`QUIET_GAP`], nothing queued) the op runs here, on the caller's
        // thread, instead of waking the writer thread and being woken back
        // by it. Under load it is queued, so that concurrent ops share one
        // commit: run inline one by one, each paying its own commit, they
        // cost up to 30 % of the throughput at 32 clients.
        let in_flight = InFlight::enter(&self.writes_in_flight);
        let quiet = self.pace.quiet_since_last();
        if in_flight.alone
            && quiet
            && self.ops.capacity() == WRITE_QUEUE
            && let Some(done) = self.writer.try_inline(&req)
        {
            return done;
        }
        let (reply, rx) = oneshot::channel();
        self.ops
            .send(Op { req, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the store writer has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("the store writer has stopped".into()))?
    }

    async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let reader =
                inner.reader.lock().map_err(|_| StoreError::Unavailable("the read connection is poisoned".into()))?;
            reader.check_same_file()?;
            f(&reader.conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

/// A write that begins within this time of the previous one is queued for
/// the writer thread even when nothing else is in flight: writes that close
/// together are a load (1k calls a second are 2k writes, 0.5 ms apart), and
/// a load is cheaper group-committed than committed one by one.
const QUIET_GAP: std::time::Duration = std::time::Duration::from_micros(200);

/// When the last write began, as nanoseconds since the store opened.
struct Pace {
    base: std::time::Instant,
    last_ns: AtomicU64,
}

impl Pace {
    fn new() -> Self {
        Pace { base: std::time::Instant::now(), last_ns: AtomicU64::new(0) }
    }

    /// Records a write beginning now; true when the previous one began at
    /// least [`QUIET_GAP`] ago.
    fn quiet_since_last(&self) -> bool {
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let previous = self.last_ns.swap(now, Ordering::Relaxed);
        now.saturating_sub(previous) >= u64::try_from(QUIET_GAP.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One write in flight, counted until it is answered or its caller gives up.
struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// No other write was in flight when this one began.
    alone: bool,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let alone = count.fetch_add(1, Ordering::AcqRel) == 0;
        InFlight { count, alone }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

fn unexpected(resp: &Response) -> StoreError {
    StoreError::Unavailable(format!("store writer sent an unexpected reply: {resp:?}"))
}

/// Maps a SQLite error to a [`StoreError`], with what was being done.
fn sql_error(doing: &str, e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
        {
            StoreError::Corrupt(format!("{doing}: {e}"))
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(format!("{doing}: unexpected value: {e}")),
        _ => StoreError::Unavailable(format!("{doing}: {e}")),
    }
}

/// A duration as whole milliseconds, saturating (a window longer than
/// 292 million years is "forever").
fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
