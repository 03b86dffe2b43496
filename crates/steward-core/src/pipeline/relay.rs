//! Relaying an upstream response body to the agent, observing it on the way,
//! and recording the call before the agent can see the end.
//!
//! Bytes go through as they arrive (no buffering). A copy feeds an observer:
//! for API calls the first 64 KiB of a JSON body (the created object's `id`,
//! kept for undo); for LLM calls the usage, from the SSE stream or the JSON
//! body. When steward added `include_usage` to a stream the client did not
//! ask for, the extra usage chunk is filtered out.
//!
//! The record (journal completion, spend settlement, audit line) is written
//! before the final bytes: before the last byte when the length is known,
//! before the end of a chunked body otherwise. A stream that ends without its
//! terminal event (`[DONE]`, `message_stop`, ...) ends in an error the client
//! sees, never in a clean end.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;

use super::plan::LlmPlan;
use super::{CallRecord, Outcome, Pipeline};
use crate::llm::{SseUsageParser, Usage, UsageChunkFilter, cost_micros};
use crate::policy;
use crate::store::SpendSettlement;

/// Bytes of a JSON API response kept to find the created object's `id` for
/// undo. Creation responses are small; a larger body is relayed, not inspected.
const RESPONSE_REF_PEEK_BYTES: usize = 64 * 1024;

/// Bytes of a non-streamed LLM response kept to read its usage. Beyond this
/// the call is settled at its reservation (fail closed).
const LLM_PEEK_BYTES: usize = 8 * 1024 * 1024;

/// What the relay watches in the body.
pub(super) enum Observer {
    /// Nothing to learn (error responses, unpriced endpoints, non-JSON).
    None,
    /// Keep up to `limit` bytes (JSON bodies).
    Peek {
        /// Bytes kept so far; `None` once the body outgrew `limit`.
        buf: Option<Vec<u8>>,
        /// Upper bound.
        limit: usize,
    },
    /// An SSE stream of an LLM call.
    Sse {
        /// Reads usage from a copy of every chunk.
        parser: Box<SseUsageParser>,
        /// Removes the usage chunk the client did not ask for.
        filter: Option<Box<UsageChunkFilter>>,
    },
}

impl Observer {
    /// The observer for an API response.
    pub(super) fn api(is_json: bool) -> Self {
        if is_json { Observer::Peek { buf: Some(Vec::new()), limit: RESPONSE_REF_PEEK_BYTES } } else { Observer::None }
    }

    /// The observer for a successful response of a priced LLM call.
    pub(super) fn llm(plan: &LlmPlan, is_sse: bool) -> Self {
        if is_sse {
            Observer::Sse {
                parser: Box::new(SseUsageParser::new(plan.endpoint)),
                filter: plan.include_usage_added.then(|| Box::new(UsageChunkFilter::new())),
            }
        } else {
            Observer::Peek { buf: Some(Vec::new()), limit: LLM_PEEK_BYTES }
        }
    }

    /// Whether the relayed bytes may differ from the upstream's (so a
    /// `content-length` must not be passed on).
    pub(super) fn rewrites(&self) -> bool {
        matches!(self, Observer::Sse { filter: Some(_), .. })
    }

    /// Sees `chunk`; returns the bytes to relay.
    fn observe(&mut self, chunk: Bytes) -> Bytes {
        match self {
            Observer::None => chunk,
            Observer::Peek { buf, limit } => {
                if let Some(kept) = buf {
                    if kept.len() + chunk.len() <= *limit {
                        kept.extend_from_slice(&chunk);
                    } else {
                        *buf = None;
                    }
                }
                chunk
            }
            Observer::Sse { parser, filter } => {
                parser.feed(&chunk);
                match filter {
                    Some(filter) => Bytes::from(filter.feed(&chunk)),
                    None => chunk,
                }
            }
        }
    }

    /// Bytes a filter still holds at the end of the body.
    fn drain(&mut self) -> Bytes {
        match self {
            Observer::Sse { filter: Some(filter), .. } => Bytes::from(filter.finish()),
            _ => Bytes::new(),
        }
    }

    /// For a stream: whether it ended with its terminal event.
    fn stream_incomplete(&self) -> bool {
        matches!(self, Observer::Sse { parser, .. } if !parser.saw_terminal_event())
    }
}

/// Writes the record of an allowed call once its response is relayed (or
/// broken off). Dropped unfinished (the agent hung up), it records from a
/// spawned task: nothing is lost.
pub(super) struct Recorder {
    pub(super) pipeline: Arc<Pipeline>,
    pub(super) record: CallRecord,
    pub(super) status: u16,
    pub(super) attempts: u32,
    pub(super) llm: Option<LlmPlan>,
}

impl Recorder {
    /// Records the call; `observer` is what the relay saw.
    pub(super) async fn finish(&self, error: Option<String>, observer: &Observer) {
        let peeked = match observer {
            Observer::Peek { buf: Some(buf), .. } => Some(buf.as_slice()),
            _ => None,
        };
        let (spend, usage) = match &self.llm {
            Some(plan) => settle(plan, self.status, observer, peeked),
            None => (None, None),
        };
        let mut extra = serde_json::Map::new();
        if let Some(plan) = &self.llm {
            extra.insert("model".into(), plan.model.clone().into());
            extra.insert("stream".into(), plan.stream.into());
            let usage = usage.unwrap_or_default();
            extra.insert("input_tokens".into(), usage.input_tokens.into());
            extra.insert("output_tokens".into(), usage.output_tokens.into());
            extra.insert("cached_tokens".into(), usage.cached_input_tokens.into());
            let cost = spend.as_ref().map_or(0, |s| s.micros);
            extra.insert("cost_usd".into(), (cost as f64 / 1_000_000.0).into());
            if spend.as_ref().is_some_and(|s| s.estimated) {
                extra.insert("cost_estimated".into(), true.into());
            }
        }
        let outcome = Outcome {
            decision: "allowed",
            reason: error.clone(),
            status: Some(self.status),
            attempts: self.attempts,
            response_ref: if self.llm.is_none() { peeked.and_then(response_ref) } else { None },
            error,
            spend,
            extra,
        };
        self.pipeline.record_outcome(&self.record, outcome).await;
    }
}

/// What a priced LLM call cost, from what the relay saw. Fail closed: when
/// the usage cannot be read, the call is settled at its reservation.
fn settle(
    plan: &LlmPlan,
    status: u16,
    observer: &Observer,
    peeked: Option<&[u8]>,
) -> (Option<SpendSettlement>, Option<Usage>) {
    let (Some(price), Some(hold)) = (&plan.price, &plan.hold) else {
        return (None, None);
    };
    let at_reservation = SpendSettlement {
        micros: hold.reserve_micros,
        input_tokens: 0,
        output_tokens: 0,
        cached_tokens: 0,
        estimated: true,
    };
    if !(200..300).contains(&status) {
        // The provider refused: nothing was generated, nothing is billed.
        let free = SpendSettlement { micros: 0, estimated: false, ..at_reservation };
        return (Some(free), None);
    }
    let (usage, estimated) = match observer {
        Observer::Sse { parser, .. } => match parser.usage() {
            Some(usage) => (usage, false),
            None if !parser.saw_terminal_event() => (parser.usage_or_estimate(plan.input_bound), true),
            None => return (Some(at_reservation), None),
        },
        _ => match peeked.map(|body| Usage::from_response(plan.endpoint, body)) {
            Some(Ok(usage)) => (usage, false),
            _ => return (Some(at_reservation), None),
        },
    };
    let settlement = SpendSettlement {
        micros: cost_micros(price, &usage),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cached_tokens: usage.cached_input_tokens,
        estimated,
    };
    (Some(settlement), Some(usage))
}

/// Holds the recorder until the body is done; records on drop if never finished.
struct RecordGuard(Option<Recorder>);

impl Drop for RecordGuard {
    fn drop(&mut self) {
        if let Some(recorder) = self.0.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(async move {
                let error = Some("agent disconnected before the response ended".to_owned());
                recorder.finish(error, &Observer::None).await;
            });
        }
    }
}

/// Relays `response` through `observer`, recording via `recorder` before the
/// agent can observe the end. `expected_len` is the length the agent was
/// promised (`None`: chunked).
pub(super) fn relay_body(
    response: reqwest::Response,
    recorder: Recorder,
    observer: Observer,
    expected_len: Option<u64>,
) -> Body {
    struct State {
        upstream: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
        guard: RecordGuard,
        observer: Observer,
        seen: u64,
        expected: Option<u64>,
        /// The last bytes to relay after recording, then the end (or an error).
        tail: Option<Result<Bytes, std::io::Error>>,
        done: bool,
    }
    impl State {
        async fn finish(&mut self, error: Option<String>) {
            if let Some(recorder) = self.guard.0.take() {
                recorder.finish(error, &self.observer).await;
            }
        }
    }
    let state = State {
        upstream: response.bytes_stream().boxed(),
        guard: RecordGuard(Some(recorder)),
        observer,
        seen: 0,
        expected: expected_len,
        tail: None,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(tail) = st.tail.take() {
                return Some((tail, st));
            }
            if st.done {
                return None;
            }
            match st.upstream.next().await {
                Some(Ok(chunk)) => {
                    st.seen += chunk.len() as u64;
                    let out = st.observer.observe(chunk);
                    if st.expected.is_some_and(|n| st.seen >= n) {
                        st.finish(None).await;
                        st.done = true;
                    }
                    if out.is_empty() {
                        continue;
                    }
                    return Some((Ok(out), st));
                }
                Some(Err(err)) => {
                    st.finish(Some(format!("upstream body broke off after {} bytes", st.seen))).await;
                    st.done = true;
                    return Some((Err(std::io::Error::other(err)), st));
                }
                None => {
                    st.done = true;
                    let rest = st.observer.drain();
                    if st.observer.stream_incomplete() {
                        st.finish(Some("the upstream stream ended without its final event".into())).await;
                        let cut = std::io::Error::other("upstream stream ended early");
                        if !rest.is_empty() {
                            st.tail = Some(Err(cut));
                            return Some((Ok(rest), st));
                        }
                        return Some((Err(cut), st));
                    }
                    st.finish(None).await;
                    if !rest.is_empty() {
                        return Some((Ok(rest), st));
                    }
                    return None;
                }
            }
        }
    });
    Body::from_stream(stream)
}

/// The created object's `id` from a JSON response, kept for `steward rollback`.
fn response_ref(peeked: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(peeked).ok()?;
    match value.get("id")? {
        serde_json::Value::String(s) => Some(policy::truncate_summary(s)),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
