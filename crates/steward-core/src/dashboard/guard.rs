//! The dashboard's front gate, run on every route (pages, form actions,
//! the SSE feed, the login page and the static assets alike):
//! 1. security headers on every answer: a strict `Content-Security-Policy`
//!    (only this origin, no inline script), `X-Frame-Options: DENY`,
//!    `nosniff`, no referrer, no caching;
//! 2. a Host allow-list (the configured address, the bound one, and
//!    `localhost`/`127.0.0.1`/`[::1]` with any port, for `ssh -L`): a DNS
//!    rebinding page names its own host and gets 403;
//! 3. any `Authorization` header is refused with 401: the dashboard knows
//!    only its session cookie, and the agent's token never works here;
//! 4. every POST (the only method that changes state; GET never does) must
//!    come with an `Origin` on the allow-list (or `Origin: null`, which
//!    browsers send with a same-origin form under `no-referrer`, together
//!    with `Sec-Fetch-Site: same-origin`), and no `Sec-Fetch-Site` saying
//!    another site sent it, else 403 (a cross-site `text/plain` form post is
//!    refused here); and a CSRF token: the
//!    session's, in `X-CSRF-Token` or a form field `csrf` (the login form
//!    uses a double-submit cookie instead, having no session yet);
//! 5. routes other than the login page and the assets need a live session:
//!    pages redirect to `/login`, the SSE feed and every POST answer 401.
//!
//! Methods other than GET, HEAD and POST are refused (405) before any
//! handler runs, so "no state change on GET" holds by construction: every
//! handler that changes state is mounted with `post` only.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderValue, Method, StatusCode, header};

use super::session::Session;
use super::{DashboardState, LOGIN_CSRF_COOKIE, SESSION_COOKIE, now_ms};

/// Largest form body the gate reads to find its CSRF field: the forms send a
/// reason and a token.
const MAX_FORM_BODY: usize = 16 * 1024;

/// Only this origin: scripts and styles from `/assets`, no inline script,
/// no frames, forms post only here, the SSE feed connects only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages a logged-out browser is sent to `/login` from.
const PAGES: &[&str] = &["/", "/feed", "/approvals", "/report"];

/// What the handlers behind the gate find in the request's extensions.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Session);

/// The gate (see the module docs); `next` runs only when every check passed.
pub async fn gate(State(state): State<DashboardState>, request: Request, next: Next) -> Response {
    let mut response = check(&state, request, next).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}

async fn check(state: &DashboardState, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !state.host_allowed(host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this dashboard answers only to its own address (Host not allowed); open the URL `steward dashboard` prints",
        );
    }
    if request.headers().contains_key(header::AUTHORIZATION) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the dashboard takes no bearer token (the agent's token never works here); log in with the URL \
             `steward dashboard` prints, or use the admin socket",
        );
    }
    let path = request.uri().path().to_owned();
    let public = path == "/login" || path.starts_with("/assets/");
    let post = request.method() == Method::POST;
    if post {
        let origin = request.headers().get(header::ORIGIN).and_then(|h| h.to_str().ok()).unwrap_or("");
        let fetch_site = request.headers().get("sec-fetch-site").and_then(|h| h.to_str().ok()).unwrap_or("");
        // Under `Referrer-Policy: no-referrer` a browser sends `Origin: null`
        // with its own form posts; it is accepted only together with the
        // browser's `Sec-Fetch-Site: same-origin` (a header no page can set).
        let same_origin_form = origin == "null" && fetch_site == "same-origin";
        if !(state.origin_allowed(origin) || same_origin_form)
            || fetch_site == "cross-site"
            || fetch_site == "same-site"
        {
            return refuse(
                StatusCode::FORBIDDEN,
                "cross-origin request refused (Origin missing or not this dashboard); use the dashboard's own forms",
            );
        }
    } else if request.method() != Method::GET && request.method() != Method::HEAD {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "the dashboard answers GET and POST only");
    }
    if post && path == "/login" {
        // The login form has no session yet: a double-submit token (the
        // cookie set with the form must equal its field). Checked even for
        // a browser that is logged in already, so a second login works.
        let expected = cookie_value(request.headers(), LOGIN_CSRF_COOKIE);
        let (request, presented) = match csrf_of(request).await {
            Ok(pair) => pair,
            Err(response) => return response,
        };
        return match (expected, presented) {
            (Some(e), Some(p)) if e.len() == 64 && e == p => next.run(request).await,
            (None, _) => refuse(
                StatusCode::FORBIDDEN,
                "the login form's cookie is missing (cookies blocked, or the form expired); open the login URL again",
            ),
            _ => refuse(
                StatusCode::FORBIDDEN,
                "the login form's CSRF token is missing or stale; open the login URL again",
            ),
        };
    }
    let session = match cookie_value(request.headers(), SESSION_COOKIE) {
        Some(value) => state.sessions.get(&value, now_ms()).await,
        None => None,
    };
    let Some(session) = session else {
        if public && !post {
            return next.run(request).await;
        }
        // Only the pages send a browser to the login page: a redirect of
        // `/favicon.ico` would load the login page behind the user's back.
        if !post && PAGES.contains(&path.as_str()) {
            return Redirect::to("/login").into_response();
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            "not logged in (or the session expired); run `steward dashboard` for a login URL",
        );
    };
    let (mut request, presented) = if post {
        match csrf_of(request).await {
            Ok(pair) => pair,
            Err(response) => return response,
        }
    } else {
        (request, None)
    };
    if post && !presented.is_some_and(|p| session.csrf_matches(&p)) {
        return refuse(StatusCode::FORBIDDEN, "CSRF token missing or wrong; reload the page and try again");
    }
    request.extensions_mut().insert(Authenticated(session));
    next.run(request).await
}

/// The CSRF token of a POST: `X-CSRF-Token`, or the `csrf` field of a form
/// body (read here, at most [`MAX_FORM_BODY`], and handed on intact).
async fn csrf_of(request: Request) -> Result<(Request, Option<String>), Response> {
    if let Some(token) = request.headers().get("x-csrf-token").and_then(|h| h.to_str().ok()) {
        let token = token.to_owned();
        return Ok((request, Some(token)));
    }
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BODY)
        .await
        .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "form too large"))?;
    let token = url::form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned());
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

/// The value of cookie `name`.
pub fn cookie_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}
