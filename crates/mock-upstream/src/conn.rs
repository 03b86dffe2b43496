//! Owns one TCP connection: drives hyper's HTTP/1 server over it, and gives
//! handlers the two ways to end it badly that `axum::serve` cannot offer:
//!
//! - **reset**: drop the socket with `SO_LINGER = 0`, so the client gets a
//!   TCP RST instead of a response;
//! - **cut**: close the socket (FIN) in the middle of a streaming body, but
//!   only after hyper has handed every byte already produced to the kernel,
//!   so the client reliably sees exactly the events before the cut and then
//!   an unclean end.
//!
//! A handler reaches its connection through the [`ConnHandle`] request
//! extension.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use axum::Router;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::intake;
use crate::state::Shared;

/// The per-connection switch a handler pulls to end its connection.
#[derive(Debug, Default)]
pub(crate) struct ConnControl {
    /// Wakes the connection task to drop the connection now.
    abort: Notify,
    /// Set with `abort`: drop with a TCP RST rather than a FIN.
    reset: AtomicBool,
    /// A streaming body asked to be cut; the next completed flush of the
    /// socket fires `abort`.
    cut_after_flush: AtomicBool,
}

/// Cloneable handle to [`ConnControl`], inserted into every request's
/// extensions.
#[derive(Clone, Debug)]
pub(crate) struct ConnHandle(Arc<ConnControl>);

impl ConnHandle {
    /// Drop the connection with a TCP RST, immediately.
    pub(crate) fn reset(&self) {
        self.0.reset.store(true, Ordering::Release);
        self.0.abort.notify_one();
    }

    /// Close the connection once everything written so far is flushed.
    pub(crate) fn cut_after_flush(&self) {
        self.0.cut_after_flush.store(true, Ordering::Release);
    }
}

/// The socket as hyper sees it: a pass-through that notices the flush after
/// which a requested cut may happen.
struct CutIo {
    inner: TokioIo<TcpStream>,
    control: Arc<ConnControl>,
}

impl hyper::rt::Read for CutIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for CutIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // hyper calls this only once its own write buffer is empty, so every
        // byte of the events before the cut is now in the kernel.
        if this.control.cut_after_flush.load(Ordering::Acquire) {
            this.control.abort.notify_one();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serves HTTP/1 on `stream` until the client leaves, a handler aborts the
/// connection, or shutdown finishes the in-flight request.
pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>, router: Router) {
    // Small SSE events must leave immediately, not wait for Nagle.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
    let control = Arc::new(ConnControl::default());
    let handle = ConnHandle(Arc::clone(&control));
    let shutdown = shared.shutdown.clone();
    let service =
        service_fn(move |request| intake::handle(request, Arc::clone(&shared), router.clone(), handle.clone()));
    let io = CutIo { inner: TokioIo::new(stream), control: Arc::clone(&control) };
    let mut connection = http1::Builder::new().timer(TokioTimer::new()).serve_connection(io, service);
    let mut draining = false;
    loop {
        tokio::select! {
            biased;
            () = control.abort.notified() => {
                let parts = connection.into_parts();
                if control.reset.load(Ordering::Acquire)
                    && let Err(error) = parts.io.inner.inner().set_zero_linger()
                {
                    tracing::debug!(%error, "could not set SO_LINGER=0; closing normally");
                }
                return;
            }
            result = &mut connection => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                Pin::new(&mut connection).graceful_shutdown();
                draining = true;
            }
        }
    }
}
