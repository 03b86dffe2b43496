//! Stage two for monitoring: `[alerts]`, `[[alerts.sinks]]` and
//! `[heartbeat]`. Same rules as the rest of validation: every problem is
//! recorded with its fix and a stand-in value keeps the pass going.

use std::collections::HashSet;

use super::*;
use crate::config::{AlertsConfig, EmailSink, HeartbeatConfig, HeartbeatMethod, SinkConfig, SinkKind, SmtpTls};

/// Default `[alerts] error_rate_percent`: one call in five failing for an
/// hour is an incident; a few failed retries are not.
pub const DEFAULT_ERROR_RATE_PERCENT: u8 = 20;
/// Default `[alerts] error_rate_min_calls`: below 20 calls an hour, a couple
/// of failures would swing the rate past any threshold.
pub const DEFAULT_ERROR_RATE_MIN_CALLS: u32 = 20;
/// Default `[alerts] agent_down_after`: longer than a restart with backoff's
/// first steps, short enough to matter.
pub const DEFAULT_AGENT_DOWN_AFTER: Duration = Duration::from_secs(30);
/// Default `[alerts] repeat_every`: a firing alert resurfaces twice in a work day.
pub const DEFAULT_REPEAT_EVERY: Duration = Duration::from_secs(4 * 3600);
/// Default `[heartbeat] every`: healthchecks.io's finest period is a minute.
pub const DEFAULT_HEARTBEAT_EVERY: Duration = Duration::from_secs(60);
/// Default sink `timeout`: a webhook or SMTP server that has not answered in
/// 10 s is down; the attempt is retried with backoff.
pub const DEFAULT_SINK_TIMEOUT: Duration = Duration::from_secs(10);

/// The sink kinds, as written, with the keys each accepts besides `kind`,
/// `name` and `timeout`, the required ones first.
const SINK_KEYS: &[(&str, &[&str], usize)] = &[
    ("webhook", &["url"], 1),
    ("slack", &["url"], 1),
    ("discord", &["url"], 1),
    ("ntfy", &["url", "token"], 1),
    ("email", &["smtp", "from", "to", "tls", "username", "password"], 3),
    ("command", &["command"], 1),
];

impl Validator<'_> {
    /// `[alerts]`; every key has a default, so an absent section gives the
    /// three default rules with no sink (alerts are logged only).
    pub(super) fn alerts(&mut self, raw: RawAlerts) -> AlertsConfig {
        let error_rate_percent = match raw.error_rate_percent {
            None => DEFAULT_ERROR_RATE_PERCENT,
            Some(n) => match u8::try_from(*n.get_ref()) {
                Ok(p @ 1..=100) => p,
                _ => {
                    self.push(Problem::new(
                        n.span(),
                        format!("error_rate_percent = {} is outside 1..=100", n.get_ref()),
                        "out of range",
                        "write a whole percentage, like error_rate_percent = 20 (the default)",
                    ));
                    DEFAULT_ERROR_RATE_PERCENT
                }
            },
        };
        let error_rate_min_calls = match raw.error_rate_min_calls {
            None => DEFAULT_ERROR_RATE_MIN_CALLS,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(calls @ 1..) => calls,
                _ => {
                    self.push(Problem::new(
                        n.span(),
                        format!("error_rate_min_calls = {} is not a positive count of calls", n.get_ref()),
                        "out of range",
                        "write how many calls an hour make the error rate meaningful, like \
                         error_rate_min_calls = 20 (the default)",
                    ));
                    DEFAULT_ERROR_RATE_MIN_CALLS
                }
            },
        };
        let agent_down_after = self.timeout(raw.agent_down_after, "agent_down_after", "30s", DEFAULT_AGENT_DOWN_AFTER);
        let repeat_every = self.timeout(raw.repeat_every, "repeat_every", "4h", DEFAULT_REPEAT_EVERY);
        let mut names = HashSet::new();
        let mut sinks = Vec::new();
        let mut per_kind: HashMap<&'static str, usize> = HashMap::new();
        for raw_sink in raw.sinks {
            if let Some(sink) = self.sink(raw_sink, &mut names, &mut per_kind) {
                sinks.push(sink);
            }
        }
        AlertsConfig { error_rate_percent, error_rate_min_calls, agent_down_after, repeat_every, sinks }
    }

    fn sink(
        &mut self,
        raw: RawSink,
        names: &mut HashSet<String>,
        per_kind: &mut HashMap<&'static str, usize>,
    ) -> Option<SinkConfig> {
        let Some(&(kind, keys, required)) = SINK_KEYS.iter().find(|(k, _, _)| k == raw.kind.get_ref()) else {
            let kinds: Vec<&str> = SINK_KEYS.iter().map(|(k, _, _)| *k).collect();
            self.push(Problem::new(
                raw.kind.span(),
                format!("sink kind {:?} is not one of {}", raw.kind.get_ref(), kinds.join(", ")),
                "unknown kind",
                "write kind = \"webhook\" (generic JSON), \"slack\", \"discord\", \"ntfy\", \"email\" or \"command\"",
            ));
            return None;
        };
        let present: [(&str, Option<std::ops::Range<usize>>); 9] = [
            ("url", raw_span(&raw.url)),
            ("token", raw_span(&raw.token)),
            ("smtp", raw_span(&raw.smtp)),
            ("tls", raw_span(&raw.tls)),
            ("from", raw_span(&raw.from)),
            ("to", raw_span(&raw.to)),
            ("username", raw_span(&raw.username)),
            ("password", raw_span(&raw.password)),
            ("command", raw_span(&raw.command)),
        ];
        let before = self.problems.len();
        for (key, span) in &present {
            if let Some(span) = span
                && !keys.contains(key)
            {
                self.push(Problem::new(
                    span.clone(),
                    format!("`{key}` does not apply to a sink of kind = \"{kind}\""),
                    "not for this kind",
                    format!("remove {key}; a {kind} sink accepts: kind, name, timeout, {}", keys.join(", ")),
                ));
            }
        }
        for key in &keys[..required] {
            if present.iter().any(|(k, span)| k == key && span.is_none()) {
                self.push(Problem::new(
                    raw.kind.span(),
                    format!("this {kind} sink has no `{key}`"),
                    format!("{key} is required here"),
                    format!("add {}", sink_example(kind, key)),
                ));
            }
        }
        let name = self.sink_name(raw.name.as_ref(), kind, names, per_kind);
        let timeout = self.timeout(raw.timeout.clone(), "timeout", "10s", DEFAULT_SINK_TIMEOUT);
        let url = raw.url.as_ref().and_then(|url| self.reference(url, "url", "ALERT_WEBHOOK_URL"));
        let kind = match kind {
            "webhook" => SinkKind::Webhook { url: url? },
            "slack" => SinkKind::Slack { url: url? },
            "discord" => SinkKind::Discord { url: url? },
            "ntfy" => {
                let token = raw.token.as_ref().and_then(|t| self.reference(t, "token", "NTFY_TOKEN"));
                SinkKind::Ntfy { url: url?, token }
            }
            "email" => SinkKind::Email(self.email(&raw)?),
            _ => SinkKind::Command { argv: self.command(raw.command.as_ref()?)? },
        };
        (self.problems.len() == before).then_some(SinkConfig { name, timeout, kind })
    }

    /// The sink's own `name`, or its kind, numbered from the second unnamed sink of a kind on.
    fn sink_name(
        &mut self,
        written: Option<&Spanned<String>>,
        kind: &'static str,
        names: &mut HashSet<String>,
        per_kind: &mut HashMap<&'static str, usize>,
    ) -> String {
        let Some(written) = written else {
            let count = per_kind.entry(kind).or_insert(0);
            *count += 1;
            let mut name = if *count == 1 { kind.to_owned() } else { format!("{kind}-{count}") };
            while names.contains(&name) {
                name.push('_');
            }
            names.insert(name.clone());
            return name;
        };
        let text = written.get_ref();
        if !is_tool_name(text) {
            self.push(Problem::new(
                written.span(),
                format!("sink name {text:?} has characters other than a-z 0-9 _ . -"),
                "invalid name",
                "use lower-case letters, digits, _, . and -, like name = \"oncall-email\"",
            ));
        }
        if !names.insert(text.clone()) {
            self.push(Problem::new(
                written.span(),
                format!("sink name {text:?} is used twice"),
                "duplicate name",
                "give every [[alerts.sinks]] entry its own name",
            ));
        }
        text.clone()
    }

    fn email(&mut self, raw: &RawSink) -> Option<EmailSink> {
        let smtp = raw.smtp.as_ref()?;
        let (host, port) = match parse_host_port(smtp.get_ref()) {
            Some(hp) => hp,
            None => {
                self.push(Problem::new(
                    smtp.span(),
                    format!("smtp {:?} is not host:port", smtp.get_ref()),
                    "not host:port",
                    "write the SMTP server and port, like smtp = \"smtp.example.com:587\"",
                ));
                return None;
            }
        };
        let tls = self.choice(
            raw.tls.clone(),
            "tls",
            &[("starttls", SmtpTls::StartTls), ("tls", SmtpTls::Tls), ("none", SmtpTls::None)],
            SmtpTls::StartTls,
        );
        if tls == SmtpTls::None
            && !is_loopback_host(&host)
            && let Some(written) = &raw.tls
        {
            self.push(Problem::new(
                written.span(),
                format!("tls = \"none\" would send alerts (and the password) to {host} unencrypted"),
                "unencrypted",
                "use tls = \"starttls\" (port 587) or tls = \"tls\" (port 465); \"none\" is only for a \
                 relay on 127.0.0.1",
            ));
        }
        let from = raw.from.as_ref()?;
        self.mailbox(from, "from");
        let to = raw.to.as_ref()?;
        if to.get_ref().is_empty() {
            self.push(Problem::new(
                to.span(),
                "to is an empty list",
                "no recipient",
                "list at least one address, like to = [\"oncall@example.com\"]",
            ));
        }
        for address in to.get_ref() {
            self.mailbox(&Spanned::new(to.span(), address.clone()), "to");
        }
        let password = raw.password.as_ref().and_then(|p| self.reference(p, "password", "SMTP_PASSWORD"));
        Some(EmailSink {
            host,
            port,
            tls,
            from: from.get_ref().clone(),
            to: to.get_ref().clone(),
            username: raw.username.as_ref().map(|u| u.get_ref().clone()),
            password,
        })
    }

    fn mailbox(&mut self, text: &Spanned<String>, key: &str) {
        if text.get_ref().parse::<lettre::message::Mailbox>().is_err() {
            self.push(Problem::new(
                text.span(),
                format!("{key} {:?} is not an email address", text.get_ref()),
                "not an address",
                format!("write an address like {key} = \"steward@example.com\" or \"Steward <steward@example.com>\""),
            ));
        }
    }

    fn command(&mut self, raw: &Spanned<Vec<String>>) -> Option<Vec<String>> {
        let mut argv = raw.get_ref().clone();
        let Some(program) = argv.first_mut().filter(|p| !p.trim().is_empty()) else {
            self.push(Problem::new(
                raw.span(),
                "command names no program",
                "empty command",
                "write the program and its arguments, like command = [\"/usr/local/bin/page-me\", \"--urgent\"]",
            ));
            return None;
        };
        // Like every path in the file: relative to the config file's directory.
        if program.contains('/') && !program.starts_with('/') {
            *program = normalize(&self.base_dir.join(&*program)).display().to_string();
        }
        Some(argv)
    }

    /// `[heartbeat]`, absent by default.
    pub(super) fn heartbeat(&mut self, raw: Option<RawHeartbeat>) -> Option<HeartbeatConfig> {
        let raw = raw?;
        let url = self.reference(&raw.url, "url", "DEADMAN_URL");
        let every = self.timeout(raw.every, "every", "1m", DEFAULT_HEARTBEAT_EVERY);
        let method = self.choice(
            raw.method,
            "method",
            &[("GET", HeartbeatMethod::Get), ("POST", HeartbeatMethod::Post)],
            HeartbeatMethod::Get,
        );
        Some(HeartbeatConfig { url: url?, every, method })
    }

    /// A secret-bearing value: `env:NAME` or `file:PATH`, never the value
    /// itself (a webhook URL is as good as a password).
    pub(super) fn reference(
        &mut self,
        text: &Spanned<String>,
        key: &str,
        example_var: &str,
    ) -> Option<CredentialSource> {
        let value = text.get_ref().as_str();
        if value.starts_with("env:") || value.starts_with("file:") {
            let before = self.problems.len();
            let source = self.credential_source(text);
            if self.problems.len() > before {
                // Reword the credential-shaped help for this key.
                if let Some(last) = self.problems.last_mut() {
                    last.help = format!(
                        "{key} takes a reference: {key} = \"env:{example_var}\" (an environment variable) or \
                         {key} = \"file:/etc/steward/{}\" (a file only its owner can read)",
                        example_var.to_ascii_lowercase()
                    );
                }
            }
            return source;
        }
        self.push(
            Problem::new(
                text.span(),
                format!("{key} is written literally; it carries a secret and must be a reference"),
                "literal value (masked)",
                format!(
                    "export {example_var}='...' and write {key} = \"env:{example_var}\" (or \"file:PATH\" for a \
                     file only its owner can read); then rotate the value, it may already be in git history"
                ),
            )
            .secret(),
        );
        None
    }
}

/// A line to add for a required sink key.
fn sink_example(kind: &str, key: &str) -> String {
    match (kind, key) {
        ("slack", "url") => "url = \"env:SLACK_WEBHOOK_URL\"".to_owned(),
        ("discord", "url") => "url = \"env:DISCORD_WEBHOOK_URL\"".to_owned(),
        ("ntfy", "url") => "url = \"env:NTFY_TOPIC_URL\"".to_owned(),
        (_, "url") => "url = \"env:ALERT_WEBHOOK_URL\"".to_owned(),
        (_, "smtp") => "smtp = \"smtp.example.com:587\"".to_owned(),
        (_, "from") => "from = \"steward@example.com\"".to_owned(),
        (_, "to") => "to = [\"oncall@example.com\"]".to_owned(),
        (_, "command") => "command = [\"/usr/local/bin/page-me\"]".to_owned(),
        (_, other) => format!("{other} = ..."),
    }
}

/// `host:port` or `[v6]:port`; the port must be non-zero.
fn parse_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let valid = !host.is_empty() && !host.contains(['/', ' ', '@']);
    valid.then(|| (host.to_owned(), port))
}

/// Whether `host` is this machine: `localhost` or a loopback IP.
pub(super) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
