//! The static assets, compiled into the binary: one stylesheet (light and
//! dark through `prefers-color-scheme`, readable on a phone) and one small
//! script (live updates over `EventSource`; every action works without it).

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

const STYLE: &str = include_str!("assets/style.css");
const LIVE: &str = include_str!("assets/live.js");

pub(super) async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "live.js" => (LIVE, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "private, max-age=300")], body).into_response()
}
