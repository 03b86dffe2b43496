//! Tests of request inspection: endpoint classification, field reading and
//! refusal, worst-case bounds, the audit summary and the body rewrite.

use serde_json::{Value, json};

use canonical_path::CanonicalPath;

use super::*;
use crate::config::units::Usd;

const CHAT: &str = "/v1/chat/completions";

fn canonical(path: &str) -> CanonicalPath {
    CanonicalPath::parse(path).unwrap()
}

fn inspect(path: &str, body: &str) -> LlmRequest {
    LlmRequest::inspect(LlmKind::OpenAi, &canonical(path), body.as_bytes()).unwrap()
}

fn refused(path: &str, body: &str) -> LlmRequestError {
    LlmRequest::inspect(LlmKind::OpenAi, &canonical(path), body.as_bytes()).unwrap_err()
}

fn price(input: f64, output: f64) -> ModelPrice {
    ModelPrice::with_defaults(
        Usd::from_dollars(input).unwrap(),
        Usd::from_dollars(output).unwrap(),
        None,
        None,
        None,
        None,
    )
}

/// The rewritten body as JSON, and the original as JSON.
fn rewritten(path: &str, body: &str, default: u32) -> (Value, Value) {
    let request = inspect(path, body);
    let out = request.rewrite(default).expect("a rewrite");
    let new: Value = serde_json::from_slice(&out).unwrap();
    (new, serde_json::from_str(body).unwrap())
}

#[test]
fn endpoints_are_classified_by_the_end_of_the_path() {
    use Endpoint::*;
    for (path, endpoint) in [
        ("/v1/chat/completions", ChatCompletions),
        ("/chat/completions", ChatCompletions),
        ("/api/v1/chat/completions", ChatCompletions),
        ("/openai/deployments/x/chat/completions", ChatCompletions),
        ("/v1/chat/completions/", ChatCompletions),
        ("/v1/chat/%63ompletions", ChatCompletions),
        ("/V1/Chat/Completions", ChatCompletions),
        ("/v1/completions", Completions),
        ("/v1/responses", Responses),
        ("/v1/embeddings", Embeddings),
        ("/v1/messages", Messages),
        ("/messages", Messages),
        ("/v1/messages/count_tokens", Other),
        ("/v1/messages/batches", Other),
        ("/v1/threads/thread_1/messages", Other),
        ("/v1/responses/resp_1", Other),
        ("/v1/responses/resp_1/cancel", Other),
        ("/v1/chat/completions/chatcmpl_1", Other),
        ("/v1/models", Other),
        ("/v1/models/gpt-4o", Other),
        ("/v1/files", Other),
        ("/", Other),
        ("", Other),
    ] {
        assert_eq!(Endpoint::classify(&canonical(path)), endpoint, "{path}");
    }
    // Spellings that a URL parser could resolve to a priced endpoint while
    // steward reads another are refused before classification.
    for path in
        ["//v1//chat/completions", "/v1/./chat/completions", "/v1/x/../chat/completions", "/v1/chat%2Fcompletions"]
    {
        assert!(CanonicalPath::parse(path).is_err(), "{path}");
    }
}

#[test]
fn endpoint_properties() {
    use Endpoint::*;
    assert!(ChatCompletions.is_priced() && Embeddings.is_priced() && !Other.is_priced());
    assert!(Messages.generates() && !Embeddings.generates() && !Other.generates());
    assert_eq!(ChatCompletions.max_output_field(), Some("max_completion_tokens"));
    assert_eq!(Completions.max_output_field(), Some("max_tokens"));
    assert_eq!(Messages.max_output_field(), Some("max_tokens"));
    assert_eq!(Responses.max_output_field(), Some("max_output_tokens"));
    assert_eq!(Embeddings.max_output_field(), None);
    assert_eq!(Responses.as_str(), "responses");
}

#[test]
fn a_chat_request_is_read() {
    let r = inspect(
        CHAT,
        r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},
            "max_tokens":100,"max_completion_tokens":300,"n":2,
            "messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.kind(), LlmKind::OpenAi);
    assert_eq!(r.endpoint(), Endpoint::ChatCompletions);
    assert_eq!(r.model(), Some("gpt-4o-mini"));
    assert!(r.stream());
    assert!(r.client_requested_usage());
    assert!(!r.include_usage_added());
    // Both limits set: the larger one bounds the worst case.
    assert_eq!(r.requested_max_output_tokens(), Some(300));
    assert_eq!(r.choices(), 2);
    assert_eq!(r.max_output_bound(4096), 600);
    assert_eq!(r.max_output_field_added(), None);
    assert_eq!(r.summary(), Some("hi"));
}

#[test]
fn defaults_when_fields_are_absent_or_null() {
    let r =
        inspect(CHAT, r#"{"model":"m","stream":null,"stream_options":null,"max_tokens":null,"n":null,"messages":[]}"#);
    assert!(!r.stream());
    assert!(!r.client_requested_usage());
    assert_eq!(r.requested_max_output_tokens(), None);
    assert_eq!(r.choices(), 1);
    assert_eq!(r.max_output_bound(4096), 4096);
    assert_eq!(r.max_output_field_added(), Some("max_completion_tokens"));
    assert_eq!(r.summary(), None);
    // n = 0 is the provider's error to report; it never lowers the bound.
    assert_eq!(inspect(CHAT, r#"{"model":"m","n":0}"#).choices(), 1);
}

#[test]
fn legacy_completions_pay_for_best_of() {
    let r = inspect(
        "/v1/completions",
        r#"{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi","n":2,"best_of":5,"max_tokens":10}"#,
    );
    assert_eq!(r.choices(), 5);
    assert_eq!(r.max_output_bound(4096), 50);
    assert_eq!(r.summary(), Some("Say hi"));
}

#[test]
fn embeddings_have_no_output_and_nothing_to_rewrite() {
    let r = inspect("/v1/embeddings", r#"{"model":"text-embedding-3-small","input":["a","b"],"max_tokens":5}"#);
    assert_eq!(r.endpoint(), Endpoint::Embeddings);
    assert_eq!(r.requested_max_output_tokens(), None);
    assert_eq!(r.max_output_bound(4096), 0);
    assert_eq!(r.max_output_field_added(), None);
    assert_eq!(r.rewrite(4096), None);
    assert_eq!(r.summary(), Some("a\nb"));
    let tokens = inspect("/v1/embeddings", r#"{"model":"m","input":[[1,2,3]]}"#);
    assert_eq!(tokens.summary(), None);
}

#[test]
fn unpriced_and_empty_requests_pass_through_unparsed() {
    for (path, body) in [("/v1/models", ""), ("/v1/files", "--boundary\r\nnot json"), (CHAT, ""), (CHAT, " \n")] {
        let r = inspect(path, body);
        assert_eq!(r.endpoint(), Endpoint::Other, "{path} {body:?}");
        assert_eq!(r.model(), None);
        assert_eq!(r.rewrite(4096), None);
        assert_eq!(r.max_output_bound(4096), 0);
        assert_eq!(r.body_len(), body.len());
    }
}

#[test]
fn ambiguous_or_malformed_bodies_are_refused() {
    assert_eq!(refused(CHAT, "{\"model\":"), LlmRequestError::NotJson { line: 1, column: 9 });
    assert_eq!(refused(CHAT, "[1]"), LlmRequestError::NotAnObject);
    assert_eq!(refused(CHAT, "\"x\""), LlmRequestError::NotAnObject);
    assert_eq!(refused(CHAT, "{}"), LlmRequestError::MissingModel);
    assert_eq!(refused(CHAT, r#"{"model":null}"#), LlmRequestError::MissingModel);
    assert_eq!(refused(CHAT, r#"{"model":""}"#), LlmRequestError::MissingModel);
    let invalid = |field, expected| LlmRequestError::InvalidField { field, expected };
    assert_eq!(refused(CHAT, r#"{"model":4}"#), invalid("model", "a model name (a string)"));
    assert_eq!(refused(CHAT, r#"{"model":"m","stream":"true"}"#), invalid("stream", "true or false"));
    assert_eq!(refused(CHAT, r#"{"model":"m","stream_options":true}"#), invalid("stream_options", "an object"));
    assert_eq!(
        refused(CHAT, r#"{"model":"m","stream_options":{"include_usage":1}}"#),
        invalid("include_usage", "true or false")
    );
    for field in ["max_tokens", "max_completion_tokens", "n"] {
        for value in ["-1", "1.5", "\"10\"", "1e3"] {
            let body = format!(r#"{{"model":"m","{field}":{value}}}"#);
            assert!(
                matches!(refused(CHAT, &body), LlmRequestError::InvalidField { field: f, .. } if f == field),
                "{body}"
            );
        }
    }
    // A zero limit is not a bound: some servers read it as "no limit".
    for (path, field) in [
        (CHAT, "max_tokens"),
        (CHAT, "max_completion_tokens"),
        ("/v1/responses", "max_output_tokens"),
        ("/v1/messages", "max_tokens"),
    ] {
        let body = format!(r#"{{"model":"m","{field}":0}}"#);
        assert_eq!(refused(path, &body), invalid(field, "a whole number of at least 1"), "{path}");
    }
    // The provider and steward could read different models: refused.
    assert_eq!(
        refused(CHAT, r#"{"model":"gpt-4o-mini","messages":[],"model":"o1-pro"}"#),
        LlmRequestError::DuplicateField { field: "model".into() }
    );
    assert_eq!(
        refused(CHAT, r#"{"model":"m","max_tokens":1,"max_tok\u0065ns":900}"#),
        LlmRequestError::DuplicateField { field: "max_tokens".into() }
    );
    let messages = [refused(CHAT, "{").to_string(), refused(CHAT, "{}").to_string()];
    assert!(messages[0].contains("not valid JSON"), "{}", messages[0]);
    assert!(messages[1].contains("\"model\""), "{}", messages[1]);
}

#[test]
fn streaming_chat_gets_include_usage_and_a_max_output_limit() {
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = inspect(CHAT, body);
    assert!(r.include_usage_added());
    assert_eq!(r.max_output_field_added(), Some("max_completion_tokens"));
    let out = r.rewrite(4096).unwrap();
    // Inserted right after `{`; every original byte follows unchanged.
    let expected =
        format!("{{\"stream_options\":{{\"include_usage\":true}},\"max_completion_tokens\":4096,{}", &body[1..]);
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn existing_stream_options_are_kept_and_completed() {
    let (new, mut old) = rewritten(
        CHAT,
        r#"{"model":"m","stream":true,"max_tokens":5,"stream_options":{"include_obfuscation":false}}"#,
        4096,
    );
    old["stream_options"]["include_usage"] = json!(true);
    assert_eq!(new, old);
    // A client that said false does not get usage from us either: the filter hides it.
    let r = inspect(CHAT, r#"{"model":"m","stream":true,"max_tokens":5,"stream_options":{"include_usage":false}}"#);
    assert!(!r.client_requested_usage());
    assert!(r.include_usage_added());
    let out: Value = serde_json::from_slice(&r.rewrite(4096).unwrap()).unwrap();
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
    // null stream_options is replaced, not duplicated.
    let out =
        inspect(CHAT, r#"{"model":"m","stream":true,"max_tokens":5,"stream_options":null}"#).rewrite(4096).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"model":"m","stream":true,"max_tokens":5,"stream_options":{"include_usage":true}}"#
    );
}

#[test]
fn nothing_changes_when_the_client_set_everything() {
    for (path, body) in [
        (CHAT, r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":9}"#),
        (CHAT, r#"{"model":"m","max_tokens":9}"#),
        ("/v1/responses", r#"{"model":"m","stream":true,"max_output_tokens":9}"#),
        ("/v1/messages", r#"{"model":"m","stream":true,"max_tokens":9}"#),
    ] {
        let r = inspect(path, body);
        assert!(!r.include_usage_added(), "{body}");
        assert_eq!(r.rewrite(4096), None, "{body}");
    }
}

#[test]
fn each_endpoint_gets_its_own_limit_field() {
    for (path, field) in [
        ("/v1/responses", "max_output_tokens"),
        ("/v1/messages", "max_tokens"),
        ("/v1/completions", "max_tokens"),
        (CHAT, "max_completion_tokens"),
    ] {
        let (new, mut old) = rewritten(path, r#"{"model":"m","input":"x"}"#, 1234);
        old[field] = json!(1234);
        assert_eq!(new, old, "{path}");
    }
    // Responses and Messages stream usage anyway: no stream_options.
    for path in ["/v1/responses", "/v1/messages"] {
        let (new, _) = rewritten(path, r#"{"model":"m","stream":true}"#, 7);
        assert!(new.get("stream_options").is_none(), "{path}");
    }
    // A null limit is replaced in place.
    let out = inspect("/v1/messages", r#"{"model":"m","max_tokens":null,"messages":[]}"#).rewrite(77).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), r#"{"model":"m","max_tokens":77,"messages":[]}"#);
    // Streaming legacy completions get both.
    let (new, _) = rewritten("/v1/completions", r#"{"model":"m","prompt":"p","stream":true}"#, 8);
    assert_eq!(new["stream_options"], json!({"include_usage": true}));
    assert_eq!(new["max_tokens"], json!(8));
}

#[test]
fn the_rewrite_keeps_every_other_byte_and_is_idempotent() {
    // Formatting, key order, escapes and numbers beyond f64 all survive.
    let body = "{\n  \"seed\": 123456789012345678901234567890,\n  \"temperature\": 0.70,\n  \
                \"model\": \"gpt-4o\",\n  \"stream\": true,\n  \
                \"messages\": [{\"role\": \"user\", \"content\": \"caf\\u00e9 \u{1F600}\"}],\n  \
                \"stream_options\" : { \"include_obfuscation\" : false }\n}";
    let r = inspect(CHAT, body);
    let out = String::from_utf8(r.rewrite(4096).unwrap()).unwrap();
    let expected = body
        .replacen("{\n", "{\"max_completion_tokens\":4096,\n", 1)
        .replace("{ \"include_obfuscation\" : false }", "{\"include_obfuscation\":false,\"include_usage\":true}");
    assert_eq!(out, expected);
    let again = inspect(CHAT, &out);
    assert_eq!(again.requested_max_output_tokens(), Some(4096));
    assert!(again.client_requested_usage());
    assert_eq!(again.rewrite(4096), None);
    assert_eq!(again.summary(), Some("café \u{1F600}"));
}

#[test]
fn the_input_bound_counts_bytes_and_what_bytes_do_not_bound() {
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}"#;
    assert_eq!(inspect(CHAT, body).input_bound(), InputBound::Tokens(body.len() as u64 + REQUEST_OVERHEAD_TOKENS));
    assert_eq!(input_token_bound(0), REQUEST_OVERHEAD_TOKENS);
    assert_eq!(input_token_bound(10), 10 + REQUEST_OVERHEAD_TOKENS);

    let images = |model: &str| {
        format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":[
                {{"type":"text","text":"what is this?"}},
                {{"type":"image_url","image_url":{{"url":"https://x.example/a.png"}}}},
                {{"type":"image_url","image_url":{{"url":"data:image/png;base64,iVBORw0KGgo="}}}}]}}]}}"#
        )
    };
    let body = images("gpt-4o");
    assert_eq!(
        inspect(CHAT, &body).input_bound(),
        InputBound::Tokens(input_token_bound(body.len()) + 2 * IMAGE_TOKENS)
    );
    let body = images("gpt-4o-mini-2024-07-18");
    assert_eq!(
        inspect(CHAT, &body).input_bound(),
        InputBound::Tokens(input_token_bound(body.len()) + 2 * IMAGE_TOKENS_GPT_4O_MINI)
    );

    let anthropic = r#"{"model":"claude-sonnet-4-5","max_tokens":10,
        "system":[{"type":"text","text":"s"}],
        "tools":[{"name":"f","input_schema":{"type":"object"}},
                 {"type":"computer_20250124","name":"computer","display_width_px":1024,"display_height_px":768},
                 {"type":"bash_20250124","name":"bash"}],
        "messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x.example/a.png"}},
                                              {"type":"text","text":"click it"}]}]}"#;
    assert_eq!(
        inspect("/v1/messages", anthropic).input_bound(),
        InputBound::Tokens(input_token_bound(anthropic.len()) + IMAGE_TOKENS + 2 * BUILTIN_TOOL_TOKENS)
    );
}

#[test]
fn content_the_provider_fetches_itself_is_bounded_by_the_context_window() {
    for (path, body, reason) in [
        (
            "/v1/responses",
            r#"{"model":"gpt-5","previous_response_id":"resp_1","input":"go on"}"#,
            "a stored previous response",
        ),
        ("/v1/responses", r#"{"model":"gpt-5","conversation":"conv_1","input":"hi"}"#, "a stored conversation"),
        ("/v1/responses", r#"{"model":"gpt-5","prompt":{"id":"pmpt_1"}}"#, "a stored prompt template"),
        (
            "/v1/responses",
            r#"{"model":"gpt-5","tools":[{"type":"web_search"}],"input":"news"}"#,
            "a server-side tool (web search, file search, code execution, MCP)",
        ),
        (
            "/v1/responses",
            r#"{"model":"gpt-5","input":[{"role":"user","content":[{"type":"input_file","file_id":"file_1"}]}]}"#,
            "a file or document input",
        ),
        (
            "/v1/responses",
            r#"{"model":"gpt-5","input":[{"type":"item_reference","id":"msg_1"}]}"#,
            "a reference to a stored item",
        ),
        (
            "/v1/responses",
            r#"{"model":"gpt-5","input":[{"type":"reasoning","id":"rs_1","summary":[]}]}"#,
            "a stored reasoning item",
        ),
        (CHAT, r#"{"model":"gpt-4o-search-preview","web_search_options":{},"messages":[]}"#, "web search"),
        (
            "/v1/messages",
            r#"{"model":"claude-sonnet-4","max_tokens":9,"tools":[{"type":"web_search_20250305","name":"web_search"}]}"#,
            "a server-side tool (web search, file search, code execution, MCP)",
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-sonnet-4","max_tokens":9,"mcp_servers":[{"type":"url","url":"https://m.example"}]}"#,
            "remote MCP servers",
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-sonnet-4","max_tokens":9,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0="}}]}]}"#,
            "a file or document input",
        ),
    ] {
        let r = inspect(path, body);
        assert_eq!(
            r.input_bound(),
            InputBound::ServerSide { reason, request_tokens: input_token_bound(body.len()) },
            "{body}"
        );
    }
    let null_content =
        r#"{"model":"o3","input":[{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":null}]}"#;
    assert!(matches!(inspect("/v1/responses", null_content).input_bound(), InputBound::ServerSide { .. }));
    // Reasoning items that carry their encrypted content are measured by bytes.
    let body = r#"{"model":"o3","input":[{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"gAAA"}]}"#;
    assert!(matches!(inspect("/v1/responses", body).input_bound(), InputBound::Tokens(_)));
    // A completion's `prompt` is its text, not a stored template.
    assert!(matches!(inspect("/v1/completions", r#"{"model":"m","prompt":"p"}"#).input_bound(), InputBound::Tokens(_)));
    // Function tools and empty MCP lists are plain bytes.
    let body = r#"{"model":"m","tools":[{"type":"function","function":{"name":"f"}},{"type":"custom","name":"g"}],"mcp_servers":[]}"#;
    assert!(matches!(inspect(CHAT, body).input_bound(), InputBound::Tokens(_)));

    let server = InputBound::ServerSide { reason: "x", request_tokens: 500 };
    let mut known = price(1.0, 1.0);
    known.max_input_tokens = Some(128_000);
    assert_eq!(server.tokens(&known), 128_000);
    assert_eq!(server.tokens(&price(1.0, 1.0)), UNKNOWN_CONTEXT_TOKENS);
    known.max_input_tokens = Some(100);
    assert_eq!(server.tokens(&known), 500, "never below the visible part");
    assert_eq!(InputBound::Tokens(42).tokens(&known), 42);
}

#[test]
fn the_worst_case_cost_covers_input_bound_and_every_choice() {
    // 100 bytes + overhead at $2.50/M in, 2 x 1000 tokens at $10/M out.
    let body = format!(r#"{{"model":"gpt-4o","n":2,"max_tokens":1000,"x":"{}"}}"#, "a".repeat(51));
    assert_eq!(body.len(), 100);
    let r = inspect(CHAT, &body);
    let gpt_4o = price(2.50, 10.00);
    let input = 100 + REQUEST_OVERHEAD_TOKENS;
    assert_eq!(r.worst_case_micros(&gpt_4o, 4096), (input * 2_500_000 + 2_000 * 10_000_000).div_ceil(1_000_000));
    // 1124 x $2.50/M + 2000 x $10/M = $0.00281 + $0.02 = 22,810 µUSD.
    assert_eq!(r.worst_case_micros(&gpt_4o, 4096), 22_810);
    // Without a limit, the default bounds (and is what the rewrite sets).
    let r = inspect(CHAT, r#"{"model":"gpt-4o"}"#);
    let expected = (input_token_bound(18) * 2_500_000 + 4_096 * 10_000_000).div_ceil(1_000_000);
    assert_eq!(r.worst_case_micros(&gpt_4o, 4096), expected);
}

#[test]
fn the_summary_is_the_last_user_text() {
    for (path, body, summary) in [
        (
            CHAT,
            r#"{"model":"m","messages":[{"role":"system","content":"be nice"},
                {"role":"user","content":"first"},{"role":"assistant","content":"ok"},
                {"role":"user","content":"second"}]}"#,
            Some("second"),
        ),
        (
            CHAT,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"look"},
                {"type":"image_url","image_url":{"url":"u"}},{"type":"text","text":"here"}]}]}"#,
            Some("look\nhere"),
        ),
        (
            CHAT,
            r#"{"model":"m","messages":[{"role":"user","content":"question"},
                {"role":"assistant","tool_calls":[]},{"role":"tool","content":"result"}]}"#,
            Some("question"),
        ),
        (
            "/v1/messages",
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"do it"},
                {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"42"}]}]}"#,
            Some("do it"),
        ),
        (
            "/v1/messages",
            r#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","text":"¿qué?"}]}]}"#,
            Some("¿qué?"),
        ),
        ("/v1/responses", r#"{"model":"m","input":"plain"}"#, Some("plain")),
        (
            "/v1/responses",
            r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"a"}]},
                {"type":"function_call_output","call_id":"c","output":"x"},
                {"type":"message","role":"user","content":"b"}]}"#,
            Some("b"),
        ),
        ("/v1/completions", r#"{"model":"m","prompt":["p1","p2"]}"#, Some("p1\np2")),
        ("/v1/completions", r#"{"model":"m","prompt":[1,2]}"#, None),
        (CHAT, r#"{"model":"m","messages":[{"role":"user","content":"  "}]}"#, None),
        (CHAT, r#"{"model":"m","messages":"nope"}"#, None),
        ("/v1/responses", r#"{"model":"m","input":5}"#, None),
    ] {
        assert_eq!(inspect(path, body).summary(), summary, "{body}");
    }
}
