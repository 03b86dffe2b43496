//! `GET /report`: `steward report` (the last 7 days and the readiness
//! verdict, gathered by [`crate::report::gather`] and rendered by
//! [`crate::report::text`], as the CLI prints them) with server-side SVG
//! charts: calls per day per tool, approvals, refusals, spend per day.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use super::guard::Authenticated;
use super::html::{self, Chrome, api_error_page, esc};
use super::overview::pending_count;
use super::{DashboardState, charts};

/// The report's window, as `steward report`'s default.
const WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// How long the doctor's checks (part of the verdict) may take before the
/// page is drawn without them.
const DOCTOR_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /report`
pub(super) async fn page(
    State(state): State<DashboardState>,
    Extension(Authenticated(session)): Extension<Authenticated>,
) -> Response {
    let now = SystemTime::now();
    let doctor_fails = match &state.doctor {
        Some(doctor) => match tokio::time::timeout(DOCTOR_TIMEOUT, (doctor.0)(Arc::clone(&state.config), now)).await {
            Ok(fails) => fails,
            Err(_) => vec!["doctor: did not finish in 10 s (run `steward doctor`)".to_owned()],
        },
        None => vec!["doctor: not checked by this daemon (run `steward report`)".to_owned()],
    };
    let inputs = crate::report::Inputs { now, since: WINDOW, doctor_fails };
    let report = match crate::report::gather(&state.admin.store, &state.config, inputs).await {
        Ok(report) => report,
        Err(err) => {
            return api_error_page(&crate::admin::ApiError::store(state.admin.pipeline.redact(&err.to_string())));
        }
    };
    let mut body = String::new();
    let (class, verdict) = if report.readiness.ready { ("ok", "READY") } else { ("warn", "NOT READY") };
    let _ = write!(
        body,
        "<p id=\"verdict\" class=\"state {class}\">{verdict} to run without approvals</p><div class=\"cards\">"
    );
    let mut tools: Vec<&str> = report.calls.iter().map(|c| c.tool.as_str()).collect();
    tools.sort_unstable();
    tools.dedup();
    // Every day of the window, oldest first, so an idle day shows as one.
    let window_days = u32::try_from(WINDOW.as_secs() / 86_400).unwrap_or(7);
    let day_names: Vec<String> = (0..window_days).rev().map(|back| state.config.spend.day_of(now, back)).collect();
    let days: Vec<&str> = day_names.iter().map(String::as_str).collect();
    for tool in &tools {
        let points: Vec<(String, f64)> = days
            .iter()
            .map(|day| {
                let n = report.calls.iter().filter(|c| c.tool == *tool && c.day == *day).map(|c| c.calls).sum::<u64>();
                ((*day).to_owned(), n as f64)
            })
            .collect();
        let _ = write!(
            body,
            "<section class=\"card\"><h2>Calls per day: {}</h2>{}</section>",
            esc(tool),
            charts::bars(&format!("calls per day of {tool}"), &points, |v| format!("{v} calls"))
        );
    }
    let a = &report.approvals;
    let approvals = [
        ("requested".to_owned(), a.requested as f64),
        ("granted".to_owned(), a.granted as f64),
        ("denied".to_owned(), a.denied as f64),
        ("expired".to_owned(), a.expired as f64),
        ("pending".to_owned(), a.pending as f64),
    ];
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Approvals</h2>{}</section>",
        charts::bars("approvals", &approvals, |v| format!("{v}"))
    );
    let refusals: Vec<(String, f64)> = report.refusals.iter().map(|r| (r.reason.clone(), r.count as f64)).collect();
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Refusals</h2>{}</section>",
        if refusals.is_empty() {
            "<p class=\"ok\">none</p>".to_owned()
        } else {
            charts::bars("refusals", &refusals, |v| format!("{v}"))
        }
    );
    let spend: Vec<(String, f64)> = days
        .iter()
        .map(|day| ((*day).to_owned(), report.spend.iter().filter(|s| s.day == *day).map(|s| s.usd).sum()))
        .collect();
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Spend per day</h2>{}</section></div>",
        charts::bars("spend per day", &spend, |v| format!("${v:.2}"))
    );
    let _ = write!(body, "<h2>steward report</h2><pre id=\"report-text\">{}</pre>", esc(&crate::report::text(&report)));
    let chrome = Chrome { active: Some("/report"), csrf: Some(&session.csrf), pending: pending_count(&state).await };
    Html(html::page("Report", chrome, &body)).into_response()
}
