//! The pure core of the LLM front door (`/llm/{provider}/...`): everything
//! between the bytes of a request or response and the numbers the spend cap
//! needs. No HTTP, no storage, no clock: the gateway feeds bytes in and
//! records what comes out.
//!
//! - [`prices`]: the built-in price table (`data/prices.toml`) merged with
//!   the config's `[prices.*]`, and the model lookup ([`PriceTable`]).
//! - [`request`]: what a request asks for ([`LlmRequest::inspect`]): endpoint,
//!   model, stream, worst-case input and output; the audit summary; the body
//!   rewrite that adds `include_usage` and a max-output limit.
//! - [`usage`]: [`Usage`] normalized across providers, read from complete
//!   responses, and what it costs ([`cost_micros`], [`worst_case_micros`]).
//! - [`sse`]: [`SseUsageParser`], usage and clean-end detection on a relayed stream.
//! - [`filter`]: [`UsageChunkFilter`], removes the usage chunk steward asked
//!   for from a stream whose client did not.
//!
//! Money is integer micro-dollars ([`Usd`]) throughout, so sums are exact.
//!
//! The flow for one call: `inspect` → look the model up (unknown → refuse)
//! → reserve `worst_case_micros` → forward `rewrite`'s body → relay the
//! response while feeding a copy to the parser (through the filter when
//! `include_usage_added`) → settle at `cost_micros` of the usage, or of
//! `usage_or_estimate` when the stream was cut.

pub mod filter;
mod json_members;
pub mod prices;
pub mod request;
pub mod sse;
pub mod usage;

pub use crate::config::units::Usd;
pub use crate::config::{LlmKind, ModelPrice};
pub use filter::{FILTER_HOLD_LIMIT, UsageChunkFilter};
pub use prices::{BUILTIN_PRICES_TOML, PriceError, PriceTable, builtin_prices};
pub use request::{
    BUILTIN_TOOL_TOKENS, Endpoint, IMAGE_TOKENS, IMAGE_TOKENS_GPT_4O_MINI, InputBound, LlmRequest, LlmRequestError,
    REQUEST_OVERHEAD_TOKENS, UNKNOWN_CONTEXT_TOKENS, input_token_bound,
};
pub use sse::{DEFAULT_MAX_EVENT_BYTES, SseUsageParser};
pub use usage::{ResponseUsage, Usage, UsageError, cost_micros, worst_case_micros};

#[cfg(test)]
mod tests;
