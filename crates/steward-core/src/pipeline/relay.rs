//! Relaying an upstream response to the agent: credentials scrubbed out of
//! it, observed on the way, and recorded before the agent can see the end.
//!
//! **Scrubbing.** The agent must never hold a real credential, so every
//! loaded credential value, in every form the known-secret matcher knows
//! (raw, base64, percent-encoded, JSON-escaped), is replaced by
//! `[REDACTED:<credential name>]` in every response header (a header whose
//! name holds one is dropped) and in the body, error bodies and SSE streams
//! included ([`redact::ScrubStream`]: a value split across chunks, even one
//! byte per chunk, is still caught, and only a possible start of a value is
//! held back). A scrubbed body may change length, so while any credential
//! is loaded the agent gets the body chunked, without `content-length`; the
//! upstream's length still tells the relay where the body ends. Forwarded
//! requests ask for `accept-encoding: identity`, so bodies arrive readable.
//!
//! **Observing.** Bytes go through as they arrive (no whole-body buffering).
//! The *upstream's* bytes feed an observer: for API calls the first 64 KiB
//! of a JSON body (the created object's `id`), or up to 1 MiB of any body
//! when the tool's undo is resolved from it (see `undo`); for priced LLM
//! calls the usage, from the SSE stream or the JSON body, whatever the
//! status (a 500 can carry usage). A stream is released to the agent one
//! complete event at a time (an event the agent could not act on yet is
//! not delayed by this), so whatever ends a stream ends it between events.
//! When steward added `include_usage` to a stream the client did not ask
//! for, the extra usage chunk is filtered out.
//!
//! **Ending.** The record (journal completion, spend settlement, audit line)
//! is written before the final bytes: before the last byte when the length
//! is known, before the end of the body otherwise. A stream ends:
//! - at its final event (`[DONE]`, `message_stop`, `response.completed`...):
//!   settled and ended at once, even if the upstream keeps the connection
//!   open; an SDK that closes right after `[DONE]` finds its call settled
//!   with the parsed usage;
//! - when it carries more output than was reserved: settled (the overrun
//!   stops priced calls for the day, see `settle`) and ended with an error
//!   event in the provider's shape;
//! - when the upstream cuts it: settled at the estimate and ended with an
//!   error event the SDK shows (an OpenAI error chunk, Anthropic's
//!   `event: error`), never a clean end that looks complete. Other bodies
//!   cut by the upstream end in a transport error.
//!
//! An agent that hangs up mid-body leaves the record to a task on the
//! daemon's tracker (shutdown waits for it), which settles with what the
//! relay saw.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use redact::{CredentialScrubber, ScrubStream};

use super::plan::LlmPlan;
use super::settle::{self, Ending};
use super::undo::Seen;
use super::{CALL_ID_HEADER, CallRecord, Outcome, Pipeline, forward, refusal};
use crate::decision::Decision;
use crate::events::Event;
use crate::llm::{Endpoint, SseUsageParser, UsageChunkFilter};
use crate::policy;

/// Bytes of a JSON API response kept to find the created object's `id` for
/// undo. Creation responses are small; a larger body is relayed, not inspected.
const RESPONSE_REF_PEEK_BYTES: usize = 64 * 1024;

/// Bytes of a non-streamed LLM response kept to read its usage. Beyond this
/// the call is settled at its reservation (fail closed).
const LLM_PEEK_BYTES: usize = 8 * 1024 * 1024;

/// Largest stream event held back until it is complete. Every event a
/// provider streams is far smaller except the Responses API's final
/// `response.completed`, which repeats the whole answer (a long answer is a
/// few hundred KiB); a larger event is relayed as it arrives.
const SSE_EVENT_HOLD_LIMIT: usize = 1 << 20;

/// After a stream's final event, what is left of the upstream body (its
/// chunked end, usually nothing more) is read in the background for at most
/// this long, so the connection can go back to the pool; an upstream that
/// keeps it open longer is simply dropped.
const DRAIN_AFTER_END: std::time::Duration = std::time::Duration::from_secs(1);

/// Most bytes read while draining: the end of a body is a few bytes, and an
/// upstream that keeps sending after its final event is not worth reading.
const DRAIN_MAX_BYTES: usize = 64 << 10;

/// What the relay watches in the body.
pub(super) enum Observer {
    /// Nothing to learn (unpriced endpoints, non-JSON API bodies).
    None,
    /// Keep up to `limit` bytes (JSON bodies).
    Peek {
        /// Bytes kept so far; `None` once the body outgrew `limit`.
        buf: Option<Vec<u8>>,
        /// Upper bound.
        limit: usize,
    },
    /// An SSE stream of a priced LLM call.
    Sse(Box<SseWatch>),
}

/// Watches a priced LLM stream: its usage, its end, its output against the
/// reservation; releases it one complete event at a time.
pub(super) struct SseWatch {
    /// Reads usage from the upstream's bytes.
    parser: SseUsageParser,
    /// Removes the usage chunk the client did not ask for.
    filter: Option<UsageChunkFilter>,
    /// Upstream bytes of the event still arriving, not yet released.
    held: BytesMut,
    /// Output tokens reserved; more ends the stream.
    max_output: u64,
}

impl SseWatch {
    /// The usage parser, for settlement.
    pub(super) fn parser(&self) -> &SseUsageParser {
        &self.parser
    }

    /// Feeds `chunk` to the parser and returns the bytes that now complete
    /// events (or the start of an event too large to hold).
    fn observe(&mut self, chunk: Bytes) -> Bytes {
        self.parser.feed(&chunk);
        let partial = self.parser.bytes_since_event_end();
        let released = if self.parser.saw_terminal_event() || partial > SSE_EVENT_HOLD_LIMIT {
            self.take_all(chunk)
        } else if self.held.is_empty() && partial <= chunk.len() {
            // The usual case: the chunk ends on (or a little after) an event end.
            let complete = chunk.len() - partial;
            self.held.extend_from_slice(&chunk[complete..]);
            chunk.slice(..complete)
        } else {
            self.held.extend_from_slice(&chunk);
            let complete = self.held.len().saturating_sub(partial);
            self.held.split_to(complete).freeze()
        };
        match &mut self.filter {
            Some(filter) if !released.is_empty() => Bytes::from(filter.feed(&released)),
            _ => released,
        }
    }

    /// Everything held plus `chunk`.
    fn take_all(&mut self, chunk: Bytes) -> Bytes {
        if self.held.is_empty() {
            return chunk;
        }
        self.held.extend_from_slice(&chunk);
        self.held.split().freeze()
    }

    /// What is still held, at a clean end.
    fn flush(&mut self) -> Bytes {
        let held = self.held.split().freeze();
        let mut out = match &mut self.filter {
            Some(filter) => filter.feed(&held),
            None => held.to_vec(),
        };
        if let Some(filter) = &mut self.filter {
            out.extend_from_slice(&filter.finish());
        }
        Bytes::from(out)
    }

    /// Forgets an event the upstream never finished: the agent could not
    /// use it, and an error event must not be glued to half an event.
    fn discard_partial(&mut self) {
        self.held.clear();
        if let Some(filter) = &mut self.filter {
            let _ = filter.finish();
        }
    }

    /// `Some((seen, reserved))` once the stream carried more output tokens
    /// than reserved: the larger of the usage it reported so far and its
    /// content deltas (about a token each; a lower bound).
    pub(super) fn output_exceeded(&self) -> Option<(u64, u64)> {
        let seen = self.parser.output_tokens_seen_estimate();
        (seen > self.max_output).then_some((seen, self.max_output))
    }
}

impl Observer {
    /// The observer for an API response. A call whose undo is planned from
    /// its answer keeps up to [`crate::undo::MAX_RESPONSE_BYTES`] of it,
    /// whatever its content type.
    pub(super) fn api(is_json: bool, plans_undo: bool) -> Self {
        if plans_undo {
            Observer::Peek { buf: Some(Vec::new()), limit: crate::undo::MAX_RESPONSE_BYTES }
        } else if is_json {
            Observer::Peek { buf: Some(Vec::new()), limit: RESPONSE_REF_PEEK_BYTES }
        } else {
            Observer::None
        }
    }

    /// The observer for a response of a priced LLM call, whatever its status.
    pub(super) fn llm(plan: &LlmPlan, is_sse: bool) -> Self {
        if is_sse {
            Observer::Sse(Box::new(SseWatch {
                parser: SseUsageParser::new(plan.endpoint),
                filter: plan.include_usage_added.then(UsageChunkFilter::new),
                held: BytesMut::new(),
                max_output: plan.max_output,
            }))
        } else {
            Observer::Peek { buf: Some(Vec::new()), limit: LLM_PEEK_BYTES }
        }
    }

    /// Sees the upstream's `chunk`; returns the bytes to relay (before scrubbing).
    pub(super) fn observe(&mut self, chunk: Bytes) -> Bytes {
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
            Observer::Sse(watch) => watch.observe(chunk),
        }
    }

    /// Bytes still held at a clean end.
    fn flush(&mut self) -> Bytes {
        match self {
            Observer::Sse(watch) => watch.flush(),
            _ => Bytes::new(),
        }
    }

    /// For a stream: whether its final event arrived.
    fn stream_ended(&self) -> bool {
        matches!(self, Observer::Sse(watch) if watch.parser.saw_terminal_event())
    }

    /// For a stream: whether it ended without its final event.
    fn stream_incomplete(&self) -> bool {
        matches!(self, Observer::Sse(watch) if !watch.parser.saw_terminal_event())
    }
}

/// Writes the record of an allowed call once its response is relayed (or
/// broken off).
pub(super) struct Recorder {
    pub(super) pipeline: Arc<Pipeline>,
    pub(super) record: CallRecord,
    pub(super) status: u16,
    pub(super) attempts: u32,
    pub(super) llm: Option<LlmPlan>,
}

impl Recorder {
    /// Records the call; `observer` is what the relay saw, `ending` how it ended.
    pub(super) async fn finish(&self, error: Option<String>, observer: &Observer, ending: Ending) {
        let settled = self
            .llm
            .as_ref()
            .and_then(|plan| settle::settle(plan, self.status, observer, ending, &self.record.live.prices));
        let mut extra = serde_json::Map::new();
        if let Some(plan) = &self.llm {
            extra.insert("model".into(), plan.model.clone().into());
            extra.insert("stream".into(), plan.stream.into());
            let usage = settled.as_ref().map(|s| s.usage).unwrap_or_default();
            extra.insert("input_tokens".into(), usage.input_tokens.into());
            extra.insert("output_tokens".into(), usage.output_tokens.into());
            extra.insert("cached_tokens".into(), usage.cached_input_tokens.into());
            let cost = settled.as_ref().map_or(0, |s| s.spend.micros);
            extra.insert("cost_usd".into(), (cost as f64 / 1_000_000.0).into());
            if let Some(settled) = &settled {
                if settled.spend.estimated {
                    extra.insert("cost_estimated".into(), true.into());
                }
                extra.insert("billing".into(), settled.basis.into());
                if !settled.notes.is_empty() {
                    extra.insert("billing_note".into(), settled.notes.join("; ").into());
                }
            }
        }
        let peeked = match observer {
            Observer::Peek { buf: Some(buf), .. } if ending == Ending::Complete => Some(buf.as_slice()),
            _ => None,
        };
        let undo = self.record.undo_source.as_ref().map(|source| {
            let seen = match observer {
                _ if ending != Ending::Complete => Seen::Incomplete,
                Observer::Peek { buf: Some(buf), .. } => Seen::Body(buf),
                Observer::Peek { buf: None, .. } => Seen::TooLarge,
                _ => Seen::Incomplete,
            };
            source.plan(self.status, seen, &self.pipeline.redactor.load())
        });
        let outcome = Outcome {
            undo,
            decision: Decision::Allowed,
            reason: error.clone(),
            status: Some(self.status),
            attempts: self.attempts,
            response_ref: if self.llm.is_none() { peeked.and_then(response_ref) } else { None },
            error,
            spend: settled.as_ref().map(|s| s.spend.clone()),
            extra,
        };
        self.pipeline.record_outcome(&self.record, outcome).await;
        let (Some(plan), Some(settled)) = (&self.llm, settled) else { return };
        let model = plan.model.clone().unwrap_or_default();
        if let Some(reason) = settled.overrun {
            tracing::error!(call_id = %self.record.call_id, %reason, "LLM spend overrun; priced calls stopped for the day");
            self.pipeline.events.publish(Event::SpendOverrun {
                provider: plan.provider.clone(),
                model: model.clone(),
                reason,
            });
        }
        if let Some(reported) = settled.mismatch {
            tracing::warn!(call_id = %self.record.call_id, %reported, "the response names another model");
            self.pipeline.events.publish(Event::UsageModelMismatch {
                provider: plan.provider.clone(),
                requested: model,
                reported,
            });
        }
    }
}

/// Holds the recorder and the observer until the body is done; records from
/// a task on the pipeline's tracker on drop if never finished (the agent
/// hung up).
struct RecordGuard {
    recorder: Option<Recorder>,
    observer: Observer,
}

impl RecordGuard {
    async fn finish(&mut self, error: Option<String>, ending: Ending) {
        if let Some(recorder) = self.recorder.take() {
            recorder.finish(error, &self.observer, ending).await;
        }
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        if let Some(recorder) = self.recorder.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let observer = std::mem::replace(&mut self.observer, Observer::None);
            let tasks = recorder.pipeline.tasks.clone();
            tasks.spawn_on(
                async move {
                    let error = Some("agent disconnected before the response ended".to_owned());
                    recorder.finish(error, &observer, Ending::AgentGone).await;
                },
                &handle,
            );
        }
    }
}

impl Pipeline {
    /// The agent's response to an upstream `response`: status, headers
    /// (hop-by-hop dropped, credentials scrubbed, the call id added) and the
    /// relayed body, recorded as described in the module docs.
    pub(super) async fn respond(
        self: &Arc<Self>,
        method: &Method,
        record: CallRecord,
        llm: Option<LlmPlan>,
        response: reqwest::Response,
        attempts: u32,
    ) -> Response<Body> {
        let scrubber = self.secrets.load().scrubber();
        let status = response.status();
        let mut headers = scrub_headers(forward::response_headers(response.headers()), &scrubber);
        if let Ok(value) = HeaderValue::from_str(&record.call_id) {
            headers.insert(CALL_ID_HEADER, value);
        }
        let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let observer = match &llm {
            Some(plan) if plan.price.is_some() => Observer::llm(plan, content_type.starts_with("text/event-stream")),
            Some(_) => Observer::None,
            None => Observer::api(content_type.contains("json"), record.undo_source.is_some()),
        };
        let upstream_len =
            if *method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
                Some(0)
            } else {
                response.content_length()
            };
        let shape = StreamEnd {
            shape: record.shape,
            endpoint: llm.as_ref().map(|p| p.endpoint),
            call_id: record.call_id.clone(),
        };
        let recorder = Recorder { pipeline: Arc::clone(self), record, status: status.as_u16(), attempts, llm };
        let body = if upstream_len == Some(0) {
            recorder.finish(None, &observer, Ending::Complete).await;
            Body::empty()
        } else {
            // The relayed length differs from the upstream's whenever a
            // credential is scrubbed or a usage chunk filtered out.
            if !scrubber.is_empty() || matches!(&observer, Observer::Sse(w) if w.filter.is_some()) {
                headers.remove(http::header::CONTENT_LENGTH);
            }
            relay_body(response, recorder, observer, upstream_len, scrubber, shape)
        };
        let mut out = Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        out
    }
}

/// `headers` with every credential form in a value replaced by its marker;
/// a header whose name holds one is dropped, as is a value that would no
/// longer be a valid header value (it cannot be: markers are ASCII).
fn scrub_headers(headers: HeaderMap, scrubber: &CredentialScrubber) -> HeaderMap {
    if scrubber.is_empty() {
        return headers;
    }
    let mut out = HeaderMap::with_capacity(headers.len());
    let mut name = None;
    for (key, value) in headers {
        if key.is_some() {
            name = key;
        }
        let Some(name) = &name else { continue };
        if scrubber.contains(name.as_str().as_bytes()) {
            continue;
        }
        let value = match scrubber.scrub(value.as_bytes()) {
            Cow::Borrowed(_) => value,
            Cow::Owned(scrubbed) => match HeaderValue::from_bytes(&scrubbed) {
                Ok(v) => v,
                Err(_) => continue,
            },
        };
        out.append(name.clone(), value);
    }
    out
}

/// What an SSE error event at the end of a stream needs.
struct StreamEnd {
    /// The provider's error JSON.
    shape: refusal::ErrorShape,
    /// The endpoint (the Responses API names its error event).
    endpoint: Option<Endpoint>,
    /// The call, named in the event.
    call_id: String,
}

impl StreamEnd {
    fn event(&self, code: &'static str, message: String) -> Bytes {
        let responses = self.endpoint == Some(Endpoint::Responses);
        Bytes::from(refusal::stream_error_event(self.shape, responses, code, &message, &self.call_id))
    }
}

/// The relay's state between two polls of the agent's body.
struct Relay {
    upstream: futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    /// Where the drain of the upstream body runs (the pipeline's tracker).
    tasks: tokio_util::task::TaskTracker,
    guard: RecordGuard,
    scrub: ScrubStream,
    /// Upstream bytes received.
    seen: u64,
    /// The upstream's `content-length`, where the body ends.
    upstream_len: Option<u64>,
    /// Built at the end of a stream that steward or the upstream cut.
    end: StreamEnd,
    /// Items ready for the agent, in order.
    out: VecDeque<Result<Bytes, std::io::Error>>,
    /// Nothing more is read from the upstream.
    done: bool,
}

impl Relay {
    /// `bytes` through the scrubber; a slice of them when nothing changed.
    fn scrubbed(&mut self, bytes: Bytes) -> Bytes {
        if bytes.is_empty() {
            return bytes;
        }
        match self.scrub.push(&bytes) {
            Cow::Borrowed(kept) => bytes.slice(..kept.len()),
            Cow::Owned(changed) => Bytes::from(changed),
        }
    }

    fn emit(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.out.push_back(Ok(bytes));
        }
    }

    /// A clean end: the rest released, recorded, then relayed.
    async fn complete(&mut self) {
        let rest = self.guard.observer.flush();
        let rest = self.scrubbed(rest);
        let tail = Bytes::from(self.scrub.finish());
        self.guard.finish(None, Ending::Complete).await;
        self.emit(rest);
        self.emit(tail);
        self.done = true;
    }

    /// An end the agent must see as an error: for a stream, a final error
    /// event after the last complete event; otherwise a transport error.
    async fn broken(&mut self, reason: String, ending: Ending, code: &'static str, message: String) {
        let sse = matches!(self.guard.observer, Observer::Sse(_));
        let rest = if let Observer::Sse(watch) = &mut self.guard.observer {
            watch.discard_partial();
            Bytes::new()
        } else {
            self.guard.observer.flush()
        };
        let rest = self.scrubbed(rest);
        let tail = Bytes::from(self.scrub.finish());
        self.guard.finish(Some(reason.clone()), ending).await;
        self.emit(rest);
        self.emit(tail);
        if sse {
            let event = self.end.event(code, message);
            self.emit(event);
        } else {
            self.out.push_back(Err(std::io::Error::other(reason)));
        }
        self.done = true;
    }

    /// Hands the rest of the upstream body to a background task (see
    /// [`DRAIN_AFTER_END`]): the agent's stream has ended already.
    fn drain_upstream(&mut self) {
        let mut upstream = std::mem::replace(&mut self.upstream, futures_util::stream::empty().boxed());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let drain_task = async move {
            let drain = async {
                let mut read = 0;
                while let Some(Ok(chunk)) = upstream.next().await {
                    read += chunk.len();
                    if read > DRAIN_MAX_BYTES {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_AFTER_END, drain).await;
        };
        self.tasks.spawn_on(drain_task, &runtime);
    }

    /// Reads the next upstream chunk and queues what it yields.
    async fn step(&mut self) {
        match self.upstream.next().await {
            Some(Ok(chunk)) => {
                self.seen += chunk.len() as u64;
                let released = self.guard.observer.observe(chunk);
                let relayed = self.scrubbed(released);
                let exceeded = match &self.guard.observer {
                    Observer::Sse(watch) => watch.output_exceeded(),
                    _ => None,
                };
                if let Some((seen, reserved)) = exceeded {
                    self.emit(relayed);
                    let message = format!(
                        "steward ended this stream: the provider sent more than the {reserved} output tokens \
                         reserved for it (max tokens; {seen} seen), so LLM calls are stopped for today"
                    );
                    let reason = format!("the stream passed its {reserved} reserved output tokens ({seen} seen)");
                    self.broken(reason, Ending::OutputExceeded, "output_exceeded", message).await;
                } else if self.guard.observer.stream_ended() {
                    self.emit(relayed);
                    self.complete().await;
                    self.drain_upstream();
                } else if self.upstream_len.is_some_and(|n| self.seen >= n) {
                    self.emit(relayed);
                    self.complete().await;
                } else {
                    self.emit(relayed);
                }
            }
            Some(Err(_)) => {
                let reason = format!("upstream body broke off after {} bytes", self.seen);
                self.broken(reason.clone(), Ending::Cut, "upstream_cut", cut_message(&reason)).await;
            }
            None if self.guard.observer.stream_incomplete() => {
                let reason = "the upstream stream ended without its final event".to_owned();
                self.broken(reason.clone(), Ending::Cut, "upstream_cut", cut_message(&reason)).await;
            }
            None => self.complete().await,
        }
    }
}

/// What the agent's SDK shows for a stream the upstream cut.
fn cut_message(reason: &str) -> String {
    format!("the upstream cut this stream ({reason}); the answer is incomplete, and the output seen was billed")
}

/// Relays `response` through `observer` and `scrubber`, recording via
/// `recorder` before the agent can observe the end. `upstream_len` is the
/// upstream's `content-length` (`None`: it ends at its end).
fn relay_body(
    response: reqwest::Response,
    recorder: Recorder,
    observer: Observer,
    upstream_len: Option<u64>,
    scrubber: Arc<CredentialScrubber>,
    end: StreamEnd,
) -> Body {
    let relay = Relay {
        upstream: response.bytes_stream().boxed(),
        tasks: recorder.pipeline.tasks.clone(),
        guard: RecordGuard { recorder: Some(recorder), observer },
        scrub: ScrubStream::new(scrubber),
        seen: 0,
        upstream_len,
        end,
        out: VecDeque::new(),
        done: false,
    };
    let stream = futures_util::stream::unfold(relay, |mut relay| async move {
        loop {
            if let Some(item) = relay.out.pop_front() {
                return Some((item, relay));
            }
            if relay.done {
                return None;
            }
            relay.step().await;
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
