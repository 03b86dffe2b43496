//! Token usage as the providers report it, normalized to one meaning, and
//! what it costs.
//!
//! Providers disagree on what "input tokens" means: OpenAI's `prompt_tokens`
//! / `input_tokens` include the cached tokens, Anthropic's `input_tokens`
//! exclude both cache reads and cache writes. [`Usage`] always means the
//! total (what the model read), with the cached and cache-write parts as
//! subsets, so the cost and the audit record never depend on the provider.
//!
//! Money is integer micro-dollars: a price is USD per 1M tokens, which is
//! exactly micro-dollars per token, so `tokens × price-in-µUSD-per-1M / 1M`
//! is the cost in micro-dollars, rounded up once per call.

use serde_json::Value;

use super::request::Endpoint;
use crate::config::ModelPrice;
use crate::config::units::Usd;

/// Tokens one call used. The parts of `input_tokens` are disjoint:
/// `cached_input_tokens + cache_write_tokens <= input_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every input token the model read: uncached, cache reads and cache writes.
    pub input_tokens: u64,
    /// Every output token, reasoning (thinking) tokens included: providers
    /// bill them as output.
    pub output_tokens: u64,
    /// Part of `input_tokens` read from the prompt cache (cheaper).
    pub cached_input_tokens: u64,
    /// Part of `input_tokens` written to the prompt cache (Anthropic; dearer).
    pub cache_write_tokens: u64,
    /// Part of `cache_write_tokens` written to Anthropic's 1-hour cache,
    /// which costs more than the 5-minute one.
    pub cache_write_1h_tokens: u64,
    /// Part of `output_tokens` spent on reasoning; reported, already billed.
    pub reasoning_tokens: u64,
}

/// Why a response's usage could not be read. The call still cost money, so
/// the caller settles it conservatively (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// The response body is not JSON.
    #[error("the {endpoint} response is not JSON")]
    NotJson {
        /// Endpoint name.
        endpoint: &'static str,
    },
    /// The response has no usage, or its counts are missing or not numbers.
    #[error("the {endpoint} response carries no usable token usage")]
    Missing {
        /// Endpoint name.
        endpoint: &'static str,
    },
    /// The endpoint is not priced, so no usage is expected.
    #[error("the endpoint is not priced")]
    NotPriced,
}

/// What a complete response body says about its cost: its usage, and the
/// model it names (which may differ from the one requested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseUsage {
    /// The usage, or why it cannot be read.
    pub usage: Result<Usage, UsageError>,
    /// The body's top-level `model`, if it is a string.
    pub model: Option<String>,
}

impl Usage {
    /// The usage of a complete (non-streaming) response body.
    pub fn from_response(endpoint: Endpoint, body: &[u8]) -> Result<Usage, UsageError> {
        Usage::read_response(endpoint, body).usage
    }

    /// The usage of a complete (non-streaming) response body and the model it names.
    pub fn read_response(endpoint: Endpoint, body: &[u8]) -> ResponseUsage {
        let name = endpoint.as_str();
        if endpoint == Endpoint::Other {
            return ResponseUsage { usage: Err(UsageError::NotPriced), model: None };
        }
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return ResponseUsage { usage: Err(UsageError::NotJson { endpoint: name }), model: None };
        };
        let model = value.get("model").and_then(Value::as_str).map(str::to_owned);
        ResponseUsage { usage: Usage::of_value(endpoint, &value), model }
    }

    /// The usage inside a parsed response body.
    fn of_value(endpoint: Endpoint, value: &Value) -> Result<Usage, UsageError> {
        let name = endpoint.as_str();
        let usage = value.get("usage");
        let parsed = match endpoint {
            Endpoint::ChatCompletions | Endpoint::Completions => usage.and_then(Usage::openai_chat),
            Endpoint::Embeddings => usage.and_then(Usage::openai_embeddings),
            Endpoint::Responses => usage.and_then(Usage::openai_responses),
            Endpoint::Messages => usage.and_then(|u| AnthropicCounts::read(u).usage()),
            Endpoint::Other => None,
        };
        parsed.ok_or(UsageError::Missing { endpoint: name })
    }

    /// Each field the larger of `self` and `other`: provider usage is
    /// cumulative, so a smaller later report is a lie or a glitch and never
    /// lowers the bill.
    pub fn max_each(&self, other: &Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.max(other.input_tokens),
            output_tokens: self.output_tokens.max(other.output_tokens),
            cached_input_tokens: self.cached_input_tokens.max(other.cached_input_tokens),
            cache_write_tokens: self.cache_write_tokens.max(other.cache_write_tokens),
            cache_write_1h_tokens: self.cache_write_1h_tokens.max(other.cache_write_1h_tokens),
            reasoning_tokens: self.reasoning_tokens.max(other.reasoning_tokens),
        }
    }

    /// Every count at most `limit` (see `pipeline` settlement: absurd counts
    /// are saturated so the bill stays a number the ledger can hold), and
    /// whether any count was above it.
    pub fn saturated(&self, limit: u64) -> (Usage, bool) {
        let over = [
            self.input_tokens,
            self.output_tokens,
            self.cached_input_tokens,
            self.cache_write_tokens,
            self.cache_write_1h_tokens,
            self.reasoning_tokens,
        ]
        .iter()
        .any(|&n| n > limit);
        let usage = Usage {
            input_tokens: self.input_tokens.min(limit),
            output_tokens: self.output_tokens.min(limit),
            cached_input_tokens: self.cached_input_tokens.min(limit),
            cache_write_tokens: self.cache_write_tokens.min(limit),
            cache_write_1h_tokens: self.cache_write_1h_tokens.min(limit),
            reasoning_tokens: self.reasoning_tokens.min(limit),
        };
        (usage, over)
    }

    /// Input tokens billed at the plain input price.
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens.saturating_sub(self.cached_input_tokens).saturating_sub(self.cache_write_tokens)
    }

    /// OpenAI chat and legacy completions: `prompt_tokens` (cached included),
    /// `completion_tokens` (reasoning included) and their details.
    pub(super) fn openai_chat(usage: &Value) -> Option<Usage> {
        Some(Usage {
            input_tokens: tokens(usage, "prompt_tokens")?,
            output_tokens: tokens(usage, "completion_tokens")?,
            // DeepSeek-style servers report cache hits at the top level.
            cached_input_tokens: nested(usage, "prompt_tokens_details", "cached_tokens")
                .or_else(|| tokens(usage, "prompt_cache_hit_tokens"))
                .unwrap_or(0),
            reasoning_tokens: nested(usage, "completion_tokens_details", "reasoning_tokens").unwrap_or(0),
            ..Usage::default()
        })
    }

    /// OpenAI embeddings: only `prompt_tokens`.
    fn openai_embeddings(usage: &Value) -> Option<Usage> {
        Some(Usage { input_tokens: tokens(usage, "prompt_tokens")?, ..Usage::default() })
    }

    /// OpenAI Responses: `input_tokens` (cached included), `output_tokens`
    /// (reasoning included) and their details.
    pub(super) fn openai_responses(usage: &Value) -> Option<Usage> {
        Some(Usage {
            input_tokens: tokens(usage, "input_tokens")?,
            output_tokens: tokens(usage, "output_tokens")?,
            cached_input_tokens: nested(usage, "input_tokens_details", "cached_tokens").unwrap_or(0),
            reasoning_tokens: nested(usage, "output_tokens_details", "reasoning_tokens").unwrap_or(0),
            ..Usage::default()
        })
    }
}

/// Anthropic's counts as reported, each possibly missing: a stream reports
/// them in two events (`message_start`, then cumulative `message_delta`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct AnthropicCounts {
    /// `input_tokens`: input that is neither read from nor written to the cache.
    pub input: Option<u64>,
    /// `cache_read_input_tokens`
    pub cache_read: Option<u64>,
    /// `cache_creation_input_tokens`
    pub cache_creation: Option<u64>,
    /// `cache_creation.ephemeral_1h_input_tokens`
    pub cache_creation_1h: Option<u64>,
    /// `output_tokens`, cumulative.
    pub output: Option<u64>,
}

impl AnthropicCounts {
    /// The counts present in one `usage` object.
    pub fn read(usage: &Value) -> AnthropicCounts {
        AnthropicCounts {
            input: tokens(usage, "input_tokens"),
            cache_read: tokens(usage, "cache_read_input_tokens"),
            cache_creation: tokens(usage, "cache_creation_input_tokens"),
            cache_creation_1h: nested(usage, "cache_creation", "ephemeral_1h_input_tokens"),
            output: tokens(usage, "output_tokens"),
        }
    }

    /// Each count becomes the largest reported so far; missing ones keep the
    /// earlier value. Anthropic's stream counts are cumulative, so a later,
    /// smaller count (`input_tokens: 0` in a `message_delta` after
    /// `message_start` reported 90,000) never lowers the bill.
    pub fn update(&mut self, later: AnthropicCounts) {
        let max = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.input = max(self.input, later.input);
        self.cache_read = max(self.cache_read, later.cache_read);
        self.cache_creation = max(self.cache_creation, later.cache_creation);
        self.cache_creation_1h = max(self.cache_creation_1h, later.cache_creation_1h);
        self.output = max(self.output, later.output);
    }

    /// Normalized usage; `None` without the input and output counts.
    pub fn usage(&self) -> Option<Usage> {
        let mut usage = self.input_usage()?;
        usage.output_tokens = self.output?;
        Some(usage)
    }

    /// The input side alone (output zero); `None` without the input count.
    pub fn input_usage(&self) -> Option<Usage> {
        let cached = self.cache_read.unwrap_or(0);
        let written = self.cache_creation.unwrap_or(0);
        Some(Usage {
            input_tokens: self.input?.saturating_add(cached).saturating_add(written),
            cached_input_tokens: cached,
            cache_write_tokens: written,
            cache_write_1h_tokens: self.cache_creation_1h.unwrap_or(0).min(written),
            ..Usage::default()
        })
    }
}

/// A token count: a non-negative integer (`null` and other types are absent).
fn tokens(object: &Value, field: &str) -> Option<u64> {
    object.get(field)?.as_u64()
}

/// `object.outer.field` as a token count.
fn nested(object: &Value, outer: &str, field: &str) -> Option<u64> {
    tokens(object.get(outer)?, field)
}

/// Micro-dollars in `per_mtok` micro-dollars per million tokens.
const TOKENS_PER_PRICE_UNIT: u128 = 1_000_000;

/// What `usage` costs at `price`, in micro-dollars, rounded up: cache reads at
/// the cached price, cache writes at the (5-minute or 1-hour) cache-write
/// price, the rest of the input at the input price, output (reasoning
/// included) at the output price.
pub fn cost_micros(price: &ModelPrice, usage: &Usage) -> u64 {
    let write_1h = usage.cache_write_1h_tokens.min(usage.cache_write_tokens);
    let write_5m = usage.cache_write_tokens - write_1h;
    let parts = [
        (usage.uncached_input_tokens(), price.input),
        (usage.cached_input_tokens, price.cached_input),
        (write_5m, price.cache_write),
        (write_1h, price.cache_write_1h_price()),
        (usage.output_tokens, price.output),
    ];
    micros(parts.into_iter().map(|(t, p)| (t, p.micros())))
}

/// The most a call can cost at `price` when it reads at most `input_bound`
/// tokens and writes at most `max_output`, in micro-dollars, rounded up. Each
/// input token is priced at the dearest input rate the model has (any of them
/// may turn out to be a cache write).
pub fn worst_case_micros(price: &ModelPrice, input_bound: u64, max_output: u64) -> u64 {
    let input_rate =
        price.input.max(price.cached_input).max(price.cache_write).max(price.cache_write_1h.unwrap_or(Usd::ZERO));
    micros([(input_bound, input_rate.micros()), (max_output, price.output.micros())])
}

/// `Σ tokens × µUSD-per-1M / 1M`, rounded up once, saturating at `u64::MAX`
/// (a saturated cost never fits under a cap, so it fails closed).
fn micros(parts: impl IntoIterator<Item = (u64, u64)>) -> u64 {
    let total: u128 = parts
        .into_iter()
        .map(|(tokens, per_mtok)| u128::from(tokens) * u128::from(per_mtok))
        .fold(0u128, u128::saturating_add);
    u64::try_from(total.div_ceil(TOKENS_PER_PRICE_UNIT)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
