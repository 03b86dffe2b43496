//! Response-scrubbing throughput: ~1 MB of LLM stream bytes (SSE chat
//! chunks) through [`redact::CredentialScrubber`] with ten credentials
//! loaded, whole and as a stream in the chunk sizes a relay sees (one SSE
//! event per chunk, and 16 KiB reads), clean and with a credential echoed
//! every ~10 KB.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redact::{CredentialScrubber, ScrubStream};

/// Target corpus size.
const CORPUS_BYTES: usize = 1_000_000;

/// Ten credentials of realistic shapes and lengths.
fn credentials() -> Vec<(String, String)> {
    (0..10).map(|i| (format!("cred{i}"), format!("sk-proj-{i}Xy7Qz{}", "aB3dE5fG7hJ9kL1mN".repeat(3)))).collect()
}

/// OpenAI chat chunks, one per event; every `echo_every`-th carries a credential.
fn corpus(echo_every: Option<usize>, secret: &str) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    let mut total = 0;
    let mut i = 0;
    while total < CORPUS_BYTES {
        i += 1;
        let content = match echo_every {
            Some(n) if i % n == 0 => secret.to_owned(),
            _ => format!(" word{i}"),
        };
        let event = format!(
            "data: {{\"id\":\"chatcmpl-{i}\",\"object\":\"chat.completion.chunk\",\"created\":1796253804,\
             \"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\
             \"finish_reason\":null}}]}}\n\n"
        );
        total += event.len();
        events.push(event.into_bytes());
    }
    events
}

fn stream(scrubber: &Arc<CredentialScrubber>, chunks: &[Vec<u8>]) -> usize {
    let mut s = ScrubStream::new(Arc::clone(scrubber));
    let mut out = 0;
    for chunk in chunks {
        out += s.push(chunk).len();
    }
    out + s.finish().len()
}

fn bench(c: &mut Criterion) {
    let creds = credentials();
    let scrubber = Arc::new(CredentialScrubber::new(creds.iter().map(|(n, v)| (n.as_str(), v.as_str()))));
    let mut group = c.benchmark_group("scrub");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4)).sample_size(10);
    for (name, echo) in [("clean", None), ("echo every ~10 KB", Some(40))] {
        let events = corpus(echo, &creds[3].1);
        let whole: Vec<u8> = events.concat();
        let reads: Vec<Vec<u8>> = whole.chunks(16 << 10).map(<[u8]>::to_vec).collect();
        group.throughput(Throughput::Bytes(whole.len() as u64));
        group.bench_function(format!("{name}: whole body"), |b| b.iter(|| scrubber.scrub(black_box(&whole)).len()));
        group.bench_function(format!("{name}: stream, one SSE event per chunk"), |b| {
            b.iter(|| stream(&scrubber, black_box(&events)))
        });
        group.bench_function(format!("{name}: stream, 16 KiB reads"), |b| {
            b.iter(|| stream(&scrubber, black_box(&reads)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
