//! `GET /approvals`: supervised mode's pending requests, oldest first, each
//! with its full request (redacted) and its context, read through
//! [`crate::admin::approvals::pending`] (what `GET /admin/v1/approvals`
//! and `steward approvals` show); `POST /approvals/{id}/approve` (`note`)
//! and `POST /approvals/{id}/deny` (`reason`, required) call
//! [`crate::admin::approvals::decided`], the function behind the admin
//! routes and `steward approve`/`deny`.

use std::fmt::Write as _;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::Value;

use super::DashboardState;
use super::guard::Authenticated;
use super::html::{self, Chrome, api_error_page, csrf_field, esc, when};
use super::login::{field, form};
use super::overview::actor;
use crate::admin::approvals::{decided, pending};
use crate::store::Verdict;

/// A JSON value as text: strings bare, the rest as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One pending request.
fn item_html(item: &Value, csrf: &str) -> String {
    let id = text(&item["id"]);
    let mut out = String::new();
    let _ = write!(
        out,
        "<section class=\"card approval\" id=\"approval-{}\"><h2>{} <span class=\"muted\">{}</span></h2>\
         <p><code>{} {}</code> via {} to {}</p>",
        esc(&id),
        esc(&text(&item["tool"])),
        esc(&id),
        esc(&text(&item["method"])),
        esc(&text(&item["path"])),
        esc(&text(&item["door"])),
        esc(&text(&item["upstream"])),
    );
    let _ = write!(
        out,
        "<p>waiting {}s, expires {}</p><p>summary: {}</p>",
        item["age_secs"].as_i64().unwrap_or(0),
        esc(&item["expires_ms"].as_i64().map(when).unwrap_or_default()),
        esc(&text(&item["summary"]))
    );
    match item["body"].as_str() {
        Some(body) => {
            let _ = write!(
                out,
                "<details open><summary>request body (redacted)</summary><pre>{}</pre></details>",
                esc(body)
            );
        }
        None => out.push_str("<p class=\"muted\">the body is no longer held in memory (only its summary)</p>"),
    }
    let context = &item["context"];
    let _ = write!(out, "<p>calls of this tool in the last 24h: {}", context["calls_last_24h"].as_u64().unwrap_or(0));
    if let Some(max) = context["limit"]["max"].as_u64() {
        let _ = write!(
            out,
            "; limit {} of {max} per {}s",
            context["limit"]["used"].as_u64().unwrap_or(0),
            context["limit"]["per_secs"].as_u64().unwrap_or(0)
        );
    }
    out.push_str("</p>");
    if let Some(recent) = context["recent_calls"].as_array().filter(|r| !r.is_empty()) {
        out.push_str("<details><summary>recent calls of this tool</summary><table>");
        for call in recent {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td></tr>",
                esc(&call["started_ms"].as_i64().map(when).unwrap_or_default()),
                esc(&text(&call["decision"])),
                esc(&text(&call["method"])),
                esc(&text(&call["path"])),
                esc(&text(&call["summary"]))
            );
        }
        out.push_str("</table></details>");
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/approvals/{id}/approve\" class=\"inline\">{c}\
         <input type=\"text\" name=\"note\" placeholder=\"note (optional)\" maxlength=\"500\">\
         <button class=\"go\" id=\"approve-{id}\">Approve</button></form>\
         <form method=\"post\" action=\"/approvals/{id}/deny\" class=\"inline\">{c}\
         <input type=\"text\" name=\"reason\" placeholder=\"reason (told to the agent)\" required maxlength=\"500\" \
         id=\"deny-reason-{id}\"><button class=\"stop-small\" id=\"deny-{id}\">Deny</button></form></section>",
        id = esc(&id),
        c = csrf_field(csrf)
    );
    out
}

/// `GET /approvals`
pub(super) async fn page(
    State(state): State<DashboardState>,
    Extension(Authenticated(session)): Extension<Authenticated>,
) -> Response {
    let items = match pending(&state.admin).await {
        Ok(items) => items,
        Err(err) => return api_error_page(&err),
    };
    let mut body = String::from("<div id=\"approvals\">");
    if items.is_empty() {
        let mode = if state.config.supervised.enabled { "" } else { " ([supervised] is off)" };
        let _ = write!(body, "<p class=\"muted\" id=\"none-pending\">Nothing is waiting for a decision{mode}.</p>");
    }
    for item in &items {
        body.push_str(&item_html(item, &session.csrf));
    }
    body.push_str("</div>");
    let chrome = Chrome { active: Some("/approvals"), csrf: Some(&session.csrf), pending: items.len() };
    Html(html::page("Approvals", chrome, &body)).into_response()
}

async fn decide(
    state: &DashboardState,
    session: &super::session::Session,
    id: &str,
    verdict: Verdict,
    note: Option<String>,
) -> Response {
    let who = actor(session);
    match decided(&state.admin, id, verdict, &who.by, who.via.as_str(), note).await {
        Ok(_) => Redirect::to("/approvals").into_response(),
        Err(err) => api_error_page(&err),
    }
}

/// `POST /approvals/{id}/approve`
pub(super) async fn approve(
    State(state): State<DashboardState>,
    Extension(Authenticated(session)): Extension<Authenticated>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let note = field(&fields, "note").map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
    decide(&state, &session, &id, Verdict::Approve, note).await
}

/// `POST /approvals/{id}/deny`
pub(super) async fn deny(
    State(state): State<DashboardState>,
    Extension(Authenticated(session)): Extension<Authenticated>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let reason = field(&fields, "reason").map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
    decide(&state, &session, &id, Verdict::Deny, reason).await
}
