//! The login flow. `GET /login?code=...` (the URL `steward dashboard`
//! prints) only shows a form, with a fresh double-submit CSRF token in a
//! cookie and a hidden field: a GET never changes state, so a link
//! preview or a prefetch cannot burn the code. `POST /login` exchanges the
//! code, once, for a session cookie (`HttpOnly; SameSite=Strict; Path=/`,
//! `Secure` over TLS, `Max-Age` = the session's life). `POST /logout`
//! forgets the session and clears the cookie.

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::{HeaderValue, StatusCode, header};

use super::guard::cookie_value;
use super::html::{self, Chrome, error_page, esc};
use super::{DashboardState, LOGIN_CSRF_COOKIE, SESSION_COOKIE, now_ms, session};

/// The query of `GET /login`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct LoginQuery {
    /// The one-time code.
    #[serde(default)]
    code: String,
}

/// A `Set-Cookie` value with the attributes every dashboard cookie has.
fn cookie(state: &DashboardState, name: &str, value: &str, max_age_secs: u64) -> Option<HeaderValue> {
    let secure = if state.tls() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"))
        .ok()
}

/// The fields of a form body.
pub(super) fn form(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// One field of a form body.
pub(super) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `GET /login`
pub(super) async fn page(
    State(state): State<DashboardState>,
    Query(query): Query<LoginQuery>,
    request: Request,
) -> Response {
    // One token per browser while its login cookie lives: a second load of
    // the page (another tab, a reload) keeps the first form valid.
    let token = cookie_value(request.headers(), LOGIN_CSRF_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(session::new_token);
    let code = query.code.trim();
    let body = if code.is_empty() {
        "<p>Run <code>steward dashboard</code> on the server: it prints a one-time login URL.</p>".to_owned()
    } else {
        format!(
            "<form method=\"post\" action=\"/login\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" \
             value=\"{}\"><input type=\"hidden\" name=\"code\" value=\"{}\"><button class=\"go\" id=\"login\">Log \
             in</button></form><p class=\"muted\">The code in this URL works once and for five minutes.</p>",
            esc(&token),
            esc(code)
        )
    };
    let mut response = Html(html::page("Log in", Chrome::default(), &body)).into_response();
    if code.is_empty() {
        return response;
    }
    if let Some(value) = cookie(&state, LOGIN_CSRF_COOKIE, &token, 600) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /login` (the guard checked the Origin and the double-submit token).
pub(super) async fn login(State(state): State<DashboardState>, body: Bytes) -> Response {
    let fields = form(&body);
    let code = field(&fields, "code").unwrap_or_default();
    let ttl = state.config.dashboard.as_ref().map_or(crate::config::DEFAULT_SESSION_TTL, |d| d.session_ttl);
    let Some((value, session)) = state.sessions.login(&state.admin.login_codes, code, ttl, now_ms()).await else {
        return error_page(
            StatusCode::FORBIDDEN,
            "this login code is not valid: it was used already, has expired, or was mistyped",
            "run `steward dashboard` on the server for a new login URL",
        );
    };
    tracing::info!(session = %session.id, "dashboard login");
    let mut response = Redirect::to("/").into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Some(value) = cookie(&state, SESSION_COOKIE, &value, ttl.as_secs()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    if let Some(clear) = cookie(&state, LOGIN_CSRF_COOKIE, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

/// `POST /logout`
pub(super) async fn logout(State(state): State<DashboardState>, request: Request) -> Response {
    if let Some(value) = cookie_value(request.headers(), SESSION_COOKIE) {
        state.sessions.remove(&value).await;
    }
    let mut response = Redirect::to("/login").into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Some(clear) = cookie(&state, SESSION_COOKIE, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}
