//! Stage one for monitoring: `[alerts]` with its `[[alerts.sinks]]` list, and
//! `[heartbeat]`. Each sink is deserialized on its own, like `[[tools]]`, so
//! one broken sink does not hide the problems of the others.

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

use super::{DurationText, Problem, section, serde_problem};

/// `[alerts]` without its sinks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [alerts] table")]
pub(in crate::config) struct RawAlerts {
    /// Percent, 1..=100.
    pub error_rate_percent: Option<Spanned<i64>>,
    /// Calls in the last hour below which the error-rate rule stays quiet.
    pub error_rate_min_calls: Option<Spanned<i64>>,
    /// A duration.
    pub agent_down_after: Option<Spanned<DurationText>>,
    /// A duration.
    pub repeat_every: Option<Spanned<DurationText>>,
    /// `[[alerts.sinks]]`, filled in by [`alerts_section`], never by serde.
    #[serde(skip)]
    pub sinks: Vec<RawSink>,
}

/// One `[[alerts.sinks]]` entry. Every kind's keys are accepted here; stage
/// two refuses a key that does not apply to the entry's `kind`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an [[alerts.sinks]] table with kind = \"webhook\" (or slack, discord, ntfy, email, command)"
)]
pub(in crate::config) struct RawSink {
    /// `webhook` | `slack` | `discord` | `ntfy` | `email` | `command`.
    pub kind: Spanned<String>,
    /// Shown in `steward status` and `steward alerts test`; defaults from the kind.
    pub name: Option<Spanned<String>>,
    /// webhook, slack, discord, ntfy: a reference (`env:NAME` | `file:PATH`).
    pub url: Option<Spanned<String>>,
    /// ntfy: an access token reference.
    pub token: Option<Spanned<String>>,
    /// email: `host:port`.
    pub smtp: Option<Spanned<String>>,
    /// email: `starttls` | `tls` | `none`.
    pub tls: Option<Spanned<String>>,
    /// email: sender address.
    pub from: Option<Spanned<String>>,
    /// email: recipients.
    pub to: Option<Spanned<Vec<String>>>,
    /// email: SMTP user; defaults to `from`.
    pub username: Option<Spanned<String>>,
    /// email: a reference.
    pub password: Option<Spanned<String>>,
    /// command: program and arguments.
    pub command: Option<Spanned<Vec<String>>>,
    /// Any kind: how long one delivery attempt may take.
    pub timeout: Option<Spanned<DurationText>>,
}

/// `[heartbeat]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [heartbeat] table with url = \"env:NAME\"")]
pub(in crate::config) struct RawHeartbeat {
    /// A reference (`env:NAME` | `file:PATH`) to the ping URL.
    pub url: Spanned<String>,
    /// A duration.
    pub every: Option<Spanned<DurationText>>,
    /// `GET` | `POST`.
    pub method: Option<Spanned<String>>,
}

/// `[alerts]`: the scalar keys as one struct, `sinks` entry by entry.
pub(super) fn alerts_section(value: Spanned<DeValue<'_>>, problems: &mut Vec<Problem>) -> RawAlerts {
    let span = value.span();
    let DeValue::Table(mut table) = value.into_inner() else {
        problems.push(Problem::new(
            span,
            "`alerts` must be a table",
            "not a table",
            "write it as an [alerts] section, with each sink as its own [[alerts.sinks]] section",
        ));
        return RawAlerts::default();
    };
    let sinks = table.remove("sinks");
    let rest = Spanned::new(span.clone(), DeValue::Table(table));
    let mut raw: RawAlerts = section(rest, "[alerts]", problems).unwrap_or_default();
    if let Some(sinks) = sinks {
        raw.sinks = sink_entries(sinks, problems);
    }
    raw
}

/// `[[alerts.sinks]]`: an array of tables, each deserialized on its own.
fn sink_entries(value: Spanned<DeValue<'_>>, problems: &mut Vec<Problem>) -> Vec<RawSink> {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        problems.push(Problem::new(
            span,
            "`sinks` must be a list of [[alerts.sinks]] sections",
            "not a list of tables",
            "write each sink as its own [[alerts.sinks]] section (two brackets) with kind and its keys",
        ));
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let span = item.span();
            RawSink::deserialize(toml::de::ValueDeserializer::from(item))
                .map_err(|e| problems.push(serde_problem(&e, span, "[[alerts.sinks]]")))
                .ok()
        })
        .collect()
}
