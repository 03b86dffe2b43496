//! Comparing a credential's declared `scopes` with the scopes the upstream
//! reports for the injected token (`[upstreams.NAME] scopes_header`, such as
//! GitHub's `X-OAuth-Scopes: repo, read:org`).
//!
//! A mismatch is logged once per credential and reported scope set, not on
//! every response: the operator needs to hear it, not drown in it. The
//! comparison never blocks a call; the hard check is the declared scopes
//! against `[policy] forbidden_scopes` at load.
//!
//! [`compare_scopes`] is the one comparison: the header watch here and the
//! RFC 7662 introspection (`super::introspect`) both use it, so a scope set
//! means the same thing whichever way the upstream reported it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;

use http::{HeaderMap, HeaderName};

use crate::config::Config;
use crate::config::scope::forbidden_by;

/// Reported scopes set against a declaration: the outcome of [`compare_scopes`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScopeComparison {
    /// Scopes the upstream reports, lower-cased, sorted, without duplicates.
    pub reported: Vec<String>,
    /// Reported but not declared: the token can do more than the config says.
    pub undeclared: Vec<String>,
    /// Declared but not reported: the config promises what the token cannot do.
    pub missing: Vec<String>,
    /// Reported scopes that `[policy] forbidden_scopes` forbids.
    pub forbidden: Vec<String>,
}

impl ScopeComparison {
    /// Whether the upstream reports exactly the declared scopes, none forbidden.
    pub fn matches(&self) -> bool {
        self.undeclared.is_empty() && self.missing.is_empty() && self.forbidden.is_empty()
    }
}

/// Compares the scopes an upstream reports (`reported`, separated by commas
/// and/or spaces, as both `X-OAuth-Scopes: a, b` and RFC 7662's `"a b"` are)
/// with the `declared` ones, and the reported ones with the `forbidden`
/// patterns. Case-insensitive: providers are inconsistent about case.
pub fn compare_scopes<S: AsRef<str>>(reported: &str, declared: &[S], forbidden: &[String]) -> ScopeComparison {
    let reported: BTreeSet<String> =
        reported.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_ascii_lowercase).collect();
    let declared: BTreeSet<String> = declared.iter().map(|s| s.as_ref().trim().to_ascii_lowercase()).collect();
    let undeclared = reported.difference(&declared).cloned().collect();
    let missing = declared.difference(&reported).cloned().collect();
    let forbidden = reported.iter().filter(|s| forbidden_by(forbidden, s).is_some()).cloned().collect();
    ScopeComparison { reported: reported.into_iter().collect(), undeclared, missing, forbidden }
}

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
    /// Declared scopes, as written.
    declared: Vec<String>,
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
            let declared = config.credentials.get(credential).map(|c| c.scopes.clone()).unwrap_or_default();
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
        let comparison = compare_scopes(value, &watched.declared, &self.forbidden);
        if comparison.matches() {
            return None;
        }
        let key = (watched.credential.clone(), comparison.reported.join(","));
        {
            let mut warned = self.warned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !warned.insert(key) {
                return None;
            }
        }
        log_mismatch(upstream, &watched.credential, &comparison);
        let ScopeComparison { reported, undeclared, missing, forbidden } = comparison;
        Some(ScopeMismatch { credential: watched.credential.clone(), reported, undeclared, missing, forbidden })
    }
}

/// Logs a scope mismatch of `credential` on `upstream`: an error when a
/// forbidden scope is reported, a warning otherwise. The one wording for
/// both ways an upstream reports scopes; `comparison` must be safe to log.
pub(crate) fn log_mismatch(upstream: &str, credential: &str, comparison: &ScopeComparison) {
    if comparison.forbidden.is_empty() {
        tracing::warn!(
            credential = %credential,
            upstream,
            reported = %comparison.reported.join(" "),
            undeclared = %comparison.undeclared.join(" "),
            missing = %comparison.missing.join(" "),
            "the upstream reports other scopes than the credential declares; fix `scopes` in the config \
             or issue a token with exactly the declared scopes"
        );
    } else {
        tracing::error!(
            credential = %credential,
            upstream,
            forbidden = %comparison.forbidden.join(" "),
            "the upstream reports scopes that [policy] forbidden_scopes forbids; revoke this token and \
             issue one without them"
        );
    }
}
