//! Owns the listener: the accept loop, the set of live connections and the
//! shutdown mechanism.
//!
//! # Shutdown
//! There is one mechanism: cancelling `Shared::shutdown`. The accept loop
//! stops accepting and drops the listener; every connection is told to shut
//! down gracefully (the in-flight response finishes, keep-alive ends);
//! streaming bodies stop early. The loop then waits up to
//! [`SHUTDOWN_GRACE`] for connections to finish and aborts the rest, so
//! shutdown is bounded.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::conn;
use crate::state::Shared;

/// How long shutdown waits for in-flight responses before aborting them.
///
/// Why: long enough for any ordinary response; streams end early on
/// shutdown, so only a stuck client can hold this up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed `accept`.
///
/// Why: errors such as EMFILE persist until a connection closes; retrying
/// at once would spin a core.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A bound, running server.
pub(crate) struct Running {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// State shared with every connection.
    pub shared: Arc<Shared>,
    /// The accept loop; finishes once shutdown has drained connections.
    pub accept_task: JoinHandle<()>,
}

/// Binds `addr` and starts serving in a background task.
pub(crate) async fn start(addr: SocketAddr) -> io::Result<Running> {
    let listener = bind(addr)?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(format!("http://{addr}")));
    let router = crate::routes::router(Arc::clone(&shared));
    let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), router));
    Ok(Running { addr, shared, accept_task })
}

/// Connections queued before `accept`: a real API's front end takes a burst
/// of new connections (steward opening 200 streams at once) without dropping
/// handshakes, so the mock does too; tokio's default of 128 would add TCP
/// retransmits (200 ms and more) to what the benchmarks measure.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    spawn_connection(&mut connections, stream, &shared, &router);
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
    drop(listener);
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(remaining = connections.len(), "connections still busy after the shutdown grace; aborting them");
        connections.shutdown().await;
    }
}

fn spawn_connection(connections: &mut JoinSet<()>, stream: TcpStream, shared: &Arc<Shared>, router: &Router) {
    connections.spawn(conn::serve(stream, Arc::clone(shared), router.clone()));
}
