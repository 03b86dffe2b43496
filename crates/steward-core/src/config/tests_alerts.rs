//! Tests of the monitoring sections: `[alerts]`, `[[alerts.sinks]]` and
//! `[heartbeat]`, their defaults, and every validation error with its
//! location and fix.

use std::time::Duration;

use super::tests::{MINIMAL, err, ok, render};
use super::*;

/// The example from the monitoring issue, plus every other sink kind.
const FULL_ALERTS: &str = r#"[agent]
name = "poster"

[alerts]
error_rate_percent = 20             # over the last hour
error_rate_min_calls = 20           # below this volume, no error-rate alert
agent_down_after = "30s"
repeat_every = "4h"
[[alerts.sinks]]
kind = "webhook"                    # webhook (generic JSON) | slack | discord | ntfy | email | command
url = "env:ALERT_WEBHOOK_URL"       # secret-bearing values are references, like credentials
[[alerts.sinks]]
kind = "email"
smtp = "smtp.example.com:587"
from = "steward@example.com"
to = ["oncall@example.com"]
password = "env:SMTP_PASSWORD"
[[alerts.sinks]]
kind = "slack"
url = "file:slack.url"
[[alerts.sinks]]
kind = "discord"
name = "ops-discord"
url = "env:DISCORD_URL"
timeout = "3s"
[[alerts.sinks]]
kind = "ntfy"
url = "env:NTFY_URL"
token = "env:NTFY_TOKEN"
[[alerts.sinks]]
kind = "command"
command = ["./bin/page", "--urgent"]
[[alerts.sinks]]
kind = "webhook"
url = "env:SECOND_HOOK"

[heartbeat]                          # dead-man switch for steward itself (healthchecks.io style)
url = "env:DEADMAN_URL"
every = "1m"
"#;

#[test]
fn the_issue_example_parses_with_every_sink_kind() {
    let c = ok(FULL_ALERTS);
    let a = &c.alerts;
    assert_eq!(a.error_rate_percent, 20);
    assert_eq!(a.error_rate_min_calls, 20);
    assert_eq!(a.agent_down_after, Duration::from_secs(30));
    assert_eq!(a.repeat_every, Duration::from_secs(4 * 3600));
    let names: Vec<&str> = a.sinks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["webhook", "email", "slack", "ops-discord", "ntfy", "command", "webhook-2"]);
    assert!(
        matches!(&a.sinks[0].kind, SinkKind::Webhook { url } if *url == CredentialSource::Env("ALERT_WEBHOOK_URL".into()))
    );
    let SinkKind::Email(email) = &a.sinks[1].kind else { panic!("not email: {:?}", a.sinks[1]) };
    assert_eq!((email.host.as_str(), email.port, email.tls), ("smtp.example.com", 587, SmtpTls::StartTls));
    assert_eq!(email.from, "steward@example.com");
    assert_eq!(email.to, ["oncall@example.com"]);
    assert_eq!(email.password, Some(CredentialSource::Env("SMTP_PASSWORD".into())));
    assert_eq!(email.username, None);
    assert!(
        matches!(&a.sinks[2].kind, SinkKind::Slack { url } if *url == CredentialSource::File("/srv/poster/slack.url".into()))
    );
    assert_eq!(a.sinks[3].timeout, Duration::from_secs(3));
    assert_eq!(a.sinks[0].timeout, DEFAULT_SINK_TIMEOUT);
    assert!(matches!(&a.sinks[4].kind, SinkKind::Ntfy { token: Some(_), .. }));
    let SinkKind::Command { argv } = &a.sinks[5].kind else { panic!("not command") };
    assert_eq!(argv, &["/srv/poster/bin/page", "--urgent"]);
    let heartbeat = c.heartbeat.unwrap();
    assert_eq!(heartbeat.url, CredentialSource::Env("DEADMAN_URL".into()));
    assert_eq!(heartbeat.every, Duration::from_secs(60));
    assert_eq!(heartbeat.method, HeartbeatMethod::Get);
}

#[test]
fn alerts_default_to_the_three_rules_without_sinks_or_heartbeat() {
    let c = ok(MINIMAL);
    assert_eq!(c.alerts.error_rate_percent, DEFAULT_ERROR_RATE_PERCENT);
    assert_eq!(c.alerts.error_rate_min_calls, DEFAULT_ERROR_RATE_MIN_CALLS);
    assert_eq!(c.alerts.agent_down_after, DEFAULT_AGENT_DOWN_AFTER);
    assert_eq!(c.alerts.repeat_every, DEFAULT_REPEAT_EVERY);
    assert!(c.alerts.sinks.is_empty());
    assert!(c.heartbeat.is_none());
    let c = ok(&format!("{MINIMAL}[alerts]\n[heartbeat]\nurl = \"file:/etc/steward/ping\"\nmethod = \"POST\"\n"));
    let heartbeat = c.heartbeat.unwrap();
    assert_eq!(heartbeat.every, DEFAULT_HEARTBEAT_EVERY);
    assert_eq!(heartbeat.method, HeartbeatMethod::Post);
}

#[test]
fn a_local_relay_may_be_plain_smtp() {
    let c = ok(&format!(
        "{MINIMAL}[[alerts.sinks]]\nkind = \"email\"\nsmtp = \"127.0.0.1:2525\"\ntls = \"none\"\n\
         from = \"Steward <s@example.com>\"\nto = [\"a@example.com\", \"b@example.com\"]\nusername = \"s\"\n"
    ));
    let SinkKind::Email(email) = &c.alerts.sinks[0].kind else { panic!("not email") };
    assert_eq!((email.host.as_str(), email.port, email.tls), ("127.0.0.1", 2525, SmtpTls::None));
    assert_eq!(email.username.as_deref(), Some("s"));
    assert_eq!(email.to.len(), 2);
}

/// One case of the validation table: the file, where the error must point
/// (1-based line, column), and text the message and the help must contain.
struct Case {
    source: String,
    at: (usize, usize),
    message: &'static str,
    help: &'static str,
}

fn case(source: impl Into<String>, at: (usize, usize), message: &'static str, help: &'static str) -> Case {
    Case { source: source.into(), at, message, help }
}

#[test]
fn every_alerts_validation_error_points_at_the_value_and_says_the_fix() {
    // MINIMAL is two lines; `body` starts on line 3 (a header) and its keys on line 4.
    let alerts = |body: &str| format!("{MINIMAL}[alerts]\n{body}");
    let sink = |body: &str| format!("{MINIMAL}[[alerts.sinks]]\n{body}");
    let email = |extra: &str| {
        sink(&format!(
            "kind = \"email\"\nsmtp = \"smtp.example.com:587\"\nfrom = \"s@example.com\"\nto = [\"o@example.com\"]\n{extra}"
        ))
    };
    let cases = vec![
        case(
            alerts("error_rate_percent = 0\n"),
            (4, 22),
            "error_rate_percent = 0 is outside 1..=100",
            "error_rate_percent = 20",
        ),
        case(alerts("error_rate_percent = 150\n"), (4, 22), "outside 1..=100", "whole percentage"),
        case(alerts("error_rate_min_calls = -1\n"), (4, 24), "not a positive count", "error_rate_min_calls = 20"),
        case(alerts("agent_down_after = \"soon\"\n"), (4, 20), "soon", "agent_down_after = \"30s\""),
        case(alerts("repeat_every = \"0s\"\n"), (4, 16), "repeat_every is zero", "repeat_every = \"4h\""),
        case(alerts("repeat = \"4h\"\n"), (4, 1), "unknown key `repeat` in [alerts]", "repeat_every"),
        case(alerts("sinks = 3\n"), (4, 9), "`sinks` must be a list", "[[alerts.sinks]]"),
        case(sink("kind = \"pager\"\n"), (4, 8), "sink kind \"pager\" is not one of", "kind = \"webhook\""),
        case(sink("url = \"env:X\"\n"), (3, 1), "[[alerts.sinks]] is missing `kind`", "add kind"),
        case(sink("kind = \"webhook\"\n"), (4, 8), "this webhook sink has no `url`", "url = \"env:ALERT_WEBHOOK_URL\""),
        case(sink("kind = \"slack\"\n"), (4, 8), "this slack sink has no `url`", "url = \"env:SLACK_WEBHOOK_URL\""),
        case(
            sink("kind = \"webhook\"\nurl = \"https://hooks.example.com/T0/B0/abc\"\n"),
            (5, 7),
            "url is written literally",
            "url = \"env:ALERT_WEBHOOK_URL\"",
        ),
        case(
            sink("kind = \"webhook\"\nurl = \"env:\"\n"),
            (5, 7),
            "names no environment variable",
            "url takes a reference",
        ),
        case(
            sink("kind = \"webhook\"\nurl = \"env:X\"\nsmtp = \"h:25\"\n"),
            (6, 8),
            "`smtp` does not apply",
            "a webhook sink accepts",
        ),
        case(sink("kind = \"webhook\"\nurl = \"env:X\"\nbody = 1\n"), (6, 1), "unknown key `body`", "accepts"),
        case(
            sink("kind = \"webhook\"\nurl = \"env:X\"\nname = \"Ops Hook\"\n"),
            (6, 8),
            "sink name \"Ops Hook\"",
            "lower-case",
        ),
        case(
            format!(
                "{MINIMAL}[[alerts.sinks]]\nkind = \"webhook\"\nurl = \"env:X\"\n[[alerts.sinks]]\nkind = \"slack\"\nname = \"webhook\"\nurl = \"env:Y\"\n"
            ),
            (8, 8),
            "sink name \"webhook\" is used twice",
            "its own name",
        ),
        case(
            sink("kind = \"webhook\"\nurl = \"env:X\"\ntimeout = \"0s\"\n"),
            (6, 11),
            "timeout is zero",
            "timeout = \"10s\"",
        ),
        case(
            sink("kind = \"email\"\nsmtp = \"h:25\"\nto = [\"o@example.com\"]\n"),
            (4, 8),
            "no `from`",
            "from = \"steward@example.com\"",
        ),
        case(email("").replace(":587", ""), (5, 8), "is not host:port", "smtp = \"smtp.example.com:587\""),
        case(email("tls = \"ssl\"\n"), (8, 7), "tls \"ssl\" is not one of starttls, tls, none", "tls = \"starttls\""),
        case(email("tls = \"none\"\n"), (8, 7), "unencrypted", "only for a relay on 127.0.0.1"),
        case(
            email("").replace("s@example.com", "steward"),
            (6, 8),
            "from \"steward\" is not an email address",
            "steward@example.com",
        ),
        case(email("").replace("[\"o@example.com\"]", "[]"), (7, 6), "to is an empty list", "at least one address"),
        case(
            sink("kind = \"command\"\ncommand = []\n"),
            (5, 11),
            "command names no program",
            "command = [\"/usr/local/bin/page-me\"",
        ),
        case(
            format!("{MINIMAL}[heartbeat]\nevery = \"1m\"\n"),
            (3, 1),
            "[heartbeat] is missing `url`",
            "url = \"env:NAME\"",
        ),
        case(
            format!("{MINIMAL}[heartbeat]\nurl = \"env:D\"\nevery = \"0s\"\n"),
            (5, 9),
            "every is zero",
            "every = \"1m\"",
        ),
        case(
            format!("{MINIMAL}[heartbeat]\nurl = \"env:D\"\nmethod = \"PUT\"\n"),
            (5, 10),
            "method \"PUT\" is not one of GET, POST",
            "method = \"GET\"",
        ),
    ];

    let mut failures = Vec::new();
    for Case { source, at, message, help } in cases {
        let e = err(&source);
        let shown = render(&e);
        let got_help = e.help_text().unwrap_or_default();
        if e.line_col() != Some(at) {
            failures.push(format!("expected {at:?} for {message:?}:\n{shown}"));
        } else if !e.message().contains(message) {
            failures.push(format!("message lacks {message:?}:\n{shown}"));
        } else if got_help.is_empty() || !got_help.contains(help) {
            failures.push(format!("help lacks {help:?}:\n{shown}"));
        } else if !e.related_errors().is_empty() {
            failures.push(format!("expected one problem:\n{shown}"));
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_literal_webhook_url_is_masked_in_the_report() {
    let source = format!(
        "{MINIMAL}[[alerts.sinks]]\nkind = \"slack\"\nurl = \"https://hooks.example.com/services/T000/B000/XXXXsecretXXXX\"\n"
    );
    let e = err(&source);
    let shown = render(&e);
    assert!(!shown.contains("XXXXsecretXXXX"), "{shown}");
}

#[test]
fn a_literal_password_or_token_is_refused_and_masked() {
    let email = format!(
        "{MINIMAL}[[alerts.sinks]]\nkind = \"email\"\nsmtp = \"smtp.example.com:587\"\nfrom = \"s@example.com\"\n\
         to = [\"o@example.com\"]\npassword = \"hunter2hunter2\"\n"
    );
    let ntfy = format!("{MINIMAL}[[alerts.sinks]]\nkind = \"ntfy\"\nurl = \"env:N\"\ntoken = \"tk_abcdefgh\"\n");
    for (source, key, value) in [(email, "password", "hunter2hunter2"), (ntfy, "token", "tk_abcdefgh")] {
        let e = err(&source);
        let shown = render(&e);
        // The secret scanner may flag the same value too; the reference check must be among the problems.
        let mine = e.errors().find(|p| p.message().contains(&format!("{key} is written literally")));
        let help = mine.and_then(|p| p.help_text()).unwrap_or_default();
        assert!(help.contains(&format!("{key} = \"env:")), "{shown}");
        assert!(!shown.contains(value), "{shown}");
    }
}

#[test]
fn broken_sinks_are_reported_together() {
    let source = format!(
        "{MINIMAL}[[alerts.sinks]]\nkind = \"webhook\"\n[[alerts.sinks]]\nkind = \"email\"\nsmtp = \"x\"\n\
         from = \"a@b.example\"\nto = [\"c@d.example\"]\n[alerts]\nrepeat_every = \"never\"\n"
    );
    let e = err(&source);
    let lines: Vec<usize> = e.errors().map(|p| p.line_col().unwrap().0).collect();
    assert_eq!(lines, vec![4, 7, 11], "{}", render(&e));
}
