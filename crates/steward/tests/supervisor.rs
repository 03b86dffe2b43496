//! The supervisor as a user meets it, through the real `steward` binary:
//! `steward run` starts `[agent] command`, `steward status --json` reports
//! it, `steward stop` / `resume` stop and restart its whole process group,
//! a crash loop ends in a sticky `fatal`, exit 78 is not restarted, the agent
//! dies with steward (parent-death signal), its environment holds the steward
//! token and no credential, and `steward logs agent` shows its redacted,
//! rotated output. Every wait is bounded; every test ends with the leak check.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{CANARY_LLM_KEY, CANARY_TOKEN, Env};
use serde_json::Value;

/// Upper bound of every wait (two shared cores; a crash loop with the real
/// 1 s → 8 s full-jitter backoff takes up to 15 s).
const WAIT: Duration = Duration::from_secs(40);

/// `command = ["sh", "-c", script]` as TOML.
fn sh(script: &str) -> String {
    format!("command = [\"sh\", \"-c\", {}]", toml_string(script))
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn status_of(env: &Env) -> Value {
    let out = env.steward(&["status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls `steward status --json` until `ok` holds.
fn wait_status(env: &Env, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = status_of(env);
        if ok(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "status never matched; last:\n{status:#}\n{}", env.daemon_log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `path` has at least `n` lines.
#[expect(clippy::panic, reason = "a test helper fails its test by panicking, saying what went wrong")]
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        if Instant::now() >= deadline {
            // The agent's own words say why it never wrote.
            let log = path.parent().and_then(Path::parent).map(|d| d.join("state/logs/agent.log"));
            let log = log.and_then(|l| std::fs::read_to_string(l).ok()).unwrap_or_default();
            panic!("{} has {} lines, expected {n}; agent.log:\n{log}", path.display(), lines.len());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Gone, or a zombie nobody reaped (PID 1 of a container may not).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_dead(pids: &[u32], deadline: Instant) {
    while !pids.iter().all(|p| dead(*p)) {
        let alive: Vec<_> = pids.iter().filter(|p| !dead(**p)).collect();
        assert!(Instant::now() < deadline, "still alive: {alive:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn a_crash_loop_is_fatal_survives_a_daemon_restart_and_resume_clears_it() {
    let mut env =
        Env::with_agent(&format!("{}\nmin_uptime = \"10s\"", sh("echo start >> starts.txt; exit 1")), "").await;
    env.start();
    let starts = env.work("starts.txt");
    let status = wait_status(&env, |s| s["state"] == "fatal");
    assert_eq!(status["restarts"], 4, "{status:#}");
    assert_eq!(status["last_exit"]["code"], 1);
    assert!(status["reason"].as_str().unwrap().contains("crash loop: 5 exits"), "{status:#}");
    assert_eq!(wait_lines(&starts, 5).len(), 5);

    // Sticky across a daemon restart: not started again.
    env.restart();
    let status = wait_status(&env, |s| s["state"] == "fatal" && s["daemon"]["running"] == true);
    assert_eq!(status["pid"], Value::Null);
    let human = text(&env.steward(&["status"]).stdout);
    assert!(human.contains("agent    fatal (test-agent)"), "{human}");
    assert_eq!(wait_lines(&starts, 5).len(), 5);

    let out = env.steward(&["resume"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("crash-loop hold is cleared"), "{}", text(&out.stdout));
    wait_lines(&starts, 6);
    env.stop(false);
    env.assert_no_secret_leaked();
}

/// `sh` code that appends its own pid *as steward sees it* to `file`: `$$`
/// is the pid inside the agent's PID namespace, `/proc/self` (the host's
/// procfs) says the outer one.
fn host_pid_to(file: &str) -> String {
    format!("read -r p _ < /proc/self/stat; echo $p >> {file}")
}

#[tokio::test]
async fn stop_kills_a_process_group_that_ignores_sigterm_within_grace_and_resume_restarts_it() {
    let script = format!(
        "trap '' TERM; {me}; sh -c \"trap '' TERM; {me}; exec sleep 1000\" & wait",
        me = host_pid_to("pids.txt")
    );
    let agent = format!("{}\nstop_grace = \"1s\"\nmin_uptime = \"200ms\"", sh(&script));
    let mut env = Env::with_agent(&agent, "").await;
    env.start();
    let pids_file = env.work("pids.txt");
    let pids: Vec<u32> = wait_lines(&pids_file, 2).iter().map(|l| l.parse().unwrap()).collect();
    let status = wait_status(&env, |s| s["state"] == "running");
    // The box leads the group; the agent and its child are in it (inside their namespace).
    let members = steward_core::supervisor::live_members(status["pid"].as_u64().unwrap() as u32);
    assert!(pids.iter().all(|p| members.contains(p)), "{pids:?} not all in {members:?}");

    let out = env.steward(&["stop", "--reason", "posting junk"]);
    let stopped = Instant::now();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("stops the agent"), "{}", text(&out.stdout));
    // grace (1 s) + 1 s, counted from `steward stop` returning.
    wait_dead(&pids, stopped + Duration::from_secs(2));
    let status = wait_status(&env, |s| s["state"] == "stopped" && s["pid"].is_null());
    assert!(status["reason"].as_str().unwrap().contains("posting junk"), "{status:#}");
    assert_eq!(status["last_exit"]["signal"], 9, "SIGTERM was ignored, so SIGKILL ended it");

    // Not restarted while the kill switch is engaged (four polls and more).
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(wait_lines(&pids_file, 2).len(), 2);
    assert_eq!(status_of(&env)["state"], "stopped");

    let out = env.steward(&["resume"]);
    assert!(text(&out.stdout).contains("starts the agent again"), "{}", text(&out.stdout));
    let pids: Vec<u32> = wait_lines(&pids_file, 4)[2..].iter().map(|l| l.parse().unwrap()).collect();
    let status = wait_status(&env, |s| s["state"] == "running");
    assert_eq!(status["restarts"], 0, "a resume is a start, not a restart");

    // Shutting steward down stops the group too.
    env.stop(false);
    wait_dead(&pids, Instant::now() + Duration::from_secs(5));
    env.assert_no_secret_leaked();
}

/// Processes whose command line contains `marker` (`pgrep -f`).
fn marked(marker: &str) -> Vec<u32> {
    // The lingerers' own command lines (the box's and init's hold the marker as an argument too).
    let pattern = format!("done {marker}");
    let out = std::process::Command::new("pgrep").args(["-f", &pattern]).output().unwrap();
    text(&out.stdout).lines().filter_map(|l| l.trim().parse().ok()).filter(|p| !dead(*p)).collect()
}

/// Waits until no process carries `marker`.
fn wait_unmarked(marker: &str, deadline: Instant) {
    while !marked(marker).is_empty() {
        assert!(Instant::now() < deadline, "still alive: {:?}", marked(marker));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Python agent that leaves lingerers every way a process can leave its
/// parent's reach (double fork + setsid, setsid, setpgid), each a `sh` with
/// `<marker>-<how>` in its command line, then writes `ready` and lingers too.
const ESCAPER: &str = r#"
import os, sys, time
mark = sys.argv[1]
def linger(how):
    os.execvp("sh", ["sh", "-c", "while :; do sleep 1; done", mark + "-" + how])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        linger("daemon")
    os._exit(0)
if os.fork() == 0:
    os.setsid()
    linger("setsid")
if os.fork() == 0:
    os.setpgid(0, 0)
    linger("setpgid")
time.sleep(0.3)
open("ready", "a").write("x\n")
if len(sys.argv) > 2:
    sys.exit(int(sys.argv[2]))
linger("main")
"#;

fn escaper_agent(env_dir: &Path, marker: &str, exit: Option<i32>) -> String {
    let script = env_dir.join("escaper.py");
    std::fs::write(&script, ESCAPER).unwrap();
    let mut argv = vec!["python3".to_owned(), script.to_str().unwrap().to_owned(), marker.to_owned()];
    argv.extend(exit.map(|code| code.to_string()));
    format!("command = {}\nstop_grace = \"500ms\"", serde_json::to_string(&argv).unwrap())
}

#[tokio::test]
async fn no_descendant_escapes_stop_nor_kill_9_of_steward() {
    let marker = format!("escaper-{}-{}", std::process::id(), line!());
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut env = Env::with_agent(&escaper_agent(scratch.path(), &marker, None), "").await;
    env.start();
    wait_lines(&env.work("ready"), 1);
    let deadline = Instant::now() + WAIT;
    while marked(&marker).len() < 4 {
        assert!(Instant::now() < deadline, "lingerers: {:?}", marked(&marker));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(marked(&marker).len(), 4, "daemon, setsid, setpgid and the agent itself");

    // `steward stop`: every one of them, within the grace and a second.
    let out = env.steward(&["stop", "--reason", "escapers"]);
    assert!(out.status.success());
    wait_unmarked(&marker, Instant::now() + Duration::from_millis(1500));

    // Again, then kill -9 of steward: nobody left to stop them, yet they go.
    env.steward(&["resume"]);
    wait_lines(&env.work("ready"), 2);
    let deadline = Instant::now() + WAIT;
    while marked(&marker).len() < 4 {
        assert!(Instant::now() < deadline, "lingerers: {:?}", marked(&marker));
        std::thread::sleep(Duration::from_millis(20));
    }
    env.stop(true);
    wait_unmarked(&marker, Instant::now() + Duration::from_secs(2));
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn an_agent_that_exits_leaves_nothing_behind_across_restarts() {
    let marker = format!("exiter-{}-{}", std::process::id(), line!());
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let agent = format!("{}\nmin_uptime = \"100ms\"", escaper_agent(scratch.path(), &marker, Some(1)));
    let mut env = Env::with_agent(&agent, "").await;
    env.start();
    // Each run leaves three lingerers and exits 1; each is restarted.
    wait_lines(&env.work("ready"), 3);
    // Runs overlap nothing: at most one run's three lingerers (during its grace) exist at a time.
    for _ in 0..20 {
        let alive = marked(&marker).len();
        assert!(alive <= 3, "lingerers of several runs: {:?}", marked(&marker));
        std::thread::sleep(Duration::from_millis(25));
    }
    env.stop(false);
    wait_unmarked(&marker, Instant::now() + Duration::from_secs(2));
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn the_agent_dies_with_steward_even_on_kill_9() {
    let mut env = Env::with_agent(&sh(&format!("{}; exec sleep 1000", host_pid_to("pid.txt"))), "").await;
    env.start();
    let pid: u32 = wait_lines(&env.work("pid.txt"), 1)[0].parse().unwrap();
    let status = wait_status(&env, |s| s["state"] == "running" || s["state"] == "starting");
    assert_eq!(status["daemon"]["pid"], env.daemon_pid().unwrap().to_string());
    // The box is steward's direct child and leads the group the agent is in.
    let boxed = status["pid"].as_u64().unwrap() as u32;
    let stat = std::fs::read_to_string(format!("/proc/{boxed}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    assert_eq!(fields[1], env.daemon_pid().unwrap().to_string(), "parent");
    assert!(steward_core::supervisor::live_members(boxed).contains(&pid));
    // It runs as its own user.
    let agent_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = agent_status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid.contains(&common::agent_user().0.to_string()), "{uid}");
    env.stop(true);
    wait_dead(&[pid, boxed], Instant::now() + Duration::from_secs(5));
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn exit_code_78_is_not_restarted() {
    let mut env = Env::with_agent(&sh("echo start >> starts.txt; exit 78"), "").await;
    env.start();
    let status = wait_status(&env, |s| s["state"] == "stopped" && !s["last_exit"].is_null());
    assert_eq!(status["last_exit"]["code"], 78);
    assert!(status["reason"].as_str().unwrap().contains("EX_CONFIG"), "{status:#}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(wait_lines(&env.work("starts.txt"), 1).len(), 1);
    assert_eq!(status_of(&env)["restarts"], 0);
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn the_agent_environment_holds_the_steward_token_and_no_credential() {
    let agent = format!("{}\nenv = {{ LOG_LEVEL = \"info\" }}", sh("env > env.txt; exec sleep 1000"));
    let mut env = Env::with_agent(&agent, "").await;
    // A variable of steward's own environment that holds the credential is not passed on.
    let poisoned = format!("/home/{CANARY_TOKEN}");
    // Encoded forms count too: a base64 credential is a credential.
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(CANARY_TOKEN);
    env.start_with_env(&[
        ("HOME", &poisoned),
        ("USER", &encoded),
        ("SOCIAL_TOKEN", CANARY_TOKEN),
        ("SECRET_THING", CANARY_TOKEN),
    ]);
    let dump = wait_lines(&env.work("env.txt"), 7).join("\n");
    let url = format!("http://{}", env.addr.as_deref().unwrap());
    for expected in [
        format!("STEWARD_URL={url}"),
        format!("STEWARD_TOKEN={}", env.token),
        format!("OPENAI_BASE_URL={url}/llm/openai/v1"),
        format!("OPENAI_API_KEY={}", env.token),
        format!("ANTHROPIC_BASE_URL={url}/llm/anthropic"),
        format!("ANTHROPIC_API_KEY={}", env.token),
        "LOG_LEVEL=info".to_owned(),
    ] {
        assert!(dump.lines().any(|l| l == expected), "{expected} missing");
    }
    assert!(!dump.contains(CANARY_TOKEN), "a credential reached the agent's environment");
    assert!(!dump.contains(&encoded), "a base64 credential reached the agent's environment");
    assert!(!dump.lines().any(|l| l.starts_with("HOME=") || l.starts_with("SECRET_THING=") || l.starts_with("USER=")));
    // env.txt holds the agent token by design; the leak check is about steward's own files.
    std::fs::remove_file(env.work("env.txt")).unwrap();
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn a_credential_in_agent_env_refuses_to_start_with_the_config_exit_code() {
    // A key that does not look secret-bearing, so the config's literal-secret
    // scan does not catch it first: the supervisor's value check must.
    let env = Env::with_agent(&format!("{}\nenv = {{ GREETING = \"{CANARY_TOKEN}\" }}", sh("true")), "").await;
    let out = env.steward(&["run"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("[agent] env GREETING contains the value of credential `social`"), "{stderr}");
    assert!(!stderr.contains(CANARY_TOKEN), "the error repeats the secret");
}

#[tokio::test]
async fn agent_logs_are_redacted_rotated_tailed_and_followed() {
    // The agent reads the credential from a copy planted in its workdir (it
    // cannot read steward's), to prove a leak in its output is caught; it
    // waits for `go` so the follower below is attached before the first line.
    // stdout and stderr are separate pipes: their relative order in the log
    // is only guaranteed by the pause after the stderr line.
    let script = "while [ ! -e go ]; do sleep 0.02; done; echo 'starting' >&2; sleep 0.3; tok=$(cat leaked.token); \
                  i=0; while [ $i -lt 150 ]; do echo \"line $i token $tok mail bob@example.com\"; i=$((i+1)); done; \
                  echo 'done'; exec sleep 1000";
    let mut env = Env::with_agent(&sh(script), "max_file_size = \"4KiB\"").await;
    std::fs::write(env.work("leaked.token"), CANARY_TOKEN).unwrap();
    env.start();
    let log_dir = env.state_dir().join("logs");
    wait_status(&env, |s| s["state"] == "starting" || s["state"] == "running");

    let mut follower = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        // `-n 1000`: lines written before the follower attached (a debug
        // build on a loaded machine can take seconds to start) come from the
        // tail, later ones from following; either way each exactly once.
        .args(["logs", "agent", "-f", "-n", "1000", "--config"])
        .arg(&env.config_path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    // Killed however this test ends: a leaked follower would hold the test
    // harness's output pipe open forever.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let follower = KillOnDrop(follower);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // Give the follower time to open agent.log before the agent writes.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(env.work("go"), b"").unwrap();

    let mut followed = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !followed.iter().any(|l: &String| l.ends_with("stdout done")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => followed.push(line),
            Err(e) => panic!(
                "the follower stopped receiving lines ({e}); got {} lines, last {:?}",
                followed.len(),
                followed.last()
            ),
        }
    }
    drop(follower);
    assert!(followed[0].ends_with(" stderr starting"), "{:?}", followed.first());
    let stdout_lines: Vec<&String> = followed.iter().filter(|l| l.contains(" stdout line ")).collect();
    assert_eq!(stdout_lines.len(), 150, "every line exactly once across rotation");
    for (i, line) in stdout_lines.iter().enumerate() {
        assert!(line.contains(&format!("stdout line {i} token [REDACTED:credential] mail [REDACTED:email]")), "{line}");
    }
    let rotated = std::fs::read_dir(&log_dir)
        .unwrap()
        .filter(|e| steward_core::audit::AGENT.is_rotated(e.as_ref().unwrap().file_name().to_str().unwrap()))
        .count();
    assert!(rotated >= 2, "agent.log did not rotate at 4KiB");

    let out = env.steward(&["logs", "agent", "-n", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tail: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(tail.len(), 3);
    assert!(tail[0].contains("stdout line 148 "), "{tail:?}");
    assert!(tail[2].ends_with("stdout done"), "{tail:?}");
    // -n beyond the active file reaches into the rotated ones, in order.
    let out = env.steward(&["logs", "agent", "-n", "152"]);
    let all: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(all, followed, "tail across rotated files = what -f showed");

    env.stop(false);
    std::fs::remove_file(env.work("leaked.token")).unwrap();
    env.assert_no_secret_leaked();
}

// Multi-threaded: the mock upstream runs on this runtime while the test blocks in waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_quickstart_agent_runs_supervised_until_the_loop_breaker_stops_it() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/agent.py");
    let script = script.canonicalize().unwrap();
    assert!(
        std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success()),
        "python3 is needed to run examples/quickstart/agent.py"
    );
    let agent = format!("command = [\"python3\", {}]\nmin_uptime = \"1s\"", toml_string(script.to_str().unwrap()));
    let mut env = Env::with_agent(&agent, "").await;
    env.start();
    // The loop breaker engages the kill switch; the supervisor then stops the idling agent.
    let status =
        wait_status(&env, |s| s["state"] == "stopped" && s["kill_switch"]["engaged"] == true && s["pid"].is_null());
    assert_eq!(status["kill_switch"]["source"], "loop_breaker");
    assert!(status["reason"].as_str().unwrap().contains("loop detected: read_status"), "{status:#}");
    let out = env.steward(&["logs", "agent", "-n", "100"]);
    let log = text(&out.stdout);
    assert!(log.contains("stdout example agent talking to http://127.0.0.1:"), "{log}");
    assert!(log.contains("-> 200 1"), "{log}");
    // The four identical reads before the trip went through; the fifth
    // tripped the loop breaker (the status above says so). What the agent
    // prints from then on (`403 loop_detected`, its next call refused as
    // `killed`) races the supervisor's stop, which the trip triggers at once,
    // so it is not asserted. Whichever wins, nothing after the trip reached
    // the upstream: it saw the 10 posts and the 4 admitted reads only.
    assert_eq!(log.matches("read status 1                -> 200 1").count(), 4, "{log}");
    assert_eq!(env.mock.requests().len(), 14, "{log}");
    // Every call went through steward with the steward token; the upstream only saw the real one.
    assert!(
        env.mock
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some(format!("Bearer {CANARY_TOKEN}").as_str()))
    );
    env.stop(false);
    env.assert_no_secret_leaked();
}

// A SIGTERM that arrives as soon as the daemon's address file exists (systemd,
// `steward stop`, a script) is drained like any other, never the default
// action that kills the process mid-start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_right_after_start_drains_and_exits_cleanly() {
    let mut env = Env::with_agent("command = [\"sleep\", \"30\"]", "").await;
    for _ in 0..5 {
        env.start();
        // `stop` sends SIGTERM at once and asserts exit status 0.
        env.stop(false);
    }
    env.assert_no_secret_leaked();
}

/// An agent that tries everything it can against steward: every readable
/// `/proc/*/environ` (steward's included), every file of the state dir, the
/// credential file, writing `steward.db`, and `steward resume` against the
/// store. It writes what it saw and what worked to `report.json`.
const ATTACKER: &str = r#"
import glob, json, os, subprocess, sys
state, cred, steward, config = sys.argv[1:5]
seen, worked = [], []
for path in glob.glob("/proc/[0-9]*/environ") + ["/proc/%d/environ" % os.getppid()]:
    try:
        seen.append(open(path, "rb").read().decode("utf-8", "replace"))
        worked.append("read " + path)
    except OSError:
        pass
try:
    os.listdir(state); worked.append("list " + state)
except OSError:
    pass
for name in ["steward.db", "steward.db-wal", "agent.token", "daemon.lock", "daemon.addr", "logs/audit.jsonl"]:
    try:
        seen.append(open(os.path.join(state, name), "rb").read().decode("utf-8", "replace")); worked.append("read " + name)
    except OSError:
        pass
try:
    seen.append(open(cred).read()); worked.append("read the credential file")
except OSError:
    pass
try:
    with open(os.path.join(state, "steward.db"), "ab") as db:
        db.write(b"x"); worked.append("write steward.db")
except OSError:
    pass
r = subprocess.run([steward, "resume", "--config", config], capture_output=True, text=True)
if r.returncode == 0:
    worked.append("steward resume")
seen.append(r.stdout + r.stderr)
json.dump({"seen": seen, "worked": worked}, open("report.json", "w"))
if len(sys.argv) > 5:
    # The kill-switch test: a detached helper keeps trying to release it.
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sh", ["sh", "-c", 'while :; do "$1" resume --config "$2" >/dev/null 2>&1; '
                             'printf x >> "$3"/steward.db 2>/dev/null; sleep 0.05; done', sys.argv[5], steward,
                             config, state])
        os._exit(0)
os.execvp("sleep", ["sleep", "1000"])
"#;

fn attacker_agent(env: &Env, scratch: &Path, marker: Option<&str>) -> String {
    let script = scratch.join("attacker.py");
    std::fs::write(&script, ATTACKER).unwrap();
    let mut argv = vec![
        "python3".to_owned(),
        script.to_str().unwrap().to_owned(),
        env.state_dir().to_str().unwrap().to_owned(),
        env.dir.path().join("social.token").to_str().unwrap().to_owned(),
        env!("CARGO_BIN_EXE_steward").to_owned(),
        env.config_path.to_str().unwrap().to_owned(),
    ];
    argv.extend(marker.map(str::to_owned));
    format!("command = {}\nstop_grace = \"500ms\"", serde_json::to_string(&argv).unwrap())
}

/// A config for an agent whose command needs the harness's paths: written
/// over the harness's own config, `[agent]` section replaced.
async fn env_with(make: impl Fn(&Env) -> String) -> Env {
    let env = Env::with_agent(&sh("true"), "").await;
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    let config = config.replacen(&sh("true"), &make(&env), 1);
    std::fs::write(&env.config_path, config).unwrap();
    env
}

fn scratch_dir() -> tempfile::TempDir {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    scratch
}

#[tokio::test]
async fn the_agent_cannot_read_credentials_nor_touch_the_store() {
    let scratch = scratch_dir();
    let mut env = env_with(|env| attacker_agent(env, scratch.path(), None)).await;
    // The credential also sits in steward's own environment.
    env.start_with_env(&[("SOCIAL_TOKEN", CANARY_TOKEN)]);
    let report_path = env.work("report.json");
    let deadline = Instant::now() + WAIT;
    let report: Value = loop {
        if let Ok(Ok(report)) = std::fs::read(&report_path).map(|b| serde_json::from_slice(&b)) {
            break report;
        }
        assert!(Instant::now() < deadline, "no report; {}", env.daemon_log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let worked: Vec<&str> = report["worked"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    // It may read its own environment (and its init's): nothing of steward's.
    assert!(worked.iter().all(|w| w.starts_with("read /proc/")), "{worked:?}");
    let daemon = env.daemon_pid().unwrap();
    assert!(!worked.contains(&format!("read /proc/{daemon}/environ").as_str()), "steward's environ was readable");
    let seen = report["seen"].to_string();
    assert!(!seen.contains(CANARY_TOKEN) && !seen.contains(CANARY_LLM_KEY), "a credential reached the agent");
    // The store is intact and steward still runs and answers.
    assert_eq!(status_of(&env)["kill_switch"]["engaged"], false);
    env.stop(false);
    let db = std::fs::metadata(env.state_dir().join("steward.db")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&db.permissions()) & 0o777, 0o600);
    std::fs::remove_file(report_path).unwrap();
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn an_agent_trying_to_release_the_kill_switch_stays_stopped() {
    let scratch = scratch_dir();
    let marker = format!("releaser-{}-{}", std::process::id(), line!());
    let mut env = env_with(|env| attacker_agent(env, scratch.path(), Some(&marker))).await;
    env.start();
    wait_lines(&env.work("report.json"), 1);
    let deadline = Instant::now() + WAIT;
    while marked(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the releaser never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = env.steward(&["stop", "--reason", "it tries to release itself"]);
    assert!(out.status.success());
    wait_unmarked(&marker, Instant::now() + Duration::from_secs(2));
    // Long after: still engaged, still stopped, never restarted.
    std::thread::sleep(Duration::from_secs(2));
    let status = status_of(&env);
    assert_eq!(status["kill_switch"]["engaged"], true, "{status:#}");
    assert_eq!(status["state"], "stopped", "{status:#}");
    assert_eq!(status["pid"], Value::Null);
    env.stop(false);
    std::fs::remove_file(env.work("report.json")).unwrap();
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn an_agent_as_stewards_own_user_is_refused_with_the_fix() {
    let env = Env::with_agent(&format!("{}\nuser = \"root\"", sh("true")), "").await;
    let out = env.steward(&["run"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the agent would run as root"), "{stderr}");
    assert!(stderr.contains("user = \"steward-agent\""), "{stderr}");
}

#[tokio::test]
async fn a_state_dir_the_agent_could_replace_is_refused_with_the_fix() {
    let env = Env::with_agent(&sh("true"), "").await;
    std::fs::set_permissions(env.dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = env.steward(&["run"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("could replace") && stderr.contains("chmod go-w"), "{stderr}");
}

/// Connects from inside the agent: the gateway's `/healthz`, then a second
/// local server on the host's 127.0.0.1. Writes `net.json`.
const PROBER: &str = r#"
import json, os, socket, sys, urllib.request
out = {}
try:
    out["gateway"] = urllib.request.urlopen(os.environ["STEWARD_URL"] + "/healthz", timeout=5).read().decode()
except Exception as e:
    out["gateway"] = "failed: %r" % e
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
    out["other"] = "connected"
except OSError as e:
    out["other"] = "failed: %s" % e
out["url"] = os.environ["STEWARD_URL"]
json.dump(out, open("net.json", "w"))
os.execvp("sleep", ["sleep", "1000"])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steward_only_network_reaches_the_gateway_and_nothing_else() {
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    let scratch = scratch_dir();
    let script = scratch.path().join("prober.py");
    std::fs::write(&script, PROBER).unwrap();
    let argv = ["python3", script.to_str().unwrap(), &other_port.to_string()];
    let agent = format!("command = {}\nnetwork = \"steward-only\"", serde_json::to_string(&argv).unwrap());
    let mut env = Env::with_agent(&agent, "").await;
    env.start();
    let path = env.work("net.json");
    let deadline = Instant::now() + WAIT;
    while !path.exists() {
        let status = status_of(&env);
        if status["state"] == "stopped" && status["reason"].as_str().is_some_and(|r| r.contains("EX_CONFIG")) {
            let log = text(&env.steward(&["logs", "agent", "-n", "20"]).stdout);
            assert!(log.contains("namespace"), "the box failed for another reason: {log}");
            // The kernel refused the namespaces: say so, loudly.
            eprintln!("SKIPPED steward_only_network_reaches_the_gateway_and_nothing_else: {log}");
            return;
        }
        assert!(Instant::now() < deadline, "no net.json; {}", env.daemon_log());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(report["gateway"], "ok\n", "{report:#}");
    assert!(report["other"].as_str().unwrap().starts_with("failed"), "{report:#}");
    // The same gateway, seen on the agent's own loopback.
    let port = env.addr.as_deref().unwrap().rsplit_once(':').unwrap().1.to_owned();
    assert_eq!(report["url"], format!("http://127.0.0.1:{port}"));
    drop(other);
    env.stop(false);
    env.assert_no_secret_leaked();
}

/// Bytes of every file under `dir` (the logs, their rotations, archives).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

// 200 MiB go through the pipe as 200 lines of 1 MiB: each is cut at 16 KiB
// (the rest read and discarded), so 3.2 MB are redacted and logged, three
// times the budget, in seconds. Short lines carry the same pressure, but a
// debug build redacts about 0.5 MB/s, which would make this test last
// minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_stdout_flood_never_takes_the_log_dir_over_max_total_size() {
    const BUDGET: u64 = 1024 * 1024;
    let script = "yes 'the agent reports: processed item, all good, moving on' | tr -d '\\n' | fold -w 1048576 \
                  | head -n 200; echo flood done; exec sleep 1000";
    let logging = format!("max_total_size = {BUDGET}\nmax_file_size = \"256KiB\"");
    let mut env = Env::with_agent(&sh(script), &logging).await;
    env.start();
    let logs = env.state_dir().join("logs");
    let (mut samples, mut peak) = (0_u32, 0_u64);
    let deadline = Instant::now() + WAIT * 4;
    loop {
        let bytes = dir_bytes(&logs);
        peak = peak.max(bytes);
        samples += 1;
        assert!(bytes <= BUDGET, "the log dir holds {bytes} bytes, over max_total_size = {BUDGET}");
        let active = std::fs::read_to_string(logs.join("agent.log")).unwrap_or_default();
        if active.contains("stdout flood done") {
            break;
        }
        assert!(Instant::now() < deadline, "the flood did not end in time ({samples} samples, peak {peak})");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = text(&env.steward(&["logs", "agent", "-n", "100000"]).stdout);
    assert!(log.contains("steward dropped the"), "no line says what was dropped");
    assert!(peak > BUDGET / 2, "the budget was never approached (peak {peak}): not a flood");
    eprintln!("flood: {samples} samples every 100 ms, peak {peak} of {BUDGET} bytes");
    env.stop(false);
    assert!(dir_bytes(&logs) <= BUDGET);
    env.assert_no_secret_leaked();
}
