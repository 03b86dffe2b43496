//! Owns the control API under `/__mock/`, which lets a separate process
//! (the `mock-upstream` binary's users) do what in-process tests do through
//! [`crate::MockUpstream`]: read and clear the request log, set faults and
//! queue statuses. Control requests are neither recorded nor faulted.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use crate::api_error::{ApiError, Flavor};
use crate::faults::{Faults, FaultsWire};
use crate::state::{Shared, lock};

/// `GET /__mock/requests`: the request log as a JSON array.
pub(crate) async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    let requests: Vec<Value> = shared.recorder.snapshot().iter().map(crate::RecordedRequest::to_wire).collect();
    Json(requests).into_response()
}

/// `DELETE /__mock/requests`.
pub(crate) async fn clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.recorder.clear();
    StatusCode::NO_CONTENT
}

/// `GET /__mock/faults`: the current faults (remaining resets included).
pub(crate) async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    let faults = lock(&shared.faults).faults();
    Json(FaultsWire::from(&faults)).into_response()
}

/// `PUT /__mock/faults`: replaces the faults; body is [`FaultsWire`] JSON
/// (every field optional, latency as `latency_ms`).
pub(crate) async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let wire: FaultsWire = match serde_json::from_slice(&body) {
        Ok(wire) => wire,
        Err(error) => return ApiError::Malformed(error.to_string()).to_response(Flavor::Rest),
    };
    if !(0.0..=1.0).contains(&wire.error_rate) {
        return ApiError::Invalid("error_rate must be within 0..=1".to_owned()).to_response(Flavor::Rest);
    }
    lock(&shared.faults).set(Faults::from(wire));
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /__mock/status/{code}`: the next upstream request answers `code`.
pub(crate) async fn push_status(State(shared): State<Arc<Shared>>, Path(code): Path<String>) -> Response {
    match code.parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) => {
            lock(&shared.faults).push_status(code);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => ApiError::Invalid(format!("{code:?} is not a status code 100..=599")).to_response(Flavor::Rest),
    }
}
