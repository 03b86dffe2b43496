//! When credentials stop working: a JWT's own `exp` claim, the configured
//! `expires`, and which `[policy] expiry_warning_days` threshold each
//! credential has crossed.
//!
//! Every function takes the current time as a parameter, so the thresholds
//! are tested with injected time. The JWT signature is not checked: steward
//! only wants to know when the issuer says the token dies, and a forged `exp`
//! changes nothing but a warning.

use std::time::{Duration, SystemTime};

use base64::Engine;
use zeroize::Zeroizing;

use super::Secrets;
use crate::clock::format_day;
use crate::config::Config;

/// Seconds in a day, for day arithmetic on expiry times.
const DAY_SECS: i64 = 86_400;

/// Where a credential's expiry time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpirySource {
    /// `expires = ...` in the config.
    Declared,
    /// The token is a JWT and its payload carries `exp`.
    Jwt,
}

impl ExpirySource {
    /// The word used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpirySource::Declared => "declared",
            ExpirySource::Jwt => "jwt",
        }
    }
}

/// A credential that expires within one of the warning thresholds, or has expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryFinding {
    /// Credential name.
    pub credential: String,
    /// When it stops working.
    pub expires_at: SystemTime,
    /// Whole days left, rounded down; negative once expired (−1 during the first day after).
    pub days_left: i64,
    /// The smallest configured threshold (days) the remaining time is within:
    /// with thresholds 14, 7, 3, 1 and five days left this is 7. An alert
    /// engine fires once per (credential, threshold).
    pub threshold_hit: Option<u32>,
    /// It has expired: calls that need it are refused (`credential_expired`).
    pub expired: bool,
}

/// Every credential that has expired or is within a warning threshold at
/// `now`, by name. Credentials with no known expiry are not listed (`steward
/// doctor` reports those).
pub fn expiry_findings(config: &Config, secrets: &Secrets, now: SystemTime) -> Vec<ExpiryFinding> {
    let mut thresholds = config.policy.expiry_warning_days.clone();
    thresholds.sort_unstable();
    let mut findings = Vec::new();
    for name in config.credentials.keys() {
        let Some((expires_at, _)) = secrets.expiry(name) else { continue };
        let remaining = signed_secs_between(now, expires_at);
        let threshold_hit = thresholds.iter().copied().find(|days| remaining <= i64::from(*days) * DAY_SECS);
        let expired = remaining <= 0;
        if expired || threshold_hit.is_some() {
            findings.push(ExpiryFinding {
                credential: name.clone(),
                expires_at,
                days_left: remaining.div_euclid(DAY_SECS),
                threshold_hit,
                expired,
            });
        }
    }
    findings
}

/// Logs each finding: an error for an expired credential, a warning otherwise.
/// Returns how many were logged.
pub fn log_expiry_findings(config: &Config, secrets: &Secrets, now: SystemTime) -> usize {
    let findings = expiry_findings(config, secrets, now);
    for finding in &findings {
        let when = format_day(finding.expires_at);
        if finding.expired {
            tracing::error!(
                credential = %finding.credential,
                expired = %when,
                "credential has expired; calls that need it are refused (credential_expired) until it is \
                 rotated and `steward secrets reload` runs"
            );
        } else {
            tracing::warn!(
                credential = %finding.credential,
                expires = %when,
                days_left = finding.days_left,
                threshold_days = finding.threshold_hit.unwrap_or_default(),
                "credential expires soon; rotate it and run `steward secrets reload`"
            );
        }
    }
    findings.len()
}

/// Whole days from `now` until `expires_at`, rounded down (negative once past).
pub fn days_left(expires_at: SystemTime, now: SystemTime) -> i64 {
    signed_secs_between(now, expires_at).div_euclid(DAY_SECS)
}

/// `to - from` in whole seconds, negative when `to` is earlier.
fn signed_secs_between(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
        Err(behind) => {
            let secs = behind.duration();
            // Round away from zero so a moment past expiry is already "expired".
            let whole = i64::try_from(secs.as_secs()).unwrap_or(i64::MAX);
            -(whole + i64::from(secs.subsec_nanos() > 0))
        }
    }
}

/// The `exp` claim of a JWS compact token (`header.payload.signature`),
/// if `token` is one. The header must decode to a JSON object naming `alg`,
/// so random dotted strings are not mistaken for tokens.
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: serde_json::Value = serde_json::from_slice(&decode_segment(header)?).ok()?;
    header.get("alg")?.as_str()?;
    let payload = decode_segment(payload)?;
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&payload).ok()?;
    let exp = claims.get("exp")?;
    let secs = exp.as_u64().or_else(|| exp.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// base64url without padding (as JWTs use it), tolerating padding.
fn decode_segment(segment: &str) -> Option<Zeroizing<Vec<u8>>> {
    let trimmed = segment.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed).ok().map(Zeroizing::new)
}
