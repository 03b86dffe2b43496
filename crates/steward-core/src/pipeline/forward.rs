//! Forwarding: one HTTP client per upstream, credential injection, header
//! hygiene and the retry loop.
//!
//! The URL is built from the call's canonical path, segment by segment, on
//! the upstream's parsed base URL ([`canonical_path::CanonicalPath::join_onto`]),
//! never by concatenating strings that a URL parser could read differently
//! from the tool matcher (`\\` as `/`, `..` resolved).
//!
//! The agent's own `Authorization` / `x-api-key` never leave steward; the
//! configured credential is injected at the moment of sending, marked
//! sensitive so no debug output shows it. Redirects are never followed, so an
//! injected credential cannot travel to another host. Hop-by-hop headers are
//! dropped both ways.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;

use super::Call;
use super::retry::{self, MAX_ATTEMPTS, MAX_DELAY};
use crate::config::{RetryPolicy, UpstreamConfig};
use crate::secrets::Secrets;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1),
/// plus `host` and `content-length`, which the client recomputes.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Headers through which agents present the steward token; never forwarded.
const AGENT_AUTH_HEADERS: &[&str] = &["authorization", "x-api-key"];

/// Asked of every upstream: a body steward can scrub of credentials as it
/// streams (a compressed one would hide them), and read usage from.
const ACCEPT_ENCODING: &str = "identity";

/// Idle pooled connections kept per upstream host: enough for bursts at 10k RPS
/// without holding hundreds of sockets open.
const POOL_IDLE_PER_HOST: usize = 64;

/// Why forwarding produced no response.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Connect failure, reset, or protocol error on every allowed attempt.
    #[error("upstream unreachable after {attempts} attempt(s): {detail}")]
    Unreachable {
        /// Attempts made.
        attempts: u32,
        /// Redacted error chain for the operator's log.
        detail: String,
    },
    /// Connect or read timeout.
    #[error("upstream timed out after {attempts} attempt(s)")]
    Timeout {
        /// Attempts made.
        attempts: u32,
    },
    /// The upstream is not configured or a header could not be built.
    #[error("cannot build the upstream request: {0}")]
    Build(String),
}

/// A response from upstream (possibly a non-2xx one) and how many attempts it took.
#[derive(Debug)]
pub struct Forwarded {
    /// Headers received; the body is still streaming.
    pub response: reqwest::Response,
    /// Attempts made, the first included.
    pub attempts: u32,
}

/// One upstream as the forwarder holds it.
#[derive(Debug)]
struct Upstream {
    config: UpstreamConfig,
    /// `config.base_url`, parsed once: every call's path is joined onto it.
    base: url::Url,
    client: reqwest::Client,
}

/// Sends calls upstream.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: HashMap<String, Upstream>,
    secrets: Arc<ArcSwap<Secrets>>,
}

impl Forwarder {
    /// Builds one connection-pooled client per upstream with its timeouts.
    /// Keys are the pipeline's forwarding keys (see `Pipeline::forward_key`).
    pub fn new(
        upstreams: impl IntoIterator<Item = (String, UpstreamConfig)>,
        secrets: Arc<ArcSwap<Secrets>>,
    ) -> Result<Self, ForwardError> {
        let mut map = HashMap::new();
        for (name, upstream) in upstreams {
            let client = crate::outbound::client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(upstream.connect_timeout)
                .read_timeout(upstream.read_timeout)
                .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
                .tcp_nodelay(true)
                .build()
                .map_err(|e| ForwardError::Build(format!("client for upstream `{name}`: {e}")))?;
            let base = url::Url::parse(&upstream.base_url)
                .map_err(|e| ForwardError::Build(format!("base_url of upstream `{name}`: {e}")))?;
            map.insert(name, Upstream { config: upstream, base, client });
        }
        Ok(Self { upstreams: map, secrets })
    }

    /// Whether `name` is a configured upstream.
    pub fn has_upstream(&self, name: &str) -> bool {
        self.upstreams.contains_key(name)
    }

    /// The credential injected on the upstream under `key`, if any.
    pub fn credential_of(&self, key: &str) -> Option<&str> {
        self.upstreams.get(key).and_then(|upstream| upstream.config.credential.as_deref())
    }

    /// Forwards `call` with `body` to the upstream under `key`, retrying as
    /// `retry` allows: connect failures (no byte sent) always; 429/502/503/504
    /// and read errors only when idempotent. Never retries once a response is
    /// handed back.
    pub async fn send(
        &self,
        key: &str,
        call: &Call,
        body: &Bytes,
        retry: RetryPolicy,
    ) -> Result<Forwarded, ForwardError> {
        let Upstream { config: upstream, base, client } =
            self.upstreams.get(key).ok_or_else(|| ForwardError::Build(format!("unknown upstream `{key}`")))?;
        let idempotent = retry == RetryPolicy::Idempotent;
        let headers = self.upstream_headers(call, upstream)?;
        let mut url = call.path.join_onto(base).map_err(|e| ForwardError::Build(e.to_string()))?;
        url.set_query(call.query.as_ref().map(canonical_path::CanonicalQuery::as_str));

        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = client
                .request(call.method.clone(), url.clone())
                .headers(headers.clone())
                .body(body.clone())
                .send()
                .await;
            let last = attempt >= MAX_ATTEMPTS;
            match result {
                Ok(response) => {
                    let retryable_status = matches!(response.status().as_u16(), 429 | 502 | 503 | 504);
                    if !idempotent || !retryable_status || last {
                        return Ok(Forwarded { response, attempts: attempt });
                    }
                    let wait = match response.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()) {
                        Some(value) => match retry::parse_retry_after(value, SystemTime::now()) {
                            // The upstream asks for longer than we hold a call open: hand its answer back.
                            Some(wait) if wait > MAX_DELAY => return Ok(Forwarded { response, attempts: attempt }),
                            Some(wait) => wait,
                            None => retry::backoff(attempt - 1),
                        },
                        None => retry::backoff(attempt - 1),
                    };
                    drop(response);
                    tokio::time::sleep(wait).await;
                }
                Err(err) => {
                    // A connect error means no byte of the request left steward: safe for any tool.
                    let safe = err.is_connect() || idempotent;
                    if !safe || last {
                        return Err(classify(&err, attempt));
                    }
                    tokio::time::sleep(retry::backoff(attempt - 1)).await;
                }
            }
        }
    }

    fn upstream_headers(&self, call: &Call, upstream: &UpstreamConfig) -> Result<HeaderMap, ForwardError> {
        let mut headers = HeaderMap::with_capacity(call.headers.len() + 1);
        let connection_named = connection_tokens(&call.headers);
        for (name, value) in &call.headers {
            let lower = name.as_str();
            if HOP_BY_HOP.contains(&lower)
                || AGENT_AUTH_HEADERS.contains(&lower)
                || lower == "accept-encoding"
                || lower.eq_ignore_ascii_case(&upstream.auth.header)
                || connection_named.iter().any(|c| c.eq_ignore_ascii_case(lower))
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        headers.insert(http::header::ACCEPT_ENCODING, HeaderValue::from_static(ACCEPT_ENCODING));
        if let Some(credential) = &upstream.credential {
            let secrets = self.secrets.load();
            let secret = secrets
                .get(credential)
                .ok_or_else(|| ForwardError::Build(format!("credential `{credential}` is not loaded")))?;
            let name = HeaderName::from_bytes(upstream.auth.header.as_bytes())
                .map_err(|_| ForwardError::Build(format!("invalid auth header name `{}`", upstream.auth.header)))?;
            let rendered = upstream.auth.format.replace("{secret}", secret.expose_secret());
            let mut value = HeaderValue::from_str(&rendered).map_err(|_| {
                ForwardError::Build(format!("credential `{credential}` contains bytes not allowed in a header"))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(headers)
    }
}

/// Copies upstream response headers for the agent, minus hop-by-hop ones.
/// `content-length` is kept: the body is relayed byte for byte.
pub fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let connection_named = connection_tokens(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let lower = name.as_str();
        if (HOP_BY_HOP.contains(&lower) && lower != "content-length")
            || connection_named.iter().any(|c| c.eq_ignore_ascii_case(lower))
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Header names listed in `Connection`, which are hop-by-hop too.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn classify(err: &reqwest::Error, attempts: u32) -> ForwardError {
    if err.is_timeout() {
        return ForwardError::Timeout { attempts };
    }
    // reqwest errors can embed the URL; the query may hold user data, so keep only the kind.
    let kind = if err.is_connect() {
        "connect failed"
    } else if err.is_request() {
        "request failed"
    } else if err.is_body() {
        "body error"
    } else {
        "connection error"
    };
    let mut detail = kind.to_owned();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        source = inner.source();
    }
    ForwardError::Unreachable { attempts, detail }
}
