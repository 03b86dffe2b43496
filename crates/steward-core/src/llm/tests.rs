//! The recorded SSE streams under `tests/fixtures/sse/`, fed to the usage
//! parser and the usage-chunk filter whole, at every split point, one byte at
//! a time and at random splits: the results must not depend on how the
//! network cut the stream. Then what each stream costs at the built-in prices.

use proptest::prelude::*;

use super::*;

/// What a parser concluded from a stream; equal for every way of feeding it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    usage: Option<Usage>,
    terminal: bool,
    estimate: u64,
    error: Option<String>,
    oversized: u64,
}

fn outcome(parser: &SseUsageParser) -> Outcome {
    Outcome {
        usage: parser.usage(),
        terminal: parser.saw_terminal_event(),
        estimate: parser.output_tokens_seen_estimate(),
        error: parser.upstream_error().map(str::to_owned),
        oversized: parser.oversized_events(),
    }
}

/// A recorded stream, the endpoint it answers, and the model it names.
struct Fixture {
    name: &'static str,
    bytes: &'static [u8],
    endpoint: Endpoint,
    model: &'static str,
}

macro_rules! fixture {
    ($name:literal, $endpoint:expr, $model:literal) => {
        Fixture {
            name: $name,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sse/", $name, ".sse")),
            endpoint: $endpoint,
            model: $model,
        }
    };
}

fn fixtures() -> [Fixture; 5] {
    [
        fixture!("openai_chat_include_usage", Endpoint::ChatCompletions, "gpt-4o-mini-2024-07-18"),
        fixture!("openai_chat_usage_on_last_choice", Endpoint::ChatCompletions, "deepseek-chat"),
        fixture!("openai_responses", Endpoint::Responses, "gpt-5-mini-2025-08-07"),
        fixture!("anthropic_messages_cache", Endpoint::Messages, "claude-sonnet-4-5-20250929"),
        fixture!("anthropic_cut", Endpoint::Messages, "claude-haiku-4-5-20251001"),
    ]
}

fn expected(name: &str) -> Outcome {
    let (usage, terminal, estimate) = match name {
        "openai_chat_include_usage" => (
            Some(Usage { input_tokens: 1250, output_tokens: 12, cached_input_tokens: 1024, ..Usage::default() }),
            true,
            12,
        ),
        "openai_chat_usage_on_last_choice" => {
            (Some(Usage { input_tokens: 37, output_tokens: 9, cached_input_tokens: 32, ..Usage::default() }), true, 9)
        }
        "openai_responses" => (
            Some(Usage {
                input_tokens: 2048,
                output_tokens: 320,
                cached_input_tokens: 1536,
                reasoning_tokens: 256,
                ..Usage::default()
            }),
            true,
            320,
        ),
        "anthropic_messages_cache" => (
            Some(Usage {
                input_tokens: 12 + 1500 + 8000,
                output_tokens: 87,
                cached_input_tokens: 8000,
                cache_write_tokens: 1500,
                cache_write_1h_tokens: 500,
                reasoning_tokens: 0,
            }),
            true,
            87,
        ),
        // Cut mid-event: no final usage, no clean end, 8 complete text deltas.
        "anthropic_cut" => (None, false, 8),
        other => panic!("no expectation for {other}"),
    };
    Outcome { usage, terminal, estimate, error: None, oversized: 0 }
}

fn run<'a>(endpoint: Endpoint, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = SseUsageParser::new(endpoint);
    chunks.into_iter().for_each(|chunk| parser.feed(chunk));
    outcome(&parser)
}

/// `bytes` cut at `cuts` (any order, duplicates allowed).
fn pieces(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<&[u8]> {
    cuts.iter_mut().for_each(|cut| *cut = (*cut).min(bytes.len()));
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        out.push(&bytes[start..cut]);
        start = cut;
    }
    out
}

#[test]
fn each_recorded_stream_gives_the_expected_usage() {
    for f in fixtures() {
        assert_eq!(run(f.endpoint, [f.bytes]), expected(f.name), "{}", f.name);
    }
}

#[test]
fn every_split_point_gives_the_same_result() {
    for f in fixtures() {
        let want = expected(f.name);
        for split in 0..=f.bytes.len() {
            let got = run(f.endpoint, [&f.bytes[..split], &f.bytes[split..]]);
            assert_eq!(got, want, "{} split at {split}", f.name);
        }
        let bytes = run(f.endpoint, f.bytes.chunks(1));
        assert_eq!(bytes, want, "{} one byte at a time", f.name);
    }
}

#[test]
fn the_fixtures_split_inside_utf8_and_crlf() {
    // The split tests above only prove something if the streams contain
    // multi-byte characters and CRLF pairs to be split.
    for f in fixtures() {
        assert!(std::str::from_utf8(f.bytes).unwrap().chars().any(|c| c.len_utf8() > 1), "{}", f.name);
    }
    assert!(fixtures()[1].bytes.windows(2).any(|w| w == b"\r\n"));
}

/// The usage-only event of the include_usage fixture, which the filter drops.
fn usage_event(bytes: &[u8]) -> std::ops::Range<usize> {
    let text = std::str::from_utf8(bytes).unwrap();
    let start = text.find("data: {\"id\":\"chatcmpl-CEq1ZkQ8vJ3tqP0aXWc7mYb2NdL9r\",\"object\":\"chat.completion.chunk\",\"created\":1757430211,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_560af6e559\",\"choices\":[],").unwrap();
    let end = start + text[start..].find("\n\n").unwrap() + 2;
    start..end
}

fn filtered<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<u8>, u64) {
    let mut filter = UsageChunkFilter::new();
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(filter.feed(chunk));
    }
    out.extend(filter.finish());
    (out, filter.dropped_events())
}

#[test]
fn the_filter_removes_exactly_the_usage_chunk_at_every_split() {
    let f = &fixtures()[0];
    let range = usage_event(f.bytes);
    let want = [&f.bytes[..range.start], &f.bytes[range.end..]].concat();
    assert!(want.ends_with(b"data: [DONE]\n\n"));
    for split in 0..=f.bytes.len() {
        let (out, dropped) = filtered([&f.bytes[..split], &f.bytes[split..]]);
        assert_eq!(out, want, "split at {split}");
        assert_eq!(dropped, 1);
    }
    // What the client receives is still a complete stream without usage.
    let client = run(f.endpoint, [want.as_slice()]);
    assert!(client.terminal);
    assert_eq!(client.usage, None);
    assert_eq!(client.estimate, 11);
}

#[test]
fn the_filter_leaves_other_streams_byte_identical() {
    for f in fixtures().iter().skip(1) {
        for split in 0..=f.bytes.len() {
            let (out, dropped) = filtered([&f.bytes[..split], &f.bytes[split..]]);
            assert_eq!(out, f.bytes, "{} split at {split}", f.name);
            assert_eq!(dropped, 0, "{}", f.name);
        }
    }
}

#[test]
fn what_the_recorded_streams_cost_at_builtin_prices() {
    let mut overrides = std::collections::BTreeMap::new();
    // A model the table does not know is refused unless configured.
    let table = PriceTable::with_builtin(&overrides).unwrap();
    assert_eq!(table.lookup("deepseek-chat"), None);
    overrides.insert(
        "deepseek-chat".to_owned(),
        ModelPrice::with_defaults(
            Usd::from_micros(270_000),
            Usd::from_micros(1_100_000),
            Some(Usd::from_micros(70_000)),
            None,
            None,
            None,
        ),
    );
    let table = PriceTable::with_builtin(&overrides).unwrap();
    let cost = |f: &Fixture| {
        let mut parser = SseUsageParser::new(f.endpoint);
        parser.feed(f.bytes);
        let usage = parser.usage_or_estimate(1_000_000);
        cost_micros(&table.lookup(f.model).unwrap(), &usage)
    };
    let costs: Vec<u64> = fixtures().iter().map(cost).collect();
    assert_eq!(
        costs,
        vec![
            // gpt-4o-mini: 226 × 0.15 + 1024 × 0.075 + 12 × 0.60 = 117.9 → 118 µUSD
            118,
            // deepseek-chat (configured): 5 × 0.27 + 32 × 0.07 + 9 × 1.10 = 13.49 → 14
            14, // gpt-5-mini: 512 × 0.25 + 1536 × 0.025 + 320 × 2.00 = 806.4 → 807
            807,
            // claude-sonnet-4-5: 12 × 3 + 8000 × 0.30 + 1000 × 3.75 + 500 × 6 + 87 × 15
            10_491, // claude-haiku-4-5, cut: message_start's 2200 input + 8 output seen
            2_240,
        ]
    );
}

proptest! {
    #[test]
    fn random_splits_give_the_same_result(cuts in proptest::collection::vec(0usize..7_000, 0..40)) {
        for f in fixtures() {
            let got = run(f.endpoint, pieces(f.bytes, cuts.clone()));
            prop_assert_eq!(got, expected(f.name), "{}", f.name);
        }
    }

    #[test]
    fn random_splits_filter_the_same(cuts in proptest::collection::vec(0usize..5_000, 0..40)) {
        let f = &fixtures()[0];
        let range = usage_event(f.bytes);
        let want = [&f.bytes[..range.start], &f.bytes[range.end..]].concat();
        let (out, dropped) = filtered(pieces(f.bytes, cuts));
        prop_assert_eq!(out, want);
        prop_assert_eq!(dropped, 1);
    }
}
