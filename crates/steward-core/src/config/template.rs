//! The commented starter `steward.toml` that `steward init` writes.
//!
//! Every active key holds its default, so the file parses as written and
//! behaves like an empty one; the comments say what each key does and why the
//! default is what it is. Credentials, upstreams, tools, LLM providers, the
//! spend cap and prices are shown as a commented-out example: lines starting with `#` directly followed by code
//! (no space) are example TOML, lines starting with `# ` are prose. The tests
//! un-comment the example and parse it too.

/// The starter config for an agent called `agent_name`. The name is written
/// as a TOML string, so any text is safe to pass; an empty name gives a file
/// that `parse` refuses, as it should.
pub fn starter_template(agent_name: &str) -> String {
    let name = toml::Value::String(agent_name.to_owned()).to_string();
    TEMPLATE.replace("{{AGENT_NAME}}", &name)
}

/// [`starter_template`] with the state dir (and the logs in it) at
/// `state_dir` instead of `./.steward`: `steward init --state-dir
/// /var/lib/steward`, and so the config the Debian package installs.
pub fn starter_template_in(agent_name: &str, state_dir: &str) -> String {
    let state_dir = state_dir.trim_end_matches('/');
    let quoted = |dir: String| toml::Value::String(dir).to_string();
    starter_template(agent_name)
        .replace("dir = \"./.steward/logs\"", &format!("dir = {}", quoted(format!("{state_dir}/logs"))))
        .replace("dir = \"./.steward\"", &format!("dir = {}", quoted(state_dir.to_owned())))
}

/// The template text; `{{AGENT_NAME}}` is replaced by the quoted agent name.
const TEMPLATE: &str = r#"# steward.toml: what your agent may reach, with which credentials, how often.
# steward sits between the agent and the outside world: the agent calls
# http://127.0.0.1:7600/api/<upstream>/... and steward checks, logs, rate-limits
# and forwards the call with the real credential injected.
#
# Relative paths below are resolved against the directory of this file.
# Durations: "500ms", "30s", "10m", "2h", "7d".
# Sizes: 4096 (bytes), "512KB", "100MB", "2GB" (x1000) or "64KiB", "1GiB" (x1024).
# `steward doctor` checks this file and the live setup against it.

[agent]
# Shown in audit records, alerts and the runbook.
name = {{AGENT_NAME}}
# "dev" or "prod". steward refuses to start when dev and prod share a credential.
environment = "prod"
# The agent process steward runs, supervises and restarts (optional: without
# it, start the agent yourself and point it at the gateway). No shell: each
# word is its own string. The agent gets STEWARD_URL and STEWARD_TOKEN (also as
# OPENAI_/ANTHROPIC_ base URL and API key), never the real credentials.
#command = ["python3", "agent.py"]
# Its working directory, relative to this file.
#workdir = "."
# Extra plain variables for it; a value holding a credential is refused.
#env = { LOG_LEVEL = "info" }
# Asked every few seconds while the agent runs; a 2xx answer means healthy.
#health_url = "http://127.0.0.1:8081/health"
# Stopping: SIGTERM to the agent's process group, SIGKILL after this long.
#stop_grace = "10s"
# Five exits within 10 minutes, each sooner than this after its start, are a
# crash loop: the agent is not restarted until `steward resume`.
#min_uptime = "10s"
# The account the agent runs as (required with command: an agent running as
# steward's own user could read its credentials and release its kill switch).
# `sudo steward init` creates steward-agent; steward needs root or
# CAP_SETUID/CAP_SETGID to switch to it.
#user = "steward-agent"
# network = "steward-only" gives the agent its own network namespace in which
# the only reachable endpoint is steward's gateway (health_url then cannot be
# checked: drop it). The default, "host", is the host's network.

[gateway]
# Where the agent reaches steward. Keep it on loopback: whoever can reach this
# port can use your credentials. A non-loopback address also needs
# allow_remote = true.
listen = "127.0.0.1:7600"
allow_remote = false
# Largest request body the agent may send. Bodies are read whole, because the
# loop breaker and the audit summary need them; responses are streamed.
max_body = "1MB"
# Server timeouts, so a stalled or hostile client cannot hold connections:
# the whole request head must arrive within header_timeout, a body may pause
# at most body_timeout, an idle connection waits keepalive_timeout for its
# next request. At max_connections, the longest-idle connection is closed.
header_timeout = "10s"
body_timeout = "30s"
keepalive_timeout = "60s"
max_connections = 1024

[state]
# The SQLite store (journal, rate windows, kill switch), the agent token and
# the daemon lock. Created with mode 0700. Back it up.
dir = "./.steward"

# A fleet: several instances (hosts) share one PostgreSQL database, and with
# it their limits, spend cap, kill switch, approvals and journal. Without
# [store] url the store is the SQLite file above (one instance). Run
# `steward migrate` once before the first start. See docs/fleet.md.
#[store]
#url = "env:STEWARD_STORE_URL"    # that variable holds a postgresql:// URL, password and sslmode=require included
#instance = "web-1"               # default: the host name; unique among live instances
#pool = 8
#lease = "30s"                    # a silent instance's calls are settled by a live one after this

[logging]
# Audit log: one JSON line per call, secrets and PII redacted before writing.
dir = "./.steward/logs"
# Rotate the active file at this size.
max_file_size = "100MB"
# Rotated files older than this many days are archived or deleted.
retention_days = 30
# "archive" (zstd-compressed into <dir>/archive/) or "delete".
after_retention = "archive"
# Oldest files are removed while the log directory plus the store
# (steward.db) are larger than this. The store is never trimmed to fit: it
# holds the rate windows and the spend ledger; `steward doctor` warns ahead.
max_total_size = "2GB"

# Credentials: where each secret comes from. Never the secret itself:
# "env:NAME" reads an environment variable, "file:PATH" reads a file that only
# its owner can read (chmod 600), "systemd:NAME" reads a LoadCredential= of the
# unit, "command:pass show social" runs a program (no shell, 10s timeout) and
# takes its output, "vault:kv/data/agent#social" reads HashiCorp Vault KV v2
# (VAULT_ADDR and VAULT_TOKEN from the environment). The agent never sees
# these values; `steward secrets list` shows what is loaded (never the value)
# and `steward secrets reload` rotates them without a restart.
#[credentials.social]
#source = "env:SOCIAL_TOKEN"
# "dev" or "prod"; defaults to [agent] environment. A dev and a prod
# credential may never hold the same value.
#environment = "prod"
# When the token stops working (a JWT's own exp is read automatically).
# Calls are refused once it has expired; warnings start before.
#expires = "2027-03-01"
# What the token may do, as the provider names it; checked against
# [policy] forbidden_scopes.
#scopes = ["write:statuses", "read:accounts"]
#[credentials.openai]
#source = "env:OPENAI_API_KEY"

# Upstreams: the APIs the agent may call, as /api/<name>/... on the gateway.
#[upstreams.social]
# http or https, with an optional path prefix.
#base_url = "https://social.example"
# Which credential to inject (omit for APIs without auth).
#credential = "social"
# How to inject it; {secret} is replaced by the credential value.
#auth = { header = "Authorization", format = "Bearer {secret}" }
# Give up connecting after this long.
#connect_timeout = "5s"
# Give up when the response is silent this long (not a total time limit, so
# long streams keep working).
#read_timeout = "60s"
# A response header in which the upstream reports the token's real scopes
# (GitHub: X-OAuth-Scopes); steward warns when they differ from `scopes`.
#scopes_header = "X-OAuth-Scopes"
# An RFC 7662 token-introspection endpoint: steward asks it about the token
# at start, after `steward secrets reload` and daily, and warns when the token
# is inactive or its scopes differ (https unless on 127.0.0.1). It sends the
# token itself as Bearer; introspection_credential names a [credentials.*]
# entry holding client_id:client_secret to send as HTTP Basic instead.
#introspection_url = "https://auth.social.example/oauth/introspect"

# Tools: named rules for the calls the agent makes. The first rule that
# matches a call names it; the name is what limits, audit records and
# `steward last --tool` use.
#[[tools]]
# Unique; lower-case letters, digits, _ . -
#name = "post"
# Which [upstreams.*] entry it goes to.
#upstream = "social"
# METHOD PATH. METHOD is an HTTP method or *; {name} matches one path segment,
# a final {*rest} matches the rest of the path.
#match = "POST /api/v1/statuses"
# Does the call change the world? Defaults to true except for GET, HEAD, OPTIONS.
#side_effect = true
# At most N calls per second, minute, hour or day, kept across restarts.
#limit = "10/hour"
# "never" or "idempotent": whether a failed call may be sent again. Defaults to
# idempotent for GET, HEAD, OPTIONS, PUT, DELETE and never otherwise, so a post
# is never sent twice.
#retry = "never"
# When its calls wait for a human: "supervised" (the default for side-effect
# tools: while [supervised] is on), "always" (even after `steward graduate`,
# e.g. delete_account) or "never".
#approval = "supervised"

# LLM providers: OpenAI- or Anthropic-compatible APIs, reached as
# /llm/<name>/... on the gateway. Point the SDK at steward instead of the
# provider (OPENAI_BASE_URL=http://127.0.0.1:7600/llm/openai/v1, or
# ANTHROPIC_BASE_URL=http://127.0.0.1:7600/llm/anthropic) and give it the
# steward agent token as its API key. Every call is priced and counted
# against the daily cap below.
#[llm.openai]
# "openai" (OpenAI and every OpenAI-compatible server) or "anthropic".
#kind = "openai"
#base_url = "https://api.openai.com"
# Which credential holds the provider's API key (required).
#credential = "openai"
#connect_timeout = "5s"
# Long by default: a model may think for minutes before its first token.
#read_timeout = "120s"

# MCP servers: the agent reaches one as http://127.0.0.1:7600/mcp/<name>
# (streamable HTTP, with its steward token), or launches `steward mcp <name>`
# as a stdio server. Every tools/call goes through the same checks as an API
# call; declare MCP tools in [[tools]] with mcp = "<name>" and match = the
# MCP tool name (a glob). A server steward runs gets credentials in its
# environment only: the agent never sees them.
#[mcp.social]
#command = ["npx", "-y", "@acme/social-mcp"]
#env = { SOCIAL_TOKEN = "credential:social" }
# The largest JSON-RPC message either way.
#max_message_size = "16MiB"

[spend]
# Hard cap on LLM spend per day, in USD. Before a call is forwarded its
# worst-case cost is reserved; a call that does not fit under the cap is
# refused. No cap by default, which `steward doctor` reports as a failure.
#daily_cap_usd = 5.00
# Spend at which the "spend above threshold" alert fires; at most the cap.
#alert_at_usd = 4.00
# When the day starts: midnight in an IANA time zone like "Europe/Berlin"
# (daylight saving time included; steward carries the time zone database, so
# this works on a host without tzdata), "UTC", or a fixed offset like "+02:00".
timezone = "UTC"
# Output token limit steward sets on requests that set none, so every call
# has a bounded worst-case cost.
default_max_output_tokens = 4096
# Days of per-call spend records kept for `steward spend --days`; older ones
# are deleted hourly.
history_days = 400

# Prices in USD per 1M tokens. steward has a built-in table for current OpenAI
# and Anthropic models; entries here add models or override it. A model with
# no known price is refused, so self-hosted models need an entry (0 is fine).
# Quote model names: [prices."gpt-4.1"].
#[prices."gpt-4o-mini"]
#input = 0.15
#output = 0.60
# Cache reads; defaults to input.
#cached_input = 0.075
# Cache writes (Anthropic's 5-minute cache); defaults to input.
#cache_write = 0.1875
# Anthropic's 1-hour cache writes (twice input there); leave it out for
# models without a 1-hour cache.
#cache_write_1h = 0.30
# The context window: bounds calls whose input steward cannot measure (such
# as a Responses call that continues a stored conversation).
#max_input_tokens = 128000

[loop_breaker]
# This many identical calls within `window` stop the agent (kill switch on,
# fail closed): an agent stuck in a loop burns money and spams people.
# 0 disables the breaker.
max_identical = 5
window = "10m"

[unmatched]
# Calls that match no tool: "deny" refuses them (audited as unmatched);
# "allow-get" forwards unmatched GET and HEAD calls and refuses the rest.
policy = "deny"

[supervised]
# The first week: set enabled = true and every side-effect call waits for a
# human (`steward approvals`, `steward approve ID`, `steward deny ID --reason`).
enabled = false
# How long the agent's request is held open for a decision; then it gets
# 409 approval_pending and repeats the identical call later.
wait = "30s"
# A request nobody decided by then is expired: denied, never approved.
expires = "2h"

# What `steward report` says is ready and `steward graduate` requires
# (these are the defaults).
[supervised.ready]
min_days = 7
min_decisions = 20
quiet_days = 3

[policy]
# Scopes no credential may hold: exact ("admin"), a prefix ("admin:*") or
# anything ("*"). steward refuses to start when a credential declares one.
forbidden_scopes = []
# Days before a credential expires at which steward warns.
expiry_warning_days = [14, 7, 3, 1]

[redaction]
# Personal data removed from audit records, alerts and errors before they are
# written. Secrets and credential values are always removed.
email = true
phone = true
credit_card = true
iban = true
ip = true
ssn = true

# Backups: the config, a consistent snapshot of the state store and the agent
# state you list, archived (tar + zstd), optionally encrypted, to another disk
# or to S3-compatible storage, kept by daily/weekly/monthly rules and
# restore-tested on a schedule (`steward backup now|list|verify`,
# `steward restore ID --to DIR`). Never backed up: credential files, the agent
# token. Uncomment to enable.
#[backup]
# Cron (minute hour day-of-month month day-of-week), in `timezone`. A run
# missed while steward was stopped happens at the next start.
#schedule = "0 3 * * *"
#timezone = "UTC"
# Agent state to include, files or directories; steward.toml and the state
# store are always included.
#paths = ["./calendar.json", "./agent-state/"]
# Include the audit log directory (it can be large).
#include_logs = false
# Another disk ("file:///mnt/backup/steward": a directory on the same disk as
# the state dir is warned about) or S3-compatible storage:
# "s3://bucket/prefix?endpoint=https://s3.example.com&region=us-east-1", whose
# `credentials` key names a [credentials.*] entry (say s3_backup, with
# source = "env:S3_BACKUP") holding ACCESS_KEY_ID:SECRET_ACCESS_KEY.
#destination = "file:///mnt/backup/steward"
# Encrypt to age recipients (public keys from `age-keygen`); the identity is
# only needed to restore, and verify reads it from --identity FILE or from
# identity = "NAME" (a [credentials.NAME] entry).
# encrypt_to = ["age1..."]
# The newest backup of each of the last N days, ISO weeks and months is kept;
# the newest verified backup is never deleted.
#keep = { daily = 7, weekly = 4, monthly = 6 }
# Automatic restore test of the newest backup (cron, or "never").
#restore_test = "0 4 * * 0"
[alerts]
# steward tells a human when the agent is down longer than agent_down_after,
# when more than error_rate_percent of the last hour's calls failed, and when
# spend passes [spend] alert_at_usd; also when the cap is hit, the kill switch
# or the loop breaker stops the agent, the agent crash-loops, or the audit log
# or store cannot be written. A firing alert is repeated every repeat_every,
# and a "resolved" notice follows once its condition clears.
error_rate_percent = 20
# Below this many calls in the last hour the error rate is not judged.
error_rate_min_calls = 20
agent_down_after = "30s"
repeat_every = "4h"
# Sinks: where alerts go (none: alerts are only logged). URLs and passwords
# are references, like credentials. kind = "webhook" (generic JSON POST),
# "slack", "discord", "ntfy", "email" or "command" (a program that gets the
# alert as JSON on stdin). `steward alerts test` sends a test alert to each.
#[[alerts.sinks]]
#kind = "webhook"
#url = "env:ALERT_WEBHOOK_URL"
#[[alerts.sinks]]
#kind = "email"
# host:port; tls = "starttls" (the default, port 587), "tls" (port 465) or
# "none" (only for a relay on 127.0.0.1).
#smtp = "smtp.example.com:587"
#from = "steward@example.com"
#to = ["oncall@example.com"]
#password = "env:SMTP_PASSWORD"

# Dead-man switch for steward itself: while steward can record calls it pings
# this URL every `every`; a service such as healthchecks.io alerts you when
# the pings stop (steward crashed, the machine is gone).
#[heartbeat]
#url = "env:DEADMAN_URL"
#every = "1m"

# The runbook: `steward runbook` renders a one-page Markdown runbook for this
# deployment (stop it, see what it did, roll back a post, resume, spend,
# credentials, backups, alerts, whom to call) with every command spelled out.
# `steward doctor` warns while nobody is listed or the page is older than this file.
#[runbook]
# Whom to call, in order: one line each (name, email or phone, role).
#contacts = ["Ana Ops <ana@example.com> (on-call, first)", "Platform team <+1 555 0100>"]
# Where the page is written, relative to this file; default <state dir>/RUNBOOK.md.
#output = "./RUNBOOK.md"
# Free text under the contacts: account owners, escalation.
#notes = "Social account owner: marketing (Bo)."
# The user steward runs as (the systemd unit's User=): every command on the
# page becomes `sudo -u steward steward ...`. Found by itself when the unit
# is installed.
#run_as = "steward"

# The dashboard: one local page to watch the agent, stop it, approve and
# undo its calls (see docs/config.md#dashboard). Off while commented out;
# `steward dashboard` prints a one-time login URL. From a laptop:
# ssh -L 7601:127.0.0.1:7601 server, then open that URL.
#[dashboard]
#listen = "127.0.0.1:7601"
# How long a login lasts.
#session_ttl = "12h"

"#;

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::starter_template;
    use crate::config::{Config, ConfigError, CredentialSource, RateLimit, parse};

    fn ok(source: &str) -> Config {
        parse(source, Path::new("/srv/poster/steward.toml")).unwrap()
    }

    fn err(source: &str) -> ConfigError {
        parse(source, Path::new("/srv/poster/steward.toml")).unwrap_err()
    }

    #[test]
    fn the_starter_template_parses_to_the_defaults() {
        let text = starter_template("poster");
        let c = ok(&text);
        let defaults = ok("[agent]\nname = \"x\"\n");
        assert_eq!(c.agent.name, "poster");
        assert_eq!(c.agent.environment, defaults.agent.environment);
        assert_eq!(c.agent.process, None);
        assert_eq!(c.gateway.listen, defaults.gateway.listen);
        assert_eq!(c.gateway.allow_remote, defaults.gateway.allow_remote);
        assert_eq!(c.gateway.max_body_bytes, defaults.gateway.max_body_bytes);
        assert_eq!(c.gateway.header_timeout, defaults.gateway.header_timeout);
        assert_eq!(c.gateway.body_timeout, defaults.gateway.body_timeout);
        assert_eq!(c.gateway.keepalive_timeout, defaults.gateway.keepalive_timeout);
        assert_eq!(c.gateway.max_connections, defaults.gateway.max_connections);
        assert_eq!(c.state.dir, defaults.state.dir);
        assert_eq!(c.logging.dir, defaults.logging.dir);
        assert_eq!(c.logging.max_file_size, defaults.logging.max_file_size);
        assert_eq!(c.logging.retention, defaults.logging.retention);
        assert_eq!(c.logging.after_retention, defaults.logging.after_retention);
        assert_eq!(c.logging.max_total_size, defaults.logging.max_total_size);
        assert!(c.credentials.is_empty() && c.upstreams.is_empty() && c.tools.is_empty());
        assert_eq!(c.loop_breaker.max_identical, defaults.loop_breaker.max_identical);
        assert_eq!(c.loop_breaker.window, defaults.loop_breaker.window);
        assert_eq!(c.unmatched, defaults.unmatched);
        assert_eq!(c.supervised, defaults.supervised);
        assert!(c.llm.is_empty() && c.prices.is_empty());
        assert_eq!(c.spend, defaults.spend);
        assert_eq!(c.policy, defaults.policy);
        assert_eq!(c.alerts.error_rate_percent, defaults.alerts.error_rate_percent);
        assert_eq!(c.alerts.error_rate_min_calls, defaults.alerts.error_rate_min_calls);
        assert_eq!(c.alerts.agent_down_after, defaults.alerts.agent_down_after);
        assert_eq!(c.alerts.repeat_every, defaults.alerts.repeat_every);
        assert!(c.alerts.sinks.is_empty() && c.heartbeat.is_none());
        assert_eq!(c.runbook, defaults.runbook);
        // Every section is written out, and every key is explained.
        for section in crate::config::raw::SECTIONS {
            assert!(text.contains(&format!("[{section}")), "template lacks [{section}]");
        }
    }

    #[test]
    fn the_starter_template_example_is_valid_when_uncommented() {
        let text = starter_template("poster");
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix('#') {
                Some(code) if code.starts_with(|c: char| c != ' ' && c != '#') => code,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        assert_ne!(uncommented, text);
        let c = ok(&uncommented);
        let process = c.agent.process.unwrap();
        assert_eq!(process.command, ["python3", "agent.py"]);
        assert_eq!(process.user.as_deref(), Some("steward-agent"));
        assert_eq!(process.health_url.as_deref(), Some("http://127.0.0.1:8081/health"));
        assert_eq!(c.credentials["social"].source, CredentialSource::Env("SOCIAL_TOKEN".into()));
        assert_eq!(c.credentials["social"].scopes, ["write:statuses", "read:accounts"]);
        assert!(c.credentials["social"].expires.is_some());
        assert_eq!(c.upstreams["social"].scopes_header.as_deref(), Some("X-OAuth-Scopes"));
        assert_eq!(
            c.upstreams["social"].introspection_url.as_deref(),
            Some("https://auth.social.example/oauth/introspect")
        );
        assert_eq!(c.upstreams["social"].base_url, "https://social.example");
        assert_eq!(c.tools.len(), 1);
        assert_eq!(c.tools[0].name, "post");
        assert!(matches!(c.mcp["social"].transport, crate::config::McpTransport::Stdio { .. }));
        let openai = &c.llm["openai"];
        assert_eq!(openai.kind, crate::config::LlmKind::OpenAi);
        assert_eq!(openai.base_url, "https://api.openai.com");
        assert_eq!(openai.credential, "openai");
        assert_eq!(openai.read_timeout, Duration::from_secs(120));
        assert_eq!(c.spend.daily_cap_usd, Some(5.0));
        assert_eq!(c.spend.alert_at_usd, Some(4.0));
        let mini = c.prices["gpt-4o-mini"];
        assert_eq!(mini.input.micros(), 150_000);
        assert_eq!(mini.cached_input.micros(), 75_000);
        assert_eq!(mini.max_input_tokens, Some(128_000));
        assert_eq!(c.tools[0].limit, Some(RateLimit { max: 10, per: Duration::from_secs(3_600) }));
        let backup = c.backup.expect("the [backup] example");
        assert_eq!(backup.paths.len(), 2);
        assert_eq!(backup.keep, crate::config::DEFAULT_KEEP);
        let names: Vec<&str> = c.alerts.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["webhook", "email"]);
        let fleet = c.store.fleet.unwrap();
        assert_eq!(fleet.url, CredentialSource::Env("STEWARD_STORE_URL".into()));
        assert_eq!((fleet.instance.as_str(), fleet.pool, fleet.lease), ("web-1", 8, Duration::from_secs(30)));
        let heartbeat = c.heartbeat.unwrap();
        assert_eq!(heartbeat.url, CredentialSource::Env("DEADMAN_URL".into()));
        assert_eq!(heartbeat.every, Duration::from_secs(60));
        assert_eq!(c.runbook.contacts.len(), 2);
        assert_eq!(c.runbook.output, Path::new("/srv/poster/RUNBOOK.md"));
        assert_eq!(c.runbook.notes.as_deref(), Some("Social account owner: marketing (Bo)."));
        assert_eq!(c.runbook.run_as.as_deref(), Some("steward"));
    }

    #[test]
    fn the_starter_template_can_keep_its_state_elsewhere() {
        let c = ok(&super::starter_template_in("poster", "/var/lib/steward/"));
        assert_eq!(c.state.dir, Path::new("/var/lib/steward"));
        assert_eq!(c.logging.dir, Path::new("/var/lib/steward/logs"));
        assert_eq!(c.runbook.output, Path::new("/var/lib/steward/RUNBOOK.md"));
    }

    #[test]
    fn the_starter_template_quotes_any_agent_name() {
        let c = ok(&starter_template("my \"quoted\" agent\\"));
        assert_eq!(c.agent.name, "my \"quoted\" agent\\");
        let e = err(&starter_template(""));
        assert!(e.message().contains("agent name is empty"));
    }
}
