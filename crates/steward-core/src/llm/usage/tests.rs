//! Tests of usage extraction from complete responses and of cost arithmetic
//! on known numbers.

use super::*;

fn usd(dollars: f64) -> Usd {
    Usd::from_dollars(dollars).unwrap()
}

fn price(input: f64, output: f64, cached: f64, write: f64, write_1h: Option<f64>) -> ModelPrice {
    ModelPrice::with_defaults(usd(input), usd(output), Some(usd(cached)), Some(usd(write)), write_1h.map(usd), None)
}

fn from(endpoint: Endpoint, body: &str) -> Result<Usage, UsageError> {
    Usage::from_response(endpoint, body.as_bytes())
}

#[test]
fn openai_chat_usage_includes_cached_and_reasoning_tokens() {
    let body = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"o4-mini-2025-04-16",
        "choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}],
        "usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,
            "prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},
            "completion_tokens_details":{"reasoning_tokens":256,"audio_tokens":0,
                "accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#;
    let usage = from(Endpoint::ChatCompletions, body).unwrap();
    assert_eq!(
        usage,
        Usage {
            input_tokens: 2006,
            output_tokens: 300,
            cached_input_tokens: 1920,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            reasoning_tokens: 256,
        }
    );
    assert_eq!(usage.uncached_input_tokens(), 86);
    // Legacy completions share the shape; details are optional.
    let legacy = r#"{"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
    assert_eq!(
        from(Endpoint::Completions, legacy).unwrap(),
        Usage { input_tokens: 5, output_tokens: 7, ..Usage::default() }
    );
    // DeepSeek-style cache hits.
    let deepseek = r#"{"usage":{"prompt_tokens":40,"completion_tokens":2,"prompt_cache_hit_tokens":32}}"#;
    assert_eq!(from(Endpoint::ChatCompletions, deepseek).unwrap().cached_input_tokens, 32);
}

#[test]
fn responses_usage() {
    let body = r#"{"id":"resp_1","object":"response","status":"completed","output":[],
        "usage":{"input_tokens":328,"input_tokens_details":{"cached_tokens":128},
            "output_tokens":52,"output_tokens_details":{"reasoning_tokens":32},"total_tokens":380}}"#;
    assert_eq!(
        from(Endpoint::Responses, body).unwrap(),
        Usage {
            input_tokens: 328,
            output_tokens: 52,
            cached_input_tokens: 128,
            reasoning_tokens: 32,
            ..Usage::default()
        }
    );
}

#[test]
fn embeddings_usage_has_no_output() {
    let body = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],
        "model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
    assert_eq!(from(Endpoint::Embeddings, body).unwrap(), Usage { input_tokens: 8, ..Usage::default() });
}

#[test]
fn anthropic_input_excludes_cache_tokens_so_they_are_added() {
    let body = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
        "content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn",
        "usage":{"input_tokens":50,"cache_creation_input_tokens":2000,"cache_read_input_tokens":10000,
            "cache_creation":{"ephemeral_5m_input_tokens":1500,"ephemeral_1h_input_tokens":500},
            "output_tokens":120,"service_tier":"standard"}}"#;
    let usage = from(Endpoint::Messages, body).unwrap();
    assert_eq!(
        usage,
        Usage {
            input_tokens: 12_050,
            output_tokens: 120,
            cached_input_tokens: 10_000,
            cache_write_tokens: 2_000,
            cache_write_1h_tokens: 500,
            reasoning_tokens: 0,
        }
    );
    assert_eq!(usage.uncached_input_tokens(), 50);
    // Without cache fields, the input is just input_tokens.
    let plain = r#"{"usage":{"input_tokens":10,"output_tokens":3}}"#;
    assert_eq!(
        from(Endpoint::Messages, plain).unwrap(),
        Usage { input_tokens: 10, output_tokens: 3, ..Usage::default() }
    );
}

#[test]
fn a_response_without_usable_usage_is_an_error() {
    let missing = UsageError::Missing { endpoint: "chat.completions" };
    for body in [
        r#"{"choices":[]}"#,
        r#"{"usage":null}"#,
        r#"{"usage":{"prompt_tokens":5}}"#,
        r#"{"usage":{"prompt_tokens":"5","completion_tokens":1}}"#,
        r#"{"usage":{"prompt_tokens":-5,"completion_tokens":1}}"#,
        r#"[]"#,
    ] {
        assert_eq!(from(Endpoint::ChatCompletions, body), Err(missing.clone()), "{body}");
    }
    assert_eq!(
        from(Endpoint::Messages, r#"{"usage":{"output_tokens":3}}"#),
        Err(UsageError::Missing { endpoint: "messages" })
    );
    assert_eq!(from(Endpoint::Responses, "event: x"), Err(UsageError::NotJson { endpoint: "responses" }));
    assert_eq!(from(Endpoint::Other, "{}"), Err(UsageError::NotPriced));
    assert!(missing.to_string().contains("no usable token usage"));
}

#[test]
fn cost_of_known_usage() {
    // gpt-4o-mini: $0.15 in, $0.60 out, $0.075 cached.
    let mini = price(0.15, 0.60, 0.075, 0.15, None);
    let usage = Usage { input_tokens: 1_000_000, output_tokens: 1_000_000, ..Usage::default() };
    assert_eq!(cost_micros(&mini, &usage), 750_000, "$0.75");
    let usage = Usage { input_tokens: 1250, cached_input_tokens: 1024, output_tokens: 12, ..Usage::default() };
    // 226 × 0.15 + 1024 × 0.075 + 12 × 0.60 = 33.9 + 76.8 + 7.2 = 117.9 µUSD → 118.
    assert_eq!(cost_micros(&mini, &usage), 118);

    // claude-sonnet-4-5: $3 in, $15 out, $0.30 read, $3.75 5m write, $6 1h write.
    let sonnet = price(3.0, 15.0, 0.30, 3.75, Some(6.0));
    let usage = Usage {
        input_tokens: 12 + 1500 + 8000,
        cached_input_tokens: 8000,
        cache_write_tokens: 1500,
        cache_write_1h_tokens: 500,
        output_tokens: 87,
        reasoning_tokens: 40,
    };
    // 12×3 + 8000×0.30 + 1000×3.75 + 500×6 + 87×15 = 36 + 2400 + 3750 + 3000 + 1305.
    assert_eq!(cost_micros(&sonnet, &usage), 10_491);
    // Without a configured 1-hour price, 1-hour writes cost twice the input.
    let no_1h = price(3.0, 15.0, 0.30, 3.75, None);
    assert_eq!(cost_micros(&no_1h, &usage), 10_491);
}

#[test]
fn cost_rounds_up_once_per_call_and_never_wraps() {
    let mini = price(0.15, 0.60, 0.075, 0.15, None);
    let one = Usage { input_tokens: 1, ..Usage::default() };
    assert_eq!(cost_micros(&mini, &one), 1, "0.15 µUSD rounds up");
    assert_eq!(cost_micros(&mini, &Usage::default()), 0);
    let free = price(0.0, 0.0, 0.0, 0.0, None);
    assert_eq!(cost_micros(&free, &one), 0);
    let huge = Usage { input_tokens: u64::MAX, output_tokens: u64::MAX, ..Usage::default() };
    let dear = price(100_000.0, 100_000.0, 100_000.0, 100_000.0, None);
    assert_eq!(cost_micros(&dear, &huge), u64::MAX);
    assert_eq!(worst_case_micros(&dear, u64::MAX, u64::MAX), u64::MAX);
    // Inconsistent counts (cached above total) are priced, not underflowed.
    let odd = Usage {
        input_tokens: 10,
        cached_input_tokens: 100,
        cache_write_tokens: 5,
        cache_write_1h_tokens: 50,
        ..Usage::default()
    };
    assert_eq!(odd.uncached_input_tokens(), 0);
    let expected = (100 * 75_000 + 5 * 300_000u64).div_ceil(1_000_000);
    assert_eq!(cost_micros(&mini, &odd), expected);
}

#[test]
fn the_worst_case_prices_input_at_the_dearest_rate() {
    // 10,000 input tokens, 1,000 output tokens.
    let gpt_4o = price(2.50, 10.00, 1.25, 2.50, None);
    assert_eq!(worst_case_micros(&gpt_4o, 10_000, 1_000), 25_000 + 10_000);
    let opus = price(15.0, 75.0, 1.50, 18.75, Some(30.0));
    assert_eq!(worst_case_micros(&opus, 10_000, 1_000), 300_000 + 75_000);
    let opus_5m = price(15.0, 75.0, 1.50, 18.75, None);
    assert_eq!(worst_case_micros(&opus_5m, 10_000, 1_000), 187_500 + 75_000);
    // The worst case is never below the cost of any usage within the bounds.
    let usage = Usage {
        input_tokens: 10_000,
        cache_write_tokens: 10_000,
        cache_write_1h_tokens: 10_000,
        output_tokens: 1_000,
        ..Usage::default()
    };
    assert!(cost_micros(&opus, &usage) <= worst_case_micros(&opus, 10_000, 1_000));
    assert_eq!(worst_case_micros(&gpt_4o, 0, 0), 0);
}
