//! Stage two: [`RawConfig`] → [`Config`], and the defaults.
//!
//! Every check records a [`Problem`] and carries on with a stand-in value, so
//! one pass reports everything wrong with the file. The [`Config`] built
//! alongside is only handed out when no problem was recorded.
//!
//! This module holds the entry point, the defaults and the [`Validator`]
//! every check writes to; each section is checked in a child module:
//! - `agent`: `[agent]`;
//! - `local`: `[gateway]`, `[state]`, `[logging]`;
//! - `credentials`: `[credentials.*]`, `[policy]`;
//! - `upstreams`: `[upstreams.*]`, `[[tools]]`, `[loop_breaker]`;
//! - `llm`: `[llm.*]`, `[spend]`, `[prices.*]`;
//! - `mcp`: `[mcp.*]` (the MCP tools of `[[tools]]` are checked with the others);
//! - `backup`, `alerts` (with `[heartbeat]`), `runbook`, `supervised`, `dashboard`: their sections;
//! - `ready`: `[supervised.ready]`, the readiness verdict's thresholds;
//! - `values`: the checks of single values every section shares.

mod agent;
mod alerts;
mod backup;
mod credentials;
mod dashboard;
mod llm;
pub(super) mod local;
mod mcp;
mod ready;
mod runbook;
mod supervised;
mod undo;
mod upstreams;
mod values;

pub use alerts::{
    DEFAULT_AGENT_DOWN_AFTER, DEFAULT_ERROR_RATE_MIN_CALLS, DEFAULT_ERROR_RATE_PERCENT, DEFAULT_HEARTBEAT_EVERY,
    DEFAULT_REPEAT_EVERY, DEFAULT_SINK_TIMEOUT,
};
pub use backup::{DEFAULT_BACKUP_SCHEDULE, DEFAULT_BACKUP_TIMEZONE, DEFAULT_KEEP, DEFAULT_RESTORE_TEST, parse_cron};
pub use credentials::{DEFAULT_EXPIRY_WARNING_DAYS, MAX_EXPIRY_WARNING_DAYS};
pub use dashboard::{DEFAULT_DASHBOARD_LISTEN, DEFAULT_SESSION_TTL};
pub use mcp::{CREDENTIAL_REF_PREFIX, DEFAULT_MCP_MAX_MESSAGE_SIZE, DEFAULT_MCP_REQUEST_TIMEOUT};
pub use ready::{DEFAULT_READY_MIN_DAYS, DEFAULT_READY_MIN_DECISIONS, DEFAULT_READY_QUIET_DAYS, MAX_READY_DAYS};
pub use runbook::DEFAULT_RUNBOOK_FILE;
pub use supervised::{DEFAULT_SUPERVISED_EXPIRES, DEFAULT_SUPERVISED_WAIT, MAX_SUPERVISED_WAIT};

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::error::Problem;
use super::model::*;
use super::raw::*;
use super::rule::{is_identifier, parse_rule};
use super::units::{UnitError, parse_duration, parse_rate_limit, parse_size, size_from_integer};
use values::{is_tool_name, normalize, raw_span};

/// Default `[gateway] listen`: loopback, so only processes on this host
/// (the agent) can reach the credentials steward injects.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 7600);
/// Default `[gateway] max_body` (1MB): agent requests are JSON calls, and the
/// body is held in memory for the loop breaker and the audit summary.
pub const DEFAULT_MAX_BODY: u64 = 1_000_000;
/// Default `[gateway] header_timeout`: a local agent sends a request head in
/// milliseconds; ten seconds tolerates a loaded machine.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `[gateway] body_timeout`: bodies are at most `max_body` and come
/// from the same host; a pause this long is a stalled or hostile client.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `[gateway] keepalive_timeout`: long enough for SDK connection
/// pools to reuse a connection between an agent's steps.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `[gateway] max_connections`: far above what one agent opens (the
/// gateway bench fans out 200 streams at once), far below a file-descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 1024;
/// Largest `[gateway] max_connections`: each connection holds a file
/// descriptor and some memory; beyond this is a typo.
pub const MAX_MAX_CONNECTIONS: u32 = 1_000_000;
/// Default `[state] dir`, relative to the config file's directory.
pub const DEFAULT_STATE_DIR: &str = ".steward";
/// Default `[logging] max_file_size` (100MB): small enough to open in an editor.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 100_000_000;
/// Smallest `[logging] max_file_size`: below a page, every few calls would rotate.
pub const MIN_MAX_FILE_SIZE: u64 = 4_096;
/// Default `[logging] retention_days`: a month of history for `steward last` and incidents.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;
/// Largest `[logging] retention_days` (100 years): keeps the arithmetic far from overflow.
pub const MAX_RETENTION_DAYS: u64 = 36_500;
/// Default `[logging] max_total_size` (2GB): a disk-full safety net.
pub const DEFAULT_MAX_TOTAL_SIZE: u64 = 2_000_000_000;
/// Default `[upstreams.*] connect_timeout`: a healthy API accepts within a second or two.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `[upstreams.*] read_timeout`: LLM responses can pause for a long time between tokens.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `[llm.*] read_timeout`: a reasoning model can think for minutes
/// before its first token, and a long generation streams for longer still.
pub const DEFAULT_LLM_READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Default `[spend] default_max_output_tokens`: enough for a long answer,
/// small enough that the worst-case reservation of a call stays modest.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 4_096;
/// Largest `[spend] default_max_output_tokens`: above every current model's
/// output limit; a larger value is a typo that would make every reservation huge.
pub const MAX_DEFAULT_MAX_OUTPUT_TOKENS: u32 = 1_000_000;
/// Default `[spend] history_days`: a year of per-call spend plus a month, so
/// `steward spend --days` can compare with the same month a year ago.
pub const DEFAULT_SPEND_HISTORY_DAYS: u32 = 400;
/// Smallest `[spend] history_days`: today and yesterday stay whatever the
/// time zone, so the cap and the alert always see the whole current day.
pub const MIN_SPEND_HISTORY_DAYS: u32 = 2;
/// Largest `[spend] history_days`: a hundred years, i.e. keep everything.
pub const MAX_SPEND_HISTORY_DAYS: u32 = 36_500;
/// Largest price per 1M tokens a `[prices.*]` entry may write: far above any
/// real model, and it keeps cost arithmetic far from overflow.
pub const MAX_PRICE_PER_MTOK_USD: f64 = 100_000.0;
/// Default `[loop_breaker] max_identical`: an agent rarely needs the same call five times in ten minutes.
pub const DEFAULT_MAX_IDENTICAL: u32 = 5;
/// Default `[loop_breaker] window`.
pub const DEFAULT_LOOP_WINDOW: Duration = Duration::from_secs(600);
/// Default `[agent] stop_grace`: time for an agent to finish its current step
/// and exit on SIGTERM before its process group is killed.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
/// Default `[agent] min_uptime`: an agent that dies sooner has not really started.
pub const DEFAULT_MIN_UPTIME: Duration = Duration::from_secs(10);
/// Variables steward itself gives the agent (its URL and its steward token under
/// the names SDKs read); `[agent] env` may not set them.
pub const AGENT_ENV_SET_BY_STEWARD: &[&str] =
    &["STEWARD_URL", "STEWARD_TOKEN", "OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"];

/// Default `auth.header`.
pub const DEFAULT_AUTH_HEADER: &str = "Authorization";
/// Default `auth.format`.
pub const DEFAULT_AUTH_FORMAT: &str = "Bearer {secret}";

/// Fix shown for every credential literal found in the file.
pub(super) const LITERAL_SECRET_HELP: &str =
    "never put the secret itself in the config; use source = \"env:NAME\" and export NAME";

/// Validates `raw` read from `source` at `source_path` (absolute). Returns the
/// config when `problems` stayed empty; otherwise the caller reports them.
pub(super) fn validate(raw: RawConfig, source: &str, source_path: &Path, problems: &mut Vec<Problem>) -> Config {
    let base_dir = source_path.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let mut v = Validator { base_dir, source, problems, agent_environment: Environment::Prod };
    let agent = v.agent(raw.agent, raw.agent_present);
    v.agent_environment = agent.environment;
    let gateway = v.gateway(raw.gateway);
    let state = v.state(raw.state);
    let store = v.store(raw.store);
    let logging = v.logging(raw.logging, &state);
    let policy = v.policy(raw.policy);
    let credentials = v.credentials(raw.credentials, &policy);
    let upstreams = v.upstreams(raw.upstreams, &credentials);
    let mcp = v.mcp(raw.mcp, &credentials);
    let tools = v.tools(raw.tools, &upstreams, &mcp);
    let llm = v.llm(raw.llm, &credentials);
    let spend = v.spend(raw.spend);
    let prices = v.prices(raw.prices);
    let loop_breaker = v.loop_breaker(raw.loop_breaker);
    let unmatched = v.choice(
        raw.unmatched.policy,
        "policy",
        &[("deny", UnmatchedPolicy::Deny), ("allow-get", UnmatchedPolicy::AllowGet)],
        UnmatchedPolicy::Deny,
    );
    let backup = raw.backup.map(|b| v.backup(b, &credentials));
    let r = raw.redaction;
    let redaction = RedactionConfig {
        email: r.email.unwrap_or(true),
        phone: r.phone.unwrap_or(true),
        credit_card: r.credit_card.unwrap_or(true),
        iban: r.iban.unwrap_or(true),
        ip: r.ip.unwrap_or(true),
        ssn: r.ssn.unwrap_or(true),
    };
    let alerts = v.alerts(raw.alerts);
    let heartbeat = v.heartbeat(raw.heartbeat);
    let runbook = v.runbook(raw.runbook, &state);
    let dashboard = raw.dashboard.map(|d| v.dashboard(d, &gateway));
    let supervised = v.supervised(raw.supervised);
    Config {
        source_path: source_path.to_path_buf(),
        source: super::ConfigSource::new(source),
        agent,
        gateway,
        state,
        store,
        logging,
        credentials: credentials.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
        upstreams: upstreams.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
        tools,
        llm,
        mcp,
        spend,
        prices,
        loop_breaker,
        unmatched,
        redaction,
        policy,
        backup,
        alerts,
        heartbeat,
        runbook,
        dashboard,
        supervised,
    }
}

/// Carries what every check needs.
struct Validator<'a> {
    /// Relative paths in the file resolve against this.
    base_dir: PathBuf,
    /// The file text, for line numbers in messages.
    source: &'a str,
    /// Everything found so far.
    problems: &'a mut Vec<Problem>,
    /// `[agent].environment`: the default of every credential's, and what
    /// the credentials an upstream uses must match.
    agent_environment: Environment,
}

impl Validator<'_> {
    fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }
}
