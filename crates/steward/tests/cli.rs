//! The command line as a user meets it: init, config check errors, demo,
//! last/status without a daemon, exit codes.

mod common;

use std::process::Command;

use serde_json::Value;

#[expect(clippy::unwrap_used, reason = "a test helper: a failed step is a failed test")]
fn steward(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("STEWARD_CONFIG")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn init_writes_a_valid_starter_and_a_private_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = steward(dir.path(), &["init", "--name", "poster"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("steward config check"));
    let token = dir.path().join(".steward/agent.token");
    assert_eq!(std::fs::metadata(&token).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(dir.path().join(".steward")).unwrap().permissions().mode() & 0o777, 0o700);

    let out = steward(dir.path(), &["config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid"));

    // A second init refuses to overwrite.
    let out = steward(dir.path(), &["init"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--force"));
}

#[test]
fn config_check_names_the_llm_providers_and_the_spend_cap() {
    let dir = tempfile::tempdir().unwrap();
    common::private_file(&dir.path().join("openai.key"), "sk-config-check-test-key-0123456789\n");
    let llm = "[agent]\nname = \"writer\"\n\n[credentials.openai]\nsource = \"file:openai.key\"\n\n\
               [llm.openai]\nkind = \"openai\"\nbase_url = \"https://api.openai.example\"\ncredential = \"openai\"\n";
    std::fs::write(
        dir.path().join("steward.toml"),
        format!("{llm}\n[spend]\ndaily_cap_usd = 5.0\nalert_at_usd = 4.0\n"),
    )
    .unwrap();
    let out = steward(dir.path(), &["config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("1 LLM provider(s)"), "{stdout}");
    assert!(stdout.contains("openai API at https://api.openai.example (credential openai)"), "{stdout}");
    assert!(stdout.contains("spend cap $5 a day (alert at $4)"), "{stdout}");

    let out = steward(dir.path(), &["config", "check", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["llm"][0]["name"], "openai");
    assert_eq!(json["llm"][0]["kind"], "openai");
    assert_eq!(json["spend"]["daily_cap_usd"], 5.0);

    // Without a cap the check says so, with the setting that adds one.
    std::fs::write(dir.path().join("steward.toml"), llm).unwrap();
    let out = steward(dir.path(), &["config", "check"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("no spend cap") && text(&out.stdout).contains("daily_cap_usd"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn config_errors_name_file_line_column_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("steward.toml"),
        "[agent]\nname = \"x\"\n\n[[tools]]\nname = \"post\"\nupstream = \"nowhere\"\nmatch = \"POST /x\"\nlimit = \"10/fortnight\"\n",
    )
    .unwrap();
    let out = steward(dir.path(), &["config", "check"]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains("steward.toml:6:") || err.contains("steward.toml:8:"), "no file:line:col in {err}");
    assert!(err.contains("nowhere"), "{err}");
    assert!(err.contains("hour"), "the limit hint is missing: {err}");

    // Missing file: says so and points at init.
    let empty = tempfile::tempdir().unwrap();
    let out = steward(empty.path(), &["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("steward init"), "{}", text(&out.stderr));

    // Usage errors are clap's exit code 2.
    assert_eq!(steward(dir.path(), &["frobnicate"]).status.code(), Some(2));
}

/// Issue 12, item 11: the snippet under a config error masked a literal
/// secret, but the error's first line printed it in full, from `config
/// check`, `run` and `doctor` alike (and under systemd, into the journal).
#[test]
fn no_command_prints_a_literal_secret_from_a_config_error() {
    let pat = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    let project = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFGH";
    let head = "[agent]\nname = \"x\"\n\n[credentials.social]\nsource = \"env:SOCIAL_TOKEN\"\n\n";
    let cases = [
        (
            format!(
                "{head}[upstreams.social]\nbase_url = \"https://social.example\"\ncredential = \"social\"\n\
                 auth = {{ header = \"Authorization\", format = \"Bearer {pat}\" }}\n"
            ),
            pat,
            "{secret}",
        ),
        (
            format!(
                "{head}[upstreams.llm]\nbase_url = \"https://api.example.com/v1?api_key={project}\"\n\
                 credential = \"social\"\n"
            ),
            project,
            "?query",
        ),
    ];
    for (config, secret, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("steward.toml"), &config).unwrap();
        for args in [&["config", "check"][..], &["run"], &["doctor"], &["doctor", "--json"]] {
            let out = steward(dir.path(), args);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            // `config check` and `run` exit 3 (config error); doctor's own scheme says 2 (could not run).
            let expected = if args[0] == "doctor" { 2 } else { 3 };
            assert_eq!(out.status.code(), Some(expected), "{args:?}: {stdout}{stderr}");
            for shown in [&stdout, &stderr] {
                // Joined up again in case the report wrapped a long word.
                let joined: String = shown.chars().filter(|c| !c.is_whitespace() && *c != '│').collect();
                assert!(!joined.contains(&secret[..12]), "{args:?} printed the secret:\n{shown}");
            }
            // The error still says what is wrong, at file:line:column.
            // (With --json, the error object is on stdout.)
            let report = if args.contains(&"--json") { &stdout } else { &stderr };
            assert!(report.contains(message) && report.contains("steward.toml:"), "{args:?}: {report}");
        }
    }
}

#[test]
fn demo_runs_end_to_end_and_leaves_a_journal_to_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let out = steward(dir.path(), &["demo", "--dir", "demo"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "demo failed: {stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("rate_limited"), "{stdout}");
    assert!(stdout.contains("loop_detected"), "{stdout}");
    assert!(stdout.contains("killed"), "{stdout}");
    assert!(stdout.contains(" last --config demo/steward.toml"), "{stdout}");

    let out = steward(dir.path(), &["last", "--config", "demo/steward.toml", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rows.as_array().unwrap().len() >= 10);
    // Step 5: the operator undid the posts, newest first, and the mock holds none.
    assert!(stdout.contains("undo --config demo/steward.toml --tool post --since 1h --yes"), "{stdout}");
    let undone = stdout.lines().filter(|l| l.contains("DELETE /api/v1/statuses/") && l.contains("undone")).count();
    assert_eq!(undone, 5, "{stdout}");
    assert!(stdout.contains("the mock now holds 0 status(es)"), "{stdout}");
    let out = steward(dir.path(), &["last", "--config", "demo/steward.toml", "-n", "3"]);
    assert!(text(&out.stdout).contains("undo of"), "{}", text(&out.stdout));
    let out = steward(dir.path(), &["last", "--config", "demo/steward.toml", "-n", "6"]);
    assert!(text(&out.stdout).contains("killed"));
    let out = steward(dir.path(), &["last", "--config", "demo/steward.toml", "--undoable"]);
    assert!(text(&out.stdout).contains("no call can be undone"), "{}", text(&out.stdout));

    let out = steward(dir.path(), &["status", "--config", "demo/steward.toml", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The demo's agent runs inside the demo, not under steward: disabled, as the README says.
    assert_eq!(status["state"], "disabled");
    assert!(status["reason"].as_str().unwrap().contains("kill switch engaged"), "{status}");
    assert_eq!(status["daemon"]["running"], false);

    let demo = dir.path().join("demo");
    let token = std::fs::read_to_string(demo.join(".steward/agent.token")).unwrap();
    common::assert_no_needles(
        &demo,
        &["demo-upstream-token-4f1c9a".to_owned(), token.trim().to_owned()],
        &[demo.join("social.token"), demo.join(".steward/agent.token")],
    );
}
