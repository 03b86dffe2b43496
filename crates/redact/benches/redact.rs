//! Redaction throughput on ~1 MB of clean audit/log text (no findings), on
//! secret-dense text (a finding every ~200 bytes), and on clean text full of
//! percent and `\u` escapes (every record has some, so the decoded views
//! are built and scanned too).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redact::{Redactor, RedactorBuilder};

/// Target corpus size.
const CORPUS_BYTES: usize = 1_000_000;

/// Deterministic pseudo-random stream for varied fields.
fn mix(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

fn token(prefix: &str, n: usize, seed: u64) -> String {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut s = String::from(prefix);
    for k in 0..n {
        let idx = (mix(seed * 1000 + k as u64) % ALNUM.len() as u64) as usize;
        s.push(char::from(ALNUM[idx]));
    }
    s
}

/// Audit records and log lines as steward writes them: timestamps, UUIDs,
/// SHA-256 digests, token usage counts, tool names, prose summaries,
/// `env:` references. Nothing in it should be redacted.
fn clean_corpus() -> String {
    let mut s = String::with_capacity(CORPUS_BYTES + 1024);
    let mut i = 0u64;
    while s.len() < CORPUS_BYTES {
        i += 1;
        let h = mix(i);
        s.push_str(&format!(
            concat!(
                "{{\"ts\":\"2026-11-{:02}T10:{:02}:{:02}.{:03}Z\",\"call_id\":\"{:08x}-{:04x}-7{:03x}-a{:03x}-{:012x}\",",
                "\"tool\":\"mastodon.post_status\",\"input_sha256\":\"{:016x}{:016x}{:016x}{:016x}\",\"result\":200,",
                "\"duration_ms\":{},\"usage\":{{\"input_tokens\":{},\"output_tokens\":{},\"cache_read_tokens\":0}},",
                "\"cost_usd\":0.{:04},\"credential\":\"env:SOCIAL_TOKEN\",\"summary\":\"Posted the weekly update about ",
                "the team meeting and asked everyone to review the calendar event before Friday.\"}}\n",
                "2026-11-{:02}T10:{:02}:{:02}Z INFO steward::gateway: forwarded request for tool calendar.create_event ",
                "(attempt 1 of 3, rate window {}/10 per hour, spend today $0.{:02} of $5.00); approval not required in ",
                "autonomous mode; the key for this upstream is loaded from file:/run/secrets/calendar\n",
            ),
            i % 28 + 1, i % 60, (i * 7) % 60, i % 1000,
            h as u32, (h >> 32) as u16, h % 4096, (h >> 8) % 4096, h >> 16,
            h, h.rotate_left(7), h.rotate_left(13), h.rotate_left(29),
            i % 5000, h % 3000, h % 900, h % 10000,
            i % 28 + 1, i % 60, (i * 7) % 60, i % 10, h % 100,
        ));
    }
    s
}

/// The clean corpus with escapes in every record: a percent-encoded path
/// and query (UTF-8, spaces, `#`) and a JSON `\u00e9`, as audit records of
/// a search tool look. Still nothing to redact.
fn escaped_corpus() -> String {
    let mut s = String::with_capacity(CORPUS_BYTES + 1024);
    let mut i = 0u64;
    while s.len() < CORPUS_BYTES {
        i += 1;
        let h = mix(i);
        s.push_str(&format!(
            concat!(
                "{{\"ts\":\"2026-11-{:02}T10:{:02}:{:02}.{:03}Z\",\"call_id\":\"{:08x}-{:04x}-7{:03x}-a{:03x}-{:012x}\",",
                "\"tool\":\"search\",\"method\":\"GET\",\"path\":\"/api/v1/search?q=caf%C3%A9%20au%20lait%20{}",
                "&tag=%23weekly&page={}\",\"input_sha256\":\"{:016x}{:016x}\",\"result\":200,\"duration_ms\":{},",
                "\"summary\":\"looked up the caf\\u00e9 opening hours for the team lunch\"}}\n",
            ),
            i % 28 + 1, i % 60, (i * 7) % 60, i % 1000,
            h as u32, (h >> 32) as u16, h % 4096, (h >> 8) % 4096, h >> 16,
            i % 97, i % 9, h, h.rotate_left(7), i % 5000,
        ));
    }
    s
}

/// A secret or PII finding roughly every 200 bytes.
fn dense_corpus(known: &str) -> String {
    let mut s = String::with_capacity(CORPUS_BYTES + 1024);
    let mut i = 0u64;
    while s.len() < CORPUS_BYTES {
        i += 1;
        let finding = match i % 8 {
            0 => token("ghp_", 36, i),
            1 => format!("user{}@example.com", i),
            2 => known.to_owned(),
            3 => token("sk-ant-api03-", 95, i),
            4 => format!("AKIA{}", token("", 16, i).to_uppercase().replace(['0', '1', '8', '9'], "Q")),
            5 => format!("password=\"{}\"", token("", 14, i)),
            6 => format!("Authorization: Bearer {}", token("", 40, i)),
            _ => format!("call +44 20 7946 {:04}", i % 10000),
        };
        s.push_str(&format!(
            "2026-11-14T10:{:02}:{:02}Z INFO agent output for call {:08x}: {} -- continuing with the next step of the plan, then reporting back to the operator\n",
            i % 60, (i * 7) % 60, mix(i) as u32, finding
        ));
    }
    s
}

fn redactor(known: &str) -> Redactor {
    RedactorBuilder::new()
        .secret("social", known)
        .secret("calendar", "cal-9f8e7d6c5b4a39281706")
        .secret("llm", "llm-0a1b2c3d4e5f60718293a4b5")
        .build()
}

/// Redacts the clean corpus once; a separate function so callgrind can
/// count just this call.
#[inline(never)]
fn measure_clean(r: &Redactor, text: &str) -> usize {
    r.redact(text).len()
}

/// Redacts the dense corpus once (see [`measure_clean`]).
#[inline(never)]
fn measure_dense(r: &Redactor, text: &str) -> usize {
    // Not the same body as `measure_clean`, or the two get merged.
    r.redact(text).len() + 1
}

/// Redacts the escaped corpus once (see [`measure_clean`]).
#[inline(never)]
fn measure_escaped(r: &Redactor, text: &str) -> usize {
    r.redact(text).len() + 2
}

/// With `REDACT_ONESHOT` set: warms the lazy DFAs, then redacts each corpus
/// once and exits, for instruction counting, which is stable where
/// wall-clock timings on a shared machine are not:
/// `REDACT_ONESHOT=1 valgrind --tool=callgrind
/// --toggle-collect='*measure_clean*' <bench binary> --bench`.
fn oneshot() {
    let known = "mastodon-SECRET-4b1d9a77c2e04f35";
    let r = redactor(known);
    let clean = clean_corpus();
    let dense = dense_corpus(known);
    let escaped = escaped_corpus();
    for _ in 0..3 {
        black_box(r.redact(&clean).len() + r.redact(&dense).len() + r.redact(&escaped).len());
    }
    // `REDACT_ONESHOT=clean:N` / `dense:N` / `escaped:N` repeats one corpus N times, for
    // CPU-time measurement with `perf stat -e task-clock` on a busy host.
    let spec = std::env::var("REDACT_ONESHOT").unwrap_or_default();
    let (which, n) = spec.split_once(':').unwrap_or(("both", "1"));
    let n: usize = n.parse().unwrap_or(1);
    for _ in 0..n {
        match which {
            "clean" => black_box(measure_clean(&r, &clean)),
            "dense" => black_box(measure_dense(&r, &dense)),
            "escaped" => black_box(measure_escaped(&r, &escaped)),
            _ => black_box(measure_clean(&r, &clean) + measure_dense(&r, &dense) + measure_escaped(&r, &escaped)),
        };
    }
    eprintln!(
        "clean {} bytes, dense {} bytes, {} dense findings, escaped {} bytes",
        clean.len(),
        dense.len(),
        r.find(&dense).len(),
        escaped.len()
    );
}

fn bench(c: &mut Criterion) {
    if std::env::var_os("REDACT_ONESHOT").is_some() {
        oneshot();
        return;
    }
    let known = "mastodon-SECRET-4b1d9a77c2e04f35";
    let r = redactor(known);
    let clean = clean_corpus();
    assert!(
        r.find(&clean).is_empty(),
        "clean corpus has findings: {:?}",
        &r.find(&clean)[..3.min(r.find(&clean).len())]
    );
    let dense = dense_corpus(known);
    let n = r.find(&dense).len();
    assert!(n >= dense.len() / 250, "dense corpus has only {n} findings");
    let escaped = escaped_corpus();
    assert!(r.find(&escaped).is_empty(), "escaped corpus has findings: {:?}", r.find(&escaped).first());

    let mut g = c.benchmark_group("redact");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("clean_1mb", |b| b.iter(|| black_box(r.redact(black_box(&clean))).len()));
    g.throughput(Throughput::Bytes(dense.len() as u64));
    g.bench_function("dense_1mb", |b| b.iter(|| black_box(r.redact(black_box(&dense))).len()));
    g.throughput(Throughput::Bytes(escaped.len() as u64));
    g.bench_function("escaped_1mb", |b| b.iter(|| black_box(r.redact(black_box(&escaped))).len()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
