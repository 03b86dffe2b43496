//! Backups against a local destination: round trip, corruption, encryption,
//! retention over simulated months, a backup under write load, in-place
//! restore, and the no-secret-leak check.

mod backup_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use backup_support::*;
use steward_core::backup::health::{self, KV_VERIFIED_PREFIX};
use steward_core::backup::{BackupError, RestoreMode};
use tokio_util::sync::CancellationToken;

const DAY: i64 = 86_400_000;

#[tokio::test]
async fn round_trip_restores_identical_rows_and_a_loadable_config() {
    let s = Setup::new(None, "", "");
    let store = s.store();
    write_calls(&store, "call", 50, T0).await;
    store.engage_kill("testing", "cli", T0 + 100).await.unwrap();
    let backups = s.backups();
    let report =
        backups.backup_now(Some(&store), "manual", T0 + 1000, quiet(), &CancellationToken::new()).await.unwrap();
    let record = &report.record;
    assert_eq!(record.files, 5, "config, store, calendar, 2 agent-state files; never the credential file");
    assert!(!record.encrypted);
    let (listed, warnings) = backups.list().await.unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(listed, vec![record.clone()]);

    let target = s.root().join("restored");
    let restored = backups
        .restore(
            &record.id,
            RestoreMode::Into(target.clone()),
            Some(&store),
            T0 + 2000,
            quiet(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(restored.files, 5);
    assert_eq!(
        std::fs::read(target.join("calendar.json")).unwrap(),
        std::fs::read(s.root().join("calendar.json")).unwrap()
    );
    assert_eq!(std::fs::read(target.join("agent-state/nested/deep.bin")).unwrap(), [0u8, 1, 2, 3, 255]);
    assert!(!target.join("secrets/social.token").exists(), "a credential file was backed up");
    assert!(!target.join("state/agent.token").exists());

    let restored_config = steward_core::config::load(&target.join("steward.toml")).unwrap();
    assert_eq!(restored_config.state.dir, target.join("state"));
    let restored_store = steward_core::store::Store::open(
        &restored_config.state.db_path(),
        steward_core::redaction::shared(redact::Redactor::default()),
    )
    .unwrap();
    assert_eq!(all_rows(&restored_store).await, all_rows(&store).await);
    assert_eq!(all_rows(&restored_store).await.len(), 50);
    assert_eq!(restored_store.kill_state().await.unwrap(), store.kill_state().await.unwrap());

    // Outcomes are recorded for the alert engine.
    let h = health::health(&store, T0 + 3000).await.unwrap();
    assert_eq!(h.last_success_id.as_deref(), Some(record.id.as_str()));
    assert!(!h.overdue && !h.failing);
    assert!(h.restore_test_due, "no restore test ran yet");
    let h = health::health(&store, T0 + 1000 + 27 * 3_600_000).await.unwrap();
    assert!(h.overdue, "no backup for more than 26 h must be overdue");

    // Restoring over existing files is refused.
    let err = backups
        .restore(&record.id, RestoreMode::Into(target.clone()), None, T0, quiet(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[tokio::test]
async fn a_corrupted_byte_fails_verify_naming_the_file() {
    let s = Setup::new(None, "", "");
    let mut random = vec![0u8; 1 << 20];
    rand::fill(&mut random[..]);
    std::fs::write(s.root().join("agent-state/big.bin"), &random).unwrap();
    let store = s.store();
    let backups = s.backups();
    let report = backups.backup_now(Some(&store), "manual", T0, quiet(), &CancellationToken::new()).await.unwrap();
    backups.verify(Some(&report.record.id), Some(&store), T0 + 1, quiet()).await.unwrap();
    let h = health::health(&store, T0 + 2).await.unwrap();
    assert_eq!(h.last_restore_test.map(|(_, ok)| ok), Some(true));

    let archive = s.dest().join(&report.record.archive);
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&archive, &bytes).unwrap();
    let err = backups.verify(Some(&report.record.id), Some(&store), T0 + 3, quiet()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BackupError::Verify { .. }), "{text}");
    assert!(text.contains("agent-state/big.bin"), "the damaged file is not named: {text}");
    let h = health::health(&store, T0 + 4).await.unwrap();
    assert_eq!(h.last_restore_test.map(|(_, ok)| ok), Some(false));
    assert!(h.restore_test_due);
    assert!(h.last_restore_test_detail.unwrap().contains("agent-state/big.bin"));
    // The scratch directory is gone either way.
    let leftovers: Vec<_> = std::fs::read_dir(&s.config.state.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".restore-") || n.starts_with(".backup-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn encrypted_round_trip_and_verify_without_the_identity_fails_clearly() {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let s = Setup::new(None, &format!("encrypt_to = [\"{recipient}\"]"), "");
    let store = s.store();
    write_calls(&store, "enc", 10, T0).await;
    let backups = s.backups();
    let report =
        backups.backup_now(Some(&store), "manual", T0 + 100, quiet(), &CancellationToken::new()).await.unwrap();
    assert!(report.record.encrypted);
    assert!(report.record.archive.ends_with(".tar.zst.age"));
    let stored = std::fs::read(s.dest().join(&report.record.archive)).unwrap();
    assert!(stored.starts_with(b"age-encryption.org/v1"), "the archive is not an age file");
    assert!(!stored.windows(8).any(|w| w == b"calendar"), "file names are visible in the encrypted archive");

    let err = backups.verify(Some(&report.record.id), None, T0, quiet()).await.unwrap_err();
    assert!(matches!(err, BackupError::NoIdentity), "{err}");
    assert!(err.to_string().contains("--identity"), "{err}");

    let wrong = s.backups().with_identity(age::x25519::Identity::generate());
    let err = wrong.verify(Some(&report.record.id), None, T0, quiet()).await.unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");

    let right = s.backups().with_identity(identity);
    right.verify(Some(&report.record.id), None, T0, quiet()).await.unwrap();
    let target = s.root().join("restored");
    right
        .restore(&report.record.id, RestoreMode::Into(target.clone()), None, T0, quiet(), &CancellationToken::new())
        .await
        .unwrap();
    let restored = steward_core::store::Store::open(
        &target.join("state/steward.db"),
        steward_core::redaction::shared(redact::Redactor::default()),
    )
    .unwrap();
    assert_eq!(all_rows(&restored).await, all_rows(&store).await);
}

#[tokio::test]
async fn retention_keeps_the_right_set_over_60_simulated_days() {
    let s = Setup::new(None, "keep = { daily = 7, weekly = 4, monthly = 6 }", "");
    let store = s.store();
    let backups = s.backups();
    let mut ids = Vec::new();
    let verified_day = 14; // 2026-09-15
    for day in 0..60 {
        let now = T0 + day * DAY;
        let report =
            backups.backup_now(Some(&store), "scheduled", now, quiet(), &CancellationToken::new()).await.unwrap();
        // Day 2 is verified too, but retention deletes it later: its mark must go with it.
        if day == verified_day || day == 2 {
            store.kv_set(&format!("{KV_VERIFIED_PREFIX}{}", report.record.id), "1", now).await.unwrap();
        }
        ids.push(report.record.id.clone());
        backups.apply_retention(&store, now + 3_700_000).await.unwrap();
    }
    let kept: BTreeSet<String> = backups.list().await.unwrap().0.into_iter().map(|r| r.id).collect();
    // Day 0 is 2026-09-01 (a Tuesday); day 59 is 2026-10-30 (a Friday).
    let day_of = |date: &str| -> usize {
        let d: jiff::civil::Date = date.parse().unwrap();
        usize::try_from((d - jiff::civil::date(2026, 9, 1)).get_days()).unwrap()
    };
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for date in ["2026-10-24", "2026-10-25", "2026-10-26", "2026-10-27", "2026-10-28", "2026-10-29", "2026-10-30"] {
        expected.insert(ids[day_of(date)].clone()); // daily
    }
    for date in ["2026-10-18", "2026-10-11"] {
        expected.insert(ids[day_of(date)].clone()); // weekly (Sundays end ISO weeks)
    }
    expected.insert(ids[day_of("2026-09-30")].clone()); // monthly
    expected.insert(ids[day_of("2026-09-15")].clone()); // the newest verified backup
    assert_eq!(kept, expected);
    let verified_mark = |id: &str| format!("{KV_VERIFIED_PREFIX}{id}");
    assert_eq!(store.kv_get(&verified_mark(&ids[2])).await.unwrap(), None, "a deleted backup's verified mark");
    assert!(store.kv_get(&verified_mark(&ids[verified_day as usize])).await.unwrap().is_some());
    // The archives went with their records.
    let archives = std::fs::read_dir(s.dest())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().to_string_lossy().ends_with(".tar.zst"))
        .count();
    assert_eq!(archives, expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_1000_concurrent_writes_restores_to_a_consistent_store() {
    let s = Setup::new(None, "", "");
    let store = s.store();
    let written = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..10 {
        let store = store.clone();
        let written = Arc::clone(&written);
        writers.push(tokio::spawn(async move {
            for i in 0..100 {
                let id = format!("w{w}-{i:03}");
                let now = T0 + i;
                store.admit(admission(&id, now)).await.unwrap();
                tokio::task::yield_now().await;
                store.complete(completion(&id, now + 5)).await.unwrap();
                written.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    while written.load(Ordering::SeqCst) < 200 {
        tokio::task::yield_now().await;
    }
    let wal = s.config.state.db_path().with_extension("db-wal");
    assert!(wal.exists(), "the store is not in WAL mode");
    let backups = s.backups();
    let report = backups.backup_now(None, "manual", T0 + 10_000, quiet(), &CancellationToken::new()).await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let live = all_rows(&store).await;
    assert_eq!(live.len(), 1000);

    let target = s.root().join("restored");
    backups
        .restore(&report.record.id, RestoreMode::Into(target.clone()), None, T0, quiet(), &CancellationToken::new())
        .await
        .unwrap();
    let restored = all_rows(
        &steward_core::store::Store::open(
            &target.join("state/steward.db"),
            steward_core::redaction::shared(redact::Redactor::default()),
        )
        .unwrap(),
    )
    .await;
    assert!(restored.len() >= 199, "the snapshot predates writes that had finished: {}", restored.len());
    // A consistent point in time: every restored row is the live row, or the
    // live row as it was before its completion committed.
    for row in &restored {
        let now = live.iter().find(|r| r.id == row.id).unwrap();
        if row.finished_ms.is_some() {
            assert_eq!(row, now);
        } else {
            assert_eq!(row.decision, "allowed");
            assert_eq!(row.input_summary, now.input_summary);
        }
    }
}

#[tokio::test]
async fn in_place_restore_snapshots_first_and_puts_everything_back() {
    let s = Setup::new(None, "", "");
    let store = s.store();
    write_calls(&store, "before", 5, T0).await;
    let backups = s.backups();
    let original =
        backups.backup_now(Some(&store), "manual", T0 + 100, quiet(), &CancellationToken::new()).await.unwrap();
    let before_rows = all_rows(&store).await;
    write_calls(&store, "after", 7, T0 + 200).await;
    std::fs::write(s.root().join("calendar.json"), "{\"events\":[]}").unwrap();
    drop(store);

    let report = backups
        .restore(&original.record.id, RestoreMode::InPlace, None, T0 + 300, quiet(), &CancellationToken::new())
        .await
        .unwrap();
    let pre = report.pre_restore_backup.clone().unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert!(std::fs::read_to_string(s.root().join("calendar.json")).unwrap().contains("dentist"));
    assert_eq!(all_rows(&s.store()).await, before_rows);
    // The state from before the restore is itself a backup, tagged as such.
    let (records, _) = backups.list().await.unwrap();
    let pre_record = records.iter().find(|r| r.id == pre).unwrap();
    assert_eq!(pre_record.tag, "pre-restore");
    let target = s.root().join("undo");
    backups
        .restore(&pre, RestoreMode::Into(target.clone()), None, T0, quiet(), &CancellationToken::new())
        .await
        .unwrap();
    let undo = all_rows(
        &steward_core::store::Store::open(
            &target.join("state/steward.db"),
            steward_core::redaction::shared(redact::Redactor::default()),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(undo.len(), 12);
}

#[tokio::test]
async fn no_secret_reaches_a_backup_artifact_or_message() {
    let s = Setup::new(None, "include_logs = true", "");
    std::fs::create_dir_all(&s.config.logging.dir).unwrap();
    std::fs::write(s.config.logging.dir.join("audit.jsonl"), "{\"tool\":\"post\"}\n").unwrap();
    let store = s.store();
    write_calls(&store, "c", 3, T0).await;
    let backups = s.backups();
    let report = backups.backup_now(Some(&store), "manual", T0, quiet(), &CancellationToken::new()).await.unwrap();
    let target = s.root().join("restored");
    backups
        .restore(
            &report.record.id,
            RestoreMode::Into(target.clone()),
            Some(&store),
            T0,
            quiet(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(target.join("state/logs/audit.jsonl").exists(), "include_logs did not include the logs");
    let err = backups.verify(Some("20990101T000000Z-0000"), Some(&store), T0, quiet()).await.unwrap_err();
    assert!(!err.to_string().contains(CANARY));
    drop(store);
    // Archives (decompressed), records, the restored tree, the state dir.
    leak_check::assert_no_needles(&s.dest(), &[CANARY], &[]);
    leak_check::assert_no_needles(&target, &[CANARY], &[]);
    leak_check::assert_no_needles(&s.config.state.dir, &[CANARY], &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_catches_up_and_records_a_restore_test() {
    // Slots once a year: only the catch-up of never-run schedules can fire.
    let s = Setup::new(None, "schedule = \"0 3 1 1 *\"\nrestore_test = \"0 4 1 1 *\"", "");
    let store = s.store();
    let tracker = tokio_util::task::TaskTracker::new();
    let shutdown = CancellationToken::new();
    let secrets = Arc::new(arc_swap::ArcSwap::from_pointee(s.secrets()));
    steward_core::backup::schedule::spawn(&tracker, Arc::clone(&s.config), store.clone(), secrets, shutdown.clone());
    let started = std::time::Instant::now();
    let h = loop {
        let now = steward_core::clock::unix_ms(std::time::SystemTime::now());
        let h = health::health(&store, now).await.unwrap();
        if h.last_restore_test.is_some() {
            break h;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "no restore test ran: {h:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(h.last_restore_test.map(|(_, ok)| ok), Some(true), "{h:?}");
    assert!(h.last_success_id.is_some() && !h.overdue && !h.restore_test_due && !h.failing, "{h:?}");
    assert!(store.kv_get(health::KV_SCHEDULE_LAST_RUN).await.unwrap().is_some());
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    let (records, _) = s.backups().list().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].tag, "scheduled");
}
