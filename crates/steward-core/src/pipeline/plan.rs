//! Per-door decisions made before admission: which tool a call is, its
//! limit and retry policy, where it is forwarded, what body goes out, and
//! for priced LLM calls the worst-case spend to reserve.
//!
//! This is where the front doors differ; everything before (authentication,
//! the kill switch) and after (admission, forwarding, recording) is shared.
//! A refusal here is never `killed`: the gate decided the kill switch before
//! planning began.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;

use super::{Call, CallRecord, Door, Pipeline, Refusal};
use crate::config::{Approval, LlmKind, RateLimit, RetryPolicy, UndoCall, UndoSpec};
use crate::llm::{Endpoint, LlmRequest, ModelPrice};
use crate::policy::{self, Identified};
use crate::store::SpendHold;

/// Anthropic's API version sent when the agent's client sent none: the one
/// every current SDK pins.
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// What the pipeline decided for one call before admission.
#[derive(Debug)]
pub(super) struct Plan {
    /// Tool name for the journal, limits and the loop breaker.
    pub(super) tool: Option<String>,
    /// Persistent window, if the tool has one.
    pub(super) limit: Option<RateLimit>,
    /// When a failed attempt may be repeated.
    pub(super) retry: RetryPolicy,
    /// The forwarder's key for the upstream.
    pub(super) forward_key: String,
    /// The body that goes upstream (LLM requests may be rewritten).
    pub(super) body: Bytes,
    /// LLM specifics; `None` for the API door.
    pub(super) llm: Option<LlmPlan>,
    /// When the call waits for a human (the tool's `approval`; LLM and
    /// unmatched calls never do).
    pub(super) approval: Approval,
    /// The tool's declared undo and its `match` path pattern, when it has one.
    pub(super) undo: Option<(UndoCall, String)>,
}

/// A planned LLM call.
#[derive(Debug, Clone)]
pub(super) struct LlmPlan {
    /// Which endpoint: decides the usage shape.
    pub(super) endpoint: Endpoint,
    /// Requested model.
    pub(super) model: Option<String>,
    /// Streaming request.
    pub(super) stream: bool,
    /// Price of the model; `None` for unpriced endpoints.
    pub(super) price: Option<ModelPrice>,
    /// steward added `stream_options.include_usage`: the extra usage chunk is hidden from the client.
    pub(super) include_usage_added: bool,
    /// Worst-case input tokens, for billing a cut stream.
    pub(super) input_bound: u64,
    /// Output tokens reserved (max tokens × choices): a stream that carries
    /// more is ended, since the provider is billing past the reservation.
    pub(super) max_output: u64,
    /// `[llm.NAME]` the call goes to, named in overrun alerts.
    pub(super) provider: String,
    /// Reservation against the cap, for priced calls.
    pub(super) hold: Option<SpendHold>,
}

/// The forwarder key of an upstream: the doors have separate namespaces, so
/// `[upstreams.openai]` and `[llm.openai]` can coexist.
pub(super) fn forward_key(door: Door, name: &str) -> String {
    format!("{}/{name}", door.as_str())
}

impl Pipeline {
    /// Refuses a call whose upstream needs a credential that has expired at
    /// the call's arrival. Checked per call against the live secrets, so a
    /// reload with a fresh token lifts it at once.
    fn check_credential(&self, record: &CallRecord, forward_key: &str, call: &Call) -> Result<(), Refusal> {
        let Some(credential) = record.live.forwarder.credential_of(forward_key) else { return Ok(()) };
        let secrets = self.secrets.load();
        let Some((expires_at, _)) = secrets.expiry(credential) else { return Ok(()) };
        if expires_at > call.received_at {
            return Ok(());
        }
        Err(Refusal::CredentialExpired {
            credential: credential.to_owned(),
            expired_on: crate::clock::format_day(expires_at),
        })
    }

    /// Plans an `/api/{upstream}` call: the tool from the `[[tools]]` rules.
    pub(super) fn plan_api(&self, call: &Call, record: &CallRecord) -> Result<Plan, Refusal> {
        let forward_key = forward_key(Door::Api, &call.upstream);
        let live = &record.live;
        if !live.forwarder.has_upstream(&forward_key) {
            return Err(Refusal::UnknownUpstream { name: call.upstream.clone() });
        }
        let tool = match live.matcher.identify(&call.upstream, call.method.as_str(), &call.path) {
            Identified::Tool(tool) => Some(tool),
            Identified::UnmatchedAllowed => None,
            Identified::UnmatchedDenied => {
                return Err(Refusal::Unmatched { route: format!("{} {}", call.method, record.path) });
            }
        };
        if let Some(mark) = &call.undo
            && tool.map(|t| t.name.as_str()) != Some(mark.tool.as_str())
        {
            let found = tool.map_or_else(|| "no tool".to_owned(), |t| format!("tool `{}`", t.name));
            let detail = format!(
                "the undo is planned as a call of tool `{}`, but {} {} is {found}; fix the undo's path or the tools' match",
                mark.tool, call.method, record.path
            );
            return Err(Refusal::BadRequest { detail });
        }
        self.check_credential(record, &forward_key, call)?;
        let retry = match tool {
            Some(tool) => tool.retry,
            None if call.method.is_idempotent() => RetryPolicy::Idempotent,
            None => RetryPolicy::Never,
        };
        Ok(Plan {
            tool: tool.map(|t| t.name.clone()),
            // `steward undo --force` passes the undo tool's limit (the undo records it).
            limit: tool.and_then(|t| t.limit).filter(|_| !call.undo.as_ref().is_some_and(|m| m.force)),
            retry,
            forward_key,
            body: call.body.clone(),
            llm: None,
            approval: tool.map_or(Approval::Never, |t| t.approval),
            // An undo's own calls record no undo plan of their own.
            undo: match tool.and_then(|t| t.undo.as_ref()) {
                Some(UndoSpec::Call(spec)) if call.undo.is_none() => {
                    Some((spec.clone(), tool.map(|t| t.path.clone()).unwrap_or_default()))
                }
                _ => None,
            },
        })
    }

    /// Plans an `/llm/{provider}` call: every endpoint passes; generation
    /// endpoints need a known price and reserve their worst case.
    pub(super) fn plan_llm(&self, call: &mut Call, record: &mut CallRecord) -> Result<Plan, Refusal> {
        let live = Arc::clone(&record.live);
        let Some(provider) = live.llm.get(&call.upstream) else {
            return Err(Refusal::UnknownUpstream { name: call.upstream.clone() });
        };
        self.check_credential(record, &forward_key(Door::Llm, &call.upstream), call)?;
        let request = LlmRequest::inspect(provider.kind, &call.path, &call.body)
            .map_err(|e| Refusal::BadRequest { detail: e.to_string() })?;
        let endpoint = request.endpoint();
        if provider.kind == LlmKind::Anthropic && !call.headers.contains_key("anthropic-version") {
            call.headers.insert("anthropic-version", HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION));
        }
        // Prompts are never logged raw: only the last user message, redacted
        // and truncated (the input hash covers the rest).
        record.input_summary =
            request.summary().map(|s| policy::truncate_summary(&self.redactor.load().redact(s))).unwrap_or_default();
        let tool = format!("{}:{}", call.upstream, endpoint.as_str());
        let default_max = live.spend.default_max_output_tokens;
        let price = match (endpoint.is_priced(), request.model()) {
            (false, _) => None,
            (true, Some(model)) => match live.prices.lookup(model) {
                Some(price) => Some(price),
                None => {
                    // `steward last` shows the endpoint and, first in the summary, the model refused.
                    record.tool = Some(tool);
                    let summary = format!("model {model}: {}", request.summary().unwrap_or_default());
                    record.input_summary = policy::truncate_summary(&self.redactor.load().redact(&summary));
                    return Err(Refusal::UnknownPrice { model: model.to_owned() });
                }
            },
            (true, None) => {
                return Err(Refusal::BadRequest {
                    detail: format!("a {} request must name its `model`", endpoint.as_str()),
                });
            }
        };
        let hold = price.as_ref().map(|price| SpendHold {
            day: live.spend.day_of(record.received_at, 0),
            provider: call.upstream.clone(),
            model: request.model().unwrap_or_default().to_owned(),
            reserve_micros: request.worst_case_micros(price, default_max),
            cap_micros: live.spend.daily_cap().map(|c| c.micros()),
        });
        let input_bound = price.as_ref().map_or(0, |p| request.input_bound().tokens(p));
        let body = match request.rewrite(default_max) {
            Some(rewritten) => Bytes::from(rewritten),
            None => call.body.clone(),
        };
        Ok(Plan {
            tool: Some(tool),
            limit: None,
            // A generation costs money whether or not its answer arrived: only
            // connect failures (nothing sent) are retried.
            retry: RetryPolicy::Never,
            forward_key: forward_key(Door::Llm, &call.upstream),
            body,
            undo: None,
            llm: Some(LlmPlan {
                endpoint,
                model: request.model().map(str::to_owned),
                stream: request.stream(),
                price,
                include_usage_added: request.include_usage_added(),
                input_bound,
                max_output: request.max_output_bound(default_max),
                provider: call.upstream.clone(),
                hold,
            }),
            approval: Approval::Never,
        })
    }
}
