//! Settlement against a lying or broken upstream: each shape from issue 23
//! fed through the relay's own observer, billed as the module's table says.

use bytes::Bytes;

use super::*;
use crate::llm::{Endpoint, PriceTable};
use crate::store::SpendHold;

/// gpt-4o-mini: $0.15 / $0.60 per 1M tokens.
const MINI: &str = "gpt-4o-mini";

/// A reservation of 1000 input tokens and 100 output tokens at gpt-4o-mini
/// prices: 150 + 60 = 210 µUSD.
const RESERVED: u64 = 210;

fn prices() -> PriceTable {
    PriceTable::with_builtin(&std::collections::BTreeMap::new()).unwrap()
}

fn plan(endpoint: Endpoint, model: &str) -> LlmPlan {
    let price = prices().lookup(model).unwrap();
    LlmPlan {
        endpoint,
        model: Some(model.to_owned()),
        stream: true,
        price: Some(price),
        include_usage_added: false,
        input_bound: 1000,
        max_output: 100,
        provider: "openai".to_owned(),
        hold: Some(SpendHold {
            day: "2026-11-26".to_owned(),
            provider: "openai".to_owned(),
            model: model.to_owned(),
            reserve_micros: RESERVED,
            cap_micros: Some(50_000),
        }),
    }
}

fn sse(plan: &LlmPlan, stream: &str) -> Observer {
    let mut observer = Observer::llm(plan, true);
    let _ = observer.observe(Bytes::from(stream.to_owned()));
    observer
}

fn body(plan: &LlmPlan, body: &str) -> Observer {
    let mut observer = Observer::llm(plan, false);
    let _ = observer.observe(Bytes::from(body.to_owned()));
    observer
}

fn chat_chunk(model: &str, content: &str) -> String {
    format!("data: {{\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}}}}]}}\n\n")
}

fn chat_usage(model: &str, input: i64, output: i64) -> String {
    format!(
        "data: {{\"model\":\"{model}\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{input},\"completion_tokens\":{output}}}}}\n\n"
    )
}

fn settle_ok(plan: &LlmPlan, observer: &Observer, ending: Ending) -> Settled {
    settle(plan, 200, observer, ending, &prices()).unwrap()
}

#[test]
fn reported_usage_is_billed() {
    let plan = plan(Endpoint::ChatCompletions, MINI);
    let stream = format!("{}{}data: [DONE]\n\n", chat_chunk(MINI, "hi"), chat_usage(MINI, 100, 10));
    let s = settle_ok(&plan, &sse(&plan, &stream), Ending::Complete);
    assert_eq!(s.basis, "reported");
    // 100 × 0.15 + 10 × 0.60 = 21 µUSD.
    assert_eq!(s.spend.micros, 21);
    assert!(s.overrun.is_none() && s.mismatch.is_none() && s.notes.is_empty(), "{s:?}");
    assert!(!s.spend.estimated);
}

#[test]
fn usage_sent_twice_bills_the_larger_of_each_field() {
    // Issue 23 item 2: the last report ($0.000011) must not replace an earlier, larger one.
    let plan = plan(Endpoint::ChatCompletions, MINI);
    let stream = format!("{}{}data: [DONE]\n\n", chat_usage(MINI, 900, 80), chat_usage(MINI, 10, 1));
    let s = settle_ok(&plan, &sse(&plan, &stream), Ending::Complete);
    assert_eq!((s.usage.input_tokens, s.usage.output_tokens), (900, 80));
    assert_eq!(s.spend.micros, 135 + 48);
}

#[test]
fn anthropic_input_reported_as_zero_later_keeps_the_first_count() {
    let mut plan = plan(Endpoint::Messages, "claude-haiku-4-5");
    plan.input_bound = 100_000;
    plan.hold.as_mut().unwrap().reserve_micros = 1_000_000;
    let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":90000,\"output_tokens\":1}}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":0,\"output_tokens\":7}}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let s = settle_ok(&plan, &sse(&plan, stream), Ending::Complete);
    assert_eq!((s.usage.input_tokens, s.usage.output_tokens), (90_000, 7));
    // 90,000 × $1 + 7 × $5 per 1M.
    assert_eq!(s.spend.micros, 90_000 + 35);
}

#[test]
fn missing_null_or_negative_anthropic_output_settles_at_the_reservation() {
    // Issue 23 item 4: five content deltas billed as one output token.
    let plan = plan(Endpoint::Messages, "claude-haiku-4-5");
    for output in ["", ",\"output_tokens\":null", ",\"output_tokens\":-5", ",\"output_tokens\":2.5"] {
        let deltas = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\n".repeat(5);
        let stream = format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"usage\":{{\"input_tokens\":10,\"output_tokens\":1}}}}}}\n\n\
             {deltas}event: message_delta\ndata: {{\"type\":\"message_delta\",\"usage\":{{\"input_tokens\":10{output}}}}}\n\n\
             event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        );
        let s = settle_ok(&plan, &sse(&plan, &stream), Ending::Complete);
        assert_eq!(s.basis, "reservation", "{output}");
        assert_eq!(s.spend.micros, RESERVED, "{output}");
        assert!(s.notes.iter().any(|n| n.contains("output_tokens")), "{:?}", s.notes);
    }
}

#[test]
fn fewer_reported_output_tokens_than_deltas_bill_the_deltas() {
    let plan = plan(Endpoint::ChatCompletions, MINI);
    let stream = format!("{}{}data: [DONE]\n\n", chat_chunk(MINI, "a").repeat(5), chat_usage(MINI, 10, 1));
    let s = settle_ok(&plan, &sse(&plan, &stream), Ending::Complete);
    assert_eq!(s.usage.output_tokens, 5);
    assert!(s.notes[0].contains("5 content deltas"), "{:?}", s.notes);
}

#[test]
fn an_event_too_large_to_parse_bills_at_least_the_reservation() {
    // Issue 23 item 3: usage inside an event over 4 MiB was skipped.
    let plan = plan(Endpoint::ChatCompletions, MINI);
    let padding = "x".repeat(crate::llm::DEFAULT_MAX_EVENT_BYTES + 1);
    let stream = format!(
        "data: {{\"pad\":\"{padding}\",\"choices\":[],\"usage\":{{\"prompt_tokens\":50000,\"completion_tokens\":10}}}}\n\ndata: [DONE]\n\n"
    );
    let s = settle_ok(&plan, &sse(&plan, &stream), Ending::Complete);
    assert_eq!(s.basis, "reservation");
    assert_eq!(s.spend.micros, RESERVED);
    assert!(s.notes.iter().any(|n| n.contains("over 4 MiB")), "{:?}", s.notes);
}

#[test]
fn usage_naming_a_dearer_model_bills_its_price_and_is_reported() {
    // Issue 23 item 5: o1-pro usage billed at the requested gpt-4o-mini price.
    let plan = plan(Endpoint::ChatCompletions, MINI);
    let stream = format!("{}data: [DONE]\n\n", chat_usage("o1-pro", 1000, 100));
    let s = settle_ok(&plan, &sse(&plan, &stream), Ending::Complete);
    // 1000 × $150 + 100 × $600 per 1M = 150,000 + 60,000 µUSD.
    assert_eq!(s.spend.micros, 210_000);
    assert!(s.mismatch.as_deref().unwrap().contains("o1-pro"));
    assert!(s.overrun.is_some(), "billed far past the reservation");
    // A dated snapshot of the same model is no mismatch.
    let stream = format!("{}data: [DONE]\n\n", chat_usage("gpt-4o-mini-2024-07-18", 100, 10));
    let s = settle_ok(&plan, &sse(&plan, &stream), Ending::Complete);
    assert!(s.mismatch.is_none(), "{s:?}");
    // A model without any price bills at least the reservation.
    let stream = format!("{}data: [DONE]\n\n", chat_usage("mystery-model", 10, 1));
    let s = settle_ok(&plan, &sse(&plan, &stream), Ending::Complete);
    assert_eq!(s.spend.micros, RESERVED);
    assert!(s.mismatch.as_deref().unwrap().contains("no known price"));
}

#[test]
fn a_non_stream_body_naming_another_model_too() {
    let mut plan = plan(Endpoint::ChatCompletions, MINI);
    plan.stream = false;
    let json = r#"{"model":"o1-pro","usage":{"prompt_tokens":1000,"completion_tokens":100}}"#;
    let s = settle_ok(&plan, &body(&plan, json), Ending::Complete);
    assert_eq!(s.spend.micros, 210_000);
    assert!(s.mismatch.is_some());
}

#[test]
fn an_error_status_carrying_usage_bills_the_usage() {
    // Issue 23 item 6: an HTTP 500 with a full stream and usage settled $0.
    let plan = plan(Endpoint::ChatCompletions, MINI);
    let stream = format!("{}{}data: [DONE]\n\n", chat_chunk(MINI, "a"), chat_usage(MINI, 100, 10));
    let s = settle(&plan, 500, &sse(&plan, &stream), Ending::Complete, &prices()).unwrap();
    assert_eq!(s.spend.micros, 21);
    // An error without usage generated nothing.
    let refusal = body(&plan, r#"{"error":{"message":"overloaded"}}"#);
    let s = settle(&plan, 503, &refusal, Ending::Complete, &prices()).unwrap();
    assert_eq!((s.spend.micros, s.basis), (0, "none"));
}

#[test]
fn absurd_counts_saturate_settle_and_stop_the_day() {
    // Issue 23 item 7: 10^18 tokens made the settlement fail and lose the row.
    let plan = plan(Endpoint::ChatCompletions, MINI);
    let stream = format!("{}data: [DONE]\n\n", chat_usage(MINI, 1_000_000_000_000_000_000, 1_000_000_000_000_000_000));
    let s = settle_ok(&plan, &sse(&plan, &stream), Ending::Complete);
    assert_eq!(s.usage.output_tokens, MAX_BILLED_TOKENS);
    assert_eq!(s.spend.micros, 15_000_000 + 60_000_000);
    let stop = s.spend.stop.as_deref().unwrap();
    assert!(stop.contains("openai") && stop.contains(MINI) && stop.contains("more than"), "{stop}");
}

#[test]
fn usage_beyond_the_reservation_is_billed_and_stops_the_day() {
    // Issue 23 item 1: 5,000 output tokens against 100 reserved.
    let plan = plan(Endpoint::ChatCompletions, MINI);
    let stream = format!("{}data: [DONE]\n\n", chat_usage(MINI, 100, 5000));
    let s = settle_ok(&plan, &sse(&plan, &stream), Ending::Complete);
    assert_eq!(s.spend.micros, 15 + 3000, "what was reported is billed");
    assert!(s.overrun.as_deref().unwrap().contains("provider `openai` (model `gpt-4o-mini`)"));
    assert_eq!(s.spend.stop, s.overrun);
}

#[test]
fn a_stream_steward_ended_for_its_output_is_an_overrun_billed_at_the_estimate() {
    let plan = plan(Endpoint::ChatCompletions, MINI);
    let stream = chat_chunk(MINI, "a").repeat(101);
    let observer = sse(&plan, &stream);
    let Observer::Sse(watch) = &observer else { panic!("an SSE observer") };
    assert_eq!(watch.output_exceeded(), Some((101, 100)));
    let s = settle_ok(&plan, &observer, Ending::OutputExceeded);
    assert_eq!(s.basis, "estimated");
    assert_eq!(s.usage.output_tokens, 101);
    assert!(s.overrun.as_deref().unwrap().contains("100 output tokens reserved"));
}

#[test]
fn a_cut_stream_bills_the_estimate_and_a_complete_one_without_usage_the_reservation() {
    let plan = plan(Endpoint::ChatCompletions, MINI);
    let stream = chat_chunk(MINI, "a").repeat(3);
    let s = settle_ok(&plan, &sse(&plan, &stream), Ending::Cut);
    assert_eq!((s.basis, s.usage.input_tokens, s.usage.output_tokens), ("estimated", 1000, 3));
    let complete = format!("{stream}data: [DONE]\n\n");
    let s = settle_ok(&plan, &sse(&plan, &complete), Ending::Complete);
    assert_eq!((s.basis, s.spend.micros), ("reservation", RESERVED));
    // The agent hanging up before the usage arrived is not "nothing used".
    let s = settle_ok(&plan, &sse(&plan, &stream), Ending::AgentGone);
    assert_eq!((s.basis, s.spend.micros), ("reservation", RESERVED));
    assert!(s.overrun.is_none());
}
