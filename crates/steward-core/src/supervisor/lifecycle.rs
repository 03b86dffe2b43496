//! The supervisor's loop: one phase at a time (see the state diagram in the
//! module docs), each phase waiting on the few things that can end it.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::group;
use super::output::{self, Stream};
use super::policy::{Exit, Verdict};
use super::{Event, Supervisor};
use crate::agent_state::{self as state, AgentState, FatalRecord, LastExit};
use crate::clock::unix_ms;

/// What the loop does next.
enum Phase {
    /// Look at the kill switch and the crash-loop record, then run or wait.
    Decide,
    /// Start the agent and watch it until it ends.
    Run,
    /// Wait for the restart delay.
    Backoff { until: Instant },
    /// The kill switch is engaged: wait for its release.
    Killed,
    /// Not restarted (crash loop, exit 78) until a resume newer than `since_ms`.
    Held { since_ms: i64 },
    /// No command: only watch the kill switch.
    Disabled,
    /// Leave the loop.
    Shutdown,
}

/// How one run ended.
enum End {
    /// The agent exited on its own.
    Exited(std::io::Result<ExitStatus>),
    /// Steward stopped it: the kill switch (`kill`) or shutdown.
    Stop { reason: String, kill: bool },
}

/// A started run of the agent: what watching and ending it need.
struct Run {
    child: tokio::process::Child,
    /// Its pid, also its process group.
    pid: u32,
    /// `stop_grace`: SIGTERM to SIGKILL.
    grace: Duration,
    /// `min_uptime`: how long it must run to count as started.
    min_uptime: Duration,
    started_at: Instant,
    /// The output capture tasks, drained once the agent is gone.
    capture: JoinSet<u64>,
    /// Health-check results, when a health check is configured.
    health: Option<mpsc::Receiver<bool>>,
    /// Confirmed up: a passing health check, or `min_uptime` without one.
    confirmed: bool,
    /// Healthy without a break since (resets the restart backoff).
    healthy_since: Option<Instant>,
    /// The health check, stopped when the run is dropped.
    _health_task: Option<tokio_util::task::AbortOnDropHandle<()>>,
    /// The gateway served in the agent's network namespace, drained when the run is dropped.
    _gateway: Option<tokio_util::sync::DropGuard>,
}

/// An exit as the supervisor reports it.
struct ExitReport {
    /// Exit code, when it exited on its own.
    code: Option<i32>,
    /// Signal that ended it.
    signal: Option<i32>,
    /// How long it ran.
    uptime: Duration,
    /// How long it had been continuously healthy at the end (resets the backoff).
    healthy_for: Duration,
    /// The process could not even be started.
    spawn_error: Option<String>,
}

impl ExitReport {
    fn describe(&self) -> String {
        if let Some(err) = &self.spawn_error {
            return format!("could not be started: {err}");
        }
        let how = match (self.code, self.signal) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "ended".to_owned(),
        };
        format!("{how} after {}", human(self.uptime))
    }
}

fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// `1.5s`, `2m3s`: for log lines and status reasons.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 { format!("{}m{}s", secs / 60, secs % 60) } else { format!("{:.1}s", d.as_secs_f64()) }
}

/// An interval that does not burst after a stall.
fn ticker(every: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

/// Sleeps until `until`, or forever when there is none.
async fn sleep_until(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

/// The next health result, or never when there is no health check.
async fn next_health(rx: &mut Option<mpsc::Receiver<bool>>) -> Option<bool> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Supervisor {
    /// Runs until `shutdown` is cancelled; then stops the agent (SIGTERM,
    /// `stop_grace`, SIGKILL), publishes the final status and closes `agent.log`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut phase = Phase::Decide;
        loop {
            phase = match phase {
                Phase::Decide if shutdown.is_cancelled() => Phase::Shutdown,
                Phase::Decide => self.decide().await,
                Phase::Run => self.run_once(&shutdown).await,
                waiting @ (Phase::Backoff { .. } | Phase::Killed | Phase::Held { .. } | Phase::Disabled) => {
                    self.wait(waiting, &shutdown).await
                }
                Phase::Shutdown => break,
            };
        }
        self.finish().await;
    }

    async fn decide(&mut self) -> Phase {
        if !std::mem::replace(&mut self.reaped_previous, true) {
            self.reap_previous_run().await;
        }
        if self.spec.is_none() {
            self.status.state = AgentState::Disabled;
            self.publish().await;
            return Phase::Disabled;
        }
        if self.poll_kill().await {
            self.enter_killed().await;
            return Phase::Killed;
        }
        match state::read_fatal(&self.store).await {
            Ok(Some(record)) => {
                tracing::error!(reason = %record.reason, "the agent is held after a crash loop; `steward resume` starts it again");
                self.status.state = AgentState::Fatal;
                self.status.reason = Some(record.reason);
                self.outage(record.since_ms);
                self.publish().await;
                Phase::Held { since_ms: record.since_ms }
            }
            Ok(None) => Phase::Run,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the crash-loop record; starting the agent");
                Phase::Run
            }
        }
    }

    /// One run: spawn, capture output, watch exit / kill switch / health /
    /// shutdown, then end it.
    async fn run_once(&mut self, shutdown: &CancellationToken) -> Phase {
        let mut run = match self.start_run().await {
            Ok(run) => run,
            Err(next) => return next,
        };
        let end = self.watch(&mut run, shutdown).await;
        self.end_run(run, end).await
    }

    /// Spawns the agent and starts what its run needs: the record of the
    /// run, the gateway in its namespace, output capture, the `starting`
    /// status, the health check. `Err`: the phase after a failed spawn.
    async fn start_run(&mut self) -> Result<Run, Phase> {
        let Some(spec) = self.spec.as_ref() else { return Err(Phase::Disabled) };
        let grace = spec.process.stop_grace;
        let min_uptime = spec.process.min_uptime;
        let started_at = Instant::now();
        let spawned = spec.spawn();
        let (mut child, channel) = match spawned {
            Ok(spawned) => spawned,
            Err(err) => {
                tracing::error!(command = ?spec.process.command, workdir = %spec.process.workdir.display(), error = %err, "cannot start the agent");
                let report = ExitReport {
                    code: None,
                    signal: None,
                    uptime: Duration::ZERO,
                    healthy_for: Duration::ZERO,
                    spawn_error: Some(err.to_string()),
                };
                return Err(self.after_exit(report).await);
            }
        };
        let pid = child.id().unwrap_or_default();
        // Whatever happens to steward from here on, its next start finds this run and ends it first.
        self.remember_run(pid).await;
        let gateway = channel.map(|channel| self.serve_in_namespace(channel));
        let mut capture = JoinSet::new();
        if let Some(log) = &self.log {
            if let Some(pipe) = child.stdout.take() {
                capture.spawn(output::capture(pipe, Stream::Stdout, log.clone(), self.redactor.clone()));
            }
            if let Some(pipe) = child.stderr.take() {
                capture.spawn(output::capture(pipe, Stream::Stderr, log.clone(), self.redactor.clone()));
            }
        }
        self.stats.starts.fetch_add(1, Ordering::Relaxed);
        if std::mem::take(&mut self.restarting) {
            self.stats.restarts.fetch_add(1, Ordering::Relaxed);
            self.status.restarts += 1;
        }
        tracing::info!(pid, restarts = self.status.restarts, "agent started");
        self.events.publish(Event::AgentStarted { pid });
        self.status.state = AgentState::Starting;
        self.status.reason = None;
        self.status.pid = Some(pid);
        self.status.started_ms = Some(now_ms());
        self.status.healthy = None;
        self.status.next_start_ms = None;
        self.publish().await;

        let (health, health_task) = match &self.health {
            Some(check) => {
                let (rx, task) = check.clone().spawn(self.settings.health_every);
                (Some(rx), Some(task))
            }
            None => (None, None),
        };
        Ok(Run {
            child,
            pid,
            grace,
            min_uptime,
            started_at,
            capture,
            health,
            confirmed: false,
            healthy_since: None,
            _health_task: health_task,
            _gateway: gateway,
        })
    }

    /// Watches a run until it ends: the agent exits, the kill switch is
    /// engaged, or steward shuts down. Meanwhile the agent is confirmed up
    /// (its first passing health check, or `min_uptime` without a check)
    /// and failing health checks are reported.
    async fn watch(&mut self, run: &mut Run, shutdown: &CancellationToken) -> End {
        let confirm_at = run.started_at + run.min_uptime;
        let mut poll = ticker(self.settings.poll_every);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return End::Stop { reason: "steward is shutting down".into(), kill: false },
                status = run.child.wait() => return End::Exited(status),
                _ = poll.tick() => {
                    if self.poll_kill().await {
                        return End::Stop { reason: self.kill_reason(), kill: true };
                    }
                    self.republish().await;
                }
                () = tokio::time::sleep_until(confirm_at), if run.health.is_none() && !run.confirmed => {
                    run.confirmed = true;
                    run.healthy_since = Some(Instant::now());
                    self.mark_up().await;
                }
                Some(ok) = next_health(&mut run.health) => self.on_health(run, ok).await,
            }
        }
    }

    /// One health-check result of a run: a pass confirms the agent up; a
    /// failure marks it down, and opens an outage once the starting agent's
    /// `min_uptime` is over.
    async fn on_health(&mut self, run: &mut Run, ok: bool) {
        if ok {
            run.confirmed = true;
            run.healthy_since.get_or_insert_with(Instant::now);
            if self.status.healthy != Some(true) {
                self.status.healthy = Some(true);
                self.mark_up().await;
            }
        } else {
            run.healthy_since = None;
            let changed = self.status.healthy != Some(false);
            self.status.healthy = Some(false);
            self.stats.up.store(false, Ordering::Relaxed);
            // A starting agent gets min_uptime to open its health endpoint.
            let grace_over = run.confirmed || run.started_at.elapsed() >= run.min_uptime;
            if grace_over && self.down_since_ms.is_none() {
                tracing::warn!(pid = run.pid, "agent health check failing");
                self.outage(now_ms());
                self.publish().await;
            } else if changed {
                self.publish().await;
            }
        }
    }

    /// Ends a run as `end` says: an exit goes through the restart policy; a
    /// stop (kill switch, shutdown) first stops the agent's process group.
    /// The run's gateway and health check last until this returns.
    async fn end_run(&mut self, run: Run, end: End) -> Phase {
        let uptime = run.started_at.elapsed();
        let healthy_for = run.healthy_since.map_or(Duration::ZERO, |t| t.elapsed());
        let Run { mut child, pid, grace, capture, .. } = run;
        match end {
            End::Exited(status) => {
                group::stop_leftovers(pid, grace).await;
                self.drain(capture).await;
                let (code, signal) = match status {
                    Ok(status) => (status.code(), status.signal()),
                    Err(err) => {
                        tracing::error!(error = %err, "cannot read the agent's exit status");
                        (None, None)
                    }
                };
                self.after_exit(ExitReport { code, signal, uptime, healthy_for, spawn_error: None }).await
            }
            End::Stop { reason, kill } => {
                tracing::info!(pid, %reason, grace_ms = grace.as_millis(), "stopping the agent (SIGTERM to its process group)");
                self.status.reason = Some(format!("stopping: {reason}"));
                self.publish().await;
                let stopped = group::stop_group(&mut child, pid, grace).await;
                self.drain(capture).await;
                let code = stopped.status.and_then(|s| s.code());
                let signal = stopped.status.and_then(|s| s.signal());
                self.events.publish(Event::AgentExited { code, signal, uptime });
                self.stats.up.store(false, Ordering::Relaxed);
                self.status.last_exit =
                    Some(LastExit { code, signal, uptime_ms: duration_ms(uptime), at_ms: now_ms() });
                if kill {
                    self.enter_killed().await;
                    Phase::Killed
                } else {
                    self.status.state = AgentState::Stopped;
                    self.status.reason = Some(reason);
                    self.clear_run();
                    Phase::Shutdown
                }
            }
        }
    }

    /// Applies the restart policy to an exit.
    async fn after_exit(&mut self, report: ExitReport) -> Phase {
        let now = now_ms();
        self.stats.up.store(false, Ordering::Relaxed);
        self.events.publish(Event::AgentExited { code: report.code, signal: report.signal, uptime: report.uptime });
        self.status.last_exit = Some(LastExit {
            code: report.code,
            signal: report.signal,
            uptime_ms: duration_ms(report.uptime),
            at_ms: now,
        });
        self.clear_run();
        self.outage(now);
        let exit =
            Exit { at: Instant::now(), uptime: report.uptime, healthy_for: report.healthy_for, code: report.code };
        let what = report.describe();
        match self.policy.on_exit(exit, rand::random::<f64>()) {
            Verdict::DoNotRestart => {
                let reason = format!(
                    "the agent {what}: exit code 78 (EX_CONFIG) means \"do not restart\"; fix its configuration, \
                     then run `steward resume`"
                );
                tracing::error!("{reason}");
                self.status.state = AgentState::Stopped;
                self.status.reason = Some(reason);
                self.publish().await;
                Phase::Held { since_ms: now }
            }
            Verdict::CrashLoop { exits } => {
                let window = human(self.settings.crash_loop_window);
                let reason = format!(
                    "crash loop: {exits} exits within {window}, each sooner than min_uptime after its start (last: \
                     {what}); not restarted until `steward resume`; `steward logs agent` shows its output"
                );
                tracing::error!("{reason}");
                let record = FatalRecord { since_ms: now, exits, reason: reason.clone() };
                if let Err(err) = state::write_fatal(&self.store, &record, now).await {
                    tracing::error!(error = %err, "cannot persist the crash-loop verdict; it holds until steward restarts");
                }
                self.events.publish(Event::CrashLoop { exits });
                self.status.state = AgentState::Fatal;
                self.status.reason = Some(reason);
                self.publish().await;
                Phase::Held { since_ms: now }
            }
            Verdict::Restart { delay } => {
                tracing::warn!(delay_ms = delay.as_millis(), "the agent {what}; restarting it in {}", human(delay));
                self.restarting = true;
                self.status.state = AgentState::Backoff;
                self.status.reason = Some(format!("the agent {what}; restarting in {}", human(delay)));
                self.status.next_start_ms = Some(now.saturating_add(duration_ms(delay).try_into().unwrap_or(i64::MAX)));
                self.publish().await;
                Phase::Backoff { until: Instant::now() + delay }
            }
        }
    }

    /// The phases that wait for something outside steward's loop: the
    /// restart delay (`Backoff`), the kill switch's release (`Killed`), a
    /// `steward resume` (`Held`), or nothing (`Disabled`). One loop for all:
    /// it ends on shutdown or at the restart delay, and otherwise polls
    /// every `poll_every` ([`Self::on_poll`] may name the next phase) and
    /// republishes the status.
    async fn wait(&mut self, waiting: Phase, shutdown: &CancellationToken) -> Phase {
        let mut poll = ticker(self.settings.poll_every);
        let until = match waiting {
            Phase::Backoff { until } => Some(until),
            _ => None,
        };
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Phase::Shutdown,
                () = sleep_until(until) => return Phase::Run,
                _ = poll.tick() => {
                    if let Some(next) = self.on_poll(&waiting).await {
                        return next;
                    }
                    self.republish().await;
                }
            }
        }
    }

    /// One poll of a waiting phase: reads the kill switch (publishing its
    /// transitions in every phase), and returns the next phase when the
    /// wait is over.
    async fn on_poll(&mut self, waiting: &Phase) -> Option<Phase> {
        let engaged = self.poll_kill().await;
        match *waiting {
            Phase::Backoff { .. } if engaged => {
                self.restarting = false;
                self.enter_killed().await;
                Some(Phase::Killed)
            }
            Phase::Killed if !engaged => {
                tracing::info!("kill switch released; starting the agent again");
                self.policy.reset();
                Some(Phase::Decide)
            }
            Phase::Held { since_ms } => match state::last_resume_ms(&self.store).await {
                Ok(resumed) if resumed > since_ms => {
                    tracing::info!("`steward resume`: starting the agent again");
                    self.policy.reset();
                    self.restarting = false;
                    Some(Phase::Decide)
                }
                Ok(_) => None,
                Err(err) => {
                    tracing::debug!(error = %err, "cannot read the resume request");
                    None
                }
            },
            _ => None,
        }
    }

    /// Final status, and `agent.log` flushed and closed.
    async fn finish(&mut self) {
        if matches!(self.status.state, AgentState::Starting | AgentState::Running | AgentState::Backoff) {
            self.status.state = AgentState::Stopped;
            self.status.reason = Some("steward is not running".into());
            self.clear_run();
        }
        self.stats.up.store(false, Ordering::Relaxed);
        self.publish().await;
        if let Some(log) = self.log.take() {
            match std::sync::Arc::try_unwrap(log) {
                Ok(log) => log.shutdown().await,
                Err(_) => tracing::warn!("agent.log is still in use at shutdown; the OS flushes it"),
            }
        }
    }

    /// Reads the kill switch, publishes its transitions, returns whether it
    /// is engaged. A failed read keeps the last known state.
    async fn poll_kill(&mut self) -> bool {
        self.stats.ticks.fetch_add(1, Ordering::Relaxed);
        match self.store.kill_state().await {
            Ok(now) => {
                if std::mem::take(&mut self.kill_read_failing) {
                    tracing::info!("the kill switch is readable again");
                }
                let before = self.kill.as_ref().map(|k| (k.engaged, k.changed_ms));
                if before != Some((now.engaged, now.changed_ms)) {
                    let was_engaged = before.is_some_and(|(engaged, _)| engaged);
                    if now.engaged {
                        let reason = now.reason.clone().unwrap_or_default();
                        let source = now.source.clone().unwrap_or_default();
                        tracing::warn!(%reason, %source, "kill switch engaged");
                        self.events.publish(Event::KillSwitchEngaged { reason, source });
                    } else if was_engaged {
                        tracing::info!("kill switch released");
                        self.events.publish(Event::KillSwitchReleased);
                    }
                }
                let engaged = now.engaged;
                self.kill = Some(now);
                engaged
            }
            Err(err) => {
                if !std::mem::replace(&mut self.kill_read_failing, true) {
                    tracing::error!(error = %err, "cannot read the kill switch; keeping the last known state");
                }
                self.kill.as_ref().is_some_and(|k| k.engaged)
            }
        }
    }

    fn kill_reason(&self) -> String {
        let kill = self.kill.as_ref();
        let reason = kill.and_then(|k| k.reason.clone()).unwrap_or_default();
        let source = kill.and_then(|k| k.source.clone()).unwrap_or_else(|| "unknown".into());
        format!("kill switch engaged by {source}: {reason}")
    }

    /// The agent is stopped on purpose: any outage is over (the kill switch
    /// has its own event), and the status says why.
    async fn enter_killed(&mut self) {
        if self.down_since_ms.take().is_some() {
            self.events.publish(Event::AgentUp);
        }
        self.stats.up.store(false, Ordering::Relaxed);
        self.status.state = AgentState::Stopped;
        self.status.reason = Some(format!("{}; `steward resume` starts it again", self.kill_reason()));
        self.clear_run();
        self.publish().await;
    }

    /// The agent is confirmed up: state `running`, any outage over.
    async fn mark_up(&mut self) {
        self.status.state = AgentState::Running;
        self.stats.up.store(true, Ordering::Relaxed);
        if self.down_since_ms.take().is_some() {
            tracing::info!("agent is up again");
            self.events.publish(Event::AgentUp);
        }
        self.publish().await;
    }

    /// Starts an outage at `since_ms` unless one is already running.
    fn outage(&mut self, since_ms: i64) {
        if self.down_since_ms.is_none() {
            self.down_since_ms = Some(since_ms);
            self.events.publish(Event::AgentDown { since_ms });
        }
    }

    fn clear_run(&mut self) {
        self.status.pid = None;
        self.status.started_ms = None;
        self.status.healthy = None;
        self.status.next_start_ms = None;
    }

    /// Waits for the output pipes to close, abandoning them after
    /// `output_drain` (a process outside the group may hold them open).
    async fn drain(&self, mut capture: JoinSet<u64>) {
        let drained = tokio::time::timeout(self.settings.output_drain, async {
            while let Some(done) = capture.join_next().await {
                if let Ok(lost) = done
                    && lost > 0
                {
                    tracing::error!(lost, "lines of the agent's output could not be written to agent.log");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("the agent's output pipes stayed open after it exited; no longer reading them");
            capture.abort_all();
        }
    }

    /// Re-publishes the status when the last publication is older than `publish_every`.
    async fn republish(&mut self) {
        if self.last_published.is_none_or(|t| t.elapsed() >= self.settings.publish_every) {
            self.publish().await;
        }
    }

    async fn publish(&mut self) {
        self.status.updated_ms = now_ms();
        self.last_published = Some(Instant::now());
        let text = match serde_json::to_string(&self.status) {
            Ok(text) => text,
            Err(err) => {
                tracing::error!(error = %err, "cannot encode the agent status");
                return;
            }
        };
        if let Err(err) = self.store.kv_set(state::STATUS_KEY, &text, self.status.updated_ms).await {
            tracing::warn!(error = %err, "cannot publish the agent status");
        }
    }
}

impl Supervisor {
    /// Records the run's box (pid and start time) in the store, so that a
    /// steward that did not get to stop it (killed, crashed) ends it at its
    /// next start: see [`Supervisor::reap_previous_run`].
    async fn remember_run(&self, pid: u32) {
        let Some(record) = group::RunRecord::of(pid) else { return };
        let text = match serde_json::to_string(&record) {
            Ok(text) => text,
            Err(err) => return tracing::warn!(error = %err, "cannot encode the run record"),
        };
        if let Err(err) = self.store.kv_set(state::RUN_KEY, &text, now_ms()).await {
            tracing::warn!(error = %err, "cannot record the agent's run; a crashed steward's next start cannot reap it");
        }
    }

    /// A restart first reaps what the last run left: the recorded box, when
    /// that very process (same pid, same start time) still runs, is killed
    /// with its group. Killing the box ends the agent's PID namespace.
    async fn reap_previous_run(&self) {
        let record = match self.store.kv_get(state::RUN_KEY).await {
            Ok(Some(text)) if !text.is_empty() => serde_json::from_str::<group::RunRecord>(&text).ok(),
            Ok(_) => None,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the last run's record; not reaping it");
                None
            }
        };
        if let Some(record) = record
            && group::reap(&record).await
        {
            tracing::warn!(
                pid = record.pid,
                "the agent's last run was still alive (steward did not stop it); killed it"
            );
        }
    }

    /// Serves the gateway on the listener the box opens inside the agent's
    /// network namespace, with the main listener's limits, for as long as
    /// the returned guard lives (the run); dropping it drains the connections,
    /// on the daemon's tracker (shutdown waits for them).
    fn serve_in_namespace(&self, channel: std::os::unix::net::UnixStream) -> tokio_util::sync::DropGuard {
        let service = self.gateway.clone();
        let tasks = service.as_ref().map_or_else(tokio_util::task::TaskTracker::new, crate::gateway::Service::tasks);
        let stop = tokio_util::sync::CancellationToken::new();
        let drain = stop.clone();
        tasks.spawn(async move {
            let received = tokio::task::spawn_blocking(move || super::sandbox::receive_listener(&channel)).await;
            let listener = match received {
                Ok(Ok(listener)) => tokio::net::TcpListener::from_std(listener),
                Ok(Err(err)) => Err(err),
                Err(err) => Err(std::io::Error::other(err)),
            };
            let (listener, Some(service)) = (listener, service) else {
                return tracing::error!("no gateway to serve in the agent's network namespace");
            };
            match listener {
                Ok(listener) => {
                    tracing::info!("serving the gateway inside the agent's network namespace");
                    service.serve(listener, drain).await;
                }
                Err(err) => {
                    tracing::error!(error = %err, "the agent cannot reach steward: no gateway in its network namespace")
                }
            }
        });
        stop.drop_guard()
    }
}

/// A duration in whole milliseconds, saturating.
fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
