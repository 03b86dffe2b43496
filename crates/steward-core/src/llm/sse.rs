//! [`SseUsageParser`]: reads token usage out of an LLM's SSE stream while
//! the raw bytes are relayed to the client unchanged.
//!
//! The parser is fed the same byte chunks the client gets, split anywhere
//! (mid-line, mid-UTF-8 sequence, between `\r` and `\n`); it decodes SSE
//! events per the WHATWG rules (`event:` / `data:` fields, comments, `\n`,
//! `\r\n` and `\r` line ends, an empty line dispatches) and keeps:
//!
//! - the final usage: OpenAI chat's usage chunk (with or without `choices`),
//!   the Responses API's `response.completed` / `.incomplete` / `.failed`,
//!   Anthropic's `message_start` (input, cache) plus cumulative
//!   `message_delta` (output). Provider usage is cumulative, so each field
//!   keeps the **largest** value reported: a later, smaller report (usage
//!   sent twice, `input_tokens: 0` in a `message_delta`) never lowers the
//!   bill. An Anthropic `message_delta` whose `output_tokens` is missing,
//!   `null`, negative or not an integer leaves the usage unreadable
//!   ([`SseUsageParser::output_unreadable`]): the caller bills the
//!   reservation;
//! - the models the upstream says it used (`model` of the chunks, of
//!   `response`, of `message_start`), so a response naming another model
//!   than the request can be billed at the dearer price;
//! - whether the stream ended the way the protocol ends (`[DONE]`,
//!   `response.completed` and its siblings, `message_stop`), so a cut stream
//!   is told apart from a clean end;
//! - an estimate of the output seen, so a cut stream is billed for what it
//!   produced, and a stream that outruns its reserved output is stopped;
//! - how many of the bytes fed belong to the event still being received
//!   ([`SseUsageParser::bytes_since_event_end`]), so the relay can release
//!   whole events only.
//!
//! Memory is bounded: one event's data is held at most
//! [`DEFAULT_MAX_EVENT_BYTES`] (configurable); a larger event is skipped
//! (counted in [`SseUsageParser::oversized_events`]) rather than buffered,
//! so a hostile upstream cannot exhaust memory. Field names and event names
//! are held a few bytes at most.

use serde_json::Value;

use super::request::Endpoint;
use super::usage::{AnthropicCounts, Usage};

/// Default limit of one event's data. Large enough for the Responses API's
/// `response.completed`, which repeats the whole output (128K tokens of text
/// is about 0.5 MiB before JSON escaping); small enough that 200 concurrent
/// streams stay within memory.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 << 20;

/// Longest field name kept (`event`, `data`, `retry`, `id`); longer names are
/// fields steward ignores anyway.
const MAX_FIELD_NAME: usize = 8;

/// Longest event name kept; every name steward acts on is shorter.
const MAX_EVENT_NAME: usize = 64;

/// Capacity kept for the data buffer between events; a larger buffer left by
/// one big event is released.
const KEEP_CAPACITY: usize = 64 << 10;

/// Distinct reported model names kept. A stream names one model; a few
/// more cover a lying upstream without letting it grow the parser.
const MAX_REPORTED_MODELS: usize = 4;

/// Longest model name kept; longer names are cut (they are still compared
/// whole against the price table's names, which are all shorter).
const MAX_MODEL_NAME: usize = 128;

/// Where the parser is inside the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    /// Nothing read on this line yet.
    Start,
    /// Reading the field name.
    Name,
    /// Just after the `:`; one leading space is dropped.
    ValueStart,
    /// Reading the value.
    Value,
    /// A comment line (`: keep-alive`), skipped.
    Comment,
}

/// The field the current line sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// `data:` appends to the event's data.
    Data,
    /// `event:` names the event.
    Event,
    /// `id:`, `retry:` and unknown fields: ignored.
    Other,
}

/// Parses a relayed SSE stream for usage. See the module docs.
#[derive(Debug, Clone)]
pub struct SseUsageParser {
    /// Decides the event shapes and the usage normalization.
    endpoint: Endpoint,
    /// Limit of one event's data.
    max_event_bytes: usize,

    /// Position in the current line.
    state: LineState,
    /// The previous byte was `\r`: a following `\n` belongs to it.
    after_cr: bool,
    /// The current line's field name so far.
    name: Vec<u8>,
    /// What the current line sets.
    field: Field,
    /// The current `event:` line's value so far.
    event_value: Vec<u8>,

    /// The current event's name.
    event_name: Vec<u8>,
    /// The current event's data, each line followed by `\n`.
    data: Vec<u8>,
    /// A `data:` line was seen in the current event (the data may be empty).
    has_data: bool,
    /// The current event outgrew the limit and will be skipped.
    oversized: bool,

    /// The usage an OpenAI stream reported, each field the largest seen.
    usage: Option<Usage>,
    /// Anthropic's counts so far, each the largest seen.
    anthropic: AnthropicCounts,
    /// Anthropic sent `message_delta`: its counts are final.
    anthropic_final: bool,
    /// A `message_delta` carried no readable `output_tokens`.
    output_unreadable: bool,
    /// Distinct `model` names the upstream reported, in order of appearance.
    models: Vec<String>,
    /// Bytes fed since the end of the last complete event (the empty line).
    since_event_end: usize,
    /// The byte just handled ended an event.
    event_ended: bool,
    /// The stream ended the way its protocol ends.
    terminal: bool,
    /// Content-bearing deltas seen (about one token each).
    content_deltas: u64,
    /// Events skipped for size.
    oversized_events: u64,
    /// The type of an error event the upstream sent, if any.
    error: Option<String>,
}

impl SseUsageParser {
    /// A parser for a stream answering a request to `endpoint`.
    pub fn new(endpoint: Endpoint) -> SseUsageParser {
        SseUsageParser::with_max_event_bytes(endpoint, DEFAULT_MAX_EVENT_BYTES)
    }

    /// A parser that skips events whose data exceeds `max_event_bytes`.
    pub fn with_max_event_bytes(endpoint: Endpoint, max_event_bytes: usize) -> SseUsageParser {
        SseUsageParser {
            endpoint,
            max_event_bytes,
            state: LineState::Start,
            after_cr: false,
            name: Vec::with_capacity(MAX_FIELD_NAME),
            field: Field::Other,
            event_value: Vec::new(),
            event_name: Vec::new(),
            data: Vec::new(),
            has_data: false,
            oversized: false,
            usage: None,
            anthropic: AnthropicCounts::default(),
            anthropic_final: false,
            output_unreadable: false,
            models: Vec::new(),
            since_event_end: 0,
            event_ended: false,
            terminal: false,
            content_deltas: 0,
            oversized_events: 0,
            error: None,
        }
    }

    /// Feeds the next relayed bytes, split anywhere.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        self.since_event_end = self.since_event_end.saturating_add(chunk.len());
        while let Some((&first, rest)) = chunk.split_first() {
            if std::mem::take(&mut self.after_cr) && first == b'\n' {
                chunk = rest;
                continue;
            }
            if self.state == LineState::Value && first != b'\n' && first != b'\r' {
                // Values are most of the bytes: copy up to the line end at once
                // (at least one byte, since `first` does not end the line).
                let end = chunk.iter().position(|&b| b == b'\n' || b == b'\r').unwrap_or(chunk.len());
                self.append_value(&chunk[..end]);
                chunk = &chunk[end..];
                continue;
            }
            chunk = rest;
            self.byte(first);
            if std::mem::take(&mut self.event_ended) {
                self.since_event_end = chunk.len();
            }
        }
    }

    /// Bytes at the end of what was fed that belong to an event not yet
    /// complete (0 right after an empty line). Everything before them forms
    /// whole events; the relay releases only those, so a stream cut in the
    /// middle of an event can still end with a well-formed error event.
    pub fn bytes_since_event_end(&self) -> usize {
        self.since_event_end
    }

    /// Whether a `message_delta` reported its output count as missing,
    /// `null`, negative or not an integer: the output cannot be known, so
    /// the call is billed its reservation.
    pub fn output_unreadable(&self) -> bool {
        self.output_unreadable
    }

    /// The distinct models the upstream said it used (at most a few).
    pub fn reported_models(&self) -> &[String] {
        &self.models
    }

    /// The final usage the upstream reported; `None` when it never arrived
    /// (for Anthropic: until `message_delta`, which carries the final output count).
    pub fn usage(&self) -> Option<Usage> {
        match self.endpoint {
            Endpoint::Messages if self.anthropic_final && !self.output_unreadable => self.anthropic.usage(),
            Endpoint::Messages => None,
            _ => self.usage,
        }
    }

    /// Whether the stream reached the event that ends its protocol
    /// (`[DONE]`; `response.completed`, `.incomplete` or `.failed`;
    /// `message_stop`). Without it the stream was cut, whatever the usage says.
    pub fn saw_terminal_event(&self) -> bool {
        self.terminal
    }

    /// Output tokens seen so far, for a stream that ended without usage: the
    /// larger of the last cumulative count the upstream reported and the
    /// number of content deltas (each carries about one token). A lower
    /// bound: hidden reasoning tokens are not streamed.
    pub fn output_tokens_seen_estimate(&self) -> u64 {
        let reported = match self.endpoint {
            Endpoint::Messages => self.anthropic.output,
            _ => self.usage.map(|u| u.output_tokens),
        };
        reported.unwrap_or(0).max(self.content_deltas)
    }

    /// What to bill for the stream: the final usage when it arrived;
    /// otherwise the input counts the upstream reported (Anthropic's
    /// `message_start`), or `input_token_bound` uncached tokens when it
    /// reported none, plus the output estimate.
    pub fn usage_or_estimate(&self, input_token_bound: u64) -> Usage {
        if let Some(usage) = self.usage() {
            return usage;
        }
        let input = match self.endpoint {
            Endpoint::Messages => self.anthropic.input_usage(),
            _ => None,
        };
        Usage {
            output_tokens: self.output_tokens_seen_estimate(),
            ..input.unwrap_or(Usage { input_tokens: input_token_bound, ..Usage::default() })
        }
    }

    /// Events skipped because their data exceeded the limit. When the usage
    /// event was one of them, [`SseUsageParser::usage`] stays `None`.
    pub fn oversized_events(&self) -> u64 {
        self.oversized_events
    }

    /// The error type of an error event the upstream sent mid-stream
    /// (`overloaded_error`, `server_error`...), for the audit record.
    pub fn upstream_error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn byte(&mut self, byte: u8) {
        if byte == b'\n' || byte == b'\r' {
            self.end_line(byte);
            return;
        }
        match self.state {
            LineState::Start if byte == b':' => self.state = LineState::Comment,
            LineState::Start | LineState::Name if byte == b':' => {
                self.field = self.field_of_name();
                self.event_value.clear();
                self.state = LineState::ValueStart;
            }
            LineState::Start | LineState::Name => {
                self.state = LineState::Name;
                if self.name.len() < MAX_FIELD_NAME + 1 {
                    self.name.push(byte);
                }
            }
            LineState::ValueStart => {
                self.state = LineState::Value;
                if byte != b' ' {
                    self.append_value(&[byte]);
                }
            }
            LineState::Value => self.append_value(&[byte]),
            LineState::Comment => {}
        }
    }

    fn field_of_name(&self) -> Field {
        match self.name.as_slice() {
            b"data" => Field::Data,
            b"event" => Field::Event,
            _ => Field::Other,
        }
    }

    fn append_value(&mut self, bytes: &[u8]) {
        match self.field {
            Field::Data if !self.oversized => {
                if self.data.len() + bytes.len() > self.max_event_bytes {
                    self.oversized = true;
                    self.data = Vec::new();
                } else {
                    self.data.extend_from_slice(bytes);
                }
            }
            Field::Event => {
                // One byte over the limit marks the name as too long to match.
                let room = (MAX_EVENT_NAME + 1).saturating_sub(self.event_value.len());
                self.event_value.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Field::Data | Field::Other => {}
        }
    }

    fn end_line(&mut self, terminator: u8) {
        self.after_cr = terminator == b'\r';
        match self.state {
            LineState::Start => self.dispatch(),
            LineState::Comment => {}
            LineState::Name | LineState::ValueStart | LineState::Value => {
                // A line without `:` is a field with an empty value.
                if self.state == LineState::Name {
                    self.field = self.field_of_name();
                    self.event_value.clear();
                }
                match self.field {
                    Field::Data => {
                        self.has_data = true;
                        self.append_value(b"\n");
                    }
                    Field::Event => std::mem::swap(&mut self.event_name, &mut self.event_value),
                    Field::Other => {}
                }
            }
        }
        self.state = LineState::Start;
        self.field = Field::Other;
        self.name.clear();
    }

    /// An empty line: the event is complete.
    fn dispatch(&mut self) {
        self.event_ended = true;
        if self.has_data {
            if self.oversized {
                self.oversized_events += 1;
            } else {
                let mut data = std::mem::take(&mut self.data);
                let name = std::mem::take(&mut self.event_name);
                self.event(&name, data.strip_suffix(b"\n").unwrap_or(&data));
                self.event_name = name;
                data.clear();
                // Reuse the allocation for the next event unless one big event grew it.
                if data.capacity() <= KEEP_CAPACITY {
                    self.data = data;
                }
            }
        }
        self.data.clear();
        self.event_name.clear();
        self.has_data = false;
        self.oversized = false;
    }

    /// One complete event of the stream.
    fn event(&mut self, name: &[u8], data: &[u8]) {
        match self.endpoint {
            Endpoint::ChatCompletions | Endpoint::Completions => self.openai_chat_event(data),
            Endpoint::Responses => self.responses_event(name, data),
            Endpoint::Messages => self.anthropic_event(name, data),
            Endpoint::Embeddings | Endpoint::Other => {}
        }
    }

    fn openai_chat_event(&mut self, data: &[u8]) {
        if data == b"[DONE]" {
            self.terminal = true;
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        if let Some(usage) = chunk.get("usage").and_then(Usage::openai_chat) {
            self.report(usage);
        }
        self.note_model(chunk.get("model"));
        if let Some(choices) = chunk.get("choices").and_then(Value::as_array) {
            let with_content = choices.iter().filter(|c| choice_has_content(c)).count();
            self.content_deltas += with_content as u64;
        }
        if let Some(error) = chunk.get("error") {
            self.error = Some(error_type(error));
        }
    }

    fn responses_event(&mut self, name: &[u8], data: &[u8]) {
        let Ok(event) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        let kind = event_type(&event, name);
        match kind.as_str() {
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.terminal = true;
                if let Some(usage) =
                    event.get("response").and_then(|r| r.get("usage")).and_then(Usage::openai_responses)
                {
                    self.report(usage);
                }
            }
            // The event itself is the error here: its `type` is "error", its `code` the reason.
            "error" => {
                self.error = Some(match event.get("error") {
                    Some(error) => error_type(error),
                    None => error_code(&event),
                });
            }
            // An empty delta carries no token.
            delta
                if delta.ends_with(".delta")
                    && event.get("delta").and_then(Value::as_str).is_none_or(|d| !d.is_empty()) =>
            {
                self.content_deltas += 1;
            }
            _ => {}
        }
        self.note_model(event.get("response").and_then(|r| r.get("model")));
    }

    fn anthropic_event(&mut self, name: &[u8], data: &[u8]) {
        let Ok(event) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        match event_type(&event, name).as_str() {
            "message_start" => {
                if let Some(usage) = event.get("message").and_then(|m| m.get("usage")) {
                    self.anthropic.update(AnthropicCounts::read(usage));
                }
                self.note_model(event.get("message").and_then(|m| m.get("model")));
            }
            "message_delta" => {
                if let Some(usage) = event.get("usage") {
                    let counts = AnthropicCounts::read(usage);
                    if counts.output.is_none() {
                        self.output_unreadable = true;
                    }
                    self.anthropic.update(counts);
                    self.anthropic_final = true;
                }
            }
            // A thinking block's signature is not generated text.
            "content_block_delta"
                if event.get("delta").and_then(|d| d.get("type")).and_then(Value::as_str)
                    != Some("signature_delta") =>
            {
                self.content_deltas += 1;
            }
            "message_stop" => self.terminal = true,
            "error" => self.error = Some(error_type(event.get("error").unwrap_or(&event))),
            _ => {}
        }
    }
}

impl SseUsageParser {
    /// Merges a cumulative usage report: every field keeps its largest value.
    fn report(&mut self, usage: Usage) {
        self.usage = Some(match self.usage {
            Some(earlier) => earlier.max_each(&usage),
            None => usage,
        });
    }

    /// Remembers a reported model name (a few distinct ones at most).
    fn note_model(&mut self, model: Option<&Value>) {
        let Some(model) = model.and_then(Value::as_str).filter(|m| !m.is_empty()) else { return };
        let model: String = model.chars().take(MAX_MODEL_NAME).collect();
        if self.models.len() < MAX_REPORTED_MODELS && !self.models.contains(&model) {
            self.models.push(model);
        }
    }
}

/// The event's `type` field, else its SSE event name.
fn event_type(event: &Value, name: &[u8]) -> String {
    match event.get("type").and_then(Value::as_str) {
        Some(kind) => kind.to_owned(),
        None => String::from_utf8_lossy(name).into_owned(),
    }
}

/// An error object's `type` (or `code`), for the audit record.
fn error_type(error: &Value) -> String {
    first_text(error, ["type", "code"])
}

/// A Responses error event's `code` (or `type`).
fn error_code(event: &Value) -> String {
    first_text(event, ["code", "type"])
}

/// The first of `fields` that is a string, shortened; `"error"` if none is.
fn first_text(object: &Value, fields: [&str; 2]) -> String {
    let text = fields.iter().find_map(|field| object.get(*field).and_then(Value::as_str)).unwrap_or("error");
    text.chars().take(MAX_EVENT_NAME).collect()
}

/// Whether a chat or completions choice carries generated content: text,
/// a refusal, reasoning text (compatible servers) or tool-call arguments.
fn choice_has_content(choice: &Value) -> bool {
    let non_empty = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if non_empty(choice.get("text")) {
        return true;
    }
    let Some(delta) = choice.get("delta") else {
        return false;
    };
    ["content", "refusal", "reasoning_content", "reasoning"].iter().any(|field| non_empty(delta.get(*field)))
        || delta.get("tool_calls").and_then(Value::as_array).is_some_and(|calls| {
            calls.iter().any(|call| non_empty(call.get("function").and_then(|f| f.get("arguments"))))
        })
}

#[cfg(test)]
mod tests;
