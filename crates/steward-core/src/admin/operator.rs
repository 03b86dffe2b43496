//! Who performs an operator action, and the audit line every action writes:
//! `door = "admin"`, `phase = "operator"`, the action as the method, and
//! `via` (`cli`, `dashboard`) and `by` (the CLI user, the dashboard session)
//! as extra fields.

use std::time::SystemTime;

use crate::audit::{AuditRecord, Phase};

use super::AdminState;

/// Which client an operator used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The steward CLI, on the admin socket.
    Cli,
    /// The web dashboard, under a login session.
    Dashboard,
}

impl Via {
    /// The word the audit line and the kill switch's `source` carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Cli => "cli",
            Via::Dashboard => "dashboard",
        }
    }
}

/// Who acts: the body every state-changing admin route reads.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Actor {
    /// A name for the audit line: a user name, `session 3f2a9c1d`.
    pub by: String,
    /// The client.
    pub via: Via,
}

/// Writes the audit line of an operator action. `target` is what it acted
/// on (a call id; empty for the kill switch), `reason` the operator's words
/// (redacted here). A failed write is logged: the action itself is already
/// done and recorded in the store.
pub async fn audit(state: &AdminState, action: &str, actor: &Actor, target: &str, reason: Option<&str>) {
    let mut extra = serde_json::Map::new();
    extra.insert("via".into(), actor.via.as_str().into());
    extra.insert("by".into(), state.pipeline.redact(&actor.by).into());
    let record = AuditRecord {
        ts: crate::clock::format_ts(SystemTime::now()),
        call_id: uuid::Uuid::now_v7().to_string(),
        agent: state.agent.clone(),
        door: "admin".to_owned(),
        tool: None,
        upstream: String::new(),
        method: action.to_uppercase(),
        path: target.to_owned(),
        input_summary: String::new(),
        input_sha256: String::new(),
        decision: action.to_owned(),
        phase: Phase::Operator,
        reason: reason.map(|r| state.pipeline.redact(r)),
        status: None,
        duration_ms: 0,
        attempts: 0,
        extra,
    };
    if let Err(err) = state.audit.write(&record).await {
        tracing::warn!(error = %err, action, "could not audit an operator action");
    }
}
