//! Stage two for `[supervised]`: whether side-effect calls wait for a human
//! (the first week), how long a call is held open, and when an undecided
//! request expires. The per-tool `approval` setting is read with `[[tools]]`.

use super::*;

/// Default `[supervised] wait`: long enough for a human watching the
/// terminal, shorter than the usual HTTP client timeout (60 s).
pub const DEFAULT_SUPERVISED_WAIT: Duration = Duration::from_secs(30);
/// Default `[supervised] expires`: a request nobody decided in two hours is
/// stale (the agent has moved on), so it is expired rather than approved late.
pub const DEFAULT_SUPERVISED_EXPIRES: Duration = Duration::from_secs(2 * 3600);
/// Longest `[supervised] wait`: a held request keeps the agent's connection
/// (and its body in memory) open; past five minutes most clients give up.
pub const MAX_SUPERVISED_WAIT: Duration = Duration::from_secs(300);

impl Validator<'_> {
    /// `[supervised]`; absent: off, with the default durations.
    pub(super) fn supervised(&mut self, raw: RawSupervised) -> SupervisedConfig {
        let wait_span = raw_span(&raw.wait);
        let expires_span = raw_span(&raw.expires);
        let wait = self.timeout(raw.wait, "wait", "30s", DEFAULT_SUPERVISED_WAIT);
        let expires = self.timeout(raw.expires, "expires", "2h", DEFAULT_SUPERVISED_EXPIRES);
        if wait > MAX_SUPERVISED_WAIT
            && let Some(span) = wait_span.clone()
        {
            self.push(Problem::new(
                span,
                format!(
                    "wait = {}s is longer than the {}s a request may be held",
                    wait.as_secs(),
                    MAX_SUPERVISED_WAIT.as_secs()
                ),
                "too long",
                "use wait = \"30s\" (the default); the agent repeats the call to wait longer",
            ));
        }
        if expires < wait
            && let Some(span) = expires_span.or(wait_span)
        {
            self.push(Problem::new(
                span,
                "expires is shorter than wait: every held request would expire before anyone could decide it",
                "shorter than wait",
                "make expires longer than wait, like expires = \"2h\" (the default)",
            ));
        }
        let ready = self.ready(raw.ready);
        SupervisedConfig { enabled: raw.enabled.unwrap_or(false), wait, expires, ready }
    }
}
