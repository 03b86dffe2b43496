//! Starting the agent process: its environment, its process group, and the
//! parent-death signal.
//!
//! # Environment
//! Cleared, then: `PATH`, `HOME`, `LANG`, `TZ`, `USER` from steward's own
//! environment (when set, and only when the value holds no credential), then
//! `[agent] env`, then steward's own variables ([`AGENT_ENV_SET_BY_STEWARD`]):
//! `STEWARD_URL`, `STEWARD_TOKEN` and the OpenAI/Anthropic base URLs and API
//! keys, all pointing at steward with the agent's steward token. Values are
//! compared, not names: a variable whose value contains a resolved credential
//! never reaches the agent, and an `[agent] env` value that does is refused
//! at startup.
//!
//! Values are compared in every form the redactor knows
//! ([`redact::encoded_forms`]: raw, base64, percent-encoded, hex, JSON):
//! `USER=<base64 of a credential>` is dropped like the raw value.
//!
//! # The box
//! With [`Launcher::ReExec`], the `steward` binary starts itself as the
//! agent's box (`steward agent-exec --spec JSON -- <command>`): parent-death
//! signal, PID namespace (and network namespace), the agent's own user, no
//! capabilities; see `sandbox`. The agent leads its own process group
//! (`process_group(0)`) either way, so [`Launcher::Direct`] still stops what
//! stays in the group.
//!
//! The kernel sends the parent-death signal when the *thread* that forked the
//! box ends. The box is spawned from a tokio worker thread, which lives as
//! long as the daemon's runtime; never spawn it from `spawn_blocking`, whose
//! threads retire when idle.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use secrecy::{ExposeSecret, SecretString};

use super::{SupervisorError, sandbox};
use crate::config::{AGENT_ENV_SET_BY_STEWARD, AgentNetwork, AgentProcess, Config};
use crate::secrets::Secrets;

/// Variables copied from steward's own environment when present.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "TZ", "USER"];

/// How the agent's process is created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Launcher {
    /// `exec` the command directly: no box, no parent-death signal (if
    /// steward is killed the agent lives on), steward's own user. For
    /// embedding steward-core and for tests of the supervisor's logic.
    #[default]
    Direct,
    /// Through the box (see `sandbox`): `<program> <args...> --spec JSON --
    /// <command...>`. The `steward` binary's hidden `agent-exec` command is
    /// the box; it calls [`sandbox::run_box`].
    ReExec {
        /// Usually `std::env::current_exe()`.
        program: PathBuf,
        /// Usually `["agent-exec"]`.
        args: Vec<OsString>,
    },
}

/// Everything needed to start one run of the agent, prepared (and checked)
/// once at daemon startup.
pub(super) struct LaunchSpec {
    /// Command, workdir, grace and the rest of `[agent]`.
    pub process: AgentProcess,
    /// The complete environment, in the order it was built. Values are
    /// secrets (the agent token), so they are never printed.
    env: Vec<(String, SecretString)>,
    /// Direct, or through the box.
    launcher: Launcher,
    /// `[agent] user`, resolved: who the box makes the agent.
    account: Option<sandbox::Account>,
    /// `network = "steward-only"`: the gateway port the box opens inside the agent's namespace.
    gateway_port: Option<u16>,
}

impl std::fmt::Debug for LaunchSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: STEWARD_TOKEN and friends are values nobody should print.
        f.debug_struct("LaunchSpec")
            .field("command", &self.process.command)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LaunchSpec {
    /// Builds the agent's environment from steward's own (`inherited`), the
    /// config and the agent token. Fails when an `[agent] env` value contains
    /// a credential.
    pub fn new(
        process: &AgentProcess,
        config: &Config,
        secrets: &Secrets,
        agent_token: &str,
        steward_url: &str,
        inherited: impl Fn(&str) -> Option<String>,
        launcher: Launcher,
    ) -> Result<Self, SupervisorError> {
        // Every form the redactor would redact: a value the agent could decode back is a credential too.
        let credentials: Vec<(&str, String)> = config
            .credentials
            .keys()
            .filter_map(|name| secrets.get(name).map(|v| (name.as_str(), v.expose_secret())))
            .filter(|(_, value)| !value.is_empty())
            .flat_map(|(name, value)| {
                let mut forms = redact::encoded_forms(value);
                // Shorter than the redactor's minimum: still never handed over raw.
                if forms.is_empty() {
                    forms.push(value.to_owned());
                }
                forms.into_iter().map(move |form| (name, form))
            })
            .collect();
        let holds_credential =
            |value: &str| credentials.iter().find(|(_, form)| value.contains(form.as_str())).map(|(name, _)| *name);

        let mut env: Vec<(String, SecretString)> = Vec::new();
        let mut set = |name: &str, value: String| {
            env.retain(|(k, _)| k != name);
            env.push((name.to_owned(), SecretString::from(value)));
        };
        for name in INHERITED_ENV {
            let Some(value) = inherited(name) else { continue };
            match holds_credential(&value) {
                Some(credential) => tracing::warn!(
                    variable = name,
                    credential,
                    "not passing this variable to the agent: its value contains a credential"
                ),
                None => set(name, value),
            }
        }
        for (name, value) in &process.env {
            if let Some(credential) = holds_credential(value) {
                return Err(SupervisorError::CredentialInAgentEnv {
                    variable: name.clone(),
                    credential: credential.to_owned(),
                });
            }
            set(name, value.clone());
        }
        let base = steward_url.trim_end_matches('/');
        let gateway_port = match (process.network, &launcher) {
            (AgentNetwork::StewardOnly, Launcher::ReExec { .. }) => {
                let port = base.rsplit_once(':').and_then(|(_, port)| port.parse::<u16>().ok());
                Some(port.ok_or_else(|| SupervisorError::Gateway(format!("no port in the gateway URL {base}")))?)
            }
            _ => None,
        };
        // Inside its own network namespace, the agent finds steward on its loopback, on the same port.
        let base = match gateway_port {
            Some(port) => format!("http://127.0.0.1:{port}"),
            None => base.to_owned(),
        };
        let base = base.as_str();
        for name in AGENT_ENV_SET_BY_STEWARD {
            let value = match *name {
                "STEWARD_URL" => base.to_owned(),
                "OPENAI_BASE_URL" => format!("{base}/llm/openai/v1"),
                "ANTHROPIC_BASE_URL" => format!("{base}/llm/anthropic"),
                _ => agent_token.to_owned(),
            };
            set(name, value);
        }
        Ok(Self { process: process.clone(), env, launcher, account: None, gateway_port })
    }

    /// Runs the agent as `account` (`[agent] user`, resolved and checked).
    pub fn with_account(mut self, account: Option<sandbox::Account>) -> Self {
        self.account = account;
        self
    }

    /// The names and values of the agent's environment (tests).
    #[cfg(test)]
    pub fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect()
    }

    /// Spawns one run: own process group, piped stdout/stderr, killed if
    /// the handle is dropped (a last resort: the supervisor stops the whole
    /// box itself). With `network = "steward-only"`, also returns steward's
    /// end of the channel the box sends the gateway listener over (the box's
    /// stdin); otherwise stdin is empty.
    pub fn spawn(&self) -> std::io::Result<(tokio::process::Child, Option<std::os::unix::net::UnixStream>)> {
        let command = &self.process.command;
        let mut channel = None;
        let mut stdin = Stdio::null();
        let mut cmd = match &self.launcher {
            Launcher::Direct => {
                let (program, args) = command
                    .split_first()
                    .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty agent command"))?;
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(args);
                cmd
            }
            Launcher::ReExec { program, args } => {
                let spec = sandbox::BoxSpec {
                    parent: std::process::id(),
                    account: self.account.clone(),
                    gateway_port: self.gateway_port,
                    grace_ms: u64::try_from(self.process.stop_grace.as_millis()).unwrap_or(u64::MAX),
                };
                let spec = serde_json::to_string(&spec).map_err(std::io::Error::other)?;
                if self.gateway_port.is_some() {
                    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
                    stdin = Stdio::from(std::os::fd::OwnedFd::from(theirs));
                    channel = Some(ours);
                }
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(args).arg("--spec").arg(spec).arg("--").args(command);
                cmd
            }
        };
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v.expose_secret())))
            .current_dir(&self.process.workdir)
            .process_group(0)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok((cmd.spawn()?, channel))
    }
}
