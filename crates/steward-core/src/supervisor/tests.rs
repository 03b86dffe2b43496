//! Supervisor tests with real processes (`sh` scripts) and a real store:
//! crash loop, restart after a late crash, exit 78, the kill switch stopping
//! a process group that ignores SIGTERM, the child's environment, captured
//! and redacted output, health checks. Timings are shortened through
//! [`SupervisorSettings`]; every wait is bounded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use arc_swap::ArcSwap;
use secrecy::SecretString;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::agent_state::{self as state, read_fatal, read_status, request_resume};
use crate::config;

/// The planted credential: must never reach the agent or agent.log.
const CANARY: &str = "canary-credential-5e6f7a8b9c";
/// The agent's steward token in these tests.
const TOKEN: &str = "stw_test_token_0123456789";
/// Upper bound of every wait: generous, because two cores are shared.
const WAIT: Duration = Duration::from_secs(20);

fn fast() -> SupervisorSettings {
    SupervisorSettings {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        reset_after: Duration::from_secs(60),
        crash_loop_exits: 5,
        crash_loop_window: Duration::from_secs(600),
        poll_every: Duration::from_millis(25),
        health_every: Duration::from_millis(50),
        health_timeout: Duration::from_millis(500),
        publish_every: Duration::from_millis(100),
        output_drain: Duration::from_secs(1),
    }
}

/// A config in `dir` whose `[agent]` section ends with `agent` (TOML lines).
fn config_in(dir: &Path, agent: &str, logging: &str) -> config::Config {
    let text = format!(
        "[agent]\nname = \"test\"\n{agent}\n[state]\ndir = \"./state\"\n[logging]\ndir = \"./state/logs\"\n{logging}\n\
         [credentials.social]\nsource = \"env:STEWARD_TEST_UNUSED\"\n"
    );
    config::parse(&text, &dir.join("steward.toml")).unwrap()
}

/// `command = ["sh", "-c", script]` as TOML.
fn sh(script: &str) -> String {
    format!("command = [\"sh\", \"-c\", {}]", toml::Value::String(script.to_owned()))
}

struct Harness {
    dir: tempfile::TempDir,
    store: Store,
    events: broadcast::Receiver<Event>,
    stats: Arc<SupervisorStats>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    config: config::Config,
}

impl Harness {
    async fn start(agent: &str) -> Harness {
        Self::start_with(agent, "", fast()).await
    }

    async fn start_with(agent: &str, logging: &str, settings: SupervisorSettings) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), agent, logging);
        crate::state_dir::ensure_private_dir(&config.state.dir).unwrap();
        let store = Store::open(&config.state.db_path(), crate::store::tests::redactor()).unwrap();
        let mut h = Harness {
            dir,
            store,
            events: EventBus::new().subscribe(),
            stats: Arc::default(),
            shutdown: CancellationToken::new(),
            task: None,
            config,
        };
        h.spawn(settings);
        h
    }

    /// Starts a supervisor on this harness's config and store (again, after `stop`: a daemon restart).
    fn spawn(&mut self, settings: SupervisorSettings) {
        let secrets = Secrets::from_values([("social".to_owned(), SecretString::from(CANARY))]);
        let redactor: SharedRedactor = Arc::new(ArcSwap::from_pointee(
            redact::RedactorBuilder::new().secret("social", CANARY).secret("agent-token", TOKEN).build(),
        ));
        let bus = EventBus::new();
        self.events = bus.subscribe();
        let supervisor = Supervisor::new(SupervisorInit {
            config: &self.config,
            secrets: &secrets,
            agent_token: TOKEN,
            gateway_addr: "127.0.0.1:7600".parse().unwrap(),
            store: self.store.clone(),
            redactor,
            events: bus,
            launcher: Launcher::Direct,
            gateway: None,
            settings,
        })
        .unwrap();
        self.stats = supervisor.stats();
        self.shutdown = CancellationToken::new();
        self.task = Some(tokio::spawn(supervisor.run(self.shutdown.clone())));
    }

    /// Cancels and waits for the supervisor to finish (agent stopped).
    async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task).await.expect("supervisor did not stop").unwrap();
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(name)).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// Events until one matches `done` (included).
    async fn events_until(&mut self, done: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(event)) => {
                    let stop = done(&event);
                    seen.push(event);
                    if stop {
                        return seen;
                    }
                }
                Ok(Err(err)) => panic!("event bus: {err}; seen {seen:?}"),
                Err(_) => panic!("timed out waiting for an event; seen {seen:?}"),
            }
        }
    }

    /// The published status, once it satisfies `ok`.
    async fn status_until(&self, ok: impl Fn(&AgentStatus) -> bool) -> AgentStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = read_status(&self.store).await.unwrap();
            if let Some(status) = status.filter(|s| ok(s)) {
                return status;
            }
            assert!(Instant::now() < deadline, "status never matched; last: {:?}", read_status(&self.store).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `name` has at least `n` lines.
    async fn file_lines(&self, name: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = self.lines(name);
            if lines.len() >= n {
                return lines;
            }
            assert!(Instant::now() < deadline, "{name} has {} lines, expected {n}", lines.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every line of agent.log and its rotated files, oldest first.
    fn agent_log(&self) -> Vec<String> {
        let dir = &self.config.logging.dir;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| crate::audit::AGENT.is_rotated(p.file_name().unwrap().to_str().unwrap()))
            .collect();
        files.sort();
        files.push(dir.join("agent.log"));
        files
            .iter()
            .flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }
}

fn count(events: &[Event], pred: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

/// Whether `pid` is gone or a zombie.
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn a_crash_looping_agent_is_restarted_exactly_four_times_then_held_as_fatal() {
    let mut h = Harness::start(&format!("{}\nmin_uptime = \"5s\"", sh("echo start >> starts.txt; exit 3"))).await;
    let events = h.events_until(|e| matches!(e, Event::CrashLoop { .. })).await;
    assert_eq!(events.last(), Some(&Event::CrashLoop { exits: 5 }));
    assert_eq!(count(&events, |e| matches!(e, Event::AgentStarted { .. })), 5, "{events:?}");
    assert_eq!(count(&events, |e| matches!(e, Event::AgentExited { code: Some(3), .. })), 5, "{events:?}");
    // One outage, announced once, never "up" in between: each run died before min_uptime.
    assert_eq!(count(&events, |e| matches!(e, Event::AgentDown { .. })), 1, "{events:?}");
    assert_eq!(count(&events, |e| matches!(e, Event::AgentUp)), 0, "{events:?}");
    let status = h.status_until(|s| s.state == AgentState::Fatal).await;
    assert_eq!(status.restarts, 4);
    assert!(status.reason.as_deref().unwrap().contains("crash loop: 5 exits"), "{status:?}");
    assert_eq!(status.last_exit.as_ref().and_then(|e| e.code), Some(3));
    assert_eq!(h.stats.snapshot(), StatsSnapshot { up: false, starts: 5, restarts: 4 });
    assert_eq!(h.lines("starts.txt").len(), 5);
    let record = read_fatal(&h.store).await.unwrap().unwrap();
    assert_eq!(record.exits, 5);

    // Sticky: a restarted daemon holds the agent without starting it.
    h.stop().await;
    let before = read_status(&h.store).await.unwrap().unwrap().updated_ms;
    h.spawn(fast());
    let status = h.status_until(|s| s.updated_ms > before).await;
    assert_eq!(status.state, AgentState::Fatal);
    assert_eq!(h.lines("starts.txt").len(), 5);

    // `steward resume` clears it and the agent runs again.
    assert_eq!(
        request_resume(&h.store, crate::clock::unix_ms(std::time::SystemTime::now())).await.unwrap(),
        Some(record)
    );
    h.events_until(|e| matches!(e, Event::AgentStarted { .. })).await;
    h.file_lines("starts.txt", 6).await;
    assert_eq!(read_fatal(&h.store).await.unwrap(), None);
    h.stop().await;
}

#[tokio::test]
async fn an_agent_that_crashes_once_after_a_while_is_restarted_and_comes_back_up() {
    let script = "echo run >> runs.txt; if [ -e crashed ]; then exec sleep 1000; fi; touch crashed; sleep 0.5; exit 1";
    let mut h = Harness::start(&format!("{}\nmin_uptime = \"200ms\"", sh(script))).await;
    let events = h.events_until(|e| matches!(e, Event::AgentExited { .. })).await;
    assert!(matches!(events.last(), Some(Event::AgentExited { code: Some(1), .. })), "{events:?}");
    // The crash opens an outage; the restarted run closes it once past min_uptime.
    let events = h.events_until(|e| matches!(e, Event::AgentUp)).await;
    assert!(matches!(events[0], Event::AgentDown { .. }), "{events:?}");
    assert_eq!(count(&events, |e| matches!(e, Event::AgentStarted { .. })), 1, "{events:?}");
    let status = h.status_until(|s| s.state == AgentState::Running).await;
    assert_eq!(status.restarts, 1);
    assert_eq!(status.last_exit.as_ref().and_then(|e| e.code), Some(1));
    assert!(status.last_exit.as_ref().unwrap().uptime_ms >= 500);
    let pid = status.pid.unwrap();
    assert!(!dead(pid));
    assert_eq!(h.stats.snapshot(), StatsSnapshot { up: true, starts: 2, restarts: 1 });
    assert_eq!(h.lines("runs.txt").len(), 2);

    // Shutdown stops it and says so.
    h.stop().await;
    assert!(dead(pid));
    let status = read_status(&h.store).await.unwrap().unwrap();
    assert_eq!(status.state, AgentState::Stopped);
    assert_eq!(status.pid, None);
}

#[tokio::test]
async fn exit_code_78_is_not_restarted_until_resume() {
    let mut h = Harness::start(&sh("echo start >> starts.txt; exit 78")).await;
    let events = h.events_until(|e| matches!(e, Event::AgentExited { .. })).await;
    assert!(matches!(events.last(), Some(Event::AgentExited { code: Some(78), signal: None, .. })), "{events:?}");
    let status = h.status_until(|s| s.state == AgentState::Stopped).await;
    assert!(status.reason.as_deref().unwrap().contains("exit code 78 (EX_CONFIG)"), "{status:?}");
    assert!(matches!(h.events.recv().await.unwrap(), Event::AgentDown { .. }));
    // Several polls later, still one start and no crash loop.
    let later = status.updated_ms;
    h.status_until(|s| s.updated_ms > later).await;
    assert_eq!(h.lines("starts.txt").len(), 1);
    assert_eq!(h.stats.snapshot().starts, 1);
    assert_eq!(read_fatal(&h.store).await.unwrap(), None);

    request_resume(&h.store, crate::clock::unix_ms(std::time::SystemTime::now())).await.unwrap();
    h.file_lines("starts.txt", 2).await;
    h.stop().await;
}

#[tokio::test]
async fn a_command_that_cannot_start_ends_in_a_crash_loop_not_a_restart_storm() {
    let mut h = Harness::start("command = [\"/nonexistent/agent-binary\"]").await;
    let events = h.events_until(|e| matches!(e, Event::CrashLoop { .. })).await;
    assert_eq!(count(&events, |e| matches!(e, Event::AgentStarted { .. })), 0);
    assert_eq!(count(&events, |e| matches!(e, Event::AgentExited { code: None, signal: None, .. })), 5);
    let status = h.status_until(|s| s.state == AgentState::Fatal).await;
    assert!(status.reason.unwrap().contains("could not be started"));
    h.stop().await;
}

#[tokio::test]
async fn the_kill_switch_stops_a_group_that_ignores_sigterm_and_release_starts_it_again() {
    // The agent and a grandchild both ignore SIGTERM; both pids are recorded.
    let script = "trap '' TERM; echo $$ >> pids.txt; sleep 1000 & echo $! >> pids.txt; wait";
    let grace = Duration::from_millis(400);
    let mut h = Harness::start(&format!("{}\nstop_grace = \"400ms\"\nmin_uptime = \"100ms\"", sh(script))).await;
    let pids: Vec<u32> = h.file_lines("pids.txt", 2).await.iter().map(|l| l.parse().unwrap()).collect();
    let status = h.status_until(|s| s.state == AgentState::Running).await;
    assert_eq!(status.pid, Some(pids[0]));
    assert_eq!(live_members(pids[0]).len(), 2, "the agent and its grandchild share the group");

    let engaged_at = Instant::now();
    h.store.engage_kill("posting junk", "cli", crate::clock::unix_ms(std::time::SystemTime::now())).await.unwrap();
    let events = h.events_until(|e| matches!(e, Event::AgentExited { .. })).await;
    assert!(events.contains(&Event::KillSwitchEngaged { reason: "posting junk".into(), source: "cli".into() }));
    assert!(matches!(events.last(), Some(Event::AgentExited { signal: Some(9), .. })), "{events:?}");
    let deadline = engaged_at + grace + Duration::from_secs(1);
    while !pids.iter().all(|p| dead(*p)) {
        assert!(Instant::now() < deadline, "group members alive after grace + 1s: {:?}", live_members(pids[0]));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(engaged_at.elapsed() >= grace, "SIGKILL came before the grace period ended");
    let status = h.status_until(|s| s.state == AgentState::Stopped && s.pid.is_none()).await;
    assert!(status.reason.as_deref().unwrap().contains("kill switch engaged by cli: posting junk"), "{status:?}");
    assert_eq!(status.last_exit.as_ref().and_then(|e| e.signal), Some(9));

    // Not restarted while engaged (several publications later, still one start).
    let later = status.updated_ms;
    h.status_until(|s| s.updated_ms > later).await;
    assert_eq!(h.stats.snapshot().starts, 1);

    h.store.release_kill(crate::clock::unix_ms(std::time::SystemTime::now())).await.unwrap();
    let events = h.events_until(|e| matches!(e, Event::AgentStarted { .. })).await;
    assert!(events.contains(&Event::KillSwitchReleased), "{events:?}");
    let pids = h.file_lines("pids.txt", 4).await;
    assert_eq!(h.stats.snapshot(), StatsSnapshot { up: false, starts: 2, restarts: 0 });
    h.stop().await;
    assert!(pids.iter().all(|p| dead(p.parse().unwrap())));
}

#[tokio::test]
async fn the_child_environment_is_minimal_and_holds_no_credential() {
    let agent = format!("{}\nenv = {{ LOG_LEVEL = \"debug\" }}", sh("env > env.txt; exec sleep 1000"));
    let mut h = Harness::start(&agent).await;
    let env = h.file_lines("env.txt", 8).await.join("\n");
    h.stop().await;
    assert!(!env.contains(CANARY), "a credential reached the agent");
    for expected in [
        "STEWARD_URL=http://127.0.0.1:7600",
        &format!("STEWARD_TOKEN={TOKEN}"),
        "OPENAI_BASE_URL=http://127.0.0.1:7600/llm/openai/v1",
        &format!("OPENAI_API_KEY={TOKEN}"),
        "ANTHROPIC_BASE_URL=http://127.0.0.1:7600/llm/anthropic",
        &format!("ANTHROPIC_API_KEY={TOKEN}"),
        "LOG_LEVEL=debug",
    ] {
        assert!(env.lines().any(|l| l == expected), "{expected} missing from:\n{env}");
    }
    let allowed = ["PATH", "HOME", "LANG", "TZ", "USER", "LOG_LEVEL", "PWD", "SHLVL", "_", "OLDPWD"];
    for line in env.lines() {
        let name = line.split('=').next().unwrap();
        assert!(
            allowed.contains(&name) || config::AGENT_ENV_SET_BY_STEWARD.contains(&name),
            "unexpected variable {name} in the agent's environment"
        );
    }
}

#[test]
fn credentials_in_the_environment_are_dropped_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = Secrets::from_values([("social".to_owned(), SecretString::from(CANARY))]);
    let inherited = |name: &str| match name {
        "PATH" => Some("/usr/bin:/bin".to_owned()),
        "HOME" => Some(format!("/home/{CANARY}")),
        _ => None,
    };
    let config = config_in(dir.path(), &format!("{}\nenv = {{ MODE = \"x\" }}", sh("true")), "");
    let process = config.agent.process.as_ref().unwrap();
    let spec =
        launch::LaunchSpec::new(process, &config, &secrets, TOKEN, "http://127.0.0.1:1/", inherited, Launcher::Direct)
            .unwrap();
    let env = spec.env();
    assert!(env.contains(&("PATH", "/usr/bin:/bin")));
    assert!(env.iter().all(|(k, v)| *k != "HOME" && !v.contains(CANARY)), "{env:?}");
    assert!(env.contains(&("STEWARD_URL", "http://127.0.0.1:1")));
    assert!(!format!("{spec:?}").contains(TOKEN), "Debug prints the token");

    let config =
        // Embedded in a value the literal-secret scan does not recognise (a URL
        // with `user:password@` it would refuse at load already): the
        // supervisor's own value check must catch it.
        config_in(dir.path(), &format!("{}\nenv = {{ DB_URL = \"db.example/x?user=u&p={CANARY}\" }}", sh("true")), "");
    let process = config.agent.process.as_ref().unwrap();
    let err = launch::LaunchSpec::new(process, &config, &secrets, TOKEN, "http://x", inherited, Launcher::Direct)
        .unwrap_err();
    assert!(err.is_config_error());
    let text = err.to_string();
    assert!(text.contains("[agent] env DB_URL contains the value of credential `social`"), "{text}");
    assert!(!text.contains(CANARY));
}

#[tokio::test]
async fn captured_output_is_redacted_escaped_and_rotated() {
    let script = format!(
        "i=0; while [ $i -lt 120 ]; do echo \"line $i token {CANARY} from bob@example.com\"; i=$((i+1)); done; \
         printf 'colour \\033[31mred\\n' >&2; printf 'no newline at the end'; exec sleep 1000"
    );
    let mut h = Harness::start_with(&sh(&script), "max_file_size = \"4KiB\"", fast()).await;
    let deadline = Instant::now() + WAIT;
    while !h.agent_log().iter().any(|l| l.contains("stdout line 119 "))
        || !h.agent_log().iter().any(|l| l.contains(" stderr "))
    {
        assert!(Instant::now() < deadline, "agent.log incomplete: {:?}", h.agent_log().last());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A last line without its newline is written when the pipe closes.
    assert!(!h.agent_log().iter().any(|l| l.contains("no newline")));
    h.stop().await;
    let lines = h.agent_log();
    assert!(lines.last().unwrap().ends_with(" stdout no newline at the end"), "{:?}", lines.last());
    let stdout: Vec<&String> = lines.iter().filter(|l| l.contains(" stdout line ")).collect();
    assert_eq!(stdout.len(), 120, "every line exactly once");
    for (i, line) in stdout.iter().enumerate() {
        assert!(
            line.ends_with(&format!("stdout line {i} token [REDACTED:credential] from [REDACTED:email]")),
            "{line}"
        );
        assert!(line.starts_with("20") && line.as_bytes()[10] == b'T', "no timestamp: {line}");
    }
    assert!(lines.iter().any(|l| l.ends_with("stderr colour \\x1b[31mred")), "{lines:?}");
    let rotated = std::fs::read_dir(&h.config.logging.dir)
        .unwrap()
        .filter(|e| crate::audit::AGENT.is_rotated(e.as_ref().unwrap().file_name().to_str().unwrap()))
        .count();
    assert!(rotated >= 2, "agent.log did not rotate at 4KiB");
    for entry in std::fs::read_dir(&h.config.logging.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert!(std::fs::metadata(&path).unwrap().len() <= 4096, "{} is over the size limit", path.display());
            assert!(
                !std::fs::read_to_string(&path).unwrap().contains(CANARY),
                "{} holds the credential",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn captured_output_has_emails_redacted() {
    let mut h = Harness::start(&sh("echo 'mail bob@example.com now'; exec sleep 1000")).await;
    let deadline = Instant::now() + WAIT;
    while !h.agent_log().iter().any(|l| l.contains(" stdout mail ")) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.stop().await;
    let log = h.agent_log().join("\n");
    assert!(!log.contains("bob@example.com"), "{log}");
    assert!(log.contains("[REDACTED:"), "{log}");
}

#[tokio::test]
async fn without_a_command_only_the_kill_switch_is_watched() {
    let mut h = Harness::start("").await;
    let status = h.status_until(|s| s.state == AgentState::Disabled).await;
    assert_eq!(status.pid, None);
    let now = crate::clock::unix_ms(std::time::SystemTime::now());
    h.store.engage_kill("loop detected: post", "loop_breaker", now).await.unwrap();
    let events = h.events_until(|e| matches!(e, Event::KillSwitchEngaged { .. })).await;
    assert_eq!(
        events,
        [Event::KillSwitchEngaged { reason: "loop detected: post".into(), source: "loop_breaker".into() }]
    );
    h.store.release_kill(now + 1).await.unwrap();
    assert_eq!(h.events_until(|_| true).await, [Event::KillSwitchReleased]);
    assert!(!h.path("state/logs/agent.log").exists(), "no agent, no agent.log");
    h.stop().await;
}

/// A health endpoint on 127.0.0.1 whose answer (200 or 503) the test flips.
async fn health_server(healthy: Arc<AtomicBool>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let healthy = Arc::clone(&healthy);
            tokio::spawn(async move {
                let mut buf = [0_u8; 1024];
                let _ = conn.read(&mut buf).await;
                let status =
                    if healthy.load(std::sync::atomic::Ordering::SeqCst) { "200 OK" } else { "503 Unavailable" };
                let _ = conn
                    .write_all(
                        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
                    )
                    .await;
            });
        }
    });
    format!("http://{addr}/health")
}

#[tokio::test]
async fn health_checks_drive_running_down_and_up() {
    let healthy = Arc::new(AtomicBool::new(false));
    let url = health_server(Arc::clone(&healthy)).await;
    let agent = format!("{}\nhealth_url = \"{url}\"\nmin_uptime = \"300ms\"", sh("exec sleep 1000"));
    let started = Instant::now();
    let mut h = Harness::start(&agent).await;
    h.events_until(|e| matches!(e, Event::AgentStarted { .. })).await;
    // Failing from the start: down once min_uptime (the startup grace) is over, still "starting".
    let events = h.events_until(|e| matches!(e, Event::AgentDown { .. })).await;
    assert_eq!(events.len(), 1);
    assert!(started.elapsed() >= Duration::from_millis(300), "an outage opened during the startup grace");
    let status = h.status_until(|s| s.healthy == Some(false)).await;
    assert_eq!(status.state, AgentState::Starting);
    assert!(!h.stats.snapshot().up);

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(h.events_until(|_| true).await, [Event::AgentUp]);
    let status = h.status_until(|s| s.healthy == Some(true)).await;
    assert_eq!(status.state, AgentState::Running);
    assert!(h.stats.snapshot().up);

    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(h.events_until(|_| true).await[..], [Event::AgentDown { .. }]));
    let status = h.status_until(|s| s.healthy == Some(false)).await;
    assert_eq!(status.state, AgentState::Running, "an unhealthy agent is reported, not restarted");
    assert_eq!(h.stats.snapshot().starts, 1);
    h.stop().await;
}

#[tokio::test]
async fn a_restart_first_reaps_the_run_a_killed_steward_left() {
    let mut h = Harness::start("").await;
    h.stop().await;
    // What a steward killed by SIGKILL leaves: a live run (its own group) recorded in the store.
    let mut left = std::process::Command::new("sleep");
    std::os::unix::process::CommandExt::process_group(&mut left, 0);
    let mut left = left.arg("1000").spawn().unwrap();
    let record = group::RunRecord::of(left.id()).unwrap();
    h.store.kv_set(state::RUN_KEY, &serde_json::to_string(&record).unwrap(), 0).await.unwrap();
    // A record whose pid now names another process (same pid, other start time) is left alone.
    let mut other = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
    let stale = group::RunRecord { pid: other.id(), start_ticks: 1 };
    assert!(!group::reap(&stale).await);
    h.spawn(fast());
    let deadline = Instant::now() + WAIT;
    while left.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the last run was not reaped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(other.try_wait().unwrap().is_none(), "another process was killed");
    let _ = other.kill();
    let _ = other.wait();
    h.stop().await;
}
