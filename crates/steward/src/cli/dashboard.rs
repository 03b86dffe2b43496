//! `steward dashboard`: asks the running daemon (admin API, `POST
//! /admin/v1/dashboard/login`) for a one-time login URL of its dashboard
//! and prints it; `--open` also hands it to the desktop's browser
//! (`xdg-open`, `open` on macOS). The code in the URL works once, for five
//! minutes; it is never written to a file.

use std::path::Path;
use std::process::ExitCode;

use super::admin_client::AdminClient;
use super::{CliError, exit, load_config, print_json, runtime};

/// `steward dashboard`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also open the URL in this machine's browser.
    #[arg(long)]
    open: bool,
    /// One JSON object, for scripts: `{"url", "expires_ms", "ttl_secs"}`.
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    if config.dashboard.is_none() {
        return Err(CliError::Other(anyhow::anyhow!(
            "no dashboard is configured\nhelp: add [dashboard] to steward.toml (listen = \"127.0.0.1:7601\"), restart \
             steward, then run `steward dashboard` again; see docs/config.md#dashboard"
        )));
    }
    let answer = runtime()?.block_on(async {
        let client = AdminClient::connect(&config)?;
        client.post("/admin/v1/dashboard/login", &serde_json::json!({})).await
    })?;
    let url = answer["url"].as_str().unwrap_or_default().to_owned();
    if args.json {
        print_json(&answer)?;
    } else {
        anstream::println!("{url}");
        anstream::eprintln!(
            "one-time login URL: works once, for {} minutes. From a laptop: ssh -L {port}:127.0.0.1:{port} <server>, \
             then open it there.",
            answer["ttl_secs"].as_u64().unwrap_or(300) / 60,
            port = url.rsplit(':').next().and_then(|p| p.split('/').next()).unwrap_or("7601"),
        );
    }
    if args.open {
        let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
        let opened = std::process::Command::new(opener)
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if !opened.is_ok_and(|s| s.success()) {
            anstream::eprintln!("could not start `{opener}`: open the URL above in a browser yourself");
        }
    }
    Ok(ExitCode::from(exit::OK))
}
