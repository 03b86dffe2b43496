//! The `email` sink: one message per notice over SMTP, with STARTTLS
//! required by default (or implicit TLS), on rustls. Plain SMTP is only
//! configurable for a relay on a loopback address (validated in `config`).

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use super::{Alert, SinkError};
use crate::config::{EmailSink, SmtpTls};

/// A configured SMTP transport and the addresses.
pub(super) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Mailer {
    /// Builds the transport; nothing is sent or connected yet.
    pub(super) fn new(
        config: &EmailSink,
        password: Option<SecretString>,
        timeout: Duration,
    ) -> Result<Self, SinkError> {
        let smtp = |e: &dyn std::fmt::Display| SinkError::Smtp(e.to_string());
        let from: Mailbox = config.from.parse().map_err(|e| smtp(&e))?;
        let to = config.to.iter().map(|a| a.parse::<Mailbox>().map_err(|e| smtp(&e))).collect::<Result<_, _>>()?;
        let tls = match config.tls {
            SmtpTls::StartTls => Tls::Required(TlsParameters::new_rustls(config.host.clone()).map_err(|e| smtp(&e))?),
            SmtpTls::Tls => Tls::Wrapper(TlsParameters::new_rustls(config.host.clone()).map_err(|e| smtp(&e))?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.clone())
            .port(config.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(password) = password {
            let user = config.username.clone().unwrap_or_else(|| from.email.to_string());
            builder = builder.credentials(Credentials::new(user, password.expose_secret().to_owned()));
        }
        Ok(Mailer { transport: builder.build(), from, to })
    }

    /// Sends `alert` as a plain-text message to every recipient.
    pub(super) async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        let mut message = Message::builder().from(self.from.clone()).subject(alert.headline());
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(alert.text())
            .map_err(|e| SinkError::Smtp(format!("cannot build the message: {e}")))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| SinkError::Smtp(e.to_string()))
    }
}
