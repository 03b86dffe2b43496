//! Store failure modes: schema refusals, a failing op, full disk, a
//! vanished or replaced database, write protection. Every one fails closed
//! with a [`StoreError`], never a panic, and the store recovers when the
//! cause goes away.

use super::*;

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    drop(Store::open(&path, super::redactor()).unwrap());
    let newer = i64::try_from(schema::MIGRATIONS.len()).unwrap() + 1;
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", newer).unwrap();
    match Store::open(&path, super::redactor()) {
        Err(StoreError::TooNew { found, supported }) => {
            assert_eq!(found, newer);
            assert_eq!(supported, newer - 1);
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    let msg = StoreError::TooNew { found: newer, supported: newer - 1 }.to_string();
    assert!(msg.contains("newer than this steward supports"), "{msg}");
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
    match Store::open(&path, super::redactor()) {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_op_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    // Submitted together, so they likely share a batch; either way only the
    // duplicate fails.
    let tasks: Vec<_> = ["a", "b", "a", "c"]
        .into_iter()
        .map(|id| {
            let store = store.clone();
            tokio::spawn(async move { store.admit(admission(id, T0, Some("post"), id)).await })
        })
        .collect();
    let mut ok = 0;
    let mut failed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(AdmitOutcome::Admitted) => ok += 1,
            Err(StoreError::Unavailable(msg)) => {
                assert!(msg.contains("UNIQUE"), "{msg}");
                failed += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, failed), (3, 1));
    assert_eq!(store.last(LastQuery::default()).await.unwrap().len(), 3);
}

/// One op at a time: each batch holds a lone op, which runs without a
/// savepoint; its failure must still undo exactly that op.
#[tokio::test]
async fn a_lone_failing_op_is_rolled_back_and_the_store_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    assert_eq!(store.admit(admission("a", T0, Some("post"), "a")).await.unwrap(), AdmitOutcome::Admitted);
    match store.admit(admission("a", T0 + 1, Some("post"), "again")).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("UNIQUE"), "{msg}"),
        other => panic!("expected the duplicate to fail, got {other:?}"),
    }
    let unknown = completion("nobody", T0 + 2, Some(200));
    assert!(matches!(store.complete(unknown).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.admit(admission("b", T0 + 3, Some("post"), "b")).await.unwrap(), AdmitOutcome::Admitted);
    let rows = store.last(LastQuery::default()).await.unwrap();
    let ids: Vec<_> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"]);
    // The failed duplicate left the first row as it was.
    assert_eq!((rows[1].loop_key.as_str(), rows[1].started_ms), ("a", T0));

    // A full disk, one op at a time: that op fails, and the store recovers.
    let big = |id: &str| Admission { input_summary: "x".repeat(64 * 1024), ..admission(id, T0 + 4, Some("post"), id) };
    store.exec_on_writer("PRAGMA max_page_count = 1").await.unwrap();
    match store.admit(big("c")).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("full"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    store.exec_on_writer("PRAGMA max_page_count = 1073741823").await.unwrap();
    assert_eq!(store.admit(big("c")).await.unwrap(), AdmitOutcome::Admitted);
    assert_eq!(store.last(LastQuery::default()).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_fails_every_call_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path());
    store.admit(admission("before", T0, Some("post"), "k")).await.unwrap();
    // Simulates a full disk: the file may not grow by a single page.
    store.exec_on_writer("PRAGMA max_page_count = 1").await.unwrap();
    let big =
        |id: String| Admission { input_summary: "x".repeat(64 * 1024), ..admission(&id, T0 + 1, Some("post"), &id) };
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.admit(big(format!("full{i}"))).await })
        })
        .collect();
    for task in tasks {
        match task.await.unwrap() {
            Err(StoreError::Unavailable(msg)) => assert!(msg.contains("full"), "{msg}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
    store.exec_on_writer("PRAGMA max_page_count = 1073741823").await.unwrap();
    assert_eq!(store.admit(big("after".into())).await.unwrap(), AdmitOutcome::Admitted);
    let ids: Vec<_> = store.last(LastQuery::default()).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["after", "before"]);
}

#[tokio::test]
async fn a_vanished_database_directory_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let store = open_in(&state);
    for i in 0..10 {
        store.admit(limited(&format!("c{i}"), T0, per_hour(10))).await.unwrap();
    }
    // The directory is moved away and its path made unusable (a plain file:
    // nothing can be created under it, even by root).
    let moved = dir.path().join("state-moved");
    std::fs::rename(&state, &moved).unwrap();
    std::fs::write(&state, b"not a directory").unwrap();
    match store.admit(limited("during", T0 + 1, per_hour(10))).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("is gone"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(store.kill_state().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(Store::open(&state.join("steward.db"), super::redactor()), Err(StoreError::Unavailable(_))));
    // Restored: the same file, with its window intact.
    std::fs::remove_file(&state).unwrap();
    std::fs::rename(&moved, &state).unwrap();
    assert!(matches!(
        store.admit(limited("after", T0 + 2, per_hour(10))).await.unwrap(),
        AdmitOutcome::RateLimited { .. }
    ));
}

#[tokio::test]
async fn a_replaced_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let store = Store::open(&path, super::redactor()).unwrap();
    store.admit(admission("a", T0, Some("post"), "k")).await.unwrap();
    let other = dir.path().join("other.db");
    drop(Store::open(&other, super::redactor()).unwrap());
    std::fs::rename(&other, &path).unwrap();
    match store.admit(admission("b", T0, Some("post"), "k")).await {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("replaced"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// A database steward cannot write is refused at open, not at the first
/// call: the file and its directory read-only (write bits cleared, or
/// `chattr +i` as root, who ignores write bits).
#[test]
fn a_write_protected_database_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    drop(Store::open(&path, super::redactor()).unwrap());
    let read_only = match unwritable::Unwritable::read_only(&[&path, dir.path()]) {
        Ok(guard) => guard,
        Err(unavailable) => return unavailable.not_run("store: a_write_protected_database_is_refused_at_open"),
    };
    let result = Store::open(&path, super::redactor());
    drop(read_only);
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
}
