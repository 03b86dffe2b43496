//! What the pipeline reports about every call it ends, as an interface
//! that belongs to neither side: the pipeline counts through
//! [`CallMetrics`] without knowing who listens, and `monitor::Metrics`
//! implements it for `/metrics`. The daemon wires the two together, so
//! `pipeline` never imports `monitor` and `monitor` never imports `pipeline`.
//!
//! What a human must hear about (loop breaker, spend cap, write failures)
//! travels on the event bus instead (`events`): counters here are per call
//! and must never block one.

use std::time::Duration;

/// Per-call counters the pipeline updates where every call ends.
pub trait CallMetrics: Send + Sync {
    /// Counts one finished call. `door` is the front door's label;
    /// `decision` is `allowed` or the refusal reason; `status` the HTTP
    /// status of a forwarded call; `elapsed` its wall time.
    fn record_call(
        &self,
        door: &'static str,
        tool: Option<&str>,
        decision: &'static str,
        status: Option<u16>,
        elapsed: Duration,
    );
}

/// Counts nothing: for a pipeline that no daemon wired to monitoring.
#[derive(Debug, Clone, Copy, Default)]
pub struct Uncounted;

impl CallMetrics for Uncounted {
    fn record_call(&self, _: &'static str, _: Option<&str>, _: &'static str, _: Option<u16>, _: Duration) {}
}
