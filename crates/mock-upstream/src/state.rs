//! Owns [`Shared`], the state every connection and handler of one mock
//! instance sees: the request log, the fault switches, the status store, id
//! counters and the shutdown signal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio_util::sync::CancellationToken;

use crate::faults::FaultState;
use crate::recording::Recorder;
use crate::rest::StatusStore;
use crate::script::Scripts;

/// State shared by one running mock, behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Every upstream request, in order.
    pub recorder: Recorder,
    /// Configured faults and queued statuses; locked once per request.
    pub faults: Mutex<FaultState>,
    /// The in-memory social-media statuses.
    pub statuses: Mutex<StatusStore>,
    /// Scripted answers for the next upstream requests.
    pub scripts: Mutex<Scripts>,
    /// Source of the numeric part of LLM object ids (`chatcmpl-mock7`) and
    /// request ids, so ids are unique per instance and deterministic.
    sequence: AtomicU64,
    /// `http://127.0.0.1:PORT`, used to build absolute URLs in responses.
    pub base_url: String,
    /// The one shutdown signal: stops the accept loop, asks every
    /// connection to finish gracefully and ends streaming bodies early.
    pub shutdown: CancellationToken,
}

impl Shared {
    pub(crate) fn new(base_url: String) -> Self {
        Self {
            recorder: Recorder::new(),
            faults: Mutex::new(FaultState::default()),
            statuses: Mutex::new(StatusStore::default()),
            scripts: Mutex::new(Scripts::default()),
            sequence: AtomicU64::new(0),
            base_url,
            shutdown: CancellationToken::new(),
        }
    }

    /// The next value of the per-instance sequence (starts at 1).
    pub(crate) fn next_id(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Locks `mutex`, recovering the data if a panicking thread poisoned it: all
/// state here stays consistent between statements, so the data is usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
