//! What an operator meets outside the happy path: `config check` predicting
//! `steward run` (every unresolved reference at once, `--offline`), errors
//! as JSON with `--json`, config errors without stray prefixes, colour only
//! on a terminal, `--log-format json`, completions and the man page.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `steward args...` in `dir`, with no colour variables inherited and `env` added.
fn steward(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steward"));
    command
        .current_dir(dir)
        .args(args)
        .env_remove("STEWARD_CONFIG")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env_remove("ALERT_WEBHOOK_URL")
        .env_remove("SOCIAL_TOKEN");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// A config that is valid but names two references this machine cannot
/// resolve: a credential and an alert sink's URL.
const TWO_MISSING: &str = "[agent]\nname = \"poster\"\n\n\
    [gateway]\nlisten = \"127.0.0.1:0\"\n\n\
    [credentials.social]\nsource = \"env:SOCIAL_TOKEN\"\n\n\
    [upstreams.social]\nbase_url = \"http://127.0.0.1:9\"\ncredential = \"social\"\n\n\
    [[alerts.sinks]]\nkind = \"webhook\"\nurl = \"env:ALERT_WEBHOOK_URL\"\n";

#[test]
fn config_check_predicts_run_listing_every_unresolved_reference() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("steward.toml"), TWO_MISSING).unwrap();

    for args in [&["config", "check"][..], &["run"]] {
        let out = steward(dir.path(), args, &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(err.contains("SOCIAL_TOKEN") && err.contains("ALERT_WEBHOOK_URL"), "{args:?} lists both: {err}");
    }
    let out = steward(dir.path(), &["config", "check", "--json"], &[]);
    assert_eq!(out.status.code(), Some(3));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "credentials", "{json}");
    assert_eq!(json["error"]["problems"].as_array().unwrap().len(), 2, "{json}");
    assert!(json["error"]["location"].as_str().unwrap().ends_with("steward.toml"), "{json}");

    // --offline validates the file alone, and says so.
    let out = steward(dir.path(), &["config", "check", "--offline"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("not resolved (--offline)"), "{}", text(&out.stdout));
    let out = steward(dir.path(), &["config", "check", "--offline", "--json"], &[]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["credentials"]["offline"], true);
    assert_eq!(json["credentials"]["resolved"], false);

    // With both set, the check resolves them and passes.
    let set = [("SOCIAL_TOKEN", "social-value-for-the-check"), ("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")];
    let out = steward(dir.path(), &["config", "check"], &set);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 credential(s) and 1 alert reference(s) resolved"), "{}", text(&out.stdout));
    assert!(!text(&out.stdout).contains("social-value-for-the-check"));
}

#[test]
fn with_json_every_error_is_a_json_object_on_stdout_with_the_same_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("steward.toml"),
        "[agent]\nname = \"x\"\n\n[gateway]\nlisten = \"nope\"\nmax_body = \"1 parsec\"\n",
    )
    .unwrap();
    for args in [&["config", "check", "--json"][..], &["last", "--json"], &["status", "--json"], &["spend", "--json"]] {
        let out = steward(dir.path(), args, &[]);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"));
        let error = &json["error"];
        assert_eq!(error["kind"], "config", "{json}");
        assert!(error["message"].as_str().unwrap().contains("nope"), "{json}");
        assert!(error["help"].as_str().unwrap().contains("127.0.0.1:7600"), "{json}");
        assert!(error["location"].as_str().unwrap().ends_with("steward.toml:5:10"), "{json}");
        assert_eq!(error["related"].as_array().unwrap().len(), 1, "the second problem: {json}");
    }
    // doctor keeps its own code for "could not run".
    let out = steward(dir.path(), &["doctor", "--json"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["error"]["kind"], "config");

    // A command that fails at run time: kind "failure", exit 1.
    std::fs::write(dir.path().join("steward.toml"), "[agent]\nname = \"x\"\n").unwrap();
    let out = steward(dir.path(), &["alerts", "test", "--json"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "failure");
    assert!(json["error"]["message"].as_str().unwrap().contains("[[alerts.sinks]]"), "{json}");
    let out = steward(dir.path(), &["logs", "agent", "--json"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["error"]["message"].is_string());

    // A usage error: clap's exit code 2, as JSON too.
    let out = steward(dir.path(), &["last", "--json", "--bogus"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "usage");
    assert!(json["error"]["message"].as_str().unwrap().contains("--bogus"), "{json}");
    assert_eq!(steward(dir.path(), &["last", "--bogus"], &[]).status.code(), Some(2));
}

#[test]
fn every_config_problem_is_shown_alike_without_a_stray_error_prefix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("steward.toml"),
        "[agent]\nname = \"x\"\n\n[gateway]\nlisten = \"nope\"\nmax_body = \"1 parsec\"\n",
    )
    .unwrap();
    let out = steward(dir.path(), &["config", "check"], &[]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(!err.contains("Error:"), "{err}");
    assert_eq!(err.matches("help:").count(), 2, "both problems with their fix: {err}");
    assert!(err.contains("2 problems"), "{err}");
    assert!(!err.contains('\x1b'), "no colour into a pipe: {err}");
    let forced = steward(dir.path(), &["config", "check"], &[("CLICOLOR_FORCE", "1")]);
    assert!(text(&forced.stderr).contains('\x1b'), "CLICOLOR_FORCE: {}", text(&forced.stderr));
}

/// A config whose gateway port is taken: `steward run` logs a line (the new
/// agent token), then fails to bind, so it ends by itself.
fn busy_port_config(dir: &Path) -> std::net::TcpListener {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    std::fs::write(dir.join("steward.toml"), format!("[agent]\nname = \"x\"\n\n[gateway]\nlisten = \"{addr}\"\n"))
        .unwrap();
    taken
}

#[test]
fn run_logs_without_colour_codes_off_a_terminal_and_as_json_lines_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let _taken = busy_port_config(dir.path());
    let out = steward(dir.path(), &["run"], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("created the agent token"), "{err}");
    assert!(!err.contains('\x1b'), "ANSI codes in a pipe: {err:?}");
    assert_eq!(err.matches("Address already in use").count(), 1, "said once: {err}");
    assert!(!err.contains("Error:"), "{err}");

    // Each run below starts with no state, so it logs the new token again.
    let fresh = || std::fs::remove_dir_all(dir.path().join(".steward")).unwrap();
    fresh();
    let out = steward(dir.path(), &["run"], &[("CLICOLOR_FORCE", "1")]);
    assert!(text(&out.stderr).contains('\x1b'), "CLICOLOR_FORCE: {}", text(&out.stderr));
    fresh();
    let out = steward(dir.path(), &["run"], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!text(&out.stderr).contains('\x1b'), "NO_COLOR wins over CLICOLOR_FORCE (anstream's rule)");

    fresh();
    let out = steward(dir.path(), &["run", "--log-format", "json"], &[("CLICOLOR_FORCE", "1")]);
    let err = text(&out.stderr);
    let first = err.lines().next().unwrap();
    let line: Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["fields"]["message"], "created the agent token", "{line}");
    assert!(!first.contains('\x1b'), "{first}");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_definition() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [("bash", "_steward()"), ("zsh", "#compdef steward"), ("fish", "complete -c steward")] {
        let out = steward(dir.path(), &["completions", shell], &[]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("runbook") && script.contains("log-format"), "{shell} knows the commands");
    }
    let out = steward(dir.path(), &["man"], &[]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH steward 1"), "{page}");
    assert!(page.contains("STEWARD_CONFIG"), "the environment variable is documented: {page}");

    let out = steward(dir.path(), &["man", "--dir", "man"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in ["steward.1", "steward-run.1", "steward-config-check.1", "steward-completions.1"] {
        assert!(dir.path().join("man").join(page).is_file(), "{page} missing");
    }
    assert!(!dir.path().join("man/steward-agent-exec.1").exists());
}

#[test]
fn iana_time_zones_work_on_a_host_without_a_time_zone_database() {
    let dir = tempfile::tempdir().unwrap();
    let no_tzdata = dir.path().join("empty-zoneinfo");
    std::fs::create_dir(&no_tzdata).unwrap();
    std::fs::write(
        dir.path().join("steward.toml"),
        "[agent]\nname = \"x\"\n\n[spend]\ndaily_cap_usd = 5\ntimezone = \"Europe/Berlin\"\n\n\
         [backup]\ndestination = \"file:///tmp/steward-tz-test-backups\"\ntimezone = \"America/New_York\"\n",
    )
    .unwrap();
    // jiff reads the system database from TZDIR: pointed at an empty
    // directory, only the copy compiled into steward can know these names.
    let tzdir = no_tzdata.to_str().unwrap();
    let out = steward(dir.path(), &["config", "check", "--offline"], &[("TZDIR", tzdir)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = steward(dir.path(), &["spend", "--json"], &[("TZDIR", tzdir)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let day = serde_json::from_slice::<Value>(&out.stdout).unwrap()["today"]["day"].as_str().unwrap().to_owned();
    assert_eq!(day.len(), 10, "{day}");

    std::fs::write(dir.path().join("steward.toml"), "[agent]\nname = \"x\"\n\n[spend]\ntimezone = \"Mars/Olympus\"\n")
        .unwrap();
    let out = steward(dir.path(), &["config", "check", "--offline"], &[("TZDIR", tzdir)]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("Europe/Berlin"), "the fix names an IANA zone: {}", text(&out.stderr));
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

/// The doctor item about git tracking, from `doctor --json`.
fn tracking_item(dir: &Path) -> Value {
    let out = steward(dir, &["doctor", "--json"], &[]);
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    checks.into_iter().find(|c| c["item"] == "git tracks neither the state dir nor a secret file").unwrap()
}

#[test]
fn init_keeps_the_state_dir_out_of_git_and_doctor_fails_when_it_is_tracked_anyway() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    let out = steward(dir.path(), &["init"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(dir.path().join(".steward/.gitignore")).unwrap().lines().last(), Some("*"));

    // `git add .` takes the config, never the agent token or the store.
    git(dir.path(), &["add", "."]);
    let staged = Command::new("git").current_dir(dir.path()).args(["ls-files"]).output().unwrap();
    assert_eq!(text(&staged.stdout), "steward.toml\n");
    assert_eq!(tracking_item(dir.path())["status"], "pass");

    // Forced in anyway (and a secret file next to the config): doctor fails, naming both.
    common::private_file(&dir.path().join("social.token"), "token-value-for-the-git-test\n");
    let config = std::fs::read_to_string(dir.path().join("steward.toml")).unwrap();
    std::fs::write(
        dir.path().join("steward.toml"),
        format!("{config}\n[credentials.social]\nsource = \"file:social.token\"\n"),
    )
    .unwrap();
    git(dir.path(), &["add", "-f", ".steward/agent.token", "social.token"]);
    let item = tracking_item(dir.path());
    assert_eq!(item["status"], "fail", "{item}");
    let detail = item["detail"].as_str().unwrap();
    assert!(detail.contains(".steward") && detail.contains("social.token"), "{detail}");
    assert!(item["fix"].as_str().unwrap().contains("git rm -r --cached"), "{item}");
}

/// Splits a shell command line into words, honouring '...' and "..." quotes
/// and `\` line continuations (enough for the README's curl example).
fn shell_words(line: &str) -> Vec<String> {
    let line = line.replace("\\\n", " ");
    let (mut words, mut word, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_curl_example_posts_successfully() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let start = readme.find("\ncurl ").expect("the README has a curl example") + 1;
    let end = start + readme[start..].find("'\n").unwrap() + 1;
    let words = shell_words(&readme[start..end]);

    let mut env = common::Env::new("").await;
    env.start();
    let (mut headers, mut method, mut url, mut data) = (Vec::new(), "GET".to_owned(), String::new(), None);
    let mut args = words.iter().skip(1);
    while let Some(word) = args.next() {
        match word.as_str() {
            "-H" => headers.push(args.next().unwrap().replace("$STEWARD_TOKEN", &env.token)),
            "-X" => method.clone_from(args.next().unwrap()),
            "-d" => data = Some(args.next().unwrap().clone()),
            other => url = other.replace("http://127.0.0.1:7600", &env.url("")),
        }
    }
    let mut request = env.client().request(method.parse().unwrap(), url);
    let mut content_type = None;
    for header in &headers {
        let (name, value) = header.split_once(": ").unwrap();
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_owned());
        }
        request = request.header(name, value);
    }
    if let Some(data) = data {
        // What curl sends with -d and no Content-Type of its own.
        if content_type.is_none() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        request = request.body(data);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_shows_the_status_the_agent_got_and_names_unknown_tools() {
    let mut env = common::Env::new("").await;
    env.start();
    // Twelve posts against a 10/hour limit: two are refused at admission (429).
    for i in 0..12 {
        let body = serde_json::json!({ "status": format!("post {i}") });
        env.req(reqwest::Method::POST, "/api/social/api/v1/statuses").json(&body).send().await.unwrap();
    }
    let out = env.steward(&["last", "--json", "--tool", "post"]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let limited: Vec<&Value> = rows.iter().filter(|r| r["decision"] == "rate_limited").collect();
    assert_eq!(limited.len(), 2, "{rows:?}");
    assert!(limited.iter().all(|r| r["status"] == 429), "the status the agent got: {limited:?}");
    let table = text(&env.steward(&["last", "--failed"]).stdout);
    assert!(table.lines().any(|l| l.contains("rate_limited") && l.contains(" 429 ")), "{table}");

    let out = env.steward(&["last", "--tool", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("no tool is named `nope`") && err.contains("post, read_status, list"), "{err}");
    let out = env.steward(&["last", "--tool", "echo"]);
    assert!(out.status.success() && text(&out.stdout).contains("no calls of tool `echo` recorded"));
    env.stop(false);
    env.assert_no_secret_leaked();
}
