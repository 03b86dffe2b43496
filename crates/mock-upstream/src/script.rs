//! Owns scripted answers: a test queues a [`Script`] with
//! [`crate::MockUpstream::push_script`], and the next upstream request (of
//! any path, after recording and faults) is answered with it verbatim:
//! status, headers, the body frames one by one with a pause between them,
//! then a clean end, a connection held open, or a cut.
//!
//! This is how the settlement tests build a lying or broken provider
//! (usage sent twice, usage beyond `max_tokens`, `[DONE]` then silence, a
//! 500 carrying a whole stream...) and how the scrubbing tests deliver a
//! credential one byte per chunk: shapes the generated endpoints never make.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use futures_util::stream;

use crate::conn::ConnHandle;
use crate::paced::{Pacing, paced_body};
use crate::state::Shared;

/// Largest number of scripts queued at once.
///
/// Why: a test queues a handful; the bound keeps a runaway loop from
/// growing the mock without limit.
pub const MAX_SCRIPTS: usize = 10_000;

/// How a scripted body ends after its last frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScriptEnd {
    /// The body ends cleanly.
    #[default]
    Close,
    /// The body never ends: the connection stays open (until the client
    /// leaves or the mock shuts down), as an upstream that keeps a stream
    /// open after `[DONE]`.
    HoldOpen,
    /// The connection is dropped without a clean end, as a cut stream.
    Cut,
}

/// One scripted answer. See the module docs.
#[derive(Clone, Debug)]
pub struct Script {
    /// Status code.
    pub status: u16,
    /// Headers, in order (`content-type` included: nothing is added).
    pub headers: Vec<(String, String)>,
    /// Body frames, written one by one.
    pub frames: Vec<Bytes>,
    /// Pause before every frame but the first (0: none).
    pub delay: Duration,
    /// What happens after the last frame.
    pub end: ScriptEnd,
}

impl Script {
    /// A 200 `text/event-stream` of `frames` that ends cleanly.
    pub fn sse(frames: impl IntoIterator<Item = impl Into<Bytes>>) -> Script {
        Script {
            status: 200,
            headers: vec![("content-type".to_owned(), "text/event-stream".to_owned())],
            frames: frames.into_iter().map(Into::into).collect(),
            delay: Duration::ZERO,
            end: ScriptEnd::Close,
        }
    }

    /// A 200 `application/json` body.
    pub fn json(body: impl Into<Bytes>) -> Script {
        Script { headers: vec![("content-type".to_owned(), "application/json".to_owned())], ..Script::sse([body]) }
    }

    /// This script with another status.
    #[must_use]
    pub fn status(mut self, status: u16) -> Script {
        self.status = status;
        self
    }

    /// This script with one more header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Script {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// This script ending as `end`.
    #[must_use]
    pub fn ending(mut self, end: ScriptEnd) -> Script {
        self.end = end;
        self
    }

    /// This script with `delay` between frames.
    #[must_use]
    pub fn paced(mut self, delay: Duration) -> Script {
        self.delay = delay;
        self
    }

    /// This script with its body re-split into frames of `size` bytes (at
    /// least one), e.g. one byte per frame.
    #[must_use]
    pub fn split(mut self, size: usize) -> Script {
        let body: Vec<u8> = self.frames.concat();
        self.frames = body.chunks(size.max(1)).map(Bytes::copy_from_slice).collect();
        self
    }
}

/// The queue of scripts, FIFO.
#[derive(Debug, Default)]
pub(crate) struct Scripts {
    queue: VecDeque<Script>,
}

impl Scripts {
    /// Queues `script` (dropped when [`MAX_SCRIPTS`] are already queued).
    pub(crate) fn push(&mut self, script: Script) {
        if self.queue.len() < MAX_SCRIPTS {
            self.queue.push_back(script);
        }
    }

    /// The next script, if any.
    pub(crate) fn next(&mut self) -> Option<Script> {
        self.queue.pop_front()
    }
}

/// The response `script` describes.
pub(crate) fn respond(script: Script, shared: &Shared, conn: ConnHandle) -> Response<Body> {
    let total = script.frames.len();
    let pacing = Pacing {
        delay: script.delay,
        paced_frames: usize::MAX,
        cut_after: (script.end == ScriptEnd::Cut).then_some(total),
        shutdown: shared.shutdown.clone(),
        conn,
    };
    let body = match script.end {
        ScriptEnd::HoldOpen => {
            let shutdown = shared.shutdown.clone();
            let frames = paced_body(script.frames.into_iter(), pacing).into_data_stream();
            let forever = stream::once(async move {
                shutdown.cancelled().await;
                Err::<Bytes, _>(io::Error::other("mock-upstream is shutting down"))
            });
            use futures_util::StreamExt as _;
            Body::from_stream(frames.map(|frame| frame.map_err(io::Error::other)).chain(forever))
        }
        ScriptEnd::Close | ScriptEnd::Cut => paced_body(script.frames.into_iter(), pacing),
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(script.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &script.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
