//! Owns streaming response bodies: frames sent one by one with an optional
//! pause between them, an optional cut (connection dropped without a clean
//! end after N frames) and an early, unclean end on shutdown.

use std::io;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::stream;
use tokio_util::sync::CancellationToken;

use crate::conn::ConnHandle;

/// How a stream of frames is paced and whether it is cut.
#[derive(Clone, Debug)]
pub(crate) struct Pacing {
    /// Pause between frames (none before the first).
    pub delay: Duration,
    /// Frames after this many are sent without a pause: what a provider
    /// sends once generation is over (a usage chunk, `[DONE]`) follows the
    /// last generated event at once. `usize::MAX`: every frame is paced.
    pub paced_frames: usize,
    /// Drop the connection after this many frames, when fewer than all.
    pub cut_after: Option<usize>,
    /// The server's shutdown signal: the stream stops early when it fires.
    pub shutdown: CancellationToken,
    /// The connection to cut.
    pub conn: ConnHandle,
}

struct PaceState<I> {
    frames: I,
    sent: usize,
    pacing: Pacing,
    finished: bool,
}

/// A body that yields `frames` according to `pacing`.
///
/// A cut does not end the body with an error (hyper would then discard the
/// frames it still buffers); it asks the connection to close once those
/// frames are flushed, and the body never ends. See [`crate::conn`].
pub(crate) fn paced_body<I>(frames: I, pacing: Pacing) -> Body
where
    I: Iterator<Item = Bytes> + Send + 'static,
{
    let state = PaceState { frames, sent: 0, pacing, finished: false };
    Body::from_stream(stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        if state.pacing.cut_after == Some(state.sent) {
            state.pacing.conn.cut_after_flush();
            // Wait for the connection task to drop us; shutdown is the backstop.
            state.pacing.shutdown.cancelled().await;
            state.finished = true;
            return Some((Err(io::Error::other("stream cut by mock-upstream")), state));
        }
        let frame = state.frames.next()?;
        if state.sent > 0 && state.sent < state.pacing.paced_frames && !state.pacing.delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(state.pacing.delay) => {}
                () = state.pacing.shutdown.cancelled() => {
                    state.finished = true;
                    return Some((Err(io::Error::other("mock-upstream is shutting down")), state));
                }
            }
        }
        state.sent += 1;
        Some((Ok(frame), state))
    }))
}

/// Where a stream of `total` frames is cut: after the configured
/// [`crate::Faults::cut_stream_after`], or after half the frames when the
/// request asked for `x-mock-fault: cut`, whichever comes first.
pub(crate) fn cut_point(total: usize, configured: Option<usize>, cut_header: bool) -> Option<usize> {
    let from_header = cut_header.then_some(total / 2);
    match (configured, from_header) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_point_takes_the_earliest_request() {
        assert_eq!(cut_point(10, None, false), None);
        assert_eq!(cut_point(10, Some(3), false), Some(3));
        assert_eq!(cut_point(10, None, true), Some(5));
        assert_eq!(cut_point(10, Some(7), true), Some(5));
        assert_eq!(cut_point(10, Some(2), true), Some(2));
    }
}
