//! `steward doctor`: the production checklist, scored item by item against
//! the config, the credentials, the files on disk and the store.
//!
//! The checklist is a list of independent section checks ([`SECTIONS`]),
//! one function each, in one file each: `credentials`, `logging` (with its
//! disk items in `disk`), `rate_limiting`, `monitoring`, `backups`,
//! `runbook`, `sandbox` (the agent's box), `running_config` (the daemon
//! runs the file on disk), `first_week` (supervised mode), `dashboard`,
//! `mcp` (tool pins and the servers' states), and
//! `not_configured` for what is not set up (backups without `[backup]`). A
//! check only reads the prepared [`Context`]; the slow or fallible gathering
//! (resolving credentials, probing the store) happens once, in [`gather`].
//!
//! Every non-pass result carries a one-line fix. Details never hold secret
//! values, and hold no times or absolute paths where avoidable, so the
//! output of one setup is stable from run to run.

mod backups;
mod credentials;
mod dashboard;
mod disk;
mod first_week;
mod git_scan;
mod logging;
mod mcp;
mod monitoring;
mod not_configured;
mod rate_limiting;
mod runbook;
mod running_config;
mod sandbox;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use crate::config::Config;
use crate::secrets::introspect::{introspected_upstreams, load_record};
use crate::secrets::{IntrospectionRecord, Resolution, Secrets};
use crate::store::Store;

pub use disk::{DEFAULT_AUDIT_BYTES_PER_CALL, DEFAULT_STORE_BYTES_PER_CALL, DiskProbe, ObservedRate};
pub use git_scan::{MAX_SCANNED_FILE_BYTES, ScanOutcome, TrackedSecret, scan_tracked_files};
pub use mcp::McpProbe;
pub use sandbox::NamespaceProbe;

/// Outcome of one checklist item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The item holds.
    Pass,
    /// It holds only partly, or cannot be verified: worth fixing before production.
    Warn,
    /// It does not hold: fix it before production.
    Fail,
}

impl Status {
    /// `PASS`, `WARN` or `FAIL`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One checklist item: the stable JSON shape of `steward doctor --json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckResult {
    /// Checklist section, such as `Credentials`.
    pub section: &'static str,
    /// The item inside the section, stable across releases (scripts match on it).
    pub item: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found, in one line.
    pub detail: String,
    /// How to fix it, in one line; `None` exactly when the item passes.
    pub fix: Option<String>,
}

impl CheckResult {
    /// A passing item.
    pub fn pass(section: &'static str, item: &'static str, detail: impl Into<String>) -> Self {
        Self { section, item, status: Status::Pass, detail: detail.into(), fix: None }
    }

    /// An item that holds only partly or cannot be verified.
    pub fn warn(section: &'static str, item: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { section, item, status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }

    /// An item that does not hold.
    pub fn fail(section: &'static str, item: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { section, item, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// What the store looked like when doctor probed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreProbe {
    /// The state directory does not exist yet (steward never ran here).
    Missing,
    /// A write transaction went through.
    Writable,
    /// Opening or writing failed; the error, for the detail line.
    Failed(String),
}

/// Everything the checks read, gathered once.
#[derive(Debug)]
pub struct Context<'a> {
    /// The validated config.
    pub config: &'a Config,
    /// The moment the checks are scored at (expiry is relative to it).
    pub now: SystemTime,
    /// Every credential resolved (values stay in memory only), with every problem.
    pub resolution: Resolution,
    /// Whether a call could be journaled now.
    pub store: StoreProbe,
    /// Recorded backup outcomes, when `[backup]` is configured and the store readable.
    pub backup_health: Option<crate::backup::BackupHealth>,
    /// The last `steward alerts test`, when one was recorded.
    pub alerts_test: Option<crate::monitor::AlertsTestRecord>,
    /// The latest token-introspection outcome of each upstream with an
    /// `introspection_url` that the daemon has checked.
    pub introspection: BTreeMap<String, IntrospectionRecord>,
    /// The last page `steward runbook` wrote, when one was recorded.
    pub runbook: Option<RunbookProbe>,
    /// What the kernel allows for the agent's box.
    pub namespaces: NamespaceProbe,
    /// The disk the store and logs use, the call rate, the free space.
    pub disk: DiskProbe,
    /// The running daemon's config against the file; `None` when no daemon runs.
    pub running_config: Option<crate::daemon::ConfigDrift>,
    /// Supervised mode's records, when the store is readable.
    pub supervision: Option<crate::supervision::SupervisionState>,
    /// The MCP tool pins and the servers' states, when the store is readable.
    pub mcp: Option<McpProbe>,
}

/// The recorded runbook page, judged against the config file and the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookProbe {
    /// What `steward runbook` recorded.
    pub record: crate::runbook::RenderedRecord,
    /// Whether it still describes the deployment.
    pub freshness: crate::runbook::Freshness,
}

impl RunbookProbe {
    /// Judges `record` against the config file at `config_path` as it is
    /// now (an unreadable file counts as changed) and the page's own file.
    pub fn probe(record: crate::runbook::RenderedRecord, config_path: &Path) -> Self {
        let current = std::fs::read(config_path).ok().map(|bytes| crate::runbook::config_sha256(&bytes));
        let freshness = record.freshness(current.as_deref(), record.path.is_file());
        Self { record, freshness }
    }
}

/// A section check: reads the context, returns its items in a fixed order.
pub type SectionCheck = fn(&Context<'_>) -> Vec<CheckResult>;

/// The checklist, in the order it is shown. Add a section by adding its function.
pub const SECTIONS: &[SectionCheck] = &[
    credentials::check,
    logging::check,
    rate_limiting::check,
    monitoring::check,
    backups::check,
    runbook::check,
    sandbox::check,
    running_config::check,
    first_week::check,
    dashboard::check,
    mcp::check,
];

/// The scored checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every item, grouped by section, in checklist order.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// The worst status in the report.
    pub fn worst(&self) -> Status {
        self.checks.iter().map(|c| c.status).max().unwrap_or(Status::Pass)
    }

    /// How many items have `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

/// Resolves credentials and probes the store: the part of doctor that does I/O.
pub async fn gather(config: &Config, now: SystemTime) -> Context<'_> {
    let resolution = Secrets::resolve_all(config).await;
    let url = crate::secrets::store_url(config).await.ok().flatten();
    let (store, opened) = probe_store(config, url.as_ref().map(secrecy::ExposeSecret::expose_secret)).await;
    let backup_health = match (&config.backup, &opened) {
        (Some(_), Some(opened)) => crate::backup::health(opened, crate::clock::unix_ms(now)).await.ok(),
        _ => None,
    };
    let alerts_test = match &opened {
        Some(opened) => opened
            .kv_get(crate::monitor::LAST_TEST_KEY)
            .await
            .ok()
            .flatten()
            .and_then(|json| serde_json::from_str(&json).ok()),
        None => None,
    };
    let mut introspection = BTreeMap::new();
    if let Some(opened) = &opened {
        for upstream in introspected_upstreams(config) {
            if let Some(record) = load_record(opened, upstream).await {
                introspection.insert(upstream.to_owned(), record);
            }
        }
    }
    let runbook = match &opened {
        Some(opened) => crate::runbook::last_rendered(opened).await.ok().flatten(),
        None => None,
    }
    .map(|record| RunbookProbe::probe(record, &config.source_path));
    let supervision = match &opened {
        Some(opened) => crate::supervision::read(opened).await.ok(),
        None => None,
    };
    let mcp = match &opened {
        Some(opened) if !config.mcp.is_empty() => {
            let daemon = crate::state_dir::running_pid(&config.state.dir).is_some();
            let pins = crate::store::pins::all(opened).await.ok().unwrap_or_default();
            let servers = if daemon { crate::store::mcp_servers::all(opened).await.ok() } else { None };
            Some(McpProbe { pins: pins.into_iter().map(|(s, t, p)| (s, t, p.changed())).collect(), servers })
        }
        _ => None,
    };
    let namespaces = NamespaceProbe::read();
    let disk = DiskProbe::gather(config, opened.as_ref(), now).await;
    let running_config = match (&opened, crate::state_dir::running_pid(&config.state.dir)) {
        (Some(opened), Some(_)) => Some(crate::daemon::config_drift(opened, config).await),
        _ => None,
    };
    Context {
        config,
        now,
        resolution,
        store,
        backup_health,
        alerts_test,
        introspection,
        runbook,
        namespaces,
        disk,
        running_config,
        supervision,
        mcp,
    }
}

/// Runs every section check on `ctx`.
pub fn score(ctx: &Context<'_>) -> Report {
    Report { checks: SECTIONS.iter().flat_map(|section| section(ctx)).collect() }
}

/// [`gather`] then [`score`].
pub async fn run(config: &Config, now: SystemTime) -> Report {
    let ctx = gather(config, now).await;
    score(&ctx)
}

/// Opens the store `config` names and writes its probe row; the store
/// when that worked.
async fn probe_store(config: &Config, url: Option<&str>) -> (StoreProbe, Option<Store>) {
    if !config.state.dir.is_dir() {
        return (StoreProbe::Missing, None);
    }
    // Opening creates the database in an existing state dir, which is what
    // `steward run` would do first anyway.
    let store = match Store::open_configured(config, url, read_only_redactor()).await {
        Ok(store) => store,
        Err(err) => return (StoreProbe::Failed(err.to_string()), None),
    };
    match store.check_writable().await {
        Ok(()) => (StoreProbe::Writable, Some(store)),
        Err(err) => (StoreProbe::Failed(err.to_string()), None),
    }
}

/// Doctor only reads the store (and writes an empty probe transaction):
/// any free text it wrote would be withheld whole, never stored unchecked.
fn read_only_redactor() -> crate::redaction::SharedRedactor {
    crate::redaction::shared(redact::Redactor::withhold_all())
}

/// `names` joined with ", ", at most `max` of them, then "and N more".
fn list(names: &[String], max: usize) -> String {
    let mut shown = names.iter().take(max).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > max {
        shown.push_str(&format!(" and {} more", names.len() - max));
    }
    shown
}

#[cfg(test)]
mod tests;
