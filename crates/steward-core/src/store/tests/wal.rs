//! The WAL stays bounded without a restart: a burst's WAL is truncated back
//! under [`JOURNAL_SIZE_LIMIT`] once it can be, and continuous writes (which
//! never let a passive checkpoint finish) still get the WAL rewound.
//! Bounds are "eventually, within a generous deadline", never timings.

use std::time::Instant;

use super::*;

/// Generous: a checkpoint pass runs every second, so this is many passes
/// even on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(30);

fn wal_len(db: &Path) -> u64 {
    std::fs::metadata(checkpoint::wal_path(db)).map_or(0, |m| m.len())
}

/// A journal row of about a page: a burst grows the WAL quickly.
fn fat(id: &str, now_ms: i64) -> Admission {
    Admission { input_summary: "x".repeat(3_000), ..admission(id, now_ms, Some("post"), id) }
}

fn histogram(store: &Store, mode: CheckpointMode) -> CheckpointHistogram {
    store.wal_stats().checkpoints.into_iter().find(|h| h.mode == mode).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_burst_the_wal_file_is_truncated_back_under_the_limit_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("steward.db");
    let store = Store::open(&db, crate::store::tests::redactor()).unwrap();
    // A reader holding a snapshot (a slow `steward last`, a backup) keeps
    // every checkpoint from copying past it, so the burst grows the WAL well
    // past the limit, as continuous writes did before the checkpointer
    // escalated.
    let pin = rusqlite::Connection::open(&db).unwrap();
    pin.execute_batch("BEGIN; SELECT COUNT(*) FROM calls;").unwrap();
    let mut admitted = 0_i64;
    while wal_len(&db) <= JOURNAL_SIZE_LIMIT + JOURNAL_SIZE_LIMIT / 2 {
        assert!(admitted < 100_000, "the WAL did not grow: {} bytes", wal_len(&db));
        store.admit(fat(&format!("burst-{admitted}"), T0 + admitted)).await.unwrap();
        admitted += 1;
    }
    pin.execute_batch("COMMIT").unwrap();

    // No more writes, no restart: the checkpointer alone brings it back
    // (a truncate: no commit comes to apply `journal_size_limit`). The
    // count is recorded just after the file shrinks, so both are awaited.
    let start = Instant::now();
    while wal_len(&db) > JOURNAL_SIZE_LIMIT || histogram(&store, CheckpointMode::Truncate).count == 0 {
        assert!(
            start.elapsed() < DEADLINE,
            "WAL still {} bytes after {DEADLINE:?}: {:?}",
            wal_len(&db),
            store.wal_stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.wal_stats().wal_bytes, wal_len(&db));
    // Nothing lost, and the store goes on.
    let rows = store.tool_counts_in(Window::after(0)).await.unwrap();
    assert_eq!(rows, [("post".to_owned(), u64::try_from(admitted).unwrap())]);
    assert_eq!(store.admit(fat("after", T0 + admitted)).await.unwrap(), AdmitOutcome::Admitted);
    drop(store);
    let reopened = Store::open(&db, crate::store::tests::redactor()).unwrap();
    let rows = reopened.tool_counts_in(Window::after(0)).await.unwrap();
    assert_eq!(rows, [("post".to_owned(), u64::try_from(admitted + 1).unwrap())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn continuous_writes_still_get_the_wal_rewound() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("steward.db");
    let store = Store::open(&db, crate::store::tests::redactor()).unwrap();
    // Eight writers back to back: a commit lands during every passive pass,
    // so only an escalated checkpoint can rewind the WAL.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (store, stop) = (store.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut n = 0_i64;
                while !stop.load(Ordering::Relaxed) {
                    store.admit(fat(&format!("w{w}-{n}"), T0 + n)).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let start = Instant::now();
    let (mut most_frames, mut rewound) = (0, false);
    while !rewound || histogram(&store, CheckpointMode::Restart).count == 0 {
        assert!(start.elapsed() < DEADLINE, "never rewound under continuous writes: {:?}", store.wal_stats());
        let frames = store.wal_stats().wal_frames;
        rewound |= frames < most_frames;
        most_frames = most_frames.max(frames);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for writer in writers {
        written += writer.await.unwrap();
    }
    let rows = store.tool_counts_in(Window::after(0)).await.unwrap();
    assert_eq!(rows, [("post".to_owned(), u64::try_from(written).unwrap())], "nothing lost");
}

/// The WAL header's first salt: SQLite draws a new one at every rewind.
fn wal_salt(db: &Path) -> [u8; 4] {
    let header = std::fs::read(checkpoint::wal_path(db)).unwrap();
    header[16..20].try_into().unwrap()
}

/// At an agent's pace the WAL is rewound by a commit of the checkpointer's
/// own, right after a pass copied it, not by the next call's commit (which
/// would pay SQLite's header `fsync`); and a store at rest then writes
/// nothing, not even passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_rewound_between_calls_and_a_quiet_store_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("steward.db");
    let store = Store::open(&db, crate::store::tests::redactor()).unwrap();
    let commits = || store.inner().checkpoints.commits.load(Ordering::Relaxed);
    let passes = || histogram(&store, CheckpointMode::Passive).count;

    for (n, call) in ["first", "second"].into_iter().enumerate() {
        let salt_before = wal_salt(&db);
        assert_eq!(
            store.admit(admission(call, T0 + i64::try_from(n).unwrap(), Some("post"), call)).await.unwrap(),
            AdmitOutcome::Admitted
        );
        if n > 0 {
            assert_eq!(wal_salt(&db), salt_before, "the call's commit appended to the WAL; it did not rewind it");
        }
        // The next pass copies the call and the writer rewinds the WAL with its probe.
        let after_call = commits();
        let start = Instant::now();
        while commits() == after_call {
            assert!(start.elapsed() < DEADLINE, "no rewind after a pass: {:?}", store.wal_stats());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_ne!(wal_salt(&db), salt_before, "the probe's commit rewound the WAL");
        // At rest: no more commits, and the passes wait for a call.
        let (rest_commits, rest_passes) = (commits(), passes());
        tokio::time::sleep(checkpoint::CHECKPOINT_EVERY * 3).await;
        assert_eq!((commits(), passes()), (rest_commits, rest_passes), "a store at rest wrote or checkpointed");
    }
    // Nothing lost.
    assert_eq!(store.tool_counts_in(Window::after(0)).await.unwrap(), [("post".to_owned(), 2)]);
}
