//! The agent supervisor: runs `[agent] command`, captures its output,
//! restarts it sanely, stops it with the kill switch, and tells everyone
//! (status in the store, [`Event`]s on the bus, [`SupervisorStats`]) what the
//! agent is doing.
//!
//! # Lifecycle
//! ```text
//! disabled                      no [agent] command: only the kill switch is watched
//! starting ─► running           spawned; up once a health check passes (or after min_uptime without one)
//!    │           │ exit
//!    ▼           ▼
//! backoff ◄── exit ──► fatal     ≥ 5 exits shorter than min_uptime within 10 min (sticky, persisted)
//!    │            └──► stopped   exit code 78 (EX_CONFIG): "do not restart me"
//!    └─► starting               after a full-jitter delay, 1 s doubling to 60 s, reset after 60 s healthy
//! any ──kill switch──► stopped  SIGTERM to the group, stop_grace, SIGKILL; started again on release
//! fatal/stopped ──steward resume──► starting
//! ```
//! The supervisor never restarts forever (the crash-loop guard) and never
//! gives up silently: every exit, give-up and kill is logged, published as
//! an [`Event`] and visible in `steward status`.
//!
//! # Noticing the kill switch
//! `steward stop` may run in another process, and the loop breaker engages
//! the switch inside a store transaction. The supervisor polls
//! `Store::kill_state` every [`SupervisorSettings::poll_every`] (250 ms): a
//! one-row read on the store's read connection, cheap enough that a
//! notification channel across processes is not worth its complexity, and a
//! stopped agent is signalled within a quarter of a second. Resume requests
//! (`steward resume`, see [`crate::agent_state::request_resume`]) are noticed the same way.
//!
//! # Pieces
//! - `policy`: the restart policy as pure arithmetic on times ([`RestartPolicy`]).
//! - `launch`: the child's environment and how it is started ([`Launcher`]).
//! - `sandbox`: the agent's box: PID (and network) namespace, its own user,
//!   no capabilities, parent-death signals; who could reach steward's files.
//! - `group`: stopping the whole process group (SIGTERM, grace, SIGKILL).
//! - `output`: stdout/stderr → redacted `agent.log` lines.
//! - `health`: the optional HTTP health check.
//! - [`crate::agent_state`] (outside this module, so readers need not import
//!   the supervisor): what it persists in the store's `kv` table.
//! - `lifecycle`: the loop that ties them together.

mod group;
mod health;
mod launch;
mod lifecycle;
mod output;
mod policy;
pub mod sandbox;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub use group::{live_members, stop_group};
pub use launch::{INHERITED_ENV, Launcher};
pub use output::{MAX_LINE, SCAN_TAIL, render as render_output};
pub use policy::{EXIT_DO_NOT_RESTART, RestartPolicy, Verdict};

use crate::agent_state::{AgentState, AgentStatus};
use crate::audit::{AGENT, AuditError, LineLog};
use crate::config::Config;
use crate::events::{Event, EventBus};
use crate::redaction::SharedRedactor;
use crate::secrets::Secrets;
use crate::store::{KillState, Store};

/// Why the supervisor could not be set up. Each variant stops the daemon
/// from starting: a misconfigured supervisor must not run half-way.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// An `[agent] env` value contains a credential steward holds.
    #[error(
        "[agent] env {variable} contains the value of credential `{credential}`; the agent must never hold a real \
         credential: remove it from [agent] env (steward injects credentials itself, the agent gets STEWARD_TOKEN)"
    )]
    CredentialInAgentEnv {
        /// The variable.
        variable: String,
        /// The credential whose value it contains.
        credential: String,
    },
    /// `agent.log` could not be opened.
    #[error("agent log: {0}")]
    Log(#[from] AuditError),
    /// The health-check HTTP client could not be built.
    #[error("agent health check: {0}")]
    HealthClient(String),
    /// The agent could reach steward's files as configured, or its user does not exist.
    #[error(transparent)]
    Access(#[from] sandbox::AccessError),
    /// The gateway cannot be offered inside the agent's network namespace.
    #[error("network = \"steward-only\": {0}")]
    Gateway(String),
}

impl SupervisorError {
    /// Whether the fix is in `steward.toml` or the deployment's files (the
    /// CLI exits with the config code: restarting cannot help).
    pub fn is_config_error(&self) -> bool {
        matches!(self, SupervisorError::CredentialInAgentEnv { .. } | SupervisorError::Access(_))
    }
}

/// The timing of the supervisor. The defaults are the documented behaviour;
/// tests shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorSettings {
    /// Ceiling of the first restart delay; it doubles per restart.
    pub backoff_initial: Duration,
    /// Largest restart delay.
    pub backoff_max: Duration,
    /// A run healthy this long resets the backoff to `backoff_initial`.
    pub reset_after: Duration,
    /// This many exits shorter than `min_uptime` inside `crash_loop_window` are a crash loop.
    pub crash_loop_exits: u32,
    /// See `crash_loop_exits`.
    pub crash_loop_window: Duration,
    /// How often the kill switch (and a pending resume) is read from the store.
    pub poll_every: Duration,
    /// How often `health_url` is asked.
    pub health_every: Duration,
    /// How long one health check may take before it counts as failed.
    pub health_timeout: Duration,
    /// How often the status is re-published without a transition (uptime, liveness of the daemon).
    pub publish_every: Duration,
    /// After the agent exits, how long its output pipes may stay open (held
    /// by a process that left its group) before capture is abandoned.
    pub output_drain: Duration,
}

/// Default [`SupervisorSettings::backoff_initial`].
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Default [`SupervisorSettings::backoff_max`].
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Default [`SupervisorSettings::reset_after`].
pub const DEFAULT_RESET_AFTER: Duration = Duration::from_secs(60);
/// Default [`SupervisorSettings::crash_loop_exits`].
pub const DEFAULT_CRASH_LOOP_EXITS: u32 = 5;
/// Default [`SupervisorSettings::crash_loop_window`].
pub const DEFAULT_CRASH_LOOP_WINDOW: Duration = Duration::from_secs(600);
/// Default [`SupervisorSettings::poll_every`]: a stop is noticed within a quarter second.
pub const DEFAULT_POLL_EVERY: Duration = Duration::from_millis(250);
/// Default [`SupervisorSettings::health_every`].
pub const DEFAULT_HEALTH_EVERY: Duration = Duration::from_secs(5);
/// Default [`SupervisorSettings::health_timeout`].
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Default [`SupervisorSettings::publish_every`].
pub const DEFAULT_PUBLISH_EVERY: Duration = Duration::from_secs(5);
/// Default [`SupervisorSettings::output_drain`].
pub const DEFAULT_OUTPUT_DRAIN: Duration = Duration::from_secs(2);

impl Default for SupervisorSettings {
    fn default() -> Self {
        Self {
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            reset_after: DEFAULT_RESET_AFTER,
            crash_loop_exits: DEFAULT_CRASH_LOOP_EXITS,
            crash_loop_window: DEFAULT_CRASH_LOOP_WINDOW,
            poll_every: DEFAULT_POLL_EVERY,
            health_every: DEFAULT_HEALTH_EVERY,
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            publish_every: DEFAULT_PUBLISH_EVERY,
            output_drain: DEFAULT_OUTPUT_DRAIN,
        }
    }
}

/// Counters for metrics, readable from any thread without a lock.
#[derive(Debug, Default)]
pub struct SupervisorStats {
    /// The agent runs and is confirmed up (healthy).
    up: AtomicBool,
    /// Processes spawned.
    starts: AtomicU64,
    /// Spawns that followed an exit (not a resume or a released kill switch).
    restarts: AtomicU64,
    /// Loop iterations: the systemd watchdog's proof of life.
    ticks: AtomicU64,
}

/// A consistent-enough copy of [`SupervisorStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// The agent runs and is healthy (the `agent_up` gauge).
    pub up: bool,
    /// Processes spawned since the daemon started.
    pub starts: u64,
    /// Restarts after an exit (the `agent_restarts_total` counter).
    pub restarts: u64,
}

impl SupervisorStats {
    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            up: self.up.load(Ordering::Relaxed),
            starts: self.starts.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
        }
    }

    /// Iterations of the supervisor's loop so far: the systemd watchdog only
    /// pings while this advances, so a wedged supervisor gets steward restarted.
    pub fn loop_ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

/// What [`Supervisor::new`] needs from the daemon.
pub struct SupervisorInit<'a> {
    /// The validated config (`[agent]`, `[logging]`, credential names).
    pub config: &'a Config,
    /// Resolved credentials: no value may reach the agent.
    pub secrets: &'a Secrets,
    /// The agent's steward token, handed to it as STEWARD_TOKEN and the SDK API keys.
    pub agent_token: &'a str,
    /// The gateway's bound address, handed to it as STEWARD_URL.
    pub gateway_addr: SocketAddr,
    /// The store: kill switch, persisted status and crash-loop record.
    pub store: Store,
    /// Redacts the agent's output before it is logged.
    pub redactor: SharedRedactor,
    /// Where lifecycle events go.
    pub events: EventBus,
    /// How the process is created (the box, or directly).
    pub launcher: Launcher,
    /// The gateway's routes, served on the listener the box opens inside the
    /// agent's network namespace (`network = "steward-only"`).
    pub gateway: Option<crate::gateway::Service>,
    /// Timing.
    pub settings: SupervisorSettings,
}

/// The supervisor of one agent. Build it with [`Supervisor::new`], then run
/// [`Supervisor::run`] as a daemon task until shutdown.
pub struct Supervisor {
    /// How to start the agent; `None` without `[agent] command` (disabled).
    spec: Option<launch::LaunchSpec>,
    /// `[agent] health_url`, if any.
    health: Option<health::HealthCheck>,
    /// Served inside the agent's network namespace, when it has one.
    gateway: Option<crate::gateway::Service>,
    /// `agent.log`; shared with the capture tasks of the current run.
    log: Option<Arc<LineLog>>,
    /// Applied to every captured line.
    redactor: SharedRedactor,
    /// Kill switch, published status, crash-loop record, resume requests.
    store: Store,
    /// Where lifecycle events go.
    events: EventBus,
    /// Counters shared with metrics and the systemd watchdog.
    stats: Arc<SupervisorStats>,
    /// Timing.
    settings: SupervisorSettings,
    /// Backoff and crash-loop memory.
    policy: RestartPolicy,
    /// The kill switch as last read; `None` before the first read.
    kill: Option<KillState>,
    /// A failing kill-switch read is logged once, not every poll.
    kill_read_failing: bool,
    /// What is published; transitions edit it and call `publish`.
    status: AgentStatus,
    /// Start of the current outage, once [`Event::AgentDown`] was published.
    down_since_ms: Option<i64>,
    /// The next start is a restart after an exit (counted in `restarts`).
    restarting: bool,
    /// The last run's record was looked at (once, before the first start).
    reaped_previous: bool,
    last_published: Option<Instant>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("spec", &self.spec).field("status", &self.status).finish_non_exhaustive()
    }
}

/// The check `steward run` makes on `[agent] env` before it starts anything
/// (no value may hold a credential in `secrets`), for `steward config check`.
pub fn check_agent_env(config: &Config, secrets: &Secrets) -> Result<(), SupervisorError> {
    let Some(process) = &config.agent.process else { return Ok(()) };
    launch::LaunchSpec::new(process, config, secrets, "", "http://127.0.0.1", |_| None, Launcher::Direct).map(|_| ())
}

impl Supervisor {
    /// Prepares the agent's environment (refusing credentials in it), opens
    /// `agent.log` and the health-check client. Nothing is started yet.
    pub fn new(init: SupervisorInit<'_>) -> Result<Self, SupervisorError> {
        let config = init.config;
        let now = crate::clock::unix_ms(std::time::SystemTime::now());
        let (spec, health, log, min_uptime) = match &config.agent.process {
            None => (None, None, None, crate::config::DEFAULT_MIN_UPTIME),
            Some(process) => {
                // The box makes the agent its own user; steward checks first
                // that this user cannot reach what steward owns.
                let account = match &init.launcher {
                    Launcher::ReExec { .. } => {
                        let account = match &process.user {
                            Some(user) => Some(sandbox::Account::resolve(user, process.group.as_deref())?),
                            None => None,
                        };
                        sandbox::check_private_paths(config, account.as_ref())?;
                        account
                    }
                    Launcher::Direct => None,
                };
                let spec = launch::LaunchSpec::new(
                    process,
                    config,
                    init.secrets,
                    init.agent_token,
                    &format!("http://{}", init.gateway_addr),
                    |name| std::env::var(name).ok(),
                    init.launcher,
                )?
                .with_account(account);
                let health = match &process.health_url {
                    Some(url) => Some(health::HealthCheck::new(url, init.settings.health_timeout)?),
                    None => None,
                };
                // The agent can flood its output: its log holds max_total_size at every write.
                let log = Arc::new(LineLog::open_with_budget(
                    &config.logging.dir,
                    AGENT,
                    config.logging.max_file_size,
                    Some(config.logging.max_total_size),
                )?);
                (Some(spec), health, Some(log), process.min_uptime)
            }
        };
        let state = if spec.is_some() { AgentState::Starting } else { AgentState::Disabled };
        Ok(Self {
            spec,
            health,
            gateway: init.gateway,
            log,
            redactor: init.redactor,
            store: init.store,
            events: init.events,
            stats: Arc::new(SupervisorStats::default()),
            policy: RestartPolicy::new(&init.settings, min_uptime),
            settings: init.settings,
            kill: None,
            kill_read_failing: false,
            status: AgentStatus::new(state, now),
            down_since_ms: None,
            restarting: false,
            reaped_previous: false,
            last_published: None,
        })
    }

    /// The counters metrics read; shared, live.
    pub fn stats(&self) -> Arc<SupervisorStats> {
        Arc::clone(&self.stats)
    }

    /// `<logging.dir>/agent.log`, when an agent command is configured.
    pub fn log_path(&self) -> Option<std::path::PathBuf> {
        self.log.as_ref().map(|log| log.active_path())
    }
}
