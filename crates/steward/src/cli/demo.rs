//! `steward demo`: the quickstart. A mock social-media upstream, the real
//! gateway, and the example agent from `examples/quickstart/`, all in this
//! process with zero external services. The agent posts, hits its rate limit,
//! gets stuck in a loop and is stopped by the loop breaker; then the operator
//! undoes its posts with one `steward undo` (run as its own process, through
//! the daemon's admin API, like on a real host) and the mock shows them
//! gone. The demo narrates each step and leaves the state behind for
//! `steward last`.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use mock_upstream::MockUpstream;
use owo_colors::OwoColorize;
use steward_core::{config, daemon};

use super::{CliError, exit};

#[path = "../../../../examples/quickstart/agent.rs"]
mod agent;

/// The example config, shipped in `examples/quickstart/` and validated by a test.
const EXAMPLE_CONFIG: &str = include_str!("../../../../examples/quickstart/steward.toml");

/// The stand-in for a real upstream token. It lives only in a 0600 file and
/// in steward's memory; the demo checks it never reached the agent or a log.
const DEMO_UPSTREAM_TOKEN: &str = "demo-upstream-token-4f1c9a";

/// `steward demo`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the demo writes its config and state (replaced on each run).
    #[arg(long, default_value = "steward-demo")]
    dir: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode, CliError> {
    let rt = super::runtime()?;
    rt.block_on(demo(args))?;
    Ok(ExitCode::from(exit::OK))
}

async fn demo(args: Args) -> anyhow::Result<()> {
    let dir = &args.dir;
    let _ = std::fs::remove_dir_all(dir.join(".steward"));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let mock = MockUpstream::start().await.context("cannot start the mock upstream")?;
    let config_path = dir.join("steward.toml");
    let text = demo_config(&mock.base_url());
    std::fs::write(&config_path, text).with_context(|| format!("cannot write {}", config_path.display()))?;
    write_private(&dir.join("social.token"), DEMO_UPSTREAM_TOKEN)?;

    let config = config::load(&config_path).map_err(|e| anyhow::anyhow!("{:?}", miette::Report::new(e)))?;
    let daemon = daemon::start(&config).await.context("steward could not start")?;
    let token = std::fs::read_to_string(config.state.token_path()).context("cannot read the agent token")?;
    let agent = agent::Agent::new(&format!("http://{}", daemon.addr()), token.trim());

    say(&format!("steward is guarding the example agent: gateway on {}, upstream {}", daemon.addr(), mock.base_url()));
    let post_limit = config.tools.iter().find(|t| t.name == "post").and_then(|t| t.limit).map_or(5, |l| l.max);

    step("1. The agent posts. steward injects the real token; the agent only holds its steward token.");
    let mut first_id = String::new();
    for i in 1..=post_limit {
        let outcome = agent.post(&format!("hello world #{i}")).await;
        if first_id.is_empty() {
            first_id.clone_from(&outcome.detail);
        }
        show(&outcome);
    }
    step(&format!("2. It keeps posting. The `post` tool is limited to {post_limit} per minute, enforced in code:"));
    show(&agent.post("one post too many").await);

    step("3. It gets stuck re-reading the same status. The loop breaker counts identical calls:");
    for _ in 0..config.loop_breaker.max_identical {
        show(&agent.read(&first_id).await);
    }
    step("4. The kill switch is now engaged. Every call is refused until a human runs `steward resume`:");
    show(&agent.post("are you still there?").await);

    let steward = invocation();
    let config_arg = config_path.display();
    step("5. The operator undoes the agent's posts with one command (the kill switch does not block an undo):");
    say(&format!("$ {steward} undo --config {config_arg} --tool post --since 1h --yes"));
    let undo = undo_posts(&config_path).await?;
    for line in undo.lines() {
        say(line);
    }
    // What reached the upstream through steward (the demo's own listing below does not count).
    let received = mock.requests();
    let left = statuses_left(&mock.base_url()).await?;
    say(&format!("the mock now holds {left} status(es): the posts are gone"));

    let real_token_seen =
        received.iter().all(|r| r.header("authorization").is_some_and(|v| v.contains(DEMO_UPSTREAM_TOKEN)));
    let agent_token_leaked = received.iter().any(|r| r.headers.iter().any(|(_, v)| v.contains(token.trim())));
    daemon.shutdown().await;
    mock.shutdown().await;

    step("What the upstream saw:");
    say(&format!(
        "{} requests reached it; every one carried the real token: {}; the agent's steward token reached it: {}",
        received.len(),
        yes_no(real_token_seen),
        yes_no(agent_token_leaked)
    ));
    step("Next:");
    say(&format!("{steward} last --config {config_arg}            # every call, newest first (refusals included)"));
    say(&format!("{steward} last --config {config_arg} --failed   # only what was refused"));
    say(&format!("{steward} last --config {config_arg} --undoable # what steward can still undo"));
    say(&format!("{steward} status --config {config_arg}          # kill switch and limits"));
    say(&format!("{steward} resume --config {config_arg}          # release the kill switch"));
    say(&format!("audit log: {}", config.logging.dir.join("audit.jsonl").display()));
    if !real_token_seen || agent_token_leaked {
        anyhow::bail!("credential injection did not behave as expected");
    }
    Ok(())
}

/// Runs `steward undo --tool post --since 1h --yes` as its own process
/// (this binary), the way an operator would; returns what it printed.
async fn undo_posts(config_path: &std::path::Path) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find the steward binary")?;
    let out = tokio::process::Command::new(exe)
        .args(["undo", "--tool", "post", "--since", "1h", "--yes", "--config"])
        .arg(config_path)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("cannot run steward undo")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        anyhow::bail!("steward undo failed: {text}");
    }
    Ok(text)
}

/// How many statuses the mock still holds (`GET /api/v1/statuses`).
async fn statuses_left(base_url: &str) -> anyhow::Result<usize> {
    let list: serde_json::Value = reqwest::get(format!("{base_url}/api/v1/statuses"))
        .await
        .context("cannot list the mock's statuses")?
        .json()
        .await
        .context("the mock's status list is not JSON")?;
    Ok(list.as_array().map_or(0, Vec::len))
}

/// The example config pointed at the mock (`base_url`), the token file and
/// a free port. Only the settings change: the comments keep describing the
/// example as shipped (a blanket replace once rewrote "point the agent at
/// http://127.0.0.1:7600/..." to port 0).
fn demo_config(base_url: &str) -> String {
    EXAMPLE_CONFIG
        .lines()
        .map(|line| match line {
            "listen = \"127.0.0.1:7600\"" => "listen = \"127.0.0.1:0\"".to_owned(),
            "base_url = \"http://127.0.0.1:7700\"" => format!("base_url = \"{base_url}\""),
            "source = \"env:SOCIAL_TOKEN\"" => "source = \"file:social.token\"".to_owned(),
            other => other.to_owned(),
        })
        .map(|line| line + "\n")
        .collect()
}

/// How the user runs steward: `steward` when this binary is on PATH, the
/// `cargo run` form when cargo started it, else the binary's path.
fn invocation() -> String {
    let Ok(exe) = std::env::current_exe() else { return "steward".into() };
    let on_path = exe.file_name().zip(std::env::var_os("PATH")).is_some_and(|(name, path)| {
        std::env::split_paths(&path).any(|dir| dir.join(name).canonicalize().is_ok_and(|p| p == exe))
    });
    if on_path {
        "steward".into()
    } else if std::env::var_os("CARGO").is_some() {
        let release = exe.components().any(|c| c.as_os_str() == "release");
        if release { "cargo run --release --".into() } else { "cargo run --".into() }
    } else {
        exe.display().to_string()
    }
}

fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

fn say(text: &str) {
    anstream::println!("   {text}");
}

fn step(text: &str) {
    anstream::println!("\n{}", text.bold());
}

fn show(outcome: &agent::Outcome) {
    let status = if (200..300).contains(&outcome.status) {
        outcome.status.green().to_string()
    } else {
        outcome.status.red().to_string()
    };
    anstream::println!("   {:<28} → {status} {}", outcome.action, outcome.detail);
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_changes_settings_not_comments() {
        let text = demo_config("http://127.0.0.1:45678");
        assert!(text.contains("listen = \"127.0.0.1:0\"\n"), "{text}");
        assert!(text.contains("base_url = \"http://127.0.0.1:45678\"\n"), "{text}");
        assert!(text.contains("source = \"file:social.token\"\n"), "{text}");
        assert!(text.contains("point the agent at http://127.0.0.1:7600/api/social/"), "{text}");
        assert!(!text.contains("env:SOCIAL_TOKEN\""), "{text}");
        assert!(!text.contains("127.0.0.1:0/"), "{text}");
    }
}
