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
