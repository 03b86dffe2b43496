//! The admin token: the operator's bearer secret for the admin API, kept in
//! `<state>/admin.token` (0600), created at the daemon's first start like
//! the agent token, and never the same value or shape (`stwadm_` prefix).

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

pub use crate::secrets::ADMIN_TOKEN_PREFIX;
use crate::secrets::SecretsError;

/// The admin API's bearer token.
pub struct AdminToken(SecretString);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// Reads `path`, or creates it (mode 0600, `stwadm_` and 256 random
    /// bits) when missing. Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SecretsError> {
        let (token, created) = crate::secrets::read_or_create_private(path, ADMIN_TOKEN_PREFIX, "admin token")?;
        Ok((Self(token), created))
    }

    /// Reads an existing token (the CLI: the daemon creates it).
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(Self(SecretString::from(text.trim().to_owned())))
    }

    /// Constant-time comparison with what a client presented.
    pub fn verify(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.0.expose_secret().as_bytes();
        expected.len() == presented.len() && bool::from(expected.ct_eq(presented))
    }

    /// The value, for the `Authorization` header the CLI sends.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}
