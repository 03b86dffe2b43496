//! The validated `[alerts]`, `[[alerts.sinks]]` and `[heartbeat]` sections:
//! when steward tells a human, and through what.
//!
//! Secret-bearing values (webhook URLs embed a token, SMTP passwords, the
//! dead-man URL) are [`CredentialSource`] references, resolved by `secrets`
//! like `[credentials.*]` and registered with the redactor.

use std::time::Duration;

use super::CredentialSource;

/// `[alerts]`
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// The error-rate alert fires when more than this percentage of the last
    /// hour's calls failed (see `monitor::engine` for what counts).
    pub error_rate_percent: u8,
    /// Below this many calls in the last hour the error-rate rule stays quiet:
    /// two failures out of three calls is noise, not an incident.
    pub error_rate_min_calls: u32,
    /// How long the agent must be down before a human hears of it: a restart
    /// takes a second or two and should not page anyone.
    pub agent_down_after: Duration,
    /// A condition still firing is announced again this often, so a forgotten
    /// incident resurfaces without flooding anyone.
    pub repeat_every: Duration,
    /// Where alerts go, in file order. Empty: alerts are only logged.
    pub sinks: Vec<SinkConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            error_rate_percent: super::DEFAULT_ERROR_RATE_PERCENT,
            error_rate_min_calls: super::DEFAULT_ERROR_RATE_MIN_CALLS,
            agent_down_after: super::DEFAULT_AGENT_DOWN_AFTER,
            repeat_every: super::DEFAULT_REPEAT_EVERY,
            sinks: Vec::new(),
        }
    }
}

/// One `[[alerts.sinks]]` entry.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Unique; how `steward status` and `steward alerts test` name the sink.
    /// Defaults to the kind (`webhook`, then `webhook-2`, ...).
    pub name: String,
    /// Longest time one delivery attempt may take; retries come on top.
    pub timeout: Duration,
    /// What the sink is, with its settings.
    pub kind: SinkKind,
}

/// The kinds of sink and their settings.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// POST of the alert as generic JSON.
    Webhook {
        /// Reference to the URL (it often embeds a token).
        url: CredentialSource,
    },
    /// A Slack incoming webhook (`text` + blocks).
    Slack {
        /// Reference to the webhook URL.
        url: CredentialSource,
    },
    /// A Discord webhook (`content` + embed).
    Discord {
        /// Reference to the webhook URL.
        url: CredentialSource,
    },
    /// An ntfy topic (`https://ntfy.sh/TOPIC` or self-hosted).
    Ntfy {
        /// Reference to the topic URL: whoever knows the topic can read it.
        url: CredentialSource,
        /// Reference to an access token, sent as `Authorization: Bearer`.
        token: Option<CredentialSource>,
    },
    /// Email over SMTP.
    Email(EmailSink),
    /// A program run with the alert JSON on its stdin.
    Command {
        /// Program and arguments; a relative program path containing `/` is
        /// resolved against the config file's directory, a bare name via `PATH`.
        argv: Vec<String>,
    },
}

impl SinkKind {
    /// The word used in the config file.
    pub fn as_str(&self) -> &'static str {
        match self {
            SinkKind::Webhook { .. } => "webhook",
            SinkKind::Slack { .. } => "slack",
            SinkKind::Discord { .. } => "discord",
            SinkKind::Ntfy { .. } => "ntfy",
            SinkKind::Email(_) => "email",
            SinkKind::Command { .. } => "command",
        }
    }
}

/// `kind = "email"`
#[derive(Debug, Clone)]
pub struct EmailSink {
    /// SMTP server host name (also the name its TLS certificate must carry).
    pub host: String,
    /// SMTP server port (587 for STARTTLS, 465 for implicit TLS).
    pub port: u16,
    /// How the connection is protected.
    pub tls: SmtpTls,
    /// Sender address (`steward@example.com` or `Steward <steward@example.com>`).
    pub from: String,
    /// Recipients; at least one.
    pub to: Vec<String>,
    /// SMTP login; defaults to the address in `from` when a password is set.
    pub username: Option<String>,
    /// Reference to the SMTP password; `None`: no authentication.
    pub password: Option<CredentialSource>,
}

/// Transport security of an SMTP sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (the default).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only accepted for a server on a loopback address
    /// (a local relay), where nothing crosses the network.
    None,
}

/// `[heartbeat]`: the dead-man switch for steward itself.
#[derive(Debug, Clone)]
pub struct HeartbeatConfig {
    /// Reference to the ping URL (healthchecks.io style; the URL is the secret).
    pub url: CredentialSource,
    /// Ping interval: the outside service alerts when pings stop.
    pub every: Duration,
    /// `GET` (the default) or `POST`.
    pub method: HeartbeatMethod,
}

/// The HTTP method of the heartbeat ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatMethod {
    /// `GET url`
    Get,
    /// `POST url` with an empty body.
    Post,
}
