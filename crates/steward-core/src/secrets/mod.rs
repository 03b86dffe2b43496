//! Secrets: turns credential references into values held in memory only,
//! keeps dev and prod apart, knows when each value expires, and builds the
//! redactor that knows every value.
//!
//! - `sources`: reading one value (`env:`, `file:`, `systemd:`, `command:`, `vault:`).
//! - [`expiry`]: JWT `exp`, declared `expires`, the warning thresholds.
//! - [`scopes`]: declared scopes against what an upstream reports.
//! - [`introspect`]: asking an upstream's RFC 7662 endpoint about the token.
//! - `agent_token`: the agent's own steward token.
//!
//! Values live in [`secrecy::SecretString`] (zeroized on drop, never printed by
//! `Debug`). Every value is registered with the redactor built here, so no
//! byte of it can reach a file steward writes; after a reload the redactor
//! knows the old values too. Errors name the credential and the source,
//! never the value.

mod agent_token;
pub mod expiry;
pub mod introspect;
pub mod scopes;
mod sources;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub(crate) use agent_token::read_or_create_private;
pub use agent_token::{ADMIN_TOKEN_PREFIX, AGENT_TOKEN_PREFIX, AgentToken};
pub use expiry::{ExpiryFinding, ExpirySource, expiry_findings, jwt_expiry, log_expiry_findings};
pub use introspect::{ClientAuth, IntrospectError, Introspection, IntrospectionRecord, IntrospectionTask, introspect};
pub use scopes::{ScopeComparison, ScopeMismatch, ScopeWatch, compare_scopes};
pub use sources::{COMMAND_TIMEOUT, CREDENTIALS_DIRECTORY, EnvLookup, MAX_SOURCE_BYTES, VAULT_TIMEOUT, process_env};

use crate::config::{Config, CredentialSource, Environment, RedactionConfig};

/// Hex digits of the SHA-256 shown as a credential's fingerprint: enough to
/// tell two values apart in a listing, far too few to guess the value from.
pub const FINGERPRINT_HEX_LEN: usize = 8;

/// Why a credential could not be resolved or may not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// `env:NAME` but NAME is unset or empty.
    #[error("credential `{credential}`: environment variable {var} is not set; export it before starting steward")]
    EnvMissing {
        /// Credential name from the config.
        credential: String,
        /// The variable named by `env:`.
        var: String,
    },
    /// The file is readable by others than its owner.
    #[error(
        "credential `{credential}`: {path} has mode {mode:o}, readable by other users; run `chmod 600 {path}`",
        path = path.display()
    )]
    FileUnsafeMode {
        /// Credential name.
        credential: String,
        /// The secret file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file belongs to another user.
    #[error(
        "credential `{credential}`: {path} is owned by uid {owner}, not by the user running steward; run `chown $(id -u) {path}`",
        path = path.display()
    )]
    FileWrongOwner {
        /// Credential name.
        credential: String,
        /// The secret file.
        path: PathBuf,
        /// Its owner uid.
        owner: u32,
    },
    /// The file could not be read.
    #[error("credential `{credential}`: cannot read {path}: {source}", path = path.display())]
    FileRead {
        /// Credential name.
        credential: String,
        /// The secret file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// `systemd:NAME` outside a unit with credentials.
    #[error(
        "credential `{credential}`: systemd:{name} needs $CREDENTIALS_DIRECTORY, which is not set; run steward \
         from a systemd unit with LoadCredential={name}:/path/to/secret"
    )]
    SystemdUnavailable {
        /// Credential name.
        credential: String,
        /// The systemd credential name.
        name: String,
    },
    /// The `command:` program failed.
    #[error("credential `{credential}`: command `{program}` failed: {detail}")]
    CommandFailed {
        /// Credential name.
        credential: String,
        /// The program (arguments are not shown).
        program: String,
        /// What went wrong, without its output.
        detail: String,
    },
    /// The `command:` program ran too long.
    #[error(
        "credential `{credential}`: command `{program}` did not finish within {secs}s and was killed; \
         make it non-interactive (unlock the password store first)"
    )]
    CommandTimeout {
        /// Credential name.
        credential: String,
        /// The program.
        program: String,
        /// The timeout.
        secs: u64,
    },
    /// `vault:` without `VAULT_ADDR` or `VAULT_TOKEN`.
    #[error("credential `{credential}`: a vault: source needs {var} in steward's environment; export it")]
    VaultNotConfigured {
        /// Credential name.
        credential: String,
        /// The missing variable.
        var: String,
    },
    /// Vault did not return the secret.
    #[error("credential `{credential}`: vault {reference}: {detail}")]
    Vault {
        /// Credential name.
        credential: String,
        /// `PATH#FIELD`
        reference: String,
        /// What went wrong (status, missing field), never a body.
        detail: String,
    },
    /// The source resolved to nothing.
    #[error("credential `{credential}`: {source_desc} is empty")]
    Empty {
        /// Credential name.
        credential: String,
        /// Where it was read from.
        source_desc: String,
    },
    /// A dev and a prod credential hold the same value.
    #[error(
        "credentials `{dev}` (dev) and `{prod}` (prod) resolve to the same value; dev and prod must never share \
         a token: issue a separate token for `{dev}` and revoke the shared one if dev ever used it"
    )]
    SharedAcrossEnvironments {
        /// The dev credential.
        dev: String,
        /// The prod credential.
        prod: String,
    },
    /// The agent token file could not be created or read.
    #[error("agent token {path}: {source}", path = path.display())]
    AgentToken {
        /// The token file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The agent token (hand-made) is guessable.
    #[error(
        "agent token {path} is too weak: about {bits} bits of randomness, steward needs at least {min}; \
         delete the file and run `steward init` (or start steward) to generate a 256-bit token, or write \
         `stw_` followed by the output of `openssl rand -hex 32` into it (mode 0600)",
        path = path.display(),
        min = agent_token::MIN_AGENT_TOKEN_BITS
    )]
    WeakAgentToken {
        /// The token file.
        path: PathBuf,
        /// The estimate, rounded down.
        bits: u32,
    },
}

impl SecretsError {
    /// The credential(s) the error is about: one, two for a dev/prod share,
    /// none for the agent token.
    pub fn credentials(&self) -> Vec<&str> {
        match self {
            SecretsError::EnvMissing { credential, .. }
            | SecretsError::FileUnsafeMode { credential, .. }
            | SecretsError::FileWrongOwner { credential, .. }
            | SecretsError::FileRead { credential, .. }
            | SecretsError::SystemdUnavailable { credential, .. }
            | SecretsError::CommandFailed { credential, .. }
            | SecretsError::CommandTimeout { credential, .. }
            | SecretsError::VaultNotConfigured { credential, .. }
            | SecretsError::Vault { credential, .. }
            | SecretsError::Empty { credential, .. } => vec![credential.as_str()],
            SecretsError::SharedAcrossEnvironments { dev, prod } => vec![dev.as_str(), prod.as_str()],
            SecretsError::AgentToken { .. } | SecretsError::WeakAgentToken { .. } => Vec::new(),
        }
    }

    /// Whether only a person can fix it (a variable to export, a file to
    /// create or chmod, a unit to give a credential, two tokens to separate),
    /// as opposed to a source that may answer next time (a `command:` that
    /// failed or timed out, Vault unreachable or refusing). `steward run`
    /// exits with the configuration code for these, so systemd does not
    /// restart it every few seconds to the same refusal.
    pub fn needs_a_person(&self) -> bool {
        !matches!(
            self,
            SecretsError::CommandFailed { .. }
                | SecretsError::CommandTimeout { .. }
                | SecretsError::Vault { .. }
                | SecretsError::AgentToken { .. }
        )
    }

    /// Whether this is a setup that must be refused wherever it is seen
    /// (`steward config check` too), rather than a value that is only
    /// missing on this machine: an unsafe secret file or a dev/prod share.
    pub fn is_unsafe(&self) -> bool {
        matches!(
            self,
            SecretsError::FileUnsafeMode { .. }
                | SecretsError::FileWrongOwner { .. }
                | SecretsError::SharedAcrossEnvironments { .. }
        )
    }
}

/// Every credential reference that did not resolve or may not be used, all
/// at once: a person fixing them should not restart steward once per
/// missing variable.
#[derive(Debug)]
pub struct Unresolved {
    /// In config order: `[credentials.*]`, then dev/prod shares, then the
    /// references of `[alerts]` and `[heartbeat]`.
    pub errors: Vec<SecretsError>,
}

impl Unresolved {
    /// Whether a person must change the config or the environment (see
    /// [`SecretsError::needs_a_person`]): true when any of them does.
    pub fn needs_a_person(&self) -> bool {
        self.errors.iter().any(SecretsError::needs_a_person)
    }
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.errors.as_slice() {
            [one] => write!(f, "{one}"),
            errors => {
                write!(f, "{} credential references did not resolve or may not be used:", errors.len())?;
                for err in errors {
                    write!(f, "\n  - {err}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Unresolved {}

/// One resolved credential.
struct Resolved {
    /// The value.
    value: SecretString,
    /// SHA-256 of the value: compares dev with prod and gives the fingerprint
    /// without exposing the value again.
    sha256: [u8; 32],
    /// When it stops working (the earlier of the declared `expires` and a JWT's `exp`).
    expiry: Option<(SystemTime, ExpirySource)>,
}

/// Resolved credential values by name.
#[derive(Default)]
pub struct Secrets {
    values: BTreeMap<String, Resolved>,
    /// Values steward held but no longer injects (replaced by a reload, or the
    /// Vault token used to read one): only for the redactor, so a value that
    /// was once valid never appears in a log line.
    retired: Vec<(String, SecretString)>,
    /// Removes every value above from what upstreams send back to the
    /// agent; built on first use, so a reload's new set builds its own.
    scrubber: std::sync::OnceLock<std::sync::Arc<redact::CredentialScrubber>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .field("retired", &self.retired.len())
            .finish()
    }
}

/// The result of resolving every credential: what resolved, and every problem.
#[derive(Debug)]
pub struct Resolution {
    /// The credentials that resolved.
    pub secrets: Secrets,
    /// Every credential that did not, then any dev/prod share among those that did.
    pub errors: Vec<SecretsError>,
}

impl Secrets {
    /// Resolves every reference [`Secrets::resolve_every_reference`] does and
    /// fails with all of the problems when there is any: steward does not
    /// start with a credential missing.
    pub async fn resolve(config: &Config) -> Result<Self, Unresolved> {
        let Resolution { secrets, errors } = Self::resolve_every_reference(config).await;
        if errors.is_empty() { Ok(secrets) } else { Err(Unresolved { errors }) }
    }

    /// Every `[credentials.*]` entry and dev/prod share, as
    /// [`Secrets::resolve_all`], then the secret references of `[alerts]`
    /// and `[heartbeat]` (webhook URLs, SMTP passwords, the dead-man URL)
    /// under the labels of [`crate::outbound::secret_references`], so the
    /// redactor knows them and no alert sink starts without its secret.
    /// This is what `steward run` resolves, so `steward config check`
    /// resolves exactly this too.
    pub async fn resolve_every_reference(config: &Config) -> Resolution {
        Self::resolve_every_reference_with(config, &process_env).await
    }

    /// [`Secrets::resolve_every_reference`] reading environment variables through `env`.
    pub async fn resolve_every_reference_with(config: &Config, env: EnvLookup<'_>) -> Resolution {
        let mut resolution = Self::resolve_all_with(config, env).await;
        for (label, source) in crate::outbound::secret_references(config) {
            match sources::read(&label, &source, env).await {
                Ok(read) => {
                    let sha256 = Sha256::digest(read.value.expose_secret().as_bytes()).into();
                    resolution.secrets.values.insert(label, Resolved { value: read.value, sha256, expiry: None });
                }
                Err(err) => resolution.errors.push(err),
            }
        }
        resolution
    }

    /// How many of the resolved values are `[credentials.*]` entries (the
    /// rest are alert and heartbeat references): what `steward secrets
    /// list` counts.
    pub fn credential_count(&self, config: &Config) -> usize {
        self.values.keys().filter(|name| config.credentials.contains_key(*name)).count()
    }

    /// Only the secret references of `[alerts]` and `[heartbeat]`: what
    /// `steward alerts test` needs, without the agent's credentials.
    pub async fn resolve_alerts(config: &Config) -> Result<Self, SecretsError> {
        let mut secrets = Secrets::default();
        for (label, source) in crate::outbound::secret_references(config) {
            let read = sources::read(&label, &source, &process_env).await?;
            let sha256 = Sha256::digest(read.value.expose_secret().as_bytes()).into();
            secrets.values.insert(label, Resolved { value: read.value, sha256, expiry: None });
        }
        Ok(secrets)
    }

    /// Like [`Secrets::resolve`], but tries every credential and reports every
    /// problem (for `steward config check` and `steward doctor`).
    pub async fn resolve_all(config: &Config) -> Resolution {
        Self::resolve_all_with(config, &process_env).await
    }

    /// [`Secrets::resolve_all`] reading environment variables (`env:`,
    /// `CREDENTIALS_DIRECTORY`, `VAULT_*`) through `env`.
    pub async fn resolve_all_with(config: &Config, env: EnvLookup<'_>) -> Resolution {
        let mut secrets = Secrets::default();
        let mut errors = Vec::new();
        for (name, credential) in &config.credentials {
            match sources::read(name, &credential.source, env).await {
                Ok(read) => {
                    let declared = credential.expires.map(|t| (t, ExpirySource::Declared));
                    let jwt = jwt_expiry(read.value.expose_secret()).map(|t| (t, ExpirySource::Jwt));
                    let expiry = match (declared, jwt) {
                        (Some(d), Some(j)) => Some(if j.0 < d.0 { j } else { d }),
                        (d, j) => d.or(j),
                    };
                    let sha256 = Sha256::digest(read.value.expose_secret().as_bytes()).into();
                    if let Some(token) = read.vault_token {
                        secrets.retired.push(("vault-token".into(), token));
                    }
                    secrets.values.insert(name.clone(), Resolved { value: read.value, sha256, expiry });
                }
                Err(err) => errors.push(err),
            }
        }
        errors.extend(secrets.shared_across_environments(config));
        Resolution { secrets, errors }
    }

    /// Every (dev, prod) pair of resolved credentials holding the same value.
    fn shared_across_environments(&self, config: &Config) -> Vec<SecretsError> {
        let in_env = |env: Environment| {
            self.values
                .iter()
                .filter(move |(name, _)| config.credentials.get(*name).is_some_and(|c| c.environment == env))
        };
        let mut errors = Vec::new();
        for (dev, dev_value) in in_env(Environment::Dev) {
            for (prod, prod_value) in in_env(Environment::Prod) {
                if dev_value.sha256 == prod_value.sha256 {
                    errors.push(SecretsError::SharedAcrossEnvironments { dev: dev.clone(), prod: prod.clone() });
                }
            }
        }
        errors
    }

    /// Resolves only the named `[credentials.*]` entries (a CLI command that
    /// needs one credential should not fail on another one's missing
    /// variable). Unknown names are skipped.
    pub async fn resolve_only<'a>(
        config: &Config,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, SecretsError> {
        let mut secrets = Secrets::default();
        for name in names {
            if let Some(credential) = config.credentials.get(name) {
                let read = sources::read(name, &credential.source, &process_env).await?;
                let sha256 = Sha256::digest(read.value.expose_secret().as_bytes()).into();
                secrets.values.insert(name.to_owned(), Resolved { value: read.value, sha256, expiry: None });
            }
        }
        Ok(secrets)
    }

    /// Builds from explicit values (tests, benchmarks); no expiry known.
    pub fn from_values(values: impl IntoIterator<Item = (String, SecretString)>) -> Self {
        let values = values
            .into_iter()
            .map(|(name, value)| {
                let sha256 = Sha256::digest(value.expose_secret().as_bytes()).into();
                (name, Resolved { value, sha256, expiry: None })
            })
            .collect();
        Self { values, retired: Vec::new(), scrubber: std::sync::OnceLock::new() }
    }

    /// Keeps every value of `previous` that this set no longer holds (and
    /// everything `previous` had retired), so the redactor built from the
    /// result still removes them: a rotated-out token must stay out of logs.
    pub fn retain_retired(mut self, previous: &Secrets) -> Self {
        let current: Vec<[u8; 32]> = self.values.values().map(|r| r.sha256).collect();
        let mut seen: Vec<[u8; 32]> = current.clone();
        let candidates = previous
            .values
            .iter()
            .map(|(name, r)| (name.as_str(), &r.value))
            .chain(previous.retired.iter().map(|(name, value)| (name.as_str(), value)));
        let mut retired = std::mem::take(&mut self.retired);
        for (_, value) in &retired {
            seen.push(Sha256::digest(value.expose_secret().as_bytes()).into());
        }
        for (name, value) in candidates {
            let hash: [u8; 32] = Sha256::digest(value.expose_secret().as_bytes()).into();
            if !seen.contains(&hash) {
                seen.push(hash);
                retired.push((format!("{name} (retired)"), value.clone()));
            }
        }
        self.retired = retired;
        self.scrubber = std::sync::OnceLock::new();
        self
    }

    /// The value of a credential, for injection at the moment of forwarding.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.values.get(name).map(|r| &r.value)
    }

    /// Names of the resolved credentials.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// When the credential stops working, and how that is known.
    pub fn expiry(&self, name: &str) -> Option<(SystemTime, ExpirySource)> {
        self.values.get(name).and_then(|r| r.expiry)
    }

    /// Whether the credential has expired at `now` (calls needing it are refused).
    pub fn is_expired(&self, name: &str, now: SystemTime) -> bool {
        self.expiry(name).is_some_and(|(at, _)| at <= now)
    }

    /// The first [`FINGERPRINT_HEX_LEN`] hex digits of the value's SHA-256.
    pub fn fingerprint(&self, name: &str) -> Option<String> {
        self.values.get(name).map(|r| {
            let mut hex = hex::encode(r.sha256);
            hex.truncate(FINGERPRINT_HEX_LEN);
            hex
        })
    }

    /// How many retired values the redactor still knows.
    pub fn retired_count(&self) -> usize {
        self.retired.len()
    }

    /// The scrubber of responses: every credential value (current and
    /// retired, `[alerts]` secrets included), each replaced by
    /// `[REDACTED:<name>]` wherever an upstream echoes it back. The agent
    /// token is not among them: the agent holds it already.
    pub fn scrubber(&self) -> std::sync::Arc<redact::CredentialScrubber> {
        let scrubber = self.scrubber.get_or_init(|| {
            let current = self.values.iter().map(|(name, r)| (name.as_str(), r.value.expose_secret()));
            let retired = self.retired.iter().map(|(name, value)| (name.as_str(), value.expose_secret()));
            std::sync::Arc::new(redact::CredentialScrubber::new(current.chain(retired)))
        });
        std::sync::Arc::clone(scrubber)
    }

    /// Builds the redactor that knows every credential value (current and
    /// retired) plus the agent token, with the configured PII detectors.
    pub fn redactor(&self, agent_token: &AgentToken, pii: &RedactionConfig) -> redact::Redactor {
        let mut builder = pii_builder(pii).secret("agent-token", agent_token.expose());
        for (name, resolved) in &self.values {
            builder = builder.secret(name, resolved.value.expose_secret());
        }
        for (name, value) in &self.retired {
            builder = builder.secret(name, value.expose_secret());
        }
        builder.build()
    }
}

/// What `steward secrets list` shows about one credential: never the value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CredentialInfo {
    /// Credential name.
    pub name: String,
    /// `env`, `file`, `systemd`, `command` or `vault`.
    pub source: &'static str,
    /// `dev` or `prod`.
    pub environment: &'static str,
    /// `YYYY-MM-DD` (UTC) it expires, when known.
    pub expires: Option<String>,
    /// Whole days left (negative once expired), when known.
    pub days_left: Option<i64>,
    /// How the expiry is known.
    pub expiry_source: Option<ExpirySource>,
    /// Declared scopes.
    pub scopes: Vec<String>,
    /// First 8 hex digits of the value's SHA-256; `None` when it did not resolve.
    pub fingerprint: Option<String>,
    /// Why it did not resolve or may not be used (never the value).
    pub error: Option<String>,
}

/// One [`CredentialInfo`] per configured credential, in name order.
pub fn describe(config: &Config, resolution: &Resolution, now: SystemTime) -> Vec<CredentialInfo> {
    let secrets = &resolution.secrets;
    config
        .credentials
        .iter()
        .map(|(name, credential)| {
            let errors: Vec<String> = resolution
                .errors
                .iter()
                .filter(|e| e.credentials().contains(&name.as_str()))
                .map(ToString::to_string)
                .collect();
            let expiry = secrets.expiry(name).or(credential.expires.map(|t| (t, ExpirySource::Declared)));
            CredentialInfo {
                name: name.clone(),
                source: credential.source.kind(),
                environment: credential.environment.as_str(),
                expires: expiry.map(|(t, _)| crate::clock::format_day(t)),
                days_left: expiry.map(|(t, _)| expiry::days_left(t, now)),
                expiry_source: expiry.map(|(_, source)| source),
                scopes: credential.scopes.clone(),
                fingerprint: secrets.fingerprint(name),
                error: (!errors.is_empty()).then(|| errors.join("; ")),
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;

/// A redactor builder with every secret rule and the configured PII detectors.
fn pii_builder(pii: &RedactionConfig) -> redact::RedactorBuilder {
    redact::RedactorBuilder::new()
        .pii(redact::PiiKind::Email, pii.email)
        .pii(redact::PiiKind::Phone, pii.phone)
        .pii(redact::PiiKind::CreditCard, pii.credit_card)
        .pii(redact::PiiKind::Iban, pii.iban)
        .pii(redact::PiiKind::Ip, pii.ip)
        .pii(redact::PiiKind::Ssn, pii.ssn)
}

/// Whether a source answers at once, without running a program or asking a
/// server: what a command that must not wait (`steward stop`) may read.
fn is_local(source: &CredentialSource) -> bool {
    match source {
        CredentialSource::Env(_) | CredentialSource::File(_) | CredentialSource::Systemd(_) => true,
        CredentialSource::Command(_) | CredentialSource::Vault { .. } => false,
    }
}

/// The redactor of CLI commands that write the store without the daemon
/// (`steward stop`, `resume`, `backup`, `runbook`, `restore`): every secret
/// rule, the configured PII detectors, the agent token (when the state dir
/// has one) and the value of every credential and alert secret whose source
/// answers at once (`env:`, `file:`, `systemd:`). `command:` and `vault:`
/// sources are not asked: a password manager or Vault can take seconds, and
/// `steward stop` runs in an emergency. A value held only there is still
/// redacted when it is shaped like a token (the rules), and the daemon
/// redacts the kill switch's reason again, knowing every value, when it
/// copies it onto a refused call. A source that fails (a variable not
/// exported here) is skipped: this only decides what is redacted.
pub async fn local_redactor(config: &Config) -> redact::Redactor {
    let mut builder = pii_builder(&config.redaction);
    if let Ok(token) = std::fs::read_to_string(config.state.token_path()) {
        builder = builder.secret("agent-token", token.trim());
    }
    let credentials = config.credentials.iter().map(|(name, c)| (name.clone(), c.source.clone()));
    for (label, source) in credentials.chain(crate::outbound::secret_references(config)) {
        if is_local(&source)
            && let Ok(read) = sources::read(&label, &source, &process_env).await
        {
            builder = builder.secret(&label, read.value.expose_secret());
        }
    }
    builder.build()
}

/// The value of `[store] url` (`None` without one): what a command that
/// opens the store needs, without the agent's credentials.
pub async fn store_url(config: &Config) -> Result<Option<SecretString>, SecretsError> {
    let Some(fleet) = &config.store.fleet else { return Ok(None) };
    let read = sources::read(crate::config::STORE_URL_LABEL, &fleet.url, &process_env).await?;
    Ok(Some(read.value))
}

/// A redactor that reads no credential source at all (`steward doctor`'s
/// logging check): the secret rules, the configured PII detectors and the
/// agent token when given, but no credential value. Commands that write the
/// store use [`local_redactor`].
pub fn offline_redactor(agent_token: Option<&AgentToken>, pii: &RedactionConfig) -> redact::Redactor {
    let builder = pii_builder(pii);
    match agent_token {
        Some(token) => builder.secret("agent-token", token.expose()).build(),
        None => builder.build(),
    }
}
