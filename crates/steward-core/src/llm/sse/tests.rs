//! Unit tests of the SSE decoding rules and of each provider's events. The
//! recorded streams are tested in `llm/tests.rs`.

use super::*;

fn parse(endpoint: Endpoint, stream: &str) -> SseUsageParser {
    let mut parser = SseUsageParser::new(endpoint);
    parser.feed(stream.as_bytes());
    parser
}

const USAGE_CHUNK: &str = r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":4,"total_tokens":14}}"#;

fn chat_usage(input: u64, output: u64) -> Usage {
    Usage { input_tokens: input, output_tokens: output, ..Usage::default() }
}

#[test]
fn sse_field_syntax() {
    // No space after the colon, a comment, an id and a retry field.
    let stream = format!(": comment\nid: 7\nretry: 100\ndata:{USAGE_CHUNK}\n\ndata:[DONE]\n\n");
    let p = parse(Endpoint::ChatCompletions, &stream);
    assert_eq!(p.usage(), Some(chat_usage(10, 4)));
    assert!(p.saw_terminal_event());
    // Only one leading space is removed: "data:  [DONE]" is " [DONE]", not the end.
    let p = parse(Endpoint::ChatCompletions, "data:  [DONE]\n\n");
    assert!(!p.saw_terminal_event());
}

#[test]
fn data_lines_of_one_event_are_joined_by_newlines() {
    let stream = "data: {\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":1,\ndata: \"completion_tokens\":2}}\n\n";
    let p = parse(Endpoint::ChatCompletions, stream);
    assert_eq!(p.usage(), Some(chat_usage(1, 2)));
}

#[test]
fn every_line_ending_works() {
    for end in ["\n", "\r\n", "\r"] {
        let stream = format!("data: {USAGE_CHUNK}{end}{end}data: [DONE]{end}{end}");
        let p = parse(Endpoint::ChatCompletions, &stream);
        assert_eq!(p.usage(), Some(chat_usage(10, 4)), "{end:?}");
        assert!(p.saw_terminal_event(), "{end:?}");
    }
    // `\r\n` split across chunks is one line end, not an empty line.
    let mut p = SseUsageParser::new(Endpoint::ChatCompletions);
    p.feed(b"data: [DO");
    p.feed(b"NE]\r");
    p.feed(b"\n");
    assert!(!p.saw_terminal_event(), "dispatched before the empty line");
    p.feed(b"\r\n");
    assert!(p.saw_terminal_event());
}

#[test]
fn an_event_without_its_empty_line_is_not_dispatched() {
    let p = parse(Endpoint::ChatCompletions, &format!("data: {USAGE_CHUNK}\ndata: [DONE]\n"));
    assert_eq!(p.usage(), None);
    assert!(!p.saw_terminal_event());
}

#[test]
fn a_field_line_without_colon_and_an_event_without_data() {
    // "data" alone is a data line with an empty value; the event has data "".
    let p = parse(Endpoint::ChatCompletions, "data\n\nevent: x\n\n");
    assert_eq!(p.usage(), None);
    assert!(!p.saw_terminal_event());
}

#[test]
fn oversized_events_are_skipped_and_memory_stays_bounded() {
    let mut p = SseUsageParser::with_max_event_bytes(Endpoint::ChatCompletions, 64);
    let big = format!("data: {}\n\n", "x".repeat(10_000));
    for _ in 0..10 {
        p.feed(big.as_bytes());
        // Never more than one growth step above the limit.
        assert!(p.data.capacity() <= 2 * 64, "{}", p.data.capacity());
    }
    assert_eq!(p.oversized_events(), 10);
    // Many data lines that add up past the limit are one oversized event.
    let lines = "data: 0123456789\n".repeat(20) + "\n";
    p.feed(lines.as_bytes());
    assert_eq!(p.oversized_events(), 11);
    // The parser carries on with the next event.
    p.feed(b"data: [DONE]\n\n");
    assert!(p.saw_terminal_event());
    // Long field names and event names are not buffered either.
    p.feed(format!("{}: x\nevent: {}\n\n", "n".repeat(100_000), "e".repeat(100_000)).as_bytes());
    assert!(p.name.capacity() <= 64, "{}", p.name.capacity());
    assert!(p.event_value.capacity() <= 256 && p.event_name.capacity() <= 256);
}

#[test]
fn openai_usage_on_a_chunk_with_choices_counts_too() {
    let stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}],\
                  \"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
    let p = parse(Endpoint::ChatCompletions, stream);
    assert_eq!(p.usage(), Some(chat_usage(3, 1)));
    assert_eq!(p.output_tokens_seen_estimate(), 1);
}

#[test]
fn content_deltas_estimate_a_cut_openai_stream() {
    let chunk = |delta: &str| format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{delta}}}]}}\n\n");
    let stream = [
        chunk(r#"{"role":"assistant","content":""}"#),
        chunk(r#"{"content":"Hel"}"#),
        chunk(r#"{"content":"lo"}"#),
        chunk(r#"{"reasoning_content":"hmm"}"#),
        chunk(r#"{"refusal":"no"}"#),
        chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\""}}]}"#),
        chunk(r#"{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":""}}]}"#),
        chunk("{}"),
        "data: {\"choices\":[{\"index\":0,\"text\":\"legacy\"},{\"index\":1,\"text\":\"two\"}]}\n\n".to_owned(),
    ]
    .concat();
    let p = parse(Endpoint::ChatCompletions, &stream);
    assert_eq!(p.usage(), None);
    assert!(!p.saw_terminal_event());
    assert_eq!(p.output_tokens_seen_estimate(), 7);
    // With no input reported, the input bound is billed.
    assert_eq!(p.usage_or_estimate(5_000), Usage { input_tokens: 5_000, output_tokens: 7, ..Usage::default() });
}

#[test]
fn an_openai_error_chunk_is_recorded() {
    let stream = "data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n";
    let p = parse(Endpoint::ChatCompletions, stream);
    assert_eq!(p.upstream_error(), Some("server_error"));
    assert!(!p.saw_terminal_event());
}

#[test]
fn responses_terminal_events_carry_usage() {
    for terminal in ["response.completed", "response.incomplete", "response.failed"] {
        let stream = format!(
            "event: {terminal}\ndata: {{\"type\":\"{terminal}\",\"response\":{{\"usage\":\
             {{\"input_tokens\":9,\"output_tokens\":2,\"output_tokens_details\":{{\"reasoning_tokens\":1}}}}}}}}\n\n"
        );
        let p = parse(Endpoint::Responses, &stream);
        assert!(p.saw_terminal_event(), "{terminal}");
        assert_eq!(
            p.usage(),
            Some(Usage { input_tokens: 9, output_tokens: 2, reasoning_tokens: 1, ..Usage::default() }),
            "{terminal}"
        );
    }
    // The type may be given only by the event name.
    let p = parse(
        Endpoint::Responses,
        "event: response.output_text.delta\ndata: {\"delta\":\"x\"}\n\n\
         event: response.completed\ndata: {\"response\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
    );
    assert!(p.saw_terminal_event());
    assert_eq!(p.output_tokens_seen_estimate(), 1);
    let p = parse(
        Endpoint::Responses,
        "event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\"}\n\n",
    );
    assert_eq!(p.upstream_error(), Some("rate_limit_exceeded"));
    assert!(!p.saw_terminal_event());
}

#[test]
fn anthropic_counts_are_cumulative_and_final_only_after_message_delta() {
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":\
                 {\"input_tokens\":20,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n";
    let delta = |json: &str| format!("event: content_block_delta\ndata: {json}\n\n");
    let mut p = SseUsageParser::new(Endpoint::Messages);
    p.feed(start.as_bytes());
    assert_eq!(p.usage(), None, "message_start's output count is not final");
    p.feed(delta(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#).as_bytes());
    p.feed(delta(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"b"}}"#).as_bytes());
    assert_eq!(p.output_tokens_seen_estimate(), 2);
    assert_eq!(
        p.usage_or_estimate(999_999),
        Usage { input_tokens: 120, cached_input_tokens: 100, output_tokens: 2, ..Usage::default() },
        "reported input beats the bound"
    );
    // Server tools grow the input: message_delta reports cumulative input too.
    p.feed(
        b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\
          \"usage\":{\"input_tokens\":450,\"cache_read_input_tokens\":100,\"output_tokens\":30,\
          \"server_tool_use\":{\"web_search_requests\":1}}}\n\n",
    );
    let expected = Usage { input_tokens: 550, cached_input_tokens: 100, output_tokens: 30, ..Usage::default() };
    assert_eq!(p.usage(), Some(expected));
    assert!(!p.saw_terminal_event(), "no message_stop yet: the stream may still be cut");
    assert_eq!(p.usage_or_estimate(0), expected);
    p.feed(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    assert!(p.saw_terminal_event());
}

#[test]
fn an_anthropic_error_event_is_recorded() {
    let p = parse(
        Endpoint::Messages,
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    );
    assert_eq!(p.upstream_error(), Some("overloaded_error"));
    assert_eq!(p.usage(), None);
}

#[test]
fn garbage_is_ignored_and_unpriced_endpoints_read_nothing() {
    let p = parse(Endpoint::ChatCompletions, "data: {not json\n\ndata: \u{0}\u{7f}\n\nnonsense\n\n");
    assert_eq!(p.usage(), None);
    let p = parse(Endpoint::Other, &format!("data: {USAGE_CHUNK}\n\ndata: [DONE]\n\n"));
    assert_eq!(p.usage(), None);
    assert!(!p.saw_terminal_event());
    assert_eq!(p.output_tokens_seen_estimate(), 0);
}

#[test]
fn cumulative_usage_keeps_the_largest_of_each_field() {
    let stream = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":900,\"completion_tokens\":80}}\n\n\
                  data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":90}}\n\ndata: [DONE]\n\n";
    let p = parse(Endpoint::ChatCompletions, stream);
    assert_eq!(p.usage(), Some(chat_usage(900, 90)));
}

#[test]
fn an_unreadable_final_output_count_leaves_the_usage_unknown() {
    for usage in [r#"{"input_tokens":3}"#, r#"{"output_tokens":null}"#, r#"{"output_tokens":-1}"#] {
        let stream = format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"usage\":{{\"input_tokens\":3,\"output_tokens\":1}}}}}}\n\n\
             event: message_delta\ndata: {{\"type\":\"message_delta\",\"usage\":{usage}}}\n\n"
        );
        let p = parse(Endpoint::Messages, &stream);
        assert!(p.output_unreadable(), "{usage}");
        assert_eq!(p.usage(), None, "{usage}");
    }
}

#[test]
fn reported_models_are_kept_distinct_and_bounded() {
    let mut p = SseUsageParser::new(Endpoint::ChatCompletions);
    for i in 0..10 {
        p.feed(format!("data: {{\"model\":\"m{}\",\"choices\":[]}}\n\n", i % 6).as_bytes());
    }
    assert_eq!(p.reported_models(), ["m0", "m1", "m2", "m3"]);
    let p = parse(
        Endpoint::Messages,
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-x\"}}\n\n",
    );
    assert_eq!(p.reported_models(), ["claude-x"]);
    let p = parse(
        Endpoint::Responses,
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"o3\"}}\n\n",
    );
    assert_eq!(p.reported_models(), ["o3"]);
}

#[test]
fn bytes_since_event_end_counts_the_unfinished_event_across_chunks() {
    let mut p = SseUsageParser::new(Endpoint::ChatCompletions);
    p.feed(b"data: {\"choices\":[]}\n\ndata: {\"cho");
    assert_eq!(p.bytes_since_event_end(), 11);
    p.feed(b"ices\":[]}\n");
    assert_eq!(p.bytes_since_event_end(), 21);
    p.feed(b"\n");
    assert_eq!(p.bytes_since_event_end(), 0);
    p.feed(b"data: [DONE]\r\n\r\n");
    assert_eq!(p.bytes_since_event_end(), 1, "the `\\n` of the last `\\r\\n` follows the event end");
    for byte in b": keep-alive\n\n" {
        p.feed(std::slice::from_ref(byte));
    }
    assert_eq!(p.bytes_since_event_end(), 0);
}

#[test]
fn signature_deltas_and_empty_deltas_are_not_output() {
    let p = parse(
        Endpoint::Messages,
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"x\"}}\n\n\
         event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"signature_delta\",\"signature\":\"s\"}}\n\n",
    );
    assert_eq!(p.output_tokens_seen_estimate(), 1);
    let p = parse(
        Endpoint::Responses,
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"\"}\n\n\
         event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"a\"}\n\n",
    );
    assert_eq!(p.output_tokens_seen_estimate(), 1);
}
