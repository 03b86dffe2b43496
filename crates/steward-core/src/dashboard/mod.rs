//! The dashboard: the operator's web page, served by the daemon on its own
//! TCP listener (`[dashboard] listen`, 127.0.0.1:7601 by default; never the
//! gateway's port), only when `[dashboard]` is configured.
//!
//! It mounts the admin JSON API ([`crate::admin::routes`]) behind a login
//! session instead of the admin token, and adds server-rendered pages:
//! overview (agent state, kill switch, spend and its 14-day chart, tool use,
//! alerts, backups, credential expiry), the live feed (SSE), and the login
//! page. Every action is a plain form POST that calls the same function the
//! admin route does, audited `via = "dashboard"` with the session's name;
//! JavaScript (`assets/live.js`, plain `EventSource`) only adds live
//! updates.
//!
//! Security lives in [`guard`] (Host allow-list, Origin and CSRF checks,
//! CSP, no bearer tokens) and [`session`] (one-time login codes, expiring
//! sessions). HTML is escaped by hand in [`html`]: four small pages do not
//! need a template engine's proc macros compiled on every build, and one
//! escaping function, tested, is easier to audit than a template syntax.
//! Assets are `include_str!`ed into the binary.
//!
//! The module owns: the listener (plain or TLS, rustls), the pages, the SSE
//! feed, the login flow. It reads the store and the config; it never
//! reaches into the pipeline beyond what [`crate::admin::AdminState`] offers.

mod assets;
mod charts;
mod feed;
pub mod guard;
mod html;
mod pages;
pub mod session;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

pub use session::{LOGIN_CODE_TTL, mint_login_code};

use crate::admin::AdminState;
use crate::config::Config;
use crate::secrets::Secrets;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "steward_session";
/// The login form's double-submit CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "steward_login";
/// The file in the state dir holding the bound address (`steward dashboard`
/// reads it: with `listen = "...:0"` only the daemon knows the port).
pub const ADDR_FILE: &str = "dashboard.addr";

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
    #[error("cannot load the dashboard's TLS {what} from {path}: {detail}; check [dashboard] tls_cert and tls_key (PEM)")]
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
    /// Host names (lower case, IPv6 in brackets) the Host and Origin checks accept.
    hosts: Vec<String>,
    /// `http` or `https`.
    scheme: &'static str,
}

impl std::ops::Deref for DashboardState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl DashboardState {
    /// The state of a dashboard bound to `bound`.
    pub fn new(admin: AdminState, config: Arc<Config>, secrets: Arc<ArcSwap<Secrets>>, bound: SocketAddr) -> Self {
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
        Self(Arc::new(Inner { admin, config, secrets, sessions: session::Sessions::default(), hosts, scheme }))
    }

    /// Whether a `Host` header names this dashboard (any port: an `ssh -L`
    /// tunnel may use another local port; the host name is what DNS
    /// rebinding changes).
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !name.is_empty() && port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => {
                // `[::1]:7601` splits at the last colon; a bare `[::1]` ends in `]`.
                name
            }
            _ => host.as_str(),
        };
        !name.is_empty() && self.hosts.iter().any(|h| h == name)
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

/// Every dashboard route, behind [`guard::gate`].
pub fn router(state: DashboardState) -> Router {
    let admin = crate::admin::routes()
        .layer(axum::middleware::from_fn(pages::stamp_actor))
        .with_state(state.admin.clone());
    Router::new()
        .route("/", get(pages::overview))
        .route("/feed", get(pages::feed))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/stop", post(pages::stop))
        .route("/resume", post(pages::resume))
        .route("/events", get(feed::events))
        .route("/assets/{name}", get(assets::asset))
        .with_state(state.clone())
        .merge(admin)
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(state, guard::gate))
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
