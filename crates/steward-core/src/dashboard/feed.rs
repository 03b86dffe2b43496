//! The live feed: `GET /feed` (the newest calls, filtered by tool, decision
//! or door through [`crate::admin::calls::calls`], the query behind `GET
//! /admin/v1/calls` and `steward last`), `GET /events` (the same rows over
//! SSE as they appear or change, plus the pending-approvals count and the
//! agent's state), and `POST /calls/{id}/undo`, which calls the admin API's
//! [`crate::admin::undo::undo_call`] (the function behind `POST
//! /admin/v1/calls/{id}/undo` and `steward undo`).
//!
//! A row is a `<details>` element: the summary line, and when opened the
//! redacted input summary, status, duration, cost, attempts and undo
//! state, with an Undo button when the call can still be undone.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use futures_util::Stream;

use super::guard::Authenticated;
use super::html::{self, Chrome, api_error_page, csrf_field, esc, when};
use super::overview::{actor, agent_state, pending_count};
use super::{DashboardState, now_ms};
use crate::admin::calls::{CallsQuery, calls};
use crate::pipeline::UndoRequest;
use crate::store::{CallRow, UndoQuery, UndoState};

/// Rows the page shows and the live feed watches.
const FEED_ROWS: u32 = 100;

/// How often the live feed looks at the journal: new calls appear within
/// a second (the bound), at the cost of one indexed query per tick.
const TICK: Duration = Duration::from_millis(400);

/// Undo state of each call id among `rows`.
async fn undo_states(state: &DashboardState, rows: &[CallRow]) -> HashMap<String, UndoState> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let query = UndoQuery { call_ids: Some(ids), ..UndoQuery::default() };
    match state.admin.store.undos(query).await {
        Ok(plans) => plans.into_iter().map(|p| (p.call_id, p.state)).collect(),
        Err(_) => HashMap::new(),
    }
}

/// One call as a `<details>` row (one line of HTML: it travels in one SSE
/// `data:` line).
fn row_html(row: &CallRow, undo: Option<UndoState>, csrf: &str) -> String {
    let mut out = String::new();
    let tool = row.tool.as_deref().unwrap_or("(unmatched)");
    let _ = write!(
        out,
        "<details class=\"call\" id=\"call-{id}\" data-tool=\"{tool}\" data-decision=\"{decision}\" \
         data-door=\"{door}\"><summary><span class=\"when\">{when}</span><span class=\"tool\">{tool}</span>\
         <span class=\"decision-{decision}\">{decision}</span><span class=\"door\">{door}</span>\
         <span class=\"path\">{method} {path}</span></summary><dl>",
        id = esc(&row.id),
        tool = esc(tool),
        decision = esc(&row.decision),
        door = esc(&row.door),
        when = esc(&when(row.started_ms)),
        method = esc(&row.method),
        path = esc(&row.path),
    );
    let dd = |out: &mut String, term: &str, value: &str| {
        let _ = write!(out, "<dt>{term}</dt><dd>{}</dd>", esc(value));
    };
    dd(&mut out, "call", &row.id);
    dd(&mut out, "input", &row.input_summary);
    dd(&mut out, "status", &row.status.map_or_else(|| "in flight".to_owned(), |s| s.to_string()));
    if let Some(reason) = &row.reason {
        dd(&mut out, "reason", reason);
    }
    dd(&mut out, "duration", &row.duration_ms.map_or_else(|| "-".to_owned(), |d| format!("{d} ms")));
    dd(&mut out, "cost", &row.cost_usd.map_or_else(|| "-".to_owned(), |c| format!("${c:.4}")));
    dd(&mut out, "attempts", &row.attempts.to_string());
    dd(&mut out, "undo", undo.map_or("none", UndoState::as_str));
    out.push_str("</dl>");
    if matches!(undo, Some(UndoState::Planned | UndoState::Failed)) {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/calls/{id}/undo\" class=\"inline\">{}<button class=\"undo\" \
             id=\"undo-{id}\">Undo</button></form>",
            csrf_field(csrf),
            id = esc(&row.id)
        );
    }
    out.push_str("</details>");
    out
}

fn filter_form(query: &CallsQuery) -> String {
    let value = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    format!(
        "<form method=\"get\" action=\"/feed\" class=\"inline\" id=\"filter\">\
         <input type=\"text\" name=\"tool\" placeholder=\"tool\" value=\"{}\">\
         <input type=\"text\" name=\"decision\" placeholder=\"decision (allowed, killed, ...)\" value=\"{}\">\
         <select name=\"door\"><option value=\"\">any door</option>{}</select><button>Filter</button></form>",
        value(&query.tool),
        value(&query.decision),
        ["api", "llm", "mcp"]
            .iter()
            .map(|d| {
                let selected = if query.door.as_deref() == Some(*d) { " selected" } else { "" };
                format!("<option{selected}>{d}</option>")
            })
            .collect::<String>()
    )
}

/// The feed's query: the page's filters, [`FEED_ROWS`] rows.
fn feed_query(mut query: CallsQuery) -> CallsQuery {
    query.limit = Some(FEED_ROWS);
    query.since_ms = None;
    query
}

/// `GET /feed`
pub(super) async fn page(
    State(state): State<DashboardState>,
    Extension(Authenticated(session)): Extension<Authenticated>,
    Query(query): Query<CallsQuery>,
) -> Response {
    let query = feed_query(query);
    let rows = match calls(&state.admin, &query).await {
        Ok(rows) => rows,
        Err(err) => return api_error_page(&err),
    };
    let undo = undo_states(&state, &rows).await;
    let mut body = filter_form(&query);
    body.push_str("<div id=\"feed\">");
    for row in &rows {
        body.push_str(&row_html(row, undo.get(&row.id).copied(), &session.csrf));
    }
    body.push_str("</div>");
    if rows.is_empty() {
        body.push_str("<p class=\"muted\" id=\"empty\">No calls yet.</p>");
    }
    let chrome = Chrome { active: Some("/feed"), csrf: Some(&session.csrf), pending: pending_count(&state).await };
    Html(html::page("Live feed", chrome, &body)).into_response()
}

/// What the live feed last sent, to send only changes.
struct Watch {
    /// The dashboard: store, sessions, shutdown.
    state: DashboardState,
    /// The public id of the session that opened the stream: it ends with it.
    session_id: String,
    /// The session's CSRF token, for the Undo forms inside rows.
    csrf: String,
    /// The page's filters.
    query: CallsQuery,
    /// Each row's last sent HTML, by call id (only rows still in the
    /// window): bounded by [`FEED_ROWS`].
    sent: HashMap<String, String>,
    /// The pending-approvals count last sent.
    pending: Option<usize>,
    /// The agent's state last sent.
    agent: Option<&'static str>,
    /// Events ready to go out.
    queue: std::collections::VecDeque<Event>,
    /// No wait before the first look: the page may be older than a tick.
    first: bool,
}

impl Watch {
    /// One look at the journal: queues the changed rows, the approvals
    /// count and the agent's state when they changed.
    async fn tick(&mut self) {
        if let Ok(mut rows) = calls(&self.state.admin, &self.query).await {
            let undo = undo_states(&self.state, &rows).await;
            // Oldest first, so the client's prepends end newest on top.
            rows.reverse();
            let mut seen = HashMap::with_capacity(rows.len());
            for row in &rows {
                let html = row_html(row, undo.get(&row.id).copied(), &self.csrf);
                if self.sent.get(&row.id) != Some(&html) {
                    self.queue.push_back(Event::default().event("call").data(html.clone()));
                }
                seen.insert(row.id.clone(), html);
            }
            self.sent = seen;
        }
        let pending = pending_count(&self.state).await;
        if self.pending != Some(pending) {
            self.pending = Some(pending);
            self.queue.push_back(Event::default().event("approvals").data(pending.to_string()));
        }
        if let Ok((word, _)) = agent_state(&self.state).await
            && self.agent != Some(word)
        {
            self.agent = Some(word);
            self.queue.push_back(Event::default().event("state").data(word));
        }
    }
}

/// `GET /events`: server-sent events `call` (a row's HTML), `approvals`
/// (the pending count) and `state` (the agent's). The stream ends when the
/// session does, or the daemon shuts down.
pub(super) async fn events(
    State(state): State<DashboardState>,
    Extension(Authenticated(session)): Extension<Authenticated>,
    Query(query): Query<CallsQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let watch = Watch {
        state,
        session_id: session.id.clone(),
        csrf: session.csrf.clone(),
        query: feed_query(query),
        sent: HashMap::new(),
        pending: None,
        agent: None,
        queue: std::collections::VecDeque::new(),
        first: true,
    };
    let stream = futures_util::stream::unfold(watch, |mut watch| async move {
        loop {
            if let Some(event) = watch.queue.pop_front() {
                return Some((Ok(event), watch));
            }
            if !watch.first {
                tokio::select! {
                    () = watch.state.shutdown.cancelled() => return None,
                    () = tokio::time::sleep(TICK) => {}
                }
            }
            watch.first = false;
            if watch.state.shutdown.is_cancelled() || !watch.state.sessions.alive(&watch.session_id, now_ms()).await {
                return None;
            }
            watch.tick().await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// `POST /calls/{id}/undo`
pub(super) async fn undo(
    State(state): State<DashboardState>,
    Extension(Authenticated(session)): Extension<Authenticated>,
    Path(id): Path<String>,
) -> Response {
    let who = actor(&session);
    let request = UndoRequest { force: false, dry_run: false, by: who.by, via: who.via.as_str().to_owned() };
    match crate::admin::undo::undo_call(&state.admin, &id, &request).await {
        Ok(report) if report.outcome == "undo_failed" => {
            html::error_page(http::StatusCode::BAD_GATEWAY, &report.message, "open the feed and try Undo again")
        }
        Ok(_) => Redirect::to("/feed").into_response(),
        Err(err) => api_error_page(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_escapes_what_the_agent_sent() {
        let row = CallRow {
            id: "c1".into(),
            started_ms: 0,
            finished_ms: Some(1),
            door: "api".into(),
            tool: Some("<post>".into()),
            upstream: "u".into(),
            method: "POST".into(),
            path: "/x?\"><script>".into(),
            loop_key: String::new(),
            input_summary: "<img src=x onerror=alert(1)>".into(),
            input_sha256: String::new(),
            decision: "allowed".into(),
            reason: None,
            status: Some(200),
            duration_ms: Some(3),
            attempts: 1,
            response_ref: None,
            cost_usd: None,
            extra_json: None,
            instance: None,
        };
        let html = row_html(&row, Some(UndoState::Planned), "tok");
        assert!(!html.contains("<script>") && !html.contains("<img") && !html.contains("<post>"), "{html}");
        assert!(html.contains("id=\"undo-c1\""), "{html}");
        assert!(!html.contains('\n'));
        let done = row_html(&row, Some(UndoState::Undone), "tok");
        assert!(!done.contains("Undo</button>"), "{done}");
    }
}
