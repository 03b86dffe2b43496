//! Login codes and sessions.
//!
//! `steward dashboard` mints a one-time login code ([`mint_login_code`]): 128
//! random bits, of which only the SHA-256 is kept, in the store's kv table
//! (`dashboard.login.<sha256>` = expiry, epoch ms), so the CLI can write it
//! while the daemon runs and a copy of the database holds nothing usable.
//! The daemon exchanges a code once ([`Sessions::exchange`]: read and delete
//! under one lock) for a session: a random cookie value (kept hashed, in
//! memory: a daemon restart logs everyone out), its own CSRF token, and an
//! expiry. Logout forgets the session.

use std::collections::HashMap;
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use crate::store::{Store, StoreError};

/// How long a login code may wait to be used: long enough to copy a URL
/// into a browser through an ssh tunnel, short enough that a code in a
/// terminal's scrollback is dead by the time anyone reads it.
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(300);

/// kv key prefix of a login code's hash.
const LOGIN_KEY_PREFIX: &str = "dashboard.login.";

/// Sessions kept at most: a login beyond it evicts the oldest. One operator
/// with a few browsers needs a handful; the bound keeps a leaked code
/// stream from growing memory.
const MAX_SESSIONS: usize = 64;

/// 32 random bytes, hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Mints a one-time login code valid for [`LOGIN_CODE_TTL`] from `now_ms`,
/// keeps its hash in the store, and returns the code (shown once, in the
/// URL `steward dashboard` prints).
pub async fn mint_login_code(store: &Store, now_ms: i64) -> Result<String, StoreError> {
    let code = random_hex(16);
    let expires = now_ms.saturating_add(i64::try_from(LOGIN_CODE_TTL.as_millis()).unwrap_or(i64::MAX));
    store.kv_set(&format!("{LOGIN_KEY_PREFIX}{}", sha256_hex(&code)), &expires.to_string(), now_ms).await?;
    Ok(code)
}

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// A short public name for the audit line (`session 3f2a9c1d`): not the
    /// cookie, from which it cannot be derived.
    pub id: String,
    /// The token every POST of this session must carry.
    pub csrf: String,
    /// When it ends, epoch ms.
    pub expires_ms: i64,
}

impl Session {
    /// `session <id>`: who acted, in audit lines.
    pub fn actor_name(&self) -> String {
        format!("session {}", self.id)
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.len() == presented.len() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// Why a login code was refused (one answer for all: a guesser learns nothing).
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown, used or expired.
    #[error("this login code is not valid: it was used already, has expired, or was mistyped")]
    Invalid,
    /// The store could not answer.
    #[error("the store cannot answer: {0}")]
    Store(#[from] StoreError),
}

/// The live sessions, by the SHA-256 of their cookie.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Exchanges a login code for a new session lasting `ttl`; returns the
    /// cookie value and the session. The code is deleted before the session
    /// exists, under the lock, so a code opens one session at most.
    pub async fn exchange(
        &self,
        store: &Store,
        code: &str,
        ttl: Duration,
        now_ms: i64,
    ) -> Result<(String, Session), LoginError> {
        let mut sessions = self.inner.lock().await;
        let key = format!("{LOGIN_KEY_PREFIX}{}", sha256_hex(code.trim()));
        let expires = store.kv_get(&key).await?.and_then(|v| v.parse::<i64>().ok());
        let Some(expires) = expires else { return Err(LoginError::Invalid) };
        store.kv_delete(&key).await?;
        if expires <= now_ms {
            return Err(LoginError::Invalid);
        }
        sessions.retain(|_, s| s.expires_ms > now_ms);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires_ms).map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        let cookie = random_hex(32);
        let session = Session {
            id: random_hex(4),
            csrf: random_hex(32),
            expires_ms: now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
        };
        sessions.insert(sha256_hex(&cookie), session.clone());
        Ok((cookie, session))
    }

    /// The live session of a cookie value.
    pub async fn get(&self, cookie: &str, now_ms: i64) -> Option<Session> {
        let mut sessions = self.inner.lock().await;
        let key = sha256_hex(cookie);
        match sessions.get(&key) {
            Some(s) if s.expires_ms > now_ms => Some(s.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Logout: forgets the session of a cookie value.
    pub async fn remove(&self, cookie: &str) {
        self.inner.lock().await.remove(&sha256_hex(cookie));
    }
}

/// A fresh random token (the login form's double-submit CSRF value).
pub fn new_token() -> String {
    random_hex(32)
}
