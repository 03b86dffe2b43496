//! mock-upstream: a fake upstream (Mastodon-style REST, OpenAI, Anthropic)
//! that steward's integration tests, benchmarks and quickstart demo talk to.
//! It records every request exactly as received, injects faults
//! deterministically, and is cheap enough to be the baseline of a 10k RPS
//! gateway benchmark (no per-request logging, one short lock per request).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let mock = mock_upstream::MockUpstream::start().await?;
//! let url = format!("{}/api/v1/statuses", mock.base_url());
//! // ... point steward at `url`, make calls ...
//! let seen = mock.requests();
//! mock.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//! - REST: `POST|GET /api/v1/statuses`, `GET|DELETE /api/v1/statuses/{id}`
//!   (`Idempotency-Key` dedupes posts), `/redirect` (302), `GET
//!   /stream?chunks=N&delay_ms=D&size=B`, `POST /echo`, `GET /health`.
//! - OpenAI: `POST /v1/chat/completions`, `POST /v1/responses`,
//!   `POST /v1/embeddings`, `GET /v1/models`.
//! - Anthropic: `POST /v1/messages` (and `GET /v1/models` with
//!   `anthropic-version`). Knobs: see [`llm`].
//! - MCP: `POST /mcp`, a stateless streamable-HTTP MCP server with one
//!   tool, `echo` (the same server runs over stdio: `mock-upstream
//!   --mcp-stdio`); see [`mcp`].
//! - Control: `GET|DELETE /__mock/requests`, `GET|PUT /__mock/faults`,
//!   `POST /__mock/status/{code}`.
//! - `/reflect` (any method): echoes the credential it received (the
//!   `Authorization` or `x-api-key` value) back in headers and body, as a
//!   debugging upstream might: see `reflect`.
//! - Scripts: [`MockUpstream::push_script`] answers the next upstream
//!   request with a [`Script`] verbatim (status, headers, frames, then a
//!   clean end, an open connection or a cut).
//!
//! # Faults
//! [`Faults`] and [`MockUpstream::push_status`] apply to every upstream
//! endpoint (REST and LLM alike, never `/__mock/*`); error bodies take the
//! shape of the API the path imitates. Per request, the `x-mock-fault`
//! header asks for `cut` (streams stop half-way, non-streaming LLM bodies
//! stop mid-JSON), `reset` (TCP RST) or a status (`429` adds `Retry-After`,
//! from `x-mock-retry-after` or 1; `529` is Anthropic's overload).
//!
//! # Layout
//! - [`server`]: listener, accept loop, the shutdown mechanism.
//! - `conn`: one connection; reset (RST) and cut (FIN after flush).
//! - `intake`: body collection, recording, faults, latency, then routing.
//! - `routes`: the route table. `rest`, [`llm`], [`mcp`], `control`, `reflect`: the handlers.
//! - [`script`]: scripted answers.
//! - `paced`: streaming bodies (pacing, cuts).
//! - [`faults`], [`recording`]: fault decisions and the request log.
//! - `api_error`: error responses in each API's shape.
//! - `state`, `clock`: shared state; timestamps for response bodies.

mod api_error;
mod clock;
mod conn;
mod control;
pub mod faults;
mod intake;
pub mod llm;
pub mod mcp;
mod paced;
pub mod recording;
mod reflect;
mod rest;
mod routes;
pub mod script;
pub mod server;
mod state;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::task::JoinHandle;

pub use faults::Faults;
pub use intake::MAX_BODY_BYTES;
pub use recording::{MAX_RECORDED, RecordedRequest};
pub use rest::{MAX_DELAY_MS, MAX_STATUSES, MAX_STREAM_CHUNK_SIZE, MAX_STREAM_CHUNKS};
pub use script::{Script, ScriptEnd};

use crate::state::{Shared, lock};

/// A running mock upstream. Dropping it stops the server in the background;
/// [`MockUpstream::shutdown`] stops it and waits.
#[derive(Debug)]
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The accept loop; `None` once `shutdown` has taken it.
    accept_task: Option<JoinHandle<()>>,
}

impl MockUpstream {
    /// Starts on `127.0.0.1` with an ephemeral port.
    pub async fn start() -> io::Result<MockUpstream> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts on `addr` (port 0 picks a free port). The socket is bound and
    /// listening when this returns.
    pub async fn start_on(addr: SocketAddr) -> io::Result<MockUpstream> {
        let running = server::start(addr).await?;
        Ok(Self { addr: running.addr, shared: running.shared, accept_task: Some(running.accept_task) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Every upstream request received so far (control requests excluded),
    /// in arrival order; at most [`MAX_RECORDED`], the oldest dropped first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.snapshot()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.recorder.clear();
    }

    /// Turns recording on or off (on by default); benchmarks turn it off.
    pub fn set_recording(&self, enabled: bool) {
        self.shared.recorder.set_enabled(enabled);
    }

    /// Replaces the current faults and restarts the error-rate sequence.
    /// Statuses queued by [`MockUpstream::push_status`] stay queued.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared.faults).set(faults);
    }

    /// The current faults; `reset_connections` counts the resets left.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).faults()
    }

    /// Queues `status` for the next upstream request (FIFO). The body is a
    /// small JSON error in the endpoint's shape; a `429` carries
    /// `Retry-After: 1`. Pushed statuses take precedence over
    /// `retry_after_429` and `error_rate`, but not over connection resets.
    pub fn push_status(&self, status: u16) {
        lock(&self.shared.faults).push_status(status);
    }

    /// Queues `script` as the answer to a coming upstream request (FIFO,
    /// after faults and pushed statuses): see [`Script`].
    pub fn push_script(&self, script: Script) {
        lock(&self.shared.scripts).push(script);
    }

    /// Stops accepting, lets in-flight responses finish (streams end
    /// early), and returns within about [`server::SHUTDOWN_GRACE`].
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(task) = self.accept_task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "mock-upstream accept loop failed");
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}
