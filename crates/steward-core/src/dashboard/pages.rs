//! The pages and their form actions. Every GET only reads; every action is
//! a POST (checked by [`super::guard`]) that calls the admin API's own
//! function with the session as the actor, then redirects (303) back.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::{StatusCode, header};

use super::guard::{Authenticated, cookie_value};
use super::html::{csrf_field, esc, page, when};
use super::{DashboardState, LOGIN_CSRF_COOKIE, SESSION_COOKIE, charts, now_ms, session};
use crate::admin::calls::CallsQuery;
use crate::admin::operator::{Actor, Via};
use crate::agent_state::AgentState;
use crate::store::{CallRow, Window};

/// The actor of a session's actions.
fn actor(session: &session::Session) -> Actor {
    Actor { by: session.actor_name(), via: Via::Dashboard }
}

/// The fields of a form body.
fn form(body: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// An error page (the admin error's words, its fix included).
fn error_page(status: StatusCode, message: &str, help: &str) -> Response {
    let body = format!("<p class=\"flash bad\">{}</p><p>{}</p><p><a href=\"/\">Back</a></p>", esc(message), esc(help));
    (status, Html(page("Error", None, None, &body))).into_response()
}

impl IntoResponse for crate::admin::ApiError {
    fn into_response(self) -> Response {
        // The admin API's own answer is JSON; this impl is the admin module's.
        unreachable_json(self)
    }
}
