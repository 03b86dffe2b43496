//! The alert sinks: how one [`Alert`] becomes a generic JSON webhook, a
//! Slack or Discord message, an ntfy notification, an email (see `email`),
//! or the stdin of a program. One attempt per call of [`Sink::send`];
//! retries belong to `delivery`.
//!
//! Errors never carry the sink's URL (it embeds a token): reqwest errors are
//! stripped of it, and only status codes and short causes are kept.

use std::process::Stdio;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::AsyncWriteExt;

use super::email::Mailer;
use super::{Alert, AlertStatus, Severity};
use crate::config::{SinkConfig, SinkKind};
use crate::outbound::secret_label;
use crate::secrets::Secrets;

/// Discord refuses embeds whose description passes 4096 characters.
const DISCORD_DESCRIPTION_MAX: usize = 4000;
/// Slack truncates section text at 3000 characters.
const SLACK_TEXT_MAX: usize = 2900;
/// Bytes of a failing command's stderr kept for the error message.
const COMMAND_STDERR_MAX: usize = 512;
/// Environment variables a `command` sink inherits: enough to find and run a
/// script, nothing that could hold one of steward's secrets.
const COMMAND_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME"];

/// Why one delivery attempt failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The server answered with a non-success status.
    #[error("the server answered HTTP {status}")]
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// The request could not be sent or its answer not read.
    #[error("request failed: {0}")]
    Transport(String),
    /// The attempt took longer than the sink's `timeout`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The SMTP exchange failed.
    #[error("SMTP: {0}")]
    Smtp(String),
    /// The program could not be started, or failed.
    #[error("command: {0}")]
    Command(String),
    /// A secret this sink needs was not resolved (a startup defect).
    #[error("the sink's {0} was not resolved")]
    MissingSecret(&'static str),
}

impl SinkError {
    /// Whether another attempt may succeed: a 4xx other than 408/429 means
    /// the request itself is wrong (revoked webhook, bad token).
    pub fn retryable(&self) -> bool {
        match self {
            SinkError::Status { status } => *status >= 500 || *status == 408 || *status == 429,
            SinkError::MissingSecret(_) => false,
            _ => true,
        }
    }
}

/// How a chat webhook wants its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// [`Alert::json`] as is.
    Generic,
    /// `text` + Block Kit.
    Slack,
    /// `content` + one embed, mentions disabled.
    Discord,
}

/// Where a sink delivers.
enum Target {
    /// An HTTP POST of JSON.
    Webhook { url: SecretString, format: Format },
    /// ntfy's JSON publishing API on the topic's server.
    Ntfy { url: SecretString, token: Option<SecretString> },
    /// SMTP.
    Email(Box<Mailer>),
    /// A program.
    Command { argv: Vec<String> },
}

/// A sink with its secrets resolved, ready to send.
pub struct Sink {
    name: String,
    kind: &'static str,
    timeout: Duration,
    target: Target,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl Sink {
    /// Builds the sink of `config`, taking its secrets from `secrets`
    /// (resolved by [`Secrets::resolve`] or [`Secrets::resolve_alerts`]).
    pub fn build(config: &SinkConfig, secrets: &Secrets) -> Result<Sink, SinkError> {
        let secret = |key: &'static str| {
            secrets
                .get(&secret_label(&config.name, key))
                .map(|s| SecretString::from(s.expose_secret().to_owned()))
                .ok_or(SinkError::MissingSecret(key))
        };
        let target = match &config.kind {
            SinkKind::Webhook { .. } => Target::Webhook { url: secret("url")?, format: Format::Generic },
            SinkKind::Slack { .. } => Target::Webhook { url: secret("url")?, format: Format::Slack },
            SinkKind::Discord { .. } => Target::Webhook { url: secret("url")?, format: Format::Discord },
            SinkKind::Ntfy { token, .. } => {
                Target::Ntfy { url: secret("url")?, token: token.as_ref().map(|_| secret("token")).transpose()? }
            }
            SinkKind::Email(email) => {
                let password = email.password.as_ref().map(|_| secret("password")).transpose()?;
                Target::Email(Box::new(Mailer::new(email, password, config.timeout)?))
            }
            SinkKind::Command { argv } => Target::Command { argv: argv.clone() },
        };
        Ok(Sink { name: config.name.clone(), kind: config.kind.as_str(), timeout: config.timeout, target })
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kind as written in the config.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// One attempt at delivering `alert` (already redacted), bounded by the
    /// sink's timeout.
    pub async fn send(&self, alert: &Alert, client: &reqwest::Client) -> Result<(), SinkError> {
        let attempt = async {
            match &self.target {
                Target::Webhook { url, format } => {
                    let body = match format {
                        Format::Generic => alert.json(),
                        Format::Slack => slack_message(alert),
                        Format::Discord => discord_message(alert),
                    };
                    post_json(client, url.expose_secret(), &body, None).await
                }
                Target::Ntfy { url, token } => {
                    let (server, body) = ntfy_message(url.expose_secret(), alert)?;
                    post_json(client, &server, &body, token.as_ref().map(ExposeSecret::expose_secret)).await
                }
                Target::Email(mailer) => mailer.send(alert).await,
                Target::Command { argv } => run_command(argv, alert).await,
            }
        };
        tokio::time::timeout(self.timeout, attempt).await.map_err(|_| SinkError::Timeout(self.timeout))?
    }
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    bearer: Option<&str>,
) -> Result<(), SinkError> {
    let mut request = client.post(url).json(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| SinkError::Transport(e.without_url().to_string()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(SinkError::Status { status: status.as_u16() })
}

/// Emoji that lead chat messages, so the state reads at a glance.
fn marker(alert: &Alert) -> &'static str {
    match (alert.test, alert.status, alert.severity) {
        (true, _, _) => "🔔",
        (false, AlertStatus::Resolved, _) => "✅",
        (false, AlertStatus::Firing, Severity::Critical) => "🚨",
        (false, AlertStatus::Firing, _) => "⚠️",
    }
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped, or `<!channel>` in a
/// quoted reason would ping everyone.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A Slack incoming-webhook message: `text` for notifications, blocks for the body.
pub(super) fn slack_message(alert: &Alert) -> serde_json::Value {
    let headline = slack_escape(&format!("{} {}", marker(alert), alert.headline()));
    let body = truncate(&slack_escape(&alert.message), SLACK_TEXT_MAX);
    serde_json::json!({
        "text": headline,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": format!("*{headline}*\n{body}") } },
            { "type": "context", "elements": [ { "type": "mrkdwn", "text": slack_escape(&format!(
                "agent {} · rule {} · since {}", alert.agent, alert.key, super::rfc3339(alert.since_ms)
            )) } ] }
        ]
    })
}

/// A Discord webhook message: one embed coloured by state; mentions are
/// disabled so alert text can never ping `@everyone`.
pub(super) fn discord_message(alert: &Alert) -> serde_json::Value {
    let colour = match (alert.status, alert.severity) {
        (AlertStatus::Resolved, _) => 0x2e_b8_86,
        (_, Severity::Critical) => 0xd9_30_25,
        (_, Severity::Warning) => 0xf2_a9_00,
        (_, Severity::Info) => 0x3b_82_f6,
    };
    serde_json::json!({
        "content": format!("{} {}", marker(alert), alert.headline()),
        "allowed_mentions": { "parse": [] },
        "embeds": [{
            "title": truncate(&alert.title, 250),
            "description": truncate(&alert.message, DISCORD_DESCRIPTION_MAX),
            "color": colour,
            "timestamp": super::rfc3339(alert.at_ms),
            "footer": { "text": format!("steward · {} · {}", alert.agent, alert.key) },
        }]
    })
}

/// ntfy's JSON publishing: POST to the server root with the topic in the
/// body (headers could not carry a non-ASCII title). Returns (server URL, body).
pub(super) fn ntfy_message(topic_url: &str, alert: &Alert) -> Result<(String, serde_json::Value), SinkError> {
    let trimmed = topic_url.trim_end_matches('/');
    let invalid = || SinkError::Transport("the ntfy url must look like https://ntfy.example/TOPIC".into());
    let (server, topic) = trimmed.rsplit_once('/').ok_or_else(invalid)?;
    if topic.is_empty() || !server.contains("://") || server.ends_with('/') {
        return Err(invalid());
    }
    let (priority, tags) = match (alert.test, alert.status, alert.severity) {
        (true, _, _) => (3, vec!["bell"]),
        (false, AlertStatus::Resolved, _) => (3, vec!["white_check_mark"]),
        (false, AlertStatus::Firing, Severity::Critical) => (5, vec!["rotating_light"]),
        (false, AlertStatus::Firing, _) => (4, vec!["warning"]),
    };
    let body = serde_json::json!({
        "topic": topic,
        "title": alert.headline(),
        "message": alert.message,
        "priority": priority,
        "tags": tags,
    });
    Ok((server.to_owned(), body))
}

/// Runs `argv` with the alert JSON on stdin, a minimal environment (never
/// steward's own, which may hold credentials) and `STEWARD_ALERT_*` set.
/// Killed when the attempt times out (the future is dropped).
async fn run_command(argv: &[String], alert: &Alert) -> Result<(), SinkError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(SinkError::Command("no program".into()));
    };
    let mut command = tokio::process::Command::new(program);
    command.args(args).env_clear();
    for var in COMMAND_ENV {
        if let Some(value) = std::env::var_os(var) {
            command.env(var, value);
        }
    }
    command
        .env("STEWARD_ALERT_KEY", &alert.key)
        .env("STEWARD_ALERT_STATUS", alert.label())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| SinkError::Command(format!("cannot start {program}: {e}")))?;
    let payload = alert.json().to_string();
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading its stdin is its own business: judge it by its exit status.
        let _ = stdin.write_all(payload.as_bytes()).await;
        let _ = stdin.shutdown().await;
    }
    let output = child.wait_with_output().await.map_err(|e| SinkError::Command(format!("{program}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = truncate(stderr.trim(), COMMAND_STDERR_MAX);
    Err(SinkError::Command(format!("{program} exited with {}: {stderr}", output.status)))
}

/// At most `max` characters of `text`, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
