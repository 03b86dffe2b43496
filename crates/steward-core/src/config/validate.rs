//! Stage two: [`RawConfig`] → [`Config`], and the defaults.
//!
//! Every check records a [`Problem`] and carries on with a stand-in value, so
//! one pass reports everything wrong with the file. The [`Config`] built
//! alongside is only handed out when no problem was recorded.
//!
//! The LLM sections (`[llm.*]`, `[spend]`, `[prices.*]`) are checked in the
//! child module `llm`; `[alerts]` and `[heartbeat]` in `alerts`; `[runbook]`
//! in `runbook`.

mod alerts;
mod credentials;
mod llm;
mod runbook;

pub use alerts::{
    DEFAULT_AGENT_DOWN_AFTER, DEFAULT_ERROR_RATE_MIN_CALLS, DEFAULT_ERROR_RATE_PERCENT, DEFAULT_HEARTBEAT_EVERY,
    DEFAULT_REPEAT_EVERY, DEFAULT_SINK_TIMEOUT,
};
pub use credentials::{DEFAULT_EXPIRY_WARNING_DAYS, MAX_EXPIRY_WARNING_DAYS};
pub use runbook::DEFAULT_RUNBOOK_FILE;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::error::Problem;
use super::model::*;
use super::raw::*;
use super::rule::{is_identifier, parse_rule};
mod backup;

pub use backup::{DEFAULT_BACKUP_SCHEDULE, DEFAULT_BACKUP_TIMEZONE, DEFAULT_KEEP, DEFAULT_RESTORE_TEST, parse_cron};

use super::units::{UnitError, parse_duration, parse_rate_limit, parse_size, size_from_integer};

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
    let logging = v.logging(raw.logging, &state);
    let policy = v.policy(raw.policy);
    let credentials = v.credentials(raw.credentials, &policy);
    let upstreams = v.upstreams(raw.upstreams, &credentials);
    let tools = v.tools(raw.tools, &upstreams);
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
    Config {
        source_path: source_path.to_path_buf(),
        agent,
        gateway,
        state,
        logging,
        credentials: credentials.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
        upstreams: upstreams.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
        tools,
        llm,
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

    fn agent(&mut self, raw: Option<RawAgent>, present: bool) -> AgentConfig {
        let Some(raw) = raw else {
            if !present {
                self.push(Problem::new(
                    0..0,
                    "steward.toml has no [agent] section",
                    "expected [agent] here",
                    "add an [agent] section at the top of the file:\n[agent]\nname = \"my-agent\"",
                ));
            }
            return AgentConfig { name: String::new(), environment: Environment::Prod, process: None };
        };
        let name = raw.name.get_ref().trim();
        if name.is_empty() || name.chars().any(char::is_control) {
            self.push(Problem::new(
                raw.name.span(),
                "agent name is empty or contains control characters",
                "invalid name",
                "name the agent the way alerts and the runbook should call it, like name = \"poster\"",
            ));
        }
        let name = name.to_owned();
        let environment = self.choice(
            raw.environment.clone(),
            "environment",
            &[("dev", Environment::Dev), ("prod", Environment::Prod)],
            Environment::Prod,
        );
        let process = self.agent_process(raw);
        AgentConfig { name, environment, process }
    }

    /// `command` and the keys that only mean something with it.
    fn agent_process(&mut self, raw: RawAgent) -> Option<AgentProcess> {
        let Some(command) = raw.command else {
            let orphans = [
                ("workdir", raw_span(&raw.workdir)),
                ("env", raw_span(&raw.env)),
                ("health_url", raw_span(&raw.health_url)),
                ("stop_grace", raw_span(&raw.stop_grace)),
                ("min_uptime", raw_span(&raw.min_uptime)),
                ("user", raw_span(&raw.user)),
                ("group", raw_span(&raw.group)),
                ("network", raw_span(&raw.network)),
            ];
            for (key, span) in orphans {
                if let Some(span) = span {
                    self.push(Problem::new(
                        span,
                        format!("{key} is set but [agent] has no command for steward to run"),
                        "no command",
                        format!("add command = [\"python3\", \"agent.py\"] to [agent], or remove {key}"),
                    ));
                }
            }
            return None;
        };
        let command = self.agent_command(command);
        let workdir = match raw.workdir {
            Some(text) => self.path(&text, "workdir"),
            None => self.base_dir.clone(),
        };
        let env = raw.env.map(|env| self.agent_env(env.into_inner())).unwrap_or_default();
        let health_url = raw.health_url.map(|url| {
            if let Err((message, help)) = check_health_url(url.get_ref()) {
                self.push(Problem::new(url.span(), message, "invalid URL", help));
            }
            url.into_inner()
        });
        let stop_grace = self.timeout(raw.stop_grace, "stop_grace", "10s", DEFAULT_STOP_GRACE);
        let min_uptime = self.timeout(raw.min_uptime, "min_uptime", "10s", DEFAULT_MIN_UPTIME);
        let user = raw.user.map(|user| self.account(user, "user", "steward-agent"));
        let group = raw.group.map(|group| {
            if user.is_none() {
                self.push(Problem::new(
                    group.span(),
                    "group is set without user",
                    "no user",
                    "add user = \"steward-agent\" to [agent] (the group alone would leave the agent with steward's uid)",
                ));
            }
            self.account(group, "group", "steward-agent")
        });
        let network_span = raw.network.as_ref().map(Spanned::span);
        let network = self.choice(
            raw.network,
            "network",
            &[("host", AgentNetwork::Host), ("steward-only", AgentNetwork::StewardOnly)],
            AgentNetwork::Host,
        );
        if let (AgentNetwork::StewardOnly, Some(_), Some(span)) = (network, &health_url, network_span) {
            self.push(Problem::new(
                span,
                "health_url cannot be checked with network = \"steward-only\": the agent's endpoints are inside its \
                 own network namespace, out of steward's reach",
                "health_url unreachable",
                "remove health_url (liveness is then the process being alive), or use network = \"host\"",
            ));
        }
        Some(AgentProcess { command, workdir, env, health_url, stop_grace, min_uptime, user, group, network })
    }

    /// `[agent] user` / `group`: a name or a numeric id. Whether it exists is
    /// checked where the agent is started (this config may be checked on
    /// another machine).
    fn account(&mut self, raw: Spanned<String>, key: &str, example: &str) -> String {
        let text = raw.get_ref();
        let valid = !text.is_empty()
            && text.len() <= 32
            && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !text.starts_with('-');
        if !valid {
            self.push(Problem::new(
                raw.span(),
                format!("{key} {text:?} is not a user or group name"),
                "invalid name",
                format!("name an account of this machine, like {key} = \"{example}\" (`steward init` creates it)"),
            ));
        }
        raw.into_inner()
    }

    fn agent_command(&mut self, command: Spanned<Vec<Spanned<String>>>) -> Vec<String> {
        let span = command.span();
        let words = command.into_inner();
        let Some(program) = words.first() else {
            self.push(Problem::new(
                span,
                "command is an empty list",
                "nothing to run",
                "name the program and its arguments, like command = [\"python3\", \"agent.py\"]",
            ));
            return Vec::new();
        };
        if program.get_ref().trim().is_empty() {
            self.push(Problem::new(
                program.span(),
                "the program in command is empty",
                "empty program",
                "start the list with the program to run, like command = [\"python3\", \"agent.py\"]",
            ));
        } else if words.len() == 1 && program.get_ref().trim().contains(' ') && !program.get_ref().contains('/') {
            self.push(Problem::new(
                program.span(),
                format!("command {:?} is one word with spaces; steward runs it without a shell", program.get_ref()),
                "not split into words",
                format!(
                    "write each word as its own string, like command = [{}]",
                    program.get_ref().split_whitespace().map(|w| format!("{w:?}")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        for word in &words {
            if word.get_ref().contains('\0') {
                self.push(Problem::new(
                    word.span(),
                    "command contains a NUL character",
                    "NUL",
                    "remove the \\0 character; a program argument cannot contain it",
                ));
            }
        }
        words.into_iter().map(Spanned::into_inner).collect()
    }

    fn agent_env(&mut self, env: BTreeMap<Spanned<String>, Spanned<String>>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (name, value) in env {
            let text = name.get_ref();
            if AGENT_ENV_SET_BY_STEWARD.contains(&text.as_str()) {
                self.push(Problem::new(
                    name.span(),
                    format!("env sets {text}, which steward sets for the agent"),
                    "set by steward",
                    format!(
                        "remove {text}: steward gives the agent {} itself (its URL and its steward token)",
                        AGENT_ENV_SET_BY_STEWARD.join(", ")
                    ),
                ));
            } else if !is_identifier(text) {
                self.push(Problem::new(
                    name.span(),
                    format!("{text:?} is not a valid environment variable name"),
                    "invalid variable name",
                    "use letters, digits and _, not starting with a digit, like LOG_LEVEL = \"info\"",
                ));
            }
            if value.get_ref().contains('\0') {
                self.push(Problem::new(
                    value.span(),
                    format!("the value of {text} contains a NUL character"),
                    "NUL",
                    "remove the \\0 character; an environment value cannot contain it",
                ));
            }
            out.insert(name.into_inner(), value.into_inner());
        }
        out
    }

    fn gateway(&mut self, raw: RawGateway) -> GatewayConfig {
        let allow_remote = raw.allow_remote.unwrap_or(false);
        let listen = match raw.listen {
            None => DEFAULT_LISTEN,
            Some(text) => match parse_listen(text.get_ref()) {
                None => {
                    self.push(Problem::new(
                        text.span(),
                        format!("listen {:?} is not an IP address and port", text.get_ref()),
                        "not IP:PORT",
                        "write it like listen = \"127.0.0.1:7600\" (IPv6: \"[::1]:7600\")",
                    ));
                    DEFAULT_LISTEN
                }
                Some(addr) => {
                    if !addr.ip().is_loopback() && !allow_remote {
                        self.push(Problem::new(
                            text.span(),
                            format!("refusing to listen on {addr}: it is not a loopback address"),
                            "reachable from other hosts",
                            "steward exposes your credentials to whoever can reach this port; \
                             bind 127.0.0.1 or set allow_remote = true",
                        ));
                    }
                    addr
                }
            },
        };
        let max_body_span = raw_span(&raw.max_body);
        let max_body_bytes = self.size(raw.max_body, "max_body", "1MB", DEFAULT_MAX_BODY);
        if let Some(span) = max_body_span
            && max_body_bytes == 0
        {
            self.push(Problem::new(
                span,
                "max_body is 0, which refuses every request with a body",
                "zero",
                "allow at least a small body, like max_body = \"1MB\"",
            ));
        }
        let header_timeout = self.timeout(raw.header_timeout, "header_timeout", "10s", DEFAULT_HEADER_TIMEOUT);
        let body_timeout = self.timeout(raw.body_timeout, "body_timeout", "30s", DEFAULT_BODY_TIMEOUT);
        let keepalive_timeout =
            self.timeout(raw.keepalive_timeout, "keepalive_timeout", "60s", DEFAULT_KEEPALIVE_TIMEOUT);
        let max_connections = match raw.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(max @ 1..=MAX_MAX_CONNECTIONS) => max,
                _ => {
                    self.push(Problem::new(
                        n.span(),
                        format!("max_connections = {} is outside 1..={MAX_MAX_CONNECTIONS}", n.get_ref()),
                        "out of range",
                        "use a count such as max_connections = 1024 (the default)",
                    ));
                    DEFAULT_MAX_CONNECTIONS
                }
            },
        };
        GatewayConfig {
            listen,
            allow_remote,
            max_body_bytes,
            header_timeout,
            body_timeout,
            keepalive_timeout,
            max_connections,
        }
    }

    fn state(&mut self, raw: RawState) -> StateConfig {
        let dir = match raw.dir {
            Some(text) => self.path(&text, "dir"),
            None => normalize(&self.base_dir.join(DEFAULT_STATE_DIR)),
        };
        StateConfig { dir }
    }

    fn logging(&mut self, raw: RawLogging, state: &StateConfig) -> LoggingConfig {
        let dir = match raw.dir {
            Some(text) => self.path(&text, "dir"),
            None => state.dir.join("logs"),
        };
        let max_file_size = self.size(raw.max_file_size.clone(), "max_file_size", "100MB", DEFAULT_MAX_FILE_SIZE);
        if let Some(span) = raw_span(&raw.max_file_size)
            && max_file_size < MIN_MAX_FILE_SIZE
        {
            self.push(Problem::new(
                span,
                format!("max_file_size ({max_file_size} bytes) is below the 4KiB minimum"),
                "too small",
                "rotate at 4KiB (4096 bytes) or more; the default is max_file_size = \"100MB\"",
            ));
        }
        let retention_days = match raw.retention_days {
            None => DEFAULT_RETENTION_DAYS,
            Some(days) => match u64::try_from(*days.get_ref()) {
                Ok(d @ 1..=MAX_RETENTION_DAYS) => d,
                _ => {
                    self.push(Problem::new(
                        days.span(),
                        format!("retention_days = {} is outside 1..={MAX_RETENTION_DAYS}", days.get_ref()),
                        "out of range",
                        "keep audit files at least one day, like retention_days = 30",
                    ));
                    DEFAULT_RETENTION_DAYS
                }
            },
        };
        let after_retention = self.choice(
            raw.after_retention,
            "after_retention",
            &[("archive", AfterRetention::Archive), ("delete", AfterRetention::Delete)],
            AfterRetention::Archive,
        );
        let max_total_size = self.size(raw.max_total_size.clone(), "max_total_size", "2GB", DEFAULT_MAX_TOTAL_SIZE);
        if max_total_size < max_file_size {
            // Point at whichever of the two the user wrote; the total if both.
            let span = raw_span(&raw.max_total_size).or(raw_span(&raw.max_file_size));
            if let Some(span) = span {
                self.push(Problem::new(
                    span,
                    format!(
                        "max_total_size ({max_total_size} bytes) is smaller than max_file_size \
                         ({max_file_size} bytes), so the active file alone would exceed it"
                    ),
                    "smaller than one file",
                    "make max_total_size several times max_file_size, like max_file_size = \
                     \"100MB\" with max_total_size = \"2GB\"",
                ));
            }
        }
        LoggingConfig {
            dir,
            max_file_size,
            retention: Duration::from_secs(retention_days * 86_400),
            after_retention,
            max_total_size,
        }
    }

    fn upstreams(
        &mut self,
        raw: Vec<(Spanned<String>, Option<RawUpstream>)>,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
    ) -> BTreeMap<String, Option<UpstreamConfig>> {
        let mut out = BTreeMap::new();
        for (name, body) in raw {
            self.entry_name(&name, "upstreams");
            let config = body.map(|b| self.upstream(b, credentials));
            out.insert(name.into_inner(), config);
        }
        out
    }

    fn upstream(
        &mut self,
        raw: RawUpstream,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
    ) -> UpstreamConfig {
        let base_url = self.base_url(&raw.base_url);
        if let Some(name) = &raw.credential {
            self.credential_ref(name, credentials, false);
            self.credential_environment(name, credentials, "this upstream");
        }
        let auth = match raw.auth {
            None => AuthInjection { header: DEFAULT_AUTH_HEADER.to_owned(), format: DEFAULT_AUTH_FORMAT.to_owned() },
            Some(auth) => {
                if raw.credential.is_none() {
                    self.push(Problem::new(
                        auth.span(),
                        "auth is set but the upstream has no credential to inject",
                        "no credential",
                        "add credential = \"NAME\" naming a [credentials.NAME] section, or remove auth",
                    ));
                }
                self.auth(auth.into_inner())
            }
        };
        let connect_timeout = self.timeout(raw.connect_timeout, "connect_timeout", "5s", DEFAULT_CONNECT_TIMEOUT);
        let read_timeout = self.timeout(raw.read_timeout, "read_timeout", "60s", DEFAULT_READ_TIMEOUT);
        let scopes_header = raw.scopes_header.and_then(|header| {
            if http::HeaderName::from_bytes(header.get_ref().as_bytes()).is_err() {
                self.push(Problem::new(
                    header.span(),
                    format!("{:?} is not a valid HTTP header name", header.get_ref()),
                    "invalid header name",
                    "name the response header that lists the token's scopes, like scopes_header = \"X-OAuth-Scopes\"",
                ));
                return None;
            }
            if raw.credential.is_none() {
                self.push(Problem::new(
                    header.span(),
                    "scopes_header is set but the upstream has no credential whose scopes it would report",
                    "no credential",
                    "add credential = \"NAME\", or remove scopes_header",
                ));
            }
            Some(header.into_inner())
        });
        let (introspection_url, introspection_credential) = self.introspection(
            raw.introspection_url,
            raw.introspection_credential,
            raw.credential.is_some(),
            credentials,
        );
        UpstreamConfig {
            base_url,
            credential: raw.credential.map(Spanned::into_inner),
            auth,
            connect_timeout,
            read_timeout,
            scopes_header,
            introspection_url,
            introspection_credential,
        }
    }

    /// A `base_url`, normalized; `""` (with the problem recorded) when invalid.
    /// One with user credentials in it is masked in the report.
    fn base_url(&mut self, text: &Spanned<String>) -> String {
        match normalize_base_url(text.get_ref()) {
            Ok(url) => url,
            Err((message, help)) => {
                let problem = Problem::new(text.span(), message, "invalid base_url", help);
                self.push(if text.get_ref().contains('@') { problem.secret() } else { problem });
                String::new()
            }
        }
    }

    /// `credential = "NAME"` must name a `[credentials.NAME]` entry; when the
    /// key is `optional`, removing it is offered as a fix too.
    fn credential_ref(
        &mut self,
        name: &Spanned<String>,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
        optional: bool,
    ) {
        if credentials.contains_key(name.get_ref()) {
            return;
        }
        let defined: Vec<&str> = credentials.keys().map(String::as_str).collect();
        let help = if defined.is_empty() {
            let remove =
                if optional { format!(", or remove credential = \"{}\"", name.get_ref()) } else { String::new() };
            format!(
                "no credentials are defined; add [credentials.{}] with source = \"env:NAME\"{remove}",
                name.get_ref()
            )
        } else {
            format!(
                "use one of: {}; or add [credentials.{}] with source = \"env:NAME\"",
                defined.join(", "),
                name.get_ref()
            )
        };
        self.push(Problem::new(
            name.span(),
            format!("credential {:?} is not defined", name.get_ref()),
            "unknown credential",
            help,
        ));
    }

    fn auth(&mut self, raw: RawAuth) -> AuthInjection {
        let header = raw.header.get_ref();
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            self.push(Problem::new(
                raw.header.span(),
                format!("{header:?} is not a valid HTTP header name"),
                "invalid header name",
                "use letters, digits and -, like header = \"Authorization\" or \"X-Api-Key\"",
            ));
        }
        let format = raw.format.get_ref();
        let count = format.matches("{secret}").count();
        if count != 1 {
            let what = if count == 0 { "does not contain" } else { "repeats" };
            self.push(Problem::new(
                raw.format.span(),
                format!("auth format {format:?} {what} {{secret}}"),
                "needs {secret} exactly once",
                "put {secret} where the credential goes, exactly once, like \
                 format = \"Bearer {secret}\" or format = \"{secret}\"",
            ));
        } else if http::HeaderValue::from_str(&format.replace("{secret}", "x")).is_err() {
            self.push(Problem::new(
                raw.format.span(),
                "auth format contains characters not allowed in an HTTP header value",
                "invalid header value",
                "remove control characters and line breaks from format",
            ));
        }
        AuthInjection { header: header.clone(), format: format.clone() }
    }

    fn tools(&mut self, raw: Vec<RawTool>, upstreams: &BTreeMap<String, Option<UpstreamConfig>>) -> Vec<ToolConfig> {
        let mut first_seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for tool in raw {
            let name = tool.name.get_ref();
            if !is_tool_name(name) {
                self.push(Problem::new(
                    tool.name.span(),
                    format!("tool name {name:?} has characters other than a-z 0-9 _ . -"),
                    "invalid tool name",
                    "use lower-case letters, digits, _, . and -, like name = \"post_status\"",
                ));
            }
            match first_seen.get(name) {
                Some(&offset) => {
                    let (line, _) = super::error::line_col(self.source, offset);
                    self.push(Problem::new(
                        tool.name.span(),
                        format!("tool name {name:?} is used twice"),
                        "duplicate name",
                        format!(
                            "tool names must be unique (the first {name:?} is on line {line}); \
                             rename one of them"
                        ),
                    ));
                }
                None => {
                    first_seen.insert(name.clone(), tool.name.span().start);
                }
            }
            if !upstreams.contains_key(tool.upstream.get_ref()) {
                let defined: Vec<&str> = upstreams.keys().map(String::as_str).collect();
                let help = if defined.is_empty() {
                    format!(
                        "no upstreams are defined; add [upstreams.{}] with base_url = \"https://...\"",
                        tool.upstream.get_ref()
                    )
                } else {
                    format!(
                        "use one of the defined upstreams: {}; or add [upstreams.{}]",
                        defined.join(", "),
                        tool.upstream.get_ref()
                    )
                };
                self.push(Problem::new(
                    tool.upstream.span(),
                    format!("upstream {:?} is not defined", tool.upstream.get_ref()),
                    "unknown upstream",
                    help,
                ));
            }
            let (method, path) = match parse_rule(tool.rule.get_ref()) {
                Ok(rule) => (rule.method, rule.path),
                Err(err) => {
                    self.push(Problem::new(tool.rule.span(), err.message, "invalid match", err.help));
                    ("*".to_owned(), "/".to_owned())
                }
            };
            // Fail closed: an unknown (`*`) method counts as side-effecting and not retryable.
            let safe_method = matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS");
            let idempotent_method = safe_method || matches!(method.as_str(), "PUT" | "DELETE");
            let side_effect = tool.side_effect.unwrap_or(!safe_method);
            let limit = tool.limit.and_then(|text| match parse_rate_limit(&text.get_ref().0) {
                Ok(limit) => Some(limit),
                Err(err) => {
                    self.push(Problem::new(
                        text.span(),
                        err.to_string(),
                        "not N/unit",
                        "for example: limit = \"10/hour\"; remove limit for no rate limit",
                    ));
                    None
                }
            });
            let default_retry = if idempotent_method { RetryPolicy::Idempotent } else { RetryPolicy::Never };
            let retry = self.choice(
                tool.retry,
                "retry",
                &[("never", RetryPolicy::Never), ("idempotent", RetryPolicy::Idempotent)],
                default_retry,
            );
            out.push(ToolConfig {
                name: tool.name.into_inner(),
                upstream: tool.upstream.into_inner(),
                method,
                path,
                side_effect,
                limit,
                retry,
            });
        }
        out
    }

    fn loop_breaker(&mut self, raw: RawLoopBreaker) -> LoopBreakerConfig {
        let max_identical = match raw.max_identical {
            None => DEFAULT_MAX_IDENTICAL,
            Some(n) => u32::try_from(*n.get_ref()).unwrap_or_else(|_| {
                self.push(Problem::new(
                    n.span(),
                    format!("max_identical = {} is not a count of calls", n.get_ref()),
                    "out of range",
                    "use a whole number such as max_identical = 5, or 0 to disable the loop breaker",
                ));
                DEFAULT_MAX_IDENTICAL
            }),
        };
        let window = self.timeout(raw.window, "window", "10m", DEFAULT_LOOP_WINDOW);
        LoopBreakerConfig { max_identical, window }
    }

    /// A `[credentials.NAME]` / `[upstreams.NAME]` / `[llm.NAME]` name: it
    /// appears in URLs (`/api/{name}/...`, `/llm/{name}/...`) and audit
    /// records, so it must be URL-safe.
    fn entry_name(&mut self, name: &Spanned<String>, section: &str) {
        let text = name.get_ref();
        let valid = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            self.push(Problem::new(
                name.span(),
                format!("[{section}.{text:?}] has characters other than letters, digits, _ . -"),
                "invalid name",
                format!("rename it using letters, digits, _, . and -, like [{section}.social]"),
            ));
        }
    }

    /// One of a fixed set of words.
    fn choice<T: Copy>(&mut self, raw: Option<Spanned<String>>, key: &str, options: &[(&str, T)], default: T) -> T {
        let Some(text) = raw else { return default };
        if let Some((_, value)) = options.iter().find(|(word, _)| word == text.get_ref()) {
            return *value;
        }
        let words: Vec<String> = options.iter().map(|(w, _)| format!("{key} = \"{w}\"")).collect();
        self.push(Problem::new(
            text.span(),
            format!(
                "{key} {:?} is not one of {}",
                text.get_ref(),
                options.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(", ")
            ),
            "unknown value",
            format!("write {}", words.join(" or ")),
        ));
        default
    }

    /// A size key: `4096` or `"100MB"`.
    fn size(&mut self, raw: Option<Spanned<SizeValue>>, key: &str, example: &str, default: u64) -> u64 {
        let Some(value) = raw else { return default };
        let parsed = match value.get_ref() {
            SizeValue::Bytes(n) => size_from_integer(*n),
            SizeValue::Text(text) => parse_size(text),
        };
        self.unit(parsed, value.span(), "not a size", key, example).unwrap_or(default)
    }

    /// A duration key that must be positive.
    fn timeout(&mut self, raw: Option<Spanned<DurationText>>, key: &str, example: &str, default: Duration) -> Duration {
        let Some(value) = raw else { return default };
        let parsed = parse_duration(&value.get_ref().0);
        let Some(duration) = self.unit(parsed, value.span(), "not a duration", key, example) else {
            return default;
        };
        if duration.is_zero() {
            self.push(Problem::new(
                value.span(),
                format!("{key} is zero"),
                "zero",
                format!("use a positive duration, like {key} = \"{example}\" (the default)"),
            ));
            return default;
        }
        duration
    }

    fn unit<T>(
        &mut self,
        parsed: Result<T, UnitError>,
        span: std::ops::Range<usize>,
        label: &str,
        key: &str,
        example: &str,
    ) -> Option<T> {
        parsed
            .map_err(|err| {
                self.push(Problem::new(
                    span,
                    err.to_string(),
                    label,
                    format!("for example: {key} = \"{example}\" (the default)"),
                ));
            })
            .ok()
    }

    /// A path from the file, absolute: relative ones resolve against the
    /// config file's directory, so steward finds the same files whatever
    /// directory it is started from.
    fn path(&mut self, text: &Spanned<String>, key: &str) -> PathBuf {
        let value = text.get_ref();
        let problem = if value.is_empty() {
            Some(format!("{key} is an empty path"))
        } else if value.starts_with('~') {
            Some(format!("{key} {value:?} starts with ~, which steward does not expand"))
        } else {
            None
        };
        if let Some(message) = problem {
            self.push(Problem::new(
                text.span(),
                message,
                "invalid path",
                "write an absolute path, or one relative to the directory of this config file, \
                 like \"./.steward\"",
            ));
            return self.base_dir.clone();
        }
        normalize(&self.base_dir.join(value))
    }
}

/// `IP:PORT`, or `localhost:PORT` as a convenience for `127.0.0.1:PORT`.
fn parse_listen(text: &str) -> Option<SocketAddr> {
    if let Some(port) = text.strip_prefix("localhost:") {
        return port.parse().ok().map(|port| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    text.parse().ok()
}

/// Checks a `base_url` and returns it without a trailing slash; the error is
/// (message, fix).
fn normalize_base_url(text: &str) -> Result<String, (String, String)> {
    let fix = "write it like base_url = \"https://api.example.com\" (http or https, an optional \
               path prefix, no query or fragment)";
    let bad = |what: &str| Err((format!("base_url {text:?} {what}"), fix.to_owned()));
    if text.contains('#') {
        return bad("has a #fragment");
    }
    let Ok(uri) = text.parse::<http::Uri>() else {
        return bad("is not a URL");
    };
    let scheme = match uri.scheme_str().map(str::to_ascii_lowercase) {
        Some(s) if s == "http" || s == "https" => s,
        Some(_) => return bad("is not an http or https URL"),
        None => return bad("has no scheme (https://)"),
    };
    let Some(authority) = uri.authority() else {
        return bad("has no host");
    };
    if authority.as_str().contains('@') {
        return Err((
            format!("base_url {text:?} contains user credentials"),
            "remove user:password@ from the URL and put the secret in a [credentials.NAME] \
             section referenced by credential = \"NAME\""
                .to_owned(),
        ));
    }
    if authority.host().is_empty() {
        return bad("has no host");
    }
    if uri.query().is_some() {
        return bad("has a ?query");
    }
    let path = uri.path().trim_end_matches('/');
    Ok(format!("{scheme}://{authority}{path}"))
}

/// A `health_url`: http or https with a host and no user credentials; the
/// error is (message, fix).
fn check_health_url(text: &str) -> Result<(), (String, String)> {
    let fix = "write it like health_url = \"http://127.0.0.1:8081/health\"";
    let bad = |what: &str| Err((format!("health_url {text:?} {what}"), fix.to_owned()));
    let Ok(uri) = text.parse::<http::Uri>() else {
        return bad("is not a URL");
    };
    match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http" | "https") => {}
        Some(_) => return bad("is not an http or https URL"),
        None => return bad("has no scheme (http://)"),
    }
    match uri.authority() {
        None => bad("has no host"),
        Some(authority) if authority.as_str().contains('@') => bad("contains user credentials"),
        Some(authority) if authority.host().is_empty() => bad("has no host"),
        Some(_) => Ok(()),
    }
}

/// `[a-z0-9_.-]+`
fn is_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

/// Removes `.` components (`/cfg/./.steward` → `/cfg/.steward`). `..` is kept:
/// resolving it lexically would be wrong across symlinks.
fn normalize(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

/// The span of an optional spanned value.
fn raw_span<T>(value: &Option<Spanned<T>>) -> Option<std::ops::Range<usize>> {
    value.as_ref().map(Spanned::span)
}
