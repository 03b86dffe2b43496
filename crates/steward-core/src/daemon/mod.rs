//! The daemon behind `steward run`: startup order, the single-instance lock,
//! background tasks (gateway, supervisor, audit retention, systemd watchdog,
//! token introspection) and shutdown.
//!
//! # Shutdown
//! There is exactly one shutdown mechanism: a [`CancellationToken`] (the
//! drain signal) plus a [`TaskTracker`] holding every background task. On
//! shutdown the token is cancelled, the HTTP server stops accepting and lets
//! in-flight calls finish (their records included), tracked tasks exit at
//! their next await point (the supervisor first stops the agent: SIGTERM to
//! its process group, `stop_grace`, SIGKILL), and only then is the audit log
//! drained and fsynced. Nothing else stops the daemon.
//!
//! # Credential reload
//! [`SecretsReloader::reload`] (SIGHUP in `steward run`, sent by `steward
//! secrets reload`) re-reads every credential source of the config the
//! daemon started with. The new redactor, which knows the new values and
//! every old one, is swapped in before the new values: no new value can be
//! injected before it is redacted, and no old one ever stops being redacted.
//! Calls in flight keep the header they were built with, so they finish with
//! the old value. A failed reload changes nothing. A successful one wakes
//! the token-introspection task (`secrets::introspect`), which asks each
//! `introspection_url` about the new tokens in the background.

mod systemd;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::{AuditError, AuditLog, AuditRecord, Phase};
use crate::clock::unix_ms;
use crate::config::Config;
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

/// How often retention runs: rotated audit files, old journal rows and old
/// spend records. Hourly keeps the 30-day / total-size promises within an
/// hour without churning the disk.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// How many 20 ms waits shutdown grants straggling audit writes (5 s in all)
/// before it leaves the final fsync to the OS.
const AUDIT_DRAIN_POLLS: u32 = 250;

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
    reloader: SecretsReloader,
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

    /// A handle that re-reads every credential source (see the module docs).
    pub fn reloader(&self) -> SecretsReloader {
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
        // Records of responses the agent abandoned are written from short
        // spawned tasks that hold the audit log; give them a moment to finish.
        let mut audit = self.audit;
        for _ in 0..AUDIT_DRAIN_POLLS {
            match Arc::try_unwrap(audit) {
                Ok(log) => {
                    log.shutdown().await;
                    break;
                }
                Err(shared) => {
                    audit = shared;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
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
    let (agent_token, created) = AgentToken::load_or_create(&config.state.token_path())?;
    if created {
        tracing::info!(path = %config.state.token_path().display(), "created the agent token");
    }
    let secrets = Secrets::resolve(config).await?;
    log_expiry_findings(config, &secrets, SystemTime::now());
    let redactor = crate::redaction::shared(secrets.redactor(&agent_token, &config.redaction));
    let secrets = Arc::new(ArcSwap::from_pointee(secrets));
    let introspect_wake = Arc::new(tokio::sync::Notify::new());
    let reloader = SecretsReloader {
        inner: Arc::new(ReloadInner {
            config: config.clone(),
            secrets: Arc::clone(&secrets),
            redactor: Arc::clone(&redactor),
            agent_token: AgentToken::from_value(agent_token.expose()),
            serial: tokio::sync::Mutex::new(()),
            introspect: Arc::clone(&introspect_wake),
        }),
    };
    let events = EventBus::new();
    let metrics = Arc::new(Metrics::new());

    let store = Store::open(&config.state.db_path(), Arc::clone(&redactor))?;
    restrict_store_files(&config.state.db_path())?;
    let audit = Arc::new(AuditLog::open(&config.logging, Arc::clone(&redactor))?);
    audit_interrupted(&store, &audit, &config.agent.name).await?;
    let agent_token_value = secrecy::SecretString::from(agent_token.expose().to_owned());
    let pipeline = Arc::new(
        Pipeline::new(
            config,
            store.clone(),
            Arc::clone(&audit),
            Arc::clone(&redactor),
            Arc::clone(&secrets),
            agent_token,
        )?
        .with_monitoring(events.clone(), metrics.clone()),
    );

    let listener = crate::gateway::bind(config.gateway.listen)
        .map_err(|source| DaemonError::Bind { addr: config.gateway.listen, source })?;
    let addr = listener.local_addr().map_err(|source| DaemonError::Bind { addr: config.gateway.listen, source })?;
    let backup_store = store.clone();
    let journal_store = store.clone();
    let introspect_store = store.clone();
    let gateway = crate::gateway::Service::new(Arc::clone(&pipeline), &config.gateway, Arc::clone(&metrics));
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
    let addr_path = config.state.addr_path();
    write_private(&addr_path, &format!("{addr}\n"))?;

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let monitor = MonitorInit {
        config,
        secrets: Arc::clone(&secrets),
        store,
        audit: Arc::clone(&audit),
        metrics: Arc::clone(&metrics),
        redactor,
        events: &events,
    };
    if let Err(err) = crate::monitor::start(monitor, &tracker, &shutdown).await {
        // Nothing else runs yet: stop the monitor tasks already started.
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        let _ = std::fs::remove_file(&addr_path);
        return Err(err.into());
    }
    tracker.spawn(gateway.serve(listener, shutdown.clone()));
    tracker.spawn(Arc::clone(&pipeline).run_junk_flush(shutdown.clone()));
    let retention_audit = Arc::clone(&audit);
    let journal_keep = journal_keep(config);
    let spend_config = config.spend.clone();
    let drain = shutdown.clone();
    tracker.spawn(async move {
        let mut every = tokio::time::interval(RETENTION_EVERY);
        loop {
            tokio::select! {
                () = drain.cancelled() => break,
                _ = every.tick() => {}
            }
            let log = Arc::clone(&retention_audit);
            // `max_total_size` covers the store too; the logs give way.
            let store_bytes = journal_store.wal_stats().total_bytes();
            match tokio::task::spawn_blocking(move || log.run_retention(SystemTime::now(), store_bytes)).await {
                Ok(Ok(report)) => tracing::debug!(?report, "audit retention ran"),
                Ok(Err(err)) => tracing::error!(error = %err, "audit retention failed"),
                Err(err) => tracing::error!(error = %err, "audit retention task failed"),
            }
            prune_journal(&journal_store, journal_keep, &drain).await;
            prune_spend(&journal_store, &spend_config, &drain).await;
        }
    });
    tracker.spawn(supervisor.run(shutdown.clone()));
    crate::backup::schedule::spawn(
        &tracker,
        Arc::new(config.clone()),
        backup_store,
        Arc::clone(&secrets),
        shutdown.clone(),
    );
    match crate::outbound::http_client() {
        Ok(client) => introspect::spawn(
            IntrospectionTask {
                config: Arc::new(config.clone()),
                secrets: Arc::clone(&secrets),
                redactor: Arc::clone(&reloader.inner.redactor),
                store: introspect_store,
                client,
            },
            introspect_wake,
            &tracker,
            shutdown.clone(),
        ),
        // Introspection is a check, never a reason not to start.
        Err(err) => tracing::warn!(error = %err, "cannot build the HTTP client for token introspection; skipped"),
    }
    if options.systemd {
        systemd::ready(&tracker, shutdown.clone(), Arc::clone(&supervisor_stats));
    }
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
        decision: "interrupted".to_owned(),
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

/// Rows deleted per pruning transaction (journal or spend ledger): small
/// enough that an admission queued behind the prune waits a few milliseconds
/// at most.
const PRUNE_BATCH: u64 = 2_000;

/// How long finished journal rows are kept: as long as the audit log keeps
/// its files (`[logging] retention`), and never less than a day or than the
/// longest rate-limit or loop-breaker window, which count those rows.
pub fn journal_keep(config: &Config) -> Duration {
    let longest_window = config
        .tools
        .iter()
        .filter_map(|tool| tool.limit.map(|limit| limit.per))
        .chain(std::iter::once(config.loop_breaker.window))
        .max()
        .unwrap_or_default();
    config.logging.retention.max(longest_window).max(Duration::from_secs(86_400))
}

/// Deletes the journal rows older than `keep`.
async fn prune_journal(store: &Store, keep: Duration, shutdown: &CancellationToken) {
    let before = unix_ms(SystemTime::now().checked_sub(keep).unwrap_or(SystemTime::UNIX_EPOCH));
    let pruned = prune_in_batches("journal", shutdown, || store.prune_journal(before, PRUNE_BATCH)).await;
    if pruned > 0 {
        tracing::info!(rows = pruned, keep_days = keep.as_secs() / 86_400, "pruned old journal rows");
    }
}

/// Deletes the settled spend records of days more than `[spend]
/// history_days` before today (in the spend time zone).
async fn prune_spend(store: &Store, spend: &crate::config::SpendConfig, shutdown: &CancellationToken) {
    let before_day = spend.day_of(SystemTime::now(), spend.history_days);
    let pruned = prune_in_batches("spend ledger", shutdown, || store.prune_spend(&before_day, PRUNE_BATCH)).await;
    if pruned > 0 {
        tracing::info!(rows = pruned, history_days = spend.history_days, "pruned old spend records");
    }
}

/// Runs `batch` (one transaction deleting at most [`PRUNE_BATCH`] rows) until
/// it deletes fewer, fails, or `shutdown`; returns the rows deleted.
async fn prune_in_batches<F, Fut>(what: &str, shutdown: &CancellationToken, mut batch: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, StoreError>>,
{
    let mut pruned = 0_u64;
    while !shutdown.is_cancelled() {
        match batch().await {
            Ok(n) => {
                pruned += n;
                if n < PRUNE_BATCH {
                    break;
                }
                // A pause between batches: a large backlog (the first run
                // after an upgrade) never holds the writer for long at a time.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => {
                tracing::error!(error = %err, "{what} pruning failed");
                break;
            }
        }
    }
    pruned
}

/// Re-reads credentials for a running daemon; cheap to clone.
#[derive(Debug, Clone)]
pub struct SecretsReloader {
    inner: Arc<ReloadInner>,
}

/// What a reloader shares with the daemon.
#[derive(Debug)]
struct ReloadInner {
    /// The config the daemon started with: a reload re-reads sources, not the file.
    config: Config,
    /// The values the forwarder injects.
    secrets: Arc<ArcSwap<Secrets>>,
    /// The redactor every writer uses.
    redactor: SharedRedactor,
    /// The agent token, which the redactor must keep knowing.
    agent_token: AgentToken,
    /// One reload at a time: two racing reloads could retire each other's values.
    serial: tokio::sync::Mutex<()>,
    /// Wakes the token-introspection task after a successful reload.
    introspect: Arc<tokio::sync::Notify>,
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// `[credentials.*]` entries now loaded (the count `steward secrets list` shows).
    pub credentials: usize,
    /// Secret references of `[alerts]` and `[heartbeat]` now loaded.
    pub alert_references: usize,
    /// Names whose value changed (by fingerprint).
    pub changed: Vec<String>,
    /// Old values the redactor keeps removing.
    pub retired: usize,
}

impl SecretsReloader {
    /// Re-reads every source; on success swaps the redactor, then the values,
    /// and records the outcome in `<state>/reload.json` for `steward secrets
    /// reload`. On failure nothing changes and the error is recorded.
    pub async fn reload(&self) -> Result<ReloadReport, Unresolved> {
        let inner = &self.inner;
        let _serial = inner.serial.lock().await;
        let started = SystemTime::now();
        let result = match Secrets::resolve(&inner.config).await {
            Ok(fresh) => {
                let old = inner.secrets.load_full();
                let changed: Vec<String> = fresh
                    .names()
                    .filter(|name| fresh.fingerprint(name) != old.fingerprint(name))
                    .map(str::to_owned)
                    .collect();
                let fresh = fresh.retain_retired(&old);
                let redactor = fresh.redactor(&inner.agent_token, &inner.config.redaction);
                inner.redactor.store(Arc::new(redactor));
                let credentials = fresh.credential_count(&inner.config);
                let report = ReloadReport {
                    credentials,
                    alert_references: fresh.names().count() - credentials,
                    changed,
                    retired: fresh.retired_count(),
                };
                inner.secrets.store(Arc::new(fresh));
                tracing::info!(
                    credentials = report.credentials,
                    changed = %report.changed.join(", "),
                    "credentials reloaded"
                );
                log_expiry_findings(&inner.config, &inner.secrets.load(), SystemTime::now());
                inner.introspect.notify_one();
                Ok(report)
            }
            Err(err) => {
                tracing::error!(error = %err, "credential reload failed; the previous values stay in use");
                Err(err)
            }
        };
        let status = match &result {
            Ok(report) => serde_json::json!({ "at_ms": unix_ms(started), "ok": true, "report": report }),
            Err(err) => serde_json::json!({ "at_ms": unix_ms(started), "ok": false, "error": err.to_string() }),
        };
        if let Err(err) = write_private(&inner.config.state.reload_status_path(), &format!("{status}\n")) {
            tracing::warn!(error = %err, "could not record the reload outcome");
        }
        result
    }
}

#[cfg(test)]
mod journal_tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!("[agent]\nname = \"t\"\n{extra}");
        crate::config::parse(&text, std::path::Path::new("/srv/t/steward.toml")).unwrap()
    }

    #[test]
    fn the_journal_is_kept_as_long_as_the_logs_and_any_window_that_counts_it() {
        let day = Duration::from_secs(86_400);
        assert_eq!(journal_keep(&config("")), 30 * day, "[logging] retention by default");
        let long_window = config("[logging]\nretention_days = 1\n[loop_breaker]\nwindow = \"3d\"\n");
        assert_eq!(journal_keep(&long_window), 3 * day, "the loop breaker counts rows that old");
    }

    /// One LLM call of `days_back` days ago (in the spend time zone),
    /// reserved at 100 and settled at 40 micro-dollars.
    async fn spent(store: &Store, spend: &crate::config::SpendConfig, id: &str, days_back: u32) {
        use crate::store::tests::spend::{hold, priced, settled};
        let day = spend.day_of(SystemTime::now(), days_back);
        store.admit(priced(id, crate::store::tests::T0, hold(&day, 100, None))).await.unwrap();
        store.complete(settled(id, 40)).await.unwrap();
    }

    #[tokio::test]
    async fn spend_records_older_than_history_days_are_pruned_and_recent_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
        let spend = config("[spend]\nhistory_days = 2\n").spend;
        for (id, days_back) in [("today", 0), ("edge", 2), ("old", 3), ("older", 40)] {
            spent(&store, &spend, id, days_back).await;
        }
        prune_spend(&store, &spend, &CancellationToken::new()).await;
        let (today, edge, old) = (
            spend.day_of(SystemTime::now(), 0),
            spend.day_of(SystemTime::now(), 2),
            spend.day_of(SystemTime::now(), 3),
        );
        assert_eq!(store.spend_total(&today).await.unwrap(), 40);
        assert_eq!(store.spend_total(&edge).await.unwrap(), 40, "history_days = 2 keeps the day two days back");
        assert_eq!(store.spend_total(&old).await.unwrap(), 0);
        let oldest = spend.day_of(SystemTime::now(), 40);
        let rows = store.spend_by_day(&oldest, &today).await.unwrap();
        let days: Vec<_> = rows.iter().map(|r| r.day.as_str()).collect();
        assert_eq!(days, [today.as_str(), edge.as_str()]);
    }
}
