//! Backup and verify throughput and peak memory on a generated state
//! directory (1 GB by default): a state store with journal rows, and agent
//! state made of half compressible JSON-like text, half incompressible
//! bytes, in files from 4 KB to 8 MB.
//!
//! Run: `cargo bench -p steward-core --bench backup`
//! Size: `STEWARD_BENCH_BYTES=200000000 cargo bench -p steward-core --bench backup`
//!
//! Peak RSS is the process's VmHWM, reset before each phase by writing 5 to
//! `/proc/self/clear_refs`, so each row shows that phase's own peak
//! (generation is outside every phase). Wall times on a shared 2-core
//! machine are noisy; the memory column is the claim that matters
//! (constant, not proportional to the state size).

#![expect(
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark prints its table and has nothing to measure if setup fails"
)]

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use steward_core::backup::{Backups, NoProgress, RestoreMode};
use steward_core::secrets::Secrets;
use tokio_util::sync::CancellationToken;

/// Default total size of the generated state.
const DEFAULT_BYTES: u64 = 1_000_000_000;

/// Journal rows written to the store (about 40 MB of database).
const ROWS: u64 = 100_000;

fn main() {
    let total: u64 = std::env::var("STEWARD_BENCH_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_BYTES);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let generated = Instant::now();
    let db_bytes = fill_store(root);
    let files_bytes = fill_agent_state(&root.join("agent-state"), total.saturating_sub(db_bytes));
    let identity = age::x25519::Identity::generate();
    write_config(root, "plain", "");
    write_config(root, "encrypted", &format!("encrypt_to = [\"{}\"]", identity.to_public()));
    println!(
        "generated {:.0} MB ({:.0} MB store with {ROWS} rows, {:.0} MB agent state) in {:.1}s under {}",
        mb(db_bytes + files_bytes),
        mb(db_bytes),
        mb(files_bytes),
        generated.elapsed().as_secs_f64(),
        root.display()
    );

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    println!("\n| phase | data MB | archive MB | seconds | MB/s | RSS at start MB | peak RSS MB |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, encrypted) in [("plain", false), ("encrypted", true)] {
        let config =
            Arc::new(steward_core::config::load(&root.join(format!("{name}.toml"))).expect("the bench config loads"));
        let mut backups = Backups::open(Arc::clone(&config), &Secrets::default()).expect("open destination");
        if encrypted {
            backups = backups.with_identity(identity.clone());
        }
        let base = reset_peak();
        let started = Instant::now();
        let report = rt
            .block_on(backups.backup_now(
                None,
                "bench",
                1_790_000_000_000,
                Arc::new(NoProgress),
                &CancellationToken::new(),
            ))
            .expect("backup");
        row(&format!("backup ({name})"), report.record.content_bytes, report.record.archive_bytes, started, base);

        let base = reset_peak();
        let started = Instant::now();
        let verified =
            rt.block_on(backups.verify(Some(&report.record.id), None, 0, Arc::new(NoProgress))).expect("verify");
        row(&format!("verify ({name})"), verified.bytes, verified.archive_bytes, started, base);

        if !encrypted {
            let base = reset_peak();
            let started = Instant::now();
            let target = root.join("restored");
            let restored = rt
                .block_on(backups.restore(
                    &report.record.id,
                    RestoreMode::Into(target.clone()),
                    None,
                    0,
                    Arc::new(NoProgress),
                    &CancellationToken::new(),
                ))
                .expect("restore");
            row("restore (plain)", restored.bytes, report.record.archive_bytes, started, base);
            std::fs::remove_dir_all(target).expect("cleanup");
        }
    }
}

fn row(phase: &str, data: u64, archive: u64, started: Instant, base_mb: f64) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "| {phase} | {:.0} | {:.0} | {secs:.1} | {:.0} | {base_mb:.0} | {:.0} |",
        mb(data),
        mb(archive),
        mb(data) / secs,
        status_mb("VmHWM:")
    );
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0) and returns that RSS in
/// MB: memory the allocator kept from earlier work (config parsing builds
/// the redactor) counts in every later peak.
fn reset_peak() -> f64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_mb("VmRSS:")
}

/// A `/proc/self/status` field (VmHWM, VmRSS) in MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1000.0)
}

/// The store with [`ROWS`] journal rows, inserted in one transaction.
fn fill_store(root: &std::path::Path) -> u64 {
    let state = root.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let db = state.join("steward.db");
    drop(
        steward_core::store::Store::open(&db, steward_core::redaction::shared(redact::Redactor::default()))
            .expect("store"),
    );
    let mut conn = rusqlite::Connection::open(&db).expect("sqlite");
    let tx = conn.transaction().expect("tx");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO calls (id, started_ms, finished_ms, door, tool, upstream, method, path, loop_key,
                 input_summary, input_sha256, decision, status, duration_ms, attempts)
                 VALUES (?1, ?2, ?3, 'api', 'post', 'social', 'POST', '/api/v1/statuses', ?4, ?5, ?6, 'allowed', 200, 12, 1)",
            )
            .expect("prepare");
        for i in 0..ROWS {
            let id = format!("0190a000-0000-7000-8000-{i:012}");
            let started = 1_780_000_000_000_i64 + i64::try_from(i).unwrap_or(0) * 1000;
            let summary = format!("{{\"status\":\"post number {i} about the weather and the news of the day\"}}");
            insert
                .execute(rusqlite::params![id, started, started + 12, format!("{i:064x}"), summary, "ab".repeat(32)])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).expect("checkpoint");
    drop(conn);
    let wal = state.join("steward.db-wal");
    std::fs::metadata(&db).expect("db size").len() + std::fs::metadata(wal).map_or(0, |m| m.len())
}

/// Agent state of about `bytes`: 1,000 small text files, then alternating
/// 8 MB files of JSON-like text and random bytes. Written through one 1 MiB
/// buffer, so generation does not inflate memory.
fn fill_agent_state(dir: &std::path::Path, bytes: u64) -> u64 {
    std::fs::create_dir_all(dir.join("small")).expect("dir");
    let mut written = 0u64;
    for i in 0..1000 {
        let text = format!("{{\"event\":{i},\"title\":\"meeting {i}\",\"at\":\"2026-12-01T10:00\"}}\n").repeat(60);
        std::fs::write(dir.join(format!("small/{i:04}.json")), &text).expect("small file");
        written += text.len() as u64;
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    while written < bytes {
        let mut file = std::fs::File::create(dir.join(format!("blob-{n:04}.bin"))).expect("blob");
        let size = (8u64 << 20).min(bytes - written);
        let mut left = size;
        while left > 0 {
            if n % 2 == 0 {
                rand::fill(&mut buf[..]);
            } else {
                for (j, chunk) in buf.chunks_mut(64).enumerate() {
                    let line = format!("{{\"id\":{j:08},\"note\":\"call the dentist on friday\"}}\n");
                    let len = chunk.len().min(line.len());
                    chunk[..len].copy_from_slice(&line.as_bytes()[..len]);
                }
            }
            let len = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            file.write_all(&buf[..len]).expect("write");
            left -= len as u64;
        }
        written += size;
        n += 1;
    }
    written
}

fn write_config(root: &std::path::Path, name: &str, extra: &str) {
    let text = format!(
        "[agent]\nname = \"bench\"\n\n[state]\ndir = \"./state\"\n\n[backup]\npaths = [\"./agent-state/\"]\n\
         destination = \"file://{}/dest-{name}\"\n{extra}\n",
        root.display()
    );
    std::fs::write(root.join(format!("{name}.toml")), text).expect("config");
}
