//! Reload without a restart (`steward reload`, `steward secrets reload`,
//! SIGHUP): [`Reloader`] owns the config the daemon runs and swaps it whole.
//!
//! # Order
//! 1. Re-read the file the daemon was started with and validate it with
//!    the same two-stage loader as `steward run`; resolve every credential
//!    and alert reference of the new config as `run` does; build the new
//!    pipeline snapshot (`pipeline::LiveConfig`: tools, limits, upstream
//!    clients, LLM providers, prices, loop breaker, spend) and the alert
//!    sinks. Any failure refuses the reload: nothing has changed, the old
//!    config keeps running, and the error is logged, audited and recorded
//!    for the CLI.
//! 2. Swap: the redactor first (it knows every new value and every old one,
//!    so no new value is injected before it is redacted, and no old one
//!    stops being redacted), then the credential values, then the pipeline
//!    snapshot, then monitoring (a new alert engine, sinks and heartbeat are
//!    started on the new config before the old ones are stopped; the
//!    engine's state lives in the store, so firing alerts stay firing).
//!    Each call loads the pipeline snapshot once when it arrives: calls in
//!    flight finish under the config they started with.
//! 3. Record: one audit line (`door = "config"`) with the old and new
//!    SHA-256 of the file and the sections that changed; the running hash
//!    in the store's `kv` (read by `status` and `doctor`); the outcome in
//!    `<state>/reload.json`, which the CLI waits for.
//!
//! # Restart needed
//! Some sections are bound once at start: the listener and its limits
//! (`[gateway]`), the state dir (`[state]`), the agent process and its box
//! (`[agent]`), the audit log's files (`[logging]`), the backup schedule
//! (`[backup]`) and the MCP servers steward runs (`[mcp]`). A change there is **not applied**, and does not refuse the
//! reload: everything else is applied, the sections above keep their
//! running values, and the report names each changed key ("restart needed:
//! gateway.listen"). `steward status` keeps saying so until a restart.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::{AuditLog, AuditRecord, Phase};
use crate::clock::unix_ms;
use crate::config::{self, Config};
use crate::events::EventBus;
use crate::monitor::{self, Metrics, MonitorInit};
use crate::pipeline::Pipeline;
use crate::redaction::SharedRedactor;
use crate::secrets::{AgentToken, Secrets, Unresolved, log_expiry_findings};
use crate::state_dir::write_private;
use crate::store::Store;

/// `kv` key of the SHA-256 of the config file the daemon runs.
pub const CONFIG_SHA256_KEY: &str = "config.sha256";

/// `kv` key of the keys changed in the file that wait for a restart
/// (comma-separated; absent when none do).
pub const RESTART_NEEDED_KEY: &str = "config.restart_needed";

/// Top-level sections bound once at start (see the module docs). `[mcp]`
/// is among them: its stdio servers are processes started with the daemon.
pub const RESTART_SECTIONS: [&str; 7] = ["agent", "gateway", "state", "store", "logging", "backup", "mcp"];

/// Why a reload was refused. Nothing changed: the old config keeps running.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is invalid (or unreadable).
    #[error("the new config is invalid: {}", .problems.join("; "))]
    Invalid {
        /// Every problem, `file:line:column: message (help)`.
        problems: Vec<String>,
    },
    /// A credential or alert reference of the new config did not resolve.
    #[error(transparent)]
    Credentials(#[from] Unresolved),
    /// A part could not be built from the new config (an upstream client,
    /// the price table, an alert sink).
    #[error("the new config cannot be applied: {0}")]
    Build(String),
}

impl ReloadError {
    /// Every problem, one line each.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ReloadError::Invalid { problems } => problems.clone(),
            ReloadError::Credentials(unresolved) => unresolved.errors.iter().map(ToString::to_string).collect(),
            ReloadError::Build(detail) => vec![detail.clone()],
        }
    }

    /// `config`, `credentials` or `build`: which stage refused (for `reload.json`).
    pub fn kind(&self) -> &'static str {
        match self {
            ReloadError::Invalid { .. } => "config",
            ReloadError::Credentials(_) => "credentials",
            ReloadError::Build(_) => "build",
        }
    }
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// `[credentials.*]` entries now loaded (the count `steward secrets list` shows).
    pub credentials: usize,
    /// Secret references of `[alerts]` and `[heartbeat]` now loaded.
    pub alert_references: usize,
    /// Credential names whose value changed (by fingerprint).
    pub changed: Vec<String>,
    /// Old values the redactor keeps removing.
    pub retired: usize,
    /// SHA-256 of the file the daemon ran before.
    pub config_sha256_old: String,
    /// SHA-256 of the file it runs now.
    pub config_sha256_new: String,
    /// Top-level sections whose text changed, applied or not.
    pub sections_changed: Vec<String>,
    /// Changed keys not applied until a restart (see the module docs).
    pub restart_needed: Vec<String>,
}

/// What monitoring needs to be started again on a new config.
#[derive(Debug)]
pub(super) struct MonitorSlot {
    /// The store the engine polls and keeps its state in.
    pub(super) store: Store,
    /// Watched for write failures.
    pub(super) audit: Arc<AuditLog>,
    /// The registry of `/metrics`.
    pub(super) metrics: Arc<Metrics>,
    /// The daemon's bus.
    pub(super) events: EventBus,
    /// The daemon's tracker (the one shutdown mechanism).
    pub(super) tracker: TaskTracker,
    /// The daemon's drain signal: each monitor runs on a child of it.
    pub(super) shutdown: CancellationToken,
    /// Stops the monitoring tasks of the running config.
    pub(super) current: std::sync::Mutex<CancellationToken>,
}

/// Reloads a running daemon; cheap to clone.
#[derive(Debug, Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

/// What a reloader shares with the daemon.
#[derive(Debug)]
struct Inner {
    /// The config running now. Locked for a whole reload: one at a time,
    /// since two racing reloads could retire each other's values.
    running: tokio::sync::Mutex<Arc<Config>>,
    /// The values the forwarder injects.
    secrets: Arc<ArcSwap<Secrets>>,
    /// The redactor every writer uses.
    redactor: SharedRedactor,
    /// The agent token, which the redactor must keep knowing.
    agent_token: AgentToken,
    /// Wakes the token-introspection task after a successful reload.
    introspect: Arc<tokio::sync::Notify>,
    /// Holds the swappable snapshot of the config.
    pipeline: Arc<Pipeline>,
    /// Where the running hash is recorded.
    store: Store,
    /// Where each reload is audited.
    audit: Arc<AuditLog>,
    /// Monitoring, started again on each new config.
    monitor: MonitorSlot,
}

/// What [`Reloader::new`] is given by the daemon.
pub(super) struct ReloaderInit<'a> {
    pub(super) config: &'a Config,
    pub(super) secrets: &'a Arc<ArcSwap<Secrets>>,
    pub(super) redactor: &'a SharedRedactor,
    pub(super) agent_token: &'a AgentToken,
    pub(super) introspect: &'a Arc<tokio::sync::Notify>,
    pub(super) pipeline: &'a Arc<Pipeline>,
    pub(super) monitor: MonitorSlot,
}

impl Reloader {
    /// A reloader of the daemon started on `init.config`.
    pub(super) fn new(init: ReloaderInit<'_>) -> Self {
        let inner = Inner {
            running: tokio::sync::Mutex::new(Arc::new(init.config.clone())),
            secrets: Arc::clone(init.secrets),
            redactor: Arc::clone(init.redactor),
            agent_token: AgentToken::from_value(init.agent_token.expose()),
            introspect: Arc::clone(init.introspect),
            pipeline: Arc::clone(init.pipeline),
            store: init.monitor.store.clone(),
            audit: Arc::clone(&init.monitor.audit),
            monitor: init.monitor,
        };
        Self { inner: Arc::new(inner) }
    }

    /// The shared redactor, for the tasks that write with it.
    pub(super) fn redactor(&self) -> &SharedRedactor {
        &self.inner.redactor
    }

    /// Records the running config's hash in `kv` (at start).
    pub(super) async fn record_running(&self, config: &Config) {
        record_hash(&self.inner.store, config.source.sha256(), &[]).await;
        record_supervised_start(&self.inner.store, config).await;
    }

    /// Re-reads the config file and every credential source, and applies
    /// them (see the module docs). The outcome, either way, is logged,
    /// audited and recorded in `<state>/reload.json`.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let inner = &self.inner;
        let mut running = inner.running.lock().await;
        let started = SystemTime::now();
        let old = Arc::clone(&running);
        let result = match self.prepare(&old).await {
            Ok(prepared) => {
                let (report, applied) = self.apply(&old, prepared).await;
                *running = Arc::new(applied);
                Ok(report)
            }
            Err((err, new_sha)) => {
                tracing::error!(error = %err, "reload refused; the running config stays in use");
                audit_refused(inner, &old, new_sha.as_deref(), &err, started).await;
                Err(err)
            }
        };
        let status = match &result {
            Ok(report) => serde_json::json!({ "at_ms": unix_ms(started), "ok": true, "report": report }),
            Err(err) => serde_json::json!({
                "at_ms": unix_ms(started),
                "ok": false,
                "kind": err.kind(),
                "error": err.to_string(),
                "problems": err.problems(),
            }),
        };
        if let Err(err) = write_private(&old.state.reload_status_path(), &format!("{status}\n")) {
            tracing::warn!(error = %err, "could not record the reload outcome");
        }
        result
    }

    /// Step 1: everything that can fail, before anything changes. On error,
    /// also the new file's hash when it could be read.
    async fn prepare(&self, old: &Config) -> Result<Prepared, (ReloadError, Option<String>)> {
        let path = &old.source_path;
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) => {
                let err = config::ConfigError::io(path, err);
                return Err((ReloadError::Invalid { problems: config_problems(path, &err) }, None));
            }
        };
        let new_sha = config::sha256_hex(text.as_bytes());
        let fail = |err: ReloadError| (err, Some(new_sha.clone()));
        let parsed = config::parse(&text, path)
            .map_err(|err| fail(ReloadError::Invalid { problems: config_problems(path, &err) }))?;
        let restart_needed = restart_needed(old.source.text(), &text);
        let config = keep_restart_sections(parsed, old);
        let secrets = Secrets::resolve(&config).await.map_err(|err| fail(err.into()))?;
        monitor::build_sinks(&config, &secrets).map_err(|err| fail(ReloadError::Build(err.to_string())))?;
        let live =
            self.inner.pipeline.prepare_config(&config).map_err(|err| fail(ReloadError::Build(err.to_string())))?;
        Ok(Prepared {
            sections_changed: sections_changed(old.source.text(), &text),
            restart_needed,
            config,
            secrets,
            live,
        })
    }

    /// Steps 2 and 3: swaps in `prepared` and records it. Returns the report
    /// and the config now running.
    async fn apply(&self, old: &Config, prepared: Prepared) -> (ReloadReport, Config) {
        let inner = &self.inner;
        let Prepared { config, secrets: fresh, live, sections_changed, restart_needed } = prepared;
        let previous = inner.secrets.load_full();
        let changed: Vec<String> = fresh
            .names()
            .filter(|name| fresh.fingerprint(name) != previous.fingerprint(name))
            .map(str::to_owned)
            .collect();
        let fresh = fresh.retain_retired(&previous);
        inner.redactor.store(Arc::new(fresh.redactor(&inner.agent_token, &config.redaction)));
        super::warm_up_redactor(&inner.audit);
        let credentials = fresh.credential_count(&config);
        let alert_references = fresh.names().count() - credentials;
        let retired = fresh.retired_count();
        inner.secrets.store(Arc::new(fresh));
        inner.pipeline.swap_config(live);
        self.restart_monitor(&config).await;
        let report = ReloadReport {
            credentials,
            alert_references,
            changed,
            retired,
            config_sha256_old: old.source.sha256().to_owned(),
            config_sha256_new: config.source.sha256().to_owned(),
            sections_changed,
            restart_needed,
        };
        tracing::info!(
            old = %report.config_sha256_old,
            new = %report.config_sha256_new,
            sections = %report.sections_changed.join(", "),
            credentials_changed = %report.changed.join(", "),
            restart_needed = %report.restart_needed.join(", "),
            "config reloaded"
        );
        if !report.restart_needed.is_empty() {
            tracing::warn!(keys = %report.restart_needed.join(", "), "restart needed to apply these keys; they keep their running values");
        }
        log_expiry_findings(&config, &inner.secrets.load(), SystemTime::now());
        inner.introspect.notify_one();
        record_hash(&inner.store, config.source.sha256(), &report.restart_needed).await;
        record_supervised_start(&inner.store, &config).await;
        audit_reloaded(inner, &config, &report).await;
        (report, config)
    }

    /// Starts monitoring on `config`, then stops the old one. When the new
    /// one cannot start (its sinks were built in `prepare`, so this is not
    /// expected), the old one keeps running and the failure is logged.
    async fn restart_monitor(&self, config: &Config) {
        let slot = &self.inner.monitor;
        let next = slot.shutdown.child_token();
        let init = MonitorInit {
            config,
            secrets: Arc::clone(&self.inner.secrets),
            store: slot.store.clone(),
            audit: Arc::clone(&slot.audit),
            metrics: Arc::clone(&slot.metrics),
            redactor: Arc::clone(&self.inner.redactor),
            events: &slot.events,
        };
        match monitor::start(init, &slot.tracker, &next).await {
            Ok(()) => {
                let old = match slot.current.lock() {
                    Ok(mut current) => std::mem::replace(&mut *current, next),
                    Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), next),
                };
                old.cancel();
            }
            Err(err) => {
                next.cancel();
                tracing::error!(error = %err, "monitoring could not start on the new config; the previous alerts and sinks stay in use");
            }
        }
    }
}

/// What `prepare` built, ready to swap in.
struct Prepared {
    /// The new config, with the restart sections kept at their running values.
    config: Config,
    /// Its credential and alert references, resolved.
    secrets: Secrets,
    /// Its pipeline snapshot.
    live: crate::pipeline::LiveConfig,
    /// Top-level sections whose text changed.
    sections_changed: Vec<String>,
    /// Changed keys of [`RESTART_SECTIONS`].
    restart_needed: Vec<String>,
}

/// `new` with the [`RESTART_SECTIONS`] of `running`: they are not applied
/// until a restart.
fn keep_restart_sections(new: Config, running: &Config) -> Config {
    Config {
        agent: running.agent.clone(),
        gateway: running.gateway.clone(),
        state: running.state.clone(),
        store: running.store.clone(),
        logging: running.logging.clone(),
        backup: running.backup.clone(),
        mcp: running.mcp.clone(),
        ..new
    }
}

/// Every problem of `err`, one line each: `file:line:column: message (help)`.
fn config_problems(path: &std::path::Path, err: &config::ConfigError) -> Vec<String> {
    err.errors()
        .map(|e| {
            let at = match e.line_col() {
                Some((line, col)) => format!("{}:{line}:{col}", path.display()),
                None => path.display().to_string(),
            };
            match e.help_text() {
                Some(help) => format!("{at}: {} ({help})", e.message()),
                None => format!("{at}: {}", e.message()),
            }
        })
        .collect()
}

/// The top-level tables of a config text (empty when it does not parse:
/// only valid texts reach here).
fn tables(text: &str) -> toml::Table {
    text.parse::<toml::Table>().unwrap_or_default()
}

/// Top-level sections whose value differs between `old` and `new` (added
/// or removed included), sorted.
pub fn sections_changed(old: &str, new: &str) -> Vec<String> {
    let (old, new) = (tables(old), tables(new));
    let mut names: Vec<String> = old.keys().chain(new.keys()).filter(|k| old.get(*k) != new.get(*k)).cloned().collect();
    names.sort();
    names.dedup();
    names
}

/// Keys of [`RESTART_SECTIONS`] whose value differs between `old` and
/// `new`, as `section.key` (the section alone when it was added or removed).
pub fn restart_needed(old: &str, new: &str) -> Vec<String> {
    let (old, new) = (tables(old), tables(new));
    let mut keys = Vec::new();
    for section in RESTART_SECTIONS {
        match (old.get(section), new.get(section)) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => {
                let mut changed: Vec<String> = a
                    .keys()
                    .chain(b.keys())
                    .filter(|k| a.get(*k) != b.get(*k))
                    .map(|k| format!("{section}.{k}"))
                    .collect();
                changed.sort();
                changed.dedup();
                keys.extend(changed);
            }
            (a, b) if a != b => keys.push(section.to_owned()),
            _ => {}
        }
    }
    keys
}

/// Records the running hash (and what waits for a restart) for `status` and `doctor`.
async fn record_hash(store: &Store, sha256: &str, restart_needed: &[String]) {
    let now = unix_ms(SystemTime::now());
    let mut result = store.kv_set(CONFIG_SHA256_KEY, sha256, now).await;
    if result.is_ok() {
        result = if restart_needed.is_empty() {
            store.kv_delete(RESTART_NEEDED_KEY).await
        } else {
            store.kv_set(RESTART_NEEDED_KEY, &restart_needed.join(","), now).await
        };
    }
    if let Err(err) = result {
        tracing::warn!(error = %err, "could not record the running config's hash; `steward status` will not show it");
    }
}

/// With `[supervised] enabled = true`, records the first supervised start
/// (`kv` `supervised.since`, kept once written): the readiness verdict
/// counts supervised days from it. At start and after every reload, so
/// supervised mode turned on by a reload counts too.
async fn record_supervised_start(store: &Store, config: &Config) {
    if !config.supervised.enabled {
        return;
    }
    if let Err(err) = crate::supervision::record_start(store, unix_ms(SystemTime::now())).await {
        tracing::warn!(error = %err, "could not record the start of supervised mode; `steward report` counts from a later start");
    }
}

/// The audit line of a reload (`door = "config"`, `phase = "reload"`).
fn reload_line(config: &Config, decision: &str, reason: Option<String>, started: SystemTime) -> AuditRecord {
    AuditRecord {
        ts: crate::clock::format_ts(started),
        call_id: uuid::Uuid::now_v7().to_string(),
        agent: config.agent.name.clone(),
        door: "config".to_owned(),
        tool: None,
        upstream: String::new(),
        method: "RELOAD".to_owned(),
        path: config.source_path.display().to_string(),
        input_summary: String::new(),
        input_sha256: String::new(),
        decision: decision.to_owned(),
        phase: Phase::Reload,
        reason,
        status: None,
        duration_ms: u64::try_from(started.elapsed().unwrap_or_default().as_millis()).unwrap_or(u64::MAX),
        attempts: 0,
        extra: serde_json::Map::new(),
    }
}

/// Audits an applied reload.
async fn audit_reloaded(inner: &Inner, config: &Config, report: &ReloadReport) {
    let mut line = reload_line(config, "reloaded", None, SystemTime::now());
    line.input_sha256.clone_from(&report.config_sha256_new);
    line.extra.insert("config_sha256_old".into(), report.config_sha256_old.clone().into());
    line.extra.insert("config_sha256_new".into(), report.config_sha256_new.clone().into());
    line.extra.insert("sections_changed".into(), report.sections_changed.clone().into());
    line.extra.insert("restart_needed".into(), report.restart_needed.clone().into());
    line.extra.insert("credentials_changed".into(), report.changed.clone().into());
    if let Err(err) = inner.audit.write(&line).await {
        tracing::error!(error = %err, "could not audit the config reload");
    }
}

/// Audits a refused reload: the running hash stays, the refused one is named.
async fn audit_refused(inner: &Inner, running: &Config, new_sha: Option<&str>, err: &ReloadError, started: SystemTime) {
    let mut line = reload_line(running, "reload_refused", Some(err.to_string()), started);
    line.extra.insert("config_sha256_old".into(), running.source.sha256().into());
    line.extra.insert("config_sha256_new".into(), new_sha.map_or(serde_json::Value::Null, Into::into));
    if let Err(err) = inner.audit.write(&line).await {
        tracing::error!(error = %err, "could not audit the refused config reload");
    }
}

/// The running daemon's config against the file on disk, as `steward
/// status` and `steward doctor` show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigDrift {
    /// SHA-256 of the file on disk now.
    pub file_sha256: String,
    /// SHA-256 of the file the daemon runs (`None`: it recorded none).
    pub running_sha256: Option<String>,
    /// Whether the file on disk is not the one the daemon runs: an edit
    /// not yet reloaded (`steward reload` applies it).
    pub differs: bool,
    /// Keys changed in the running file that wait for a restart.
    pub restart_needed: Vec<String>,
}

/// What the daemon recorded about the config it runs, against `on_disk`
/// (the config as loaded from the file now). Call it only while a daemon
/// runs: otherwise the record is history, and the next start reads the file.
pub async fn config_drift(store: &Store, on_disk: &Config) -> ConfigDrift {
    let running_sha256 = store.kv_get(CONFIG_SHA256_KEY).await.ok().flatten();
    let restart_needed = store
        .kv_get(RESTART_NEEDED_KEY)
        .await
        .ok()
        .flatten()
        .map(|keys| keys.split(',').filter(|k| !k.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let file_sha256 = on_disk.source.sha256().to_owned();
    ConfigDrift {
        differs: running_sha256.as_deref() != Some(file_sha256.as_str()),
        file_sha256,
        running_sha256,
        restart_needed,
    }
}

#[cfg(test)]
mod tests {
    use super::{restart_needed, sections_changed};

    const BASE: &str = "[agent]\nname = \"a\"\n\n[gateway]\nlisten = \"127.0.0.1:7600\"\n\n[[tools]]\nname = \"t\"\nlimit = \"1/hour\"\n";

    #[test]
    fn sections_changed_names_each_top_level_section_whose_text_differs() {
        let edited = BASE.replace("1/hour", "2/hour");
        assert_eq!(sections_changed(BASE, &edited), ["tools"]);
        assert_eq!(sections_changed(BASE, BASE), Vec::<String>::new());
        // A comment or whitespace is no change; a new section is one.
        assert_eq!(sections_changed(BASE, &format!("# note\n{BASE}\n")), Vec::<String>::new());
        assert_eq!(sections_changed(BASE, &format!("{BASE}\n[spend]\ndaily_cap_usd = 1.0\n")), ["spend"]);
    }

    #[test]
    fn restart_needed_names_the_changed_keys_of_the_sections_bound_at_start() {
        let listen = BASE.replace("127.0.0.1:7600", "127.0.0.1:7601").replace("1/hour", "2/hour");
        assert_eq!(restart_needed(BASE, &listen), ["gateway.listen"]);
        let agent = BASE.replace("name = \"a\"", "name = \"a\"\ncommand = [\"x\"]\nnetwork = \"none\"");
        assert_eq!(restart_needed(BASE, &agent), ["agent.command", "agent.network"]);
        assert_eq!(restart_needed(BASE, &format!("{BASE}\n[state]\ndir = \"/srv\"\n")), ["state"]);
        assert_eq!(restart_needed(BASE, &BASE.replace("1/hour", "9/hour")), Vec::<String>::new());
    }
}
