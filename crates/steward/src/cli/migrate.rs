//! `steward migrate`: creates or upgrades the schema of the fleet's
//! PostgreSQL database (`[store] url`, `docs/fleet.md`). `steward run`
//! refuses a fleet database whose schema is not its own, so an upgrade is:
//! `steward migrate` once (from any host, with the new binary), then
//! restart each instance. The embedded SQLite store migrates itself when
//! it is opened: without `[store] url` there is nothing to do.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use secrecy::ExposeSecret as _;

use super::{CliError, exit, load_config, print_json, runtime};

/// `steward migrate`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    if config.store.fleet.is_none() {
        if args.json {
            print_json(&serde_json::json!({ "backend": "sqlite", "migrated": false }))?;
        } else {
            anstream::println!(
                "the store is the embedded SQLite file ({}); it migrates itself when steward opens it: nothing to do \
                 (`steward migrate` is for a fleet's PostgreSQL database, [store] url)",
                config.state.db_path().display()
            );
        }
        return Ok(ExitCode::from(exit::OK));
    }
    let (database, migrated) = runtime()?.block_on(async {
        let url = steward_core::secrets::store_url(&config)
            .await
            .context("cannot resolve [store] url")?
            .context("[store] url did not resolve")?;
        steward_core::store::pg::fleet::migrate_at(url.expose_secret())
            .await
            .context("cannot migrate the fleet's database")
    })?;
    if args.json {
        print_json(&serde_json::json!({
            "backend": "postgresql",
            "database": database,
            "from_version": migrated.from,
            "to_version": migrated.to,
            "migrated": migrated.from != migrated.to,
        }))?;
    } else if migrated.from == migrated.to {
        anstream::println!("{database}: schema already at version {} (this steward's); nothing to apply", migrated.to);
    } else {
        anstream::println!(
            "{database}: schema migrated from version {} to {}; start (or restart) each instance with this steward",
            migrated.from,
            migrated.to
        );
    }
    Ok(ExitCode::from(exit::OK))
}
