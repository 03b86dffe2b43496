//! Fuzz target for the SSE usage parser, the usage-chunk filter and the
//! response usage reader, with arbitrary chunking.
//!
//! Run (see `redact.rs` for building without cargo-fuzz):
//! ```sh
//! RUSTC_BOOTSTRAP=1 cargo fuzz run sse --sanitizer none -- -max_total_time=600
//! ```
//! `--sanitizer none`: the code under test forbids `unsafe`, and the C
//! dependencies of steward-core (SQLite, aws-lc) do not build with ASan.
//!
//! The input's first byte picks the endpoint, the second seeds where the
//! stream is cut into chunks; the rest is the stream. The checks are the ones
//! `crates/steward-core/tests/sse_properties.rs` runs on stable:
//! - no panic, whatever the bytes;
//! - chunking changes nothing: the parser fed in pieces (one byte at a time
//!   included) ends in the same state as the parser fed the whole stream;
//! - cumulative usage never goes down while the stream is fed;
//! - the complete-events prefix the relay releases (`bytes_since_event_end`)
//!   parses to the same usage and end as the whole stream would have, had
//!   it stopped there;
//! - the usage-chunk filter's output does not depend on the chunking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward_core::llm::{Endpoint, SseUsageParser, Usage, UsageChunkFilter};

/// Small, so the oversized-event path runs often.
const MAX_EVENT: usize = 256;

const ENDPOINTS: [Endpoint; 4] =
    [Endpoint::ChatCompletions, Endpoint::Completions, Endpoint::Responses, Endpoint::Messages];

/// The parser's observable state.
fn state(p: &SseUsageParser) -> (Option<Usage>, bool, u64, u64, Vec<String>, bool, usize) {
    (
        p.usage(),
        p.saw_terminal_event(),
        p.output_tokens_seen_estimate(),
        p.oversized_events(),
        p.reported_models().to_vec(),
        p.output_unreadable(),
        p.bytes_since_event_end(),
    )
}

fn fields(u: &Usage) -> [u64; 6] {
    [
        u.input_tokens,
        u.output_tokens,
        u.cached_input_tokens,
        u.cache_write_tokens,
        u.cache_write_1h_tokens,
        u.reasoning_tokens,
    ]
}

fuzz_target!(|data: &[u8]| {
    let [kind, seed, stream @ ..] = data else { return };
    let endpoint = ENDPOINTS[usize::from(*kind) % ENDPOINTS.len()];

    let mut whole = SseUsageParser::with_max_event_bytes(endpoint, MAX_EVENT);
    whole.feed(stream);

    // Cut points from a xorshift seeded by the second byte (0: one byte per chunk).
    let mut chunked = SseUsageParser::with_max_event_bytes(endpoint, MAX_EVENT);
    let mut filter_whole = UsageChunkFilter::new();
    let mut filtered_whole = filter_whole.feed(stream);
    filtered_whole.extend(filter_whole.finish());
    let mut filter = UsageChunkFilter::new();
    let mut filtered = Vec::new();
    let mut x = u64::from(*seed) | 1;
    let mut at = 0;
    let mut last_usage: Option<Usage> = None;
    while at < stream.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = if *seed == 0 { 1 } else { 1 + (x % 64) as usize };
        let end = (at + len).min(stream.len());
        chunked.feed(&stream[at..end]);
        filtered.extend(filter.feed(&stream[at..end]));
        if let (Some(before), Some(now)) = (last_usage, chunked.usage()) {
            let (b, n) = (fields(&before), fields(&now));
            assert!(b.iter().zip(n.iter()).all(|(b, n)| b <= n), "usage went down: {before:?} -> {now:?}");
        }
        last_usage = chunked.usage().or(last_usage);
        at = end;
    }
    filtered.extend(filter.finish());
    assert_eq!(state(&chunked), state(&whole), "chunking changed the parse");
    assert_eq!(filtered, filtered_whole, "chunking changed the filter's output");

    let partial = whole.bytes_since_event_end();
    assert!(partial <= stream.len());
    let mut prefix = SseUsageParser::with_max_event_bytes(endpoint, MAX_EVENT);
    prefix.feed(&stream[..stream.len() - partial]);
    assert_eq!(prefix.usage(), whole.usage(), "the released prefix lost usage");
    assert_eq!(prefix.saw_terminal_event(), whole.saw_terminal_event());

    let _ = Usage::read_response(endpoint, stream);
});
