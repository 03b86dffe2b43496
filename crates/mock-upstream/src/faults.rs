//! Owns fault injection: the [`Faults`] a test configures, the FIFO of pushed
//! statuses, and the one decision per upstream request (reset it, answer it
//! with an error status, or let it through after the configured latency).
//!
//! Every decision is deterministic: the error rate is spread evenly over the
//! request sequence (no RNG), so a test that sends the same requests always
//! sees the same failures.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Faults applied to every upstream request (everything except `/__mock/*`).
///
/// [`crate::MockUpstream::set_faults`] replaces the whole set at once and
/// restarts the error-rate sequence.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Added before every response, so latency-sensitive code (timeouts,
    /// duration metrics) can be exercised.
    pub latency: Duration,
    /// Fraction `0..=1` of upstream requests answered `503`. Deterministic:
    /// with rate `r`, request `n` (1-based, counted since `set_faults`) fails
    /// exactly when `floor(n*r)` grows, so `0.25` fails every 4th request.
    /// Values outside `0..=1` (and NaN) are clamped.
    pub error_rate: f64,
    /// When `Some(s)`, every upstream request answers `429` with
    /// `Retry-After: s`, to exercise backoff that honours the header.
    pub retry_after_429: Option<u64>,
    /// The next N upstream requests get no response at all: the connection
    /// is reset (TCP RST) right after the request is read.
    pub reset_connections: u32,
    /// Streaming endpoints (`/stream`, LLM SSE) drop the connection without
    /// a clean end after this many events/chunks.
    pub cut_stream_after: Option<usize>,
}

/// [`Faults`] as the control API speaks it (`PUT /__mock/faults`): latency
/// in milliseconds, every field optional.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FaultsWire {
    /// [`Faults::latency`] in milliseconds.
    pub latency_ms: u64,
    /// [`Faults::error_rate`].
    pub error_rate: f64,
    /// [`Faults::retry_after_429`].
    pub retry_after_429: Option<u64>,
    /// [`Faults::reset_connections`].
    pub reset_connections: u32,
    /// [`Faults::cut_stream_after`].
    pub cut_stream_after: Option<usize>,
}

impl From<FaultsWire> for Faults {
    fn from(wire: FaultsWire) -> Self {
        Self {
            latency: Duration::from_millis(wire.latency_ms),
            error_rate: wire.error_rate,
            retry_after_429: wire.retry_after_429,
            reset_connections: wire.reset_connections,
            cut_stream_after: wire.cut_stream_after,
        }
    }
}

impl From<&Faults> for FaultsWire {
    fn from(faults: &Faults) -> Self {
        Self {
            latency_ms: u64::try_from(faults.latency.as_millis()).unwrap_or(u64::MAX),
            error_rate: faults.error_rate,
            retry_after_429: faults.retry_after_429,
            reset_connections: faults.reset_connections,
            cut_stream_after: faults.cut_stream_after,
        }
    }
}

/// The error rate is applied in parts per million so the "every Nth" spread
/// is exact integer arithmetic, free of float rounding at the boundaries.
const PPM: u64 = 1_000_000;

/// `Retry-After` sent with a pushed `429`, as the brief promises tests.
const PUSHED_429_RETRY_AFTER: u64 = 1;

/// What to do with one upstream request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Drop the connection with a TCP RST; no response, no latency.
    Reset,
    /// Answer with this status (and `Retry-After` when set) after the latency.
    Respond {
        /// The status to answer.
        status: u16,
        /// Seconds for the `Retry-After` header.
        retry_after: Option<u128>,
    },
    /// Serve the request normally after the latency.
    Proceed,
}

/// Mutable fault state; lives behind one mutex in [`crate::state::Shared`].
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    faults: Faults,
    /// `faults.error_rate` clamped and scaled to [`PPM`].
    error_ppm: u64,
    /// Upstream requests that reached the error-rate check since `set`.
    evaluated: u64,
    /// Remaining connection resets.
    resets_left: u32,
    /// Statuses queued by `push_status`, answered in FIFO order.
    pushed: VecDeque<u16>,
}

impl FaultState {
    /// Replaces the faults and restarts the error-rate sequence; pushed
    /// statuses stay queued.
    pub(crate) fn set(&mut self, faults: Faults) {
        let rate = if faults.error_rate.is_nan() { 0.0 } else { faults.error_rate.clamp(0.0, 1.0) };
        let ppm = (rate * PPM as f64).round() as u64;
        self.error_ppm = ppm;
        self.evaluated = 0;
        self.resets_left = faults.reset_connections;
        self.faults = faults;
    }

    pub(crate) fn faults(&self) -> Faults {
        let mut faults = self.faults.clone();
        faults.reset_connections = self.resets_left;
        faults
    }

    pub(crate) fn push_status(&mut self, status: u16) {
        self.pushed.push_back(status);
    }

    pub(crate) fn latency(&self) -> Duration {
        self.faults.latency
    }

    pub(crate) fn cut_stream_after(&self) -> Option<usize> {
        self.faults.cut_stream_after
    }

    /// Decides the fate of the next upstream request. Precedence: reset,
    /// pushed status, blanket 429, error rate.
    pub(crate) fn decide(&mut self) -> Verdict {
        if self.resets_left > 0 {
            self.resets_left -= 1;
            return Verdict::Reset;
        }
        if let Some(status) = self.pushed.pop_front() {
            let retry_after = (status == 429).then_some(u128::from(PUSHED_429_RETRY_AFTER));
            return Verdict::Respond { status, retry_after };
        }
        if let Some(seconds) = self.faults.retry_after_429 {
            return Verdict::Respond { status: 429, retry_after: Some(u128::from(seconds)) };
        }
        if self.error_ppm > 0 {
            self.evaluated += 1;
            let n = self.evaluated;
            if (n * self.error_ppm) / PPM > ((n - 1) * self.error_ppm) / PPM {
                return Verdict::Respond { status: 503, retry_after: None };
            }
        }
        Verdict::Proceed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(faults: Faults) -> FaultState {
        let mut state = FaultState::default();
        state.set(faults);
        state
    }

    fn failures(state: &mut FaultState, requests: usize) -> Vec<usize> {
        (1..=requests).filter(|_| state.decide() != Verdict::Proceed).collect::<Vec<_>>()
    }

    #[test]
    fn error_rate_fails_an_exact_evenly_spread_fraction() {
        let mut state = state_with(Faults { error_rate: 0.25, ..Faults::default() });
        let failed: Vec<usize> = (1..=100).filter(|_| state.decide() != Verdict::Proceed).collect();
        assert_eq!(failed.len(), 25);
        assert_eq!(&failed[..3], &[4, 8, 12]);
    }

    #[test]
    fn awkward_rates_still_fail_the_exact_count() {
        let mut state = state_with(Faults { error_rate: 0.29, ..Faults::default() });
        assert_eq!(failures(&mut state, 100).len(), 29);
    }

    #[test]
    fn error_rate_bounds_and_nan_are_clamped() {
        let mut always = state_with(Faults { error_rate: 7.0, ..Faults::default() });
        assert_eq!(failures(&mut always, 10).len(), 10);
        let mut never = state_with(Faults { error_rate: f64::NAN, ..Faults::default() });
        assert!(failures(&mut never, 10).is_empty());
    }

    #[test]
    fn set_restarts_the_error_sequence() {
        let faults = Faults { error_rate: 0.5, ..Faults::default() };
        let mut state = state_with(faults.clone());
        assert_eq!(state.decide(), Verdict::Proceed);
        state.set(faults);
        assert_eq!(state.decide(), Verdict::Proceed);
        assert!(matches!(state.decide(), Verdict::Respond { status: 503, .. }));
    }

    #[test]
    fn precedence_is_reset_then_pushed_then_429() {
        let mut state = state_with(Faults { reset_connections: 1, retry_after_429: Some(7), ..Faults::default() });
        state.push_status(500);
        state.push_status(429);
        assert_eq!(state.decide(), Verdict::Reset);
        assert_eq!(state.decide(), Verdict::Respond { status: 500, retry_after: None });
        assert_eq!(state.decide(), Verdict::Respond { status: 429, retry_after: Some(1) });
        assert_eq!(state.decide(), Verdict::Respond { status: 429, retry_after: Some(7) });
    }

    #[test]
    fn pushed_statuses_survive_set_and_remaining_resets_are_reported() {
        let mut state = state_with(Faults { reset_connections: 2, ..Faults::default() });
        state.push_status(503);
        assert_eq!(state.decide(), Verdict::Reset);
        assert_eq!(state.faults().reset_connections, 1);
        state.set(Faults::default());
        assert_eq!(state.decide(), Verdict::Respond { status: 503, retry_after: None });
        assert_eq!(state.decide(), Verdict::Proceed);
    }

    #[test]
    fn wire_form_round_trips_latency_in_milliseconds() {
        let wire: FaultsWire = serde_json::from_str(r#"{"latency_ms": 250, "cut_stream_after": 3}"#).unwrap();
        let faults = Faults::from(wire);
        assert_eq!(faults.latency, Duration::from_millis(250));
        assert_eq!(faults.cut_stream_after, Some(3));
        assert_eq!(FaultsWire::from(&faults).latency_ms, 250);
        assert!(serde_json::from_str::<FaultsWire>(r#"{"latency": 1}"#).is_err());
    }
}
