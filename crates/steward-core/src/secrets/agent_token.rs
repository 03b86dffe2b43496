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

/// Prefix of the generated admin token (`<state>/admin.token`, the
/// operator's key to the admin API): distinct from the agent's, so a
/// refusal can tell which one was presented.
pub const ADMIN_TOKEN_PREFIX: &str = "stwadm_";

/// Least randomness a token in `agent.token` may have: any process on the
/// host can try tokens against the gateway as fast as it answers, so
/// guessing must stay hopeless (128 bits is the usual floor for a bearer
/// secret; a generated token has 256).
pub const MIN_AGENT_TOKEN_BITS: u32 = 128;

/// Fewest distinct characters a token may hold: a long run of one character
/// has the length of a strong token and none of its randomness.
const MIN_DISTINCT_CHARS: usize = 8;

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
        let (token, created) = read_or_create_private(path, AGENT_TOKEN_PREFIX, "agent token")?;
        Ok((Self(token), created))
    }

    /// An explicit token (tests, benchmarks; the strength check is `load_or_create`'s).
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

/// Reads the bearer token kept in `path` (mode 0600 or refused, not empty,
/// at least [`MIN_AGENT_TOKEN_BITS`] of randomness), or creates it when
/// missing: `prefix` and 256 random bits in hex, written 0600. Returns
/// whether it was created. `label` names it in errors ("agent token",
/// "admin token").
pub(crate) fn read_or_create_private(
    path: &Path,
    prefix: &str,
    label: &str,
) -> Result<(SecretString, bool), SecretsError> {
    let err = |source| SecretsError::AgentToken { path: path.to_owned(), source };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path).map_err(err)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SecretsError::FileUnsafeMode { credential: label.into(), path: path.to_owned(), mode });
            }
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(SecretsError::Empty { credential: label.into(), source_desc: path.display().to_string() });
            }
            let bits = estimated_bits(&token);
            if bits < MIN_AGENT_TOKEN_BITS {
                return Err(SecretsError::WeakAgentToken { path: path.to_owned(), bits });
            }
            Ok((SecretString::from(token), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; AGENT_TOKEN_BYTES];
            rand::fill(&mut bytes);
            let token = format!("{prefix}{}", hex::encode(bytes));
            let mut file =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(err)?;
            file.write_all(format!("{token}\n").as_bytes()).map_err(err)?;
            file.sync_all().map_err(err)?;
            Ok((SecretString::from(token), true))
        }
        Err(e) => Err(err(e)),
    }
}

/// An upper estimate of a token's randomness in bits: its length (without
/// the `stw_` prefix) times log2 of the smallest alphabet its characters fit
/// (hex, lower case and digits, letters and digits, printable ASCII, any).
/// A token with fewer than [`MIN_DISTINCT_CHARS`] distinct characters scores 0.
fn estimated_bits(token: &str) -> u32 {
    let body =
        token.strip_prefix(AGENT_TOKEN_PREFIX).or_else(|| token.strip_prefix(ADMIN_TOKEN_PREFIX)).unwrap_or(token);
    let distinct: std::collections::BTreeSet<char> = body.chars().collect();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return 0;
    }
    let alphabet: f64 = if body.chars().all(|c| c.is_ascii_hexdigit()) && !body.chars().any(|c| c.is_ascii_uppercase())
    {
        16.0
    } else if body.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        36.0
    } else if body.chars().all(|c| c.is_ascii_alphanumeric()) {
        62.0
    } else if body.chars().all(|c| c.is_ascii_graphic()) {
        94.0
    } else {
        // Any Unicode: generous, the length requirement still applies.
        65_536.0
    };
    let bits = (body.chars().count() as f64) * alphabet.log2();
    bits.floor().min(f64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_strong_and_short_or_repetitive_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.token");
        let (token, created) = AgentToken::load_or_create(&path).unwrap();
        assert!(created);
        assert!(estimated_bits(token.expose()) >= 256);
        assert!(AgentToken::load_or_create(&path).is_ok(), "a generated token loads again");

        assert_eq!(estimated_bits("stw_0123abcd"), 32);
        assert!(estimated_bits(&format!("stw_{}", "0123456789abcdef".repeat(2))) >= 128);
        assert!(estimated_bits("Xk29fQp0LmZr81TbWc7Ye3") >= 128, "22 mixed-case letters and digits");
        assert_eq!(estimated_bits(&"a".repeat(100)), 0);

        for weak in ["hunter22", "stw_0123abcd", "correcthorsebattery"] {
            std::fs::write(&path, format!("{weak}\n")).unwrap();
            let err = AgentToken::load_or_create(&path).unwrap_err().to_string();
            assert!(err.contains("too weak") && err.contains("openssl rand -hex 32"), "{err}");
            assert!(!err.contains(weak), "the error must not echo the token: {err}");
        }
    }
}
