//! Supervised mode's approvals: `GET /admin/v1/approvals` (the pending
//! requests, oldest first, each with its full body redacted while the
//! daemon holds it, and its context: the tool's recent calls and its count
//! against its limit), `POST /admin/v1/approvals/{id}/approve` (`{"note",
//! "by", "via"}`) and `POST /admin/v1/approvals/{id}/deny` (`{"reason",
//! "by", "via"}`). `{id}` may be a unique prefix. A decision wakes the held
//! call at once; its audit line is written by the pipeline's approval watch,
//! like a decision made by another process.

use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminState, ApiError};
use crate::clock::unix_ms;
use crate::pipeline::{DecideError, decide};
use crate::store::{ApprovalRow, LastQuery, Verdict, Window};

/// Recent calls of the same tool shown with a request.
const RECENT_CALLS: u32 = 5;

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/v1/approvals", get(list))
        .route("/admin/v1/approvals/{id}/approve", post(approve))
        .route("/admin/v1/approvals/{id}/deny", post(deny))
}

/// `POST .../approve`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    note: Option<String>,
    by: String,
    via: String,
}

/// `POST .../deny`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DenyBody {
    reason: Option<String>,
    by: String,
    via: String,
}

async fn list(State(state): State<AdminState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "approvals": pending(&state).await? })))
}

/// The pending requests, oldest first, each with its full body (redacted)
/// while the daemon holds it, and its context: what `steward approvals`
/// and the dashboard's Approvals page show.
pub async fn pending(state: &AdminState) -> Result<Vec<Value>, ApiError> {
    let store_error = |e: crate::store::StoreError| ApiError::store(state.pipeline.redact(&e.to_string()));
    let rows = state.store.pending_approvals().await.map_err(store_error)?;
    let now_ms = unix_ms(SystemTime::now());
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let context = context(state, &row.tool, now_ms).await.map_err(store_error)?;
        let held = state.pipeline.approvals().request(&row.id);
        let body = held.map(|h| state.pipeline.redacted_body(&h.body));
        let mut item = approval_json(&row, now_ms);
        item["body_in_memory"] = body.is_some().into();
        item["body"] = body.into();
        item["context"] = context;
        out.push(item);
    }
    Ok(out)
}

/// The tool's recent calls and its use of its limit.
async fn context(state: &AdminState, tool: &str, now_ms: i64) -> Result<Value, crate::store::StoreError> {
    let recent = state
        .store
        .last(LastQuery { limit: RECENT_CALLS, tool: Some(tool.to_owned()), ..LastQuery::default() })
        .await?;
    let recent: Vec<Value> = recent
        .iter()
        .map(|c| {
            json!({
                "call_id": c.id, "started_ms": c.started_ms, "decision": c.decision, "status": c.status,
                "method": c.method, "path": c.path, "summary": c.input_summary,
            })
        })
        .collect();
    let count_in = |window| async move {
        state
            .store
            .tool_counts_in(window)
            .await
            .map(|counts| counts.into_iter().find(|(name, _)| name == tool).map_or(0, |(_, n)| n))
    };
    let today = count_in(Window::ending_at(now_ms, Duration::from_secs(86_400))).await?;
    let limit = match state.pipeline.tool_limit(tool) {
        Some(limit) => json!({
            "max": limit.max,
            "per_secs": limit.per.as_secs(),
            "used": count_in(Window::ending_at(now_ms, limit.per)).await?,
        }),
        None => Value::Null,
    };
    Ok(json!({ "recent_calls": recent, "calls_last_24h": today, "limit": limit }))
}

/// A stored request as JSON (no body: the store never has it).
pub fn approval_json(row: &ApprovalRow, now_ms: i64) -> Value {
    json!({
        "id": row.id,
        "tool": row.tool,
        "state": row.state,
        "age_secs": now_ms.saturating_sub(row.created_ms).max(0) / 1000,
        "created_ms": row.created_ms,
        "expires_ms": row.expires_ms,
        "door": row.door,
        "upstream": row.upstream,
        "method": row.method,
        "path": row.path,
        "summary": row.summary,
        "decided_ms": row.decided_ms,
        "decided_by": row.decided_by,
        "decided_via": row.decided_via,
        "note": row.note,
    })
}

async fn approve(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Json(body): Json<ApproveBody>,
) -> Result<Json<Value>, ApiError> {
    decided(&state, &id, Verdict::Approve, &body.by, &body.via, body.note).await
}

async fn deny(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Json(body): Json<DenyBody>,
) -> Result<Json<Value>, ApiError> {
    decided(&state, &id, Verdict::Deny, &body.by, &body.via, body.reason).await
}

/// Records a human's decision about request `prefix` (an id or a unique
/// prefix) and wakes its held call: what `steward approve`/`deny` and the
/// dashboard's buttons do. The pipeline's approval watch writes the audit
/// line, with `decided_by` and `decided_via`.
pub async fn decided(
    state: &AdminState,
    prefix: &str,
    verdict: Verdict,
    by: &str,
    via: &str,
    note: Option<String>,
) -> Result<Json<Value>, ApiError> {
    if !matches!(via, "cli" | "dashboard") {
        return Err(ApiError::bad_request(
            format!("via {via:?} is not cli or dashboard"),
            "send \"via\": \"cli\" (the steward CLI does)",
        ));
    }
    let now_ms = unix_ms(SystemTime::now());
    match decide(&state.store, prefix, verdict, by, via, note, now_ms).await {
        Ok(row) => {
            state.pipeline.approvals().decided(&row);
            Ok(Json(json!({ "approval": approval_json(&row, now_ms) })))
        }
        Err(err) => Err(api_error(state, &err)),
    }
}

fn api_error(state: &AdminState, err: &DecideError) -> ApiError {
    let message = state.pipeline.redact(&err.to_string());
    match err {
        DecideError::NotFound(_) => ApiError::not_found(message, "run `steward approvals` to list pending requests"),
        DecideError::Ambiguous { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "ambiguous",
            message,
            "type more characters of the id (`steward approvals` shows them)",
        ),
        DecideError::MissingReason => ApiError::bad_request(message, "deny with a reason: --reason \"...\""),
        DecideError::AlreadyDecided(_) | DecideError::Expired(_) => {
            ApiError::new(StatusCode::CONFLICT, "already_decided", message, "`steward last` shows what happened")
        }
        DecideError::Store(_) => ApiError::store(message),
    }
}
