//! The rules of the alert engine: which conditions hold now. One function
//! per rule (or per rules decided by one fact: the kill switch's source
//! says whether it is `kill_switch` or `loop_breaker`), evaluated in the
//! order of [`rules::ALL`], so a rule that another explains (`agent_down`
//! during a crash loop) can see what already fired. Each reads what it
//! needs from the store, the metrics and the pending events, and adds its
//! [`Finding`] to `active`; a read that fails is logged and decides nothing.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::{
    CALL_REFUSED_HOLD, ERROR_RATE_WINDOW, Engine, Finding, forget_before, human_duration, loop_finding, rules,
};
use crate::agent_state::read_fatal;
use crate::backup::health::{BackupHealth, KV_WATCHED_SINCE, MAX_BACKUP_AGE_MS, MAX_RESTORE_TEST_AGE_MS};
use crate::clock::format_day;
use crate::monitor::Severity;
use crate::monitor::metrics::AgentSnapshot;
use crate::secrets::expiry_findings;
use crate::store::{KillState, UndoQuery, Window};

/// Conditions found true, by rule key.
type Active = BTreeMap<String, Finding>;

/// The rules read from state a fleet shares (its journal, spend ledger,
/// kill switch, undo plans): evaluated by every instance, notified by the
/// fleet's speaker only ([`crate::store::Store::speaks_for_fleet`]).
const FLEET_WIDE_RULES: &[&str] = &[
    rules::KILL_SWITCH,
    rules::ERROR_RATE,
    rules::SPEND_CAP,
    rules::SPEND_THRESHOLD,
    rules::SPEND_OVERRUN,
    rules::UNDO_FAILED,
];

/// `micros` as dollars, the way the spend rules quote them.
fn usd(micros: u64) -> String {
    crate::config::units::Usd::from_micros(micros).to_string()
}

impl Engine {
    /// Every rule at `now`.
    pub(super) async fn conditions(&mut self, now: SystemTime, now_ms: i64) -> Active {
        let mut active = BTreeMap::new();
        let kill = self.store_write(&mut active).await;
        self.audit_write(&mut active);
        self.kill_switch(kill, now_ms, &mut active);
        let agent = self.crash_loop(&mut active).await;
        self.agent_down(&agent, now_ms, &mut active);
        self.error_rate(now_ms, &mut active).await;
        let today = self.spend.day_of(now, 0);
        self.spend_limits(&today, now_ms, &mut active).await;
        self.spend_overrun(&today, &mut active).await;
        self.usage_model_mismatch(&today, &mut active);
        self.credential_expiry(now, &mut active);
        self.backups(now_ms, &mut active).await;
        self.undo_failed(&mut active).await;
        self.mcp_tool_changed(&mut active).await;
        // On a fleet, the rules over the shared state fire on one instance
        // (the fleet's speaker), not on each: one notice, not N.
        if !self.store.speaks_for_fleet(now_ms).await {
            for rule in FLEET_WIDE_RULES {
                active.remove(*rule);
            }
        }
        active
    }

    /// `mcp_tool_changed`: a pinned MCP tool's definition changed and is not
    /// trusted yet (the pins in `kv`, see `crate::mcp::pins`).
    async fn mcp_tool_changed(&mut self, active: &mut Active) {
        let changed = match crate::store::pins::changed(&self.store).await {
            Ok(changed) => changed,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the MCP tool pins for the mcp_tool_changed alert");
                return;
            }
        };
        let Some(first) = changed.first() else { return };
        let names: Vec<String> = changed.iter().map(|(server, tool, _)| format!("{server}/{tool}")).collect();
        active.insert(
            rules::MCP_TOOL_CHANGED.into(),
            Finding::new(
                Severity::Critical,
                "An MCP server changed a tool's definition: the tool is refused",
                format!(
                    "The definition (description or input schema) of {} changed since steward pinned it; a changed \
                     description can carry instructions for the agent. steward refuses and hides the tool. Review \
                     it with `steward mcp list`, then run `steward mcp trust {}` to accept it.",
                    names.join(", "),
                    first.0
                ),
            )
            .since(first.2),
        );
    }

    fn redact(&self, text: &str) -> String {
        self.redactor.load().redact(text).into_owned()
    }

    /// `store_write`: a journal write failed since the last evaluation, or
    /// the store refuses an empty write or the kill-switch read. Returns the
    /// kill switch, read here because its failure is a store problem too.
    async fn store_write(&mut self, active: &mut Active) -> Option<KillState> {
        let mut store_problem = self.pending.store.take();
        if let Err(err) = self.store.check_writable().await {
            store_problem = Some(self.redact(&err.to_string()));
        }
        let kill = match self.store.kill_state().await {
            Ok(kill) => Some(kill),
            Err(err) => {
                store_problem.get_or_insert_with(|| self.redact(&err.to_string()));
                None
            }
        };
        if let Some(detail) = store_problem {
            active.insert(
                rules::STORE_WRITE.into(),
                Finding::new(
                    Severity::Critical,
                    "steward cannot write its state store",
                    format!(
                        "{detail}. Calls are refused (fail closed) until the store is writable again; check the \
                         disk and `steward status`."
                    ),
                ),
            );
        }
        kill
    }

    /// `audit_write`: an audit write failed since the last evaluation, or
    /// the audit log is unhealthy.
    fn audit_write(&mut self, active: &mut Active) {
        let audit_unhealthy = self.audit.as_ref().is_some_and(|a| !a.is_healthy());
        let audit_problem = match (self.pending.audit.take(), audit_unhealthy) {
            (Some(detail), _) => Some(detail),
            (None, true) => Some("the audit log's last write failed".to_owned()),
            (None, false) => None,
        };
        if let Some(detail) = audit_problem {
            active.insert(
                rules::AUDIT_WRITE.into(),
                Finding::new(
                    Severity::Critical,
                    "steward cannot write the audit log",
                    format!(
                        "{detail}. Calls are refused (fail closed) while the audit log is not writable; check the \
                         log directory's disk and permissions."
                    ),
                ),
            );
        }
    }

    /// `kill_switch` or `loop_breaker`: the switch is engaged (read from the
    /// store, or announced on the bus), and its source says which; a loop
    /// announced on the bus fires `loop_breaker` before the store shows it.
    fn kill_switch(&mut self, kill: Option<KillState>, now_ms: i64, active: &mut Active) {
        let pending_kill = self.pending.kill.take();
        let pending_loop = self.pending.loop_tool.take();
        let engaged = kill
            .as_ref()
            .filter(|k| k.engaged)
            .map(|k| (k.reason.clone().unwrap_or_default(), k.source.clone().unwrap_or_default(), k.changed_ms));
        self.metrics.set_kill_switch(engaged.is_some());
        let engaged = engaged.or(pending_kill.map(|(reason, source)| (reason, source, now_ms)));
        match engaged {
            Some((reason, source, since)) if source == "loop_breaker" => {
                active.insert(rules::LOOP_BREAKER.into(), loop_finding(&reason).since(since));
            }
            Some((reason, source, since)) => {
                let by = if source.is_empty() { String::new() } else { format!(" by {source}") };
                active.insert(
                    rules::KILL_SWITCH.into(),
                    Finding::new(
                        Severity::Critical,
                        "Kill switch engaged: the agent is stopped",
                        format!(
                            "The kill switch was engaged{by}: {reason}. Every call is refused until an operator \
                             runs `steward resume`."
                        ),
                    )
                    .since(since),
                );
            }
            None => {}
        }
        if let Some(tool) = pending_loop
            && !active.contains_key(rules::LOOP_BREAKER)
        {
            active.insert(rules::LOOP_BREAKER.into(), loop_finding(&format!("loop detected: {tool}")));
        }
    }

    /// `crash_loop`: the supervisor gave up on a crash-looping agent (its
    /// metrics, its event, or its persisted hold in `agent_state`). Returns
    /// the agent's stats it read, which `agent_down` judges too.
    async fn crash_loop(&mut self, active: &mut Active) -> AgentSnapshot {
        // An unreadable record is treated as none: the crash-loop event still fires it.
        let fatal = read_fatal(&self.store).await.ok().flatten();
        let agent = self.metrics.agent();
        let pending_exits = self.pending.crash_exits.take();
        if agent.crash_loop || fatal.is_some() || pending_exits.is_some() {
            let exits = fatal
                .as_ref()
                .map(|f| f.exits.to_string())
                .or(pending_exits.map(|n| n.to_string()))
                .unwrap_or_else(|| "several".to_owned());
            let mut finding = Finding::new(
                Severity::Critical,
                "The agent is crash-looping and is no longer restarted",
                format!(
                    "The agent exited {exits} times right after starting, so steward stopped restarting it. \
                     Read `steward logs agent`, fix the cause, then run `steward resume`."
                ),
            );
            if let Some(since) = fatal.as_ref().map(|f| f.since_ms) {
                finding = finding.since(since);
            }
            active.insert(rules::CRASH_LOOP.into(), finding);
        }
        agent
    }

    /// `agent_down`: down for `agent_down_after`, unless a crash loop or the
    /// kill switch already says why.
    fn agent_down(&self, agent: &AgentSnapshot, now_ms: i64, active: &mut Active) {
        let down_after = i64::try_from(self.alerts.agent_down_after.as_millis()).unwrap_or(i64::MAX);
        if let Some(since) = agent.down_since_ms
            && now_ms.saturating_sub(since) >= down_after
            && !self.suppressed(
                rules::AGENT_DOWN,
                &[rules::CRASH_LOOP, rules::KILL_SWITCH, rules::LOOP_BREAKER],
                active,
            )
        {
            let down = Duration::from_millis(u64::try_from(now_ms - since).unwrap_or(0));
            active.insert(
                rules::AGENT_DOWN.into(),
                Finding::new(
                    Severity::Critical,
                    "The agent is not running",
                    format!(
                        "The agent has been down for {} (alert after {}). steward keeps restarting it with \
                         backoff; see `steward status` and `steward logs agent`.",
                        human_duration(down),
                        human_duration(self.alerts.agent_down_after)
                    ),
                )
                .since(since),
            );
        }
    }

    /// `error_rate`: over [`ERROR_RATE_WINDOW`], enough calls judged and too
    /// many failed (the store defines both).
    async fn error_rate(&self, now_ms: i64, active: &mut Active) {
        match self.store.error_counts_in(Window::ending_at(now_ms, ERROR_RATE_WINDOW)).await {
            Ok((judged, failed)) => {
                let percent = u64::from(self.alerts.error_rate_percent);
                if judged >= u64::from(self.alerts.error_rate_min_calls) && failed * 100 > percent * judged {
                    let rate = failed * 100 / judged.max(1);
                    active.insert(
                        rules::ERROR_RATE.into(),
                        Finding::new(
                            Severity::Warning,
                            format!("{rate}% of the agent's calls failed in the last hour"),
                            format!(
                                "{failed} of {judged} calls in the last hour failed (upstream 5xx, unreachable, \
                                 timed out, or refused for safety), above the {percent}% threshold. \
                                 `steward last --failed` shows them."
                            ),
                        ),
                    );
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot count failed calls for the error-rate alert"),
        }
    }

    /// The rules read from today's committed spend (read once, and fed to
    /// the spend gauges): `spend_cap`, `spend_call_refused`, `spend_threshold`.
    async fn spend_limits(&self, today: &str, now_ms: i64, active: &mut Active) {
        let cap = self.spend.daily_cap().map(|c| c.micros());
        let alert_at = self.spend.alert_at().map(|c| c.micros());
        match self.store.spend_total(today).await {
            Ok(spent) => {
                self.metrics.set_spend(spent, cap, alert_at);
                spend_cap(spent, cap, today, active);
                self.spend_call_refused(spent, cap, now_ms, active);
                spend_threshold(spent, alert_at, cap, today, active);
            }
            Err(err) => tracing::warn!(error = %err, "cannot read today's spend for the spend alerts"),
        }
    }

    /// `spend_call_refused`: within [`CALL_REFUSED_HOLD`], a call's worst
    /// case did not fit under the cap, while the cap itself is not reached.
    fn spend_call_refused(&self, spent: u64, cap: Option<u64>, now_ms: i64, active: &mut Active) {
        let hold_ms = i64::try_from(CALL_REFUSED_HOLD.as_millis()).unwrap_or(i64::MAX);
        if let Some(refused) = self.state.call_refused
            && now_ms.saturating_sub(refused.at_ms) < hold_ms
            && cap.is_some_and(|cap| spent < cap)
        {
            active.insert(
                rules::SPEND_CALL_REFUSED.into(),
                Finding::new(
                    Severity::Warning,
                    "An LLM call was refused: its worst case does not fit under the daily cap",
                    format!(
                        "A call's worst case ({}: its input plus max output tokens, priced) did not fit \
                         in the {} left under the {} daily cap ({} committed), so steward refused it. \
                         The cap is not reached: smaller calls still pass. Lower the call's max_tokens \
                         (max_completion_tokens), or raise [spend] daily_cap_usd.",
                        usd(refused.reserve_micros),
                        usd(refused.cap_micros.saturating_sub(refused.spent_micros)),
                        usd(refused.cap_micros),
                        usd(refused.spent_micros)
                    ),
                )
                .since(refused.at_ms),
            );
        }
    }

    /// `spend_overrun`: a call used more than its reservation today, so
    /// priced calls are stopped for the day (the store's stop, or the event
    /// announcing it).
    async fn spend_overrun(&mut self, today: &str, active: &mut Active) {
        let pending_overrun = self.pending.overrun.take();
        let stop = match self.store.spend_stop(today).await {
            Ok(stop) => stop.map(|s| (self.redact(&s.reason), Some(s.at_ms))),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the day's spend stop for the overrun alert");
                None
            }
        };
        if let Some((reason, at)) = stop.or(pending_overrun.map(|r| (r, None))) {
            let mut finding = Finding::new(
                Severity::Critical,
                "An LLM provider billed past the reserved output: LLM calls are stopped for today",
                format!(
                    "{reason}. The call was billed what the provider reported, and steward refuses every priced \
                     LLM call until the day ends in [spend] timezone. Check the provider's usage page, then run \
                     `steward resume` to allow LLM calls again."
                ),
            );
            if let Some(at) = at {
                finding = finding.since(at);
            }
            active.insert(rules::SPEND_OVERRUN.into(), finding);
        }
    }

    /// `undo_failed`: undos that failed and were not run again successfully
    /// (polled from the store, so an undo failed by another daemon run, or
    /// an event lost to a lagging receiver, still alerts; a successful
    /// retry resolves it).
    async fn undo_failed(&mut self, active: &mut Active) {
        let query = UndoQuery { failed_only: true, limit: 3, ..UndoQuery::default() };
        let failed = match self.store.undos(query).await {
            Ok(failed) => failed,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read failed undos for the undo_failed alert");
                return;
            }
        };
        let Some(newest) = failed.first() else { return };
        let ids: Vec<&str> = failed.iter().map(|r| r.call_id.as_str()).collect();
        let reason = self.redact(newest.reason.as_deref().unwrap_or("unknown"));
        active.insert(
            rules::UNDO_FAILED.into(),
            Finding::new(
                Severity::Critical,
                "An undo failed: the original call is still in effect",
                format!(
                    "The undo of call {} (tool `{}`) failed: {reason}. Failed undos: {}. Run `steward undo {}` again \
                     once the upstream is back, or undo it at the provider.",
                    newest.call_id,
                    newest.tool,
                    ids.join(", "),
                    newest.call_id
                ),
            )
            .since(newest.changed_ms),
        );
    }

    /// `usage_model_mismatch`: a response today named another model than
    /// requested; the incident holds for the rest of that spend day.
    fn usage_model_mismatch(&mut self, today: &str, active: &mut Active) {
        if let Some((day, text)) = &self.state.model_mismatch {
            if day == today {
                active.insert(
                    rules::USAGE_MODEL_MISMATCH.into(),
                    Finding::new(
                        Severity::Warning,
                        "An LLM response named another model than requested",
                        format!(
                            "{text}. The call was billed at the dearer of the two prices. If the provider routes \
                             requests to other models, pin the model or add its price under [prices.\"MODEL\"]."
                        ),
                    ),
                );
            } else {
                self.state.model_mismatch = None;
            }
        }
    }

    /// `credential_expiry:NAME` for every credential within a warning
    /// threshold or expired: one stage per threshold, so each crossing is
    /// one notice; reminders only once it has expired.
    fn credential_expiry(&self, now: SystemTime, active: &mut Active) {
        let Some(watch) = &self.expiry else { return };
        let secrets = watch.secrets.load();
        for found in expiry_findings(&watch.config, &secrets, now) {
            let name = &found.credential;
            let day = format_day(found.expires_at);
            let fix = "Rotate it at the provider, update its source, then run `steward secrets reload` (`steward \
                       secrets list` shows every expiry).";
            let finding = if found.expired {
                Finding::new(
                    Severity::Critical,
                    format!("Credential `{name}` has expired"),
                    format!(
                        "The credential `{name}` expired on {day}. Calls that need it are refused \
                         (credential_expired, fail closed). {fix}"
                    ),
                )
                .staged("expired", true)
            } else {
                let threshold = found.threshold_hit.unwrap_or_default();
                let left = match found.days_left {
                    0 => "less than a day".to_owned(),
                    1 => "1 day".to_owned(),
                    n => format!("{n} days"),
                };
                Finding::new(
                    Severity::Warning,
                    format!("Credential `{name}` expires in {left}"),
                    format!(
                        "The credential `{name}` stops working on {day} (in {left}, within the {threshold}-day \
                         warning). After that, calls that need it are refused (credential_expired). {fix}"
                    ),
                )
                .staged(format!("{threshold}d"), false)
            };
            active.insert(format!("{}{name}", rules::CREDENTIAL_EXPIRY_PREFIX), finding);
        }
    }

    /// The backup rules, from what backup runs recorded
    /// ([`crate::backup::health`]). "Overdue" and "no restore test" count
    /// from the last success or test, or else from when backups were first
    /// watched, so a fresh install is not alerted before its first day.
    /// Records from before the watch began (an earlier `[backup]`, removed
    /// since) are ignored: see [`forget_before`].
    async fn backups(&mut self, now_ms: i64, active: &mut Active) {
        if !self.backups {
            return;
        }
        let Some(watched_since) = self.backups_watched_since(now_ms).await else { return };
        let health = match crate::backup::health(&self.store, now_ms).await {
            Ok(health) => forget_before(health, watched_since),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the backup records for the backup alerts");
                return;
            }
        };
        let watch = BackupWatch { health, watched_since, now_ms };
        backup_failed(&watch, active);
        self.backup_overdue(&watch, active);
        restore_test(&watch, active);
    }

    /// Since when backups are watched (`kv` [`KV_WATCHED_SINCE`]): read once,
    /// and recorded as `now_ms` the first time. `None` when the store cannot say.
    async fn backups_watched_since(&mut self, now_ms: i64) -> Option<i64> {
        if let Some(ms) = self.backups_watched_since {
            return Some(ms);
        }
        match self.store.kv_get(KV_WATCHED_SINCE).await {
            Ok(text) => {
                let recorded = text.and_then(|t| t.trim().parse::<i64>().ok());
                if recorded.is_none()
                    && let Err(err) = self.store.kv_set(KV_WATCHED_SINCE, &now_ms.to_string(), now_ms).await
                {
                    tracing::warn!(error = %err, "cannot record since when backups are watched");
                }
                let since = recorded.unwrap_or(now_ms);
                self.backups_watched_since = Some(since);
                Some(since)
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the backup records for the backup alerts");
                None
            }
        }
    }

    /// `backup_overdue`: no successful backup for [`MAX_BACKUP_AGE_MS`],
    /// unless the failure that explains it already fired.
    fn backup_overdue(&self, watch: &BackupWatch, active: &mut Active) {
        let BackupWatch { health, watched_since, now_ms } = watch;
        let last_good = health.last_success_ms.unwrap_or(*watched_since);
        if now_ms.saturating_sub(last_good) > MAX_BACKUP_AGE_MS
            && !self.suppressed(rules::BACKUP_OVERDUE, &[rules::BACKUP_FAILED], active)
        {
            let what = match health.last_success_ms {
                Some(_) => format!("The last successful backup is {} old", human_duration(watch.age(last_good))),
                None => format!(
                    "No backup has succeeded in the {} backups have been configured",
                    human_duration(watch.age(last_good))
                ),
            };
            active.insert(
                rules::BACKUP_OVERDUE.into(),
                Finding::new(
                    Severity::Critical,
                    "No successful backup for over 26 hours",
                    format!(
                        "{what}. Check that `steward run` is running with [backup] schedule, then run \
                         `steward backup now` and `steward backup list`."
                    ),
                )
                .since(last_good.saturating_add(MAX_BACKUP_AGE_MS)),
            );
        }
    }
}

/// What the backup rules judge: the recorded health (records from before
/// the watch forgotten), since when backups are watched, and now.
struct BackupWatch {
    health: BackupHealth,
    watched_since: i64,
    now_ms: i64,
}

impl BackupWatch {
    /// How long ago `since` was.
    fn age(&self, since: i64) -> Duration {
        Duration::from_millis(u64::try_from(self.now_ms.saturating_sub(since)).unwrap_or(0))
    }
}

/// `backup_failed`: the most recent backup attempt failed.
fn backup_failed(watch: &BackupWatch, active: &mut Active) {
    let health = &watch.health;
    if health.failing {
        let (at, detail) = health.last_failure.clone().unwrap_or((watch.now_ms, String::new()));
        active.insert(
            rules::BACKUP_FAILED.into(),
            Finding::new(
                Severity::Warning,
                "The last backup failed",
                format!(
                    "The backup {} ago failed: {detail}. Fix the cause, then run `steward backup now` \
                     (`steward doctor` checks the destination).",
                    human_duration(watch.age(at))
                ),
            )
            .since(at),
        );
    }
}

/// `restore_test`: the last restore test failed, or none passed for
/// [`MAX_RESTORE_TEST_AGE_MS`] (counted from the watch's start when none ran).
fn restore_test(watch: &BackupWatch, active: &mut Active) {
    let BackupWatch { health, watched_since, now_ms } = watch;
    let (watched_since, now_ms) = (*watched_since, *now_ms);
    let restore = match health.last_restore_test {
        Some((at, false)) => Some((
            at,
            format!(
                "The restore test {} ago failed: {}. A backup that does not restore is not a backup: run \
                 `steward backup verify` and fix what it names.",
                human_duration(watch.age(at)),
                health.last_restore_test_detail.clone().unwrap_or_default()
            ),
        )),
        Some((at, true)) if now_ms.saturating_sub(at) > MAX_RESTORE_TEST_AGE_MS => Some((
            at.saturating_add(MAX_RESTORE_TEST_AGE_MS),
            format!(
                "The last passing restore test is {} old (the limit is 8 days). Run `steward backup verify`, \
                 and set [backup] restore_test (weekly) so it runs by itself.",
                human_duration(watch.age(at))
            ),
        )),
        None if now_ms.saturating_sub(watched_since) > MAX_RESTORE_TEST_AGE_MS => Some((
            watched_since.saturating_add(MAX_RESTORE_TEST_AGE_MS),
            format!(
                "No restore test has run in the {} backups have been configured. Run `steward backup verify`, \
                 and set [backup] restore_test (weekly) so it runs by itself.",
                human_duration(watch.age(watched_since))
            ),
        )),
        _ => None,
    };
    if let Some((since, message)) = restore {
        active.insert(
            rules::RESTORE_TEST.into(),
            Finding::new(Severity::Warning, "Backups are not proven by a recent restore test", message).since(since),
        );
    }
}

/// `spend_cap`: today's committed spend reached the cap; every LLM call is refused.
fn spend_cap(spent: u64, cap: Option<u64>, today: &str, active: &mut Active) {
    if let Some(cap) = cap
        && spent >= cap
    {
        active.insert(
            rules::SPEND_CAP.into(),
            Finding::new(
                Severity::Critical,
                "The daily spend cap is reached: LLM calls are refused",
                format!(
                    "{} of the {} daily cap is committed ({today}); every LLM call is refused until \
                     the day ends in [spend] timezone.",
                    usd(spent),
                    usd(cap)
                ),
            ),
        );
    }
}

/// `spend_threshold`: today's committed spend passed `[spend] alert_at_usd`.
fn spend_threshold(spent: u64, alert_at: Option<u64>, cap: Option<u64>, today: &str, active: &mut Active) {
    if let Some(alert_at) = alert_at
        && spent >= alert_at
    {
        active.insert(
            rules::SPEND_THRESHOLD.into(),
            Finding::new(
                Severity::Warning,
                format!("LLM spend today passed {}", usd(alert_at)),
                format!(
                    "{} committed today ({today}), at or above the {} alert threshold{}.",
                    usd(spent),
                    usd(alert_at),
                    cap.map(|c| format!(" (the cap is {})", usd(c))).unwrap_or_default()
                ),
            ),
        );
    }
}
