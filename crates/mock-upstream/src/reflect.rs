//! Owns `/reflect`: an upstream that hands the credential it received back,
//! as a debugging or careless API does, so steward's tests can prove that
//! no credential it injected reaches the agent through a response.
//!
//! The credential is the `Authorization` value without its scheme (`Bearer
//! TOKEN` → `TOKEN`), else `x-api-key`. It comes back in:
//! - `X-Debug-Token: TOKEN`;
//! - `Set-Cookie: session=base64(TOKEN); Path=/`;
//! - `Location: /callback?token=<TOKEN percent-encoded>` (any status; a
//!   redirect with `?status=302`);
//! - the body: JSON `{"authorization": "Bearer TOKEN", "token": "TOKEN",
//!   "basic": base64("user:TOKEN")}`, or with `?sse=1` an SSE stream of
//!   one event per field, then `data: [DONE]`.
//!
//! Query knobs: `status` (default 200), `sse` (`1`: an event stream),
//! `chunk` (bytes per body frame, default the whole body), `delay_ms`
//! (pause between frames, so each frame reaches the client on its own).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::json;

use crate::api_error::{ApiError, Flavor};
use crate::conn::ConnHandle;
use crate::rest::MAX_DELAY_MS;
use crate::script::Script;
use crate::state::Shared;

/// Query of `/reflect`.
#[derive(Debug, Deserialize)]
pub(crate) struct ReflectQuery {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    sse: u8,
    chunk: Option<usize>,
    #[serde(default)]
    delay_ms: u64,
}

fn ok() -> u16 {
    200
}

/// `/reflect` (any method). See the module docs.
pub(crate) async fn reflect(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnHandle>,
    headers: HeaderMap,
    query: Result<Query<ReflectQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) if (100..=599).contains(&query.status) && query.delay_ms <= MAX_DELAY_MS => query,
        Ok(_) => {
            return ApiError::Invalid(format!("status must be 100..=599, delay_ms <= {MAX_DELAY_MS}"))
                .to_response(Flavor::Rest);
        }
        Err(rejection) => return ApiError::Invalid(rejection.body_text()).to_response(Flavor::Rest),
    };
    let authorization = headers
        .get("authorization")
        .or_else(|| headers.get("x-api-key"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let token = authorization.split_once(' ').map_or(authorization.as_str(), |(_, t)| t).to_owned();
    let fields = [
        ("authorization", authorization.clone()),
        ("token", token.clone()),
        ("basic", STANDARD.encode(format!("user:{token}"))),
    ];
    let script = if query.sse == 1 {
        let mut frames: Vec<String> =
            fields.iter().map(|(name, value)| format!("data: {}\n\n", json!({ *name: value }))).collect();
        frames.push("data: [DONE]\n\n".to_owned());
        Script::sse(frames)
    } else {
        let body = serde_json::Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), json!(v))).collect());
        Script::json(body.to_string())
    };
    let mut script = script
        .status(query.status)
        .header("x-debug-token", &token)
        .header("set-cookie", &format!("session={}; Path=/", STANDARD.encode(&token)))
        .header("location", &format!("/callback?token={}", utf8_percent_encode(&token, NON_ALPHANUMERIC)))
        .paced(Duration::from_millis(query.delay_ms));
    if let Some(size) = query.chunk {
        script = script.split(size);
    }
    crate::script::respond(script, &shared, conn)
}
