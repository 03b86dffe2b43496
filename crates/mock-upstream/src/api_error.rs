//! Owns error responses: [`ApiError`], and how each upstream family shapes
//! an error body (Mastodon-style REST, OpenAI, Anthropic), so steward's
//! error parsing is tested against the shapes the real providers send.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which real API a path imitates; decides the error body shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Mastodon-style `{"error": "..."}`.
    Rest,
    /// `{"error": {"message", "type", "param", "code"}}`.
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`.
    Anthropic,
}

impl Flavor {
    /// The flavor of an upstream path.
    pub(crate) fn of_path(path: &str) -> Self {
        if path.starts_with("/v1/messages") {
            Self::Anthropic
        } else if path.starts_with("/v1/") {
            Self::OpenAi
        } else {
            Self::Rest
        }
    }
}

/// Everything a mock endpoint can refuse a request with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The body could not be parsed (400).
    #[error("malformed request body: {0}")]
    Malformed(String),
    /// The request parsed but asks for something invalid (400).
    #[error("{0}")]
    Invalid(String),
    /// REST validation failure, as Mastodon reports it (422).
    #[error("Validation failed: {0}")]
    Validation(String),
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The body exceeded the intake limit (413).
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// A status injected by a fault (pushed status, error rate, 429 fault,
    /// `x-mock-fault` header).
    #[error("{}", injected_message(*status))]
    Injected {
        /// The status to answer.
        status: StatusCode,
        /// Seconds for the `Retry-After` header (`u128`: tests send values
        /// too large for a `u64`, which a client must read as "not soon").
        retry_after: Option<u128>,
    },
}

impl ApiError {
    /// An injected status; codes outside `100..=999` become `500`.
    pub(crate) fn injected(status: u16, retry_after: Option<u128>) -> Self {
        Self::Injected {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            retry_after,
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Malformed(_) | Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Injected { status, .. } => *status,
        }
    }

    /// The response in `flavor`'s shape, with `Retry-After` when injected
    /// with one.
    pub(crate) fn to_response(&self, flavor: Flavor) -> Response {
        let status = self.status();
        let message = self.to_string();
        let body = match flavor {
            Flavor::Rest => json!({ "error": message }),
            Flavor::OpenAi => {
                let (kind, code) = openai_kind(status);
                json!({
                    "error": { "message": message, "type": kind, "param": null, "code": code }
                })
            }
            Flavor::Anthropic => json!({
                "type": "error",
                "error": { "type": anthropic_kind(status), "message": message },
            }),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::Injected { retry_after: Some(seconds), .. } = self
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

fn injected_message(status: StatusCode) -> String {
    match status.as_u16() {
        429 => "Rate limit exceeded (injected by mock-upstream)".to_owned(),
        503 => "Service unavailable (injected by mock-upstream)".to_owned(),
        529 => "Overloaded".to_owned(),
        code => format!("Status {code} injected by mock-upstream"),
    }
}

/// OpenAI's `error.type` and `error.code` for a status.
fn openai_kind(status: StatusCode) -> (&'static str, Option<&'static str>) {
    match status.as_u16() {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        404 => ("invalid_request_error", Some("not_found")),
        429 => ("requests", Some("rate_limit_exceeded")),
        code if code >= 500 => ("server_error", None),
        _ => ("invalid_request_error", None),
    }
}

/// Anthropic's `error.type` for a status.
fn anthropic_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        code if code >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavor_follows_the_path() {
        assert_eq!(Flavor::of_path("/v1/messages"), Flavor::Anthropic);
        assert_eq!(Flavor::of_path("/v1/chat/completions"), Flavor::OpenAi);
        assert_eq!(Flavor::of_path("/api/v1/statuses"), Flavor::Rest);
    }

    #[test]
    fn injected_429_carries_retry_after() {
        let response = ApiError::injected(429, Some(3)).to_response(Flavor::Rest);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn out_of_range_injected_status_becomes_500() {
        assert_eq!(ApiError::injected(42, None).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
