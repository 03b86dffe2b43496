//! Notices of supervised mode's new approval requests
//! ([`Event::ApprovalRequested`]): a human must decide, so every alert sink
//! hears of each request, with the exact commands to answer it.
//!
//! They are not incidents (nothing fires or resolves): the first request of
//! a tool is sent at once, and those that follow within [`BATCH_EVERY`] of
//! the tool's last notice are sent together when it has passed, so an agent
//! asking ten times a minute makes one notice a minute, not ten.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Alert, AlertStatus, Severity};
use crate::events::Event;

/// One notice per tool per this.
pub const BATCH_EVERY: Duration = Duration::from_secs(60);

/// Requests listed in one notice at most; the rest are counted (`steward
/// approvals` lists them all).
const LISTED: usize = 10;

/// One request, as the notice shows it (already redacted by the pipeline;
/// the dispatcher redacts the whole notice again).
#[derive(Debug, Clone)]
struct Requested {
    id: String,
    method: String,
    path: String,
    summary: String,
}

/// Per tool: when its last notice went out, and what waits for the next.
#[derive(Debug, Default)]
struct ToolQueue {
    last_sent_ms: Option<i64>,
    waiting: Vec<Requested>,
}

/// The batcher the alert engine feeds and drains.
#[derive(Debug, Default)]
pub struct ApprovalNotices {
    tools: BTreeMap<String, ToolQueue>,
    /// The dashboard's approvals page, when `[dashboard]` is configured.
    dashboard: Option<String>,
}

impl ApprovalNotices {
    /// Notices that also name the dashboard's approvals page of `config`
    /// (`None` without a `[dashboard]` section).
    pub fn for_config(config: &crate::config::Config) -> Self {
        let dashboard = config.dashboard.as_ref().map(|d| {
            let scheme = if d.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}/approvals", d.listen)
        });
        Self { tools: BTreeMap::new(), dashboard }
    }

    /// Takes in `event` if it is a new request.
    pub fn observe(&mut self, event: &Event) {
        if let Event::ApprovalRequested { id, tool, method, path, summary } = event {
            self.tools.entry(tool.clone()).or_default().waiting.push(Requested {
                id: id.clone(),
                method: method.clone(),
                path: path.clone(),
                summary: summary.clone(),
            });
        }
    }

    /// The notices due at `now_ms`, one per tool with waiting requests whose
    /// last notice is at least [`BATCH_EVERY`] old.
    pub fn due(&mut self, agent: &str, now_ms: i64) -> Vec<Alert> {
        let every = i64::try_from(BATCH_EVERY.as_millis()).unwrap_or(i64::MAX);
        let mut notices = Vec::new();
        for (tool, queue) in &mut self.tools {
            if queue.waiting.is_empty() || queue.last_sent_ms.is_some_and(|at| now_ms.saturating_sub(at) < every) {
                continue;
            }
            let requests = std::mem::take(&mut queue.waiting);
            queue.last_sent_ms = Some(now_ms);
            notices.push(notice(agent, tool, &requests, self.dashboard.as_deref(), now_ms));
        }
        notices
    }
}

fn notice(agent: &str, tool: &str, requests: &[Requested], dashboard: Option<&str>, now_ms: i64) -> Alert {
    let title = match requests.len() {
        1 => format!("Approval needed: a `{tool}` call"),
        n => format!("Approval needed: {n} `{tool}` calls"),
    };
    let mut message = String::from("The agent's call waits for a human (supervised mode).\n");
    for r in requests.iter().take(LISTED) {
        let id = &r.id;
        message.push_str(&format!(
            "\n{} {} {}\n  {}\n  approve: steward approve {id}\n  deny:    steward deny {id} --reason \"...\"\n",
            &id[..id.len().min(8)],
            r.method,
            r.path,
            if r.summary.is_empty() { "(no body)" } else { &r.summary },
        ));
    }
    if requests.len() > LISTED {
        message.push_str(&format!("\n...and {} more: run `steward approvals`.\n", requests.len() - LISTED));
    }
    message.push_str("\n`steward approvals` shows the full requests; nobody deciding means they expire, denied.");
    if let Some(url) = dashboard {
        message.push_str(&format!("\nDashboard: {url} (log in with `steward dashboard`)."));
    }
    Alert {
        key: format!("approval:{tool}"),
        status: AlertStatus::Firing,
        severity: Severity::Warning,
        agent: agent.to_owned(),
        title,
        message,
        since_ms: now_ms,
        at_ms: now_ms,
        repeat: 0,
        test: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested(id: &str, tool: &str) -> Event {
        Event::ApprovalRequested {
            id: id.into(),
            tool: tool.into(),
            method: "POST".into(),
            path: "/api/v1/statuses".into(),
            summary: "{\"status\":\"hi\"}".into(),
        }
    }

    #[test]
    fn the_first_request_goes_at_once_the_rest_of_the_minute_together() {
        let mut n = ApprovalNotices::default();
        n.observe(&requested("aaaa1111", "post"));
        let first = n.due("bot", 1_000);
        assert_eq!(first.len(), 1);
        assert!(first[0].message.contains("steward approve aaaa1111"), "{}", first[0].message);
        assert!(first[0].message.contains("steward deny aaaa1111 --reason"), "{}", first[0].message);
        assert!(!first[0].message.contains("Dashboard:"), "no [dashboard], no URL: {}", first[0].message);
        n.observe(&requested("bbbb2222", "post"));
        n.observe(&requested("cccc3333", "post"));
        n.observe(&requested("dddd4444", "follow"));
        let soon = n.due("bot", 30_000);
        assert_eq!(soon.len(), 1, "another tool is not held back");
        assert_eq!(soon[0].key, "approval:follow");
        let later = n.due("bot", 61_000);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].title, "Approval needed: 2 `post` calls");
        assert!(later[0].message.contains("bbbb2222") && later[0].message.contains("cccc3333"));
        assert!(n.due("bot", 200_000).is_empty(), "nothing waits");
    }

    #[test]
    fn with_a_dashboard_the_notice_names_its_approvals_page() {
        let config = crate::monitor::tests::config("[dashboard]\nlisten = \"127.0.0.1:7601\"\n");
        let mut n = ApprovalNotices::for_config(&config);
        n.observe(&requested("aaaa1111", "post"));
        let sent = n.due("bot", 1_000);
        assert!(
            sent[0].message.contains("Dashboard: http://127.0.0.1:7601/approvals (log in with `steward dashboard`)"),
            "{}",
            sent[0].message
        );
    }
}
