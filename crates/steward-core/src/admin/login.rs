//! `POST /admin/v1/dashboard/login`: mints the dashboard's one-time login
//! code (`steward dashboard`). Only on the admin socket, behind the admin
//! token ([`super::router`]), never mounted in the dashboard itself: a
//! browser session cannot mint more sessions.
//!
//! A code is 128 random bits, valid for [`LOGIN_CODE_TTL`] and for one
//! exchange. The daemon keeps only its SHA-256, in memory ([`LoginCodes`]):
//! nothing steward writes to disk holds a usable code, and a restart voids
//! every unused one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use http::StatusCode;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{AdminState, ApiError};

/// How long a login code may wait to be used: long enough to paste a URL
/// into a browser through an ssh tunnel, short enough that a code left in a
/// terminal's scrollback is dead by the time anyone else reads it.
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(300);

/// Unused codes kept at most: minting one more drops the oldest, so a
/// script minting in a loop cannot grow the daemon's memory.
const MAX_CODES: usize = 16;

/// The unused login codes, by SHA-256, with their expiry (epoch ms).
#[derive(Debug, Default, Clone)]
pub struct LoginCodes(Arc<Mutex<HashMap<String, i64>>>);

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl LoginCodes {
    /// A new code valid until `now_ms` + [`LOGIN_CODE_TTL`].
    pub fn mint(&self, now_ms: i64) -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let code = hex::encode(bytes);
        let expires = now_ms.saturating_add(i64::try_from(LOGIN_CODE_TTL.as_millis()).unwrap_or(i64::MAX));
        let mut codes = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        codes.retain(|_, e| *e > now_ms);
        if codes.len() >= MAX_CODES
            && let Some(oldest) = codes.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            codes.remove(&oldest);
        }
        codes.insert(sha256_hex(&code), expires);
        code
    }

    /// Uses `code` up: true once, for a code minted less than
    /// [`LOGIN_CODE_TTL`] ago; false for anything else, a second use included.
    pub fn redeem(&self, code: &str, now_ms: i64) -> bool {
        let mut codes = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        codes.remove(&sha256_hex(code.trim())).is_some_and(|expires| expires > now_ms)
    }
}

pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/admin/v1/dashboard/login", post(mint))
}

async fn mint(State(state): State<AdminState>) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(base) = state.dashboard_url.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "dashboard_not_configured",
            "this daemon serves no dashboard",
            "add [dashboard] to steward.toml and restart steward; see docs/config.md#dashboard",
        ));
    };
    let now = crate::clock::unix_ms(std::time::SystemTime::now());
    let code = state.login_codes.mint(now);
    let expires_ms = now.saturating_add(i64::try_from(LOGIN_CODE_TTL.as_millis()).unwrap_or(i64::MAX));
    Ok(Json(serde_json::json!({
        "url": format!("{base}/login?code={code}"),
        "expires_ms": expires_ms,
        "ttl_secs": LOGIN_CODE_TTL.as_secs(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_and_not_after_its_ttl() {
        let codes = LoginCodes::default();
        let code = codes.mint(1_000);
        assert!(!codes.redeem("nope", 1_001));
        assert!(codes.redeem(&code, 1_001));
        assert!(!codes.redeem(&code, 1_002), "a second use fails");
        let late = codes.mint(1_000);
        assert!(!codes.redeem(&late, 1_000 + 300_000), "expired");
    }

    #[test]
    fn minting_is_bounded() {
        let codes = LoginCodes::default();
        let first = codes.mint(1);
        for _ in 0..MAX_CODES {
            codes.mint(2);
        }
        assert!(!codes.redeem(&first, 3), "the oldest was dropped");
    }
}
