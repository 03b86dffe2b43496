//! RFC 7662 token introspection: asking an upstream's authorization server
//! (`[upstreams.NAME] introspection_url`) what the injected token really is
//! (active or not, which scopes, when it expires) and comparing that with
//! the credential's declaration.
//!
//! The daemon asks at start, after every successful credential reload and
//! once a day, in the background ([`spawn`]): a slow or failing endpoint
//! never delays the start or a call, and a failure is a warning, never a
//! refusal. Each outcome is logged and recorded in the store under
//! [`INTROSPECTION_KEY_PREFIX`]`<upstream>` for `steward doctor`.
//!
//! Nothing here writes or returns the token, the client secret or the raw
//! response body (an endpoint may echo the token in it): errors name what
//! went wrong (status, timeout, shape), the caller adds the upstream and the
//! credential, and every string the endpoint sent that is kept (the scopes)
//! passes through the redactor, which knows every credential value.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zeroize::Zeroizing;

use super::Secrets;
use super::scopes::{ScopeComparison, compare_scopes, log_mismatch};
use crate::clock::{format_day, unix_ms};
use crate::config::Config;
use crate::redaction::SharedRedactor;
use crate::store::Store;

/// How long one introspection request may take, connect included: the
/// endpoint is asked in the background, but a hung one must not pile up checks.
pub const INTROSPECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest introspection response read (64 KiB): RFC 7662 answers are a few
/// hundred bytes; anything larger is not one.
pub const MAX_INTROSPECTION_BYTES: usize = 64 * 1024;

/// Store key prefix of the latest outcome per upstream (`scopes.introspection.social`).
pub const INTROSPECTION_KEY_PREFIX: &str = "scopes.introspection.";

/// How often the daemon asks again besides at start and after a reload: a
/// token's scopes change rarely, and a daily check catches a revoked token
/// or a widened grant within a day.
pub const INTROSPECT_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The `token_type_hint` sent: steward injects access tokens.
const TOKEN_TYPE_HINT: &str = "access_token";

/// How steward authenticates itself to the introspection endpoint.
#[derive(Clone, Copy)]
pub enum ClientAuth<'a> {
    /// No `introspection_credential`: the token itself, as a Bearer token.
    Token,
    /// HTTP Basic with the client's id and secret (RFC 6749 §2.3.1).
    Basic {
        /// The OAuth client id.
        client_id: &'a str,
        /// The OAuth client secret.
        client_secret: &'a str,
    },
}

impl std::fmt::Debug for ClientAuth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Token => f.write_str("Token"),
            ClientAuth::Basic { client_id, .. } => f.debug_struct("Basic").field("client_id", client_id).finish(),
        }
    }
}

impl<'a> ClientAuth<'a> {
    /// Splits an `introspection_credential` value `client_id:client_secret`
    /// at its first colon (a client id cannot hold one in HTTP Basic);
    /// `None` when there is no colon or either part is empty.
    pub fn from_value(value: &'a SecretString) -> Option<Self> {
        let (client_id, client_secret) = value.expose_secret().split_once(':')?;
        (!client_id.is_empty() && !client_secret.is_empty()).then_some(ClientAuth::Basic { client_id, client_secret })
    }
}

/// What the endpoint said about an active token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// `scope` as reported (space-separated); `None` when the endpoint
    /// reports none, so nothing can be compared.
    pub scope: Option<String>,
    /// `exp`: when the token stops working, if the endpoint says.
    pub expires: Option<SystemTime>,
    /// `client_id` the token was issued to, if the endpoint says.
    pub client_id: Option<String>,
}

/// Why the endpoint gave no usable answer, or an answer that is bad news.
/// No variant holds the token, the client secret or the response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectError {
    /// `active: false`: revoked, expired or never valid.
    #[error("the upstream says the token is not active: rotate it, then `steward secrets reload`")]
    Inactive,
    /// The endpoint could not be reached.
    #[error("cannot reach the introspection endpoint; check introspection_url")]
    Unreachable,
    /// No complete answer within [`INTROSPECTION_TIMEOUT`].
    #[error("the introspection endpoint did not answer within {}s", INTROSPECTION_TIMEOUT.as_secs())]
    Timeout,
    /// The endpoint refused steward (401/403).
    #[error(
        "the introspection endpoint refused steward (HTTP {status}); set introspection_credential to a \
         credential holding client_id:client_secret, or check that one"
    )]
    Unauthorized {
        /// The HTTP status.
        status: u16,
    },
    /// Any other non-200 answer.
    #[error("the introspection endpoint answered HTTP {status}")]
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// The body is not an RFC 7662 answer.
    #[error("the introspection endpoint's answer is not an RFC 7662 JSON object with `active`")]
    Malformed,
    /// The body is larger than [`MAX_INTROSPECTION_BYTES`].
    #[error("the introspection endpoint's answer is larger than {MAX_INTROSPECTION_BYTES} bytes")]
    TooLarge,
    /// The `introspection_credential` value is not `client_id:client_secret`.
    #[error("introspection_credential `{credential}` does not hold client_id:client_secret")]
    BadClientCredential {
        /// Its name.
        credential: String,
    },
    /// A credential the check needs did not resolve.
    #[error("credential `{credential}` is not loaded")]
    CredentialMissing {
        /// Its name.
        credential: String,
    },
}

/// The RFC 7662 fields steward reads; others (`sub`, `username`, which may
/// echo identities) are skipped unread.
#[derive(serde::Deserialize)]
struct Response {
    /// Required by RFC 7662.
    active: bool,
    /// Space-separated scopes (a list from servers that bend the RFC).
    scope: Option<ScopeField>,
    /// Seconds since the epoch (some servers send a float).
    exp: Option<f64>,
    /// The client the token was issued to.
    client_id: Option<String>,
}

/// `scope` as RFC 7662 writes it, or as a JSON list.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ScopeField {
    /// `"a b c"`
    Text(String),
    /// `["a", "b", "c"]`
    List(Vec<String>),
}

impl ScopeField {
    /// Space-separated, as RFC 7662 has it.
    fn into_text(self) -> String {
        match self {
            ScopeField::Text(text) => text,
            ScopeField::List(list) => list.join(" "),
        }
    }
}

/// POSTs `token=<token>&token_type_hint=access_token` to `url` (RFC 7662
/// §2.1), authenticated by `client_auth`, and reads the answer. An inactive
/// token is an error ([`IntrospectError::Inactive`]).
pub async fn introspect(
    client: &reqwest::Client,
    url: &str,
    token: &SecretString,
    client_auth: ClientAuth<'_>,
) -> Result<Introspection, IntrospectError> {
    // reqwest takes the buffer over and does not zeroize it, as it does not
    // for the header the forwarder injects; no copy is made here.
    let body = format!(
        "token={}&token_type_hint={TOKEN_TYPE_HINT}",
        percent_encoding::utf8_percent_encode(token.expose_secret(), percent_encoding::NON_ALPHANUMERIC)
    );
    let mut request = client
        .post(url)
        .timeout(INTROSPECTION_TIMEOUT)
        .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(http::header::ACCEPT, "application/json")
        .body(body);
    request = match client_auth {
        ClientAuth::Token => request.bearer_auth(token.expose_secret()),
        ClientAuth::Basic { client_id, client_secret } => request.basic_auth(client_id, Some(client_secret)),
    };
    let transport =
        |e: reqwest::Error| if e.is_timeout() { IntrospectError::Timeout } else { IntrospectError::Unreachable };
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    match status {
        200 => {}
        401 | 403 => return Err(IntrospectError::Unauthorized { status }),
        _ => return Err(IntrospectError::Status { status }),
    }
    let mut raw = Zeroizing::new(Vec::new());
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if raw.len() + chunk.len() > MAX_INTROSPECTION_BYTES {
            return Err(IntrospectError::TooLarge);
        }
        raw.extend_from_slice(&chunk);
    }
    let parsed: Response = serde_json::from_slice(&raw).map_err(|_| IntrospectError::Malformed)?;
    if !parsed.active {
        return Err(IntrospectError::Inactive);
    }
    // What is kept of the answer must not carry what steward sent, whatever
    // the endpoint echoes; the redactor catches the encoded forms later.
    let mut sent = vec![token.expose_secret()];
    if let ClientAuth::Basic { client_secret, .. } = client_auth {
        sent.push(client_secret);
    }
    let scrub = |text: String| sent.iter().fold(text, |text, secret| text.replace(secret, "[REDACTED]"));
    let expires = parsed
        .exp
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs_f64(secs.min(1e12))));
    let scope = parsed.scope.map(|field| scrub(field.into_text()));
    Ok(Introspection { scope, expires, client_id: parsed.client_id.map(scrub) })
}

/// The latest outcome for one upstream, as recorded in the store (key
/// [`INTROSPECTION_KEY_PREFIX`]`<upstream>`) and read by `steward doctor`.
/// Every string in it passed the redactor.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IntrospectionRecord {
    /// When the endpoint was asked (Unix ms).
    pub at_ms: i64,
    /// The token is active and the reported scopes are exactly the declared ones, none forbidden.
    pub ok: bool,
    /// What the endpoint said about the token; `None` when it gave no usable answer.
    pub active: Option<bool>,
    /// The scopes it reports, lower-cased and sorted; `None` when it reports none.
    pub reported: Option<Vec<String>>,
    /// Reported but not declared.
    pub undeclared: Vec<String>,
    /// Declared but not reported.
    pub missing: Vec<String>,
    /// Reported and forbidden by `[policy] forbidden_scopes`.
    pub forbidden: Vec<String>,
    /// Why the check did not pass when it is not a scope mismatch (inactive,
    /// unreachable, no scope reported).
    pub error: Option<String>,
    /// `exp` as the endpoint reports it (Unix ms), when it does.
    pub expires_at_ms: Option<i64>,
}

impl IntrospectionRecord {
    /// Builds the record of `outcome` at `at_ms`: the reported scopes go
    /// through `redactor`, then [`compare_scopes`] against `declared` and
    /// `forbidden`.
    pub fn new(
        outcome: &Result<Introspection, IntrospectError>,
        declared: &[String],
        forbidden: &[String],
        redactor: &redact::Redactor,
        at_ms: i64,
    ) -> Self {
        let introspection = match outcome {
            Ok(introspection) => introspection,
            Err(err) => {
                let active = matches!(err, IntrospectError::Inactive).then_some(false);
                return Self { at_ms, active, error: Some(err.to_string()), ..Self::default() };
            }
        };
        let expires_at_ms = introspection.expires.map(unix_ms);
        let Some(scope) = &introspection.scope else {
            return Self {
                at_ms,
                active: Some(true),
                error: Some(
                    "the introspection endpoint reports no scope, so the declaration cannot be compared".into(),
                ),
                expires_at_ms,
                ..Self::default()
            };
        };
        let comparison = compare_scopes(&redactor.redact(scope), declared, forbidden);
        let ok = comparison.matches();
        let ScopeComparison { reported, undeclared, missing, forbidden } = comparison;
        Self {
            at_ms,
            ok,
            active: Some(true),
            reported: Some(reported),
            undeclared,
            missing,
            forbidden,
            error: None,
            expires_at_ms,
        }
    }

    /// The scope comparison, when the endpoint reported scopes.
    pub fn comparison(&self) -> Option<ScopeComparison> {
        Some(ScopeComparison {
            reported: self.reported.clone()?,
            undeclared: self.undeclared.clone(),
            missing: self.missing.clone(),
            forbidden: self.forbidden.clone(),
        })
    }
}

/// The store key of `upstream`'s record.
pub fn record_key(upstream: &str) -> String {
    format!("{INTROSPECTION_KEY_PREFIX}{upstream}")
}

/// Reads `upstream`'s latest record; `None` when never checked (or unreadable).
pub async fn load_record(store: &Store, upstream: &str) -> Option<IntrospectionRecord> {
    let text = store.kv_get(&record_key(upstream)).await.ok()??;
    serde_json::from_str(&text).ok()
}

/// Names of the upstreams that have an `introspection_url`.
pub fn introspected_upstreams(config: &Config) -> impl Iterator<Item = &str> {
    config.upstreams.iter().filter(|(_, u)| u.introspection_url.is_some()).map(|(name, _)| name.as_str())
}

/// Asks `upstream`'s introspection endpoint about its token and builds the
/// record; `None` when the upstream has no `introspection_url` or no credential.
pub async fn check_upstream(
    config: &Config,
    upstream: &str,
    secrets: &Secrets,
    redactor: &redact::Redactor,
    client: &reqwest::Client,
    now: SystemTime,
) -> Option<IntrospectionRecord> {
    let settings = config.upstreams.get(upstream)?;
    let (url, credential) = (settings.introspection_url.as_deref()?, settings.credential.as_deref()?);
    let declared = config.credentials.get(credential).map(|c| c.scopes.as_slice()).unwrap_or_default();
    let outcome = ask(settings, credential, secrets, client, url).await;
    let record = IntrospectionRecord::new(&outcome, declared, &config.policy.forbidden_scopes, redactor, unix_ms(now));
    log_outcome(upstream, credential, &outcome, &record, secrets.expiry(credential).is_some());
    Some(record)
}

/// Resolves the token and the client authentication, then [`introspect`].
async fn ask(
    settings: &crate::config::UpstreamConfig,
    credential: &str,
    secrets: &Secrets,
    client: &reqwest::Client,
    url: &str,
) -> Result<Introspection, IntrospectError> {
    let missing = |name: &str| IntrospectError::CredentialMissing { credential: name.to_owned() };
    let token = secrets.get(credential).ok_or_else(|| missing(credential))?;
    let client_auth = match settings.introspection_credential.as_deref() {
        None => ClientAuth::Token,
        Some(name) => {
            let value = secrets.get(name).ok_or_else(|| missing(name))?;
            ClientAuth::from_value(value)
                .ok_or_else(|| IntrospectError::BadClientCredential { credential: name.to_owned() })?
        }
    };
    introspect(client, url, token, client_auth).await
}

/// One log line per outcome; `record` holds the redacted scopes.
fn log_outcome(
    upstream: &str,
    credential: &str,
    outcome: &Result<Introspection, IntrospectError>,
    record: &IntrospectionRecord,
    expiry_known: bool,
) {
    match outcome {
        Err(IntrospectError::Inactive) => {
            tracing::error!(upstream, credential = %credential, "{}", IntrospectError::Inactive);
        }
        Err(err) => tracing::warn!(
            upstream,
            credential = %credential,
            error = %err,
            "token introspection failed; the scopes stay unchecked until the next try"
        ),
        Ok(introspection) => {
            match record.comparison() {
                Some(comparison) if comparison.matches() => tracing::info!(
                    upstream,
                    credential = %credential,
                    "token introspection: active, exactly the declared scopes"
                ),
                Some(comparison) => log_mismatch(upstream, credential, &comparison),
                None => tracing::warn!(
                    upstream,
                    credential = %credential,
                    "token introspection reports no scope, so the declared scopes cannot be compared"
                ),
            }
            if let (Some(expires), false) = (introspection.expires, expiry_known) {
                tracing::warn!(
                    upstream,
                    credential = %credential,
                    expires = %format_day(expires),
                    "the upstream says when this token expires, but steward did not know; add expires = \"{}\" \
                     to [credentials.{credential}] so steward warns before it does",
                    format_day(expires)
                );
            }
        }
    }
}

/// What the daemon's introspection task reads: the live values and redactor.
#[derive(Clone)]
pub struct IntrospectionTask {
    /// The config the daemon started with.
    pub config: Arc<Config>,
    /// The values in use (swapped by a reload).
    pub secrets: Arc<ArcSwap<Secrets>>,
    /// The redactor in use (swapped by a reload).
    pub redactor: SharedRedactor,
    /// Where the records go.
    pub store: Store,
    /// Shared HTTP client: no redirects (a 307 would replay the token elsewhere).
    pub client: reqwest::Client,
}

impl IntrospectionTask {
    /// Checks every upstream with an `introspection_url` once, records each
    /// outcome in the store and returns them by upstream.
    pub async fn run_once(&self, now: SystemTime) -> Vec<(String, IntrospectionRecord)> {
        let secrets = self.secrets.load_full();
        let redactor = self.redactor.load_full();
        let mut records = Vec::new();
        for upstream in introspected_upstreams(&self.config) {
            let Some(record) = check_upstream(&self.config, upstream, &secrets, &redactor, &self.client, now).await
            else {
                continue;
            };
            // The scopes in the record passed the redactor already; the rest is steward's own text.
            match serde_json::to_string(&record) {
                Ok(text) => {
                    if let Err(err) = self.store.kv_set(&record_key(upstream), &text, record.at_ms).await {
                        tracing::warn!(upstream, error = %err, "could not record the token introspection outcome");
                    }
                }
                Err(err) => tracing::warn!(upstream, error = %err, "could not encode the token introspection outcome"),
            }
            records.push((upstream.to_owned(), record));
        }
        records
    }
}

/// Runs `task` in the background on `tracker`: now, whenever `wake` is
/// notified (after a successful reload), and every [`INTROSPECT_EVERY`],
/// until `shutdown`. Does nothing when no upstream has an `introspection_url`.
pub fn spawn(task: IntrospectionTask, wake: Arc<Notify>, tracker: &TaskTracker, shutdown: CancellationToken) {
    if introspected_upstreams(&task.config).next().is_none() {
        return;
    }
    tracker.spawn(async move {
        let mut daily = tokio::time::interval_at(tokio::time::Instant::now() + INTROSPECT_EVERY, INTROSPECT_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = task.run_once(SystemTime::now()) => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => {}
                _ = daily.tick() => {}
            }
        }
    });
}

#[cfg(test)]
mod tests;
