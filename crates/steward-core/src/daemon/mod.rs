//! The daemon behind `steward run`: startup order, the single-instance lock
//! (taken through `state_dir`), background tasks (gateway, the admin API on
//! `<state>/admin.sock` (`crate::admin`), supervisor,
//! retention in `retention`, systemd watchdog in `systemd`, token
//! introspection) and shutdown.
//!
//! # Shutdown
//! There is exactly one shutdown mechanism: a [`CancellationToken`] (the
//! drain signal) plus a [`TaskTracker`] holding every background task. The
//! pipeline gets the tracker too: what a call leaves behind (the record of a
//! response the agent abandoned) runs on it, as does the gateway served in
//! the agent's network namespace. On shutdown the token is cancelled, the
//! HTTP server stops accepting and lets in-flight calls finish (their
//! records included), tracked tasks exit at their next await point (the
//! supervisor first stops the agent: SIGTERM to its process group,
//! `stop_grace`, SIGKILL), and once the tracker is empty nothing holds the
//! audit log but the daemon: it is drained and fsynced. Nothing else stops
//! the daemon.
//!
//! # Reload
//! [`Reloader::reload`] (SIGHUP in `steward run`, sent by `steward reload`
//! and `steward secrets reload`) re-reads the config file and every
//! credential source, validates them, and swaps the whole config in at
//! once; an invalid config is refused and the old one keeps running. See
//! `reload` for the order, and for the sections that need a restart. A
//! successful reload wakes the token-introspection task
//! (`secrets::introspect`), which asks each `introspection_url` about the
//! new tokens in the background.

mod fleet;
mod reload;
mod retention;
mod systemd;

pub use reload::{
    CONFIG_SHA256_KEY, ConfigDrift, RESTART_NEEDED_KEY, RESTART_SECTIONS, ReloadError, ReloadReport, Reloader,
    config_drift, restart_needed, sections_changed,
};
pub use retention::journal_keep;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::AdminToken;
use crate::audit::{AuditError, AuditLog, AuditRecord, Phase};
use crate::clock::unix_ms;
use crate::config::Config;
use crate::decision::Decision;
use crate::events::EventBus;
use crate::monitor::{Metrics, MonitorError, MonitorInit};
use crate::pipeline::{Pipeline, PipelineError};
use crate::redaction::SharedRedactor;
use crate::secrets::{
    AgentToken, IntrospectionTask, Secrets, SecretsError, Unresolved, introspect, log_expiry_findings,
};
use crate::state_dir::{StateDirError, acquire_lock, ensure_private_dir, restrict_store_files, write_private};
use crate::store::{Store, StoreError};
use crate::supervisor::{Launcher, Supervisor, SupervisorError, SupervisorInit, SupervisorSettings, SupervisorStats};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state dir or a file in it could not be prepared, or another
    /// daemon holds its lock.
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    /// The agent token could not be created or read.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// Credential or alert references did not resolve (all of them are listed).
    #[error(transparent)]
    Credentials(#[from] Unresolved),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The audit log could not be opened.
    #[error("audit log: {0}")]
    Audit(#[from] AuditError),
    /// The pipeline could not be assembled (an upstream client, the price table).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Monitoring could not start (an alert sink could not be built).
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    /// The agent supervisor could not be set up (a credential in `[agent] env`, `agent.log` unwritable).
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; is another process using the port? change [gateway] listen")]
    Bind {
        /// Configured address.
        addr: std::net::SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The dashboard could not start (its port, its TLS files).
    #[error(transparent)]
    Dashboard(#[from] crate::dashboard::DashboardError),
    /// The admin API's socket could not be bound.
    #[error(
        "cannot serve the admin API on {path}: {source}; check that [state] dir is writable by the user running steward",
        path = path.display()
    )]
    AdminSocket {
        /// `<state>/admin.sock`
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

impl DaemonError {
    /// Whether the fix is in `steward.toml` (the CLI exits with the config code).
    pub fn is_config_error(&self) -> bool {
        match self {
            DaemonError::Supervisor(err) => err.is_config_error(),
            DaemonError::Credentials(unresolved) => unresolved.needs_a_person(),
            _ => false,
        }
    }
}

/// How the daemon is embedded: `steward run` differs from tests and the demo.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// How the agent process is created; `steward run` passes
    /// [`Launcher::ReExec`] so the agent dies with steward.
    pub launcher: Launcher,
    /// Send sd_notify READY/WATCHDOG/STOPPING (no-op outside systemd).
    pub systemd: bool,
    /// Supervisor timing; tests shorten it.
    pub supervisor: SupervisorSettings,
    /// The doctor's FAIL items for the dashboard's report verdict (`steward
    /// run` passes them; see [`crate::dashboard::DoctorFails`]).
    pub doctor_fails: Option<crate::dashboard::DoctorFails>,
}

/// A started daemon.
#[derive(Debug)]
pub struct RunningDaemon {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    audit: Arc<AuditLog>,
    addr_path: PathBuf,
    events: EventBus,
    metrics: Arc<Metrics>,
    supervisor: Arc<SupervisorStats>,
    systemd: bool,
    reloader: Reloader,
    /// Writes the sampled audit lines still pending at shutdown.
    pipeline: Arc<Pipeline>,
    /// Held for the daemon's lifetime: released (by the OS, even on kill -9) when it ends.
    _lock: std::fs::File,
}

impl RunningDaemon {
    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// A handle that makes the daemon shut down when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The daemon's event bus: subscribe for agent, kill-switch and monitoring events, or publish.
    pub fn events(&self) -> EventBus {
        self.events.clone()
    }

    /// The registry `/metrics` serves.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The supervisor's live counters (agent up, restarts).
    pub fn supervisor_stats(&self) -> Arc<SupervisorStats> {
        Arc::clone(&self.supervisor)
    }

    /// A handle that reloads the config file and every credential source (see the module docs).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Drains and stops: see the module docs.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the shutdown token is cancelled and everything drained.
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        if self.systemd {
            systemd::stopping();
        }
        self.tracker.close();
        self.tracker.wait().await;
        // The gateway is closed: account for the junk requests not yet sampled.
        self.pipeline.flush_junk(true).await;
        drop(self.pipeline);
        // Every task that held the audit log ran on the tracker and has ended.
        match Arc::try_unwrap(self.audit) {
            Ok(log) => log.shutdown().await,
            Err(_) => tracing::error!(
                "the audit log is still shared after every task ended (a defect); its final fsync is left to the OS"
            ),
        }
        let _ = std::fs::remove_file(&self.addr_path);
        tracing::info!("steward stopped");
    }
}

/// Starts every part in dependency order and returns once the gateway
/// listens, with default [`DaemonOptions`] (agent started without a
/// parent-death signal, no systemd notifications).
pub async fn start(config: &Config) -> Result<RunningDaemon, DaemonError> {
    start_with(config, DaemonOptions::default()).await
}

/// [`start`] with explicit options.
pub async fn start_with(config: &Config, options: DaemonOptions) -> Result<RunningDaemon, DaemonError> {
    ensure_private_dir(&config.state.dir)?;
    let lock = acquire_lock(&config.state.lock_path(), &config.state.dir)?;
    let agent_token = load_agent_token(config)?;
    let secrets = Secrets::resolve(config).await?;
    log_expiry_findings(config, &secrets, SystemTime::now());
    let redactor = crate::redaction::shared(secrets.redactor(&agent_token, &config.redaction));
    let secrets = Arc::new(ArcSwap::from_pointee(secrets));
    let introspect_wake = Arc::new(tokio::sync::Notify::new());
    let events = EventBus::new();
    let metrics = Arc::new(Metrics::new());

    let (store, audit) = open_records(config, &secrets.load(), &redactor).await?;
    let lease_store = store.clone();
    let reload_token = AgentToken::from_value(agent_token.expose());
    let agent_token_value = secrecy::SecretString::from(agent_token.expose().to_owned());
    let tracker = TaskTracker::new();
    let pipeline = Arc::new(
        Pipeline::new(
            config,
            store.clone(),
            Arc::clone(&audit),
            Arc::clone(&redactor),
            Arc::clone(&secrets),
            agent_token,
            tracker.clone(),
        )?
        .with_monitoring(events.clone(), metrics.clone()),
    );

    let listener = crate::gateway::bind(config.gateway.listen)
        .map_err(|source| DaemonError::Bind { addr: config.gateway.listen, source })?;
    let addr = listener.local_addr().map_err(|source| DaemonError::Bind { addr: config.gateway.listen, source })?;
    let backup_store = store.clone();
    let journal_store = store.clone();
    let introspect_store = store.clone();
    let shutdown = CancellationToken::new();
    let mcp = Arc::new(crate::mcp::McpHub::new(config, &secrets, &redactor, &store, &events, &shutdown, &tracker));
    pipeline.set_mcp_relay(Arc::clone(&mcp) as Arc<dyn crate::pipeline::McpRelay>);
    tracker.spawn(crate::mcp::publish::run(Arc::clone(&mcp), store.clone(), shutdown.clone()));
    let mcp_door = crate::mcp::routes(Arc::clone(&pipeline), Arc::clone(&mcp), config.gateway.body_timeout, addr);
    let gateway = crate::gateway::Service::new(Arc::clone(&pipeline), mcp_door, &config.gateway, Arc::clone(&metrics));
    let supervisor = Supervisor::new(SupervisorInit {
        config,
        secrets: &secrets.load(),
        agent_token: secrecy::ExposeSecret::expose_secret(&agent_token_value),
        gateway_addr: addr,
        store: store.clone(),
        redactor: Arc::clone(&redactor),
        events: events.clone(),
        launcher: options.launcher,
        gateway: Some(gateway.clone()),
        settings: options.supervisor,
    })?;
    drop(agent_token_value);
    let supervisor_stats = supervisor.stats();
    let (admin_token, admin_listener, admin_socket) = open_admin(config)?;
    let dashboard = match &config.dashboard {
        Some(d) => {
            let listener = crate::dashboard::bind(d).await?;
            let bound = listener.local_addr().map_err(|source| DaemonError::Bind { addr: d.listen, source })?;
            Some((listener, bound, crate::dashboard::base_url(d, bound)))
        }
        None => None,
    };
    let addr_path = config.state.addr_path();
    write_private(&addr_path, &format!("{addr}\n"))?;

    let monitor_stop = shutdown.child_token();
    let monitor = MonitorInit {
        config,
        secrets: Arc::clone(&secrets),
        store: store.clone(),
        audit: Arc::clone(&audit),
        metrics: Arc::clone(&metrics),
        redactor: Arc::clone(&redactor),
        events: &events,
    };
    start_monitor(monitor, &tracker, &shutdown, &monitor_stop, &addr_path).await?;
    let reloader = Reloader::new(reload::ReloaderInit {
        config,
        secrets: &secrets,
        redactor: &redactor,
        agent_token: &reload_token,
        introspect: &introspect_wake,
        pipeline: &pipeline,
        monitor: reload::MonitorSlot {
            store,
            audit: Arc::clone(&audit),
            metrics: Arc::clone(&metrics),
            events: events.clone(),
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
            current: std::sync::Mutex::new(monitor_stop),
        },
    });
    drop(reload_token);
    reloader.record_running(config).await;
    tracker.spawn(gateway.serve(listener, shutdown.clone()));
    let admin = crate::admin::AdminState::new(
        Arc::clone(&pipeline),
        Arc::clone(&audit),
        events.clone(),
        &config.agent.name,
        admin_token,
    );
    let admin = match &dashboard {
        Some((_, _, url)) => admin.with_dashboard_url(url.clone()),
        None => admin,
    };
    if let Some((listener, bound, url)) = dashboard {
        let state = crate::dashboard::DashboardState::new(
            admin.clone(),
            Arc::new(config.clone()),
            Arc::clone(&secrets),
            bound,
            shutdown.clone(),
            options.doctor_fails.clone(),
        );
        tracing::info!(%url, "the dashboard is listening (`steward dashboard` prints a login URL)");
        tracker.spawn(crate::dashboard::serve(listener, crate::dashboard::router(state), shutdown.clone()));
    }
    tracker.spawn(crate::admin::serve(admin_listener, crate::admin::router(admin), shutdown.clone(), admin_socket));
    tracker.spawn(Arc::clone(&pipeline).run_junk_flush(shutdown.clone()));
    tracker.spawn(Arc::clone(&pipeline).run_mcp_summary(shutdown.clone()));
    tracker.spawn(Arc::clone(&pipeline).run_approval_watch(shutdown.clone()));
    tracker.spawn(retention::task(config, Arc::clone(&audit), journal_store, shutdown.clone()));
    tracker.spawn(supervisor.run(shutdown.clone()));
    if let Some(fleet) = &config.store.fleet {
        tracker.spawn(fleet::task(lease_store, fleet.lease, shutdown.clone()));
    }
    crate::backup::schedule::spawn(
        &tracker,
        Arc::new(config.clone()),
        backup_store,
        Arc::clone(&secrets),
        shutdown.clone(),
    );
    let introspection = |client| IntrospectionTask {
        config: Arc::new(config.clone()),
        secrets: Arc::clone(&secrets),
        redactor: Arc::clone(reloader.redactor()),
        store: introspect_store,
        client,
    };
    spawn_introspection(introspection, introspect_wake, &tracker, shutdown.clone());
    if options.systemd {
        systemd::ready(&tracker, shutdown.clone(), Arc::clone(&supervisor_stats));
    }
    warm_up_redactor(&audit);
    tracing::info!(%addr, agent = %config.agent.name, "steward is listening");
    Ok(RunningDaemon {
        addr,
        shutdown,
        tracker,
        audit,
        addr_path,
        events,
        metrics,
        supervisor: supervisor_stats,
        systemd: options.systemd,
        reloader,
        pipeline,
        _lock: lock,
    })
}

/// Warms the redactor now loaded on a thread of its own (see
/// [`AuditLog::warm_up`]): the daemon is ready meanwhile, and a call that
/// comes first finds a colder redactor, never a wait. The thread runs at
/// the lowest priority (nice 19, a per-thread value on Linux), so it takes
/// only CPU that no call and no other process wants. Also after a reload
/// swaps the redactor.
pub(crate) fn warm_up_redactor(audit: &Arc<AuditLog>) {
    let audit = Arc::clone(audit);
    let spawned = std::thread::Builder::new().name("steward-warm-up".into()).spawn(move || {
        if let Err(err) = rustix::process::setpriority_process(None, 19) {
            tracing::debug!(error = %err, "could not lower the warm-up's priority");
        }
        audit.warm_up();
    });
    if let Err(err) = spawned {
        tracing::debug!(error = %err, "could not start the redactor's warm-up; it warms with the calls");
    }
}

/// The agent token of `[state] dir`, created on the first start.
fn load_agent_token(config: &Config) -> Result<AgentToken, DaemonError> {
    let (agent_token, created) = AgentToken::load_or_create(&config.state.token_path())?;
    if created {
        tracing::info!(path = %config.state.token_path().display(), "created the agent token");
    }
    Ok(agent_token)
}

/// The admin API's token (created on the first start) and its socket,
/// bound before the address file announces the daemon, so a client that
/// sees the daemon can reach it.
fn open_admin(config: &Config) -> Result<(AdminToken, tokio::net::UnixListener, PathBuf), DaemonError> {
    let (token, created) = AdminToken::load_or_create(&config.state.admin_token_path())?;
    if created {
        tracing::info!(path = %config.state.admin_token_path().display(), "created the admin token");
    }
    let path = config.state.admin_socket_path();
    let listener =
        crate::admin::bind(&path).map_err(|source| DaemonError::AdminSocket { path: path.clone(), source })?;
    Ok((token, listener, path))
}

/// Opens the store (its files made private) and the audit log, and gives
/// the calls the last run left in flight their records.
async fn open_records(
    config: &Config,
    secrets: &Secrets,
    redactor: &SharedRedactor,
) -> Result<(Store, Arc<AuditLog>), DaemonError> {
    use secrecy::ExposeSecret as _;
    let url = secrets.get(crate::config::STORE_URL_LABEL).map(|url| url.expose_secret());
    let store = Store::open_configured(config, url, Arc::clone(redactor)).await?;
    if let (Some(fleet), Some(fleet_config)) = (store.fleet(), &config.store.fleet) {
        // The name first: a second live process of one name would settle
        // this one's calls as its own.
        fleet.beat(fleet_config.lease, unix_ms(SystemTime::now())).await?;
    } else {
        restrict_store_files(&config.state.db_path())?;
    }
    let mut audit = AuditLog::open(&config.logging, Arc::clone(redactor))?;
    if let Some(fleet) = store.fleet() {
        audit = audit.with_instance(fleet.instance());
    }
    let audit = Arc::new(audit);
    audit_interrupted(&store, &audit, &config.agent.name).await?;
    Ok((store, audit))
}

/// Starts monitoring (alert engine, sinks, heartbeat) on `monitor_stop`, a
/// child of `shutdown` that a reload cancels once the next monitoring
/// runs. When it cannot start, nothing else runs yet: the monitor tasks
/// already started are stopped and the address file is removed before the
/// error is returned.
async fn start_monitor(
    monitor: MonitorInit<'_>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    monitor_stop: &CancellationToken,
    addr_path: &Path,
) -> Result<(), DaemonError> {
    if let Err(err) = crate::monitor::start(monitor, tracker, monitor_stop).await {
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        let _ = std::fs::remove_file(addr_path);
        return Err(err.into());
    }
    Ok(())
}

/// Spawns token introspection (`secrets::introspect`) with the task `task`
/// builds around the outbound HTTP client, woken by `wake` after each
/// reload. Introspection is a check, never a reason not to start: without
/// an HTTP client it is skipped with a warning.
fn spawn_introspection(
    task: impl FnOnce(reqwest::Client) -> IntrospectionTask,
    wake: Arc<tokio::sync::Notify>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) {
    match crate::outbound::http_client() {
        Ok(client) => introspect::spawn(task(client), wake, tracker, shutdown),
        Err(err) => tracing::warn!(error = %err, "cannot build the HTTP client for token introspection; skipped"),
    }
}

/// Gives every call the last run left in flight (`kill -9`, crash, power
/// loss) its audit line, then marks it interrupted in the journal. Lines
/// first: a crash in between writes them again at the next start rather
/// than never.
async fn audit_interrupted(store: &Store, audit: &AuditLog, agent: &str) -> Result<(), DaemonError> {
    let unfinished = store.in_flight().await?;
    let now = SystemTime::now();
    for row in &unfinished {
        audit.write(&interrupted_record(row, agent, now)).await?;
    }
    let interrupted = store.settle_interrupted(unix_ms(now)).await?;
    if interrupted > 0 {
        tracing::warn!(count = interrupted, "calls were in flight when steward last stopped; marked interrupted");
    }
    Ok(())
}

/// The audit line of a call found in flight at start.
fn interrupted_record(row: &crate::store::CallRow, agent: &str, now: SystemTime) -> AuditRecord {
    let started = crate::clock::from_unix_ms(row.started_ms);
    AuditRecord {
        ts: crate::clock::format_ts(started),
        call_id: row.id.clone(),
        agent: agent.to_owned(),
        door: row.door.clone(),
        tool: row.tool.clone(),
        upstream: row.upstream.clone(),
        method: row.method.clone(),
        path: row.path.clone(),
        input_summary: row.input_summary.clone(),
        input_sha256: row.input_sha256.clone(),
        decision: Decision::Interrupted.as_str().to_owned(),
        phase: Phase::Interrupted,
        reason: Some(
            "steward stopped before this call finished (crash, kill -9 or power loss): the outcome is unknown, \
             the upstream may have executed it; check there"
                .to_owned(),
        ),
        status: None,
        duration_ms: u64::try_from(now.duration_since(started).unwrap_or_default().as_millis()).unwrap_or(u64::MAX),
        attempts: row.attempts,
        extra: serde_json::Map::new(),
    }
}
