//! `GET /`: the overview (agent state, the kill switch, today's spend
//! against the cap and the last 14 days as a chart, each tool's use of its
//! limit, the MCP servers' states and changed tool pins, firing alerts,
//! backups and restore tests, credential expiry,
//! supervised or graduated), and its two actions, `POST /stop` and `POST
//! /resume`, which call the admin API's [`kill::stop`] and
//! [`kill::resume`] (the functions behind `POST /admin/v1/stop` and
//! `/resume`).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::guard::Authenticated;
use super::html::{Chrome, api_error_page, csrf_field, esc, when};
use super::login::{field, form};
use super::{DashboardState, charts, now_ms};
use crate::admin::kill;
use crate::admin::operator::{Actor, Via};
use crate::agent_state::{self, AgentState};
use crate::config::units::Usd;
use crate::store::{StoreError, Window};

/// Days the spend chart shows.
const SPEND_DAYS: u32 = 14;

/// The actor of a session's actions.
pub(super) fn actor(session: &super::session::Session) -> Actor {
    Actor { by: session.actor_name(), via: Via::Dashboard }
}

/// The agent's state in the words of the issue: running, restarting,
/// fatal, stopped or killed (and disabled: steward does not run it).
pub(super) async fn agent_state(state: &DashboardState) -> Result<(&'static str, Option<String>), StoreError> {
    let store = &state.admin.store;
    let kill = store.kill_state().await?;
    if kill.engaged {
        return Ok(("killed", kill.reason));
    }
    if let Some(fatal) = agent_state::read_fatal(store).await? {
        return Ok(("fatal", Some(fatal.reason)));
    }
    if state.config.agent.process.is_none() {
        return Ok(("disabled", Some("no [agent] command: steward does not run the agent".to_owned())));
    }
    let status = agent_state::read_status(store).await?;
    Ok(match status {
        Some(s) => {
            let word = match s.state {
                AgentState::Running => "running",
                AgentState::Starting | AgentState::Backoff => "restarting",
                AgentState::Fatal => "fatal",
                AgentState::Stopped => "stopped",
                AgentState::Disabled => "disabled",
            };
            (word, s.reason)
        }
        None => ("stopped", None),
    })
}

/// The number of pending approvals (the nav badge).
pub(super) async fn pending_count(state: &DashboardState) -> usize {
    state.admin.store.pending_approvals().await.map_or(0, |rows| rows.len())
}

/// `GET /`
pub(super) async fn page(
    State(state): State<DashboardState>,
    Extension(Authenticated(session)): Extension<Authenticated>,
) -> Response {
    match body(&state).await {
        Ok(body) => {
            let chrome = Chrome { active: Some("/"), csrf: Some(&session.csrf), pending: pending_count(&state).await };
            let body = format!("{}{body}", kill_switch_forms(&session.csrf));
            Html(super::html::page("Overview", chrome, &body)).into_response()
        }
        Err(err) => api_error_page(&crate::admin::ApiError::store(state.admin.pipeline.redact(&err.to_string()))),
    }
}

fn kill_switch_forms(csrf: &str) -> String {
    format!(
        "<section class=\"card\"><h2>Kill switch</h2>\
         <form method=\"post\" action=\"/stop\" class=\"inline\">{c}\
         <input type=\"text\" name=\"reason\" id=\"stop-reason\" placeholder=\"reason (shown to the agent)\" maxlength=\"500\">\
         <button class=\"stop\" id=\"stop\">Stop</button></form>\
         <form method=\"post\" action=\"/resume\" class=\"inline\">{c}<button class=\"go\" id=\"resume\">Resume</button></form>\
         </section>",
        c = csrf_field(csrf)
    )
}

async fn body(state: &DashboardState) -> Result<String, StoreError> {
    let store = &state.admin.store;
    let config = &state.config;
    let now = SystemTime::now();
    let now_ms = now_ms();
    let mut out = String::from("<div class=\"cards\">");

    let (word, reason) = agent_state(state).await?;
    let kill = store.kill_state().await?;
    let _ = write!(
        out,
        "<section class=\"card\"><h2>Agent {}</h2><p id=\"agent-state\" class=\"state {word}\">{word}</p>",
        esc(&config.agent.name)
    );
    if let Some(reason) = reason {
        let _ = write!(out, "<p class=\"muted\">{}</p>", esc(&reason));
    }
    if kill.engaged {
        let _ = write!(
            out,
            "<p class=\"bad\">Every call is refused since {} ({}).</p>",
            esc(&when(kill.changed_ms)),
            esc(kill.source.as_deref().unwrap_or("?"))
        );
    }
    out.push_str("</section>");

    // Spend.
    let today = config.spend.day_of(now, 0);
    let spent = store.spend_total(&today).await?;
    let cap = config.spend.daily_cap();
    let first = config.spend.day_of(now, SPEND_DAYS - 1);
    let rows = store.spend_by_day(&first, &today).await?;
    let points: Vec<(String, f64)> = (0..SPEND_DAYS)
        .rev()
        .map(|back| {
            let day = config.spend.day_of(now, back);
            let micros: u64 =
                rows.iter().filter(|r| r.day == day).map(|r| r.settled_micros.saturating_add(r.reserved_micros)).sum();
            (day, micros as f64 / 1_000_000.0)
        })
        .collect();
    let cap_text = cap.map_or_else(|| "no cap".to_owned(), |c| format!("of {c} cap"));
    let _ = write!(
        out,
        "<section class=\"card\"><h2>Spend today</h2><p id=\"spend\"><strong>{}</strong> {}</p>{}</section>",
        esc(&Usd::from_micros(spent).to_string()),
        esc(&cap_text),
        charts::bars("LLM spend per day, last 14 days", &points, |v| format!("${v:.2}"))
    );

    // Tools against their limits.
    out.push_str("<section class=\"card\"><h2>Tools</h2><table><tr><th>tool</th><th>used</th><th>limit</th></tr>");
    for tool in &config.tools {
        match tool.limit {
            Some(limit) => {
                let counts = store.tool_counts_in(Window::ending_at(now_ms, limit.per)).await?;
                let used = counts.iter().find(|(name, _)| name == &tool.name).map_or(0, |(_, n)| *n);
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{used}</td><td>{} per {}</td></tr>",
                    esc(&tool.name),
                    limit.max,
                    esc(&humane(limit.per))
                );
            }
            None => {
                let counts = store.tool_counts_in(Window::ending_at(now_ms, Duration::from_secs(3600))).await?;
                let used = counts.iter().find(|(name, _)| name == &tool.name).map_or(0, |(_, n)| *n);
                let _ = write!(out, "<tr><td>{}</td><td>{used} in 1h</td><td>no limit</td></tr>", esc(&tool.name));
            }
        }
    }
    out.push_str("</table></section>");

    // MCP servers: the state the daemon published, and tools refused until trusted.
    if !config.mcp.is_empty() {
        let states = crate::store::mcp_servers::all(store).await?;
        let changed = crate::store::pins::changed(store).await?;
        out.push_str(
            "<section class=\"card\" id=\"mcp\"><h2>MCP servers</h2><table><tr><th>server</th><th>state</th></tr>",
        );
        for name in config.mcp.keys() {
            let (state, reason) = states.get(name).map_or(("idle", None), |r| (r.state.as_str(), r.reason.as_deref()));
            let class = match state {
                "running" | "reachable" => "ok",
                "fatal" | "unreachable" => "bad",
                _ => "muted",
            };
            let reason = reason.map(|r| format!(": {}", esc(r))).unwrap_or_default();
            let _ = write!(out, "<tr><td>{}</td><td class=\"{class}\">{}{reason}</td></tr>", esc(name), esc(state));
            let tools: Vec<&str> = changed.iter().filter(|(s, _, _)| s == name).map(|(_, t, _)| t.as_str()).collect();
            if !tools.is_empty() {
                let _ = write!(
                    out,
                    "<tr><td></td><td class=\"bad\">changed tool definitions, refused until trusted: {} \
                     (<code>steward mcp trust {}</code>)</td></tr>",
                    esc(&tools.join(", ")),
                    esc(name)
                );
            }
        }
        out.push_str("</table></section>");
    }

    // Alerts.
    let firing = crate::monitor::engine::read_firing(store).await?;
    out.push_str("<section class=\"card\"><h2>Alerts</h2>");
    if firing.is_empty() {
        out.push_str("<p class=\"ok\">none firing</p>");
    } else {
        out.push_str("<ul>");
        for alert in &firing {
            let _ = write!(out, "<li class=\"bad\">{}</li>", esc(&alert.title));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");

    // Backups.
    let health = crate::backup::health::health(store, now_ms).await?;
    out.push_str("<section class=\"card\"><h2>Backups</h2>");
    match health.last_success_ms {
        Some(ms) => {
            let class = if health.overdue || health.failing { "warn" } else { "ok" };
            let _ = write!(out, "<p class=\"{class}\">last backup {}</p>", esc(&when(ms)));
        }
        None if config.backup.is_some() => out.push_str("<p class=\"warn\">no backup yet</p>"),
        None => out.push_str("<p class=\"muted\">no [backup] configured</p>"),
    }
    if let Some((ms, detail)) = &health.last_failure {
        let _ = write!(out, "<p class=\"bad\">last failure {}: {}</p>", esc(&when(*ms)), esc(detail));
    }
    match health.last_restore_test {
        Some((ms, true)) => {
            let _ = write!(out, "<p class=\"ok\">last restore test {} passed</p>", esc(&when(ms)));
        }
        Some((ms, false)) => {
            let _ = write!(out, "<p class=\"bad\">last restore test {} FAILED</p>", esc(&when(ms)));
        }
        None => out.push_str("<p class=\"muted\">no restore test yet</p>"),
    }
    out.push_str("</section>");

    // Credentials.
    out.push_str("<section class=\"card\"><h2>Credentials</h2><table>");
    let secrets = state.secrets.load();
    for name in config.credentials.keys() {
        let text = match secrets.expiry(name) {
            Some((at, _)) => {
                let left =
                    at.duration_since(now).map_or(-1, |d| i64::try_from(d.as_secs() / 86_400).unwrap_or(i64::MAX));
                let class = if left < 0 {
                    "bad"
                } else if left < 14 {
                    "warn"
                } else {
                    "ok"
                };
                let words = if left < 0 { "EXPIRED".to_owned() } else { format!("{left} days left") };
                format!("<span class=\"{class}\">{words}</span> ({})", esc(&when(crate::clock::unix_ms(at))))
            }
            None => "<span class=\"muted\">no known expiry</span>".to_owned(),
        };
        let _ = write!(out, "<tr><td>{}</td><td>{text}</td></tr>", esc(name));
    }
    out.push_str("</table></section>");

    // Supervised mode.
    let supervision = crate::supervision::read(store).await?;
    let mode = match (&supervision.graduated, config.supervised.enabled) {
        (Some(g), _) => format!("graduated {} by {}", esc(&when(g.at_ms)), esc(&g.by)),
        (None, true) => "supervised: side-effect calls wait for approval".to_owned(),
        (None, false) => "autonomous ([supervised] is off)".to_owned(),
    };
    let _ = write!(out, "<section class=\"card\"><h2>Mode</h2><p id=\"mode\">{mode}</p></section>");
    out.push_str("</div>");
    Ok(out)
}

/// `3600s` as `1h`, `86400s` as `1d`.
fn humane(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `POST /stop`: `reason`.
pub(super) async fn stop(
    State(state): State<DashboardState>,
    Extension(Authenticated(session)): Extension<Authenticated>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let reason = field(&fields, "reason").unwrap_or_default();
    match kill::stop(&state.admin, reason, &actor(&session)).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(err) => api_error_page(&err),
    }
}

/// `POST /resume`
pub(super) async fn resume(
    State(state): State<DashboardState>,
    Extension(Authenticated(session)): Extension<Authenticated>,
) -> Response {
    match kill::resume(&state.admin, &actor(&session)).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(err) => api_error_page(&err),
    }
}
