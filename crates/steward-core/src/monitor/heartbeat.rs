//! The dead-man heartbeat: steward pings `[heartbeat] url` every `every`
//! (healthchecks.io style), so an outside service notices when steward
//! itself dies, hangs, or loses its machine, which no alert from inside can
//! report.
//!
//! A ping is only sent while steward can do its job: the store accepts a
//! write and the audit log is healthy. A steward that refuses every call
//! (fail closed) is as good as dead to its operator, so its pings stop too.
//! Failures are logged (never with the URL, which is the secret) and
//! counted (`steward_heartbeat_failures_total`); the next tick tries again.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::audit::AuditLog;
use crate::config::{HeartbeatConfig, HeartbeatMethod};
use crate::store::Store;

/// Longest a ping may take: a dead-man service answers at once, and a ping
/// hanging past the next tick would only pile up.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// What the heartbeat loop needs.
pub struct Heartbeat {
    /// Ping URL (resolved secret).
    pub url: SecretString,
    /// Interval and method.
    pub config: HeartbeatConfig,
    /// Checked writable before each ping.
    pub store: Store,
    /// Checked healthy before each ping, when given.
    pub audit: Option<Arc<AuditLog>>,
    /// Failure counter.
    pub metrics: Arc<Metrics>,
    /// HTTP client (no redirects).
    pub client: reqwest::Client,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeat").field("every", &self.config.every).finish_non_exhaustive()
    }
}

/// Why one ping was not delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PingError {
    /// steward cannot record calls, so it does not claim to be alive.
    #[error("withheld: {0}")]
    NotReady(String),
    /// The service answered with an error status.
    #[error("the heartbeat service answered HTTP {0}")]
    Status(u16),
    /// The request failed.
    #[error("heartbeat request failed: {0}")]
    Transport(String),
}

impl Heartbeat {
    /// One ping, if steward is ready.
    pub async fn ping(&self) -> Result<(), PingError> {
        if let Err(err) = self.store.check_writable().await {
            return Err(PingError::NotReady(format!("the store is not writable ({err})")));
        }
        if self.audit.as_ref().is_some_and(|a| !a.is_healthy()) {
            return Err(PingError::NotReady("the audit log is not writable".into()));
        }
        let url = self.url.expose_secret();
        let request = match self.config.method {
            HeartbeatMethod::Get => self.client.get(url),
            HeartbeatMethod::Post => self.client.post(url).body(""),
        };
        let response = request
            .timeout(PING_TIMEOUT.min(self.config.every))
            .send()
            .await
            .map_err(|e| PingError::Transport(e.without_url().to_string()))?;
        if response.status().is_success() { Ok(()) } else { Err(PingError::Status(response.status().as_u16())) }
    }

    /// Pings at once, then every `every`, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let result = tokio::select! {
                () = shutdown.cancelled() => break,
                result = self.ping() => result,
            };
            match result {
                Ok(()) => tracing::debug!("heartbeat sent"),
                Err(err) => {
                    self.metrics.count_heartbeat_failure();
                    tracing::warn!(error = %err, "heartbeat not delivered");
                }
            }
        }
    }
}
