//! Keeping the write-ahead log bounded: the checkpointer thread, when it
//! escalates, and the numbers `/metrics` shows about it.
//!
//! # Why a passive checkpoint alone is not enough
//! SQLite rewinds the WAL to its start only when a write transaction begins
//! while every frame is already copied back into the database file. The
//! checkpointer copies frames with `PASSIVE` checkpoints, which never block
//! the writer: under continuous writes a commit always lands during the
//! pass, so the WAL is never all copied, never rewound, and grows by every
//! commit (6.3 GB after 387k calls, issue 21). Auto-checkpoint is off on the
//! writer so that copying and `fsync` stay out of the commits a call waits on.
//!
//! # What happens instead
//! 1. The checkpointer runs a `PASSIVE` pass every [`CHECKPOINT_EVERY`], or
//!    as soon as the writer's commit hook sees the WAL grow by
//!    [`WAKE_AT_FRAMES`]. It copies nearly everything, concurrently with
//!    the writer.
//! 2. When a pass leaves frames behind in a WAL of at least
//!    [`RESTART_AT_FRAMES`] (a pass reports the WAL as it was when it began,
//!    so the checkpointer looks again with a `NOOP` checkpoint: commits
//!    that landed during the pass count), the checkpointer asks the **writer thread** to
//!    run a `RESTART` checkpoint between two batches. Only the frames
//!    committed during the passive pass are left to copy, so the writer's
//!    pause is short; it is measured (`mode="restart"` in
//!    `steward_store_checkpoint_duration_seconds`) and bounded: readers are
//!    waited for at most [`ESCALATION_BUSY_WAIT`]. The writer's next commit
//!    starts the WAL again from its beginning, and cuts the file to
//!    [`JOURNAL_SIZE_LIMIT`] (`journal_size_limit`).
//! 3. When a pass copied everything, no commit came since the pass before
//!    (the store went idle after a burst, so no commit comes to cut the
//!    file), and the file is still larger than [`JOURNAL_SIZE_LIMIT`], the
//!    writer runs a `TRUNCATE` checkpoint: nothing to copy, the file goes to
//!    zero bytes. Never under load: there the next commit cuts the file, for
//!    free.
//!
//! 4. When a pass copied the whole WAL, and the WAL file is within
//!    [`JOURNAL_SIZE_LIMIT`], the checkpointer has the **writer** commit a
//!    probe write of its own at once ([`rewinds_after`]). That commit finds
//!    the WAL all copied, so SQLite rewinds it and `fsync`s its new header
//!    (it does so before the first frame after every rewind, at any
//!    `synchronous` but `OFF`). Without it the rewind, and that `fsync`,
//!    came inside the next call's admission: once a second at an agent's
//!    pace, 2 % of calls at 50 req/s, the whole p99 on a virtual disk
//!    (BENCHMARKS.md, issue 19). Passes then skip while no commit but
//!    these came, so the probe's frames stay uncopied, the next call's
//!    commit appends to the WAL instead of rewinding it, and a store at
//!    rest writes nothing.
//!
//! Running the escalation on the writer thread instead of here makes the
//! pause exactly the checkpoint's own time: the writer does not sit in
//! SQLite's busy handler (sleeps of up to 100 ms) waiting for a lock this
//! thread holds, and this thread never starves waiting for the gap between
//! two of the writer's transactions.
//!
//! Durability is unchanged: a checkpoint only copies committed frames into
//! the database file, and a rewound WAL only drops frames already copied
//! and synced.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::durations::Durations;
use super::writer::{Op, Request, Response};
use super::{BUSY_TIMEOUT, StoreError, sql_error};

/// How often the checkpointer runs a pass when the writer did not wake it:
/// at agent rates (a few calls a minute) this is what keeps the WAL small.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Frames the writer's commits add to the WAL since the last pass (or since
/// it was rewound) at which the commit hook wakes the checkpointer before
/// its next tick (8 MiB of 4 KiB pages). At full speed the WAL grows by
/// about 150 MB/s (issue 21's measurement), so waiting for the tick would
/// let it reach that size; waking here keeps the peak at this plus what one
/// passive pass lets accumulate. Counting from the last pass, not from
/// zero, keeps a WAL the writer could not rewind at once (a reader held a
/// snapshot) from waking a pass at every commit.
pub(super) const WAKE_AT_FRAMES: u64 = 2048;

/// Smallest WAL worth a writer pause: when a passive pass leaves frames
/// behind in a smaller WAL, the next pass is left to catch up. At agent
/// rates the passes usually copy everything and the writer rewinds the WAL
/// on its own; this keeps an unlucky commit during a pass from costing a
/// pause every second.
pub(super) const RESTART_AT_FRAMES: i64 = 1024;

/// `journal_size_limit`: the size the WAL file is cut back to when it is
/// rewound (and the size above which an idle store truncates it). Above the
/// WAL's usual peak under full load, so a busy store reuses its WAL file
/// instead of shrinking and regrowing it every cycle; small enough that the
/// disk a store needs is its database plus at most this much.
pub const JOURNAL_SIZE_LIMIT: u64 = 32 * 1024 * 1024;

/// Longest an escalated checkpoint waits for readers (another process's
/// `steward last`, a backup) before giving up until the next pass: this is
/// the bound on how long it holds the writer, beyond its own copying.
pub(super) const ESCALATION_BUSY_WAIT: Duration = Duration::from_millis(100);

/// Upper bounds (seconds) of the checkpoint duration histogram: half a
/// millisecond (a restart with little left to copy) up to seconds (a
/// passive pass on a slow disk).
pub const CHECKPOINT_BUCKETS: [f64; 13] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

/// A checkpoint mode steward uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointMode {
    /// Copies what it can without blocking anyone (the checkpointer thread).
    Passive,
    /// Copies everything and makes the next commit rewind the WAL (the writer thread).
    Restart,
    /// Copies everything and truncates the WAL file to zero bytes (the writer thread).
    Truncate,
}

impl CheckpointMode {
    /// Every mode, in the order `/metrics` lists them.
    pub const ALL: [CheckpointMode; 3] = [CheckpointMode::Passive, CheckpointMode::Restart, CheckpointMode::Truncate];

    /// The label value and SQLite's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointMode::Passive => "passive",
            CheckpointMode::Restart => "restart",
            CheckpointMode::Truncate => "truncate",
        }
    }

    fn index(self) -> usize {
        match self {
            CheckpointMode::Passive => 0,
            CheckpointMode::Restart => 1,
            CheckpointMode::Truncate => 2,
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            CheckpointMode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
            CheckpointMode::Restart => "PRAGMA wal_checkpoint(RESTART)",
            CheckpointMode::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
        }
    }
}

/// What one checkpoint reported (`PRAGMA wal_checkpoint`'s row) and took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pass {
    /// The checkpoint could not finish: another checkpoint held the lock,
    /// or (escalations) readers or another process's writer outlasted the wait.
    pub(super) busy: bool,
    /// Frames in the WAL; -1 when the checkpoint could not look.
    pub(super) log: i64,
    /// Frames of it copied into the database file; -1 likewise.
    pub(super) checkpointed: i64,
    /// Wall time of the checkpoint.
    pub(super) elapsed: Duration,
}

/// Runs one checkpoint of `mode` on `conn` and times it.
pub(super) fn run(conn: &Connection, mode: CheckpointMode) -> Result<Pass, StoreError> {
    let start = Instant::now();
    let (busy, log, checkpointed) = conn
        .prepare_cached(mode.pragma())
        .and_then(|mut s| s.query_row([], |row| Ok((row.get::<_, i64>(0)?, row.get(1)?, row.get(2)?))))
        .map_err(|e| sql_error(&format!("{} checkpoint", mode.as_str()), e))?;
    Ok(Pass { busy: busy != 0, log, checkpointed, elapsed: start.elapsed() })
}

/// The WAL's frames now and how many of them are copied, without copying
/// anything (`NOOP`: no lock taken, nothing waited for).
fn now_vs_checkpointed(conn: &Connection) -> Result<Pass, StoreError> {
    let start = Instant::now();
    let (log, checkpointed) = conn
        .prepare_cached("PRAGMA wal_checkpoint(NOOP)")
        .and_then(|mut s| s.query_row([], |row| Ok((row.get::<_, i64>(1)?, row.get(2)?))))
        .map_err(|e| sql_error("reading the WAL's state", e))?;
    Ok(Pass { busy: false, log, checkpointed, elapsed: start.elapsed() })
}

/// What to do after a passive pass: the policy of the module doc, as a
/// function of the WAL's state right after the pass (frames now, frames
/// copied), the WAL file's size on disk, and whether any commit came since
/// the pass before (`idle` when none did).
pub(super) fn escalation(pass: &Pass, wal_file_bytes: u64, idle: bool) -> Option<CheckpointMode> {
    if pass.log < 0 || pass.checkpointed < 0 {
        // Another connection was checkpointing: it is doing the work.
        return None;
    }
    if pass.log > pass.checkpointed {
        return (pass.log >= RESTART_AT_FRAMES).then_some(CheckpointMode::Restart);
    }
    (idle && wal_file_bytes > JOURNAL_SIZE_LIMIT).then_some(CheckpointMode::Truncate)
}

/// Whether, after a pass, the writer should rewind the WAL with a commit of
/// its own (point 4 of the module docs): the pass copied every frame of a
/// WAL that holds some, and the file is small enough that rewinding is all
/// it needs (a larger one is cut by [`escalation`]'s truncate, or by the
/// next commit).
pub(super) fn rewinds_after(pass: &Pass, wal_file_bytes: u64) -> bool {
    !pass.busy && pass.log > 0 && pass.checkpointed == pass.log && wal_file_bytes <= JOURNAL_SIZE_LIMIT
}

/// Checkpoint durations and the writer's view of the WAL, shared by the
/// checkpointer, the writer's commit hook and [`super::Store::wal_stats`].
#[derive(Debug)]
pub(super) struct Counters {
    /// Per mode (see [`CheckpointMode::index`]): durations over
    /// [`CHECKPOINT_BUCKETS`].
    durations: [Durations; 3],
    /// Per mode: checkpoints that reported busy (could not finish).
    busy: [AtomicU64; 3],
    /// Frames in the WAL after the writer's last commit.
    pub(super) frames: AtomicU64,
    /// Commits seen by the hook: a pass that finds it unchanged since the
    /// pass before knows the store was idle in between.
    pub(super) commits: AtomicU64,
    /// Frames in the WAL when the last pass started: the hook wakes the
    /// next one [`WAKE_AT_FRAMES`] later.
    frames_at_pass: AtomicU64,
    /// Set by the commit hook when it sends a wake, cleared when a pass
    /// starts: one wake per pass, however many commits cross the line.
    wake_pending: AtomicBool,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            durations: std::array::from_fn(|_| Durations::new(&CHECKPOINT_BUCKETS)),
            busy: Default::default(),
            frames: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            frames_at_pass: AtomicU64::new(0),
            wake_pending: AtomicBool::new(false),
        }
    }
}

impl Counters {
    fn record(&self, mode: CheckpointMode, pass: &Pass) {
        let i = mode.index();
        self.durations[i].record(pass.elapsed);
        if pass.busy {
            self.busy[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The histogram of `mode` as it stands.
    pub(super) fn histogram(&self, mode: CheckpointMode) -> CheckpointHistogram {
        let i = mode.index();
        let s = self.durations[i].snapshot();
        CheckpointHistogram {
            mode,
            count: s.count,
            sum_seconds: s.sum_seconds,
            busy: self.busy[i].load(Ordering::Relaxed),
            buckets: s.buckets,
        }
    }
}

/// Checkpoints of one mode since the store opened.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointHistogram {
    /// Which checkpoints.
    pub mode: CheckpointMode,
    /// `(upper bound in seconds, checkpoints in this bucket)`, not
    /// cumulative, ending with the `+Inf` bucket.
    pub buckets: Vec<(f64, u64)>,
    /// How many ran.
    pub count: u64,
    /// Their total duration.
    pub sum_seconds: f64,
    /// How many could not finish (busy).
    pub busy: u64,
}

/// The store's files and checkpoints right now ([`super::Store::wal_stats`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WalStats {
    /// Size of `steward.db-wal` on disk.
    pub wal_bytes: u64,
    /// Size of `steward.db` on disk.
    pub db_bytes: u64,
    /// Size of `steward.db-shm` (the WAL's index, about 8 bytes per frame).
    pub shm_bytes: u64,
    /// Frames in the WAL after the writer's last commit (0 before the first).
    pub wal_frames: u64,
    /// One histogram per mode, in [`CheckpointMode::ALL`] order. For
    /// `restart` and `truncate` the duration is the writer's pause.
    pub checkpoints: Vec<CheckpointHistogram>,
}

impl WalStats {
    /// The store's files together: what it takes from `max_total_size`.
    pub fn total_bytes(&self) -> u64 {
        self.db_bytes.saturating_add(self.wal_bytes).saturating_add(self.shm_bytes)
    }
}

/// What the checkpointer thread is told.
#[derive(Debug, Clone, Copy)]
pub(super) enum Signal {
    /// The WAL grew by [`WAKE_AT_FRAMES`]: run a pass now.
    Wake,
    /// The store is closing: fold the WAL back and exit.
    Stop,
}

/// The running checkpointer. Dropping it stops the thread and waits for
/// its last checkpoint, so the database file is complete once the store is
/// gone.
pub(super) struct Checkpointer {
    signals: Sender<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let _ = self.signals.send(Signal::Stop);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("state store checkpointer thread panicked");
        }
    }
}

/// Starts the checkpointer for the database at `path` on its own
/// connection, and installs the commit hook on the writer's connection that
/// wakes it. `None` if it cannot start: the writer then checkpoints inline,
/// as SQLite does by default (bounded, but inside commits).
pub(super) fn spawn(
    path: &Path,
    writer: &mut Connection,
    ops: &mpsc::Sender<Op>,
    counters: &Arc<Counters>,
) -> Option<Checkpointer> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX).ok()?;
    conn.busy_timeout(BUSY_TIMEOUT).ok()?;
    let (signals, received) = std::sync::mpsc::channel::<Signal>();
    let worker = Worker {
        conn,
        wal: wal_path(path),
        writer: ops.downgrade(),
        counters: Arc::clone(counters),
        signals: received,
    };
    let thread = match std::thread::Builder::new().name("steward-store-checkpoint".into()).spawn(move || worker.run()) {
        Ok(thread) => thread,
        Err(_) => {
            let _ = writer.pragma_update(None, "wal_autocheckpoint", 1000);
            return None;
        }
    };
    let checkpointer = Checkpointer { signals: signals.clone(), thread: Some(thread) };
    let hook_counters = Arc::clone(counters);
    let hooked = writer.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, frames: std::ffi::c_int| {
        let frames = u64::try_from(frames).unwrap_or(0);
        hook_counters.frames.store(frames, Ordering::Relaxed);
        hook_counters.commits.fetch_add(1, Ordering::Relaxed);
        // A WAL smaller than at the last pass was rewound since: count from zero.
        let base = hook_counters.frames_at_pass.load(Ordering::Relaxed);
        let added = if frames < base { frames } else { frames - base };
        if added >= WAKE_AT_FRAMES && !hook_counters.wake_pending.swap(true, Ordering::Relaxed) {
            // The checkpointer gone means the store is closing.
            let _ = signals.send(Signal::Wake);
        }
        Ok(())
    }));
    if hooked.is_err() {
        // Still bounded: the checkpointer's tick runs every second.
        tracing::warn!("cannot install the WAL commit hook; the WAL is checkpointed every second only");
    }
    Some(checkpointer)
}

/// `<db>-wal`.
pub(super) fn wal_path(db: &Path) -> PathBuf {
    side_file(db, "-wal")
}

/// `<db><suffix>`: SQLite's side files (`-wal`, `-shm`).
pub(super) fn side_file(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The checkpointer thread's state.
struct Worker {
    conn: Connection,
    wal: PathBuf,
    /// Weak, so the checkpointer never keeps the writer alive: once the
    /// store is dropped, escalations are simply skipped.
    writer: mpsc::WeakSender<Op>,
    counters: Arc<Counters>,
    signals: Receiver<Signal>,
}

impl Worker {
    fn run(self) {
        // After a pass that could not finish (a reader pins the WAL, another
        // process checkpoints), wakes wait for the next tick instead of
        // spinning: the pending flag stays set, so the hook sends no more.
        let mut wakes_welcome = true;
        let mut commits_before = self.counters.commits.load(Ordering::Relaxed);
        // The commit of the rewind this thread asked for since the last
        // look (point 4): not the store's activity.
        let mut own_commits = 0_u64;
        // Since that rewind, no commit but its own came: passes wait.
        let mut resting = false;
        'passes: loop {
            let tick = Instant::now() + CHECKPOINT_EVERY;
            loop {
                match self.signals.recv_timeout(tick.saturating_duration_since(Instant::now())) {
                    Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => break 'passes,
                    Ok(Signal::Wake) if !wakes_welcome => {}
                    Ok(Signal::Wake) | Err(RecvTimeoutError::Timeout) => break,
                }
            }
            self.counters.wake_pending.store(false, Ordering::Relaxed);
            self.counters.frames_at_pass.store(self.counters.frames.load(Ordering::Relaxed), Ordering::Relaxed);
            let commits = self.counters.commits.load(Ordering::Relaxed);
            let idle = commits.saturating_sub(commits_before) <= own_commits;
            commits_before = commits;
            own_commits = 0;
            if idle && resting {
                // Only the rewind's probe since the rewind: leave its
                // frames, so the next call appends instead of rewinding.
                continue;
            }
            resting = false;
            let pass = match run(&self.conn, CheckpointMode::Passive) {
                Ok(pass) => pass,
                Err(e) => {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                    continue;
                }
            };
            self.counters.record(CheckpointMode::Passive, &pass);
            wakes_welcome = !pass.busy;
            // A pass reports the WAL as it was when the pass began, so it
            // looks complete even when commits landed meanwhile: look again.
            let now = match now_vs_checkpointed(&self.conn) {
                Ok(now) => Pass { busy: pass.busy, ..now },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the WAL's state; retrying");
                    continue;
                }
            };
            let wal_bytes = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
            if rewinds_after(&now, wal_bytes) {
                match self.rewind() {
                    Some(Ok(())) => (own_commits, resting) = (1, true),
                    Some(Err(e)) => {
                        // Not retried every second on a store that refuses
                        // writes (that is alerted elsewhere): the next call's
                        // commit rewinds the WAL, or fails the same way.
                        resting = true;
                        tracing::warn!(error = %e, "could not rewind the WAL between calls");
                    }
                    None => break,
                }
                continue;
            }
            let Some(mode) = escalation(&now, wal_bytes, idle) else { continue };
            match self.escalate(mode) {
                Some(Ok(escalated)) => {
                    self.counters.record(mode, &escalated);
                    if escalated.busy {
                        wakes_welcome = false;
                        tracing::debug!(mode = mode.as_str(), "WAL checkpoint could not finish; retrying");
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
                None => break,
            }
        }
        // Fold the WAL back before the store closes, so a copy of the file is
        // complete. Bounded like an escalation: a CLI command closing its
        // store while the daemon is busy must neither wait seconds nor hold
        // the daemon's writer; the daemon's own checkpointer does it later.
        let _ = self.conn.busy_timeout(ESCALATION_BUSY_WAIT);
        let _ = run(&self.conn, CheckpointMode::Truncate);
    }

    /// Has the writer thread run a `mode` checkpoint between two batches and
    /// waits for it. `None` when the store is closing.
    fn escalate(&self, mode: CheckpointMode) -> Option<Result<Pass, StoreError>> {
        match self.ask_writer(Request::Checkpoint(mode))? {
            Ok(Response::Checkpointed(pass)) => Some(Ok(pass)),
            Ok(other) => Some(Err(super::unexpected(&other))),
            Err(e) => Some(Err(e)),
        }
    }

    /// Has the writer commit the rewind's probe write alone, and waits for
    /// it. `None` when the store is closing.
    fn rewind(&self) -> Option<Result<(), StoreError>> {
        match self.ask_writer(Request::Rewind)? {
            Ok(Response::Done) => Some(Ok(())),
            Ok(other) => Some(Err(super::unexpected(&other))),
            Err(e) => Some(Err(e)),
        }
    }

    /// Sends `req` to the writer thread and waits for its answer. `None`
    /// when the store is closing.
    fn ask_writer(&self, req: Request) -> Option<Result<Response, StoreError>> {
        let writer = self.writer.upgrade()?;
        let (reply, answer) = oneshot::channel();
        writer.blocking_send(Op { req, reply }).ok()?;
        // Not held while waiting: the writer must be free to stop once the store is dropped.
        drop(writer);
        answer.blocking_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(log: i64, checkpointed: i64) -> Pass {
        Pass { busy: false, log, checkpointed, elapsed: Duration::ZERO }
    }

    #[test]
    fn frames_left_behind_in_a_large_wal_escalate_to_restart() {
        let left = pass(RESTART_AT_FRAMES, RESTART_AT_FRAMES - 3);
        assert_eq!(escalation(&left, 0, false), Some(CheckpointMode::Restart));
        assert_eq!(escalation(&pass(100_000, 2), JOURNAL_SIZE_LIMIT * 4, false), Some(CheckpointMode::Restart));
        // A small WAL with a commit that landed during the pass: the next pass catches up.
        assert_eq!(escalation(&pass(RESTART_AT_FRAMES - 1, 10), JOURNAL_SIZE_LIMIT * 4, false), None);
    }

    #[test]
    fn an_idle_oversized_wal_is_truncated_and_a_small_or_busy_one_left_alone() {
        assert_eq!(escalation(&pass(500, 500), JOURNAL_SIZE_LIMIT + 1, true), Some(CheckpointMode::Truncate));
        assert_eq!(escalation(&pass(0, 0), JOURNAL_SIZE_LIMIT + 1, true), Some(CheckpointMode::Truncate));
        assert_eq!(escalation(&pass(500, 500), JOURNAL_SIZE_LIMIT, true), None);
        // Under load the next commit rewinds the WAL and cuts the file, for free.
        assert_eq!(escalation(&pass(500, 500), JOURNAL_SIZE_LIMIT + 1, false), None);
    }

    #[test]
    fn a_wal_copied_whole_is_rewound_by_the_writer_unless_empty_busy_or_oversized() {
        assert!(rewinds_after(&pass(12, 12), 64 * 1024));
        assert!(rewinds_after(&pass(12, 12), JOURNAL_SIZE_LIMIT));
        assert!(!rewinds_after(&pass(12, 11), 64 * 1024), "frames left: the next pass copies them");
        assert!(!rewinds_after(&pass(0, 0), 64 * 1024), "nothing to rewind");
        assert!(!rewinds_after(&pass(12, 12), JOURNAL_SIZE_LIMIT + 1), "left to the truncate");
        assert!(!rewinds_after(&Pass { busy: true, ..pass(12, 12) }, 64 * 1024));
    }

    #[test]
    fn a_pass_that_could_not_look_does_nothing() {
        // Another connection held the checkpoint lock: SQLite reports -1.
        let busy = Pass { busy: true, log: -1, checkpointed: -1, elapsed: Duration::ZERO };
        assert_eq!(escalation(&busy, JOURNAL_SIZE_LIMIT * 10, true), None);
    }

    #[test]
    fn durations_land_in_their_bucket_per_mode() {
        let counters = Counters::default();
        let timed = |ms: u64, busy: bool| Pass { busy, log: 0, checkpointed: 0, elapsed: Duration::from_millis(ms) };
        counters.record(CheckpointMode::Restart, &timed(3, false));
        counters.record(CheckpointMode::Restart, &timed(3, true));
        counters.record(CheckpointMode::Restart, &timed(9_000, false));
        let restart = counters.histogram(CheckpointMode::Restart);
        assert_eq!(restart.count, 3);
        assert_eq!(restart.busy, 1);
        assert!((restart.sum_seconds - 9.006).abs() < 1e-9, "{restart:?}");
        assert_eq!(restart.buckets[3], (0.005, 2), "{restart:?}");
        assert_eq!(restart.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(counters.histogram(CheckpointMode::Passive).count, 0);
    }
}
