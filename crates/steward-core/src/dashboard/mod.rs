//! The dashboard: the operator's web page, served by the daemon on its own
//! TCP listener (`[dashboard] listen`, 127.0.0.1:7601 by default; never the
//! gateway's port), only when `[dashboard]` is configured.
//!
//! Pages (server-rendered HTML, one file each): [`overview`] (agent state,
//! the kill switch, spend and its 14-day chart, tool use against limits,
//! firing alerts, backups, credential expiry, supervised or graduated),
//! [`feed`] (the journal, live over SSE, with Undo), [`approvals`]
//! (supervised mode's pending requests, Approve and Deny) and [`report`]
//! (`steward report`'s verdict and charts); [`login`] owns the login and
//! logout flow. Every action is a plain form POST that calls the admin
//! API's own function ([`crate::admin`]: `kill::stop`, `approvals::decided`,
//! `undo::undo_call`, ...) with the session as the actor (`via =
//! "dashboard"`, `by = "session <id>"`), then redirects (303): one code
//! path, one audit line, whichever door the operator used. Pages read
//! through the same admin and store functions the CLI uses.
//!
//! Security lives in [`guard`] (Host allow-list, Origin and CSRF checks,
//! CSP, no bearer tokens, GET/HEAD/POST only) and [`session`] (sessions;
//! the one-time login codes are [`crate::admin::login`]'s).
//!
//! HTML is escaped by hand, in one place: [`html::esc`], tested, which
//! every interpolated value passes through (the page fragments are built
//! with `format!` calls whose arguments are either `esc(...)`, numbers, or
//! other fragments built the same way). A template engine's auto-escaping
//! would make the safe path the default; the price is a proc-macro crate
//! and its template dialect compiled into every build for five small pages.
//! The rule instead: no `format!` argument in this module is a string from
//! the store, the config or the request unless it is wrapped in `esc`.
//!
//! Assets (`assets/style.css`, `assets/live.js`) are `include_str!`ed into
//! the binary. JavaScript only adds live updates (plain `EventSource`);
//! every action works without it.
//!
//! The module owns the listener (plain or TLS, rustls: [`tls`]), the pages,
//! the SSE feed and the login flow. It reads the store and the config; it
//! reaches the pipeline only through [`crate::admin::AdminState`].

mod approvals;
mod assets;
mod charts;
mod feed;
pub mod guard;
mod html;
mod login;
mod overview;
mod report;
pub mod session;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::admin::AdminState;
use crate::config::Config;
use crate::secrets::Secrets;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "steward_session";
/// The login form's double-submit CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "steward_login";

/// `steward doctor`'s FAIL items (`Section: item`), which the report
/// page's readiness verdict counts: provided by the binary, as `steward
/// report` scores them, because `doctor` imports `daemon`, which starts
/// the dashboard (no module imports another around a loop). Without it the
/// verdict fails closed (a "not checked" item).
#[derive(Clone)]
pub struct DoctorFails(
    /// Scores the checklist of a config at a time.
    pub Arc<dyn Fn(Arc<Config>, std::time::SystemTime) -> BoxedFails + Send + Sync>,
);

/// The future of [`DoctorFails`].
pub type BoxedFails = std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send>>;

impl std::fmt::Debug for DoctorFails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DoctorFails")
    }
}

/// Errors starting the dashboard.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The listener could not be bound.
    #[error(
        "cannot serve the dashboard on {addr}: {source}; choose a free port in [dashboard] listen, or remove [dashboard]"
    )]
    Bind {
        /// `[dashboard] listen`
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error(
        "cannot load the dashboard's TLS {what} from {path}: {detail}; check [dashboard] tls_cert and tls_key (PEM)"
    )]
    Tls {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// What the dashboard's routes share.
#[derive(Clone)]
pub struct DashboardState(Arc<Inner>);

/// The shared part of [`DashboardState`].
pub struct Inner {
    /// The admin API's state: the same functions the JSON routes call.
    pub admin: AdminState,
    /// The config the daemon started with.
    pub config: Arc<Config>,
    /// The resolved credentials (for expiry).
    pub secrets: Arc<ArcSwap<Secrets>>,
    /// Live sessions.
    pub sessions: session::Sessions,
    /// The doctor's FAIL items for the report page's verdict.
    pub doctor: Option<DoctorFails>,
    /// Host names (lower case, IPv6 in brackets) the Host and Origin checks accept.
    hosts: Vec<String>,
    /// `http` or `https`.
    scheme: &'static str,
    /// The bound port: the only one Host and Origin may name.
    port: u16,
    /// The daemon's shutdown: the SSE feeds end with it (the server's
    /// graceful shutdown waits for open connections).
    pub shutdown: CancellationToken,
}

impl std::ops::Deref for DashboardState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl DashboardState {
    /// The state of a dashboard bound to `bound`.
    pub fn new(
        admin: AdminState,
        config: Arc<Config>,
        secrets: Arc<ArcSwap<Secrets>>,
        bound: SocketAddr,
        shutdown: CancellationToken,
        doctor: Option<DoctorFails>,
    ) -> Self {
        let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()];
        let mut add = |ip: std::net::IpAddr| {
            if !ip.is_unspecified() {
                let name = match ip {
                    std::net::IpAddr::V4(v4) => v4.to_string(),
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                };
                if !hosts.contains(&name) {
                    hosts.push(name);
                }
            }
        };
        if let Some(d) = &config.dashboard {
            add(d.listen.ip());
        }
        add(bound.ip());
        let scheme = if config.dashboard.as_ref().is_some_and(|d| d.tls.is_some()) { "https" } else { "http" };
        let sessions = session::Sessions::default();
        Self(Arc::new(Inner { admin, config, secrets, sessions, doctor, hosts, scheme, port: bound.port(), shutdown }))
    }

    /// Whether a `Host` header names this dashboard: one of the allowed
    /// names with the bound port (the port may be left out only when it is
    /// the scheme's default). A DNS rebinding page carries its own host
    /// name; a page of another local service carries another port.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let (name, port) = match host.rsplit_once(':') {
            // `[::1]:7601` splits at the last colon; a bare `[::1]` ends in `]`.
            Some((name, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => {
                (name, port.parse::<u16>().ok())
            }
            _ => (host.as_str(), Some(if self.tls() { 443 } else { 80 })),
        };
        port == Some(self.port) && !name.is_empty() && self.hosts.iter().any(|h| h == name)
    }

    /// Whether an `Origin` header is this dashboard's (scheme and host).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        match origin.split_once("://") {
            Some((scheme, rest)) => scheme == self.scheme && !rest.contains('/') && self.host_allowed(rest),
            None => false,
        }
    }

    /// Whether cookies need `Secure` (served over TLS).
    pub fn tls(&self) -> bool {
        self.scheme == "https"
    }
}

/// Unix ms now.
pub(crate) fn now_ms() -> i64 {
    crate::clock::unix_ms(std::time::SystemTime::now())
}

/// Every dashboard route, behind [`guard::gate`]. GET routes only read;
/// every route that changes state is a POST.
pub fn router(state: DashboardState) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/stop", post(overview::stop))
        .route("/resume", post(overview::resume))
        .route("/feed", get(feed::page))
        .route("/events", get(feed::events))
        .route("/calls/{id}/undo", post(feed::undo))
        .route("/approvals", get(approvals::page))
        .route("/approvals/{id}/approve", post(approvals::approve))
        .route("/approvals/{id}/deny", post(approvals::deny))
        .route("/report", get(report::page))
        .route("/login", get(login::page).post(login::login))
        .route("/logout", post(login::logout))
        .route("/assets/{name}", get(assets::asset))
        .fallback(html::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::gate))
        .with_state(state)
}

/// The base URL of a dashboard bound to `bound` (what `steward dashboard`
/// prints, followed by `/login?code=...`): the configured address, or
/// `127.0.0.1` for a wildcard one.
pub fn base_url(config: &crate::config::DashboardConfig, bound: SocketAddr) -> String {
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let host = match bound.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    format!("{scheme}://{host}:{}", bound.port())
}

/// The bound listener: plain TCP, or TLS when `[dashboard]` has a certificate.
pub struct Listener {
    tcp: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Listener {
    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Binds `[dashboard] listen` (and loads its TLS files).
pub async fn bind(config: &crate::config::DashboardConfig) -> Result<Listener, DashboardError> {
    let tls = match &config.tls {
        Some(files) => Some(tls::acceptor(files)?),
        None => None,
    };
    let tcp = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DashboardError::Bind { addr: config.listen, source })?;
    Ok(Listener { tcp, tls })
}

/// Serves [`router`] on `listener` until `shutdown`.
pub async fn serve(listener: Listener, app: Router, shutdown: CancellationToken) {
    let served = match listener.tls {
        None => axum::serve(listener.tcp, app).with_graceful_shutdown(shutdown.cancelled_owned()).await,
        Some(acceptor) => {
            axum::serve(tls::TlsListener::new(listener.tcp, acceptor), app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        }
    };
    if let Err(err) = served {
        tracing::warn!(error = %err, "the dashboard stopped");
    }
}
