//! steward's own outbound traffic: alert sinks, the dead-man heartbeat and
//! token introspection. This module owns the HTTP client they share and the
//! secrets their destinations reference (webhook URLs with a token inside,
//! an ntfy token, an SMTP password, the heartbeat URL).
//!
//! `secrets` resolves those references next to the credentials, under the
//! labels named here; `monitor` reads them back by the same labels. The
//! agent's own calls never use this client: they go through the pipeline's
//! forwarder, one client per upstream.

use std::time::Duration;

use crate::config::{Config, CredentialSource, SinkKind};

/// The HTTP client steward's own requests share: rustls, no redirects (a
/// webhook URL with its token must not be replayed elsewhere), bounded
/// connect time. The error carries no URL.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(reqwest::Error::without_url)
}

/// Every secret reference of `[alerts]` and `[heartbeat]`, with the label
/// its value is stored under in [`crate::secrets::Secrets`]. Labels contain
/// `:`, which credential names cannot, so they never collide.
pub fn secret_references(config: &Config) -> Vec<(String, CredentialSource)> {
    let mut out = Vec::new();
    for sink in &config.alerts.sinks {
        match &sink.kind {
            SinkKind::Webhook { url } | SinkKind::Slack { url } | SinkKind::Discord { url } => {
                out.push((secret_label(&sink.name, "url"), url.clone()));
            }
            SinkKind::Ntfy { url, token } => {
                out.push((secret_label(&sink.name, "url"), url.clone()));
                if let Some(token) = token {
                    out.push((secret_label(&sink.name, "token"), token.clone()));
                }
            }
            SinkKind::Email(email) => {
                if let Some(password) = &email.password {
                    out.push((secret_label(&sink.name, "password"), password.clone()));
                }
            }
            SinkKind::Command { .. } => {}
        }
    }
    if let Some(heartbeat) = &config.heartbeat {
        out.push((HEARTBEAT_URL_LABEL.to_owned(), heartbeat.url.clone()));
    }
    out
}

/// The [`crate::secrets::Secrets`] label of the heartbeat URL.
pub const HEARTBEAT_URL_LABEL: &str = "heartbeat:url";

/// The [`crate::secrets::Secrets`] label of a sink's `key` (`url`, `token`, `password`).
pub fn secret_label(sink: &str, key: &str) -> String {
    format!("alerts:{sink}:{key}")
}
