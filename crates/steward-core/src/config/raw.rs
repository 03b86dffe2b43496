//! Stage one: the TOML text as written ([`RawConfig`]), before any value is
//! checked.
//!
//! Every table is a serde struct with `deny_unknown_fields`, and every value
//! that validation may refuse is a [`Spanned`] so the refusal can point at it.
//! The document is deserialized section by section (and entry by entry inside
//! `[credentials]`, `[upstreams]`, `[[tools]]`, `[llm]` and `[prices]`) rather
//! than in one call,
//! because serde stops at the first error: this way a typo in `[gateway]` and
//! a wrong type in a tool are reported together.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::error::Problem;

mod alerts;

pub(super) use alerts::{RawAlerts, RawHeartbeat, RawSink};

/// Top-level sections, in the order `steward init` writes them.
pub(super) const SECTIONS: &[&str] = &[
    "agent",
    "gateway",
    "state",
    "store",
    "logging",
    "credentials",
    "upstreams",
    "tools",
    "llm",
    "mcp",
    "spend",
    "prices",
    "loop_breaker",
    "unmatched",
    "redaction",
    "policy",
    "backup",
    "alerts",
    "heartbeat",
    "runbook",
    "dashboard",
    "supervised",
];

/// The whole file as written. Sections that failed to deserialize hold their
/// defaults (their problem is already recorded), so later checks can go on
/// without reporting follow-on errors.
#[derive(Debug, Default)]
pub(super) struct RawConfig {
    /// `[agent]`; `None` when it is missing or broken.
    pub agent: Option<RawAgent>,
    /// Whether an `[agent]` table was present at all (broken or not).
    pub agent_present: bool,
    /// `[gateway]`
    pub gateway: RawGateway,
    /// `[state]`
    pub state: RawState,
    /// `[store]`
    pub store: RawStore,
    /// `[logging]`
    pub logging: RawLogging,
    /// `[credentials.NAME]` in name order; `None` body when the entry is broken.
    pub credentials: Vec<(Spanned<String>, Option<RawCredential>)>,
    /// `[upstreams.NAME]` in name order; `None` body when the entry is broken.
    pub upstreams: Vec<(Spanned<String>, Option<RawUpstream>)>,
    /// `[[tools]]` in file order, broken entries left out.
    pub tools: Vec<RawTool>,
    /// `[llm.NAME]` in name order; `None` body when the entry is broken.
    pub llm: Vec<(Spanned<String>, Option<RawLlm>)>,
    /// `[mcp.NAME]` in name order; `None` body when the entry is broken.
    pub mcp: Vec<(Spanned<String>, Option<RawMcp>)>,
    /// `[spend]`
    pub spend: RawSpend,
    /// `[prices."MODEL"]` in name order; `None` body when the entry is broken.
    pub prices: Vec<(Spanned<String>, Option<RawPrice>)>,
    /// `[loop_breaker]`
    pub loop_breaker: RawLoopBreaker,
    /// `[unmatched]`
    pub unmatched: RawUnmatched,
    /// `[redaction]`
    pub redaction: RawRedaction,
    /// `[policy]`
    pub policy: RawPolicy,
    /// `[backup]`; `None` when absent or broken.
    pub backup: Option<RawBackup>,
    /// `[alerts]` and its `[[alerts.sinks]]`.
    pub alerts: RawAlerts,
    /// `[heartbeat]`; `None` when absent or broken.
    pub heartbeat: Option<RawHeartbeat>,
    /// `[runbook]`; `None` when absent or broken.
    pub runbook: Option<RawRunbook>,
    /// `[dashboard]`; `None` when absent or broken.
    pub dashboard: Option<RawDashboard>,
    /// `[supervised]` (and `[supervised.ready]`).
    pub supervised: RawSupervised,
}

/// `[agent]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [agent] table with name = \"...\"")]
pub(super) struct RawAgent {
    /// Required.
    pub name: Spanned<String>,
    /// `dev` | `prod`
    pub environment: Option<Spanned<String>>,
    /// argv of the supervised agent: `["python3", "agent.py"]`.
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    /// Relative to the config file's directory.
    pub workdir: Option<Spanned<String>>,
    /// Plain, non-secret variables for the agent.
    pub env: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    /// http(s) URL answered 2xx while the agent is healthy.
    pub health_url: Option<Spanned<String>>,
    /// A duration.
    pub stop_grace: Option<Spanned<DurationText>>,
    /// A duration.
    pub min_uptime: Option<Spanned<DurationText>>,
    /// A user name (or numeric uid) the agent runs as.
    pub user: Option<Spanned<String>>,
    /// A group name (or numeric gid); defaults to the user's primary group.
    pub group: Option<Spanned<String>>,
    /// `host` | `steward-only`
    pub network: Option<Spanned<String>>,
}

/// `[gateway]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [gateway] table")]
pub(super) struct RawGateway {
    /// `IP:PORT`
    pub listen: Option<Spanned<String>>,
    /// Opt-in for a non-loopback `listen`.
    pub allow_remote: Option<bool>,
    /// A size.
    pub max_body: Option<Spanned<SizeValue>>,
    /// A duration: the whole request head must arrive within it.
    pub header_timeout: Option<Spanned<DurationText>>,
    /// A duration: the longest pause while a request body is read.
    pub body_timeout: Option<Spanned<DurationText>>,
    /// A duration: how long a connection may wait for its next request.
    pub keepalive_timeout: Option<Spanned<DurationText>>,
    /// Open connections at most.
    pub max_connections: Option<Spanned<i64>>,
}

/// `[state]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [state] table")]
pub(super) struct RawState {
    /// Relative to the config file's directory.
    pub dir: Option<Spanned<String>>,
}

/// `[store]`: the state store's backend (absent: the embedded SQLite file).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [store] table")]
pub(super) struct RawStore {
    /// A reference (`env:NAME`, `file:PATH`) to a PostgreSQL connection URL.
    pub url: Option<Spanned<String>>,
    /// This instance's name in the fleet.
    pub instance: Option<Spanned<String>>,
    /// Connections in the pool.
    pub pool: Option<Spanned<i64>>,
    /// A duration: how long a silent instance keeps its calls.
    pub lease: Option<Spanned<DurationText>>,
}

/// `[logging]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [logging] table")]
pub(super) struct RawLogging {
    /// Relative to the config file's directory.
    pub dir: Option<Spanned<String>>,
    /// A size.
    pub max_file_size: Option<Spanned<SizeValue>>,
    /// Whole days.
    pub retention_days: Option<Spanned<i64>>,
    /// `archive` | `delete`
    pub after_retention: Option<Spanned<String>>,
    /// A size.
    pub max_total_size: Option<Spanned<SizeValue>>,
}

/// `[credentials.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [credentials.NAME] table with source = \"env:NAME\" or \"file:PATH\"")]
pub(super) struct RawCredential {
    /// `env:NAME` | `file:PATH` | `systemd:NAME` | `command:ARGV` | `vault:PATH#FIELD`
    pub source: Spanned<String>,
    /// `dev` | `prod`; defaults to `[agent].environment`.
    pub environment: Option<Spanned<String>>,
    /// A date (`2027-03-01`, quoted or as a TOML date) or an RFC 3339 time.
    pub expires: Option<Spanned<toml::Value>>,
    /// What the credential may do upstream, as the provider names it.
    pub scopes: Option<Vec<Spanned<String>>>,
}

/// `[upstreams.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [upstreams.NAME] table with base_url = \"https://...\"")]
pub(super) struct RawUpstream {
    /// http(s) URL.
    pub base_url: Spanned<String>,
    /// Name of a `[credentials.*]` entry.
    pub credential: Option<Spanned<String>>,
    /// Both keys are required once `auth` is written: a default `Bearer`
    /// prefix under a custom header is almost always wrong.
    pub auth: Option<Spanned<RawAuth>>,
    /// A duration.
    pub connect_timeout: Option<Spanned<DurationText>>,
    /// A duration.
    pub read_timeout: Option<Spanned<DurationText>>,
    /// Response header in which the upstream reports the token's real scopes.
    pub scopes_header: Option<Spanned<String>>,
    /// http(s) URL of an RFC 7662 token-introspection endpoint.
    pub introspection_url: Option<Spanned<String>>,
    /// Name of a `[credentials.*]` entry holding `client_id:client_secret`.
    pub introspection_credential: Option<Spanned<String>>,
}

/// `auth = { header = "...", format = "...{secret}..." }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table like { header = \"Authorization\", format = \"Bearer {secret}\" }")]
pub(super) struct RawAuth {
    /// HTTP header name.
    pub header: Spanned<String>,
    /// Header value template.
    pub format: Spanned<String>,
}

/// One `[[tools]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[tools]] table with name, upstream (or mcp) and match")]
pub(super) struct RawTool {
    /// `[a-z0-9_.-]+`, unique.
    pub name: Spanned<String>,
    /// Name of an `[upstreams.*]` entry (HTTP tools).
    pub upstream: Option<Spanned<String>>,
    /// Name of an `[mcp.*]` entry (MCP tools); excludes `upstream`.
    pub mcp: Option<Spanned<String>>,
    /// `METHOD PATH` (HTTP tools) or an MCP tool name glob (MCP tools).
    #[serde(rename = "match")]
    pub rule: Spanned<String>,
    /// Defaults from the method.
    pub side_effect: Option<bool>,
    /// `N/unit`
    pub limit: Option<Spanned<LimitText>>,
    /// `never` | `idempotent`
    pub retry: Option<Spanned<String>>,
    /// `supervised` | `always` | `never`
    pub approval: Option<Spanned<String>>,
    /// How to undo a call of this tool (see `config::undo`).
    pub undo: Option<Spanned<RawUndo>>,
}

/// `undo = { tool, path, method?, query?, body? }` or `undo = { none = "why" }`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an undo table, like undo = { tool = \"delete_status\", path = \"/api/v1/statuses/{response.id}\" } \
                 or undo = { none = \"why it cannot be undone\" }"
)]
pub(super) struct RawUndo {
    /// The `[[tools]]` name the undo is a call of.
    pub tool: Option<Spanned<String>>,
    /// Path template.
    pub path: Option<Spanned<String>>,
    /// HTTP method; defaults to the undo tool's.
    pub method: Option<Spanned<String>>,
    /// Query template.
    pub query: Option<Spanned<String>>,
    /// Body template: any TOML value, sent as JSON.
    pub body: Option<Spanned<toml::Value>>,
    /// MCP tools: the undo tool's `arguments`, a table of templates.
    pub arguments: Option<Spanned<toml::Value>>,
    /// The reason the tool's calls cannot be undone.
    pub none: Option<Spanned<String>>,
}

/// `[llm.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [llm.NAME] table with kind, base_url and credential")]
pub(super) struct RawLlm {
    /// `openai` | `anthropic`; required, because guessing the wire protocol
    /// from a URL would inject the key in the wrong header.
    pub kind: Spanned<String>,
    /// http(s) URL.
    pub base_url: Spanned<String>,
    /// Name of a `[credentials.*]` entry.
    pub credential: Spanned<String>,
    /// A duration.
    pub connect_timeout: Option<Spanned<DurationText>>,
    /// A duration.
    pub read_timeout: Option<Spanned<DurationText>>,
}

/// `[mcp.NAME]`: an MCP server steward runs (`command`) or reaches (`url`).
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an [mcp.NAME] table with command = [\"...\"] (stdio) or url = \"https://...\" (streamable HTTP)"
)]
pub(super) struct RawMcp {
    /// argv of a stdio server.
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    /// The stdio server's variables: plain values or `credential:NAME`.
    pub env: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    /// Relative to the config file's directory.
    pub workdir: Option<Spanned<String>>,
    /// http(s) URL of a streamable-HTTP server.
    pub url: Option<Spanned<String>>,
    /// Name of a `[credentials.*]` entry (HTTP servers).
    pub credential: Option<Spanned<String>>,
    /// Where the credential goes (HTTP servers).
    pub auth: Option<Spanned<RawAuth>>,
    /// A size: the largest JSON-RPC message either way.
    pub max_message_size: Option<Spanned<SizeValue>>,
    /// A duration: how long a request may wait for the server's answer.
    pub request_timeout: Option<Spanned<DurationText>>,
}

/// `[spend]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [spend] table")]
pub(super) struct RawSpend {
    /// USD, positive.
    pub daily_cap_usd: Option<Spanned<Dollars>>,
    /// USD, positive, at most the cap.
    pub alert_at_usd: Option<Spanned<Dollars>>,
    /// `UTC` | `+HH:MM` | `-HH:MM`
    pub timezone: Option<Spanned<String>>,
    /// Tokens, positive.
    pub default_max_output_tokens: Option<Spanned<i64>>,
    /// Days of per-call spend history kept.
    pub history_days: Option<Spanned<i64>>,
}

/// `[prices."MODEL"]`: USD per million tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [prices.\"MODEL\"] table with input and output in USD per 1M tokens")]
pub(super) struct RawPrice {
    /// Uncached input.
    pub input: Spanned<Dollars>,
    /// Output (reasoning included).
    pub output: Spanned<Dollars>,
    /// Cache reads; defaults to `input`.
    pub cached_input: Option<Spanned<Dollars>>,
    /// Cache writes (Anthropic 5-minute cache); defaults to `input`.
    pub cache_write: Option<Spanned<Dollars>>,
    /// Anthropic 1-hour cache writes; unset for models without that cache.
    pub cache_write_1h: Option<Spanned<Dollars>>,
    /// Tokens.
    pub max_input_tokens: Option<Spanned<i64>>,
}

/// `[loop_breaker]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [loop_breaker] table")]
pub(super) struct RawLoopBreaker {
    /// Calls; 0 disables.
    pub max_identical: Option<Spanned<i64>>,
    /// A duration.
    pub window: Option<Spanned<DurationText>>,
}

/// `[supervised]`: the first week, side-effect calls wait for a human.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [supervised] table")]
pub(super) struct RawSupervised {
    /// Off by default.
    pub enabled: Option<bool>,
    /// A duration.
    pub wait: Option<Spanned<DurationText>>,
    /// A duration.
    pub expires: Option<Spanned<DurationText>>,
    /// `[supervised.ready]`: the readiness verdict's thresholds.
    pub ready: Option<RawReady>,
}

/// `[unmatched]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an [unmatched] table")]
pub(super) struct RawUnmatched {
    /// `deny` | `allow-get`
    pub policy: Option<Spanned<String>>,
}

/// `[policy]`: rules every credential is held to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [policy] table")]
pub(super) struct RawPolicy {
    /// Scope patterns no credential may declare (`admin`, `admin:*`, `*`).
    pub forbidden_scopes: Option<Vec<Spanned<String>>>,
    /// Days before expiry at which warnings fire.
    pub expiry_warning_days: Option<Spanned<Vec<Spanned<i64>>>>,
}

/// `[redaction]`: each PII detector, default on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [redaction] table of true/false switches")]
pub(super) struct RawRedaction {
    /// Email addresses.
    pub email: Option<bool>,
    /// Phone numbers.
    pub phone: Option<bool>,
    /// Card numbers.
    pub credit_card: Option<bool>,
    /// IBANs.
    pub iban: Option<bool>,
    /// IP addresses.
    pub ip: Option<bool>,
    /// US social security numbers.
    pub ssn: Option<bool>,
}

/// `[backup]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [backup] table with destination = \"file:///...\" or \"s3://...\"")]
pub(super) struct RawBackup {
    /// Cron expression.
    pub schedule: Option<Spanned<String>>,
    /// IANA zone name.
    pub timezone: Option<Spanned<String>>,
    /// Files or directories, relative to the config file's directory.
    pub paths: Option<Vec<Spanned<String>>>,
    /// Include the audit log directory.
    pub include_logs: Option<bool>,
    /// `file:///dir`, a plain path, or `s3://bucket/prefix?endpoint=...&region=...`.
    pub destination: Spanned<String>,
    /// Name of a `[credentials.*]` entry (S3 only).
    pub credentials: Option<Spanned<String>>,
    /// age recipients.
    pub encrypt_to: Option<Vec<Spanned<String>>>,
    /// Name of a `[credentials.*]` entry holding an age identity.
    pub identity: Option<Spanned<String>>,
    /// Retention.
    pub keep: Option<Spanned<RawKeep>>,
    /// Cron expression or `never`.
    pub restore_test: Option<Spanned<String>>,
}

/// `[runbook]`: who to call, where `steward runbook` writes the page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [runbook] table with contacts = [\"Name <email or phone>\"]")]
pub(super) struct RawRunbook {
    /// Who to call, in order.
    pub contacts: Option<Vec<Spanned<String>>>,
    /// Relative to the config file's directory.
    pub output: Option<Spanned<String>>,
    /// Free text shown under "Whom to call".
    pub notes: Option<Spanned<String>>,
    /// The user steward runs as (under systemd): commands get `sudo -u`.
    pub run_as: Option<Spanned<String>>,
}

/// `[dashboard]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [dashboard] table")]
pub(super) struct RawDashboard {
    /// `IP:PORT`
    pub listen: Option<Spanned<String>>,
    /// Opt-in for a non-loopback `listen` (TLS required).
    pub allow_remote: Option<bool>,
    /// PEM certificate chain, relative to the config file's directory.
    pub tls_cert: Option<Spanned<String>>,
    /// PEM private key, relative to the config file's directory.
    pub tls_key: Option<Spanned<String>>,
    /// A duration: how long a login session lasts.
    pub session_ttl: Option<Spanned<DurationText>>,
}

/// `[supervised.ready]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [supervised.ready] table with min_days, min_decisions, quiet_days")]
pub(super) struct RawReady {
    /// Whole days.
    pub min_days: Option<Spanned<i64>>,
    /// Human decisions.
    pub min_decisions: Option<Spanned<i64>>,
    /// Whole days.
    pub quiet_days: Option<Spanned<i64>>,
}

/// `keep = { daily = 7, weekly = 4, monthly = 6 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table like { daily = 7, weekly = 4, monthly = 6 }")]
pub(super) struct RawKeep {
    /// Days.
    pub daily: Option<Spanned<i64>>,
    /// ISO weeks.
    pub weekly: Option<Spanned<i64>>,
    /// Months.
    pub monthly: Option<Spanned<i64>>,
}

/// A size as written: a TOML integer (bytes) or a string such as `"100MB"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SizeValue {
    /// `4096`
    Bytes(i64),
    /// `"100MB"`
    Text(String),
}

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SizeValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as \"100MB\" or a byte count such as 4096")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SizeValue, E> {
                Ok(SizeValue::Bytes(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SizeValue, E> {
                // Beyond i64: keep the digits so the size parser reports "too large".
                Ok(i64::try_from(v).map_or_else(|_| SizeValue::Text(v.to_string()), SizeValue::Bytes))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SizeValue, E> {
                Ok(SizeValue::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// An amount of dollars as written: a TOML float (`5.00`) or integer (`5`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Dollars(pub f64);

impl<'de> Deserialize<'de> for Dollars {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Dollars;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an amount of US dollars as a number such as 5.00 (no quotes, no $)")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dollars, E> {
                Ok(Dollars(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dollars, E> {
                Ok(Dollars(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dollars, E> {
                Ok(Dollars(v as f64))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Declares a string newtype whose type error names the expected form, so
/// `window = 600` is answered with "expected a duration such as \"10m\"".
macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, $expecting:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(super) struct $name(pub String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = String;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
                        Ok(v.to_owned())
                    }
                }
                deserializer.deserialize_str(Visitor).map($name)
            }
        }
    };
}

text_value!(
    /// A duration as written, such as `"30s"`.
    DurationText,
    "a duration such as \"30s\" (units: ms, s, m, h, d)"
);
text_value!(
    /// A rate limit as written, such as `"10/hour"`.
    LimitText,
    "a limit such as \"10/hour\" (units: second, minute, hour, day)"
);

impl RawConfig {
    /// Parses `source` into its sections. Syntax errors end the attempt (the
    /// recovered tree would only produce confusing follow-on errors); type
    /// errors and unknown keys are recorded per section and the rest goes on.
    pub fn from_source(source: &str, problems: &mut Vec<Problem>) -> Option<Self> {
        let (root, syntax_errors) = DeTable::parse_recoverable(source);
        if !syntax_errors.is_empty() {
            problems.extend(syntax_errors.into_iter().map(|e| syntax_problem(&e, source.len())));
            return None;
        }

        let mut raw = RawConfig::default();
        for (key, value) in root.into_inner() {
            let key_span = key.span();
            let key = key.into_inner();
            match key.as_ref() {
                "agent" => {
                    raw.agent_present = true;
                    raw.agent = section(value, "[agent]", problems);
                }
                "gateway" => set(&mut raw.gateway, value, "[gateway]", problems),
                "state" => set(&mut raw.state, value, "[state]", problems),
                "store" => set(&mut raw.store, value, "[store]", problems),
                "logging" => set(&mut raw.logging, value, "[logging]", problems),
                "credentials" => {
                    raw.credentials = named_entries(value, "credentials", problems);
                }
                "upstreams" => raw.upstreams = named_entries(value, "upstreams", problems),
                "tools" => raw.tools = tool_entries(value, problems),
                "llm" => raw.llm = named_entries(value, "llm", problems),
                "mcp" => raw.mcp = named_entries(value, "mcp", problems),
                "spend" => set(&mut raw.spend, value, "[spend]", problems),
                "prices" => raw.prices = price_entries(value, problems),
                "loop_breaker" => set(&mut raw.loop_breaker, value, "[loop_breaker]", problems),
                "unmatched" => set(&mut raw.unmatched, value, "[unmatched]", problems),
                "redaction" => set(&mut raw.redaction, value, "[redaction]", problems),
                "policy" => set(&mut raw.policy, value, "[policy]", problems),
                "backup" => raw.backup = section(value, "[backup]", problems),
                "alerts" => raw.alerts = alerts::alerts_section(value, problems),
                "heartbeat" => raw.heartbeat = section(value, "[heartbeat]", problems),
                "runbook" => raw.runbook = section(value, "[runbook]", problems),
                "dashboard" => raw.dashboard = section(value, "[dashboard]", problems),
                "supervised" => set(&mut raw.supervised, value, "[supervised]", problems),
                other => problems.push(unknown_top_level(other, key_span, &value)),
            }
        }
        Some(raw)
    }
}

/// A top-level key that is not a section steward knows. A key written above
/// `[agent]` (such as `name = "x"`) lands here too, so the help says where it belongs.
fn unknown_top_level(key: &str, span: Range<usize>, value: &Spanned<DeValue<'_>>) -> Problem {
    let sections = SECTIONS.iter().map(|s| format!("[{s}]")).collect::<Vec<_>>().join(", ");
    if value.get_ref().is_table() {
        Problem::new(
            span,
            format!("unknown section [{key}]"),
            "unknown section",
            format!("remove it or correct its spelling; steward.toml has these sections: {sections}"),
        )
    } else {
        Problem::new(
            span,
            format!("unknown top-level key `{key}`"),
            "outside any section",
            format!("keys belong under a section header; move it below the right one of: {sections}"),
        )
    }
}

/// Deserializes one table into `T`, recording the problem on failure.
fn section<T: DeserializeOwned>(value: Spanned<DeValue<'_>>, context: &str, problems: &mut Vec<Problem>) -> Option<T> {
    let span = value.span();
    T::deserialize(ValueDeserializer::from(value)).map_err(|e| problems.push(serde_problem(&e, span, context))).ok()
}

/// [`section`] for an optional table whose default stands in when it is broken.
fn set<T: DeserializeOwned>(slot: &mut T, value: Spanned<DeValue<'_>>, context: &str, problems: &mut Vec<Problem>) {
    if let Some(parsed) = section(value, context, problems) {
        *slot = parsed;
    }
}

/// `[credentials.NAME]` / `[upstreams.NAME]`: a table of tables, each
/// deserialized on its own so one broken entry does not hide the others.
fn named_entries<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    section_name: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(Spanned<String>, Option<T>)> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        problems.push(Problem::new(
            span,
            format!("`{section_name}` must be a table of [{section_name}.NAME] sections"),
            "not a table",
            format!("write each entry as its own section: [{section_name}.NAME]"),
        ));
        return Vec::new();
    };
    table
        .into_iter()
        .map(|(name, entry)| {
            let name_span = name.span();
            let name = name.into_inner().into_owned();
            let context = format!("[{section_name}.{name}]");
            let body = section(entry, &context, problems);
            (Spanned::new(name_span, name), body)
        })
        .collect()
}

/// `[prices."MODEL"]`: like [`named_entries`], but a model name with a dot
/// written without quotes (`[prices.gpt-4.1]`) becomes nested tables in TOML;
/// that entry gets a hint to quote the name instead of a confusing
/// "unknown key `1`".
fn price_entries(value: Spanned<DeValue<'_>>, problems: &mut Vec<Problem>) -> Vec<(Spanned<String>, Option<RawPrice>)> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        problems.push(Problem::new(
            span,
            "`prices` must be a table of [prices.\"MODEL\"] sections",
            "not a table",
            "write each model as its own section: [prices.\"gpt-4o-mini\"]",
        ));
        return Vec::new();
    };
    table
        .into_iter()
        .map(|(name, entry)| {
            let name_span = name.span();
            let name = name.into_inner().into_owned();
            let nested = match entry.get_ref() {
                DeValue::Table(fields) => fields
                    .iter()
                    .find(|(_, v)| v.get_ref().is_table())
                    .map(|(k, _)| (k.span(), k.get_ref().to_string())),
                _ => None,
            };
            let body = match nested {
                Some((key_span, key)) => {
                    problems.push(Problem::new(
                        key_span,
                        format!("[prices.{name}.{key}] is a table inside a price"),
                        "dotted model name?",
                        format!("quote model names that contain dots: [prices.\"{name}.{key}\"]"),
                    ));
                    None
                }
                None => section(entry, &format!("[prices.\"{name}\"]"), problems),
            };
            (Spanned::new(name_span, name), body)
        })
        .collect()
}

/// `[[tools]]`: an array of tables, each deserialized on its own.
fn tool_entries(value: Spanned<DeValue<'_>>, problems: &mut Vec<Problem>) -> Vec<RawTool> {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        problems.push(Problem::new(
            span,
            "`tools` must be a list of [[tools]] sections",
            "not a list of tables",
            "write each tool as its own [[tools]] section (two brackets) with name, upstream and match",
        ));
        return Vec::new();
    };
    items.iter().cloned().filter_map(|item| section(item, "[[tools]]", problems)).collect()
}

/// A TOML syntax error, located where the parser stopped.
fn syntax_problem(err: &toml::de::Error, len: usize) -> Problem {
    let span = err.span().unwrap_or(len..len);
    Problem::new(
        span,
        format!("TOML syntax error: {}", err.message().trim()),
        "here",
        "fix the TOML syntax at this spot: strings need quotes, each key = value sits on its \
         own line, and a section header is [name] or [[tools]]",
    )
}

/// A serde error from one section, turned into a problem whose help says
/// what to write instead.
fn serde_problem(err: &toml::de::Error, section_span: Range<usize>, context: &str) -> Problem {
    let message = err.message().trim();
    let span = err.span().unwrap_or(section_span);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, accepted) = split_unknown_field(rest);
        return Problem::new(
            span,
            format!("unknown key {field} in {context}"),
            "unknown key",
            format!("remove {field} or correct its spelling; {context} accepts: {accepted}"),
        );
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        let bare = field.trim_matches('`');
        return Problem::new(
            span,
            format!("{context} is missing {field}"),
            format!("{bare} is required here"),
            format!("add {}", example_line(bare)),
        );
    }
    if let Some((_, expected)) = message.split_once(", expected ") {
        return Problem::new(
            span,
            format!("{message} (in {context})"),
            "wrong type",
            format!("write {} here", describe_expected(expected)),
        );
    }
    Problem::new(
        span,
        format!("{message} (in {context})"),
        "invalid",
        "fix this value; `steward init` writes a commented starter that shows every key",
    )
}

/// `"`x`, expected one of `a`, `b`"` → (`` `x` ``, "a, b").
fn split_unknown_field(rest: &str) -> (&str, String) {
    let (field, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let expected = expected.strip_prefix("one of ").unwrap_or(expected);
    let accepted = expected.replace('`', "");
    let accepted = if accepted.is_empty() { "no keys".to_owned() } else { accepted };
    (field, accepted)
}

/// A line to add for a required key, with a plausible value.
fn example_line(field: &str) -> String {
    let value = match field {
        "name" => "\"my-name\"",
        "source" => "\"env:NAME\"",
        "base_url" => "\"https://api.example.com\"",
        "upstream" => "\"NAME\" (one of the [upstreams.*] names; or mcp = \"NAME\" for an MCP tool)",
        "match" => "\"GET /path/{id}\"",
        "header" => "\"Authorization\"",
        "format" => "\"Bearer {secret}\"",
        "destination" => "\"file:///mnt/backup/steward\" (or \"s3://bucket/prefix\")",
        "kind" => "\"openai\" (or \"anthropic\")",
        "credential" => "\"NAME\" (one of the [credentials.*] names)",
        "input" => "0.15 (USD per 1M input tokens)",
        "output" => "0.60 (USD per 1M output tokens)",
        "url" => "\"env:NAME\" (an environment variable holding the URL)",
        _ => "...",
    };
    format!("{field} = {value}")
}

/// serde's "expected ..." phrase in words a config author knows.
fn describe_expected(expected: &str) -> String {
    match expected {
        "a boolean" => "true or false (without quotes)".to_owned(),
        "a string" => "a quoted string".to_owned(),
        "i64" | "u64" | "i32" | "u32" => "a whole number without quotes".to_owned(),
        "an amount of US dollars as a number such as 5.00 (no quotes, no $)" => {
            "a number such as 5.00 (no quotes, no $)".to_owned()
        }
        "a sequence" => "a list of quoted strings, like [\"python3\", \"agent.py\"]".to_owned(),
        "a map" => "a table of quoted strings, like { LOG_LEVEL = \"info\" }".to_owned(),
        other => other.to_owned(),
    }
}
