//! The gateway's HTTP server: the accept loop, the per-connection timeouts
//! and the connection cap around the router.
//!
//! `axum::serve` has neither timeouts nor a cap: idle connections, a
//! request head sent a byte at a time (slowloris), a body that stalls and
//! an idle keep-alive connection all stayed open, and with `ulimit -n 256`
//! 300 idle connections made real calls time out. Here every connection is
//! in one of three phases, tracked by [`Activity`]:
//!
//! - **idle** (accepted, or between requests): closed after
//!   `keepalive_timeout` without a byte;
//! - **head** (a byte of a request arrived, the head is not complete): closed
//!   after `header_timeout` from that first byte;
//! - **busy** (a request is being served, until its response body is
//!   dropped): no server timeout; the front door bounds the body read
//!   (`body_timeout` between chunks, 408) and the upstream timeouts bound
//!   the rest.
//!
//! At most `max_connections` are open. At the cap, the connection that has
//! been idle or in its head the longest is closed to admit the next one, so
//! idle sockets never starve a real call; when every connection is busy,
//! new ones wait in the listen backlog until one ends.
//!
//! Shutdown (the daemon's drain token): the loop stops accepting, idle
//! connections close at once, busy ones finish their response, then
//! [`serve`] returns.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::GatewayConfig;
use crate::monitor::Metrics;

/// File descriptors kept free of agent connections: the store, the logs,
/// pooled upstream connections and the supervisor's pipes need their own.
pub const FD_RESERVE: u64 = 128;

/// Pause after a failed `accept` (out of file descriptors, most likely), so
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The limits [`serve`] enforces, from `[gateway]`.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// From a request's first byte to the end of its head.
    pub header_timeout: Duration,
    /// Idle connections (accepted or between requests) are closed after this.
    pub keepalive_timeout: Duration,
    /// Open connections at most (already bounded by the open-file limit).
    pub max_connections: usize,
}

impl ServerLimits {
    /// The configured limits, with `max_connections` lowered to what the
    /// process's open-file limit allows (raised to its hard limit first).
    pub fn from_config(gateway: &GatewayConfig) -> Self {
        let wanted = u64::from(gateway.max_connections);
        let allowed = raise_nofile_limit(wanted.saturating_add(FD_RESERVE)).saturating_sub(FD_RESERVE).max(1);
        if allowed < wanted {
            tracing::warn!(
                max_connections = wanted,
                allowed,
                "the open-file limit (ulimit -n) leaves room for fewer connections than [gateway] max_connections; \
                 raise it (LimitNOFILE= in the systemd unit) or lower max_connections"
            );
        }
        Self {
            header_timeout: gateway.header_timeout,
            keepalive_timeout: gateway.keepalive_timeout,
            max_connections: usize::try_from(wanted.min(allowed)).unwrap_or(usize::MAX),
        }
    }
}

/// Raises the soft open-file limit towards `wanted` (never above the hard
/// limit) and returns the soft limit in force.
fn raise_nofile_limit(wanted: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return wanted;
    };
    if soft >= wanted {
        return soft;
    }
    let target = wanted.min(hard);
    if target > soft && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
        return target;
    }
    soft
}

/// Serves `app` on `listener` until `shutdown`, then drains (see the module docs).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(Registry::default());
    let connections = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "the gateway could not accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap, with a connection waiting: free the slot of the
                // longest-idle connection, or wait for a busy one to end or
                // go idle (the next clients wait in the listen backlog).
                let waited = tokio::select! {
                    () = shutdown.cancelled() => None,
                    permit = Arc::clone(&slots).acquire_owned() => permit.ok(),
                    () = async {
                        loop {
                            if open.evict_oldest_idle() {
                                metrics.connection_closed("evicted");
                                std::future::pending::<()>().await;
                            }
                            open.went_idle.notified().await;
                        }
                    } => None,
                };
                match waited {
                    Some(permit) => permit,
                    None => break,
                }
            }
        };
        // Responses are relayed as a stream: headers and body go out in
        // separate writes, which Nagle + delayed ACK would stall by ~40 ms.
        let _ = stream.set_nodelay(true);
        let activity = open.register();
        let conn = Connection {
            activity,
            registry: Arc::clone(&open),
            app: app.clone(),
            limits,
            metrics: Arc::clone(&metrics),
            shutdown: shutdown.clone(),
        };
        connections.spawn(async move {
            conn.run(stream).await;
            drop(permit);
        });
    }
    connections.close();
    connections.wait().await;
}

/// Where a connection is in its life (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request in progress and no byte of the next one.
    Idle,
    /// Bytes of a request head arrived; the head is not complete.
    Head,
    /// This many requests are being served (more than one only with pipelining).
    Busy(usize),
}

/// One connection's phase and when it began, shared by its I/O (bytes
/// arrive), its requests (served, finished) and its watchdog.
#[derive(Debug)]
struct Activity {
    id: u64,
    state: Mutex<(Phase, Instant)>,
    /// Woken on every phase change, so the watchdog recomputes its deadline.
    changed: Notify,
    /// Cancelled to close the connection at the cap.
    evicted: CancellationToken,
}

impl Activity {
    fn phase(&self) -> (Phase, Instant) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: the first byte after idleness starts a request head.
    fn on_read(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 == Phase::Idle {
            *state = (Phase::Head, Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// A request head is complete and its handler starts.
    fn begin(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let busy = match state.0 {
            Phase::Busy(n) => n + 1,
            Phase::Idle | Phase::Head => 1,
        };
        *state = (Phase::Busy(busy), Instant::now());
        drop(state);
        self.changed.notify_one();
    }

    /// A response body was dropped (sent, or abandoned); returns whether the
    /// connection is now idle.
    fn end(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let next = match state.0 {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle,
        };
        *state = (next, Instant::now());
        drop(state);
        self.changed.notify_one();
        next == Phase::Idle
    }

    /// When the current phase times out, and the reason; `None` while busy.
    fn deadline(&self, limits: &ServerLimits) -> Option<(Instant, &'static str)> {
        match self.phase() {
            (Phase::Idle, since) => Some((since + limits.keepalive_timeout, "keepalive_timeout")),
            (Phase::Head, since) => Some((since + limits.header_timeout, "header_timeout")),
            (Phase::Busy(_), _) => None,
        }
    }
}

/// The open connections, oldest first, for eviction at the cap.
#[derive(Debug, Default)]
struct Registry {
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Activity>>>,
    /// Woken when a connection goes idle: the accept loop, waiting at the
    /// cap, may now evict it.
    went_idle: Notify,
}

impl Registry {
    fn register(&self) -> Arc<Activity> {
        let activity = Arc::new(Activity {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new((Phase::Idle, Instant::now())),
            changed: Notify::new(),
            evicted: CancellationToken::new(),
        });
        self.open.lock().unwrap_or_else(PoisonError::into_inner).insert(activity.id, Arc::clone(&activity));
        activity
    }

    fn remove(&self, id: u64) {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    /// Closes the oldest connection that serves no request; false when every
    /// connection is busy.
    fn evict_oldest_idle(&self) -> bool {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let victim = open.values().find(|a| !matches!(a.phase().0, Phase::Busy(_))).map(|a| a.id);
        let Some(id) = victim else { return false };
        if let Some(activity) = open.remove(&id) {
            activity.evicted.cancel();
        }
        true
    }
}

/// One accepted connection and what it needs.
struct Connection {
    activity: Arc<Activity>,
    registry: Arc<Registry>,
    app: Router,
    limits: ServerLimits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl Connection {
    async fn run(self, stream: tokio::net::TcpStream) {
        let io = TokioIo::new(Watched { inner: stream, activity: Arc::clone(&self.activity) });
        let activity = Arc::clone(&self.activity);
        let registry = Arc::clone(&self.registry);
        let app = self.app.clone();
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            activity.begin();
            let guard = BusyGuard { activity: Arc::clone(&activity), registry: Arc::clone(&registry) };
            let mut app = app.clone();
            async move {
                let response = tower::Service::call(&mut app, request.map(Body::new)).await?;
                Ok::<_, std::convert::Infallible>(
                    response.map(|body| Body::new(Guarded { inner: body, _guard: guard })),
                )
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // Our own head and keep-alive deadlines apply (hyper's header timeout
        // would also cut idle keep-alive connections at the head deadline).
        builder.timer(TokioTimer::new()).header_read_timeout(None).keep_alive(true);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            let deadline = self.activity.deadline(&self.limits);
            let expiry = async {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(err) = served {
                        tracing::debug!(error = %err, "agent connection ended with an error");
                    }
                    break;
                }
                () = expiry => {
                    // The phase may have changed since the deadline was computed.
                    if let Some((at, reason)) = self.activity.deadline(&self.limits)
                        && at <= Instant::now()
                    {
                        tracing::debug!(reason, "closing an agent connection");
                        self.metrics.connection_closed(reason);
                        break;
                    }
                }
                () = self.activity.changed.notified() => {}
                () = self.activity.evicted.cancelled() => break,
                () = self.shutdown.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        self.registry.remove(self.activity.id);
    }
}

/// Marks the connection idle again when a response body is dropped.
struct BusyGuard {
    activity: Arc<Activity>,
    registry: Arc<Registry>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if self.activity.end() {
            self.registry.went_idle.notify_one();
        }
    }
}

/// A response body that holds its connection's [`BusyGuard`] until dropped.
struct Guarded {
    inner: Body,
    _guard: BusyGuard,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, reporting arriving bytes to its [`Activity`].
struct Watched {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
