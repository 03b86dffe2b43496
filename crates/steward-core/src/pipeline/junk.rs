//! Requests that never became calls: no valid steward token, or a target or
//! body the front door could not read (`Refusal::is_junk`). While the kill
//! switch is engaged, an authenticated one is the stopped agent's call: it
//! is refused `killed` and journaled like every other (the pipeline's gate).
//!
//! Each is answered and counted (`steward_calls_total{decision}`), but not
//! journaled one row each nor audited one line each: 277k unauthenticated
//! requests in 10 s once grew the state dir from 172 KB to 2.1 GB. Instead the
//! audit log gets a sampled line per kind (`unauthenticated`, `bad_request`,
//! `body_timeout`), at most one per [`SAMPLE_EVERY`]: the latest request of
//! that kind as an example, with `sampled_count`, how many requests of the
//! kind it stands for (itself included) since the previous line. A flush
//! every [`SAMPLE_EVERY`] writes the count a flood's last requests left
//! pending, and shutdown writes whatever remains, so the audit log accounts
//! for every request while its size stays bounded by time, not by traffic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use http::{HeaderMap, Method, Response, Uri};
use tokio_util::sync::CancellationToken;

use super::{CallRecord, Door, ErrorShape, Pipeline, Refusal, TargetError, refusal_response};
use crate::audit::{AuditRecord, Phase};
use crate::config::LlmKind;
use crate::policy;

/// Shortest time between two sampled lines of one kind: a flood costs at
/// most a line per second per kind, whatever its rate.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Audit key carrying how many requests a sampled line stands for.
pub const SAMPLED_COUNT_KEY: &str = "sampled_count";

/// What is pending for one kind of junk.
#[derive(Debug, Default)]
struct Pending {
    /// Requests since the last line of this kind.
    count: u64,
    /// When the last line of this kind was handed out.
    last_line: Option<Instant>,
    /// The latest request of this kind, already redacted.
    example: Option<AuditRecord>,
}

/// Counts junk per kind and decides when a sampled line is due.
#[derive(Debug, Default)]
pub(super) struct JunkSampler {
    /// Keyed by the audit `decision` (the refusal reason).
    kinds: Mutex<BTreeMap<String, Pending>>,
}

impl JunkSampler {
    /// Counts `example` (a junk request's audit record); returns the line to
    /// write now when this kind had none for [`SAMPLE_EVERY`].
    pub(super) fn observe(&self, example: AuditRecord, now: Instant) -> Option<AuditRecord> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = kinds.entry(example.decision.clone()).or_default();
        pending.count += 1;
        pending.example = Some(example);
        if pending.last_line.is_some_and(|last| now.duration_since(last) < SAMPLE_EVERY) {
            return None;
        }
        take_line(pending, now)
    }

    /// The lines due at `now`: kinds with requests pending and no line for
    /// [`SAMPLE_EVERY`]; every kind with requests pending when `all`.
    pub(super) fn due(&self, now: Instant, all: bool) -> Vec<AuditRecord> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        kinds
            .values_mut()
            .filter(|p| p.count > 0 && (all || p.last_line.is_none_or(|last| now.duration_since(last) >= SAMPLE_EVERY)))
            .filter_map(|p| take_line(p, now))
            .collect()
    }
}

impl Pipeline {
    /// Answers a request whose target is not a canonical path: 401 without a
    /// valid token (an unauthenticated client learns nothing about its
    /// request), 403 `killed` (journaled: it is the agent's call) while the
    /// kill switch is engaged, else 400 `bad_request` saying which segment
    /// and why.
    pub async fn reject_target(
        &self,
        door: Door,
        method: &Method,
        target: &Uri,
        headers: &HeaderMap,
        err: &TargetError,
    ) -> Response<Body> {
        let refusal = self.gate(headers).await.err().unwrap_or_else(|| Refusal::Malformed { detail: err.to_string() });
        let record = self.describe_unread(door, method, target);
        self.refuse(record, refusal, false).await
    }

    /// The record of a request that has no canonical target: the target as
    /// received (redacted, cut, on one line) stands in for the path.
    fn describe_unread(&self, door: Door, method: &Method, target: &Uri) -> CallRecord {
        let raw = target.path_and_query().map_or("", |p| p.as_str());
        // Only the error JSON's shape depends on the provider's name here;
        // nothing is matched or forwarded from this raw reading.
        let provider = raw.strip_prefix("/llm/").and_then(|rest| rest.split(['/', '?']).next());
        let live = self.live.load_full();
        let shape = match door {
            Door::Llm => match provider.and_then(|name| live.llm.get(name)).map(|p| p.kind) {
                Some(LlmKind::Anthropic) => ErrorShape::Anthropic,
                _ => ErrorShape::OpenAi,
            },
            Door::Api | Door::Mcp => ErrorShape::Steward,
        };
        CallRecord {
            call_id: uuid::Uuid::now_v7().to_string(),
            door,
            received_at: SystemTime::now(),
            started: Instant::now(),
            tool: None,
            upstream: String::new(),
            method: method.as_str().to_owned(),
            path: policy::truncate_summary(&self.redactor.load().redact(raw)),
            input_summary: String::new(),
            input_sha256: String::new(),
            shape,
            live,
            undo_of: None,
            undo_source: None,
        }
    }

    /// Answers a junk request (see the module docs): counted, sampled into
    /// the audit log, never journaled.
    pub(super) async fn refuse_junk(&self, record: CallRecord, refusal: &Refusal) -> Response<Body> {
        let view = refusal.view();
        self.metrics.record_call(
            record.door.as_str(),
            record.tool.as_deref(),
            view.decision.as_str(),
            None,
            record.started.elapsed(),
        );
        let example = self.audit_record(
            &record,
            view.decision,
            Phase::Refused,
            Some(view.message.clone()),
            Some(view.status.as_u16()),
            0,
        );
        if let Some(line) = self.junk.observe(example, Instant::now()) {
            self.write_sampled(&line).await;
        }
        refusal_response(&view, &record.call_id, record.shape)
    }

    /// Writes the sampled lines that are due; every pending one when `all`
    /// (at shutdown, after the gateway stopped).
    pub async fn flush_junk(&self, all: bool) {
        for line in self.junk.due(Instant::now(), all) {
            self.write_sampled(&line).await;
        }
    }

    /// Flushes due sampled lines every [`SAMPLE_EVERY`] until `shutdown`.
    pub async fn run_junk_flush(self: Arc<Self>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => self.flush_junk(false).await,
            }
        }
    }

    async fn write_sampled(&self, line: &AuditRecord) {
        if let Err(err) = self.audit.write(line).await {
            tracing::error!(error = %err, "could not write a sampled audit line");
            self.write_failed(None, Some(&err));
        }
    }
}

/// The sampled line for `pending`, which starts a new count.
fn take_line(pending: &mut Pending, now: Instant) -> Option<AuditRecord> {
    let mut line = pending.example.take()?;
    line.phase = Phase::Sampled;
    line.extra.insert(SAMPLED_COUNT_KEY.into(), pending.count.into());
    pending.count = 0;
    pending.last_line = Some(now);
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn junk(decision: &str, n: u32) -> AuditRecord {
        AuditRecord {
            ts: String::new(),
            call_id: format!("call-{n}"),
            agent: "a".into(),
            door: "api".into(),
            tool: None,
            upstream: String::new(),
            method: "GET".into(),
            path: "/api/x".into(),
            input_summary: String::new(),
            input_sha256: String::new(),
            decision: decision.into(),
            phase: crate::audit::Phase::Refused,
            reason: None,
            status: Some(401),
            duration_ms: 0,
            attempts: 0,
            extra: serde_json::Map::new(),
        }
    }

    fn count(line: &AuditRecord) -> u64 {
        line.extra[SAMPLED_COUNT_KEY].as_u64().unwrap()
    }

    #[test]
    fn a_flood_costs_one_line_per_second_per_kind_and_every_request_is_counted() {
        let sampler = JunkSampler::default();
        let t0 = Instant::now();
        let first = sampler.observe(junk("unauthenticated", 0), t0).unwrap();
        assert_eq!(count(&first), 1);
        assert_eq!(first.phase, crate::audit::Phase::Sampled);
        for n in 1..=1000 {
            assert!(sampler.observe(junk("unauthenticated", n), t0 + Duration::from_micros(n.into())).is_none());
        }
        // Another kind has its own line and count.
        assert_eq!(count(&sampler.observe(junk("bad_request", 0), t0).unwrap()), 1);
        assert!(sampler.due(t0 + Duration::from_millis(500), false).is_empty(), "not due within the second");
        let due = sampler.due(t0 + SAMPLE_EVERY, false);
        assert_eq!(due.len(), 1);
        assert_eq!(count(&due[0]), 1000);
        assert_eq!(due[0].call_id, "call-1000", "the latest request is the example");
        assert!(sampler.due(t0 + 10 * SAMPLE_EVERY, true).is_empty(), "nothing left to account for");

        let later = t0 + 3 * SAMPLE_EVERY;
        assert_eq!(count(&sampler.observe(junk("unauthenticated", 7), later).unwrap()), 1);
        sampler.observe(junk("unauthenticated", 8), later);
        let rest = sampler.due(later, true);
        assert_eq!(rest.iter().map(count).collect::<Vec<_>>(), [1], "shutdown writes what is pending");
    }
}
