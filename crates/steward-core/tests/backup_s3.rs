//! Backups to a real S3-compatible server on loopback: `moto_server` from
//! PyPI (`pip install 'moto[server]'`; `.ci/run` installs it into `.venv`).
//!
//! Without `moto_server` on PATH the test is skipped with a loud message,
//! unless `STEWARD_REQUIRE_MOTO` is set (as in CI), where it fails instead.

mod backup_support;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backup_support::*;
use steward_core::backup::{BackupError, RestoreMode};
use tokio_util::sync::CancellationToken;

const KEY_ID: &str = "AKIACANARYKEYID00017";
const SECRET_KEY: &str = "canary-s3-secret-key-0f1e2d3c4b5a69788796";
const BUCKET: &str = "steward-backups";

/// A running `moto_server`, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_on_path() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join("moto_server"))
        .find(|p| p.is_file())
}

/// Starts moto on a free loopback port, or says loudly why not.
#[expect(clippy::unwrap_used, clippy::panic, reason = "a test helper: a failed step is a failed test")]
fn start_moto() -> Option<Moto> {
    let Some(binary) = moto_on_path() else {
        assert!(
            std::env::var_os("STEWARD_REQUIRE_MOTO").is_none(),
            "STEWARD_REQUIRE_MOTO is set but moto_server is not on PATH; run .ci/run or \
             `pip install 'moto[server]'` into .venv and put .venv/bin on PATH"
        );
        // Straight to stderr: the test harness captures eprintln! of passing
        // tests, and this skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "\n==================== SKIPPED: S3 backup test ====================\n\
             moto_server is not on PATH, so the S3-compatible destination is NOT tested.\n\
             Install it with: python3 -m venv .venv && .venv/bin/pip install 'moto[server]'\n\
             and run with PATH=$PWD/.venv/bin:$PATH (set STEWARD_REQUIRE_MOTO=1 to make this fatal).\n\
             =================================================================\n"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut moto = Moto { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = moto.child.try_wait().unwrap() {
            panic!("moto_server exited early: {status}");
        }
        assert!(Instant::now() < deadline, "moto_server did not start listening on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    moto.port = port;
    Some(moto)
}

fn setup(port: u16, bucket: &str) -> Setup {
    let destination = format!("s3://{bucket}/steward/prod?endpoint=http://127.0.0.1:{port}&region=us-east-1");
    Setup::new(
        Some(&destination),
        "credentials = \"s3_backup\"",
        "\n[credentials.s3_backup]\nsource = \"file:secrets/s3.key\"\n",
    )
}

/// Every object in the bucket, fetched with plain (unsigned) HTTP: moto
/// serves them, and the leak check reads exactly what was stored.
#[expect(clippy::unwrap_used, reason = "a test helper: a failed step is a failed test")]
async fn all_objects(port: u16) -> Vec<(String, Vec<u8>)> {
    let client = reqwest::Client::new();
    let listing = client.get(format!("http://127.0.0.1:{port}/{BUCKET}?list-type=2")).send().await.unwrap();
    let xml = listing.text().await.unwrap();
    let mut objects = Vec::new();
    for part in xml.split("<Key>").skip(1) {
        let key = part.split("</Key>").next().unwrap().to_owned();
        let body = client.get(format!("http://127.0.0.1:{port}/{BUCKET}/{key}")).send().await.unwrap();
        objects.push((key, body.bytes().await.unwrap().to_vec()));
    }
    objects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_round_trip_through_an_s3_compatible_server() {
    let Some(moto) = start_moto() else { return };
    let client = reqwest::Client::new();
    let created = client.put(format!("http://127.0.0.1:{}/{BUCKET}", moto.port)).send().await.unwrap();
    assert!(created.status().is_success(), "cannot create the bucket: {}", created.status());

    let s = setup(moto.port, BUCKET);
    private_file(&s.root().join("secrets/s3.key"), &format!("{KEY_ID}:{SECRET_KEY}\n"));
    // Large enough for several multipart parts (5 MiB each): incompressible.
    let mut big = vec![0u8; 12 << 20];
    rand::fill(&mut big[..]);
    std::fs::write(s.root().join("agent-state/big.bin"), &big).unwrap();
    let store = s.store();
    write_calls(&store, "s3", 40, T0).await;
    let backups = s.backups();
    assert_eq!(backups.destination(), format!("s3://{BUCKET}/steward/prod"));
    assert!(backups.setup_warnings().is_empty());

    // A cancelled backup leaves nothing listed (the multipart upload is aborted).
    let cancelled = CancellationToken::new();
    cancelled.cancel();
    let err = backups.backup_now(Some(&store), "manual", T0, quiet(), &cancelled).await.unwrap_err();
    assert!(matches!(err, BackupError::Cancelled), "{err}");
    assert!(backups.list().await.unwrap().0.is_empty());

    let report = backups.backup_now(Some(&store), "manual", T0 + 10, quiet(), &CancellationToken::new()).await.unwrap();
    assert!(report.record.archive_bytes > 12 << 20);
    let (records, _) = backups.list().await.unwrap();
    assert_eq!(records, vec![report.record.clone()]);
    backups.verify(None, Some(&store), T0 + 20, quiet()).await.unwrap();

    let target = s.root().join("restored");
    backups
        .restore(&report.record.id, RestoreMode::Into(target.clone()), None, T0, quiet(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(std::fs::read(target.join("agent-state/big.bin")).unwrap(), big);
    let restored = steward_core::store::Store::open(
        &target.join("state/steward.db"),
        steward_core::redaction::shared(redact::Redactor::default()),
    )
    .unwrap();
    assert_eq!(all_rows(&restored).await, all_rows(&store).await);

    // Retention deletes through the same API.
    let second = backups.backup_now(Some(&store), "manual", T0 + 86_400_000, quiet(), &CancellationToken::new()).await;
    let second = second.unwrap();
    let policy_now = T0 + 400 * 86_400_000;
    let decision = backups.apply_retention(&store, policy_now).await.unwrap();
    assert!(decision.delete.is_empty(), "two days of dailies are kept: {decision:?}");
    let ids: Vec<String> = backups.list().await.unwrap().0.into_iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![report.record.id.clone(), second.record.id.clone()]);

    // Errors name the problem, never the credential.
    let missing = setup(moto.port, "no-such-bucket");
    private_file(&missing.root().join("secrets/s3.key"), &format!("{KEY_ID}:{SECRET_KEY}\n"));
    let err = missing.backups().backup_now(None, "manual", T0, quiet(), &CancellationToken::new()).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("backup destination"), "{text}");
    assert!(!text.contains(SECRET_KEY) && !text.contains(KEY_ID), "credential in an error: {text}");

    // What is stored: no part of any credential, in any object.
    let objects = all_objects(moto.port).await;
    assert_eq!(
        objects.len(),
        4,
        "two archives and two records: {:?}",
        objects.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    let needles = leak_check::with_encodings(&[SECRET_KEY, KEY_ID, CANARY]);
    for (key, bytes) in objects {
        assert!(key.starts_with("steward/prod/"), "{key}");
        leak_check::assert_clean(&key, &bytes, &needles);
    }
    leak_check::assert_no_needles(&target, &needles, &[]);
}
