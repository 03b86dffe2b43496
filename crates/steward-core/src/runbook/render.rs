//! The runbook page: Markdown, one section per question on-call asks (stop
//! it, what did it do, undo a post, resume, spend, credentials, backups,
//! alerts, whom to call), with every command spelled out against the
//! absolute config path so it can be pasted at 2am from any directory.
//!
//! Only names and references are printed: a credential's source (`env:`
//! variable, file path, program, Vault path) and never its value, since
//! nothing here resolves one; an alert sink's name and kind, never its URL
//! (a reference whose value is the secret); a backup destination from the
//! config alone (the S3 credential is in `[credentials.*]`); an upstream as
//! scheme and host only. Contacts and notes are the operator's own text and
//! are printed as written (escaping would break `<a@b.example>` autolinks).
//! Code blocks hold commands only, one per line, without `#` comments:
//! zsh does not treat them as comments by default.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::config::{BackupDestination, Config, CredentialConfig, RateLimit, ToolDoor, UndoSpec};

/// Renders the runbook of `config`, loaded from `config_path`, as of `now`.
pub fn render(config: &Config, config_path: &Path, now: SystemTime) -> String {
    let page = Page { config, config_arg: shell_quote(&config_path.display().to_string()), now, out: String::new() };
    page.render(config_path)
}

/// The page being written.
struct Page<'a> {
    config: &'a Config,
    /// The config path, quoted for a POSIX shell when it needs it.
    config_arg: String,
    now: SystemTime,
    out: String,
}

impl Page<'_> {
    fn render(mut self, config_path: &Path) -> String {
        self.header(config_path);
        self.stop();
        self.last();
        self.rollback();
        self.resume();
        self.spend();
        self.credentials();
        self.backups();
        self.alerts();
        self.contacts(config_path);
        self.out
    }

    fn line(&mut self, text: impl AsRef<str>) {
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }

    fn heading(&mut self, text: &str) {
        if !self.out.ends_with("\n\n") {
            self.line("");
        }
        self.line(format!("## {text}"));
        self.line("");
    }

    /// `steward SUB --config PATH ARGS`, as `[runbook] run_as` when set
    /// (`sudo -u steward steward ...`): the state is readable by that user only.
    fn cmd(&self, sub: &str, args: &str) -> String {
        let args = if args.is_empty() { String::new() } else { format!(" {args}") };
        let sudo = self.config.runbook.run_as.as_deref().map(|user| format!("sudo -u {user} ")).unwrap_or_default();
        format!("{sudo}steward {sub} --config {}{args}", self.config_arg)
    }

    /// A fenced `sh` block of commands.
    fn commands(&mut self, commands: &[String]) {
        self.line("```sh");
        for command in commands {
            self.line(command);
        }
        self.line("```");
        self.line("");
    }

    fn header(&mut self, config_path: &Path) {
        let config = self.config;
        self.line(format!("# Runbook: {}", config.agent.name));
        self.line("");
        self.line(format!("- **Agent**: {} (environment: {})", config.agent.name, config.agent.environment.as_str()));
        self.line(format!("- **Config**: {}", code(&config_path.display().to_string())));
        let mcp = if config.mcp.is_empty() { "" } else { ", `/mcp/{server}` (MCP tools)" };
        self.line(format!(
            "- **Gateway**: {} (the agent calls `/api/{{upstream}}/...` and `/llm/{{provider}}/...`{mcp} here)",
            code(&format!("http://{}", config.gateway.listen))
        ));
        self.line(format!("- **State**: {} (store, agent token)", code(&config.state.dir.display().to_string())));
        self.line(format!(
            "- **Rendered**: {} by `steward runbook`. Render it again after every config change: \
             `steward doctor` warns when this page is older than the config.",
            format_time(self.now)
        ));
        self.line("");
        self.line("Every command below names the config file, so it can be pasted as it is from any directory.");
        if let Some(user) = &config.runbook.run_as {
            self.line(format!(
                "steward runs as the `{user}` user (systemd), which alone can read its state: every command \
                 runs as that user through `sudo -u {user}`. Start and stop the service itself with \
                 `sudo systemctl start|stop steward`."
            ));
        }
    }

    fn stop(&mut self) {
        self.heading("1. Stop it now");
        let commands = [self.cmd("stop", "--reason \"what went wrong\"")];
        self.commands(&commands);
        self.line(
            "- Engages the kill switch: from the next call on, every call the agent makes through steward \
             is refused, with the reason.",
        );
        match &self.config.agent.process {
            Some(process) => self.line(format!(
                "- The running daemon also stops the agent: SIGTERM to its whole process group, SIGKILL after \
                 {} (`[agent] stop_grace`). It is not restarted until `steward resume`.",
                human_duration(process.stop_grace)
            )),
            None => self.line(
                "- steward does not start this agent (`[agent]` has no `command`): its calls are refused, \
                 but its process keeps running until you stop it yourself.",
            ),
        }
        self.line(
            "- The switch is kept in the store, not in memory: it survives a restart of steward or of the \
             machine, and works whether or not `steward run` is running.",
        );
        self.line("");
        self.line("Check that it took (kill switch, agent state, restarts, spend, each tool against its limit):");
        self.line("");
        let commands = [self.cmd("status", "")];
        self.commands(&commands);
    }

    fn last(&mut self) {
        self.heading("2. See what it did last");
        let commands = [
            self.cmd("last", ""),
            self.cmd("last", "--failed"),
            self.cmd("last", "--since 2h -n 200"),
            self.cmd("last", "--json"),
        ];
        self.commands(&commands);
        self.line(
            "- `last`: the 20 most recent calls, newest first: time (UTC), call, tool, decision, status, \
             duration, REF (the id the upstream returned) and the redacted request.",
        );
        self.line(
            "- `--failed`: only refused or failed calls; `--since 2h`, `-n 200`: a longer window; \
             `--tool NAME`: one tool; `--json`: every field, for a ticket or a script.",
        );
        if self.config.agent.process.is_some() {
            self.line("");
            self.line("The agent's own output (stdout and stderr, redacted); `-f` keeps following it:");
            self.line("");
            let commands = [self.cmd("logs agent", "-n 200"), self.cmd("logs agent", "-f")];
            self.commands(&commands);
        } else {
            self.line(
                "- steward does not capture the agent's output (`[agent]` has no `command`): \
                 read it where the agent writes it.",
            );
            self.line("");
        }
        let logging = &self.config.logging;
        let after = match logging.after_retention {
            crate::config::AfterRetention::Archive => "archived (zstd) into `archive/`",
            crate::config::AfterRetention::Delete => "deleted",
        };
        self.line(format!(
            "The audit log, one redacted JSON line per call (refused ones included): {}. It rotates at {}; \
             rotated files older than {} are {after}.",
            code(&logging.dir.join(crate::audit::ACTIVE_FILE).display().to_string()),
            human_bytes(logging.max_file_size),
            human_duration(logging.retention),
        ));
    }

    fn rollback(&mut self) {
        self.heading("3. Roll back a bad post");
        self.line(
            "Stop the agent first (section 1), so it cannot post again while you clean up; the kill switch \
             does not block `steward undo`.",
        );
        self.line("");
        let tools: Vec<_> = self.config.tools.iter().filter(|t| t.side_effect).collect();
        if tools.is_empty() {
            self.line(
                "No `[[tools]]` entry has a side effect: nothing this agent does through steward changes \
                 the outside world.",
            );
            return;
        }
        self.line("The tools that change the outside world (`[[tools]]` with a side effect):");
        self.line("");
        self.line("| tool | upstream | match | limit | undo |");
        self.line("| --- | --- | --- | --- | --- |");
        for tool in &tools {
            let mcp = tool.door == ToolDoor::Mcp;
            let upstream = match self.config.upstreams.get(&tool.upstream).and_then(|u| origin(&u.base_url)) {
                _ if mcp => format!("MCP server {}", tool.upstream),
                Some(origin) => format!("{} ({})", tool.upstream, code(&origin)),
                None => tool.upstream.clone(),
            };
            let matched = if mcp {
                format!("MCP tool {}", code(&tool.path))
            } else {
                code(&format!("{} {}", tool.method, tool.path))
            };
            let limit = tool.limit.map_or_else(|| "none".to_owned(), format_limit);
            let undo = match &tool.undo {
                Some(UndoSpec::Call(call)) if mcp => {
                    // Kept as the path `/` + the MCP tool's name (config::undo).
                    let target = call.path.text.trim_start_matches('/');
                    let arguments = call.body.as_ref().map_or_else(|| "{}".to_owned(), ToString::to_string);
                    format!("{} (tool {})", code(&format!("{target} {arguments}")), code(&call.tool))
                }
                Some(UndoSpec::Call(call)) => {
                    format!("{} (tool {})", code(&format!("{} {}", call.method, call.path.text)), code(&call.tool))
                }
                Some(UndoSpec::Declined { reason }) => format!("none: {reason}"),
                None => "not declared".to_owned(),
            };
            self.line(format!(
                "| {} | {} | {} | {} | {} |",
                cell(&code(&tool.name)),
                cell(&upstream),
                cell(&matched),
                cell(&limit),
                cell(&undo)
            ));
        }
        self.line("");
        let undoable: Vec<String> =
            tools.iter().filter(|t| matches!(t.undo, Some(UndoSpec::Call(_)))).map(|t| t.name.clone()).collect();
        if !undoable.is_empty() {
            self.line(
                "steward recorded the undo of every call of these tools. Undo the agent's recent calls of a \
                 tool with one command: it shows the plan and asks (`--dry-run` sends nothing, `--yes` does \
                 not ask), and undoes the newest first:",
            );
            self.line("");
            let mut commands = vec![self.cmd("last", "--undoable")];
            for name in &undoable {
                commands.push(self.cmd("undo", &format!("--tool {} --since 2h", shell_quote(name))));
            }
            commands.push(self.cmd("undo", "CALL"));
            self.commands(&commands);
            self.line(
                "`CALL` is the CALL column of `steward last`. An undo the provider answers 404 or 410 counts \
                 as done (already gone); a failed one (5xx, network) alerts and is retried by running the same \
                 command again. Undoing twice sends one undo.",
            );
            self.line("");
        }
        let manual: Vec<_> = tools.iter().filter(|t| !matches!(t.undo, Some(UndoSpec::Call(_)))).collect();
        let Some(first) = manual.first() else { return };
        let names: Vec<String> = manual.iter().map(|t| code(&t.name)).collect();
        self.line(format!(
            "steward cannot undo calls of {}: what they did must be reversed at the provider, in its web \
             interface or through its API. Find the call (one tool at a time):",
            names.join(", ")
        ));
        self.line("");
        let commands = [self.cmd("last", &format!("--tool {}", shell_quote(&first.name)))];
        self.commands(&commands);
        self.line(
            "It lists each call's time (UTC), status and REF: the `id` the provider returned for what the \
             call created. Delete that object at the provider. `--json` adds every field of the call.",
        );
    }

    fn resume(&mut self) {
        self.heading("4. Resume");
        self.line("After the cause is fixed (and any bad post is cleaned up):");
        self.line("");
        let commands = [self.cmd("resume", ""), self.cmd("status", "")];
        self.commands(&commands);
        let restart =
            if self.config.agent.process.is_some() { "; the running daemon starts the agent again" } else { "" };
        self.line(format!(
            "Releases the kill switch, whoever engaged it (`steward stop` or the loop breaker), and clears a \
             crash-loop hold{restart}."
        ));
        self.line("");
        self.line(
            "Not sure the agent should act on its own again? Go back to supervised mode, where every \
             side-effect call waits for a human, and see what waits:",
        );
        self.line("");
        let commands = [self.cmd("supervise", ""), self.cmd("approvals", "")];
        self.commands(&commands);
        let state = if self.config.supervised.enabled { "on" } else { "**off**" };
        self.line(format!(
            "- `supervise` undoes `steward graduate` (recorded, audited); `[supervised] enabled` is {state} in \
             this config, and calls are held only while it is on. `approvals` lists the pending requests, oldest \
             first; `steward report` says whether the agent is ready to graduate again."
        ));
    }

    fn spend(&mut self) {
        self.heading("5. Spend");
        let commands = [self.cmd("spend", "")];
        self.commands(&commands);
        let config = self.config;
        if config.llm.is_empty() {
            self.line("No `[llm.*]` provider is configured: this agent spends nothing on LLM calls through steward.");
            return;
        }
        let providers: Vec<String> =
            config.llm.iter().map(|(name, p)| format!("{} ({})", code(name), p.kind.as_str())).collect();
        self.line(format!("- LLM providers: {}.", providers.join(", ")));
        let name = &config.spend.timezone_name;
        let zone = if name.starts_with(['+', '-']) { format!("UTC{name}") } else { name.clone() };
        match config.spend.daily_cap() {
            Some(cap) => self.line(format!(
                "- Daily cap: **{cap}** over all LLM calls; the day starts at 00:00 {zone}. Once it is \
                 reached, every LLM call is refused until the next day."
            )),
            None => self.line("- **No daily cap** (`[spend] daily_cap_usd` is not set): LLM spend is not bounded."),
        }
        if let Some(alert) = config.spend.alert_at() {
            self.line(format!("- An alert fires when the day's spend reaches {alert}."));
        }
        self.line(format!(
            "- If a provider bills a call past its reservation (more output than `max_tokens`, absurd token \
             counts), that call is billed as reported, every LLM call is refused for the rest of the day, and the \
             `spend_overrun` alert fires. Check the provider's usage page, then run `{}` to allow LLM calls again.",
            self.cmd("resume", "")
        ));
    }

    fn credentials(&mut self) {
        self.heading("6. Credentials");
        let config = self.config;
        if config.credentials.is_empty() {
            self.line("No `[credentials.*]`: steward injects no credential.");
            return;
        }
        let commands = [self.cmd("secrets list", "")];
        self.commands(&commands);
        self.line("Shows each credential's source, environment, expiry, scopes and fingerprint; never the value.");
        self.line("");
        self.line("| credential | source | environment | expires |");
        self.line("| --- | --- | --- | --- |");
        for (name, credential) in &config.credentials {
            self.line(format!(
                "| {} | {} | {} | {} |",
                cell(&code(name)),
                cell(&credential.source.describe()),
                credential.environment.as_str(),
                cell(&self.expiry(credential))
            ));
        }
        self.line("");
        self.line(
            "To rotate one: create the new token at the provider and put it where the source reads it, \
             then make the running daemon re-read every source, without a restart:",
        );
        self.line("");
        let commands = [self.cmd("secrets reload", "")];
        self.commands(&commands);
        let from_env: Vec<String> = config
            .credentials
            .iter()
            .filter(|(_, c)| matches!(c.source, crate::config::CredentialSource::Env(_)))
            .map(|(name, _)| code(name))
            .collect();
        if !from_env.is_empty() {
            self.line(format!(
                "Environment-variable sources ({}) are read from steward's own environment, which only \
                 changes when steward restarts: for those, restart steward instead of reloading.",
                from_env.join(", ")
            ));
            self.line("");
        }
        self.line("Then revoke the old token at the provider.");
    }

    fn expiry(&self, credential: &CredentialConfig) -> String {
        let Some(expires) = credential.expires else {
            return "not declared (a JWT's own `exp` shows in `secrets list`)".to_owned();
        };
        let date = crate::clock::format_day(expires);
        match expires.duration_since(self.now) {
            Ok(left) => format!("{date} ({} day(s) left)", left.as_secs() / 86_400),
            Err(_) => format!("**expired** {date}"),
        }
    }

    fn backups(&mut self) {
        let Some(backup) = &self.config.backup else { return };
        self.heading("7. Backups and restore");
        let mut destination = code(&crate::backup::describe_destination(&backup.destination));
        if let BackupDestination::S3(s3) = &backup.destination
            && let Some(origin) = s3.endpoint.as_deref().and_then(origin)
        {
            destination.push_str(&format!(" at {}", code(&origin)));
        }
        self.line(format!("- Destination: {destination}."));
        let restore_test = match &backup.restore_test {
            Some(cron) => format!("restore test {}", code(cron)),
            None => "no scheduled restore test".to_owned(),
        };
        self.line(format!(
            "- Schedule: {} ({}); {restore_test}; keeps {} daily, {} weekly, {} monthly.",
            code(&backup.schedule),
            backup.timezone,
            backup.keep.daily,
            backup.keep.weekly,
            backup.keep.monthly
        ));
        let encrypted = !backup.encrypt_to.is_empty();
        if encrypted {
            let identity = match &backup.identity {
                Some(name) => format!("the identity is the credential {}", code(name)),
                None => {
                    "verify and restore need `--identity FILE` (the age identity, kept off this machine)".to_owned()
                }
            };
            self.line(format!("- Encrypted to {} age recipient(s); {identity}.", backup.encrypt_to.len()));
        } else {
            self.line("- Not encrypted.");
        }
        self.line("");
        // An encrypted backup needs the identity; without a configured one it comes from a file.
        let identity =
            if encrypted && backup.identity.is_none() { " --identity /path/to/age-identity.txt" } else { "" };
        let commands = [
            self.cmd("backup list", ""),
            self.cmd("backup verify", identity.trim_start()),
            self.cmd("restore", &format!("ID --to /path/to/empty-dir{identity}")),
        ];
        self.commands(&commands);
        self.line("- `backup list`: every backup, oldest first, with its id and whether it was verified.");
        self.line(
            "- `backup verify [ID]`: restores the newest backup (or ID) into a scratch directory and checks \
             every SHA-256, the store's integrity and the config.",
        );
        self.line(
            "- `restore ID --to DIR`: into a new or empty directory; the live state is not touched. \
             `restore ID --in-place` replaces the live state (stop `steward run` first; the current state \
             is backed up before).",
        );
        if self.config.store.fleet.is_some() {
            self.line(
                "- The store is the fleet's PostgreSQL database (`[store] url`): these backups keep the config \
                 and agent state only. The database is restored with `pg_restore` from its `pg_dump` (or by \
                 point-in-time recovery); stop every instance first, then `steward migrate`, then start them.",
            );
        }
    }

    fn alerts(&mut self) {
        let number = if self.config.backup.is_some() { 8 } else { 7 };
        self.heading(&format!("{number}. Alerts"));
        let config = self.config;
        let alerts = &config.alerts;
        if alerts.sinks.is_empty() {
            self.line("- **No alert sink**: alerts are only written to steward's own log.");
        } else {
            let sinks: Vec<String> =
                alerts.sinks.iter().map(|s| format!("{} ({})", code(&s.name), s.kind.as_str())).collect();
            self.line(format!("- Sinks: {}.", sinks.join(", ")));
        }
        let mut rules = vec![
            format!("the agent is down for more than {}", human_duration(alerts.agent_down_after)),
            format!(
                "more than {}% of the last hour's calls failed (from {} calls)",
                alerts.error_rate_percent, alerts.error_rate_min_calls
            ),
        ];
        if !config.llm.is_empty() {
            rules
                .push("spend passes the alert threshold or the cap, or a provider bills past a reservation".to_owned());
        }
        rules.extend(
            ["the kill switch or the loop breaker engages", "the agent crash-loops", "an audit or store write fails"]
                .map(str::to_owned),
        );
        if !config.credentials.is_empty() {
            rules.push("a credential comes close to its expiry".to_owned());
        }
        if config.backup.is_some() {
            rules.push("a backup fails or is overdue, or a restore test fails".to_owned());
        }
        self.line(format!("- Fires when: {}.", rules.join("; ")));
        match &config.heartbeat {
            Some(heartbeat) => self.line(format!(
                "- Heartbeat: on, every {}: the outside service alerts when the pings stop (steward or the \
                 machine is gone).",
                human_duration(heartbeat.every)
            )),
            None => self.line("- Heartbeat: **off**: if the machine dies, nobody is told."),
        }
        self.line("");
        self.line("Send a test alert through every sink:");
        self.line("");
        let commands = [self.cmd("alerts test", "")];
        self.commands(&commands);
    }

    fn contacts(&mut self, config_path: &Path) {
        let number = if self.config.backup.is_some() { 9 } else { 8 };
        self.heading(&format!("{number}. Whom to call"));
        let runbook = &self.config.runbook;
        if runbook.contacts.is_empty() {
            self.line(format!(
                "**No contacts configured — add `[runbook] contacts = [\"Name <email or phone>\"]` to {}.**",
                code(&config_path.display().to_string())
            ));
        } else {
            self.line("In this order:");
            self.line("");
            let lines: Vec<String> =
                runbook.contacts.iter().enumerate().map(|(i, c)| format!("{}. {c}", i + 1)).collect();
            for line in lines {
                self.line(line);
            }
        }
        if let Some(notes) = &runbook.notes {
            let notes = notes.clone();
            self.line("");
            self.line(notes);
        }
    }
}

/// `10/hour`, as the config writes it; other windows in seconds.
pub(super) fn format_limit(limit: RateLimit) -> String {
    let unit = match limit.per.as_secs() {
        1 => "second",
        60 => "minute",
        3_600 => "hour",
        86_400 => "day",
        _ => return format!("{} per {}", limit.max, human_duration(limit.per)),
    };
    format!("{}/{unit}", limit.max)
}

/// `500 ms`, `10 s`, `10 min`, `2 h`, `30 days`: the largest whole unit.
pub(super) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 || secs == 0 {
        return format!("{} ms", d.as_millis());
    }
    match secs {
        s if s.is_multiple_of(86_400) => format!("{} day(s)", s / 86_400),
        s if s.is_multiple_of(3_600) => format!("{} h", s / 3_600),
        s if s.is_multiple_of(60) => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `100 MB`, `2 GB`, `64 KB` (decimal units, as the config's defaults are written).
fn human_bytes(bytes: u64) -> String {
    for (unit, size) in [("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// `2026-11-26 04:00 UTC`
fn format_time(t: SystemTime) -> String {
    let day = crate::clock::format_day(t);
    let t = time::OffsetDateTime::from(t);
    format!("{day} {:02}:{:02} UTC", t.hour(), t.minute())
}

/// `scheme://host:port` of a URL: where a provider is, without a path or
/// query that might carry more than a location.
fn origin(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?.as_str().rsplit('@').next()?))
}

/// `text` as a Markdown code span, fenced with more backticks than it contains in a row.
pub(super) fn code(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// A table cell: a `|` would end it early.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `text` as one word for a POSIX shell: unchanged when it holds only safe
/// characters, else in single quotes (a `'` inside becomes `'\''`).
pub(super) fn shell_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+' | ':' | ',' | '@' | '%' | '=')
        });
    if safe { text.to_owned() } else { format!("'{}'", text.replace('\'', "'\\''")) }
}
