//! Throughput of the LLM stream path: the SSE usage parser and the
//! usage-chunk filter on the recorded fixtures, against a plain copy of the
//! same bytes (the floor of relaying them), and request inspection plus
//! rewrite on a typical agent request. Compare ratios within one run: timings
//! on a shared machine are noisy.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use steward_core::llm::{Endpoint, LlmKind, LlmRequest, SseUsageParser, UsageChunkFilter};

/// The recorded streams and the endpoint each answers.
const FIXTURES: [(&str, &[u8], Endpoint); 3] = [
    ("openai_chat", include_bytes!("../tests/fixtures/sse/openai_chat_include_usage.sse"), Endpoint::ChatCompletions),
    ("openai_responses", include_bytes!("../tests/fixtures/sse/openai_responses.sse"), Endpoint::Responses),
    ("anthropic_messages", include_bytes!("../tests/fixtures/sse/anthropic_messages_cache.sse"), Endpoint::Messages),
];

/// Splits a stream the way a network might: into 512-byte chunks.
fn chunks(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.chunks(512).collect()
}

fn stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30);
    for (name, bytes, endpoint) in FIXTURES {
        let pieces = chunks(bytes);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("copy/{name}"), |b| {
            b.iter(|| {
                let mut out = Vec::new();
                for piece in &pieces {
                    out.extend_from_slice(black_box(piece));
                }
                out
            });
        });
        group.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| {
                let mut parser = SseUsageParser::new(endpoint);
                for piece in &pieces {
                    parser.feed(black_box(piece));
                }
                parser.usage()
            });
        });
    }
    let (_, bytes, _) = FIXTURES[0];
    let pieces = chunks(bytes);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("filter/openai_chat", |b| {
        b.iter(|| {
            let mut filter = UsageChunkFilter::new();
            let mut out = Vec::new();
            for piece in &pieces {
                out.extend(filter.feed(black_box(piece)));
            }
            out
        });
    });
    group.finish();
}

fn request(c: &mut Criterion) {
    // A mid-sized agent request: a system prompt, tools and 40 turns (~20 KB).
    let turns: Vec<String> = (0..40)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            format!(r#"{{"role":"{role}","content":"turn {i}: {}"}}"#, "lorem ipsum ".repeat(35))
        })
        .collect();
    let body = format!(
        r#"{{"model":"gpt-4o-mini","stream":true,"temperature":0.2,
            "tools":[{{"type":"function","function":{{"name":"search","parameters":{{"type":"object"}}}}}}],
            "messages":[{{"role":"system","content":"You are a careful agent."}},{}]}}"#,
        turns.join(",")
    );
    let Ok(chat_path) = canonical_path::CanonicalPath::parse("/v1/chat/completions") else { return };
    let mut group = c.benchmark_group("request");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("inspect_and_rewrite", |b| {
        b.iter(|| {
            let request = LlmRequest::inspect(LlmKind::OpenAi, &chat_path, black_box(body.as_bytes()));
            request.ok().and_then(|r| r.rewrite(4096))
        });
    });
    group.finish();
}

criterion_group!(benches, stream, request);
criterion_main!(benches);
