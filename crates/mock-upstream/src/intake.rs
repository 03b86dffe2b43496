//! Owns the path every request takes before routing: collect the body,
//! record the request, apply the faults (server-wide [`crate::Faults`] and
//! the per-request `x-mock-fault` header), wait out the latency, then
//! answer with a queued [`crate::Script`] or hand the request to the axum
//! router. Control routes (`/__mock/*`) skip the
//! recording and the faults.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tower::Service;

use crate::api_error::{ApiError, Flavor};
use crate::conn::ConnHandle;
use crate::faults::Verdict;
use crate::state::{Shared, lock};

/// Largest request body the mock accepts.
///
/// Why: the body is buffered for recording; this keeps a runaway client
/// from exhausting memory, while staying far above any real API payload.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Prefix of the control API, exempt from recording and faults.
pub(crate) const CONTROL_PREFIX: &str = "/__mock/";

/// Per-request fault header (see the crate docs for its values).
pub(crate) const FAULT_HEADER: &str = "x-mock-fault";

/// Header overriding the `Retry-After` of an `x-mock-fault: 429`.
const RETRY_AFTER_HEADER: &str = "x-mock-retry-after";

/// `Retry-After` of an `x-mock-fault: 429` without an override.
const DEFAULT_FAULT_RETRY_AFTER: u64 = 1;

/// Handles one request from hyper; never fails (errors become responses).
pub(crate) async fn handle(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    mut router: Router,
    conn: ConnHandle,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let flavor = Flavor::of_path(parts.uri.path());
    let body: Bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let refusal = if error.is::<http_body_util::LengthLimitError>() {
                ApiError::TooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::Malformed(format!("could not read the body: {error}"))
            };
            return Ok(refusal.to_response(flavor));
        }
    };

    if !parts.uri.path().starts_with(CONTROL_PREFIX) {
        shared.recorder.record(&parts, &body);
        let (verdict, latency) = {
            let mut faults = lock(&shared.faults);
            (faults.decide(), faults.latency())
        };
        let verdict = match verdict {
            Verdict::Proceed => header_verdict(&parts.headers),
            other => Ok(other),
        };
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(refusal) => return Ok(refusal.to_response(flavor)),
        };
        match verdict {
            Verdict::Reset => {
                conn.reset();
                // The connection task drops this future with the socket.
                return std::future::pending().await;
            }
            Verdict::Respond { status, retry_after } => {
                sleep(latency).await;
                return Ok(ApiError::injected(status, retry_after).to_response(flavor));
            }
            Verdict::Proceed => sleep(latency).await,
        }
        let script = lock(&shared.scripts).next();
        if let Some(script) = script {
            return Ok(crate::script::respond(script, &shared, conn));
        }
    }

    parts.extensions.insert(conn);
    let request = Request::from_parts(parts, Body::from(body));
    router.call(request).await
}

async fn sleep(latency: std::time::Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

/// The verdict of the `x-mock-fault` header: `reset`, or a status code
/// (`429` comes with `Retry-After`, from `x-mock-retry-after` or 1). `cut`
/// is left to the streaming handlers; anything else is refused with 400 so
/// a typo in a test does not silently pass.
fn header_verdict(headers: &axum::http::HeaderMap) -> Result<Verdict, ApiError> {
    let Some(value) = headers.get(FAULT_HEADER) else {
        return Ok(Verdict::Proceed);
    };
    let value = value.to_str().unwrap_or_default().trim();
    if value.eq_ignore_ascii_case("cut") {
        return Ok(Verdict::Proceed);
    }
    if value.eq_ignore_ascii_case("reset") {
        return Ok(Verdict::Reset);
    }
    match value.parse::<u16>() {
        Ok(status) if (100..=599).contains(&status) => {
            let retry_after = (status == 429).then(|| {
                headers
                    .get(RETRY_AFTER_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(u128::from(DEFAULT_FAULT_RETRY_AFTER))
            });
            Ok(Verdict::Respond { status, retry_after })
        }
        _ => Err(ApiError::Invalid(format!(
            "unknown {FAULT_HEADER} value {value:?}: use cut, reset or a status code 100..=599"
        ))),
    }
}

/// Whether the request asked for `x-mock-fault: cut`.
pub(crate) fn wants_cut(headers: &axum::http::HeaderMap) -> bool {
    headers.get(FAULT_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim().eq_ignore_ascii_case("cut"))
}
