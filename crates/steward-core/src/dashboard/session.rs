//! Login sessions. `steward dashboard` asks the daemon for a one-time login
//! code ([`crate::admin::login`]); the login form exchanges it once
//! ([`Sessions::login`]) for a session: a random cookie value (kept only as
//! its SHA-256, in memory: a daemon restart logs everyone out), its own
//! CSRF token, a short public id for audit lines, and an expiry
//! (`[dashboard] session_ttl`). Logout forgets the session.

use std::collections::HashMap;
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use crate::admin::login::LoginCodes;

/// Sessions kept at most: a login beyond it evicts the one closest to its
/// end. One operator with a few browsers needs a handful; the bound keeps
/// memory flat whatever happens.
const MAX_SESSIONS: usize = 64;

/// `bytes` random bytes, hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// A short public name for audit lines (`session 3f2a9c1d`): random,
    /// not derived from the cookie, so it reveals nothing about it.
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

/// The live sessions, by the SHA-256 of their cookie.
#[derive(Debug, Default)]
pub struct Sessions {
    inner: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Exchanges a login code for a new session lasting `ttl`; returns the
    /// cookie value and the session, or `None` for a code that is unknown,
    /// used or expired (one answer for all: a guesser learns nothing).
    pub async fn login(&self, codes: &LoginCodes, code: &str, ttl: Duration, now_ms: i64) -> Option<(String, Session)> {
        if !codes.redeem(code, now_ms) {
            return None;
        }
        let mut sessions = self.inner.lock().await;
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
        Some((cookie, session))
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

    /// Whether the session with public id `id` still lives (the SSE feed
    /// ends when its session does).
    pub async fn alive(&self, id: &str, now_ms: i64) -> bool {
        self.inner.lock().await.values().any(|s| s.id == id && s.expires_ms > now_ms)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_code_opens_one_session_which_expires_and_logs_out() {
        let codes = LoginCodes::default();
        let sessions = Sessions::default();
        let code = codes.mint(0);
        let (cookie, session) = sessions.login(&codes, &code, Duration::from_secs(60), 1).await.unwrap();
        assert!(sessions.login(&codes, &code, Duration::from_secs(60), 2).await.is_none(), "single use");
        assert_eq!(sessions.get(&cookie, 2).await.unwrap().id, session.id);
        assert!(session.csrf_matches(&session.csrf));
        assert!(!session.csrf_matches("x"));
        assert!(sessions.get(&cookie, 60_002).await.is_none(), "expired");
        let code = codes.mint(0);
        let (cookie, _) = sessions.login(&codes, &code, Duration::from_secs(60), 1).await.unwrap();
        sessions.remove(&cookie).await;
        assert!(sessions.get(&cookie, 2).await.is_none(), "logged out");
    }
}
