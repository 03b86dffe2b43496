//! `steward alerts test`: sends a test alert through every configured sink,
//! reports each result, and records the run for `steward doctor`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use comfy_table::{Attribute, Cell, Color, Table, presets};
use steward_core::monitor::{self, Alert, AlertsTestRecord, delivery};
use steward_core::secrets::{AgentToken, Secrets};

use super::{CliError, exit, load_config, now_ms, open_store_with, print_json, runtime};

/// Attempts per sink for a test: one retry rides out a blip, and the
/// operator gets an answer within seconds.
const TEST_ATTEMPTS: u32 = 2;

/// `steward alerts ...`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Send a test alert through every sink and report each result (exit 1 if any failed).
    Test(TestArgs),
}

/// `steward alerts test`
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(path: &Path, command: Command) -> Result<ExitCode, CliError> {
    let Command::Test(args) = command;
    let config = load_config(path)?;
    if config.alerts.sinks.is_empty() {
        return Err(anyhow::anyhow!(
            "no alert sinks are configured; add an [[alerts.sinks]] section (kind = \"webhook\", \"slack\", \
             \"discord\", \"ntfy\", \"email\" or \"command\") to {}",
            config.source_path.display()
        )
        .into());
    }
    let rt = runtime()?;
    let secrets = rt.block_on(Secrets::resolve_alerts(&config)).context("cannot resolve the alert sinks' secrets")?;
    let record = rt.block_on(async {
        // The state dir first: the agent token lives in it.
        steward_core::state_dir::ensure_private_dir(&config.state.dir).context("cannot create the state dir")?;
        let (token, _) =
            AgentToken::load_or_create(&config.state.token_path()).context("cannot read the agent token")?;
        let redactor = steward_core::redaction::shared(secrets.redactor(&token, &config.redaction));
        let store = open_store_with(&config, Arc::clone(&redactor)).await?;
        let sinks = monitor::build_sinks(&config, &secrets).context("cannot set up the alert sinks")?;
        let client = steward_core::outbound::http_client().context("cannot build the HTTP client")?;
        let alert = Alert::test(&config.agent.name, std::time::SystemTime::now());
        let results = delivery::deliver_to_all(&sinks, &alert, &client, &redactor, TEST_ATTEMPTS).await;
        for report in &results {
            delivery::record(&store, report).await;
        }
        let record = AlertsTestRecord { at_ms: now_ms(), ok: results.iter().all(|r| r.ok), results };
        let text = serde_json::to_string(&record).context("cannot encode the test result")?;
        store.kv_set(monitor::LAST_TEST_KEY, &text, record.at_ms).await.context("cannot record the test result")?;
        Ok::<_, anyhow::Error>(record)
    })?;

    let code = if record.ok { exit::OK } else { exit::FAILURE };
    if args.json {
        print_json(&record)?;
        return Ok(ExitCode::from(code));
    }
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    // The table styles its own cells, so widths count the text, not colour
    // codes (which anstream strips off a terminal after the layout).
    if super::color_on_stdout() {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table.set_header(["SINK", "KIND", "RESULT", "ATTEMPTS", "ERROR"]);
    for r in &record.results {
        let result = if r.ok {
            Cell::new("delivered").fg(Color::Green)
        } else {
            Cell::new("FAILED").fg(Color::Red).add_attribute(Attribute::Bold)
        };
        table.add_row(vec![
            Cell::new(&r.sink),
            Cell::new(&r.kind),
            result,
            Cell::new(r.attempts),
            Cell::new(r.error.clone().unwrap_or_default()),
        ]);
    }
    anstream::println!("{table}");
    let failed = record.results.iter().filter(|r| !r.ok).count();
    if failed == 0 {
        anstream::println!("every sink accepted the test alert");
    } else {
        anstream::println!(
            "{failed} of {} sinks failed; fix them and run `steward alerts test` again",
            record.results.len()
        );
    }
    Ok(ExitCode::from(code))
}
