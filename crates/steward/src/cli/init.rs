//! `steward init`: writes a commented starter config (0600), the state dir
//! (0700) and the agent token (0600), and, run as root, creates the account
//! the supervised agent runs as (`[agent] user`, `steward-agent`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use steward_core::config;
use steward_core::daemon::ensure_private_dir;
use steward_core::secrets::AgentToken;

use super::{CliError, exit, load_config};

/// `steward init`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Agent name written into the starter config.
    #[arg(long, default_value = "my-agent")]
    name: String,
    /// Overwrite an existing config file.
    #[arg(long)]
    force: bool,
    /// The account the agent runs as; created (system user, no login, no
    /// home) when init runs as root and it does not exist yet.
    #[arg(long, default_value = "steward-agent")]
    agent_user: String,
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    if path.exists() && !args.force {
        return Err(anyhow::anyhow!(
            "{} already exists; edit it, or pass --force to overwrite it with the starter",
            path.display()
        )
        .into());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(config::starter_template(&args.name).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let config = load_config(path)?;
    ensure_private_dir(&config.state.dir).context("cannot create the state dir")?;
    let token_path = config.state.token_path();
    let (_, created) = AgentToken::load_or_create(&token_path).context("cannot create the agent token")?;
    anstream::println!("wrote {}", path.display());
    anstream::println!("state dir {} (0700)", config.state.dir.display());
    if created {
        anstream::println!(
            "agent token {} (0600): give its contents to your agent as its API key",
            token_path.display()
        );
    } else {
        anstream::println!("agent token {} kept", token_path.display());
    }
    agent_user(&args.agent_user)?;
    anstream::println!(
        "\nnext: edit {} (upstreams, credentials, tools), then `steward config check` and `steward run`",
        path.display()
    );
    Ok(ExitCode::from(exit::OK))
}

/// Creates the agent's account when running as root; otherwise says how.
fn agent_user(name: &str) -> anyhow::Result<()> {
    if nix::unistd::User::from_name(name).ok().flatten().is_some() {
        anstream::println!("agent user {name} exists: set [agent] user = \"{name}\"");
        return Ok(());
    }
    let useradd = ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name];
    if !nix::unistd::geteuid().is_root() {
        anstream::println!(
            "agent user {name} does not exist: create it with `sudo useradd {}` (or run `sudo steward init`)",
            useradd.join(" ")
        );
        return Ok(());
    }
    let status = std::process::Command::new("useradd").args(useradd).status().context("cannot run useradd")?;
    anyhow::ensure!(status.success(), "useradd {} failed ({status})", useradd.join(" "));
    anstream::println!("created the agent user {name} (system, no login): set [agent] user = \"{name}\"");
    Ok(())
}
