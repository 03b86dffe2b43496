//! The undo routes (`steward undo`, and the dashboard's Undo button):
//! - `POST /admin/v1/calls/{id}/undo` `{"force","dry_run","by","via"}`: one call;
//! - `POST /admin/v1/undo` `{"tool","since_ms","force","dry_run","by","via"}`:
//!   every undoable call of a tool since a time, newest first;
//! - `GET /admin/v1/undos?tool=&since_ms=&undoable=`: the plans, newest first.
//!
//! Both POSTs answer `{"undos": [report...]}` (see
//! [`crate::pipeline::UndoReport`]); the work is the pipeline's
//! ([`crate::pipeline::Pipeline::undo_call`]): the undo is a call like any
//! other, journaled and audited with `undo_of`.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;

use super::operator::{self, Actor, Via};
use super::{AdminState, ApiError};
use crate::pipeline::{UndoError, UndoReport, UndoRequest};
use crate::store::UndoQuery;

pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/v1/calls/{id}/undo", post(undo_one))
        .route("/admin/v1/undo", post(undo_batch))
        .route("/admin/v1/undos", get(list))
}

/// The batch route's body.
#[derive(Debug, Deserialize)]
struct BatchRequest {
    tool: String,
    since_ms: i64,
    #[serde(flatten)]
    request: UndoRequest,
}

/// `GET /admin/v1/undos`'s query.
#[derive(Debug, Deserialize)]
struct ListQuery {
    tool: Option<String>,
    since_ms: Option<i64>,
    #[serde(default)]
    undoable: bool,
    #[serde(default)]
    limit: Option<u32>,
}

fn check_actor(req: &UndoRequest) -> Result<(), ApiError> {
    if req.by.trim().is_empty() {
        return Err(ApiError::bad_request("the request names nobody in `by`", "send your user name as \"by\""));
    }
    if !matches!(req.via.as_str(), "cli" | "dashboard") {
        return Err(ApiError::bad_request(
            format!("`via` is {:?}", req.via),
            "send \"via\": \"cli\" or \"via\": \"dashboard\"",
        ));
    }
    Ok(())
}

fn api_error(state: &AdminState, err: UndoError) -> ApiError {
    match &err {
        UndoError::NotFound(_) => ApiError::not_found(err.to_string(), "list the calls with `steward last`"),
        UndoError::Ambiguous { .. } => {
            ApiError::bad_request(err.to_string(), "copy the whole CALL column of `steward last`")
        }
        UndoError::NoPlan(_) => ApiError::new(
            StatusCode::CONFLICT,
            "not_undoable",
            err.to_string(),
            "`steward last --undoable` lists the calls steward can undo",
        ),
        UndoError::UnknownTool { .. } => ApiError::bad_request(err.to_string(), "name one of the tools with --tool"),
        UndoError::Store(e) => ApiError::store(state.pipeline.redact(&e.to_string())),
    }
}

fn answer(reports: Vec<UndoReport>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "undos": reports }))
}

async fn undo_one(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Json(req): Json<UndoRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(answer(vec![undo_call(&state, &id, &req).await?]))
}

/// Undoes one call (`steward undo CALL`, the dashboard's Undo button): the
/// pipeline runs the undo as a call of its own (audited with `undo_of`),
/// and an operator line records who asked and how.
pub async fn undo_call(state: &AdminState, id: &str, req: &UndoRequest) -> Result<UndoReport, ApiError> {
    check_actor(req)?;
    let report = state.pipeline.undo_call(id, req).await.map_err(|e| api_error(state, e))?;
    if !req.dry_run {
        let via = if req.via == "dashboard" { Via::Dashboard } else { Via::Cli };
        let actor = Actor { by: req.by.clone(), via };
        operator::audit(state, "undo", &actor, &report.call_id, Some(&report.outcome)).await;
    }
    Ok(report)
}

async fn undo_batch(
    State(state): State<AdminState>,
    Json(batch): Json<BatchRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_actor(&batch.request)?;
    let reports = state
        .pipeline
        .undo_batch(&batch.tool, batch.since_ms, &batch.request)
        .await
        .map_err(|e| api_error(&state, e))?;
    Ok(answer(reports))
}

async fn list(
    State(state): State<AdminState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = UndoQuery {
        tool: q.tool,
        since_ms: q.since_ms,
        undoable_only: q.undoable,
        limit: q.limit.unwrap_or(100),
        ..UndoQuery::default()
    };
    let rows = state.store.undos(query).await.map_err(|e| ApiError::store(state.pipeline.redact(&e.to_string())))?;
    Ok(Json(serde_json::json!({ "undos": rows })))
}
