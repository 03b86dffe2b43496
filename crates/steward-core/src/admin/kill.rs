//! `POST /admin/v1/stop` and `POST /admin/v1/resume`: the kill switch, as
//! `steward stop` and `steward resume` set it, for clients of the admin API
//! (the dashboard's Stop and Resume buttons). Both are audited with who
//! acted and how.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};

use super::operator::{self, Actor};
use super::{AdminState, ApiError};

pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/admin/v1/stop", post(stop_route)).route("/admin/v1/resume", post(resume_route))
}

/// The body of `POST /admin/v1/stop`.
#[derive(Debug, serde::Deserialize)]
pub struct StopRequest {
    /// Why: shown to the agent in every refusal (redacted first).
    #[serde(default)]
    pub reason: String,
    /// Who acts.
    #[serde(flatten)]
    pub actor: Actor,
}

async fn stop_route(
    State(state): State<AdminState>,
    Json(body): Json<StopRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    stop(&state, &body.reason, &body.actor).await.map(Json)
}

async fn resume_route(
    State(state): State<AdminState>,
    Json(actor): Json<Actor>,
) -> Result<Json<serde_json::Value>, ApiError> {
    resume(&state, &actor).await.map(Json)
}

/// Engages the kill switch: the next call is refused, and the supervisor
/// stops the agent. An empty reason reads "stopped by operator".
pub async fn stop(state: &AdminState, reason: &str, actor: &Actor) -> Result<serde_json::Value, ApiError> {
    let reason = match reason.trim() {
        "" => "stopped by operator".to_owned(),
        given => state.pipeline.redact(given),
    };
    let now = crate::clock::unix_ms(std::time::SystemTime::now());
    state
        .store
        .engage_kill(&reason, actor.via.as_str(), now)
        .await
        .map_err(|e| ApiError::store(state.pipeline.redact(&e.to_string())))?;
    operator::audit(state, "stop", actor, "", Some(&reason)).await;
    Ok(serde_json::json!({"kill_switch": {"engaged": true, "reason": reason}}))
}

/// Releases the kill switch, clears a crash-loop hold and lifts the day's
/// LLM spend stop: what `steward resume` does.
pub async fn resume(state: &AdminState, actor: &Actor) -> Result<serde_json::Value, ApiError> {
    let store_error = |e: crate::store::StoreError| ApiError::store(state.pipeline.redact(&e.to_string()));
    let now = crate::clock::unix_ms(std::time::SystemTime::now());
    let previous = state.store.kill_state().await.map_err(store_error)?;
    state.store.release_kill(now).await.map_err(store_error)?;
    let fatal = crate::agent_state::request_resume(&state.store, now).await.map_err(store_error)?;
    let spend_stop = state.store.lift_spend_stop().await.map_err(store_error)?;
    operator::audit(state, "resume", actor, "", None).await;
    Ok(serde_json::json!({
        "kill_switch": {"engaged": false, "was_engaged": previous.engaged},
        "crash_loop_cleared": fatal.is_some(),
        "spend_stop_lifted": spend_stop.is_some(),
    }))
}
