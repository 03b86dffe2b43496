//! The admin API: the operator's door into a running daemon, never the
//! agent's.
//!
//! JSON over HTTP/1.1 on a Unix socket, `<state>/admin.sock` (mode 0600, in
//! the 0700 state directory), authenticated by `Authorization: Bearer
//! <admin token>`, the token kept in `<state>/admin.token` (0600, created at
//! the first start, [`AdminToken`]). It is not served on the gateway's port:
//! the agent reaches steward only there, and its own token is refused here
//! with a 401 that says so. The CLI talks to it (`steward approvals`,
//! `steward undo`, ...), and the dashboard (`crate::dashboard`) calls the
//! same route functions behind its own login session.
//!
//! Each feature owns one file with its routes (`status`: `GET
//! /admin/v1/status`; `approvals`: supervised mode's requests and
//! decisions; `undo`; `kill`: stop and resume; `calls`: the journal;
//! `login`: the dashboard's one-time login codes; `mcp`: the state of the
//! `[mcp.*]` servers); [`router`] merges them
//! and puts the token check in front of all of them. Each route is a thin
//! wrapper around a `pub` function: the dashboard calls those same
//! functions in-process, under its login session, so no check exists twice. Every state-changing route is a POST with a JSON
//! body naming who acts (`by`) and how (`via`: `cli` or `dashboard`), so the
//! audit line can say it. Errors are [`ApiError`]s: a JSON object
//! `{"error": {"kind", "message", "help"}}` whose `help` names the next
//! command, like every other refusal steward prints.

pub mod approvals;
pub mod calls;
mod client;
pub mod kill;
pub mod login;
mod mcp;
pub mod operator;
mod status;
mod token;
pub mod undo;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tokio_util::sync::CancellationToken;

pub use approvals::approval_json;
pub use client::{AdminClient, ClientError};
pub use token::{ADMIN_TOKEN_PREFIX, AdminToken};

use crate::audit::AuditLog;
use crate::events::EventBus;
use crate::pipeline::Pipeline;
use crate::store::Store;

/// What every admin route can reach. Cloned per request (all fields are
/// handles).
#[derive(Clone)]
pub struct AdminState {
    /// The one pipeline: operator actions that make calls (an undo) go
    /// through it like the agent's.
    pub pipeline: Arc<Pipeline>,
    /// The store the daemon writes.
    pub store: Store,
    /// The audit log, for the lines operator actions write.
    pub audit: Arc<AuditLog>,
    /// The event bus: what a human must hear about reaches the alert sinks.
    pub events: EventBus,
    /// The agent's name, for audit lines.
    pub agent: String,
    /// The admin token requests must present.
    token: Arc<AdminToken>,
    /// The dashboard's base URL (`http://127.0.0.1:7601`), when the daemon
    /// serves one: what `POST /admin/v1/dashboard/login` answers with.
    pub dashboard_url: Option<String>,
    /// The dashboard's unused one-time login codes (hashes only).
    pub login_codes: login::LoginCodes,
    /// The `[mcp.*]` servers, for their state (`None`: a daemon without them).
    pub mcp: Option<Arc<crate::mcp::McpHub>>,
}

impl AdminState {
    /// The state of a daemon's admin API.
    pub fn new(
        pipeline: Arc<Pipeline>,
        audit: Arc<AuditLog>,
        events: EventBus,
        agent: &str,
        token: AdminToken,
    ) -> Self {
        Self {
            store: pipeline.store().clone(),
            pipeline,
            audit,
            events,
            agent: agent.to_owned(),
            token: Arc::new(token),
            dashboard_url: None,
            login_codes: login::LoginCodes::default(),
            mcp: None,
        }
    }

    /// The same state, with the daemon's `[mcp.*]` servers.
    #[must_use]
    pub fn with_mcp(mut self, hub: Arc<crate::mcp::McpHub>) -> Self {
        self.mcp = Some(hub);
        self
    }

    /// The same state, for a daemon that serves the dashboard at `url`.
    #[must_use]
    pub fn with_dashboard_url(mut self, url: String) -> Self {
        self.dashboard_url = Some(url);
        self
    }
}

/// An admin API error: the status, a machine-readable kind, what happened
/// and the next command.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable kind (`unauthorized`, `not_found`, `bad_request`, ...).
    pub kind: &'static str,
    /// What happened, for a human.
    pub message: String,
    /// What to do next.
    pub help: String,
}

impl ApiError {
    /// An error with every part given.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>, help: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), help: help.into() }
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>, help: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message, help)
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>, help: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message, help)
    }

    /// 503 `store_unavailable`, for a store that cannot answer (the detail is
    /// the caller's, already redacted).
    pub fn store(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("the store cannot answer: {detail}"),
            "run `steward doctor` to see what is wrong with the state directory",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": {"kind": self.kind, "message": self.message, "help": self.help}
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// The admin API's routes, every one behind the admin token.
pub fn router(state: AdminState) -> Router {
    routes()
        .merge(login::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// Every admin route, with no authentication: [`router`] puts the admin
/// token in front of them, the dashboard its login session.
pub fn routes() -> Router<AdminState> {
    Router::new()
        .merge(status::routes())
        .merge(kill::routes())
        .merge(calls::routes())
        .merge(approvals::routes())
        .merge(undo::routes())
        .merge(mcp::routes())
}

/// Every route, the fallback included: the admin token or 401.
async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if state.token.verify(token.as_bytes()) => next.run(request).await,
        Some(token)
            if token.starts_with(crate::secrets::AGENT_TOKEN_PREFIX) && !token.starts_with(ADMIN_TOKEN_PREFIX) =>
        {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this is the agent's token: the admin API never accepts it",
                "present the admin token from <state>/admin.token (the steward CLI does this for you)",
            )
            .into_response()
        }
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API needs `Authorization: Bearer <admin token>`",
            "run the steward CLI as the user that runs the daemon, or read <state>/admin.token",
        )
        .into_response(),
    }
}

/// The fallback of the admin API: a JSON 404 naming where the routes are.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such admin route", "the admin API serves /admin/v1/...; see the README's \"Admin API\"")
}

/// Binds `<state>/admin.sock`: a stale socket left by a crash is replaced
/// (the daemon lock proves no other daemon owns it), and the socket is made
/// 0600 before anything can connect to it (it is created inside the 0700
/// state directory).
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    // sun_path holds 108 bytes, the terminating NUL included.
    if path.as_os_str().len() > 107 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a Unix socket path is limited to 107 bytes; choose a shorter [state] dir",
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves [`router`] on `listener` until `shutdown`, then removes the socket.
pub async fn serve(
    listener: tokio::net::UnixListener,
    app: Router,
    shutdown: CancellationToken,
    path: std::path::PathBuf,
) {
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    if let Err(err) = served {
        tracing::warn!(error = %err, "the admin API stopped");
    }
    let _ = std::fs::remove_file(path);
}
