//! Understanding and rewriting an LLM request body before it is forwarded:
//! which endpoint it is, which model, whether it streams, how many tokens it
//! may read and write at most (the worst case the spend cap reserves), the
//! text for the audit summary, and the two fields steward adds when they are
//! missing (`stream_options.include_usage`, a max-output-tokens limit).
//!
//! Everything is decided from the bytes the agent sent; nothing here knows
//! about HTTP. Where the body is ambiguous (a duplicated key, a field of the
//! wrong type) the request is refused, because a request steward reads
//! differently from the provider is a request the cap cannot price.

use std::collections::HashSet;
use std::ops::Range;

use canonical_path::CanonicalPath;
use serde_json::{Map, Value};

use super::json_members::{Member, top_level_members};
use super::usage::worst_case_micros;
use crate::config::{LlmKind, ModelPrice};

/// Tokens added to every input bound for what the provider adds around the
/// request: chat-template markers per message, hidden system prompts (Anthropic
/// adds about 350 tokens when tools are present), tool definitions rewritten
/// into prompt text.
pub const REQUEST_OVERHEAD_TOKENS: u64 = 1_024;

/// Input tokens one image can cost, beyond its bytes. An image is priced by
/// its pixels, not its size, and a URL is a few bytes: OpenAI caps a
/// high-detail image at about 1,450 tokens (tiles) or 3,800 (patch models),
/// Anthropic at about 1,600.
pub const IMAGE_TOKENS: u64 = 4_000;

/// Input tokens one image can cost on `gpt-4o-mini`, which counts image
/// tokens about 33 times higher (2,833 + 5,667 per tile, 8 tiles at most =
/// 48,169) and prices them lower, so its images cost what `gpt-4o`'s do.
pub const IMAGE_TOKENS_GPT_4O_MINI: u64 = 50_000;

/// Input tokens a provider-defined client tool can add (Anthropic's computer
/// use adds a system prompt of about 500 and a definition of about 700).
pub const BUILTIN_TOOL_TOKENS: u64 = 2_000;

/// The input bound of a request that makes the provider read content steward
/// cannot see, for a model whose context window the price table does not
/// know: larger than any current context window.
pub const UNKNOWN_CONTEXT_TOKENS: u64 = 2_000_000;

/// An upper bound of the input tokens a request of `body_len` bytes can cost,
/// from its size alone.
///
/// Every BPE tokenizer in use (OpenAI's `o200k`/`cl100k`, Anthropic's) maps
/// each token to at least one byte of UTF-8 text, so text never has more
/// tokens than bytes; JSON quoting and field names only add bytes. Base64
/// data (images, audio, PDFs) is counted as bytes too, which is generous for
/// audio; what bytes do not bound (an image's pixels, a referenced file, hidden
/// prompts) is added by [`LlmRequest::input_bound`].
pub fn input_token_bound(body_len: usize) -> u64 {
    (body_len as u64).saturating_add(REQUEST_OVERHEAD_TOKENS)
}

/// The API endpoint a request goes to, which decides its body and usage shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI legacy `POST /v1/completions`.
    Completions,
    /// OpenAI `POST /v1/responses`.
    Responses,
    /// OpenAI `POST /v1/embeddings`.
    Embeddings,
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// Anything else (models, files, batches, token counting...): passed
    /// through, audited by its path, not priced.
    Other,
}

impl Endpoint {
    /// The endpoint of a request path (the part after `/llm/{provider}`).
    /// Matched on the end of the path so every OpenAI-compatible prefix
    /// (`/v1`, `/api/v1`, `/openai/v1`) works, on the decoded segments the
    /// call is forwarded with, case-insensitively: an odd spelling of a priced
    /// path (`/v1/chat/%63ompletions`, `/V1/Chat/Completions`) is priced,
    /// never passed through as "other". Spellings that could reach another
    /// endpoint (`\\`, `..`, `%2F`) never get here: the front door refuses them.
    pub fn classify(path: &CanonicalPath) -> Endpoint {
        let segments = path.segments();
        let tail: Vec<String> = segments.iter().rev().take(2).map(|s| s.to_ascii_lowercase()).collect();
        let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
        match tail.as_slice() {
            ["completions", "chat", ..] => Endpoint::ChatCompletions,
            ["completions", ..] => Endpoint::Completions,
            ["responses", ..] => Endpoint::Responses,
            ["embeddings", ..] => Endpoint::Embeddings,
            // Not any `.../messages`: OpenAI's `/v1/threads/{id}/messages` is free.
            ["messages", "v1"] | ["messages"] => Endpoint::Messages,
            _ => Endpoint::Other,
        }
    }

    /// Whether calls to it are priced (and need a model with a known price).
    pub fn is_priced(self) -> bool {
        self != Endpoint::Other
    }

    /// Whether it generates output tokens.
    pub fn generates(self) -> bool {
        !matches!(self, Endpoint::Embeddings | Endpoint::Other)
    }

    /// The body field that limits output tokens. Chat uses
    /// `max_completion_tokens`, the field OpenAI's reasoning models require
    /// (`max_tokens` is deprecated there and refused by o-series models).
    pub fn max_output_field(self) -> Option<&'static str> {
        match self {
            Endpoint::ChatCompletions => Some("max_completion_tokens"),
            Endpoint::Completions | Endpoint::Messages => Some("max_tokens"),
            Endpoint::Responses => Some("max_output_tokens"),
            Endpoint::Embeddings | Endpoint::Other => None,
        }
    }

    /// A stable name for audit records and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat.completions",
            Endpoint::Completions => "completions",
            Endpoint::Responses => "responses",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::Other => "other",
        }
    }
}

/// How many input tokens a request can cost at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputBound {
    /// Bounded by the request itself (bytes, images, provider tools).
    Tokens(u64),
    /// The provider also reads content steward cannot see (a stored
    /// conversation, a file by id, a web search), so only the model's context
    /// window bounds it.
    ServerSide {
        /// What the request refers to, for logs and errors.
        reason: &'static str,
        /// The bound of the visible part.
        request_tokens: u64,
    },
}

impl InputBound {
    /// The bound in tokens for a model priced `price`: a server-side request
    /// may fill the model's context window ([`UNKNOWN_CONTEXT_TOKENS`] when
    /// the table does not know it).
    pub fn tokens(self, price: &ModelPrice) -> u64 {
        match self {
            InputBound::Tokens(tokens) => tokens,
            InputBound::ServerSide { request_tokens, .. } => {
                request_tokens.max(price.max_input_tokens.unwrap_or(UNKNOWN_CONTEXT_TOKENS))
            }
        }
    }
}

/// A request body steward will not forward, and why. The message is meant
/// for the agent (it describes the agent's own request, never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmRequestError {
    /// The body of a priced endpoint is not JSON.
    #[error("the request body is not valid JSON (line {line}, column {column})")]
    NotJson {
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
    },
    /// The body is JSON but not an object.
    #[error("the request body must be a JSON object")]
    NotAnObject,
    /// No model: steward prices every call by its model.
    #[error("the request names no \"model\"; steward prices every LLM call by its model")]
    MissingModel,
    /// A field steward reads has the wrong type.
    #[error("\"{field}\" must be {expected}")]
    InvalidField {
        /// The field, as in the body.
        field: &'static str,
        /// What it must be, in words.
        expected: &'static str,
    },
    /// A top-level key appears twice: providers and steward might read
    /// different values.
    #[error("\"{field}\" appears more than once in the request body")]
    DuplicateField {
        /// The key, truncated to 64 characters.
        field: String,
    },
}

/// What steward understood of one LLM request.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    /// The provider's API family.
    kind: LlmKind,
    /// Where the request goes.
    endpoint: Endpoint,
    /// `model`; `None` only for unpriced requests.
    model: Option<String>,
    /// `stream: true`.
    stream: bool,
    /// The largest output limit the request sets, if any.
    requested_max_output: Option<u64>,
    /// Completions generated per call (`n`, `best_of`): output is paid for each.
    choices: u64,
    /// `stream_options.include_usage: true` as sent by the client.
    client_include_usage: bool,
    /// Worst-case input.
    input: InputBound,
    /// The last user message's text.
    summary: Option<String>,
    /// Size of the body as received.
    body_len: usize,
    /// The body and its top-level members, for [`LlmRequest::rewrite`];
    /// `None` for unpriced requests.
    shape: Option<Shape>,
}

/// The original body with the positions of its top-level members.
#[derive(Debug, Clone)]
struct Shape {
    /// The body as received.
    body: Vec<u8>,
    /// Offset just after the opening `{`.
    insert_at: usize,
    /// Top-level members in order.
    members: Vec<Member>,
}

impl LlmRequest {
    /// Reads a request for `path` (below `/llm/{provider}`) sent to a provider of `kind`.
    ///
    /// Unpriced endpoints, and bodies that are empty (a `GET` such as listing
    /// stored chat completions), are not parsed: they pass through as
    /// [`Endpoint::Other`]. A priced endpoint needs a JSON object with a
    /// `model`.
    pub fn inspect(kind: LlmKind, path: &CanonicalPath, body: &[u8]) -> Result<LlmRequest, LlmRequestError> {
        let endpoint = Endpoint::classify(path);
        if endpoint == Endpoint::Other || body.iter().all(u8::is_ascii_whitespace) {
            return Ok(LlmRequest::unpriced(kind, body.len()));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| LlmRequestError::NotJson { line: e.line(), column: e.column() })?;
        let Value::Object(object) = &value else {
            return Err(LlmRequestError::NotAnObject);
        };
        let (insert_at, members) = top_level_members(body).ok_or(LlmRequestError::NotAnObject)?;
        let mut seen = HashSet::new();
        if let Some(twice) = members.iter().find(|m| !seen.insert(m.key.as_str())) {
            return Err(LlmRequestError::DuplicateField { field: twice.key.chars().take(64).collect() });
        }

        let model = match object.get("model") {
            Some(Value::String(model)) if !model.is_empty() => model.clone(),
            None | Some(Value::Null) => return Err(LlmRequestError::MissingModel),
            Some(Value::String(_)) => return Err(LlmRequestError::MissingModel),
            Some(_) => {
                return Err(LlmRequestError::InvalidField { field: "model", expected: "a model name (a string)" });
            }
        };
        let stream = flag(object, "stream")?.unwrap_or(false);
        let client_include_usage = match object.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(options)) => flag(options, "include_usage")?.unwrap_or(false),
            Some(_) => {
                return Err(LlmRequestError::InvalidField { field: "stream_options", expected: "an object" });
            }
        };
        let requested_max_output = match endpoint {
            Endpoint::ChatCompletions => {
                let modern = limit(object, "max_completion_tokens")?;
                let legacy = limit(object, "max_tokens")?;
                modern.max(legacy)
            }
            Endpoint::Completions | Endpoint::Messages => limit(object, "max_tokens")?,
            Endpoint::Responses => limit(object, "max_output_tokens")?,
            Endpoint::Embeddings | Endpoint::Other => None,
        };
        let choices = match endpoint {
            Endpoint::ChatCompletions => count(object, "n")?.unwrap_or(1),
            Endpoint::Completions => {
                let n = count(object, "n")?.unwrap_or(1);
                n.max(count(object, "best_of")?.unwrap_or(1))
            }
            _ => 1,
        }
        .max(1);
        let input = input_bound(endpoint, object, &model, body.len());
        Ok(LlmRequest {
            kind,
            endpoint,
            summary: summary(endpoint, object),
            model: Some(model),
            stream,
            requested_max_output,
            choices,
            client_include_usage,
            input,
            body_len: body.len(),
            shape: Some(Shape { body: body.to_vec(), insert_at, members }),
        })
    }

    fn unpriced(kind: LlmKind, body_len: usize) -> LlmRequest {
        LlmRequest {
            kind,
            endpoint: Endpoint::Other,
            model: None,
            stream: false,
            requested_max_output: None,
            choices: 1,
            client_include_usage: false,
            input: InputBound::Tokens(input_token_bound(body_len)),
            summary: None,
            body_len,
            shape: None,
        }
    }

    /// The provider's API family.
    pub fn kind(&self) -> LlmKind {
        self.kind
    }

    /// Where the request goes.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The model named by the body; `None` for unpriced requests.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Whether the response is an SSE stream.
    pub fn stream(&self) -> bool {
        self.stream
    }

    /// The output limit the request sets itself (the largest, when chat
    /// sets both `max_tokens` and `max_completion_tokens`).
    pub fn requested_max_output_tokens(&self) -> Option<u64> {
        self.requested_max_output
    }

    /// Completions generated per call (`n`, or `best_of` for legacy
    /// completions); each one can use the whole output limit.
    pub fn choices(&self) -> u64 {
        self.choices
    }

    /// Whether the client itself asked for usage in the stream
    /// (`stream_options.include_usage: true`).
    pub fn client_requested_usage(&self) -> bool {
        self.client_include_usage
    }

    /// Whether [`LlmRequest::rewrite`] adds `include_usage`: the client did
    /// not ask for the final usage chunk, so it must be removed from the
    /// stream again with a [`super::UsageChunkFilter`].
    pub fn include_usage_added(&self) -> bool {
        self.stream
            && matches!(self.endpoint, Endpoint::ChatCompletions | Endpoint::Completions)
            && !self.client_include_usage
    }

    /// The field [`LlmRequest::rewrite`] sets to the default output limit,
    /// when the request sets none.
    pub fn max_output_field_added(&self) -> Option<&'static str> {
        if self.requested_max_output.is_some() {
            return None;
        }
        self.endpoint.max_output_field()
    }

    /// Size of the body as received.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// The most input tokens the request can cost.
    pub fn input_bound(&self) -> InputBound {
        self.input
    }

    /// The most output tokens the request can cost once forwarded (after
    /// [`LlmRequest::rewrite`] with the same default): its limit, or the
    /// default, for each generated choice.
    pub fn max_output_bound(&self, default_max_output_tokens: u32) -> u64 {
        if !self.endpoint.generates() {
            return 0;
        }
        self.requested_max_output.unwrap_or(u64::from(default_max_output_tokens)).saturating_mul(self.choices)
    }

    /// The worst-case cost of the request in micro-dollars at `price`: what
    /// the spend cap reserves before it is forwarded.
    pub fn worst_case_micros(&self, price: &ModelPrice, default_max_output_tokens: u32) -> u64 {
        worst_case_micros(price, self.input.tokens(price), self.max_output_bound(default_max_output_tokens))
    }

    /// The text of the last user message that has text (string content or
    /// the text parts of a content array, in OpenAI's and Anthropic's shapes;
    /// the prompt of a legacy completion, the input of an embedding). Raw:
    /// the caller redacts and truncates it before it is written anywhere.
    pub fn summary(&self) -> Option<&str> {
        self.summary.as_deref()
    }

    /// The body to forward: the original with `stream_options.include_usage:
    /// true` added to a streaming chat/completions request that lacks it
    /// (other `stream_options` keys kept), and the endpoint's output limit
    /// set to `default_max_output_tokens` when the request sets none. Every
    /// other byte is unchanged. `None` when nothing needs to change.
    pub fn rewrite(&self, default_max_output_tokens: u32) -> Option<Vec<u8>> {
        let shape = self.shape.as_ref()?;
        let mut inserts: Vec<String> = Vec::new();
        let mut replaces: Vec<(Range<usize>, String)> = Vec::new();
        if self.include_usage_added() {
            match shape.member("stream_options") {
                Some(member) => {
                    let mut options = match shape.value(member) {
                        Some(Value::Object(options)) => options,
                        _ => Map::new(),
                    };
                    options.insert("include_usage".to_owned(), Value::Bool(true));
                    replaces.push((member.value.clone(), Value::Object(options).to_string()));
                }
                None => inserts.push(r#""stream_options":{"include_usage":true}"#.to_owned()),
            }
        }
        if let Some(field) = self.max_output_field_added() {
            let limit = default_max_output_tokens.to_string();
            // Present but null: replace it rather than add a duplicate key.
            match shape.member(field) {
                Some(member) => replaces.push((member.value.clone(), limit)),
                None => inserts.push(format!("\"{field}\":{limit}")),
            }
        }
        if inserts.is_empty() && replaces.is_empty() {
            return None;
        }
        replaces.sort_by_key(|(range, _)| range.start);
        let body = &shape.body;
        let mut out = Vec::with_capacity(body.len() + 64);
        out.extend_from_slice(&body[..shape.insert_at]);
        if !inserts.is_empty() {
            out.extend_from_slice(inserts.join(",").as_bytes());
            if !shape.members.is_empty() {
                out.push(b',');
            }
        }
        let mut cursor = shape.insert_at;
        for (range, text) in replaces {
            out.extend_from_slice(&body[cursor..range.start]);
            out.extend_from_slice(text.as_bytes());
            cursor = range.end;
        }
        out.extend_from_slice(&body[cursor..]);
        Some(out)
    }
}

impl Shape {
    fn member(&self, key: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.key == key)
    }

    fn value(&self, member: &Member) -> Option<Value> {
        serde_json::from_slice(self.body.get(member.value.clone())?).ok()
    }
}

/// A boolean field; absent and `null` are `None`.
fn flag(object: &Map<String, Value>, field: &'static str) -> Result<Option<bool>, LlmRequestError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(LlmRequestError::InvalidField { field, expected: "true or false" }),
    }
}

/// A non-negative integer field; absent and `null` are `None`.
fn count(object: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, LlmRequestError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            value.as_u64().map(Some).ok_or(LlmRequestError::InvalidField { field, expected: "a whole number" })
        }
    }
}

/// An output limit: a whole number of at least 1. Zero is refused rather
/// than read as a bound of nothing: some compatible servers take it to mean
/// "no limit".
fn limit(object: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, LlmRequestError> {
    match count(object, field)? {
        Some(0) => Err(LlmRequestError::InvalidField { field, expected: "a whole number of at least 1" }),
        other => Ok(other),
    }
}

/// What [`input_bound`] finds in the content of a request.
#[derive(Debug, Default)]
struct ContentScan {
    /// Image parts (by URL, file or inline data).
    images: u64,
    /// Provider-defined tools that run on the client (computer use, bash...).
    builtin_tools: u64,
    /// Why the provider reads input steward cannot see, if it does.
    server_side: Option<&'static str>,
}

impl ContentScan {
    /// Counts the typed parts below `value` (messages, input items, content blocks).
    fn content(&mut self, value: &Value) {
        match value {
            Value::Object(object) => {
                match object.get("type").and_then(Value::as_str) {
                    Some("image_url" | "input_image" | "image" | "computer_screenshot") => {
                        self.images += 1;
                    }
                    Some("input_file" | "file" | "document" | "container_upload") => {
                        self.server_side.get_or_insert("a file or document input");
                    }
                    Some("item_reference") => {
                        self.server_side.get_or_insert("a reference to a stored item");
                    }
                    // Without its encrypted content, a reasoning item is read from storage.
                    Some("reasoning") if object.get("encrypted_content").is_none_or(Value::is_null) => {
                        self.server_side.get_or_insert("a stored reasoning item");
                    }
                    _ => {}
                }
                object.values().for_each(|v| self.content(v));
            }
            Value::Array(items) => items.iter().for_each(|v| self.content(v)),
            _ => {}
        }
    }

    /// One entry of `tools`: a client function costs its bytes; a
    /// provider-defined client tool adds a hidden prompt; a server tool
    /// (web search, file search, code execution, MCP...) makes the provider
    /// read content steward cannot see. Unknown tool types count as server
    /// tools: fail closed.
    fn tool(&mut self, tool: &Value) {
        let kind = tool.get("type").and_then(Value::as_str);
        match kind {
            None | Some("function" | "custom") => {}
            Some("computer_use_preview" | "local_shell" | "shell" | "apply_patch") => {
                self.builtin_tools += 1;
            }
            Some(t) if ["computer_", "text_editor_", "bash_", "memory_"].iter().any(|prefix| t.starts_with(prefix)) => {
                self.builtin_tools += 1;
            }
            Some(_) => {
                self.server_side.get_or_insert("a server-side tool (web search, file search, code execution, MCP)");
            }
        }
    }
}

/// The worst-case input of a request: its bytes, plus what bytes do not bound.
fn input_bound(endpoint: Endpoint, object: &Map<String, Value>, model: &str, body_len: usize) -> InputBound {
    let mut scan = ContentScan::default();
    for field in ["messages", "input", "system", "instructions"] {
        if let Some(value) = object.get(field) {
            scan.content(value);
        }
    }
    if let Some(Value::Array(tools)) = object.get("tools") {
        tools.iter().for_each(|tool| scan.tool(tool));
    }
    let present = |field: &str| object.get(field).is_some_and(|v| !v.is_null());
    let top_level = [
        ("previous_response_id", "a stored previous response"),
        ("conversation", "a stored conversation"),
        ("container", "a code execution container"),
        ("web_search_options", "web search"),
    ];
    for (field, reason) in top_level {
        if present(field) {
            scan.server_side.get_or_insert(reason);
        }
    }
    if object.get("mcp_servers").and_then(Value::as_array).is_some_and(|servers| !servers.is_empty()) {
        scan.server_side.get_or_insert("remote MCP servers");
    }
    // For Responses `prompt` is a stored template; for completions it is the text.
    if endpoint == Endpoint::Responses && present("prompt") {
        scan.server_side.get_or_insert("a stored prompt template");
    }
    let per_image = if model.contains("gpt-4o-mini") { IMAGE_TOKENS_GPT_4O_MINI } else { IMAGE_TOKENS };
    let tokens = input_token_bound(body_len)
        .saturating_add(scan.images.saturating_mul(per_image))
        .saturating_add(scan.builtin_tools.saturating_mul(BUILTIN_TOOL_TOKENS));
    match scan.server_side {
        Some(reason) => InputBound::ServerSide { reason, request_tokens: tokens },
        None => InputBound::Tokens(tokens),
    }
}

/// The audit summary text of a request; see [`LlmRequest::summary`].
fn summary(endpoint: Endpoint, object: &Map<String, Value>) -> Option<String> {
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Messages => last_user_text(object.get("messages")?.as_array()?),
        Endpoint::Responses => match object.get("input")? {
            Value::String(text) => non_blank(text),
            Value::Array(items) => last_user_text(items),
            _ => None,
        },
        Endpoint::Completions => strings(object.get("prompt")?),
        Endpoint::Embeddings => strings(object.get("input")?),
        Endpoint::Other => None,
    }
}

/// The text of the last `role: "user"` item that has any.
fn last_user_text(items: &[Value]) -> Option<String> {
    items
        .iter()
        .rev()
        .filter(|item| item.get("role").and_then(Value::as_str) == Some("user"))
        .find_map(|item| content_text(item.get("content")?))
}

/// String content, or the `text` / `input_text` parts of a content array
/// joined by newlines.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => non_blank(text),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|part| matches!(part.get("type").and_then(Value::as_str), Some("text" | "input_text")))
                .filter_map(|part| part.get("text")?.as_str())
                .filter(|text| !text.trim().is_empty())
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

/// A string, or the strings of an array joined by newlines (token arrays
/// have no text).
fn strings(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => non_blank(text),
        Value::Array(items) => {
            let texts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            non_blank(&texts.join("\n"))
        }
        _ => None,
    }
}

fn non_blank(text: &str) -> Option<String> {
    (!text.trim().is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests;
