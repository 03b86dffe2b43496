//! Tests of the alert rules fed by other subsystems' records: credential
//! expiry (staged: one notice per threshold crossed, no reminders until it
//! has expired) and backups (failed, overdue, restore test), with injected
//! time against the real store.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use super::engine::rules;
use super::tests::{at, config, ms, redactor, t0};
use super::*;
use crate::backup::health::{KV_LAST_FAILURE, KV_LAST_RESTORE_TEST, KV_LAST_SUCCESS, Outcome, record};
use crate::secrets::tests::jwt_expiring as jwt;

const DAY: u64 = 86_400;

async fn secrets_with(config: &Config, token: &str) -> Arc<ArcSwap<Secrets>> {
    let token = token.to_owned();
    let env = move |name: &str| (name == "SOCIAL").then(|| token.clone());
    let resolution = Secrets::resolve_all_with(config, &env).await;
    assert!(resolution.errors.is_empty(), "{:?}", resolution.errors);
    Arc::new(ArcSwap::from_pointee(resolution.secrets))
}

fn keys(notices: &[Alert]) -> Vec<(&str, AlertStatus, Severity)> {
    notices.iter().map(|n| (n.key.as_str(), n.status, n.severity)).collect()
}

const EXPIRY: &str = "[alerts]\nrepeat_every = \"10m\"\n\n[credentials.social]\nsource = \"env:SOCIAL\"\n";
const KEY: &str = "credential_expiry:social";

#[tokio::test]
async fn credential_expiry_notifies_once_per_threshold_then_critically_once_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
    let config = config(EXPIRY);
    let metrics = Arc::new(Metrics::new());
    // Five days and an hour left: inside the 7-day threshold of [14, 7, 3, 1].
    let token = jwt(at(t0(), 5 * DAY + 3600));
    let secrets = secrets_with(&config, &token).await;
    let load = || async {
        Engine::load(&config, store.clone(), None, Arc::clone(&metrics), redactor())
            .await
            .with_credentials(&config, Arc::clone(&secrets))
    };
    let mut engine = load().await;

    let first = engine.evaluate(t0()).await;
    assert_eq!(keys(&first), [(KEY, AlertStatus::Firing, Severity::Warning)]);
    assert_eq!(first[0].title, "Credential `social` expires in 5 days");
    assert!(first[0].message.contains("7-day warning") && first[0].message.contains("secrets reload"));
    // No part of the token (header, claims, signature) reaches the notice.
    for part in token.split('.') {
        assert!(!first[0].message.contains(part) && !first[0].title.contains(part), "{part}");
    }

    // The same threshold is not repeated at repeat_every (10 m), even for days.
    for secs in [600, 3600, DAY] {
        assert!(engine.evaluate(at(t0(), secs)).await.is_empty(), "a reminder at +{secs}s");
    }
    // A restart neither repeats it nor forgets the stage.
    engine = load().await;
    assert!(engine.evaluate(at(t0(), DAY + 60)).await.is_empty());

    // Two days and an hour left: the 3-day threshold is a fresh notice.
    let three = engine.evaluate(at(t0(), 3 * DAY)).await;
    assert_eq!(keys(&three), [(KEY, AlertStatus::Firing, Severity::Warning)]);
    assert_eq!((three[0].repeat, three[0].label()), (0, "FIRING"));
    assert!(three[0].title.ends_with("expires in 2 days"), "{}", three[0].title);
    assert_eq!(three[0].since_ms, ms(t0()), "one incident from the first warning on");

    // Expired: critical, and reminded at repeat_every since calls now fail.
    let expired = engine.evaluate(at(t0(), 5 * DAY + 3601)).await;
    assert_eq!(keys(&expired), [(KEY, AlertStatus::Firing, Severity::Critical)]);
    assert!(expired[0].message.contains("credential_expired"), "{}", expired[0].message);
    let reminder = engine.evaluate(at(t0(), 5 * DAY + 3601 + 600)).await;
    assert_eq!((reminder.len(), reminder[0].label()), (1, "REMINDER"));

    // Rotated (what `steward secrets reload` swaps in): resolved.
    let fresh = secrets_with(&config, &jwt(at(t0(), 90 * DAY))).await;
    secrets.store(fresh.load_full());
    let resolved = engine.evaluate(at(t0(), 6 * DAY)).await;
    assert_eq!(keys(&resolved), [(KEY, AlertStatus::Resolved, Severity::Critical)]);
    assert!(engine.firing().is_empty());
}

#[tokio::test]
async fn a_credential_without_known_expiry_or_far_from_it_raises_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
    let config = config(EXPIRY);
    for token in ["plain-opaque-token".to_owned(), jwt(at(t0(), 30 * DAY))] {
        let secrets = secrets_with(&config, &token).await;
        let mut engine = Engine::load(&config, store.clone(), None, Arc::new(Metrics::new()), redactor())
            .await
            .with_credentials(&config, secrets);
        assert!(engine.evaluate(t0()).await.is_empty());
    }
}

const BACKUP: &str = "[backup]\ndestination = \"file:///var/backups/steward\"\n";

async fn outcome(store: &Store, key: &str, when: SystemTime, ok: bool, detail: &str) {
    let o = Outcome { ms: ms(when), ok, id: Some("20261126T100000Z".into()), detail: detail.into() };
    record(store, key, &o).await.unwrap();
}

#[tokio::test]
async fn backup_rules_fire_on_failure_age_and_missing_restore_tests() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
    let config = config(BACKUP);
    let mut engine = Engine::load(&config, store.clone(), None, Arc::new(Metrics::new()), redactor()).await;

    // A fresh install: nothing is overdue on day one.
    assert!(engine.evaluate(t0()).await.is_empty());
    assert!(engine.evaluate(at(t0(), 25 * 3600)).await.is_empty());
    // 27 h and never a backup: overdue.
    let overdue = engine.evaluate(at(t0(), 27 * 3600)).await;
    assert_eq!(keys(&overdue), [(rules::BACKUP_OVERDUE, AlertStatus::Firing, Severity::Critical)]);
    assert!(overdue[0].message.contains("No backup has succeeded"), "{}", overdue[0].message);

    // A backup succeeds: resolved.
    outcome(&store, KV_LAST_SUCCESS, at(t0(), 27 * 3600 + 60), true, "12 files").await;
    let resolved = engine.evaluate(at(t0(), 27 * 3600 + 120)).await;
    assert_eq!(keys(&resolved), [(rules::BACKUP_OVERDUE, AlertStatus::Resolved, Severity::Critical)]);

    // The next one fails (its detail quotes a secret): backup_failed, redacted by the sinks.
    outcome(&store, KV_LAST_FAILURE, at(t0(), 2 * DAY), false, "upload refused: 403").await;
    let failed = engine.evaluate(at(t0(), 2 * DAY + 60)).await;
    assert_eq!(keys(&failed), [(rules::BACKUP_FAILED, AlertStatus::Firing, Severity::Warning)]);
    assert!(failed[0].message.contains("upload refused: 403"), "{}", failed[0].message);
    // Still failing two days later: the failure says why, so "overdue" does not open too.
    let later = engine.evaluate(at(t0(), 4 * DAY)).await;
    assert!(later.iter().all(|n| n.key != rules::BACKUP_OVERDUE), "{later:?}");

    // Nine days without a restore test since backups were first watched.
    let nine = engine.evaluate(at(t0(), 9 * DAY)).await;
    assert!(nine.iter().any(|n| n.key == rules::RESTORE_TEST && n.status == AlertStatus::Firing), "{nine:?}");
    outcome(&store, KV_LAST_SUCCESS, at(t0(), 9 * DAY + 10), true, "12 files").await;
    outcome(&store, KV_LAST_RESTORE_TEST, at(t0(), 9 * DAY + 20), true, "verified").await;
    let healed = engine.evaluate(at(t0(), 9 * DAY + 30)).await;
    let mut healed_keys: Vec<_> = healed.iter().map(|n| (n.key.as_str(), n.status)).collect();
    healed_keys.sort_unstable();
    assert_eq!(
        healed_keys,
        [(rules::BACKUP_FAILED, AlertStatus::Resolved), (rules::RESTORE_TEST, AlertStatus::Resolved)]
    );

    // A failed restore test alerts at once, naming why.
    outcome(&store, KV_LAST_RESTORE_TEST, at(t0(), 10 * DAY), false, "sha256 mismatch in steward.toml").await;
    let broken = engine.evaluate(at(t0(), 10 * DAY + 10)).await;
    assert_eq!(keys(&broken), [(rules::RESTORE_TEST, AlertStatus::Firing, Severity::Warning)]);
    assert!(broken[0].message.contains("sha256 mismatch in steward.toml"), "{}", broken[0].message);

    // A passing test that grows older than 8 days alerts again.
    outcome(&store, KV_LAST_RESTORE_TEST, at(t0(), 10 * DAY + 60), true, "verified").await;
    let passed = engine.evaluate(at(t0(), 10 * DAY + 70)).await;
    assert_eq!(keys(&passed), [(rules::RESTORE_TEST, AlertStatus::Resolved, Severity::Warning)]);
    for d in 11..=18 {
        outcome(&store, KV_LAST_SUCCESS, at(t0(), d * DAY), true, "12 files").await;
    }
    assert!(engine.evaluate(at(t0(), 18 * DAY + 59)).await.is_empty(), "8 days are not over yet");
    let stale = engine.evaluate(at(t0(), 18 * DAY + 120)).await;
    assert_eq!(keys(&stale), [(rules::RESTORE_TEST, AlertStatus::Firing, Severity::Warning)]);
    assert!(stale[0].message.contains("8 days"), "{}", stale[0].message);
}

#[tokio::test]
async fn without_a_backup_section_no_backup_rule_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
    let mut engine = Engine::load(&config(""), store.clone(), None, Arc::new(Metrics::new()), redactor()).await;
    assert!(engine.evaluate(at(t0(), 30 * DAY)).await.is_empty());
    assert_eq!(store.kv_get(crate::backup::health::KV_WATCHED_SINCE).await.unwrap(), None);
}

#[tokio::test]
async fn a_backup_section_added_back_starts_a_fresh_watch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
    let load = |text: &'static str| {
        let store = store.clone();
        async move { Engine::load(&config(text), store, None, Arc::new(Metrics::new()), redactor()).await }
    };

    // Backups ran for a while: a success, then a failure, then a failed restore test.
    let mut engine = load(BACKUP).await;
    assert!(engine.evaluate(t0()).await.is_empty());
    outcome(&store, KV_LAST_SUCCESS, at(t0(), 3600), true, "12 files").await;
    outcome(&store, KV_LAST_FAILURE, at(t0(), DAY), false, "upload refused: 403").await;
    outcome(&store, KV_LAST_RESTORE_TEST, at(t0(), DAY + 60), false, "sha256 mismatch").await;
    drop(engine);

    // Then [backup] was removed: the watch ends.
    let mut engine = load("").await;
    assert_eq!(store.kv_get(crate::backup::health::KV_WATCHED_SINCE).await.unwrap(), None);
    assert!(engine.evaluate(at(t0(), 30 * DAY)).await.is_empty());
    drop(engine);

    // Added back 60 days later: the old failure, the old restore test and the
    // 59 days without a backup are an earlier configuration's, not news.
    let back = at(t0(), 60 * DAY);
    let mut engine = load(BACKUP).await;
    assert!(engine.evaluate(back).await.is_empty());
    assert_eq!(
        store.kv_get(crate::backup::health::KV_WATCHED_SINCE).await.unwrap(),
        Some(ms(back).to_string()),
        "the new watch starts at its first evaluation"
    );
    assert!(engine.evaluate(at(back, 25 * 3600)).await.is_empty(), "the same grace as a fresh install");
    let overdue = engine.evaluate(at(back, 27 * 3600)).await;
    assert_eq!(keys(&overdue), [(rules::BACKUP_OVERDUE, AlertStatus::Firing, Severity::Critical)]);
    assert!(overdue[0].message.contains("No backup has succeeded in the 1d 3h"), "{}", overdue[0].message);

    // A failure of the new watch is news at once.
    outcome(&store, KV_LAST_FAILURE, at(back, 28 * 3600), false, "disk full").await;
    let failed = engine.evaluate(at(back, 28 * 3600 + 60)).await;
    assert!(failed.iter().any(|n| n.key == rules::BACKUP_FAILED && n.status == AlertStatus::Firing), "{failed:?}");
}
