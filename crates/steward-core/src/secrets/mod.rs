//! Secrets: turns credential references (`env:NAME`, `file:PATH`) into values
//! held in memory only, and the agent's own steward token.
//!
//! Values live in [`secrecy::SecretString`] (zeroized on drop, never printed by
//! `Debug`). Every value is registered with the redactor built here, so no
//! byte of it can reach a file steward writes. Errors name the credential and
//! the source, never the value.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, CredentialSource, RedactionConfig};

/// Bytes of randomness in a generated agent token (256 bits).
const AGENT_TOKEN_BYTES: usize = 32;

/// Prefix of generated agent tokens: makes them recognisable in a leak report
/// and lets the redactor's rules catch them by shape.
pub const AGENT_TOKEN_PREFIX: &str = "stw_";

/// Why a credential could not be resolved.
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
    /// The source resolved to nothing.
    #[error("credential `{credential}`: {source_desc} is empty")]
    Empty {
        /// Credential name.
        credential: String,
        /// Where it was read from.
        source_desc: String,
    },
    /// The agent token file could not be created or read.
    #[error("agent token {path}: {source}", path = path.display())]
    AgentToken {
        /// The token file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Resolved credential values by name.
#[derive(Default)]
pub struct Secrets {
    values: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").field("names", &self.values.keys().collect::<Vec<_>>()).finish()
    }
}

impl Secrets {
    /// Resolves every `[credentials.*]` entry. Fails on the first that cannot be
    /// resolved: steward does not start with a credential missing.
    ///
    /// The secret references of `[alerts]` and `[heartbeat]` (webhook URLs,
    /// SMTP passwords, the dead-man URL) are resolved too, under the labels
    /// of [`crate::monitor::secret_references`], so the redactor knows them
    /// and no alert sink starts without its secret.
    pub fn resolve(config: &Config) -> Result<Self, SecretsError> {
        let mut values = BTreeMap::new();
        for (name, credential) in &config.credentials {
            values.insert(name.clone(), resolve_one(name, &credential.source)?);
        }
        let mut secrets = Self { values };
        secrets.values.extend(Self::resolve_alerts(config)?.values);
        Ok(secrets)
    }

    /// Only the secret references of `[alerts]` and `[heartbeat]`: what
    /// `steward alerts test` needs, without the agent's credentials.
    pub fn resolve_alerts(config: &Config) -> Result<Self, SecretsError> {
        let mut values = BTreeMap::new();
        for (label, source) in crate::monitor::secret_references(config) {
            let value = resolve_one(&label, &source)?;
            values.insert(label, value);
        }
        Ok(Self { values })
    }

    /// Builds from explicit values (tests, benchmarks).
    pub fn from_values(values: impl IntoIterator<Item = (String, SecretString)>) -> Self {
        Self { values: values.into_iter().collect() }
    }

    /// The value of a credential, for injection at the moment of forwarding.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.values.get(name)
    }

    /// Builds the redactor that knows every credential value plus the agent
    /// token, with the configured PII detectors.
    pub fn redactor(&self, agent_token: &AgentToken, pii: &RedactionConfig) -> redact::Redactor {
        let mut builder = redact::RedactorBuilder::new()
            .pii(redact::PiiKind::Email, pii.email)
            .pii(redact::PiiKind::Phone, pii.phone)
            .pii(redact::PiiKind::CreditCard, pii.credit_card)
            .pii(redact::PiiKind::Iban, pii.iban)
            .pii(redact::PiiKind::Ip, pii.ip)
            .pii(redact::PiiKind::Ssn, pii.ssn)
            .secret("agent-token", agent_token.0.expose_secret());
        for (name, value) in &self.values {
            builder = builder.secret(name, value.expose_secret());
        }
        builder.build()
    }
}

fn resolve_one(name: &str, source: &CredentialSource) -> Result<SecretString, SecretsError> {
    let (value, desc) = match source {
        CredentialSource::Env(var) => {
            let value = std::env::var(var).unwrap_or_default();
            if value.is_empty() {
                return Err(SecretsError::EnvMissing { credential: name.into(), var: var.clone() });
            }
            (value, format!("environment variable {var}"))
        }
        CredentialSource::File(path) => (read_secret_file(name, path)?, format!("file {}", path.display())),
    };
    // Files usually end with a newline that is not part of the token.
    let trimmed = value.trim_end_matches(['\n', '\r']).to_owned();
    if trimmed.is_empty() {
        return Err(SecretsError::Empty { credential: name.into(), source_desc: desc });
    }
    Ok(SecretString::from(trimmed))
}

fn read_secret_file(name: &str, path: &Path) -> Result<String, SecretsError> {
    let read_err = |source| SecretsError::FileRead { credential: name.into(), path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::FileUnsafeMode { credential: name.into(), path: path.to_owned(), mode });
    }
    if let Some(me) = current_uid()
        && meta.uid() != me
    {
        return Err(SecretsError::FileWrongOwner { credential: name.into(), path: path.to_owned(), owner: meta.uid() });
    }
    std::fs::read_to_string(path).map_err(read_err)
}

/// The effective uid of this process, read as the owner of `/proc/self`
/// (Linux creates it owned by the process's euid), which avoids an FFI call.
fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The local token the agent presents instead of any real credential.
pub struct AgentToken(SecretString);

impl std::fmt::Debug for AgentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentToken(..)")
    }
}

impl AgentToken {
    /// Reads `path`, or creates it (mode 0600, random 256-bit token) when missing.
    /// Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SecretsError> {
        let err = |source| SecretsError::AgentToken { path: path.to_owned(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mode = std::fs::metadata(path).map_err(err)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(SecretsError::FileUnsafeMode {
                        credential: "agent token".into(),
                        path: path.to_owned(),
                        mode,
                    });
                }
                let token = text.trim().to_owned();
                if token.is_empty() {
                    return Err(SecretsError::Empty {
                        credential: "agent token".into(),
                        source_desc: path.display().to_string(),
                    });
                }
                Ok((Self(SecretString::from(token)), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; AGENT_TOKEN_BYTES];
                rand::fill(&mut bytes);
                let token = format!("{AGENT_TOKEN_PREFIX}{}", hex::encode(bytes));
                let mut file =
                    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(err)?;
                file.write_all(format!("{token}\n").as_bytes()).map_err(err)?;
                file.sync_all().map_err(err)?;
                Ok((Self(SecretString::from(token)), true))
            }
            Err(e) => Err(err(e)),
        }
    }

    /// An explicit token (tests, benchmarks).
    pub fn from_value(value: &str) -> Self {
        Self(SecretString::from(value.to_owned()))
    }

    /// Constant-time comparison with what the agent presented.
    pub fn verify(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.0.expose_secret().as_bytes();
        expected.len() == presented.len() && bool::from(expected.ct_eq(presented))
    }

    /// The token value, for handing to the agent process.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests;
