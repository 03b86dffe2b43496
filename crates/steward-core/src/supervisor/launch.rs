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
//! # Process group and parent death
//! The agent leads its own process group (`process_group(0)`), so stopping it
//! signals everything it started. Steward forbids `unsafe`, so it cannot call
//! `prctl(PR_SET_PDEATHSIG)` between `fork` and `exec` itself. Instead, with
//! [`Launcher::ReExec`], the `steward` binary starts itself as a tiny
//! trampoline (`steward agent-exec <steward pid> -- <command>`): that process
//! sets its parent-death signal to SIGKILL with nix's safe wrapper
//! ([`exec_agent`]), checks steward is still its parent, and `exec`s the
//! agent, which keeps the signal (it survives `execve` unless the program is
//! set-uid). If steward dies, even by `kill -9`, the kernel kills the agent.
//! Its own children are reached through the group when steward stops it, and
//! by systemd's cgroup when steward runs as a unit.
//!
//! The kernel sends the parent-death signal when the *thread* that forked the
//! agent ends. The agent is spawned from a tokio worker thread, which lives as
//! long as the daemon's runtime; never spawn it from `spawn_blocking`, whose
//! threads retire when idle.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use secrecy::{ExposeSecret, SecretString};

use super::SupervisorError;
use crate::config::{AGENT_ENV_SET_BY_STEWARD, AgentProcess, Config};
use crate::secrets::Secrets;

/// Variables copied from steward's own environment when present.
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "TZ", "USER"];

/// How the agent's process is created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Launcher {
    /// `exec` the command directly. No parent-death signal: if steward is
    /// killed the agent lives on. For embedding steward-core and for tests.
    #[default]
    Direct,
    /// Through a trampoline that arranges SIGKILL on steward's death, then
    /// `exec`s the agent: `<program> <args...> <steward pid> -- <command...>`.
    /// The `steward` binary's hidden `agent-exec` command is this trampoline;
    /// it calls [`exec_agent`].
    ReExec {
        /// Usually `std::env::current_exe()`.
        program: PathBuf,
        /// Usually `["agent-exec"]`.
        args: Vec<OsString>,
    },
}

/// The trampoline's body (in the short-lived process [`Launcher::ReExec`]
/// starts): sets the parent-death signal to SIGKILL, makes sure `parent` (steward)
/// is still the parent, and replaces this process with `command`. Returns
/// only on failure, with the reason.
pub fn exec_agent(parent: u32, command: &[OsString]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    if let Err(errno) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        return std::io::Error::from(errno);
    }
    // Steward may have died between our fork and the prctl: then no signal
    // would ever come, and the agent would run unsupervised.
    if std::os::unix::process::parent_id() != parent {
        return std::io::Error::other("steward exited before the agent could start");
    }
    let Some((program, args)) = command.split_first() else {
        return std::io::Error::new(std::io::ErrorKind::InvalidInput, "no agent command given");
    };
    std::process::Command::new(program).args(args).exec()
}

/// Everything needed to start one run of the agent, prepared (and checked)
/// once at daemon startup.
pub(super) struct LaunchSpec {
    /// Command, workdir, grace and the rest of `[agent]`.
    pub process: AgentProcess,
    /// The complete environment, in the order it was built. Values are
    /// secrets (the agent token), so they are never printed.
    env: Vec<(String, SecretString)>,
    /// Direct, or through the parent-death-signal trampoline.
    launcher: Launcher,
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
        let credentials: Vec<(&str, &str)> = config
            .credentials
            .keys()
            .filter_map(|name| secrets.get(name).map(|v| (name.as_str(), v.expose_secret())))
            .filter(|(_, value)| !value.is_empty())
            .collect();
        let holds_credential =
            |value: &str| credentials.iter().find(|(_, secret)| value.contains(secret)).map(|(name, _)| *name);

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
        for name in AGENT_ENV_SET_BY_STEWARD {
            let value = match *name {
                "STEWARD_URL" => base.to_owned(),
                "OPENAI_BASE_URL" => format!("{base}/llm/openai/v1"),
                "ANTHROPIC_BASE_URL" => format!("{base}/llm/anthropic"),
                _ => agent_token.to_owned(),
            };
            set(name, value);
        }
        Ok(Self { process: process.clone(), env, launcher })
    }

    /// The names and values of the agent's environment (tests).
    #[cfg(test)]
    pub fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect()
    }

    /// Spawns one run: own process group, piped stdout/stderr, no stdin,
    /// killed if the handle is dropped (a last resort: the supervisor stops
    /// the whole group itself).
    pub fn spawn(&self) -> std::io::Result<tokio::process::Child> {
        let command = &self.process.command;
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
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(args).arg(std::process::id().to_string()).arg("--").args(command);
                cmd
            }
        };
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v.expose_secret())))
            .current_dir(&self.process.workdir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.spawn()
    }
}
