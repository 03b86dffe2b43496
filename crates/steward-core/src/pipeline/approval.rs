//! The approval step of supervised mode: a call that needs a human's
//! approval is held here, after the plan and before admission.
//!
//! This module owns:
//! - **the digest** a grant is bound to ([`digest`]): SHA-256 over the tool,
//!   upstream, method, canonical path and query, the body (RFC 8785
//!   canonical form for JSON, raw bytes otherwise) and the config's
//!   [`policy_version`]. One byte of difference is another request.
//! - **the registry** of held requests ([`Approvals`]): digest → the
//!   request's id, its full body (memory only: the store keeps the digest
//!   and the redacted summary) and a `watch` channel every call holding it
//!   waits on. An identical repeat joins the entry: no new row, and the loop
//!   breaker never sees it (it reaches admission only once released).
//! - **the hold** (`Pipeline::supervise`): precheck (kill switch, rate
//!   limit, spend: nobody is asked about a call that would be refused
//!   anyway), then join or create the request, then wait up to
//!   `[supervised] wait` for its decision. Approved: the grant is used once
//!   (`Store::release_approval`, one conditional UPDATE), and admission runs
//!   as for any call, authoritative (a kill switch engaged after the
//!   approval still refuses the call). Of several calls holding one grant
//!   only the first is released; the others start a new request.
//! - **the watch** (`Pipeline::run_approval_watch`, a daemon task): every
//!   [`POLL_EVERY`] it reads the decisions made since it last looked,
//!   whoever made them (the admin API, or `steward approve` writing the
//!   store while no daemon ran or from another process), wakes the calls
//!   holding them, and writes each decision's audit line once; every
//!   [`EXPIRE_EVERY`] it expires overdue requests (at start too: a request
//!   that expired while steward was down is expired, never approved).
//!
//! A pending row whose body is not in memory (steward restarted) stays
//! pending: the identical repeat of the call finds it by digest and
//! re-attaches its body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::plan::Plan;
use super::{Call, CallRecord, Pipeline, Refusal};
use crate::audit::{AuditRecord, Phase};
use crate::clock::unix_ms;
use crate::config::{Approval, Config};
use crate::events::Event;
use crate::store::{AdmitOutcome, ApprovalRow, ApprovalState, NewApproval};

/// How often the watch looks for decisions: a decision made by another
/// process reaches the held call within this (well under a second).
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// How often overdue requests are expired.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(5);

/// `Retry-After` of `approval_pending`: the agent's repeat is held again,
/// so a short pause is enough.
pub const RETRY_PENDING_AFTER: Duration = Duration::from_secs(5);

/// `kv` key of the watch's audit position: JSON [`AuditMark`].
pub const AUDITED_KEY: &str = "approvals.audited";

/// Decisions are re-read this far behind the newest one audited: another
/// process stamps `decided_ms` before its write commits, so a decision can
/// land with a stamp slightly older than one already seen.
const AUDIT_LAG_MS: i64 = 10_000;

/// The config's policy version: SHA-256 of what decides where a call goes
/// and which tool it is (`[[tools]]`, `[upstreams.*]`). A grant is bound to
/// it, so a reload that changes the rules voids the grants given under the
/// old ones (their calls are asked again, fail closed).
pub fn policy_version(config: &Config) -> String {
    let upstreams: Vec<(&String, &str, Option<&str>)> =
        config.upstreams.iter().map(|(name, u)| (name, u.base_url.as_str(), u.credential.as_deref())).collect();
    let text = format!("{:?}\n{upstreams:?}", config.tools);
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The digest a grant is bound to (see the module docs). Each field is
/// length-prefixed, so no two different calls share an encoding.
pub fn digest(
    tool: &str,
    upstream: &str,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    policy_version: &str,
) -> String {
    let mut hasher = Sha256::new();
    let body = canonical_body(body);
    let query = query.unwrap_or("");
    for field in [
        b"steward-approval-v1".as_slice(),
        tool.as_bytes(),
        upstream.as_bytes(),
        method.as_bytes(),
        path.as_bytes(),
        query.as_bytes(),
        body.as_slice(),
        policy_version.as_bytes(),
    ] {
        hasher.update(u64::try_from(field.len()).unwrap_or(u64::MAX).to_be_bytes());
        hasher.update(field);
    }
    hex::encode(hasher.finalize())
}

/// RFC 8785 form of a JSON body, or the bytes as sent. A JSON text whose
/// numbers a double cannot hold exactly (more than 15 significant digits)
/// stays raw: canonicalizing would make two different numbers one.
fn canonical_body(body: &[u8]) -> Vec<u8> {
    if has_long_number(body) {
        return body.to_vec();
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => serde_json_canonicalizer::to_vec(&value).unwrap_or_else(|_| body.to_vec()),
        Err(_) => body.to_vec(),
    }
}

/// Whether a number token outside the strings of `json` has more than 15
/// digits (the most a double keeps exactly).
fn has_long_number(json: &[u8]) -> bool {
    let (mut in_string, mut escaped, mut digits) = (false, false, 0_u32);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                digits = 0;
            }
            b'0'..=b'9' => {
                digits += 1;
                if digits > 15 {
                    return true;
                }
            }
            // Inside a number: sign, point, exponent.
            b'.' | b'-' | b'+' | b'e' | b'E' => {}
            _ => digits = 0,
        }
    }
    false
}

/// The body as the approver sees it: whole, with every credential value
/// (and the configured PII) redacted; binary bodies are described.
pub fn redacted_body(redactor: &redact::Redactor, body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            redactor.redact_json(&mut value);
            serde_json::to_string_pretty(&value).unwrap_or_default()
        }
        Err(_) => match std::str::from_utf8(body) {
            Ok(text) => redactor.redact(text).into_owned(),
            Err(_) => format!("<{} bytes of binary data>", body.len()),
        },
    }
}

/// What the calls holding one request are told.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Nobody decided yet.
    Pending,
    /// Approved: the first holder to use the grant is released.
    Approved,
    /// Denied, with the reason.
    Denied(String),
    /// Expired undecided.
    Expired,
    /// The request could not be recorded (fail closed).
    Failed,
}

/// A held request as the approver sees it (`GET /admin/v1/approvals`).
#[derive(Debug, Clone)]
pub struct HeldRequest {
    /// The request's id.
    pub id: String,
    /// The tool.
    pub tool: String,
    /// Front door.
    pub door: String,
    /// Upstream name.
    pub upstream: String,
    /// HTTP method.
    pub method: String,
    /// Path and redacted query.
    pub path: String,
    /// The body as the agent sent it: memory only, redacted before it is shown.
    pub body: Bytes,
    /// When it was asked, epoch ms.
    pub created_ms: i64,
    /// When it expires, epoch ms.
    pub expires_ms: i64,
}

/// One entry of the registry.
struct Held {
    request: HeldRequest,
    verdict: watch::Sender<Verdict>,
}

/// The registry of held requests (see the module docs). Shared by the
/// pipeline, its watch task and the admin API.
#[derive(Default)]
pub struct Approvals {
    /// By digest: an identical call finds its request here.
    held: Mutex<HashMap<String, Arc<Held>>>,
    /// Cancelled when the daemon drains: held calls are answered
    /// `approval_pending` at once instead of holding the shutdown for `wait`
    /// (their requests stay pending in the store).
    draining: CancellationToken,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").field("held", &self.lock().len()).finish()
    }
}

impl Approvals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Held>>> {
        // A panic while holding the lock leaves the map consistent (every
        // change is one insert or remove): keep using it.
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The held request with this id, body included.
    pub fn request(&self, id: &str) -> Option<HeldRequest> {
        self.lock().values().find(|h| h.request.id == id).map(|h| h.request.clone())
    }

    /// Tells the calls holding `row`'s request about its decision (the
    /// admin API calls this at once; the watch for decisions made elsewhere).
    pub fn decided(&self, row: &ApprovalRow) {
        let verdict = match row.state {
            ApprovalState::Pending => return,
            ApprovalState::Approved => Verdict::Approved,
            ApprovalState::Denied => Verdict::Denied(row.note.clone().unwrap_or_else(|| "no reason given".into())),
            ApprovalState::Expired => Verdict::Expired,
            // Used already: its holders (if any are left) must ask again.
            ApprovalState::Released => Verdict::Approved,
        };
        let held = self.lock().values().find(|h| h.request.id == row.id).cloned();
        if let Some(held) = held {
            held.verdict.send_if_modified(|v| {
                let changed = *v == Verdict::Pending;
                if changed {
                    *v = verdict;
                }
                changed
            });
        }
    }

    /// The entry for `digest`, or `make`'s, inserted; whether it was inserted.
    fn join_or_insert(&self, digest: &str, make: impl FnOnce() -> HeldRequest) -> (Arc<Held>, bool) {
        let mut held = self.lock();
        if let Some(existing) = held.get(digest) {
            return (Arc::clone(existing), false);
        }
        let entry = Arc::new(Held { request: make(), verdict: watch::Sender::new(Verdict::Pending) });
        held.insert(digest.to_owned(), Arc::clone(&entry));
        (entry, true)
    }

    /// Forgets `digest`'s entry if it is still request `id`.
    fn remove(&self, digest: &str, id: &str) {
        let mut held = self.lock();
        if held.get(digest).is_some_and(|h| h.request.id == id) {
            held.remove(digest);
        }
    }

    /// Forgets entries nobody can use any more: a grant lives as long as a
    /// request, so twice the request's lifetime after its creation.
    fn prune(&self, now_ms: i64) {
        self.lock().retain(|_, h| {
            let life = h.request.expires_ms.saturating_sub(h.request.created_ms);
            now_ms < h.request.expires_ms.saturating_add(life)
        });
    }
}

/// What the watch has audited: the newest decision time seen, and the ids
/// decided within [`AUDIT_LAG_MS`] of it (re-read each time).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct AuditMark {
    through_ms: i64,
    ids: Vec<String>,
}

/// A fresh request id: 128 random bits in hex, so a four-character prefix
/// is almost always unique (time-ordered ids would share their prefix).
fn new_approval_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Pipeline {
    /// The registry of held requests (for the admin API).
    pub fn approvals(&self) -> &Arc<Approvals> {
        &self.approvals
    }

    /// `body` as the approver sees it ([`redacted_body`] with the live redactor).
    pub fn redacted_body(&self, body: &[u8]) -> String {
        redacted_body(&self.redactor.load(), body)
    }

    /// The rate limit of tool `name` in the live config (the approver's context).
    pub fn tool_limit(&self, name: &str) -> Option<crate::config::RateLimit> {
        self.live.load().matcher.tool(name).and_then(|t| t.limit)
    }

    /// The approval step (see the module docs). `Ok` when the call needs no
    /// approval or its grant was just used; the caller admits it next.
    pub(super) async fn supervise(
        &self,
        call: &Call,
        record: &CallRecord,
        plan: &Plan,
        loop_key: &str,
    ) -> Result<(), Refusal> {
        let live = &record.live;
        let Some(tool) = plan.tool.as_deref() else { return Ok(()) };
        // The operator's own `steward undo` is a human decision already:
        // it is not asked again (it still goes through admission).
        if record.undo_of.is_some() {
            return Ok(());
        }
        // The graduation record is read only when it decides.
        let needed = match plan.approval {
            Approval::Never => false,
            Approval::Always => true,
            Approval::Supervised => live.supervised.enabled && !self.graduated().await?,
        };
        if !needed {
            return Ok(());
        }
        let precheck = self.store.precheck(self.admission(record, loop_key.to_owned(), Some(plan))).await;
        match precheck {
            Ok(AdmitOutcome::Admitted) => {}
            Ok(outcome) => return self.admitted(outcome, tool),
            Err(err) => {
                tracing::error!(error = %err, "cannot precheck a call needing approval; refusing it (fail closed)");
                return Err(Refusal::StoreUnavailable);
            }
        }
        let digest = digest(
            tool,
            &call.upstream,
            call.method.as_str(),
            call.path.as_str(),
            call.query.as_ref().map(super::CanonicalQuery::as_str),
            &call.body,
            &live.policy_version,
        );
        let deadline = tokio::time::Instant::now() + live.supervised.wait;
        loop {
            let held = self.hold(call, record, tool, &digest).await?;
            let id = held.request.id.clone();
            let mut verdict = held.verdict.subscribe();
            // The `Ref` a decision is read through must not live across an await.
            let wait = tokio::time::timeout_at(deadline, verdict.wait_for(|v| *v != Verdict::Pending));
            let decided = tokio::select! {
                () = self.approvals.draining.cancelled() => None,
                waited = wait => match waited {
                    Err(_) => None,
                    Ok(Err(_)) => Some(Verdict::Failed),
                    Ok(Ok(v)) => Some(v.clone()),
                },
            };
            let Some(verdict) = decided else {
                let left = Duration::from_millis(
                    u64::try_from(held.request.expires_ms.saturating_sub(unix_ms(SystemTime::now()))).unwrap_or(0),
                );
                return Err(Refusal::ApprovalPending { id, retry_after: RETRY_PENDING_AFTER.min(left) });
            };
            match verdict {
                Verdict::Pending => continue,
                Verdict::Approved => {
                    self.approvals.remove(&digest, &id);
                    match self.store.release_approval(&id, &record.call_id, unix_ms(SystemTime::now())).await {
                        Ok(true) => {
                            tracing::info!(approval = %id, call_id = %record.call_id, "approved call released");
                            return Ok(());
                        }
                        // Another holder used the grant: this call is a new request.
                        Ok(false) => continue,
                        Err(err) => {
                            tracing::error!(error = %err, "cannot release an approved call; refusing it (fail closed)");
                            return Err(Refusal::StoreUnavailable);
                        }
                    }
                }
                Verdict::Denied(reason) => {
                    self.approvals.remove(&digest, &id);
                    return Err(Refusal::ApprovalDenied { id, reason });
                }
                Verdict::Expired => {
                    self.approvals.remove(&digest, &id);
                    return Err(Refusal::ApprovalExpired { id });
                }
                Verdict::Failed => return Err(Refusal::StoreUnavailable),
            }
        }
    }

    /// Whether `steward graduate` ended supervision; a store that cannot
    /// say refuses the call (fail closed).
    async fn graduated(&self) -> Result<bool, Refusal> {
        crate::supervision::graduated(&self.store).await.map(|g| g.is_some()).map_err(|err| {
            tracing::error!(error = %err, "cannot read whether supervision graduated; refusing the call (fail closed)");
            Refusal::StoreUnavailable
        })
    }

    /// The request this call holds: the registry's entry for its digest,
    /// the stored one (steward restarted: the body is re-attached), or a
    /// new one, recorded, audited and announced.
    async fn hold(&self, call: &Call, record: &CallRecord, tool: &str, digest: &str) -> Result<Arc<Held>, Refusal> {
        let now_ms = unix_ms(SystemTime::now());
        let stored = if self.approvals.lock().contains_key(digest) {
            None
        } else {
            self.store.open_approval_for(digest, now_ms).await.map_err(|err| {
                tracing::error!(error = %err, "cannot look up an approval request; refusing the call (fail closed)");
                Refusal::StoreUnavailable
            })?
        };
        if let Some(row) = &stored
            && row.state == ApprovalState::Pending
            && row.expires_ms <= now_ms
        {
            // Overdue while steward was down or between two sweeps: expired, never approved.
            if let Err(err) = self.store.expire_approvals(now_ms).await {
                tracing::error!(error = %err, "cannot expire an overdue approval request");
            }
            return Err(Refusal::ApprovalExpired { id: row.id.clone() });
        }
        let expires = record.live.supervised.expires;
        let (held, inserted) = self.approvals.join_or_insert(digest, || HeldRequest {
            id: stored.as_ref().map_or_else(new_approval_id, |row| row.id.clone()),
            tool: tool.to_owned(),
            door: record.door.as_str().to_owned(),
            upstream: call.upstream.clone(),
            method: record.method.clone(),
            path: record.path.clone(),
            body: call.body.clone(),
            created_ms: stored.as_ref().map_or(now_ms, |row| row.created_ms),
            expires_ms: stored.as_ref().map_or_else(
                || now_ms.saturating_add(i64::try_from(expires.as_millis()).unwrap_or(i64::MAX)),
                |row| row.expires_ms,
            ),
        });
        if !inserted {
            return Ok(held);
        }
        if let Some(row) = stored {
            // Re-attached after a restart; an approval made meanwhile applies.
            tracing::info!(approval = %row.id, "re-attached the body of a pending approval request");
            self.approvals.decided(&row);
            return Ok(held);
        }
        let request = &held.request;
        let row = NewApproval {
            id: request.id.clone(),
            created_ms: request.created_ms,
            expires_ms: request.expires_ms,
            door: request.door.clone(),
            tool: request.tool.clone(),
            upstream: request.upstream.clone(),
            method: request.method.clone(),
            path: request.path.clone(),
            digest: digest.to_owned(),
            summary: record.input_summary.clone(),
        };
        if let Err(err) = self.store.create_approval(row).await {
            tracing::error!(error = %err, "cannot record an approval request; refusing the call (fail closed)");
            self.write_failed(Some(&err), None);
            held.verdict.send_replace(Verdict::Failed);
            self.approvals.remove(digest, &request.id);
            return Err(Refusal::StoreUnavailable);
        }
        let mut line =
            self.audit_record(record, crate::decision::Decision::ApprovalPending, Phase::Approval, None, None, 0);
        line.extra.insert("approval_id".into(), request.id.clone().into());
        line.extra.insert("approval_expires".into(), crate::clock::format_ts(system_time(request.expires_ms)).into());
        if let Err(err) = self.audit.write(&line).await {
            tracing::error!(error = %err, "could not audit an approval request");
            self.write_failed(None, Some(&err));
        }
        self.events.publish(Event::ApprovalRequested {
            id: request.id.clone(),
            tool: request.tool.clone(),
            method: request.method.clone(),
            path: request.path.clone(),
            summary: record.input_summary.clone(),
        });
        tracing::info!(approval = %request.id, tool, "call held for a human's approval");
        Ok(held)
    }

    /// The daemon task of the module docs: expires overdue requests at
    /// start and every [`EXPIRE_EVERY`], and every [`POLL_EVERY`] wakes the
    /// calls holding newly decided requests and audits each decision once.
    pub async fn run_approval_watch(self: Arc<Self>, shutdown: CancellationToken) {
        let mut mark = match self.store.kv_get(AUDITED_KEY).await {
            Ok(Some(text)) => serde_json::from_str(&text).unwrap_or_default(),
            Ok(None) => AuditMark::default(),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read which approval decisions were audited; reading them all");
                AuditMark::default()
            }
        };
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_expiry: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.approvals.draining.cancel();
                    return;
                }
                _ = poll.tick() => {}
            }
            let now_ms = unix_ms(SystemTime::now());
            if last_expiry.is_none_or(|at| at.elapsed() >= EXPIRE_EVERY) {
                last_expiry = Some(tokio::time::Instant::now());
                if let Err(err) = self.store.expire_approvals(now_ms).await {
                    tracing::warn!(error = %err, "cannot expire overdue approval requests; trying again");
                }
                self.approvals.prune(now_ms);
            }
            match self.store.approvals_decided_since(mark.through_ms.saturating_sub(AUDIT_LAG_MS)).await {
                Ok(rows) => self.take_decisions(&mut mark, rows, now_ms).await,
                Err(err) => tracing::warn!(error = %err, "cannot read approval decisions; trying again"),
            }
        }
    }

    /// Wakes and audits the decisions in `rows` not yet in `mark`.
    async fn take_decisions(&self, mark: &mut AuditMark, rows: Vec<ApprovalRow>, now_ms: i64) {
        let mut changed = false;
        for row in &rows {
            self.approvals.decided(row);
            if mark.ids.contains(&row.id) {
                continue;
            }
            if let Err(err) = self.audit.write(&self.decision_line(row)).await {
                tracing::error!(error = %err, approval = %row.id, "could not audit an approval decision; trying again");
                self.write_failed(None, Some(&err));
                // Not marked: the next pass writes it.
                break;
            }
            mark.ids.push(row.id.clone());
            mark.through_ms = mark.through_ms.max(row.decided_ms.unwrap_or(0));
            changed = true;
        }
        if !changed {
            return;
        }
        let floor = mark.through_ms.saturating_sub(AUDIT_LAG_MS);
        mark.ids.retain(|id| rows.iter().any(|r| &r.id == id && r.decided_ms.unwrap_or(0) >= floor));
        let text = serde_json::to_string(&*mark).unwrap_or_default();
        if let Err(err) = self.store.kv_set(AUDITED_KEY, &text, now_ms).await {
            tracing::warn!(error = %err, "cannot record which approval decisions were audited");
        }
    }

    /// The audit line of a decision: `approved`, `denied` or `expired`,
    /// with who, how, and the time it took.
    fn decision_line(&self, row: &ApprovalRow) -> AuditRecord {
        let decision = match row.state {
            ApprovalState::Approved | ApprovalState::Released => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired | ApprovalState::Pending => "expired",
        };
        let mut extra = serde_json::Map::new();
        extra.insert("approval_id".into(), row.id.clone().into());
        extra.insert("decided_by".into(), row.decided_by.clone().into());
        extra.insert("decided_via".into(), row.decided_via.clone().into());
        extra.insert("time_to_decide_ms".into(), row.time_to_decide_ms().into());
        AuditRecord {
            ts: crate::clock::format_ts(system_time(row.decided_ms.unwrap_or(row.created_ms))),
            call_id: uuid::Uuid::now_v7().to_string(),
            agent: self.live.load().agent.clone(),
            door: row.door.clone(),
            tool: Some(row.tool.clone()),
            upstream: row.upstream.clone(),
            method: row.method.clone(),
            path: row.path.clone(),
            input_summary: row.summary.clone(),
            input_sha256: String::new(),
            decision: decision.to_owned(),
            phase: Phase::Approval,
            reason: row.note.clone(),
            status: None,
            duration_ms: u64::try_from(row.time_to_decide_ms().unwrap_or(0)).unwrap_or(0),
            attempts: 0,
            extra,
        }
    }
}

fn system_time(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

mod decide;
#[cfg(test)]
mod tests;

pub use decide::{DecideError, decide};
