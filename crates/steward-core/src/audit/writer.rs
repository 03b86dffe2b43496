//! The writer thread of a [`LineLog`](super::LineLog): owns the active file
//! of one [`Family`] (`audit.jsonl`, `agent.log`), batches queued lines into
//! one write, rotates by size, syncs on a timer.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::{AuditError, Family, SYNC_INTERVAL};

/// Lines written in one batch at most: bounds the write buffer (a few MB)
/// and the wait of the first record in it.
const MAX_BATCH: usize = 4096;

/// How stale the budgeted writer's picture of the directory may get before
/// it lists it again: the other logs grow meanwhile, by little.
const BUDGET_RESCAN: std::time::Duration = std::time::Duration::from_millis(100);

/// Room kept for the one line that says what was dropped.
const NOTE_ROOM: u64 = 256;

/// Chunk read backwards when looking for the last line break of a file.
const TAIL_CHUNK: u64 = 64 * 1024;

/// What the writer receives.
pub(super) enum Msg {
    /// One serialized, redacted line without its `\n`.
    Line {
        line: String,
        ack: oneshot::Sender<Result<(), AuditError>>,
        /// Frees a queue slot when the writer takes the line off the queue
        /// (a batch then holds at most [`MAX_BATCH`] more lines).
        _permit: OwnedSemaphorePermit,
    },
    /// Write what is queued before this, fsync, stop.
    Shutdown(oneshot::Sender<()>),
    /// A caller wrote inline into a clean file: the thread, which may be
    /// waiting without a timeout, starts the sync timer.
    Dirty,
}

/// The writer, shared by its thread and by the callers that write inline
/// (see `LineLog::write_line`).
pub(super) type Shared = std::sync::Arc<std::sync::Mutex<Writer>>;

/// The shared writer, even after a panic while it was held: its state is a
/// file and counters, each left consistent by every step. The poison is
/// cleared, so callers write inline again afterwards.
pub(super) fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Writer> {
    shared.lock().unwrap_or_else(|poisoned| {
        shared.clear_poison();
        std::sync::PoisonError::into_inner(poisoned)
    })
}

type Ack = oneshot::Sender<Result<(), AuditError>>;

/// Creates `dir` with mode 0700 (and missing parents). An existing directory
/// is left as the administrator made it.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), AuditError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| AuditError::io("create directory", dir, e))?;
    // The umask may have removed bits, never added any; this makes it exact.
    std::fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(|e| AuditError::io("chmod 0700", dir, e))
}

/// The open active file.
struct Active {
    file: File,
    /// Bytes in the file, all of them whole lines.
    size: u64,
    /// Device and inode, to notice the path being moved or deleted.
    id: (u64, u64),
}

/// State of the writer thread.
pub(super) struct Writer {
    dir: PathBuf,
    family: Family,
    active_path: PathBuf,
    max_file_size: u64,
    /// `None` after a failure: the next batch reopens.
    active: Option<Active>,
    /// Bytes written since the last `fdatasync`.
    dirty: bool,
    last_sync: Instant,
    /// Distinguishes rotations within one millisecond.
    seq: u64,
    healthy: Arc<AtomicBool>,
    /// The periodic `fdatasync` runs on this helper thread, off the writer
    /// thread, so a slow disk never delays the acknowledgements of the next
    /// batch (a multi-millisecond fsync once a second was the audit log's p99).
    /// Capacity 1: while a sync is still running, the next round is skipped.
    syncer: Option<std::sync::mpsc::SyncSender<File>>,
    /// `max_total_size` held at every write (see `LineLog::open_with_budget`).
    budget: Option<Budget>,
}

/// A budgeted writer's picture of its directory.
struct Budget {
    /// `max_total_size`.
    max_total: u64,
    /// Bytes in the directory when last listed, plus what was written since.
    total: u64,
    /// When the directory was last listed; `None`: never.
    scanned: Option<Instant>,
}

impl Writer {
    /// Opens (or creates) the active file, so `AuditLog::open` fails early.
    pub(super) fn open(
        dir: &Path,
        family: Family,
        max_file_size: u64,
        healthy: Arc<AtomicBool>,
    ) -> Result<Writer, AuditError> {
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            family,
            active_path: dir.join(family.active),
            max_file_size,
            active: None,
            dirty: false,
            last_sync: Instant::now(),
            seq: 0,
            healthy,
            syncer: spawn_syncer(),
            budget: None,
        };
        writer.ensure_open()?;
        Ok(writer)
    }

    /// Holds `max_total` at every write (see `LineLog::open_with_budget`).
    /// The active file then rotates at a quarter of the budget at most, so
    /// that old output can go before new output does.
    pub(super) fn with_budget(mut self, max_total: Option<u64>) -> Self {
        if let Some(max_total) = max_total {
            self.max_file_size = self.max_file_size.min(max_total / 4).max(NOTE_ROOM * 4);
            self.budget = Some(Budget { max_total, total: 0, scanned: None });
        }
        self
    }

    /// Whether `len` more bytes surely fit (no budget, or a fresh picture
    /// of the directory with room to spare); counts them if so.
    fn fits_budget(&mut self, len: u64) -> bool {
        let Some(budget) = self.budget.as_mut() else { return true };
        let fresh = budget.scanned.is_some_and(|t| t.elapsed() < BUDGET_RESCAN);
        if fresh && budget.total + len + NOTE_ROOM <= budget.max_total {
            budget.total += len;
            return true;
        }
        false
    }

    /// Makes room for `len` more bytes (`pending` are buffered, not yet
    /// written) under the budget: deletes this family's oldest rotations,
    /// then, if still needed, rotates the active file away and deletes it.
    /// Returns the note to log about what was dropped, or an error when even
    /// an empty family does not fit (the other logs fill the budget).
    fn make_room(&mut self, len: u64, pending: u64) -> Result<Option<String>, AuditError> {
        let Some(budget) = self.budget.as_ref() else { return Ok(None) };
        let (mut total, mut victims) = super::retention::usage(&self.dir, self.family)?;
        total += pending;
        let (mut files, mut bytes) = (0_u64, 0_u64);
        let max_total = budget.max_total;
        victims.reverse();
        let mut rotated_active = false;
        while total + len + NOTE_ROOM > max_total {
            let victim = match victims.pop() {
                Some(victim) => victim,
                None if !rotated_active && self.active.as_ref().is_some_and(|a| a.size > 0) => {
                    // Nothing older left: the active file's lines are the oldest now.
                    rotated_active = true;
                    let path = self.rotated_path();
                    self.rotate_to(&path)?;
                    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                    (path, size)
                }
                None => {
                    return Err(AuditError::io(
                        "write",
                        &self.active_path,
                        std::io::Error::other("the other logs fill [logging] max_total_size"),
                    ));
                }
            };
            std::fs::remove_file(&victim.0).map_err(|e| AuditError::io("delete", &victim.0, e))?;
            total = total.saturating_sub(victim.1);
            files += 1;
            bytes += victim.1;
        }
        if let Some(budget) = self.budget.as_mut() {
            budget.total = total + len;
            budget.scanned = Some(Instant::now());
        }
        if files == 0 {
            return Ok(None);
        }
        tracing::warn!(
            files,
            bytes,
            max_total,
            file = self.family.active,
            "dropped the oldest log files to stay under max_total_size"
        );
        Ok(Some(format!(
            "{} steward dropped the {files} oldest {} file(s) ({bytes} bytes) to keep {} under [logging] \
             max_total_size ({max_total} bytes)",
            crate::clock::format_ts(SystemTime::now()),
            self.family.active,
            self.dir.display()
        )))
    }

    /// The thread's loop: until shutdown or every sender is gone. It holds
    /// the writer only while it writes or syncs, never while it waits.
    pub(super) fn run(shared: &Shared, rx: &Receiver<Msg>) {
        loop {
            let dirty_since = {
                let writer = lock(shared);
                writer.dirty.then(|| writer.last_sync.elapsed())
            };
            let first = if let Some(since) = dirty_since {
                match rx.recv_timeout(SYNC_INTERVAL.saturating_sub(since)) {
                    Ok(msg) => msg,
                    Err(RecvTimeoutError::Timeout) => {
                        lock(shared).sync_in_background();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => break,
                }
            };
            let mut lines = Vec::new();
            let mut shutdown = None;
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Line { line, ack, _permit } => lines.push((line, ack)),
                    Msg::Dirty => {}
                    Msg::Shutdown(done) => {
                        shutdown = Some(done);
                        break;
                    }
                }
                if lines.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            let mut writer = lock(shared);
            if !lines.is_empty() {
                writer.write_batch(lines);
            }
            if writer.dirty && writer.last_sync.elapsed() >= SYNC_INTERVAL {
                writer.sync_in_background();
            }
            if let Some(done) = shutdown {
                writer.sync();
                let _ = done.send(());
                return;
            }
        }
        lock(shared).sync();
    }

    /// Whether bytes were written since the last `fdatasync`.
    pub(super) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Appends the batch (rotating where needed), then acknowledges each line.
    pub(super) fn write_batch(&mut self, lines: Vec<(String, Ack)>) {
        if let Err(e) = self.ensure_open() {
            self.fail(lines.into_iter().map(|(_, ack)| ack), &e);
            return;
        }
        let mut buf: Vec<u8> = Vec::new();
        let mut pending: Vec<Ack> = Vec::new();
        let mut lines = lines.into_iter();
        while let Some((line, ack)) = lines.next() {
            let len = u64::try_from(line.len()).unwrap_or(u64::MAX).saturating_add(1);
            if !self.fits_budget(len) {
                // Whatever was buffered goes to the file first: the picture of the directory is then exact.
                let room = self.flush(&mut buf).and_then(|()| {
                    ack_ok(pending.drain(..));
                    self.make_room(len, 0)
                });
                match room {
                    Ok(None) => {}
                    Ok(Some(note)) => {
                        buf.extend_from_slice(note.as_bytes());
                        buf.push(b'\n');
                    }
                    Err(e) => {
                        let _ = ack.send(Err(e.clone()));
                        if !self.healthy.swap(false, Ordering::AcqRel) {
                            continue;
                        }
                        tracing::error!(error = %e, file = self.family.active, "log write failed");
                        continue;
                    }
                }
            }
            let used = self.active.as_ref().map_or(0, |a| a.size) + u64::try_from(buf.len()).unwrap_or(u64::MAX);
            if used > 0 && used.saturating_add(len) > self.max_file_size {
                let rotated = self.flush(&mut buf).and_then(|()| {
                    ack_ok(pending.drain(..));
                    self.rotate()
                });
                if let Err(e) = rotated {
                    let rest = pending.into_iter().chain(std::iter::once(ack)).chain(lines.map(|(_, ack)| ack));
                    self.fail(rest, &e);
                    return;
                }
            }
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            pending.push(ack);
        }
        match self.flush(&mut buf) {
            Ok(()) => {
                self.healthy.store(true, Ordering::Release);
                ack_ok(pending);
            }
            Err(e) => self.fail(pending, &e),
        }
    }

    fn fail(&self, acks: impl IntoIterator<Item = Ack>, e: &AuditError) {
        self.healthy.store(false, Ordering::Release);
        tracing::error!(error = %e, file = self.family.active, "log write failed");
        for ack in acks {
            let _ = ack.send(Err(e.clone()));
        }
    }

    /// Appends `buf` to the active file with one write.
    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<(), AuditError> {
        if buf.is_empty() {
            return Ok(());
        }
        let Some(active) = self.active.as_mut() else {
            return Err(AuditError::io("write", &self.active_path, std::io::Error::other("file not open")));
        };
        let result = active.file.write_all(buf);
        let written = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        buf.clear();
        match result {
            Ok(()) => {
                active.size += written;
                self.dirty = true;
                Ok(())
            }
            Err(e) => {
                // Cut the file back to its last whole line: those records are
                // reported failed, so they must not also sit in the file.
                if let Err(trunc) = active.file.set_len(active.size) {
                    tracing::error!(error = %trunc, "could not cut a failed log write back; it is trimmed at reopen");
                }
                self.active = None;
                Err(AuditError::io("write", &self.active_path, e))
            }
        }
    }

    /// Makes sure `active` is an open file still named as the family's active file.
    fn ensure_open(&mut self) -> Result<(), AuditError> {
        if let Some(active) = &self.active {
            match std::fs::metadata(&self.active_path) {
                Ok(meta) if (meta.dev(), meta.ino()) == active.id => return Ok(()),
                _ => {
                    tracing::warn!(path = %self.active_path.display(), "the active log file was moved or deleted; starting a new one");
                    self.sync();
                    self.active = None;
                }
            }
        }
        let path = &self.active_path;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| AuditError::io("open", path, e))?;
        let meta = file.metadata().map_err(|e| AuditError::io("stat", path, e))?;
        if meta.mode() & 0o777 != 0o600 {
            file.set_permissions(Permissions::from_mode(0o600)).map_err(|e| AuditError::io("chmod 0600", path, e))?;
        }
        let size = trim_partial_tail(&file, meta.len()).map_err(|e| AuditError::io("repair", path, e))?;
        self.active = Some(Active { file, size, id: (meta.dev(), meta.ino()) });
        Ok(())
    }

    /// Syncs and renames the active file, then opens a fresh one.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let target = self.rotated_path();
        self.rotate_to(&target)
    }

    /// [`Writer::rotate`] to a given name.
    fn rotate_to(&mut self, target: &Path) -> Result<(), AuditError> {
        let Some(active) = self.active.take() else {
            return self.ensure_open();
        };
        if let Err(e) = active.file.sync_data() {
            self.active = Some(active);
            return Err(AuditError::io("sync", &self.active_path, e));
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        if let Err(e) = std::fs::rename(&self.active_path, target) {
            self.active = Some(active);
            return Err(AuditError::io("rotate", &self.active_path, e));
        }
        drop(active);
        self.ensure_open()?;
        // Makes the rename and the new file survive a power failure.
        if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
            tracing::warn!(error = %e, "could not sync the log directory after rotation");
        }
        Ok(())
    }

    /// `<prefix><YYYYMMDDTHHMMSS.mmmZ>-<seq><suffix>` (`audit-…-000001.jsonl`), not taken yet: rename would
    /// silently replace an existing file.
    fn rotated_path(&mut self) -> PathBuf {
        let stamp = crate::clock::format_ts_compact(SystemTime::now());
        loop {
            self.seq += 1;
            let path = self.dir.join(format!("{}{stamp}-{:06}{}", self.family.prefix, self.seq, self.family.suffix));
            if !path.exists() {
                return path;
            }
        }
    }

    /// Hands a duplicate of the active file's descriptor to the syncer thread
    /// (`fdatasync` on a dup syncs the same file). Falls back to syncing here
    /// when the syncer is gone.
    fn sync_in_background(&mut self) {
        if !self.dirty {
            return;
        }
        let (Some(active), Some(syncer)) = (&self.active, &self.syncer) else {
            return self.sync();
        };
        match active.file.try_clone() {
            Ok(dup) => match syncer.try_send(dup) {
                Ok(()) => {
                    self.dirty = false;
                    self.last_sync = Instant::now();
                }
                // The previous sync is still running: try again next interval.
                Err(std::sync::mpsc::TrySendError::Full(_)) => {}
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                    self.syncer = None;
                    self.sync();
                }
            },
            Err(_) => self.sync(),
        }
    }

    fn sync(&mut self) {
        if !self.dirty {
            return;
        }
        if let Some(active) = &self.active {
            match active.file.sync_data() {
                Ok(()) => {
                    self.dirty = false;
                    self.last_sync = Instant::now();
                }
                // Retried at the next interval; the data is already in the kernel.
                Err(e) => tracing::error!(error = %e, file = self.family.active, "could not fsync the log file"),
            }
        } else {
            self.dirty = false;
        }
    }
}

/// Starts the thread that runs periodic `fdatasync`s; `None` if it cannot be
/// started (the writer then syncs inline).
fn spawn_syncer() -> Option<std::sync::mpsc::SyncSender<File>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<File>(1);
    std::thread::Builder::new()
        .name("steward-audit-sync".into())
        .spawn(move || {
            for file in rx {
                // Retried at the next interval; the data is already in the kernel.
                if let Err(e) = file.sync_data() {
                    tracing::error!(error = %e, "could not fsync the audit log");
                }
            }
        })
        .ok()?;
    Some(tx)
}

fn ack_ok(acks: impl IntoIterator<Item = Ack>) {
    for ack in acks {
        // A writer that stopped waiting no longer needs the answer.
        let _ = ack.send(Ok(()));
    }
}

/// Cuts a trailing partial line (bytes after the last `\n`, left by a write
/// that failed half-way) and returns the new length. Those bytes were never
/// acknowledged, and appending after them would glue two records together.
fn trim_partial_tail(file: &File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut chunk = vec![0_u8; usize::try_from(TAIL_CHUNK).unwrap_or(65_536)];
    while end > 0 {
        let start = end.saturating_sub(TAIL_CHUNK);
        let n = usize::try_from(end - start).unwrap_or(chunk.len());
        file.read_exact_at(&mut chunk[..n], start)?;
        if let Some(pos) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            end = start + u64::try_from(pos).unwrap_or(0) + 1;
            break;
        }
        end = start;
    }
    if end != len {
        tracing::warn!(dropped_bytes = len - end, "trimmed a partial line from the end of a log file");
        file.set_len(end)?;
    }
    Ok(end)
}
