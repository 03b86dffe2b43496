//! [`LineLog`]: an append-only file of whole lines in `logging.dir`, written
//! by a dedicated thread, rotated by size and aged out by retention.
//!
//! The audit log is one ([`AUDIT`]); the agent's captured stdout/stderr is
//! another ([`AGENT`]). Both get exactly the same guarantees (see the
//! [module docs](super)): bounded queue with backpressure, one `write(2)` per
//! batch, whole lines only, rename-based rotation, timed `fdatasync`. A line
//! written while nothing is queued is written by its caller (see
//! [`LineLog::write_line`]).
//! Callers redact before writing: a `LineLog` stores what it is given.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tokio::sync::{Semaphore, oneshot};

use super::{AuditError, QUEUE_CAPACITY, writer};

/// The names of one log's files inside `logging.dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The file being appended to (`audit.jsonl`).
    pub active: &'static str,
    /// Start of a rotated file's name (`audit-`), followed by the rotation time and a sequence number.
    pub prefix: &'static str,
    /// End of a rotated file's name (`.jsonl`); an archive adds `.zst`.
    pub suffix: &'static str,
}

impl Family {
    /// Whether `name` is a rotated (not active, not archived) file of this family.
    pub fn is_rotated(&self, name: &str) -> bool {
        name.starts_with(self.prefix) && name.ends_with(self.suffix) && name.len() > self.prefix.len()
    }
}

/// The audit log: one JSON record per call.
pub const AUDIT: Family = Family { active: "audit.jsonl", prefix: "audit-", suffix: ".jsonl" };

/// The agent's captured stdout/stderr, one redacted line per output line.
pub const AGENT: Family = Family { active: "agent.log", prefix: "agent-", suffix: ".log" };

/// Every family retention knows about: `max_total_size` bounds them together.
pub const FAMILIES: &[Family] = &[AUDIT, AGENT];

/// One rotating line file and its writer thread.
pub struct LineLog {
    dir: PathBuf,
    family: Family,
    /// One permit per queued line: the bound of the queue.
    permits: Arc<Semaphore>,
    queue: std::sync::mpsc::Sender<writer::Msg>,
    /// The file's writer: the thread's, and the caller's on the inline path.
    pub(super) writer: writer::Shared,
    /// Whether a caller may write inline (see [`LineLog::write_line`]).
    inline: bool,
    healthy: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LineLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineLog")
            .field("file", &self.active_path())
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

impl LineLog {
    /// Creates `dir` (0700) if needed, opens the family's active file (0600)
    /// and starts the writer thread. The active file rotates before it would
    /// grow past `max_file_size`.
    pub fn open(dir: &Path, family: Family, max_file_size: u64) -> Result<LineLog, AuditError> {
        Self::open_with_budget(dir, family, max_file_size, None)
    }

    /// [`LineLog::open`], and with `budget`, the directory's `max_total_size`
    /// holds at every write, not only when retention runs: before a line
    /// would take the directory past it, this family's oldest rotations
    /// (archives first) are deleted and one line says what was dropped. The
    /// agent's log, which the agent can flood at will, is opened this way;
    /// the other families' files are never deleted by it.
    pub fn open_with_budget(
        dir: &Path,
        family: Family,
        max_file_size: u64,
        budget: Option<u64>,
    ) -> Result<LineLog, AuditError> {
        writer::create_private_dir(dir)?;
        let healthy = Arc::new(AtomicBool::new(true));
        let writer = writer::Writer::open(dir, family, max_file_size, Arc::clone(&healthy))?.with_budget(budget);
        let writer: writer::Shared = Arc::new(std::sync::Mutex::new(writer));
        let (queue, rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(&writer);
        let thread = std::thread::Builder::new()
            .name(format!("steward-log-{}", family.prefix.trim_end_matches('-')))
            .spawn(move || writer::Writer::run(&shared, &rx))
            .map_err(|e| AuditError::io("start the writer thread for", dir, e))?;
        Ok(LineLog {
            dir: dir.to_path_buf(),
            family,
            permits: Arc::new(Semaphore::new(QUEUE_CAPACITY)),
            queue,
            writer,
            inline: budget.is_none(),
            healthy,
            thread: Some(thread),
        })
    }

    /// Appends `line` (which must not contain a line break). Returns once it
    /// was written to the file (flushed to the kernel), or with the error
    /// that prevented it.
    ///
    /// When nothing is queued and the writer is free (a call at an agent's
    /// pace), the caller writes the line itself: the same `write(2)` the
    /// thread would make, without waking the thread and waiting to be woken
    /// back (two idle threads' wake-ups on every call). Otherwise the line
    /// joins the queue and the thread's next batch. A budgeted log (the
    /// agent's output, which may list and prune its directory at a write)
    /// always goes through the thread.
    pub async fn write_line(&self, line: String) -> Result<(), AuditError> {
        let line = match self.write_inline(line) {
            Ok(written) => return written,
            Err(line) => line,
        };
        let permit = Arc::clone(&self.permits).acquire_owned().await.map_err(|_| AuditError::Stopped)?;
        let (ack, done) = oneshot::channel();
        self.queue.send(writer::Msg::Line { line, ack, _permit: permit }).map_err(|_| AuditError::Stopped)?;
        done.await.map_err(|_| AuditError::Stopped)?
    }

    /// Writes `line` on the caller's thread when the queue is empty and the
    /// writer free; gives it back otherwise.
    pub(super) fn write_inline(&self, line: String) -> Result<Result<(), AuditError>, String> {
        if !self.inline || self.permits.available_permits() < QUEUE_CAPACITY {
            return Err(line);
        }
        let Ok(mut writer) = self.writer.try_lock() else {
            return Err(line);
        };
        let was_dirty = writer.is_dirty();
        let (ack, mut done) = oneshot::channel();
        writer.write_batch(vec![(line, ack)]);
        let woke = !was_dirty && writer.is_dirty();
        drop(writer);
        if woke {
            // The thread may wait without a timeout: it starts the sync timer.
            let _ = self.queue.send(writer::Msg::Dirty);
        }
        Ok(done.try_recv().unwrap_or(Err(AuditError::Stopped)))
    }

    /// False after a failed write, until a later write succeeds.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// `<dir>/<family.active>`.
    pub fn active_path(&self) -> PathBuf {
        self.dir.join(self.family.active)
    }

    /// Writes everything queued, fsyncs, and stops the writer thread.
    pub async fn shutdown(mut self) {
        let (done, finished) = oneshot::channel();
        if self.queue.send(writer::Msg::Shutdown(done)).is_ok() {
            // Err: the thread is already gone; nothing left to wait for.
            let _ = finished.await;
        }
        if let Some(thread) = self.thread.take() {
            // The thread exits right after acknowledging the shutdown.
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!(file = self.family.active, "log writer thread did not stop cleanly");
            }
        }
    }
}
