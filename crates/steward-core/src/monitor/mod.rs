//! Monitoring: the metrics on `/metrics`, the alert engine that tells a human
//! when something is wrong, the sinks that carry its notices, and the
//! dead-man heartbeat that lets an outside service notice steward's death.
//!
//! # Flow
//! ```text
//! EventBus ─┐                                  ┌─> sink worker ─> webhook / slack / discord / ntfy / email / command
//! polling  ─┴─> Engine (rules, per-rule state) ┼─> sink worker ─> ...   (retries with full-jitter backoff)
//! (store, audit, kv)      │ state in kv        └─> ...                  (last result per sink in kv)
//!                         └─> Metrics (gauges)
//! ```
//! - [`metrics`]: the registry, [`AgentStats`](metrics::AgentStats), `/readyz`.
//! - [`engine`]: the rules, grouping, `repeat_every`, resolved notices, persisted state.
//! - [`delivery`]: one worker per sink, so a dead sink never delays the others.
//! - [`sinks`]: each sink kind's message format and transport (`email` for SMTP).
//! - [`heartbeat`]: the dead-man ping.
//! - [`approval_notices`]: supervised mode's requests, to every sink, batched per tool per minute.
//!
//! Every notice is redacted ([`Alert::redacted`]) before it reaches a sink:
//! alert text quotes kill-switch reasons and error messages, which could
//! carry a secret or personal data.

pub mod approval_notices;
pub mod delivery;
mod email;
pub mod engine;
pub mod heartbeat;
pub mod metrics;
pub mod sinks;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sinks;
#[cfg(test)]
mod tests_staged;

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::events::EventBus;
use crate::outbound::HEARTBEAT_URL_LABEL;
use crate::redaction::SharedRedactor;
use crate::secrets::Secrets;
use crate::store::Store;

pub use delivery::{DeliveryReport, Dispatcher, SinkHealth};
pub use engine::{Engine, FiredAlert, FiringAlert, read_fired};
pub use metrics::Metrics;
pub use sinks::{Sink, SinkError};

/// Why monitoring could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// A sink could not be built (its secret missing, an SMTP setting refused).
    #[error("alert sink `{name}`: {source}")]
    Sink {
        /// The sink's name.
        name: String,
        /// What is wrong.
        source: SinkError,
    },
    /// The heartbeat URL was not resolved (a startup defect).
    #[error("[heartbeat] url was not resolved")]
    HeartbeatUrl,
}

/// What [`start`] needs from the daemon.
pub struct MonitorInit<'a> {
    /// The validated config (`[alerts]`, `[heartbeat]`, `[spend]`, agent name).
    pub config: &'a Config,
    /// Resolved secrets, the alert references included ([`Secrets::resolve`]);
    /// the engine reads the current ones for the credential-expiry rule.
    pub secrets: Arc<ArcSwap<Secrets>>,
    /// The store: polled by the engine, holds alert and sink state.
    pub store: Store,
    /// Watched for write failures.
    pub audit: Arc<AuditLog>,
    /// The registry the pipeline counts into.
    pub metrics: Arc<Metrics>,
    /// Applied to every notice.
    pub redactor: SharedRedactor,
    /// The daemon's bus; subscribed before [`start`] returns.
    pub events: &'a EventBus,
}

/// Builds the sinks, then starts the sink workers, the alert engine and the
/// heartbeat as tasks of `tracker` that stop with `shutdown`.
pub async fn start(
    init: MonitorInit<'_>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<(), MonitorError> {
    let MonitorInit { config, secrets, store, audit, metrics, redactor, events } = init;
    let current = secrets.load_full();
    let sinks = build_sinks(config, &current)?;
    let client = crate::outbound::http_client().map_err(|err| MonitorError::Sink {
        name: "(http client)".into(),
        source: SinkError::Transport(err.to_string()),
    })?;
    let ctx = delivery::DeliveryContext {
        store: store.clone(),
        redactor: redactor.clone(),
        metrics: Arc::clone(&metrics),
        client: client.clone(),
    };
    let dispatcher = Dispatcher::start(sinks, &ctx, tracker, shutdown);
    if !dispatcher.has_sinks() {
        tracing::info!("no [[alerts.sinks]] configured: alerts are only logged");
    }
    let engine = Engine::load(config, store.clone(), Some(Arc::clone(&audit)), Arc::clone(&metrics), redactor)
        .await
        .with_credentials(config, secrets);
    tracker.spawn(engine.run(events.subscribe(), dispatcher, engine::system_clock(), shutdown.clone()));
    if let Some(heartbeat) = &config.heartbeat {
        let url = current.get(HEARTBEAT_URL_LABEL).ok_or(MonitorError::HeartbeatUrl)?;
        let beat = heartbeat::Heartbeat {
            url: secrecy::SecretString::from(secrecy::ExposeSecret::expose_secret(url).to_owned()),
            config: heartbeat.clone(),
            store,
            audit: Some(audit),
            metrics,
            client,
        };
        tracker.spawn(beat.run(shutdown.clone()));
    }
    Ok(())
}

/// Every configured sink, built with its secrets.
pub fn build_sinks(config: &Config, secrets: &Secrets) -> Result<Vec<Sink>, MonitorError> {
    config
        .alerts
        .sinks
        .iter()
        .map(|sink| Sink::build(sink, secrets).map_err(|source| MonitorError::Sink { name: sink.name.clone(), source }))
        .collect()
}

/// `kv` key of the last `steward alerts test` ([`AlertsTestRecord`]); `steward doctor` reads it.
pub const LAST_TEST_KEY: &str = "alerts.last_test";

/// Whether a notice opens, repeats or closes an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds (first notice or a `repeat_every` reminder).
    Firing,
    /// The condition cleared.
    Resolved,
}

/// How urgent a rule is; sinks map it to colours and priorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The agent is stopped or steward cannot record calls: act now.
    Critical,
    /// Something drifts (error rate, spend): look today.
    Warning,
    /// A test or an informational notice.
    Info,
}

/// One notice, as every sink receives it (the generic webhook and `command`
/// sinks get exactly this as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// The rule key (`agent_down`, `error_rate`, `spend_threshold`,
    /// `spend_cap`, `spend_call_refused`, `kill_switch`, `loop_breaker`, `crash_loop`,
    /// `audit_write`, `store_write`, `credential_expiry:NAME`,
    /// `backup_failed`, `backup_overdue`, `restore_test`, `test`): notices
    /// with the same key belong to one incident.
    pub key: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// How urgent.
    pub severity: Severity,
    /// `agent.name` from the config.
    pub agent: String,
    /// One line, shown as the subject or title.
    pub title: String,
    /// What happened and what to do, a few lines.
    pub message: String,
    /// When the condition began, epoch ms.
    pub since_ms: i64,
    /// When this notice was made, epoch ms.
    pub at_ms: i64,
    /// 0 for the first notice of an incident, n for the n-th reminder.
    pub repeat: u32,
    /// Sent by `steward alerts test`: nothing is wrong.
    pub test: bool,
}

impl Alert {
    /// This notice with its free text passed through `redactor`.
    pub fn redacted(mut self, redactor: &redact::Redactor) -> Self {
        self.title = redactor.redact(&self.title).into_owned();
        self.message = redactor.redact(&self.message).into_owned();
        self.agent = redactor.redact(&self.agent).into_owned();
        self
    }

    /// The test notice `steward alerts test` sends.
    pub fn test(agent: &str, now: SystemTime) -> Self {
        let now_ms = crate::clock::unix_ms(now);
        Alert {
            key: "test".to_owned(),
            status: AlertStatus::Firing,
            severity: Severity::Info,
            agent: agent.to_owned(),
            title: "Test alert from steward".to_owned(),
            message: "`steward alerts test` sent this to check that alerts reach you. Nothing is wrong.".to_owned(),
            since_ms: now_ms,
            at_ms: now_ms,
            repeat: 0,
            test: true,
        }
    }

    /// `FIRING`, `REMINDER`, `RESOLVED` or `TEST`.
    pub fn label(&self) -> &'static str {
        match (self.test, self.status, self.repeat) {
            (true, _, _) => "TEST",
            (false, AlertStatus::Resolved, _) => "RESOLVED",
            (false, AlertStatus::Firing, 0) => "FIRING",
            (false, AlertStatus::Firing, _) => "REMINDER",
        }
    }

    /// `[steward] FIRING: Agent down (poster)`: email subject, chat headline.
    pub fn headline(&self) -> String {
        format!("[steward] {}: {} ({})", self.label(), self.title, self.agent)
    }

    /// The notice as JSON: the fields plus RFC 3339 times.
    pub fn json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("steward_alert".into(), 1.into());
            object.insert("label".into(), self.label().into());
            object.insert("since".into(), rfc3339(self.since_ms).into());
            object.insert("at".into(), rfc3339(self.at_ms).into());
        }
        value
    }

    /// Plain text for email bodies and ntfy messages.
    pub fn text(&self) -> String {
        format!(
            "{}\n\n{}\n\nagent: {}\nrule: {}\nsince: {}\nsent: {}\n",
            self.headline(),
            self.message,
            self.agent,
            self.key,
            rfc3339(self.since_ms),
            rfc3339(self.at_ms)
        )
    }
}

/// Epoch ms as RFC 3339 UTC.
fn rfc3339(ms: i64) -> String {
    crate::clock::format_ts(crate::clock::from_unix_ms(ms))
}

/// What `steward alerts test` recorded, in `kv` [`LAST_TEST_KEY`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlertsTestRecord {
    /// When it ran, epoch ms.
    pub at_ms: i64,
    /// Every sink accepted the test alert.
    pub ok: bool,
    /// Per sink.
    pub results: Vec<DeliveryReport>,
}
