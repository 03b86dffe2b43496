//! Store throughput: admissions per second through the group-committing
//! writer, from one task and from 64 concurrent tasks.
//!
//! Run: `cargo bench -p steward-core --bench store`

#![expect(clippy::expect_used, reason = "a benchmark that cannot set up has nothing to measure")]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use steward_core::config::{LoopBreakerConfig, RateLimit};
use steward_core::store::{Admission, AdmitOutcome, Completion, SpendHold, SpendSettlement, Store};

/// Concurrent callers in the parallel cases: a busy agent fleet.
const TASKS: u64 = 64;

/// Ledger rows already on the day before the priced case is measured: a
/// busy LLM agent's day (about one call per second for a day).
const LEDGER_ROWS: u64 = 100_000;

struct Fixture {
    store: Store,
    next_id: AtomicU64,
    /// Injected clock: 1 ms per call, so windows hold realistic row counts.
    now_ms: AtomicI64,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Arc<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(&dir.path().join("steward.db"), steward_core::redaction::shared(redact::Redactor::default()))
                .expect("open store");
        Arc::new(Fixture { store, next_id: AtomicU64::new(0), now_ms: AtomicI64::new(1_790_000_000_000), _dir: dir })
    }

    /// A distinct call (its own loop key) to one of 8 tools, with the loop
    /// breaker on and, if given, a rate limit.
    fn admission(&self, limit: Option<RateLimit>) -> Admission {
        self.admission_with(limit, None)
    }

    /// [`Fixture::admission`] of a priced LLM call holding `spend`.
    fn admission_with(&self, limit: Option<RateLimit>, spend: Option<SpendHold>) -> Admission {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        Admission {
            call_id: format!("00000000-0000-7000-8000-{n:012}"),
            now_ms: self.now_ms.fetch_add(1, Ordering::Relaxed),
            door: "api".into(),
            tool: Some(format!("tool{}", n % 8)),
            upstream: "mastodon".into(),
            method: "POST".into(),
            path: "/api/v1/statuses".into(),
            loop_key: format!("{n:064x}"),
            input_summary: "{\"status\":\"a short post about the weather\"}".into(),
            input_sha256: "ab".repeat(32),
            limit,
            loop_breaker: LoopBreakerConfig { max_identical: 5, window: Duration::from_secs(60) },
            undo_by_operator: false,
            spend,
        }
    }
}

/// A worst-case reservation of 1,000 µUSD against a cap no run reaches.
fn hold() -> SpendHold {
    SpendHold {
        day: "2026-11-26".into(),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        reserve_micros: 1_000,
        cap_micros: Some(u64::MAX / 2),
    }
}

/// A priced call: admit with a reservation, settle it at 10 µUSD.
async fn priced_call(fx: &Fixture) {
    let a = fx.admission_with(None, Some(hold()));
    let (id, now) = (a.call_id.clone(), a.now_ms);
    if fx.store.admit(a).await.expect("admit") == AdmitOutcome::Admitted {
        let spend = SpendSettlement {
            micros: 10,
            input_tokens: 20,
            output_tokens: 5,
            cached_tokens: 0,
            estimated: false,
            stop: None,
        };
        fx.store.complete(completion(id, now, Some(spend))).await.expect("complete");
    }
}

/// One call's writes: admit, and complete it when `complete` is set.
async fn call(fx: &Fixture, limit: Option<RateLimit>, complete: bool) {
    let a = fx.admission(limit);
    let id = a.call_id.clone();
    let now = a.now_ms;
    let outcome = fx.store.admit(a).await.expect("admit");
    if complete && outcome == AdmitOutcome::Admitted {
        fx.store.complete(completion(id, now, None)).await.expect("complete");
    }
}

/// The completion of the call `id` admitted at `now`, 30 ms later with a 200.
fn completion(call_id: String, now: i64, spend: Option<SpendSettlement>) -> Completion {
    Completion {
        call_id,
        now_ms: now + 30,
        status: Some(200),
        duration_ms: 30,
        attempts: 1,
        response_ref: None,
        undo: None,
        error: None,
        extra_json: None,
        spend,
    }
}

/// Runs `iters` calls split over `tasks` tasks and returns the wall time.
fn run(
    rt: &tokio::runtime::Runtime,
    fx: &Arc<Fixture>,
    iters: u64,
    tasks: u64,
    limit: Option<RateLimit>,
    complete: bool,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let fx = Arc::clone(fx);
                let n = iters / tasks + u64::from(t < iters % tasks);
                tokio::spawn(async move {
                    for _ in 0..n {
                        call(&fx, limit, complete).await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("task");
        }
        start.elapsed()
    })
}

fn bench_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("store");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    // 10/hour per tool: after the first 80 calls every admit is the
    // rate-limited path (count + oldest-in-window lookup + insert).
    let limited = Some(RateLimit { max: 10, per: Duration::from_secs(3600) });
    for (name, tasks, limit, complete) in [
        ("admit/1_task", 1, None, false),
        ("admit/64_tasks", TASKS, None, false),
        ("admit_rate_limited/64_tasks", TASKS, limited, false),
        ("admit+complete/64_tasks", TASKS, None, true),
    ] {
        let fx = Fixture::new();
        group.bench_function(name, |b| b.iter_custom(|iters| run(&rt, &fx, iters, tasks, limit, complete)));
        let stats = fx.store.writer_stats();
        eprintln!(
            "{name}: {} ops in {} batches ({:.1} ops/commit)",
            stats.ops,
            stats.batches,
            stats.ops as f64 / stats.batches.max(1) as f64
        );
    }
    // Priced calls one after another, on a day whose ledger already holds
    // LEDGER_ROWS settled calls: the cap check must not grow with the day.
    let fx = Fixture::new();
    rt.block_on(async {
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                let fx = Arc::clone(&fx);
                tokio::spawn(async move {
                    for _ in 0..LEDGER_ROWS / TASKS {
                        priced_call(&fx).await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("task");
        }
    });
    group.bench_function("admit_priced+settle/1_task, 100k rows that day", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    priced_call(&fx).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
