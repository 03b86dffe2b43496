//! `steward undo`: runs the undo steward recorded for a call (or for every
//! undoable call of a tool in a window), through the running daemon's admin
//! API, so the undo is a call of the undo tool in the one pipeline
//! (credential injected, audited with `undo_of`, limits unless `--force`).
//!
//! It first asks the daemon for the plan (a dry run), shows it, and asks
//! before sending anything; `--yes` skips the question (scripts), and
//! without a terminal to ask on, the command refuses and says to add it.
//! Then it undoes exactly the calls it showed, newest first.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::anyhow;
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::{Value, json};

use super::admin_client::{AdminClient, operator};
use super::{CliError, exit, format_ms, load_config, now_ms, print_json, runtime};

/// `steward undo`
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  steward undo 4b1c9e2a7f3d                 undo one call (the CALL column of `steward last`)
  steward undo --tool post --since 2h       every undoable call of `post` in the last 2 hours: shows the plan, asks
  steward undo --tool post --since 2h --yes the same without asking (scripts)
  steward undo --tool post --since 2h --dry-run   print the plan, send nothing
  steward last --undoable                   the calls steward can still undo, and the undo it would send")]
pub struct Args {
    /// Calls to undo: the CALL column of `steward last`, a whole id, or a unique prefix.
    #[arg(conflicts_with_all = ["tool", "since"])]
    ids: Vec<String>,
    /// Every undoable call of this tool (with --since).
    #[arg(long, requires = "since")]
    tool: Option<String>,
    /// The window for --tool (e.g. 30m, 2h, 1d).
    #[arg(long, requires = "tool", value_parser = parse_since)]
    since: Option<std::time::Duration>,
    /// Do not ask before sending (for scripts).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print the plan and send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Pass the undo tool's rate limit (recorded with the undo).
    #[arg(long)]
    force: bool,
    /// The reports as one JSON array, for scripts.
    #[arg(long)]
    pub(super) json: bool,
}

fn parse_since(text: &str) -> Result<std::time::Duration, String> {
    steward_core::config::units::parse_duration(text).map_err(|e| e.to_string())
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    if args.ids.is_empty() && args.tool.is_none() {
        return Err(CliError::Other(anyhow!(
            "name what to undo: `steward undo CALL` (from `steward last --undoable`) or \
             `steward undo --tool TOOL --since 2h`"
        )));
    }
    let config = load_config(path)?;
    runtime()?.block_on(async {
        let client = AdminClient::connect(&config)?;
        let plan = plan(&client, &args).await?;
        let pending: Vec<&Value> = plan.iter().filter(|r| r["outcome"] == "would_undo").collect();
        if args.dry_run || pending.is_empty() {
            return show(&args, &plan, true);
        }
        if !args.yes {
            confirm(&plan, pending.len())?;
        }
        // Exactly the calls shown, newest first (the plan's order).
        let mut reports = Vec::new();
        let mut ids: Vec<(i64, String)> = pending
            .iter()
            .filter_map(|r| Some((r["started_ms"].as_i64()?, r["call_id"].as_str()?.to_owned())))
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        for (_, id) in ids {
            let answer = client.post(&format!("/admin/v1/calls/{id}/undo"), &body(&args, false)).await?;
            reports.extend(answer["undos"].as_array().cloned().unwrap_or_default());
        }
        // What was settled already stays in the report.
        reports.extend(plan.iter().filter(|r| r["outcome"] != "would_undo").cloned());
        show(&args, &reports, false)
    })
}

fn body(args: &Args, dry_run: bool) -> Value {
    json!({ "force": args.force, "dry_run": dry_run, "by": operator(), "via": "cli" })
}

/// The daemon's dry run: one report per call named, or per undoable call of the tool.
async fn plan(client: &AdminClient, args: &Args) -> Result<Vec<Value>, CliError> {
    let mut out = Vec::new();
    if let (Some(tool), Some(since)) = (&args.tool, args.since) {
        let mut request = body(args, true);
        request["tool"] = json!(tool);
        request["since_ms"] = json!(now_ms() - i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
        let answer = client.post("/admin/v1/undo", &request).await?;
        out.extend(answer["undos"].as_array().cloned().unwrap_or_default());
    }
    for id in &args.ids {
        let answer = client.post(&format!("/admin/v1/calls/{id}/undo"), &body(args, true)).await?;
        out.extend(answer["undos"].as_array().cloned().unwrap_or_default());
    }
    out.sort_by_key(|r| std::cmp::Reverse(r["started_ms"].as_i64().unwrap_or(0)));
    Ok(out)
}

/// Shows the plan and asks on the terminal; without one, refuses with the fix.
fn confirm(plan: &[Value], count: usize) -> Result<(), CliError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Other(anyhow!(
            "steward undo would send {count} undo call(s) and there is no terminal to confirm on; \
             check the plan with --dry-run, then add --yes"
        )));
    }
    anstream::eprintln!("{}", table(plan));
    anstream::eprint!("Send {count} undo call(s), newest first? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin.lock().read_line(&mut line).map_err(|e| CliError::Other(anyhow!("cannot read the answer: {e}")))?;
    if matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(CliError::Other(anyhow!("nothing sent (not confirmed); add --yes to undo without asking")))
    }
}

fn show(args: &Args, reports: &[Value], planning: bool) -> Result<ExitCode, CliError> {
    let failed = reports.iter().any(|r| r["outcome"] == "undo_failed");
    if args.json {
        print_json(&reports)?;
    } else if reports.is_empty() {
        anstream::println!("nothing to undo: no undoable call matches (see `steward last --undoable`)");
    } else {
        anstream::println!("{}", table(reports));
        if planning && args.dry_run {
            anstream::println!("dry run: nothing was sent");
        }
    }
    Ok(ExitCode::from(if failed { exit::FAILURE } else { exit::OK }))
}

fn table(reports: &[Value]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["TIME (UTC)", "CALL", "TOOL", "OUTCOME", "UNDO", "MESSAGE"]);
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    for r in reports {
        let id = text(&r["call_id"]);
        let undo = match (r["method"].as_str(), r["path"].as_str()) {
            (Some(m), Some(p)) => format!("{m} {p}"),
            _ => "-".to_owned(),
        };
        table.add_row([
            r["started_ms"].as_i64().map_or_else(|| "-".to_owned(), format_ms),
            id.rsplit('-').next().unwrap_or(&id).to_owned(),
            text(&r["tool"]),
            text(&r["outcome"]),
            undo,
            text(&r["message"]).chars().filter(|c| !c.is_control()).collect(),
        ]);
    }
    table
}
