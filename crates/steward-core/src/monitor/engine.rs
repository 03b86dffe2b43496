//! The alert engine: which conditions are true now, and which notices that
//! makes.
//!
//! # Rules
//! | key | condition | severity |
//! | --- | --- | --- |
//! | `agent_down` | the agent has been down ([`Event::AgentDown`]) for `agent_down_after` | critical |
//! | `error_rate` | over the last hour, at least `error_rate_min_calls` calls were judged and more than `error_rate_percent`% failed ([`Store::error_counts_in`] and [`crate::decision::ErrorWeight`] define both) | warning |
//! | `spend_threshold` | today's committed spend ≥ `[spend] alert_at_usd` | warning |
//! | `spend_cap` | today's committed spend ≥ the cap: every LLM call is refused | critical |
//! | `spend_call_refused` | within [`CALL_REFUSED_HOLD`], an LLM call was refused because its worst case did not fit under the cap, while spend is below it (other calls still pass) | warning |
//! | `spend_overrun` | a call used more than its reservation today (a provider streamed past `max_tokens`, reported absurd counts...), so priced calls are stopped for the day ([`Store::spend_stop`]) | critical |
//! | `usage_model_mismatch` | a response today named another model than requested, priced differently (billed at the dearer price) | warning |
//! | `kill_switch` | the kill switch is engaged (`steward stop`, any source but the loop breaker) | critical |
//! | `loop_breaker` | the loop breaker engaged the kill switch | critical |
//! | `crash_loop` | the supervisor gave up on a crash-looping agent (event, or `kv` `supervisor.fatal`) | critical |
//! | `audit_write` | an audit write failed since the last evaluation, or the audit log is unhealthy | critical |
//! | `store_write` | a journal write failed since the last evaluation, or the store refuses an empty write | critical |
//! | `credential_expiry:NAME` | the credential expires within one of `[policy] expiry_warning_days` (a new notice at each threshold crossed), or has expired | warning; critical once expired |
//! | `backup_failed` | the most recent backup attempt failed | warning |
//! | `backup_overdue` | no successful backup for [`MAX_BACKUP_AGE_MS`](crate::backup::health::MAX_BACKUP_AGE_MS) (26 h), counted from when backups were first watched | critical |
//! | `undo_failed` | an operator's undo failed (the upstream answered 5xx or another error, was unreachable, or steward refused it) and was not retried successfully since ([`Event::UndoFailed`], and the store's failed undos) | critical |
//! | `mcp_tool_changed` | an MCP server changed the definition of a pinned tool and nobody ran `steward mcp trust` since (`kv` `mcp.pin.*`, [`Event::McpToolChanged`]) | critical |
//! | `restore_test` | the last restore test failed, or none passed for [`MAX_RESTORE_TEST_AGE_MS`](crate::backup::health::MAX_RESTORE_TEST_AGE_MS) (8 days) | warning |
//!
//! Conditions are re-evaluated every [`EVAL_EVERY`] and right after any bus
//! event. Everything the engine needs to decide is polled (kill switch, `kv`,
//! journal counts, spend, audit health), so a kill switch engaged by
//! `steward stop` in another process, or an event lost to a lagging
//! receiver, is still noticed. Events only make it faster, and make
//! failures that heal within one interval (a failed audit write) visible.
//!
//! # Notices, grouping, persistence
//! Notices are grouped by rule key: one incident per key. The first
//! evaluation that finds a condition sends a `firing` notice; while it holds,
//! a reminder goes out every `repeat_every`; once it clears, one `resolved`
//! notice. A symptom of another firing condition does not open its own
//! incident: `agent_down` is not raised while `crash_loop`, `kill_switch` or
//! `loop_breaker` fires (they say why the agent is down). An incident that
//! is already open when its cause appears stays open, so nobody gets a
//! misleading "resolved".
//!
//! Some conditions move through stages (a credential 14, 7, 3, 1 days before
//! expiry, then expired): a new stage sends a fresh notice at once, while
//! the same stage is not repeated at `repeat_every` when the finding says so
//! (a 14-day warning every four hours would be noise, not a warning).
//!
//! The open incidents (since, last sent, reminders) live in `kv` under
//! [`STATE_KEY`] and are written on every change, so a restarted steward
//! neither re-sends open incidents before `repeat_every` nor forgets to
//! resolve one that cleared while it was down. The same value keeps the
//! history of alerts fired (each new incident or stage, not reminders) for
//! [`FIRED_HISTORY_KEEP`], which `steward report` counts ([`read_fired`]).
//!
//! Time is always a parameter ([`Engine::evaluate`]) or a [`Clock`], so
//! tests inject it.

mod conditions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use arc_swap::ArcSwap;

use super::{Alert, AlertStatus, Dispatcher, Metrics, Severity};
use crate::audit::AuditLog;
use crate::backup::health::{BackupHealth, KV_WATCHED_SINCE};
use crate::clock::unix_ms;
use crate::config::{AlertsConfig, Config, SpendConfig};
use crate::events::Event;
use crate::redaction::SharedRedactor;
use crate::secrets::Secrets;
use crate::store::Store;

/// `kv` key of the open incidents.
pub const STATE_KEY: &str = "alerts.state";
/// How often conditions are polled when no event arrives: well under
/// `agent_down_after`'s default, and a handful of indexed reads each time.
pub const EVAL_EVERY: Duration = Duration::from_secs(5);
/// The error-rate rule looks this far back.
pub const ERROR_RATE_WINDOW: Duration = Duration::from_secs(3600);
/// How long the history of fired alerts ([`read_fired`]) keeps an entry:
/// long enough for `steward report` over a supervised month and more.
pub const FIRED_HISTORY_KEEP: Duration = Duration::from_secs(90 * 86_400);
/// Most entries the history keeps (the newest): bounds the `kv` value even
/// for a deployment whose alerts flap all quarter.
pub const FIRED_HISTORY_MAX: usize = 1_000;
/// How long `spend_call_refused` holds after the last such refusal: long
/// enough that a retrying agent does not make it flap, short enough that it
/// does not outlive the agent's attempts by a whole day.
pub const CALL_REFUSED_HOLD: Duration = Duration::from_secs(3600);

/// The rule keys, in the order conditions are evaluated.
pub mod rules {
    /// The agent is down.
    pub const AGENT_DOWN: &str = "agent_down";
    /// Too many calls fail.
    pub const ERROR_RATE: &str = "error_rate";
    /// Spend passed the alert threshold.
    pub const SPEND_THRESHOLD: &str = "spend_threshold";
    /// Spend reached the cap.
    pub const SPEND_CAP: &str = "spend_cap";
    /// A call used more than its reservation: priced calls stopped for the day.
    pub const SPEND_OVERRUN: &str = "spend_overrun";
    /// A response named another model than requested.
    pub const USAGE_MODEL_MISMATCH: &str = "usage_model_mismatch";
    /// A call's worst case did not fit under the cap (the cap is not reached).
    pub const SPEND_CALL_REFUSED: &str = "spend_call_refused";
    /// The kill switch is engaged.
    pub const KILL_SWITCH: &str = "kill_switch";
    /// The loop breaker stopped the agent.
    pub const LOOP_BREAKER: &str = "loop_breaker";
    /// The agent crash-loops.
    pub const CRASH_LOOP: &str = "crash_loop";
    /// The audit log cannot be written.
    pub const AUDIT_WRITE: &str = "audit_write";
    /// The store cannot be written.
    pub const STORE_WRITE: &str = "store_write";
    /// The last backup failed.
    pub const BACKUP_FAILED: &str = "backup_failed";
    /// No recent successful backup.
    pub const BACKUP_OVERDUE: &str = "backup_overdue";
    /// The restore test failed or is too old.
    pub const RESTORE_TEST: &str = "restore_test";
    /// An operator's undo failed: the original call is still in effect.
    pub const UNDO_FAILED: &str = "undo_failed";
    /// An MCP server changed a pinned tool's definition.
    pub const MCP_TOOL_CHANGED: &str = "mcp_tool_changed";
    /// Prefix of the per-credential expiry rule: `credential_expiry:NAME`.
    pub const CREDENTIAL_EXPIRY_PREFIX: &str = "credential_expiry:";
    /// Every built-in rule with a fixed key (the per-credential expiry keys
    /// are made from [`CREDENTIAL_EXPIRY_PREFIX`]).
    pub const ALL: &[&str] = &[
        AGENT_DOWN,
        ERROR_RATE,
        SPEND_THRESHOLD,
        SPEND_CAP,
        SPEND_OVERRUN,
        USAGE_MODEL_MISMATCH,
        SPEND_CALL_REFUSED,
        KILL_SWITCH,
        LOOP_BREAKER,
        CRASH_LOOP,
        AUDIT_WRITE,
        STORE_WRITE,
        BACKUP_FAILED,
        BACKUP_OVERDUE,
        RESTORE_TEST,
        UNDO_FAILED,
    ];
}

/// Where the engine's loop reads the time.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// One open incident, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleState {
    /// When the condition began, epoch ms.
    pub since_ms: i64,
    /// When the last notice went out, epoch ms.
    pub last_sent_ms: i64,
    /// Reminders sent so far.
    pub repeats: u32,
    /// The title of the last notice (the resolved notice repeats it).
    pub title: String,
    /// Its severity.
    pub severity: Severity,
    /// The stage of a staged condition (`7d`, `expired`): a new stage is a new notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// What `kv` [`STATE_KEY`] holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct PersistedState {
    /// Open incidents by rule key.
    firing: BTreeMap<String, RuleState>,
    /// The last LLM call refused by the spend cap (kept across a restart,
    /// so the warning does not resolve and fire again).
    #[serde(default)]
    call_refused: Option<CapRefusal>,
    /// The spend day and text of the last response that named another
    /// model: the incident holds for the rest of that day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model_mismatch: Option<(String, String)>,
    /// Every firing notice that opened an incident or a new stage of one
    /// (reminders aside), oldest first, for `steward report`: the open
    /// incidents above forget an alert once it resolves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fired: Vec<FiredAlert>,
}

/// An alert that fired, as `steward report` counts it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FiredAlert {
    /// Rule key.
    pub key: String,
    /// Its title then.
    pub title: String,
    /// Its severity then.
    pub severity: Severity,
    /// When the notice went out, epoch ms.
    pub at_ms: i64,
}

/// An LLM call the spend cap refused, as the refusal saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct CapRefusal {
    /// When, epoch ms.
    at_ms: i64,
    /// The day's committed spend then, micro-dollars.
    spent_micros: u64,
    /// The cap, micro-dollars.
    cap_micros: u64,
    /// The call's worst case, micro-dollars.
    reserve_micros: u64,
}

/// An open incident, for `steward status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FiringAlert {
    /// Rule key.
    pub key: String,
    /// Last title.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// When the condition began, epoch ms.
    pub since_ms: i64,
    /// When the last notice went out, epoch ms.
    pub last_sent_ms: i64,
}

/// The open incidents as persisted (by a running or a past daemon).
pub async fn read_firing(store: &Store) -> Result<Vec<FiringAlert>, crate::store::StoreError> {
    let state: PersistedState =
        store.kv_get(STATE_KEY).await?.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
    Ok(state
        .firing
        .into_iter()
        .map(|(key, s)| FiringAlert {
            key,
            title: s.title,
            severity: s.severity,
            since_ms: s.since_ms,
            last_sent_ms: s.last_sent_ms,
        })
        .collect())
}

/// The alerts that fired after `after_ms` (see [`FiredAlert`]), oldest
/// first, as persisted by a running or a past daemon. Kept for
/// [`FIRED_HISTORY_KEEP`], at most [`FIRED_HISTORY_MAX`] of them.
pub async fn read_fired(store: &Store, after_ms: i64) -> Result<Vec<FiredAlert>, crate::store::StoreError> {
    let state: PersistedState =
        store.kv_get(STATE_KEY).await?.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
    Ok(state.fired.into_iter().filter(|f| f.at_ms > after_ms).collect())
}

/// A condition found true.
#[derive(Debug, Clone)]
struct Finding {
    severity: Severity,
    title: String,
    message: String,
    /// When it began, if known better than "now".
    since_ms: Option<i64>,
    /// The stage of a staged condition; a change sends a notice at once.
    stage: Option<String>,
    /// Whether `repeat_every` reminders go out while it holds.
    remind: bool,
}

impl Finding {
    fn new(severity: Severity, title: impl Into<String>, message: impl Into<String>) -> Self {
        Self { severity, title: title.into(), message: message.into(), since_ms: None, stage: None, remind: true }
    }

    fn since(mut self, since_ms: i64) -> Self {
        self.since_ms = Some(since_ms);
        self
    }

    /// A staged finding; `remind` says whether the same stage is repeated at `repeat_every`.
    fn staged(mut self, stage: impl Into<String>, remind: bool) -> Self {
        self.stage = Some(stage.into());
        self.remind = remind;
        self
    }
}

/// What the credential-expiry rule reads: the config's credentials and
/// thresholds, and the values the daemon holds now (a reload swaps them).
struct ExpiryWatch {
    config: Arc<Config>,
    secrets: Arc<ArcSwap<Secrets>>,
}

/// Failures and trips announced by events since the last evaluation.
#[derive(Debug, Default)]
struct Pending {
    audit: Option<String>,
    store: Option<String>,
    loop_tool: Option<String>,
    kill: Option<(String, String)>,
    crash_exits: Option<u32>,
    /// An overrun announced by the bus, before the store's stop is read.
    overrun: Option<String>,
}

/// The alert engine of one daemon.
pub struct Engine {
    agent: String,
    alerts: AlertsConfig,
    spend: SpendConfig,
    store: Store,
    audit: Option<Arc<AuditLog>>,
    metrics: Arc<Metrics>,
    redactor: SharedRedactor,
    state: PersistedState,
    pending: Pending,
    /// Set by [`Engine::with_credentials`].
    expiry: Option<ExpiryWatch>,
    /// `[backup]` is configured: the backup rules apply.
    backups: bool,
    /// Since when backups are watched (`kv` [`KV_WATCHED_SINCE`]), read on first use.
    backups_watched_since: Option<i64>,
    /// Supervised mode's new requests, batched per tool per minute.
    approvals: super::approval_notices::ApprovalNotices,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("firing", &self.state.firing.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for `config`, resuming the incidents persisted in `store`.
    /// `audit` is watched for write failures when given.
    pub async fn load(
        config: &Config,
        store: Store,
        audit: Option<Arc<AuditLog>>,
        metrics: Arc<Metrics>,
        redactor: SharedRedactor,
    ) -> Self {
        let state = match store.kv_get(STATE_KEY).await {
            Ok(Some(text)) => serde_json::from_str(&text).unwrap_or_else(|err| {
                tracing::warn!(error = %err, "the persisted alert state is unreadable; starting with no open incident");
                PersistedState::default()
            }),
            Ok(None) => PersistedState::default(),
            Err(err) => {
                tracing::error!(error = %err, "cannot read the persisted alert state; starting with no open incident");
                PersistedState::default()
            }
        };
        for key in state.firing.keys() {
            metrics.set_alert_firing(key, true);
        }
        // Without `[backup]` the watch ends, so a `[backup]` added back later
        // starts a fresh one instead of counting the months backups were off.
        if config.backup.is_none()
            && let Err(err) = store.kv_delete(KV_WATCHED_SINCE).await
        {
            tracing::warn!(error = %err, "cannot end the backup watch of an earlier [backup] configuration");
        }
        Self {
            agent: config.agent.name.clone(),
            alerts: config.alerts.clone(),
            spend: config.spend.clone(),
            store,
            audit,
            metrics,
            redactor,
            state,
            pending: Pending::default(),
            expiry: None,
            backups: config.backup.is_some(),
            backups_watched_since: None,
            approvals: super::approval_notices::ApprovalNotices::for_config(config),
        }
    }

    /// Watches the expiry of `config`'s credentials, reading their current
    /// values (and so their JWT `exp`) from `secrets` at every evaluation.
    #[must_use]
    pub fn with_credentials(mut self, config: &Config, secrets: Arc<ArcSwap<Secrets>>) -> Self {
        self.expiry = Some(ExpiryWatch { config: Arc::new(config.clone()), secrets });
        self
    }

    /// The open incidents.
    pub fn firing(&self) -> Vec<FiringAlert> {
        self.state
            .firing
            .iter()
            .map(|(key, s)| FiringAlert {
                key: key.clone(),
                title: s.title.clone(),
                severity: s.severity,
                since_ms: s.since_ms,
                last_sent_ms: s.last_sent_ms,
            })
            .collect()
    }

    /// Takes in one bus event (metrics included); the next
    /// [`Engine::evaluate`] acts on it.
    pub fn observe(&mut self, event: &Event, now: SystemTime) {
        self.metrics.observe_event(event, unix_ms(now));
        self.approvals.observe(event);
        let redact = |text: &str| self.redactor.load().redact(text).into_owned();
        match event {
            Event::AuditWriteFailed { detail } => self.pending.audit = Some(redact(detail)),
            Event::StoreWriteFailed { detail } => self.pending.store = Some(redact(detail)),
            Event::LoopDetected { tool } => self.pending.loop_tool = Some(tool.clone()),
            Event::KillSwitchEngaged { reason, source } => self.pending.kill = Some((reason.clone(), source.clone())),
            Event::CrashLoop { exits } => self.pending.crash_exits = Some(*exits),
            Event::SpendCapHit { spent_micros, cap_micros, reserve_micros } => {
                self.state.call_refused = Some(CapRefusal {
                    at_ms: unix_ms(now),
                    spent_micros: *spent_micros,
                    cap_micros: *cap_micros,
                    reserve_micros: *reserve_micros,
                });
            }
            Event::SpendOverrun { reason, .. } => self.pending.overrun = Some(redact(reason)),
            Event::UsageModelMismatch { provider, requested, reported } => {
                let text = redact(&format!("provider `{provider}`, model `{requested}` requested: {reported}"));
                self.state.model_mismatch = Some((self.spend.day_of(now, 0), text));
            }
            _ => {}
        }
    }

    /// Evaluates every rule at `now` and returns the notices to send:
    /// firing and reminders sorted by rule key, then resolved ones. Open
    /// incidents are persisted when they change.
    pub async fn evaluate(&mut self, now: SystemTime) -> Vec<Alert> {
        let now_ms = unix_ms(now);
        let active = self.conditions(now, now_ms).await;
        let mut notices = Vec::new();
        let mut changed = false;
        for (key, finding) in &active {
            let repeat_ms = i64::try_from(self.alerts.repeat_every.as_millis()).unwrap_or(i64::MAX);
            match self.state.firing.get_mut(key.as_str()) {
                None => {
                    let since_ms = finding.since_ms.unwrap_or(now_ms).min(now_ms);
                    self.state.firing.insert(
                        key.clone(),
                        RuleState {
                            since_ms,
                            last_sent_ms: now_ms,
                            repeats: 0,
                            title: finding.title.clone(),
                            severity: finding.severity,
                            stage: finding.stage.clone(),
                        },
                    );
                    notices.push(self.notice(key, AlertStatus::Firing, finding, since_ms, now_ms, 0));
                    changed = true;
                }
                Some(open) if open.stage != finding.stage => {
                    open.last_sent_ms = now_ms;
                    open.repeats = 0;
                    open.title.clone_from(&finding.title);
                    open.severity = finding.severity;
                    open.stage.clone_from(&finding.stage);
                    let since = open.since_ms;
                    notices.push(self.notice(key, AlertStatus::Firing, finding, since, now_ms, 0));
                    changed = true;
                }
                Some(open) if finding.remind && now_ms.saturating_sub(open.last_sent_ms) >= repeat_ms => {
                    open.last_sent_ms = now_ms;
                    open.repeats += 1;
                    open.title.clone_from(&finding.title);
                    let (since, repeats) = (open.since_ms, open.repeats);
                    notices.push(self.notice(key, AlertStatus::Firing, finding, since, now_ms, repeats));
                    changed = true;
                }
                Some(_) => {}
            }
        }
        let cleared: Vec<String> =
            self.state.firing.keys().filter(|k| !active.contains_key(k.as_str())).cloned().collect();
        for key in cleared {
            if let Some(open) = self.state.firing.remove(&key) {
                let lasted = Duration::from_millis(u64::try_from(now_ms.saturating_sub(open.since_ms)).unwrap_or(0));
                let finding = Finding::new(
                    open.severity,
                    open.title.clone(),
                    format!("Resolved after {}: {}.", human_duration(lasted), open.title),
                );
                notices.push(self.notice(&key, AlertStatus::Resolved, &finding, open.since_ms, now_ms, open.repeats));
                changed = true;
            }
        }
        for key in rules::ALL {
            self.metrics.set_alert_firing(key, self.state.firing.contains_key(*key));
        }
        for notice in &notices {
            if notice.key.starts_with(rules::CREDENTIAL_EXPIRY_PREFIX) {
                self.metrics.set_alert_firing(&notice.key, notice.status == AlertStatus::Firing);
            }
        }
        for notice in notices.iter().filter(|n| n.status == AlertStatus::Firing && n.repeat == 0) {
            self.state.fired.push(FiredAlert {
                key: notice.key.clone(),
                title: notice.title.clone(),
                severity: notice.severity,
                at_ms: now_ms,
            });
        }
        if changed {
            let keep_after = now_ms.saturating_sub(i64::try_from(FIRED_HISTORY_KEEP.as_millis()).unwrap_or(i64::MAX));
            self.state.fired.retain(|f| f.at_ms > keep_after);
            let excess = self.state.fired.len().saturating_sub(FIRED_HISTORY_MAX);
            self.state.fired.drain(..excess);
            self.persist(now_ms).await;
        }
        notices.extend(self.approvals.due(&self.agent, now_ms));
        for notice in &notices {
            self.metrics.count_notice(&notice.key);
            match notice.status {
                AlertStatus::Firing => {
                    tracing::warn!(alert = %notice.key, title = %notice.title, repeat = notice.repeat, "alert firing");
                }
                AlertStatus::Resolved => tracing::info!(alert = %notice.key, title = %notice.title, "alert resolved"),
            }
        }
        notices
    }

    fn notice(
        &self,
        key: &str,
        status: AlertStatus,
        finding: &Finding,
        since_ms: i64,
        at_ms: i64,
        repeat: u32,
    ) -> Alert {
        Alert {
            key: key.to_owned(),
            status,
            severity: finding.severity,
            agent: self.agent.clone(),
            title: finding.title.clone(),
            message: finding.message.clone(),
            since_ms,
            at_ms,
            repeat,
            test: false,
        }
    }

    async fn persist(&self, now_ms: i64) {
        let Ok(text) = serde_json::to_string(&self.state) else { return };
        if let Err(err) = self.store.kv_set(STATE_KEY, &text, now_ms).await {
            tracing::error!(error = %err, "could not persist the alert state; a restart may repeat notices");
        }
    }

    /// Whether `key` may not open a new incident because `causes` explain it.
    fn suppressed(&self, key: &str, causes: &[&str], active: &BTreeMap<String, Finding>) -> bool {
        !self.state.firing.contains_key(key) && causes.iter().any(|c| active.contains_key(*c))
    }

    /// Evaluates every [`EVAL_EVERY`] and after every event, handing each
    /// notice to `dispatcher`, until `shutdown`.
    pub async fn run(
        mut self,
        mut events: broadcast::Receiver<Event>,
        dispatcher: Dispatcher,
        clock: Clock,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(EVAL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut bus_open = true;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
                received = events.recv(), if bus_open => match received {
                    Ok(event) => {
                        self.observe(&event, clock());
                        while let Ok(event) = events.try_recv() {
                            self.observe(&event, clock());
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(lost)) => {
                        tracing::warn!(lost, "the alert engine missed events; polled state still applies");
                    }
                    Err(broadcast::error::RecvError::Closed) => bus_open = false,
                },
            }
            for notice in self.evaluate(clock()).await {
                dispatcher.dispatch(notice);
            }
        }
    }
}

/// `health` without the records older than `watched_since`: they belong to
/// an earlier `[backup]` configuration, removed and later added back (its
/// watch was ended by [`Engine::load`]). Backups that were off for months
/// are not "overdue" the minute they are configured again, and a failure
/// or restore test from back then is not news: the new watch gets the same
/// grace as a fresh install.
fn forget_before(mut health: BackupHealth, watched_since: i64) -> BackupHealth {
    if health.last_success_ms.is_some_and(|ms| ms < watched_since) {
        health.last_success_ms = None;
        health.last_success_id = None;
    }
    if health.last_failure.as_ref().is_some_and(|(ms, _)| *ms < watched_since) {
        health.last_failure = None;
        health.failing = false;
    }
    if health.last_restore_test.is_some_and(|(ms, _)| ms < watched_since) {
        health.last_restore_test = None;
        health.last_restore_test_detail = None;
    }
    health
}

fn loop_finding(reason: &str) -> Finding {
    Finding::new(
        Severity::Critical,
        "The loop breaker stopped the agent",
        format!(
            "{reason}: the agent repeated the same call too often, so steward engaged the kill switch. Every \
             call is refused until an operator runs `steward resume`; `steward last` shows the loop."
        ),
    )
}

/// `45s`, `3m`, `2h 5m`, `1d 4h`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 if secs % 3600 >= 60 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}
