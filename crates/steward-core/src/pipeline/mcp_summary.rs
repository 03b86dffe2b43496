//! The MCP messages that are not `tools/call` (`tools/list`, resources,
//! prompts, completion, `ping`, notifications...): relayed without a call
//! of the pipeline each (they have no side effect and no limit), but not
//! unaccounted. The door counts each by server and method, and the audit
//! log gets one summary line per server per [`SUMMARY_EVERY`] with the
//! count and the errors of each method (`phase = "summary"`, `door =
//! "mcp"`, `decision = "relayed"`, `methods = {"resources/read": {"count":
//! 3, "errors": 0}}`). Shutdown writes what remains.
//!
//! The method names come from the agent: at most [`MAX_METHODS`] distinct
//! names per server are kept (later ones are counted as `(other)`), each
//! cut to [`MAX_METHOD_LEN`] bytes, so an agent inventing names cannot grow
//! steward's memory or the audit line.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::Pipeline;
use crate::audit::{AuditRecord, Phase};

/// How often the summary lines are written.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Distinct method names kept per server between two lines.
pub const MAX_METHODS: usize = 64;

/// Longest method name kept, in bytes.
pub const MAX_METHOD_LEN: usize = 100;

/// The name methods beyond [`MAX_METHODS`] are counted under.
pub const OTHER: &str = "(other)";

/// Count and errors of one method.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    count: u64,
    errors: u64,
}

/// The counts since the last line, by server then method.
#[derive(Debug, Default)]
pub(super) struct McpSummary {
    servers: Mutex<BTreeMap<String, BTreeMap<String, Tally>>>,
}

impl McpSummary {
    fn count(&self, server: &str, method: &str, failed: bool) {
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        let methods = servers.entry(server.to_owned()).or_default();
        let mut name = method;
        if name.len() > MAX_METHOD_LEN {
            let mut end = MAX_METHOD_LEN;
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name = &name[..end];
        }
        if !methods.contains_key(name) && methods.len() >= MAX_METHODS {
            name = OTHER;
        }
        let tally = methods.entry(name.to_owned()).or_default();
        tally.count += 1;
        tally.errors += u64::from(failed);
    }

    fn take(&self) -> BTreeMap<String, BTreeMap<String, Tally>> {
        std::mem::take(&mut *self.servers.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Pipeline {
    /// Counts one MCP message the door relayed for `server` that is not a
    /// `tools/call`; `failed` when its answer was an error.
    pub fn count_mcp_message(&self, server: &str, method: &str, failed: bool) {
        self.mcp_summary.count(server, method, failed);
    }

    /// Writes the summary lines every [`SUMMARY_EVERY`] until `shutdown`,
    /// then once more.
    pub async fn run_mcp_summary(self: Arc<Self>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(SUMMARY_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = every.tick() => self.flush_mcp_summary().await,
            }
        }
        self.flush_mcp_summary().await;
    }

    /// Writes one line per server counted since the last flush.
    pub(super) async fn flush_mcp_summary(&self) {
        let agent = self.live.load().agent.clone();
        for (server, methods) in self.mcp_summary.take() {
            let mut extra = serde_json::Map::new();
            let shown: serde_json::Map<String, serde_json::Value> = methods
                .iter()
                .map(|(m, t)| (m.clone(), serde_json::json!({ "count": t.count, "errors": t.errors })))
                .collect();
            extra.insert("methods".into(), shown.into());
            extra.insert("window_secs".into(), SUMMARY_EVERY.as_secs().into());
            let total: u64 = methods.values().map(|t| t.count).sum();
            let errors: u64 = methods.values().map(|t| t.errors).sum();
            let line = AuditRecord {
                ts: crate::clock::format_ts(SystemTime::now()),
                call_id: uuid::Uuid::now_v7().to_string(),
                agent: agent.clone(),
                door: "mcp".to_owned(),
                tool: None,
                upstream: server,
                method: "SUMMARY".to_owned(),
                path: String::new(),
                input_summary: format!("{total} message(s) other than tools/call, {errors} answered with an error"),
                input_sha256: String::new(),
                decision: "relayed".to_owned(),
                phase: Phase::Summary,
                reason: None,
                status: None,
                duration_ms: 0,
                attempts: 0,
                extra,
            };
            if let Err(err) = self.audit.write(&line).await {
                tracing::error!(error = %err, "could not write the MCP summary audit line");
                self.write_failed(None, Some(&err));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_counted_per_server_with_errors_and_bounded() {
        let summary = McpSummary::default();
        summary.count("a", "tools/list", false);
        summary.count("a", "tools/list", true);
        summary.count("b", "ping", false);
        let long = "é".repeat(200);
        summary.count("a", &long, false);
        for i in 0..200 {
            summary.count("a", &format!("invented/{i}"), false);
        }
        let taken = summary.take();
        assert_eq!(taken["a"]["tools/list"], Tally { count: 2, errors: 1 });
        assert_eq!(taken["b"]["ping"], Tally { count: 1, errors: 0 });
        assert_eq!(taken["a"].len(), MAX_METHODS + 1, "64 names and (other)");
        assert!(taken["a"].keys().all(|k| k.len() <= MAX_METHOD_LEN));
        assert_eq!(taken["a"][OTHER].count, 200 - (MAX_METHODS as u64 - 2));
        assert!(summary.take().is_empty(), "a flush starts a new count");
    }
}
