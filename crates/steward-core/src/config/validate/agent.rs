//! Stage two for `[agent]`: its name and environment, and the process
//! steward runs (command, workdir, env, health check, timings, account,
//! network).

use super::*;

impl Validator<'_> {
    pub(super) fn agent(&mut self, raw: Option<RawAgent>, present: bool) -> AgentConfig {
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

    pub(super) fn agent_command(&mut self, command: Spanned<Vec<Spanned<String>>>) -> Vec<String> {
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
            }
            self.env_entry(&name, &value, "LOG_LEVEL = \"info\"");
            out.insert(name.into_inner(), value.into_inner());
        }
        out
    }
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
