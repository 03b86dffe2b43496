//! The gateway: the HTTP server the agent talks to, and its HTTP front doors:
//! `/api/{upstream}/...` (REST APIs) and `/llm/{provider}/...` (OpenAI- and
//! Anthropic-compatible APIs; an SDK only changes its base URL and API key).
//!
//! A front door only translates its protocol into a [`Call`] and back. Both
//! read the request (body bounded by `gateway.max_body`), check that the path
//! is one steward can forward faithfully, and hand the call to the pipeline.
//! Every decision, including the error JSON shape, is the pipeline's.
//!
//! Beside the doors, on the same loopback listener: `/healthz` (steward
//! answers), `/readyz` (steward can record calls: the store accepts a write
//! and the audit log is healthy; else 503 naming which) and `/metrics`
//! (Prometheus/OpenMetrics text; labels hold only config names and fixed
//! words, never secrets).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use http::{Response, StatusCode};
use http_body_util::BodyExt;

use crate::pipeline::{Call, Door, Pipeline, Refusal};

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

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
struct Gateway {
    pipeline: Arc<Pipeline>,
    /// `gateway.max_body` in bytes.
    max_body: u64,
}

/// The router served on `gateway.listen`.
pub fn router(pipeline: Arc<Pipeline>, max_body: u64) -> Router {
    Router::new()
        .route("/api/{*rest}", any(|State(gw): State<Gateway>, request: Request| http_door(gw, request, Door::Api)))
        .route("/llm/{*rest}", any(|State(gw): State<Gateway>, request: Request| http_door(gw, request, Door::Llm)))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|State(gw): State<Gateway>| readyz(gw)))
        .route("/metrics", get(|State(gw): State<Gateway>| metrics(gw)))
        .fallback(not_found)
        .with_state(Gateway { pipeline, max_body })
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
    let metrics = gw.pipeline.metrics();
    metrics.observe_store(&gw.pipeline.store().wal_stats());
    let text = metrics.render();
    ([(http::header::CONTENT_TYPE, crate::monitor::metrics::CONTENT_TYPE)], text).into_response()
}

async fn not_found() -> impl IntoResponse {
    let body = serde_json::json!({
        "error": {
            "type": "steward",
            "reason": "not_found",
            "message": "steward serves /api/{upstream}/..., /llm/{provider}/..., /healthz, /readyz and /metrics; check the agent's base URL",
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
    let raw = parts.uri.path().strip_prefix(prefix).unwrap_or_default();
    let (upstream, path) = match raw.find('/') {
        Some(i) => (&raw[..i], &raw[i..]),
        None => (raw, "/"),
    };
    let query = parts.uri.query().map(str::to_owned);
    let mut call =
        Call::new(door, upstream.to_owned(), parts.method, path.to_owned(), query, parts.headers, bytes::Bytes::new());

    if let Err(detail) = check_path(upstream, path) {
        return gw.pipeline.reject(call, Refusal::BadRequest { detail }).await;
    }
    let declared_len =
        call.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > gw.max_body) {
        return gw.pipeline.reject(call, Refusal::BodyTooLarge { limit: gw.max_body }).await;
    }
    let limit = usize::try_from(gw.max_body).unwrap_or(usize::MAX);
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => call.body = collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return gw.pipeline.reject(call, Refusal::BodyTooLarge { limit: gw.max_body }).await;
        }
        Err(_) => {
            let detail = "the request body could not be read (connection broke off)".to_owned();
            return gw.pipeline.reject(call, Refusal::BadRequest { detail }).await;
        }
    }
    gw.pipeline.handle(call).await
}

/// A path steward forwards must name an upstream, decode to UTF-8 segment by
/// segment, and hold no `.`/`..` segment (which could climb out of the
/// upstream's base path once the upstream normalizes it).
fn check_path(upstream: &str, path: &str) -> Result<(), String> {
    if upstream.is_empty() {
        return Err("the path must start with /api/{upstream}/, naming a configured upstream".into());
    }
    for segment in path.split('/') {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8().map_err(|_| {
            format!("path segment `{segment}` is not valid UTF-8 once percent-decoded; encode the path as UTF-8")
        })?;
        if decoded == "." || decoded == ".." {
            return Err("path segments `.` and `..` are not forwarded; send the normalized path".into());
        }
    }
    Ok(())
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
    fn paths_are_checked() {
        assert!(check_path("social", "/api/v1/statuses").is_ok());
        assert!(check_path("social", "/a%20b/%C3%A9").is_ok());
        assert!(check_path("", "/x").is_err());
        assert!(check_path("social", "/a/%FF").unwrap_err().contains("UTF-8"));
        assert!(check_path("social", "/a/%2e%2E/b").unwrap_err().contains(".."));
        assert!(check_path("social", "/a/../b").is_err());
    }
}
