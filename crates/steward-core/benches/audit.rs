//! Audit log throughput: durable records per second (write + acknowledgement
//! after the line reached the kernel) with 64 concurrent writers.
//!
//! Run: `cargo bench -p steward-core --bench audit`

#![expect(clippy::expect_used, reason = "a benchmark that cannot set up has nothing to measure")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use steward_core::audit::{AuditLog, AuditRecord};
use steward_core::clock::format_ts;
use steward_core::config::{AfterRetention, LoggingConfig};

/// Concurrent writers: one per in-flight call of a busy gateway.
const TASKS: u64 = 64;

fn record(n: u64) -> AuditRecord {
    AuditRecord {
        ts: format_ts(SystemTime::now()),
        call_id: format!("0193a1b2-c3d4-7e5f-8a9b-{n:012}"),
        agent: "calendar-bot".into(),
        door: "api".into(),
        tool: Some("post_status".into()),
        upstream: "mastodon".into(),
        method: "POST".into(),
        path: "/api/v1/statuses".into(),
        input_summary: "{\"status\":\"Meeting moved to 3pm, see the calendar\",\"visibility\":\"private\"}".into(),
        input_sha256: "ab".repeat(32),
        decision: "allowed".into(),
        phase: steward_core::audit::Phase::Completed,
        reason: None,
        status: Some(200),
        duration_ms: 87,
        attempts: 1,
        extra: serde_json::Map::new(),
    }
}

fn bench_audit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LoggingConfig {
        dir: dir.path().to_path_buf(),
        // The default rotation size: the bench measures steady-state appends.
        max_file_size: 100 * 1024 * 1024,
        retention: Duration::from_secs(30 * 86_400),
        after_retention: AfterRetention::Archive,
        max_total_size: 10 * 1024 * 1024 * 1024,
    };
    let redactor =
        Arc::new(ArcSwap::from_pointee(redact::RedactorBuilder::new().secret("mastodon", "canary-value-123").build()));
    let log = Arc::new(AuditLog::open(&cfg, redactor).expect("open audit log"));
    let next = Arc::new(AtomicU64::new(0));

    let mut group = c.benchmark_group("audit");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, tasks) in [("write/1_task", 1), ("write/64_tasks", TASKS)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let handles: Vec<_> = (0..tasks)
                        .map(|t| {
                            let log = Arc::clone(&log);
                            let next = Arc::clone(&next);
                            let n = iters / tasks + u64::from(t < iters % tasks);
                            tokio::spawn(async move {
                                for _ in 0..n {
                                    log.write(&record(next.fetch_add(1, Ordering::Relaxed))).await.expect("write");
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.await.expect("task");
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
    if let Ok(log) = Arc::try_unwrap(log) {
        rt.block_on(log.shutdown());
    }
}

criterion_group!(benches, bench_audit);
criterion_main!(benches);
