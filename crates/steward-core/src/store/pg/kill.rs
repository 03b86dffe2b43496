//! The kill switch across a fleet: `steward stop` on any host engages it in
//! the shared database, and every change of the row (a stop, a resume, an
//! instance's loop breaker) `NOTIFY`s [`CHANNEL`] at its commit (a trigger:
//! migration 5);
//! every instance keeps a [`KillWatch`], which `LISTEN`s on a connection of
//! its own and also reads the row every [`WatchTiming::poll`] (the fallback
//! when notifications are lost: a pooler, a dropped connection). Each call
//! reads the watch's memory, not the database; admission re-reads the row
//! in its transaction, as on SQLite, and that read decides.
//!
//! Fail closed: when no read has succeeded for [`WatchTiming::stale_after`]
//! (the database is down, the listener's connection broke and the poll
//! fails too), [`KillWatch::current`] says [`Known::Unknown`] and the
//! caller refuses the call with the reason.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use super::super::{KillState, StoreError, admission};
use super::connect::Target;
use super::{Client, pg_error};

/// The channel every change of the kill switch notifies (the trigger of migration 5).
pub const CHANNEL: &str = "steward_kill";

/// How a [`KillWatch`] keeps up.
#[derive(Debug, Clone, Copy)]
pub struct WatchTiming {
    /// Read the row this often whatever the notifications do.
    pub poll: Duration,
    /// No successful read for this long: the state is unknown (refuse).
    pub stale_after: Duration,
    /// Listen for notifications (off only to test the poll alone).
    pub listen: bool,
}

impl Default for WatchTiming {
    /// A stop reaches every instance within 1 s by notification, within
    /// 1 s plus a read by the poll; 2 s without a read fails closed.
    fn default() -> Self {
        Self { poll: Duration::from_secs(1), stale_after: Duration::from_secs(2), listen: true }
    }
}

/// What an instance knows of the fleet's kill switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// The row as last read.
    State(KillState),
    /// No read succeeded recently: why (the caller refuses, fail closed).
    Unknown(String),
}

/// The last read and when it happened.
#[derive(Debug)]
struct Last {
    state: Option<KillState>,
    read_at: Option<Instant>,
    error: Option<String>,
}

/// This instance's view of the kill switch (see the module docs). Dropping
/// it stops its task.
#[derive(Debug)]
pub struct KillWatch {
    last: Arc<Mutex<Last>>,
    timing: WatchTiming,
    stop: CancellationToken,
}

impl Drop for KillWatch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl KillWatch {
    /// Starts watching the kill switch of the database at `target`.
    pub fn start(target: &Target, timing: WatchTiming) -> KillWatch {
        let last = Arc::new(Mutex::new(Last { state: None, read_at: None, error: None }));
        let stop = CancellationToken::new();
        tokio::spawn(watch(target.clone(), timing, Arc::clone(&last), stop.clone()));
        KillWatch { last, timing, stop }
    }

    /// Records a state this instance read right after its own write (a
    /// stop, a resume, its loop breaker), so its next read sees its own
    /// write without waiting for the notification's round trip. A state
    /// older than the one held (by `changed_ms`) is ignored.
    pub fn observe(&self, state: KillState) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.state.as_ref().is_none_or(|held| held.changed_ms <= state.changed_ms) {
            last.state = Some(state);
            last.read_at = Some(Instant::now());
            last.error = None;
        }
    }

    /// The kill switch as last read, or unknown when that read is older
    /// than `stale_after` (or there has been none).
    pub fn current(&self) -> Known {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match (&last.state, last.read_at) {
            (Some(state), Some(at)) if at.elapsed() < self.timing.stale_after => Known::State(state.clone()),
            _ => Known::Unknown(match &last.error {
                Some(error) => format!("the fleet's kill switch cannot be read: {error}"),
                None => "the fleet's kill switch has not been read yet".to_owned(),
            }),
        }
    }
}

/// Engages the fleet's kill switch (unless engaged already: the first cause
/// stays) and notifies every instance, in one transaction.
pub async fn engage(client: &mut Client, reason: &str, source: &str, now_ms: i64) -> Result<(), StoreError> {
    in_tx!(client, "the kill switch's engagement", |db| admission::engage_kill(db, reason, source, now_ms));
    Ok(())
}

/// Releases the fleet's kill switch and notifies every instance.
pub async fn release(client: &mut Client, now_ms: i64) -> Result<(), StoreError> {
    in_tx!(client, "the kill switch's release", |db| admission::release_kill(db, now_ms));
    Ok(())
}

/// Reads the row in a short transaction of its own.
pub(super) async fn read(client: &mut Client) -> Result<KillState, StoreError> {
    Ok(in_tx!(client, "a read of the kill switch", |db| admission::kill_state(db)))
}

/// The watch's task: connect, listen, read on every notification and every
/// poll; on any failure, record it and connect again (every poll period).
async fn watch(target: Target, timing: WatchTiming, last: Arc<Mutex<Last>>, stop: CancellationToken) {
    let record = |result: Result<KillState, StoreError>| {
        let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(state) => {
                last.state = Some(state);
                last.read_at = Some(Instant::now());
                last.error = None;
            }
            Err(err) => last.error = Some(err.to_string()),
        }
    };
    loop {
        let connected = tokio::select! {
            connected = target.connect_raw() => connected,
            () = stop.cancelled() => return,
        };
        let (client, mut connection) = match connected {
            Ok(pair) => pair,
            Err(e) => {
                record(Err(e));
                tokio::select! {
                    () = tokio::time::sleep(timing.poll) => continue,
                    () = stop.cancelled() => return,
                }
            }
        };
        // The connection's messages: notifications to this task, the end of
        // the connection as the channel closing.
        let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel::<()>();
        let pump = tokio::spawn(async move {
            while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                if matches!(message, AsyncMessage::Notification(_)) && notes_tx.send(()).is_err() {
                    return;
                }
            }
        });
        // Dropping the client ends the connection's task.
        let mut client = Client::new(client, pump);
        if timing.listen
            && let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await
        {
            record(Err(pg_error("listening for the kill switch", &e)));
        }
        let mut poll = tokio::time::interval(timing.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                note = notes.recv() => {
                    if note.is_none() {
                        break; // the connection ended
                    }
                    while notes.try_recv().is_ok() {}
                }
                _ = poll.tick() => {}
                () = stop.cancelled() => return,
            }
            let read = read(&mut client).await;
            let failed = read.is_err();
            record(read);
            if failed && client.is_closed() {
                break;
            }
        }
    }
}
