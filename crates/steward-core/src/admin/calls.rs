//! `GET /admin/v1/calls`: the newest journaled calls, newest first, as
//! `steward last` shows them, filtered by tool, decision or door; the
//! dashboard's live feed reads the same query.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};

use crate::store::{CallRow, LastQuery};

use super::{AdminState, ApiError};

/// The most rows one request returns.
pub const MAX_CALLS: u32 = 500;

pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/admin/v1/calls", get(calls_route))
}

/// The query of `GET /admin/v1/calls`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct CallsQuery {
    /// At most this many (default 50, at most [`MAX_CALLS`]).
    pub limit: Option<u32>,
    /// Only this tool.
    pub tool: Option<String>,
    /// Only this decision (`allowed`, `killed`, ...).
    pub decision: Option<String>,
    /// Only this front door (`api`, `llm`, `mcp`).
    pub door: Option<String>,
    /// Only calls started at or after this time, epoch ms.
    pub since_ms: Option<i64>,
}

async fn calls_route(
    State(state): State<AdminState>,
    Query(query): Query<CallsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = calls(&state, &query).await?;
    Ok(Json(serde_json::json!({ "calls": rows })))
}

/// The calls `query` selects, newest first. The decision and door filters
/// apply to the newest [`MAX_CALLS`] rows of the tool's.
pub async fn calls(state: &AdminState, query: &CallsQuery) -> Result<Vec<CallRow>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_CALLS);
    let filtered = query.decision.is_some() || query.door.is_some();
    let rows = state
        .store
        .last(LastQuery {
            limit: if filtered { MAX_CALLS } else { limit },
            tool: query.tool.clone().filter(|t| !t.is_empty()),
            since_ms: query.since_ms,
            ..LastQuery::default()
        })
        .await
        .map_err(|e| ApiError::store(state.pipeline.redact(&e.to_string())))?;
    let keep = |row: &CallRow| {
        query.decision.as_deref().is_none_or(|d| d.is_empty() || row.decision == d)
            && query.door.as_deref().is_none_or(|d| d.is_empty() || row.door == d)
    };
    Ok(rows.into_iter().filter(keep).take(limit as usize).collect())
}
