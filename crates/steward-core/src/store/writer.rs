//! The writer: owns the write connection, group-commits queued ops on its
//! thread, and runs each op's rule inside its transaction. The rules are
//! written once against `db::Db` in the module that owns their table
//! (`admission.rs`, `completion.rs`, `approvals.rs`, `spend.rs`, `undo.rs`,
//! `queries.rs`: see `db.rs`), so PostgreSQL runs the same ones; what stays
//! here is SQLite's own: the transaction and its savepoints (a precheck's
//! included) and the checkpoints that must briefly hold the writer (see
//! `checkpoint.rs`), between two batches.
//!
//! A lone op at rest (nothing queued, the thread idle) is run by its caller
//! on the same connection ([`Shared::try_inline`]): the same transaction the
//! thread would commit, without the two thread wake-ups (the writer's, then
//! the caller's) that an agent's call paid twice at an agent's pace. The
//! caller never waits for SQLite's write lock: when another connection holds
//! it (`steward stop` in another process), the op is queued for the thread,
//! which waits for the lock as before. Like any commit, an inline one pays
//! SQLite's WAL-header `fsync` if it is the one that rewinds the WAL; the
//! checkpointer's probe normally takes that (see `checkpoint.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use redact::Redactor;

use crate::decision::Decision;

use super::admission::{self, NewRow};
use super::checkpoint::{self, CheckpointMode, ESCALATION_BUSY_WAIT, Pass};
use super::completion;
use super::db::{Sqlite, at_once};
use super::schema::Opened;
use super::{
    Admission, AdmitOutcome, BUSY_TIMEOUT, Completion, MAX_BATCH_EXTRA, StoreError, WriterCounters, WriterStats,
    queries, spend, sql_error, undo,
};
use crate::redaction::SharedRedactor;

/// One write, with where its answer goes.
pub(super) struct Op {
    /// What to do.
    pub(super) req: Request,
    /// Answered once the batch holding this op committed (or failed).
    pub(super) reply: oneshot::Sender<Result<Response, StoreError>>,
}

/// The writes the store performs.
#[derive(Debug)]
pub(super) enum Request {
    Admit(Admission),
    /// What `Admit` would answer, with nothing written (see `Store::precheck`).
    Precheck(Admission),
    Approval(super::approvals::ApprovalWrite),
    Refused {
        admission: Admission,
        decision: Decision,
        reason: String,
        status: u16,
    },
    Complete(Completion),
    Withdraw {
        call_id: String,
        decision: Decision,
        reason: String,
        status: u16,
        now_ms: i64,
    },
    EngageKill {
        reason: String,
        source: String,
        now_ms: i64,
    },
    ReleaseKill {
        now_ms: i64,
    },
    SettleInterrupted {
        now_ms: i64,
    },
    KvSet {
        key: String,
        value: String,
        now_ms: i64,
    },
    KvDelete {
        key: String,
    },
    PruneJournal {
        before_ms: i64,
        max_rows: u64,
    },
    PruneSpend {
        before_day: String,
        max_rows: u64,
    },
    ClaimUndo(super::UndoClaim),
    FinishUndo {
        call_id: String,
        state: super::UndoState,
        reason: Option<String>,
        now_ms: i64,
    },
    /// A real write (see `Store::check_writable`).
    Ping,
    /// A `RESTART` or `TRUNCATE` checkpoint, run between two batches (never
    /// inside a transaction), asked for by the checkpointer thread.
    Checkpoint(CheckpointMode),
    /// The probe write of [`Request::Ping`] in a transaction of its own,
    /// asked for by the checkpointer right after a pass copied the whole
    /// WAL: its commit rewinds the WAL and pays SQLite's header `fsync`
    /// between calls instead of inside the next call's commit (see
    /// `checkpoint.rs`).
    Rewind,
    #[cfg(test)]
    Exec(String),
}

/// What a write answers.
#[derive(Debug)]
pub(super) enum Response {
    Admit(AdmitOutcome),
    Done,
    Count(u64),
    Claim(Box<super::ClaimOutcome>),
    Checkpointed(Pass),
    Decided(Box<super::approvals::Decided>),
}

/// Starts the writer thread. It runs until every sender is dropped.
/// `redactor` is for the one value the writer copies inside the database
/// (see [`admit`]); every value a request carries was redacted before it
/// was queued. The returned [`Shared`] runs lone ops inline.
pub(super) fn spawn(
    writer: Opened,
    rx: mpsc::Receiver<Op>,
    redactor: SharedRedactor,
) -> std::io::Result<(Arc<Shared>, JoinHandle<()>)> {
    let shared = Arc::new(Shared {
        writer: Mutex::new(Writer { opened: writer, redactor }),
        thread_busy: AtomicBool::new(false),
        counters: WriterCounters::default(),
    });
    let thread = Arc::clone(&shared);
    let handle = std::thread::Builder::new().name("steward-store-writer".into()).spawn(move || run(&thread, rx))?;
    Ok((shared, handle))
}

/// The write connection, shared by the writer thread and the callers that
/// run a lone op inline. Whoever holds the mutex is the only writer of this
/// store handle: batches and inline ops never overlap.
pub(super) struct Shared {
    writer: Mutex<Writer>,
    /// Set while the thread holds ops it took from the queue: a caller then
    /// queues instead of overtaking them.
    thread_busy: AtomicBool,
    counters: WriterCounters,
}

/// What the writer owns.
struct Writer {
    /// The write connection.
    opened: Opened,
    /// For the kill switch's reason, copied onto refused calls.
    redactor: SharedRedactor,
}

impl Shared {
    /// Runs `req` on the caller's thread, alone in its transaction, when
    /// the writer is free: the thread holds no op and no other caller is
    /// writing (the caller checked that nothing is queued). `None` means it
    /// did not run and must be queued: the writer is busy, or another
    /// connection (another process) holds SQLite's write lock, which the
    /// caller never waits for. Checkpoints and the rewind probe only come
    /// through the queue.
    pub(super) fn try_inline(&self, req: &Request) -> Option<Result<Response, StoreError>> {
        if matches!(req, Request::Checkpoint(_) | Request::Rewind) || self.thread_busy.load(Ordering::Acquire) {
            return None;
        }
        let writer = match self.writer.try_lock() {
            Ok(writer) => writer,
            // Poisoned: the thread recovers the connection (see `lock`).
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => return None,
        };
        Some(match run_batch(&writer, &[req], Wait::No) {
            Ok(Some(mut results)) => {
                self.counted(results.len(), true);
                results
                    .pop()
                    .unwrap_or_else(|| Err(StoreError::Unavailable("an inline op's batch returned no result".into())))
            }
            Ok(None) => return None,
            Err(e) => {
                tracing::error!(error = %e, ops = 1, "state store batch failed");
                Err(e)
            }
        })
    }

    /// The writer, for the thread: waits for an inline op to finish, and
    /// after a caller panicked mid-op rolls back what it left open.
    fn lock(&self) -> std::sync::MutexGuard<'_, Writer> {
        let writer = self.writer.lock().unwrap_or_else(|poisoned| {
            // Recovered below: callers may run inline again afterwards.
            self.writer.clear_poison();
            PoisonError::into_inner(poisoned)
        });
        if !writer.opened.conn.is_autocommit() {
            let _ = writer.opened.conn.execute_batch("ROLLBACK");
        }
        writer
    }

    /// Batches and ops committed so far.
    pub(super) fn stats(&self) -> WriterStats {
        let counters = &self.counters;
        WriterStats {
            batches: counters.batches.load(Ordering::Relaxed),
            ops: counters.ops.load(Ordering::Relaxed),
            inline: counters.inline.load(Ordering::Relaxed),
        }
    }

    fn counted(&self, ops: usize, inline: bool) {
        let counters = &self.counters;
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.ops.fetch_add(u64::try_from(ops).unwrap_or(u64::MAX), Ordering::Relaxed);
        if inline {
            counters.inline.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn run(shared: &Shared, mut rx: mpsc::Receiver<Op>) {
    let mut batch = Vec::with_capacity(MAX_BATCH_EXTRA + 1);
    // A checkpointer's op found while draining: it runs alone, after the
    // batch gathered so far.
    let mut alone: Option<Op> = None;
    loop {
        let op = match alone.take() {
            Some(op) => op,
            None => match rx.blocking_recv() {
                Some(op) => op,
                None => break,
            },
        };
        shared.thread_busy.store(true, Ordering::Release);
        match op.req {
            Request::Checkpoint(mode) => {
                let pass = run_checkpoint(&shared.lock().opened, mode);
                let _ = op.reply.send(pass.map(Response::Checkpointed));
            }
            Request::Rewind => {
                let committed = run_waiting(&shared.lock(), &[&op.req]).and_then(|mut results| {
                    results
                        .pop()
                        .unwrap_or_else(|| Err(StoreError::Unavailable("the rewind's batch returned no result".into())))
                });
                let _ = op.reply.send(committed);
            }
            _ => {
                batch.push(op);
                while batch.len() <= MAX_BATCH_EXTRA {
                    match rx.try_recv() {
                        Ok(op) if matches!(op.req, Request::Checkpoint(_) | Request::Rewind) => {
                            alone = Some(op);
                            break;
                        }
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                let reqs: Vec<&Request> = batch.iter().map(|op| &op.req).collect();
                // The writer is released before the answers wake anyone.
                let ran = run_waiting(&shared.lock(), &reqs);
                drop(reqs);
                match ran {
                    Ok(results) => {
                        shared.counted(results.len(), false);
                        for (op, result) in batch.drain(..).zip(results) {
                            // A caller that gave up waiting no longer needs the answer.
                            let _ = op.reply.send(result);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, ops = batch.len(), "state store batch failed");
                        for op in batch.drain(..) {
                            let _ = op.reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
        // Cleared only when the queue looked empty: a caller that finds it
        // clear and nothing queued runs inline.
        if alone.is_none() {
            shared.thread_busy.store(false, Ordering::Release);
        }
    }
}

/// Runs an escalated checkpoint on the writer's connection. Readers (and
/// another process's writer) are waited for at most
/// [`ESCALATION_BUSY_WAIT`], so the writer's pause stays bounded: a
/// checkpoint that could not finish reports busy and is retried later.
fn run_checkpoint(writer: &Opened, mode: CheckpointMode) -> Result<Pass, StoreError> {
    let conn = &writer.conn;
    conn.busy_timeout(ESCALATION_BUSY_WAIT).map_err(|e| sql_error("shortening busy_timeout", e))?;
    let pass = checkpoint::run(conn, mode);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| sql_error("restoring busy_timeout", e))?;
    pass
}

/// Whether a batch waits for SQLite's write lock (`busy_timeout`) when
/// another connection holds it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The thread: waits up to `busy_timeout`, as every batch always did.
    Yes,
    /// A caller's inline op: never waits (the op is queued instead).
    No,
}

/// Runs a batch in one transaction. `Err` means nothing of the batch was
/// committed; `Ok(Some)` carries each op's own result (an op that failed
/// alone was rolled back: to its savepoint, or with the transaction when it
/// was the batch's only op); `Ok(None)` means it did not start, because the
/// write lock was held elsewhere and `wait` is [`Wait::No`].
fn run_batch(
    writer: &Writer,
    batch: &[&Request],
    wait: Wait,
) -> Result<Option<Vec<Result<Response, StoreError>>>, StoreError> {
    writer.opened.check_same_file()?;
    let conn = &writer.opened.conn;
    // Cached statements: parsing BEGIN and COMMIT again was a tenth of the
    // writer's CPU per batch under streaming load.
    if !begin(conn, wait)? {
        return Ok(None);
    }
    let redactor = writer.redactor.load();
    let mut results = Vec::with_capacity(batch.len());
    // A lone op (the usual case at agent rates) needs no savepoint: when it
    // fails, rolling back the transaction is rolling back the op.
    let lone = batch.len() == 1;
    for &req in batch {
        let result = if lone { apply(conn, req, &redactor) } else { apply_in_savepoint(conn, req, &redactor) };
        if conn.is_autocommit() {
            // SQLite rolled back the whole transaction (I/O error, disk full):
            // the earlier ops' effects are gone too, so all of them fail.
            return Err(match result {
                Err(e) => e,
                Ok(_) => StoreError::Unavailable("the write transaction was rolled back".into()),
            });
        }
        results.push(result);
    }
    if lone && results.iter().any(Result::is_err) {
        conn.prepare_cached("ROLLBACK")
            .and_then(|mut s| s.execute([]))
            .map_err(|e| sql_error("rolling back a failed op", e))?;
        return Ok(Some(results));
    }
    commit(conn).map(|()| Some(results))
}

/// [`run_batch`] for the thread, which waits for the write lock.
fn run_waiting(writer: &Writer, batch: &[&Request]) -> Result<Vec<Result<Response, StoreError>>, StoreError> {
    run_batch(writer, batch, Wait::Yes)?
        .ok_or_else(|| StoreError::Unavailable("a batch that waits for the write lock did not start".into()))
}

/// `BEGIN IMMEDIATE`: takes SQLite's write lock. With [`Wait::No`] the
/// busy timeout is zero for that one statement (restored before anything
/// else runs, so the rest of the transaction behaves as the thread's), and
/// `false` means another connection holds the lock.
fn begin(conn: &Connection, wait: Wait) -> Result<bool, StoreError> {
    if wait == Wait::No {
        conn.busy_timeout(std::time::Duration::ZERO).map_err(|e| sql_error("zeroing busy_timeout", e))?;
    }
    let begun = conn.prepare_cached("BEGIN IMMEDIATE").and_then(|mut s| s.execute([]));
    if wait == Wait::No {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| {
            if begun.is_ok() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            sql_error("restoring busy_timeout", e)
        })?;
    }
    match begun {
        Ok(_) => Ok(true),
        Err(rusqlite::Error::SqliteFailure(f, _))
            if wait == Wait::No && f.code == rusqlite::ffi::ErrorCode::DatabaseBusy =>
        {
            Ok(false)
        }
        Err(e) => Err(sql_error("starting a write transaction", e)),
    }
}

fn commit(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([])).map(|_| ()).map_err(|e| {
        // Still inside the transaction after a failed COMMIT: end it, the
        // batch is reported failed either way.
        let _ = conn.execute_batch("ROLLBACK");
        sql_error("committing", e)
    })
}

fn apply_in_savepoint(conn: &Connection, req: &Request, redactor: &Redactor) -> Result<Response, StoreError> {
    conn.prepare_cached("SAVEPOINT op")
        .and_then(|mut s| s.execute([]))
        .map_err(|e| sql_error("opening a savepoint", e))?;
    let result = apply(conn, req, redactor);
    if conn.is_autocommit() {
        return result;
    }
    if result.is_err() {
        conn.prepare_cached("ROLLBACK TO op")
            .and_then(|mut s| s.execute([]))
            .map_err(|e| sql_error("rolling back a failed op", e))?;
    }
    conn.prepare_cached("RELEASE op")
        .and_then(|mut s| s.execute([]))
        .map_err(|e| sql_error("releasing a savepoint", e))?;
    result
}

fn apply(conn: &Connection, req: &Request, redactor: &Redactor) -> Result<Response, StoreError> {
    match req {
        Request::Admit(a) => at_once(admission::admit(&Sqlite(conn), a, redactor)).map(Response::Admit),
        Request::Precheck(a) => precheck(conn, a, redactor).map(Response::Admit),
        Request::Approval(w) => at_once(w.apply(&Sqlite(conn))),
        Request::Refused { admission, decision, reason, status } => {
            let row = NewRow { decision: *decision, reason: Some(reason), status: Some(*status), finished: true };
            at_once(admission::insert_call(&Sqlite(conn), admission, &row)).map(|()| Response::Done)
        }
        Request::Complete(c) => at_once(completion::complete(&Sqlite(conn), c)).map(|()| Response::Done),
        Request::Withdraw { call_id, decision, reason, status, now_ms } => {
            at_once(completion::withdraw(&Sqlite(conn), call_id, *decision, reason, *status, *now_ms))
                .map(|()| Response::Done)
        }
        Request::EngageKill { reason, source, now_ms } => {
            at_once(admission::engage_kill(&Sqlite(conn), reason, source, *now_ms)).map(|()| Response::Done)
        }
        Request::ReleaseKill { now_ms } => {
            at_once(admission::release_kill(&Sqlite(conn), *now_ms)).map(|()| Response::Done)
        }
        Request::SettleInterrupted { now_ms } => {
            at_once(completion::settle_interrupted(&Sqlite(conn), *now_ms, None)).map(Response::Count)
        }
        Request::KvSet { key, value, now_ms } => {
            at_once(queries::kv_set(&Sqlite(conn), key, value, *now_ms)).map(|()| Response::Done)
        }
        Request::KvDelete { key } => at_once(queries::kv_delete(&Sqlite(conn), key)).map(|()| Response::Done),
        Request::PruneJournal { before_ms, max_rows } => {
            at_once(queries::prune_journal(&Sqlite(conn), *before_ms, *max_rows)).map(Response::Count)
        }
        Request::PruneSpend { before_day, max_rows } => {
            at_once(spend::prune(&Sqlite(conn), before_day, *max_rows)).map(Response::Count)
        }
        Request::ClaimUndo(claim) => at_once(undo::claim(&Sqlite(conn), claim)).map(|c| Response::Claim(Box::new(c))),
        Request::FinishUndo { call_id, state, reason, now_ms } => {
            at_once(undo::finish(&Sqlite(conn), call_id, *state, reason.as_deref(), *now_ms)).map(|()| Response::Done)
        }
        Request::Ping | Request::Rewind => at_once(queries::write_probe(&Sqlite(conn))).map(|()| Response::Done),
        // Never batched: `run` takes checkpoints out of the batch.
        Request::Checkpoint(mode) => {
            Err(StoreError::Unavailable(format!("a {} checkpoint cannot run inside a transaction", mode.as_str())))
        }
        #[cfg(test)]
        Request::Exec(sql) => conn.execute_batch(sql).map(|()| Response::Done).map_err(|e| sql_error("test exec", e)),
    }
}

/// Admission's verdict on `a` without its effects: the same code inside a
/// savepoint that is always rolled back, so the two cannot disagree on what
/// would be refused. The loop breaker is left out: it engages the kill
/// switch, and only the authoritative admission may do that.
fn precheck(conn: &Connection, a: &Admission, redactor: &Redactor) -> Result<AdmitOutcome, StoreError> {
    let mut a = a.clone();
    a.loop_breaker.max_identical = 0;
    conn.prepare_cached("SAVEPOINT precheck")
        .and_then(|mut s| s.execute([]))
        .map_err(|e| sql_error("opening the precheck savepoint", e))?;
    let outcome = at_once(admission::admit(&Sqlite(conn), &a, redactor));
    if !conn.is_autocommit() {
        conn.prepare_cached("ROLLBACK TO precheck")
            .and_then(|mut s| s.execute([]))
            .and_then(|_| conn.prepare_cached("RELEASE precheck").and_then(|mut s| s.execute([])))
            .map_err(|e| sql_error("rolling back the precheck", e))?;
    }
    outcome
}
