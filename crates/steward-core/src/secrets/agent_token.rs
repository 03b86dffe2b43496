//! The agent's own steward token: the only secret the agent ever holds.
//!
//! Generated once (256 random bits, `stw_` prefix), kept in
//! `<state>/agent.token` with mode 0600, and compared in constant time.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::SecretsError;

/// Bytes of randomness in a generated agent token (256 bits).
const AGENT_TOKEN_BYTES: usize = 32;

/// Prefix of generated agent tokens: makes them recognisable in a leak report
/// and lets the redactor's rules catch them by shape.
pub const AGENT_TOKEN_PREFIX: &str = "stw_";

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

    /// Whether `text` holds the token, as is or in any encoded form the
    /// redactor recognises (base64, percent-encoding, JSON escapes); the
    /// caller decodes percent-encoding layers first where it applies.
    pub fn appears_in(&self, text: &str) -> bool {
        redact::encoded_forms(self.0.expose_secret()).iter().any(|form| text.contains(form.as_str()))
    }

    /// The token value, for handing to the agent process.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}
