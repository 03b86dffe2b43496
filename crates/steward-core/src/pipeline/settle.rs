//! Settlement of a priced LLM call: what it cost, from what the relay saw.
//!
//! The cap's promise is "never exceeded", so settlement fails safe against a
//! lying or broken upstream: when the usage is missing, odd, contradictory
//! or beyond what was reserved, the **higher reading** is billed and what
//! can be stopped is stopped.
//!
//! | what the relay saw | billed |
//! | --- | --- |
//! | usage reported (any status, a 500 included) | the usage, each field the largest reported, output at least the content deltas streamed |
//! | a stream cut before its final event, no usage | the estimate: input bound (or Anthropic's reported input) plus the deltas seen |
//! | an SSE event too large to parse | the larger of the reservation and what could be read; the audit line says so |
//! | Anthropic `output_tokens` missing, `null`, negative | the reservation |
//! | a complete 2xx without usage, a body too large to read, an agent that hung up mid-stream | the reservation |
//! | a refusal (non-2xx) without usage | nothing |
//!
//! Then:
//! - a response that names another model is billed at the dearer of the
//!   two prices (the reservation when the other model has no price), and
//!   [`Settled::mismatch`] says so for the alert;
//! - counts above [`MAX_BILLED_TOKENS`] are saturated there (the cost stays
//!   a number the ledger can add up) and count as an overrun;
//! - a bill above the reservation, or a stream that carried more output
//!   than reserved, is an overrun ([`Settled::overrun`]): billed as reported,
//!   and it stops priced calls for the rest of the spend day.

use super::plan::LlmPlan;
use super::relay::Observer;
use crate::config::units::Usd;
use crate::llm::{PriceTable, Usage, cost_micros};
use crate::store::{MAX_STORED_MICROS, SpendSettlement};

/// Largest token count billed for one call. A hundred times the largest
/// context window sold today (1M–10M tokens): a count above it is not a
/// bill but a broken or hostile upstream, so it is saturated here and
/// treated as an overrun.
pub const MAX_BILLED_TOKENS: u64 = 100_000_000;

/// How the relay of a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// The body ended as its protocol ends: its length was reached, or a
    /// stream's final event (`[DONE]`, `message_stop`, ...) arrived.
    Complete,
    /// The upstream broke the body off, or ended a stream without its final event.
    Cut,
    /// steward ended a stream that carried more output than was reserved.
    OutputExceeded,
    /// The agent hung up before the end.
    AgentGone,
}

/// What a priced call is billed, and what must be heard about it.
#[derive(Debug, Clone)]
pub(super) struct Settled {
    /// The settlement for the ledger (its `stop` set on an overrun).
    pub(super) spend: SpendSettlement,
    /// The usage billed (zero when the reservation or nothing was billed).
    pub(super) usage: Usage,
    /// `reported`, `estimated`, `reservation` or `none`: the audit line's `billing`.
    pub(super) basis: &'static str,
    /// Why the bill is not simply the reported usage, for the audit line.
    pub(super) notes: Vec<String>,
    /// The call used more than its reservation: why, naming provider and model.
    pub(super) overrun: Option<String>,
    /// The model the response named, when it is priced differently.
    pub(super) mismatch: Option<String>,
}

/// One reading of what the call used.
enum Reading {
    /// Usage the upstream reported.
    Reported(Usage),
    /// An estimate (a cut stream): input bound plus the deltas seen.
    Estimated(Usage),
    /// Nothing usable: the reservation is the only safe bill. The usage is
    /// what could be read, if anything, and bills when it is higher.
    Reservation(Option<Usage>, String),
}

/// What the call cost, from `observer` and how the relay ended. `None` for
/// calls that hold no reservation (unpriced endpoints).
pub(super) fn settle(
    plan: &LlmPlan,
    status: u16,
    observer: &Observer,
    ending: Ending,
    prices: &PriceTable,
) -> Option<Settled> {
    let (Some(price), Some(hold)) = (&plan.price, &plan.hold) else {
        return None;
    };
    let reservation = hold.reserve_micros;
    let mut notes = Vec::new();
    let (reading, models) = read(plan, observer, ending, &mut notes);
    let success = (200..300).contains(&status);
    let (usage, basis) = match reading {
        Reading::Reported(usage) => (Some(usage), "reported"),
        Reading::Estimated(usage) => (Some(usage), "estimated"),
        // A refusal that reports nothing generated nothing.
        Reading::Reservation(_, _) if !success => (None, "none"),
        Reading::Reservation(usage, why) => {
            notes.push(why);
            (usage, "reservation")
        }
    };
    let known = usage.is_some();
    let requested = plan.model.as_deref().unwrap_or_default();
    let mut overrun = Vec::new();
    let (usage, saturated) = usage.unwrap_or_default().saturated(MAX_BILLED_TOKENS);
    if saturated {
        overrun.push(format!(
            "reported more than {MAX_BILLED_TOKENS} tokens for one call, which no model can use (counted as \
             {MAX_BILLED_TOKENS})"
        ));
    }
    // The dearest price among the requested model and every model the
    // response named; a named model without a price bills the reservation.
    let mut micros = cost_micros(price, &usage);
    let mut mismatch = None;
    for model in models.iter().filter(|m| m.as_str() != requested) {
        match prices.lookup(model) {
            Some(other) if other == *price => {}
            Some(other) => {
                micros = micros.max(cost_micros(&other, &usage));
                mismatch = Some(format!("the response names model `{model}` (priced differently than `{requested}`)"));
            }
            None => {
                micros = micros.max(reservation);
                mismatch = Some(format!("the response names model `{model}`, which has no known price"));
            }
        }
    }
    if let Some(text) = &mismatch {
        notes.push(format!("{text}; billed at the dearer price"));
    }
    let micros = match basis {
        "none" => 0,
        "reservation" => micros.max(reservation),
        _ => micros,
    }
    .min(MAX_STORED_MICROS);
    if micros > reservation && basis != "none" {
        overrun.push(format!(
            "billed {} against a reservation of {}",
            Usd::from_micros(micros),
            Usd::from_micros(reservation)
        ));
    }
    if ending == Ending::OutputExceeded {
        overrun.push(format!(
            "streamed more than the {} output tokens reserved (max tokens); steward ended the stream",
            plan.max_output
        ));
    }
    let overrun = (!overrun.is_empty()).then(|| {
        format!(
            "provider `{}` (model `{requested}`) used more than its reservation: {}",
            plan.provider,
            overrun.join("; ")
        )
    });
    if let Some(reason) = &overrun {
        notes.push(reason.clone());
    }
    let billed = if known && basis != "none" { usage } else { Usage::default() };
    let spend = SpendSettlement {
        micros,
        input_tokens: billed.input_tokens,
        output_tokens: billed.output_tokens,
        cached_tokens: billed.cached_input_tokens,
        estimated: basis == "estimated" || basis == "reservation",
        stop: overrun.clone(),
    };
    Some(Settled { spend, usage: billed, basis, notes, overrun, mismatch })
}

/// The reading of what the call used, and the models the response named.
fn read(plan: &LlmPlan, observer: &Observer, ending: Ending, notes: &mut Vec<String>) -> (Reading, Vec<String>) {
    match observer {
        Observer::Sse(watch) => {
            let parser = watch.parser();
            let models = parser.reported_models().to_vec();
            let deltas = parser.output_tokens_seen_estimate();
            let reading = if parser.oversized_events() > 0 {
                Reading::Reservation(
                    Some(parser.usage_or_estimate(plan.input_bound)),
                    format!(
                        "{} SSE event(s) over {} MiB could not be read for usage; billed at least the reservation",
                        parser.oversized_events(),
                        crate::llm::DEFAULT_MAX_EVENT_BYTES >> 20
                    ),
                )
            } else if parser.output_unreadable() {
                Reading::Reservation(
                    None,
                    "the final output_tokens was missing, null, negative or not an integer; billed the reservation"
                        .to_owned(),
                )
            } else if let Some(mut usage) = parser.usage() {
                if usage.output_tokens < deltas {
                    notes.push(format!(
                        "the usage reported {} output tokens but the stream carried {deltas} content deltas; billed \
                         the deltas",
                        usage.output_tokens
                    ));
                    usage.output_tokens = deltas;
                }
                Reading::Reported(usage)
            } else {
                match ending {
                    Ending::Complete => Reading::Reservation(
                        None,
                        "the stream ended without reporting usage; billed the reservation".to_owned(),
                    ),
                    Ending::AgentGone => Reading::Reservation(
                        None,
                        "the agent hung up before the stream reported usage; billed the reservation".to_owned(),
                    ),
                    Ending::Cut | Ending::OutputExceeded => {
                        Reading::Estimated(parser.usage_or_estimate(plan.input_bound))
                    }
                }
            };
            (reading, models)
        }
        Observer::Peek { buf: Some(body), .. } if ending == Ending::Complete => {
            let read = Usage::read_response(plan.endpoint, body);
            let models = read.model.into_iter().collect();
            let reading = match read.usage {
                Ok(usage) => Reading::Reported(usage),
                Err(err) => Reading::Reservation(None, format!("{err}; billed the reservation")),
            };
            (reading, models)
        }
        Observer::Peek { buf: None, limit } => (
            Reading::Reservation(
                None,
                format!(
                    "the response was larger than {} MiB, so its usage was not read; billed the reservation",
                    limit >> 20
                ),
            ),
            Vec::new(),
        ),
        Observer::Peek { .. } | Observer::None => (
            Reading::Reservation(
                None,
                "the response ended before its usage could be read; billed the reservation".to_owned(),
            ),
            Vec::new(),
        ),
    }
}

#[cfg(test)]
mod tests;
