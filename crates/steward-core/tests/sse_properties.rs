//! Property tests of the SSE usage parser and the usage-chunk filter under
//! arbitrary chunking: the checks `fuzz/fuzz_targets/sse.rs` runs with
//! coverage guidance, here on stable with generated streams (provider
//! events, every line ending, comments, oversized events, raw bytes), plus a
//! replay of the fuzz corpus kept in `fuzz/seeds/sse/` (the fuzzer's input
//! format: endpoint byte, chunking seed byte, stream).

use proptest::prelude::*;
use steward_core::llm::{Endpoint, SseUsageParser, Usage, UsageChunkFilter};

/// Small, so the oversized-event path runs often.
const MAX_EVENT: usize = 256;

const ENDPOINTS: [Endpoint; 4] =
    [Endpoint::ChatCompletions, Endpoint::Completions, Endpoint::Responses, Endpoint::Messages];

/// Event payloads of every provider, usage with odd values included.
const EVENTS: &[&str] = &[
    r#"{"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"hi"}}]}"#,
    r#"{"model":"o1-pro","choices":[],"usage":{"prompt_tokens":900,"completion_tokens":80}}"#,
    r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":1}}"#,
    r#"{"choices":[],"usage":{"prompt_tokens":-1,"completion_tokens":null}}"#,
    r#"{"choices":[],"usage":{"prompt_tokens":1000000000000000000,"completion_tokens":18446744073709551615}}"#,
    "[DONE]",
    r#"{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":90000,"output_tokens":1}}}"#,
    r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"a"}}"#,
    r#"{"type":"content_block_delta","delta":{"type":"signature_delta","signature":"s"}}"#,
    r#"{"type":"message_delta","usage":{"input_tokens":0,"output_tokens":7}}"#,
    r#"{"type":"message_delta","usage":{"output_tokens":-5}}"#,
    r#"{"type":"message_stop"}"#,
    r#"{"type":"response.output_text.delta","delta":"x"}"#,
    r#"{"type":"response.completed","response":{"model":"o3","usage":{"input_tokens":5,"output_tokens":6}}}"#,
    r#"{"type":"error","error":{"type":"overloaded_error"}}"#,
];

fn event() -> impl Strategy<Value = Vec<u8>> {
    let end = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    let name = prop_oneof![
        Just(String::new()),
        Just("event: message_delta\n".to_owned()),
        Just("event: response.completed\n".to_owned())
    ];
    prop_oneof![
        6 => (name, 0..EVENTS.len(), end).prop_map(|(name, i, end)| format!("{name}data: {}{end}{end}", EVENTS[i]).into_bytes()),
        1 => Just(b": keep-alive\n\n".to_vec()),
        1 => (1..3usize).prop_map(|n| format!("data: {}\n\n", "x".repeat(n * MAX_EVENT)).into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..32),
    ]
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

/// Every check of the fuzz target, on one input.
fn check(endpoint: Endpoint, stream: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
    let mut whole = SseUsageParser::with_max_event_bytes(endpoint, MAX_EVENT);
    whole.feed(stream);
    let mut filter_whole = UsageChunkFilter::new();
    let mut filtered_whole = filter_whole.feed(stream);
    filtered_whole.extend(filter_whole.finish());

    let mut chunked = SseUsageParser::with_max_event_bytes(endpoint, MAX_EVENT);
    let mut filter = UsageChunkFilter::new();
    let mut filtered = Vec::new();
    let mut last_usage: Option<Usage> = None;
    let mut at = 0;
    for end in cuts.iter().copied().chain([stream.len()]) {
        let end = end.clamp(at, stream.len());
        chunked.feed(&stream[at..end]);
        filtered.extend(filter.feed(&stream[at..end]));
        if let (Some(before), Some(now)) = (last_usage, chunked.usage()) {
            let (b, n) = (fields(&before), fields(&now));
            prop_assert!(b.iter().zip(n.iter()).all(|(b, n)| b <= n), "usage went down: {before:?} -> {now:?}");
        }
        last_usage = chunked.usage().or(last_usage);
        at = end;
    }
    filtered.extend(filter.finish());
    prop_assert_eq!(state(&chunked), state(&whole), "chunking changed the parse");
    prop_assert_eq!(filtered, filtered_whole, "chunking changed the filter's output");

    let partial = whole.bytes_since_event_end();
    prop_assert!(partial <= stream.len());
    let mut prefix = SseUsageParser::with_max_event_bytes(endpoint, MAX_EVENT);
    prefix.feed(&stream[..stream.len() - partial]);
    prop_assert_eq!(prefix.usage(), whole.usage(), "the released prefix lost usage");
    prop_assert_eq!(prefix.saw_terminal_event(), whole.saw_terminal_event());
    let _ = Usage::read_response(endpoint, stream);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chunking_never_changes_the_parse(
        kind in 0..ENDPOINTS.len(),
        events in proptest::collection::vec(event(), 0..12),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let stream = events.concat();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        check(ENDPOINTS[kind], &stream, &cuts)?;
        let bytewise: Vec<usize> = (1..stream.len()).collect();
        check(ENDPOINTS[kind], &stream, &bytewise)?;
    }
}

/// The fuzzer's corpus, replayed with its own chunking rule.
#[test]
fn the_fuzz_corpus_replays_clean() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/sse");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/seeds/sse exists") {
        let data = std::fs::read(entry.expect("a readable entry").path()).expect("a readable seed");
        let [kind, seed, stream @ ..] = data.as_slice() else { continue };
        let mut cuts = Vec::new();
        let mut x = u64::from(*seed) | 1;
        let mut at = 0;
        while at < stream.len() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            at += if *seed == 0 { 1 } else { 1 + (x % 64) as usize };
            cuts.push(at.min(stream.len()));
        }
        check(ENDPOINTS[usize::from(*kind) % ENDPOINTS.len()], stream, &cuts)
            .unwrap_or_else(|e| panic!("seed {:?}: {e}", dir));
        replayed += 1;
    }
    assert!(replayed > 0, "no seed in {}", dir.display());
}
