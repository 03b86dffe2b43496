//! `steward init`: writes a commented starter config (0600), the state dir
//! (0700, with a `.gitignore` of `*`, so `git add .` next to the config never
//! commits the agent token or the store) and the agent token (0600), and,
//! run as root, creates the account the supervised agent runs as
//! (`[agent] user`, `steward-agent`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use steward_core::config;
use steward_core::secrets::AgentToken;
use steward_core::state_dir::ensure_private_dir;

use super::{CliError, exit, load_config};

/// The state dir's `.gitignore`: everything in it (agent token, store,
/// logs) is private to this machine. It ignores itself too, so it is never
/// committed either.
const STATE_GITIGNORE: &str = "# steward's state: the agent token, the store and the logs. Never commit them.\n*\n";

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
    /// Keep the state (store, agent token, logs) here instead of ./.steward
    /// next to the config, like /var/lib/steward under systemd.
    #[arg(long)]
    state_dir: Option<String>,
    /// Write the config file only: no state dir, no agent token (`steward
    /// run` creates both at its first start). Used to build the Debian package.
    #[arg(long)]
    config_only: bool,
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
    let text = match &args.state_dir {
        Some(dir) => config::starter_template_in(&args.name, dir),
        None => config::starter_template(&args.name),
    };
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
        file.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let config = load_config(path)?;
    if args.config_only {
        anstream::println!("wrote {}", path.display());
        anstream::println!(
            "state dir {} is created by `steward run` at its first start, with the agent token",
            config.state.dir.display()
        );
        return Ok(ExitCode::from(exit::OK));
    }
    ensure_private_dir(&config.state.dir).context("cannot create the state dir")?;
    let ignore = config.state.dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, STATE_GITIGNORE).with_context(|| format!("cannot write {}", ignore.display()))?;
    }
    let token_path = config.state.token_path();
    let (_, created) = AgentToken::load_or_create(&token_path).context("cannot create the agent token")?;
    anstream::println!("wrote {}", path.display());
    anstream::println!("state dir {} (0700, with a .gitignore of *)", config.state.dir.display());
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
