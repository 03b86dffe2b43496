//! Owns the route table: which handler serves which method and path.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::response::Response;
use axum::routing::{any, get, post};

use crate::api_error::{ApiError, Flavor};
use crate::llm::{anthropic, openai};
use crate::state::Shared;
use crate::{control, mcp, reflect, rest};

/// The router for one mock instance.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(rest::health))
        .route("/api/v1/statuses", post(rest::create_status).get(rest::list_statuses))
        .route("/api/v1/statuses/{id}", get(rest::get_status).delete(rest::delete_status))
        .route("/redirect", any(rest::redirect))
        .route("/stream", get(rest::stream))
        .route("/echo", post(rest::echo))
        .route("/reflect", any(reflect::reflect))
        .route("/mcp", post(mcp::post).get(mcp::not_offered).delete(mcp::not_offered))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/responses", post(openai::responses))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/messages", post(anthropic::messages))
        .route("/__mock/requests", get(control::requests).delete(control::clear_requests))
        .route("/__mock/faults", get(control::faults).put(control::set_faults))
        .route("/__mock/status/{code}", post(control::push_status))
        .fallback(not_found)
        // The intake already buffered and capped the body.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn not_found(uri: Uri) -> Response {
    ApiError::NotFound(format!("no mock endpoint at {}", uri.path())).to_response(Flavor::of_path(uri.path()))
}
