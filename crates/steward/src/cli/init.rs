//! `steward init`: writes a commented starter config, the state dir and the agent token.

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
    std::fs::write(path, config::starter_template(&args.name))
        .with_context(|| format!("cannot write {}", path.display()))?;
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
    anstream::println!(
        "\nnext: edit {} (upstreams, credentials, tools), then `steward config check` and `steward run`",
        path.display()
    );
    Ok(ExitCode::from(exit::OK))
}
