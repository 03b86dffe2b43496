//! The gateway: the HTTP server the agent talks to, and its HTTP front doors:
//! `/api/{upstream}/...` (REST APIs), `/llm/{provider}/...` (OpenAI- and
//! Anthropic-compatible APIs; an SDK only changes its base URL and API key)
//! and `/mcp/{server}` (MCP's streamable HTTP, see `mcp`).
//!
//! A front door only translates its protocol into a [`Call`] and back. Both
//! read the request target once into a [`RequestTarget`] (the canonical path
//! every later step matches, records and forwards; a target two readers could
//! read differently is refused with 400), read the body (bounded by
//! `gateway.max_body`, each chunk within `gateway.body_timeout`), and hand the
//! call to the pipeline. Every decision, including the error JSON shape, is
//! the pipeline's.
//!
//! The server around the router ([`server`]) enforces the head and
//! keep-alive timeouts and the connection cap.
//!
//! Beside the doors, on the same loopback listener: `/healthz` (steward
//! answers), `/readyz` (steward can record calls: the store accepts a write
//! and the audit log is healthy; else 503 naming which) and `/metrics`
//! (Prometheus/OpenMetrics text; labels hold only config names and fixed
//! words, never secrets).

pub mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;

use crate::config::GatewayConfig;
use crate::monitor::Metrics;
use crate::pipeline::{Call, CanonicalQuery, Door, Pipeline, Refusal, RequestTarget};
pub use server::{ServerLimits, serve};

/// Headers some frameworks read as the request's real method (Rails,
/// Laravel, Express's method-override, ASP.NET). The tool matcher sees the
/// HTTP method, so a call carrying one is refused rather than counted as a
/// `POST` and executed as a `DELETE`.
const METHOD_OVERRIDE_HEADERS: &[&str] = &["x-http-method-override", "x-http-method", "x-method-override"];

/// The query parameter frameworks read as a method override (`?_method=DELETE`).
const METHOD_OVERRIDE_PARAM: &str = "_method";

/// Connections the kernel queues for the gateway before it accepts them.
/// tokio's `TcpListener::bind` (like std's) asks for 128, which a burst of
/// agent calls (a fleet, or one agent fanning out 200 streams at once)
/// overflows. The kernel then drops handshakes, and every dropped one costs
/// its client a TCP retransmit: 200 ms to a second of latency, measured as
/// the gateway bench's burst p99. The kernel caps this at
/// `net.core.somaxconn` (4096 by default since Linux 5.4).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds the gateway's listener on `addr` with [`LISTEN_BACKLOG`] (and
/// `SO_REUSEADDR`, as `TcpListener::bind` sets it, so a restart rebinds at once).
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The gateway as served: its routes, the server limits and the metrics
/// they report to. The main listener and the one the agent's box opens in
/// its own network namespace are served alike, timeouts and cap included.
#[derive(Debug, Clone)]
pub struct Service {
    app: Router,
    limits: ServerLimits,
    metrics: Arc<Metrics>,
    /// The pipeline's tracker, for [`Service::tasks`].
    tasks: tokio_util::task::TaskTracker,
}

impl Service {
    /// The router and limits `gateway` configures, around `pipeline`.
    /// `doors` are more routes on the same listener (the MCP door's
    /// `/mcp/{server}`, built by `mcp::routes`).
    pub fn new(pipeline: Arc<Pipeline>, doors: Router, gateway: &GatewayConfig, metrics: Arc<Metrics>) -> Self {
        let tasks = pipeline.tasks().clone();
        let app = router(pipeline, gateway, Arc::clone(&metrics)).merge(doors);
        Self { app, limits: ServerLimits::from_config(gateway), metrics, tasks }
    }

    /// Serves `listener` until `shutdown`, then drains its connections.
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: tokio_util::sync::CancellationToken) {
        server::serve(listener, self.app, self.limits, self.metrics, shutdown).await;
    }

    /// The tracker shutdown waits on (the pipeline's): a listener served
    /// beside the main one runs its task there.
    pub fn tasks(&self) -> tokio_util::task::TaskTracker {
        self.tasks.clone()
    }
}

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
struct Gateway {
    pipeline: Arc<Pipeline>,
    /// The registry `/metrics` serves (the pipeline counts into it too).
    metrics: Arc<Metrics>,
    /// `gateway.max_body` in bytes.
    max_body: u64,
    /// `gateway.body_timeout`: the longest pause between two body chunks.
    body_timeout: Duration,
}

/// The router served on `gateway.listen`.
pub fn router(pipeline: Arc<Pipeline>, gateway: &GatewayConfig, registry: Arc<Metrics>) -> Router {
    let max_body = gateway.max_body_bytes;
    let body_timeout = gateway.body_timeout;
    Router::new()
        .route("/api/{*rest}", any(|State(gw): State<Gateway>, request: Request| http_door(gw, request, Door::Api)))
        .route("/llm/{*rest}", any(|State(gw): State<Gateway>, request: Request| http_door(gw, request, Door::Llm)))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|State(gw): State<Gateway>| readyz(gw)))
        .route("/metrics", get(|State(gw): State<Gateway>| metrics(gw)))
        .fallback(not_found)
        .with_state(Gateway { pipeline, metrics: registry, max_body, body_timeout })
}

/// 200 when a call could be recorded right now, 503 with what is wrong.
async fn readyz(gw: Gateway) -> Response<Body> {
    let store = gw.pipeline.store().check_writable().await.map_err(|e| e.to_string());
    let readiness = crate::monitor::metrics::Readiness::new(store, gw.pipeline.audit_healthy());
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut readiness = readiness;
    readiness.detail = readiness.detail.map(|d| gw.pipeline.redact(&d));
    (status, axum::Json(readiness)).into_response()
}

/// The metrics in the OpenMetrics text format.
async fn metrics(gw: Gateway) -> Response<Body> {
    let metrics = &gw.metrics;
    metrics.observe_store(&gw.pipeline.store().wal_stats());
    if let Some(fleet) = gw.pipeline.store().fleet() {
        metrics.observe_fleet(&fleet.stats());
    }
    let text = metrics.render();
    ([(http::header::CONTENT_TYPE, crate::monitor::metrics::CONTENT_TYPE)], text).into_response()
}

async fn not_found() -> impl IntoResponse {
    let body = serde_json::json!({
        "error": {
            "type": "steward",
            "reason": "not_found",
            "message": "steward serves /api/{upstream}/..., /llm/{provider}/..., /mcp/{server}, /healthz, /readyz and /metrics; check the agent's base URL",
        }
    });
    (StatusCode::NOT_FOUND, axum::Json(body))
}

/// `ANY /api/{upstream}/{path...}` and `ANY /llm/{provider}/{path...}`.
async fn http_door(gw: Gateway, request: Request, door: Door) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let prefix = match door {
        Door::Llm => "/llm/",
        Door::Api | Door::Mcp => "/api/",
    };
    let rest = parts.uri.path().strip_prefix(prefix).unwrap_or_default();
    let target = match RequestTarget::parse(rest, parts.uri.query()) {
        Ok(target) => target,
        Err(err) => return gw.pipeline.reject_target(door, &parts.method, &parts.uri, &parts.headers, &err).await,
    };
    let mut call = Call::new(door, target, parts.method, parts.headers, Bytes::new());

    if let Some(how) = method_override(&call.headers, call.query.as_ref()) {
        let detail = format!(
            "{how} asks the upstream for another method than the request's; steward matches tools by the \
             HTTP method, so send the method you mean"
        );
        return gw.pipeline.reject(call, Refusal::BadRequest { detail }).await;
    }
    let declared_len =
        call.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > gw.max_body) {
        return gw.pipeline.reject(call, Refusal::BodyTooLarge { limit: gw.max_body }).await;
    }
    match read_body(body, gw.max_body, gw.body_timeout).await {
        Ok(bytes) => call.body = bytes,
        Err(refusal) => return gw.pipeline.reject(call, refusal).await,
    }
    gw.pipeline.handle(call).await
}

/// Reads the whole body, at most `limit` bytes, with at most `idle` between
/// two chunks (the MCP door reads its messages with it too).
pub(crate) async fn read_body(mut body: Body, limit: u64, idle: Duration) -> Result<Bytes, Refusal> {
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(Refusal::BodyTimeout { idle }),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(_))) => {
                let detail = "the request body could not be read (connection broke off)".to_owned();
                return Err(Refusal::Malformed { detail });
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len().saturating_add(data.len()) > limit_usize {
                return Err(Refusal::BodyTooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
}

/// Names the method override a request carries, if any.
fn method_override(headers: &HeaderMap, query: Option<&CanonicalQuery>) -> Option<String> {
    if let Some(name) = METHOD_OVERRIDE_HEADERS.iter().find(|name| headers.contains_key(**name)) {
        return Some(format!("header `{name}`"));
    }
    let query = query?;
    let (_, found) = query.remove_pairs(|pair| {
        pair.split_once('=').map_or(pair, |(name, _)| name).trim().eq_ignore_ascii_case(METHOD_OVERRIDE_PARAM)
    });
    (found > 0).then(|| format!("query parameter `{METHOD_OVERRIDE_PARAM}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 300 clients connect before the gateway accepts any: every handshake
    /// completes (queued), none is dropped; a backlog of 128 dropped 171 of them.
    #[tokio::test]
    async fn a_burst_of_connections_before_the_first_accept_is_queued_not_dropped() {
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if somaxconn < 512 {
            eprintln!(
                "SKIPPED: net.core.somaxconn is {somaxconn}; the kernel caps the backlog below what this test needs"
            );
            return;
        }
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = tokio::task::spawn_blocking(move || {
            // A dropped handshake makes `connect` wait for a SYN retransmit (1 s),
            // so 300 ms tells a queued connection from a dropped one.
            (0..300)
                .map(|_| std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        let failed = connects.iter().filter(|c| c.is_err()).count();
        assert_eq!(failed, 0, "{failed} of 300 handshakes were dropped before the first accept");
        drop(listener);
    }

    #[test]
    fn method_overrides_are_named() {
        let mut headers = HeaderMap::new();
        assert_eq!(method_override(&headers, None), None);
        let query = CanonicalQuery::new("a=1&%5Fmethod=DELETE");
        assert_eq!(method_override(&headers, query.as_ref()).as_deref(), Some("query parameter `_method`"));
        assert_eq!(method_override(&headers, CanonicalQuery::new("method=x&a_method=y").as_ref()), None);
        headers.insert("x-http-method-override", http::HeaderValue::from_static("DELETE"));
        assert_eq!(method_override(&headers, None).as_deref(), Some("header `x-http-method-override`"));
    }
}
