//! Comparing a credential's declared `scopes` with the scopes the upstream
//! reports for the injected token (`[upstreams.NAME] scopes_header`, such as
//! GitHub's `X-OAuth-Scopes: repo, read:org`).
//!
//! A mismatch is logged once per credential and reported scope set, not on
//! every response: the operator needs to hear it, not drown in it. The
//! comparison never blocks a call; the hard check is the declared scopes
//! against `[policy] forbidden_scopes` at load.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;

use http::{HeaderMap, HeaderName};

use crate::config::Config;
use crate::config::scope::forbidden_by;

/// What an upstream reported that differs from the declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeMismatch {
    /// Credential name.
    pub credential: String,
    /// Scopes the upstream reports, lower-cased, sorted.
    pub reported: Vec<String>,
    /// Reported but not declared: the token can do more than the config says.
    pub undeclared: Vec<String>,
    /// Declared but not reported: the config promises what the token cannot do.
    pub missing: Vec<String>,
    /// Reported scopes that `[policy] forbidden_scopes` forbids.
    pub forbidden: Vec<String>,
}

/// One watched upstream.
#[derive(Debug)]
struct Watched {
    /// The credential injected on this upstream.
    credential: String,
    /// The response header to read.
    header: HeaderName,
    /// Declared scopes, lower-cased.
    declared: BTreeSet<String>,
}

/// Watches responses of upstreams that report scopes.
#[derive(Debug, Default)]
pub struct ScopeWatch {
    /// By upstream name (`[upstreams.NAME]`).
    upstreams: BTreeMap<String, Watched>,
    /// `[policy] forbidden_scopes`.
    forbidden: Vec<String>,
    /// (credential, reported scopes) already logged.
    warned: Mutex<HashSet<(String, String)>>,
}

impl ScopeWatch {
    /// Watches every `[upstreams.*]` that has both a credential and a `scopes_header`.
    pub fn new(config: &Config) -> Self {
        let mut upstreams = BTreeMap::new();
        for (name, upstream) in &config.upstreams {
            let (Some(credential), Some(header)) = (&upstream.credential, &upstream.scopes_header) else { continue };
            let Ok(header) = HeaderName::from_bytes(header.as_bytes()) else { continue };
            let declared = config
                .credentials
                .get(credential)
                .map(|c| c.scopes.iter().map(|s| s.to_ascii_lowercase()).collect())
                .unwrap_or_default();
            upstreams.insert(name.clone(), Watched { credential: credential.clone(), header, declared });
        }
        Self { upstreams, forbidden: config.policy.forbidden_scopes.clone(), warned: Mutex::default() }
    }

    /// Whether any upstream is watched (lets the hot path skip the lookup).
    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }

    /// Compares the scopes `upstream` reported in `headers` with the
    /// declaration. Returns (and logs) a mismatch the first time it is seen.
    pub fn observe(&self, upstream: &str, headers: &HeaderMap) -> Option<ScopeMismatch> {
        let watched = self.upstreams.get(upstream)?;
        let value = headers.get(&watched.header)?.to_str().ok()?;
        let reported: BTreeSet<String> =
            value.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_ascii_lowercase).collect();
        let undeclared: Vec<String> = reported.difference(&watched.declared).cloned().collect();
        let missing: Vec<String> = watched.declared.difference(&reported).cloned().collect();
        let forbidden: Vec<String> =
            reported.iter().filter(|s| forbidden_by(&self.forbidden, s).is_some()).cloned().collect();
        if undeclared.is_empty() && missing.is_empty() && forbidden.is_empty() {
            return None;
        }
        let reported: Vec<String> = reported.into_iter().collect();
        let key = (watched.credential.clone(), reported.join(","));
        {
            let mut warned = self.warned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !warned.insert(key) {
                return None;
            }
        }
        let mismatch =
            ScopeMismatch { credential: watched.credential.clone(), reported, undeclared, missing, forbidden };
        if mismatch.forbidden.is_empty() {
            tracing::warn!(
                credential = %mismatch.credential,
                upstream,
                reported = %mismatch.reported.join(" "),
                undeclared = %mismatch.undeclared.join(" "),
                missing = %mismatch.missing.join(" "),
                "the upstream reports other scopes than the credential declares; fix `scopes` in the config \
                 or issue a token with exactly the declared scopes"
            );
        } else {
            tracing::error!(
                credential = %mismatch.credential,
                upstream,
                forbidden = %mismatch.forbidden.join(" "),
                "the upstream reports scopes that [policy] forbidden_scopes forbids; revoke this token and \
                 issue one without them"
            );
        }
        Some(mismatch)
    }
}
