//! `steward approvals`, `steward approve`, `steward deny`: supervised
//! mode's pending requests and a human's decision about one of them.
//!
//! With a daemon running, all three go through its admin API: the list
//! shows each request's full body (redacted), which only the daemon holds,
//! and a decision reaches the held call at once. Without one, `approve` and
//! `deny` write the store directly (the grant then releases the agent's
//! identical repeat once the daemon runs again) and `approvals` lists the
//! stored summaries.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::{Value, json};
use steward_core::admin::ClientError;
use steward_core::config::Config;
use steward_core::pipeline::{DecideError, decide};
use steward_core::store::Verdict;

use super::admin_client::{AdminClient, operator};
use super::{CliError, exit, format_ms, load_config, now_ms, open_store, open_store_read_only, print_json, runtime};

/// `steward approvals`
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// One JSON object, for scripts.
    #[arg(long)]
    pub(super) json: bool,
}

/// `steward approve`
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The request's id, or a unique prefix of it (as `steward approvals` shows).
    id: String,
    /// Why it is fine, for the audit log.
    #[arg(long)]
    note: Option<String>,
    /// One JSON object, for scripts.
    #[arg(long)]
    pub(super) json: bool,
}

/// `steward deny`
#[derive(Debug, clap::Args)]
pub struct DenyArgs {
    /// The request's id, or a unique prefix of it.
    id: String,
    /// Why: the agent is told it, and the audit log keeps it.
    #[arg(long)]
    reason: String,
    /// One JSON object, for scripts.
    #[arg(long)]
    pub(super) json: bool,
}

/// The daemon's admin API, or `None` when no daemon runs (no socket to
/// reach, or no admin token yet because none ever ran).
async fn daemon(config: &Config) -> Result<Option<(AdminClient, Value)>, CliError> {
    let token = config.state.admin_token_path();
    if !token.exists() {
        return Ok(None);
    }
    let client = AdminClient::connect(config)?;
    match client.get("/admin/v1/approvals").await {
        Ok(list) => Ok(Some((client, list))),
        Err(CliError::Other(err))
            if err.downcast_ref::<ClientError>().is_some_and(|e| matches!(e, ClientError::NotRunning { .. })) =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

pub fn list(path: &Path, args: &ListArgs) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    let rt = runtime()?;
    let (list, live) = match rt.block_on(daemon(&config))? {
        Some((_, list)) => (list, true),
        None => {
            let rows = rt.block_on(async {
                let store = open_store_read_only(&config).await?;
                store.pending_approvals().await.context("cannot read the approval requests")
            })?;
            let now = now_ms();
            let items: Vec<Value> = rows.iter().map(|r| steward_core::admin::approval_json(r, now)).collect();
            (json!({ "approvals": items }), false)
        }
    };
    if args.json {
        let mut out = list;
        out["daemon_running"] = live.into();
        print_json(&out)?;
        return Ok(ExitCode::from(exit::OK));
    }
    let items = list["approvals"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        anstream::println!("no approval requests are pending");
    } else {
        anstream::println!("{}", table(&items));
        for item in &items {
            print_request(item, live);
        }
    }
    if !live {
        anstream::println!(
            "\nno daemon runs: only the stored summaries are shown (the full request body is shown only while \
             `steward run` holds it). `steward approve ID` and `steward deny ID --reason ...` still work."
        );
    }
    Ok(ExitCode::from(exit::OK))
}

fn table(items: &[Value]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["ID", "TOOL", "AGE", "EXPIRES (UTC)", "REQUEST"]);
    for item in items {
        let text = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
        table.add_row([
            text("id").chars().take(8).collect(),
            text("tool"),
            format!("{}s", item["age_secs"].as_i64().unwrap_or(0)),
            format_ms(item["expires_ms"].as_i64().unwrap_or(0)),
            format!("{} {}", text("method"), text("path")),
        ]);
    }
    table
}

fn print_request(item: &Value, live: bool) {
    let id = item["id"].as_str().unwrap_or_default();
    anstream::println!("\n── {id} ({})", item["tool"].as_str().unwrap_or_default());
    anstream::println!("{} {}", item["method"].as_str().unwrap_or_default(), item["path"].as_str().unwrap_or_default());
    match item["body"].as_str() {
        Some(body) => anstream::println!("{body}"),
        None if live => anstream::println!(
            "(body not in memory: steward restarted since; the agent's identical repeat brings it back)\n{}",
            item["summary"].as_str().unwrap_or_default()
        ),
        None => anstream::println!("{}", item["summary"].as_str().unwrap_or_default()),
    }
    let context = &item["context"];
    if let Some(limit) = context["limit"].as_object() {
        anstream::println!(
            "limit: {} of {} per {}s used; {} call(s) in the last 24h",
            limit.get("used").and_then(Value::as_u64).unwrap_or(0),
            limit.get("max").and_then(Value::as_u64).unwrap_or(0),
            limit.get("per_secs").and_then(Value::as_u64).unwrap_or(0),
            context["calls_last_24h"].as_u64().unwrap_or(0)
        );
    }
    for call in context["recent_calls"].as_array().into_iter().flatten() {
        anstream::println!(
            "  recent: {} {} {} {}",
            format_ms(call["started_ms"].as_i64().unwrap_or(0)),
            call["decision"].as_str().unwrap_or_default(),
            call["method"].as_str().unwrap_or_default(),
            call["path"].as_str().unwrap_or_default()
        );
    }
    anstream::println!("approve: steward approve {id}\ndeny:    steward deny {id} --reason \"...\"");
}

pub fn approve(path: &Path, args: &ApproveArgs) -> Result<ExitCode, CliError> {
    decide_cli(path, &args.id, Verdict::Approve, args.note.clone(), args.json)
}

pub fn deny(path: &Path, args: &DenyArgs) -> Result<ExitCode, CliError> {
    decide_cli(path, &args.id, Verdict::Deny, Some(args.reason.clone()), args.json)
}

fn decide_cli(path: &Path, id: &str, verdict: Verdict, note: Option<String>, json: bool) -> Result<ExitCode, CliError> {
    let id = &hex_prefix(id)?;
    let config = load_config(path)?;
    let rt = runtime()?;
    let by = operator();
    let (action, key) = match verdict {
        Verdict::Approve => ("approve", "note"),
        Verdict::Deny => ("deny", "reason"),
    };
    let (row, via_daemon) = match rt.block_on(daemon(&config))? {
        Some((client, _)) => {
            let body = json!({ key: note, "by": by, "via": "cli" });
            let path = format!("/admin/v1/approvals/{}/{action}", id);
            let answer = rt.block_on(client.post(&path, &body))?;
            (answer["approval"].clone(), true)
        }
        None => {
            let row = rt.block_on(async {
                let store = open_store(&config).await?;
                decide(&store, id, verdict, &by, "cli", note, now_ms()).await.map_err(|e| decide_error(&e))
            })?;
            (steward_core::admin::approval_json(&row, now_ms()), false)
        }
    };
    if json {
        print_json(&json!({ "approval": row, "via_daemon": via_daemon }))?;
        return Ok(ExitCode::from(exit::OK));
    }
    let id = row["id"].as_str().unwrap_or_default();
    let done = match verdict {
        Verdict::Approve => "approved: the held call is released once",
        Verdict::Deny => "denied: the agent is told the reason",
    };
    anstream::println!(
        "{id} {done} ({} {})",
        row["method"].as_str().unwrap_or_default(),
        row["path"].as_str().unwrap_or_default()
    );
    if !via_daemon {
        anstream::println!(
            "no daemon runs: the decision is in the store; the agent's identical repeat gets it once `steward run` is back"
        );
    }
    Ok(ExitCode::from(exit::OK))
}

fn decide_error(err: &DecideError) -> anyhow::Error {
    anyhow::anyhow!("{err}")
}

/// An id prefix, checked: ids are lowercase hex, so it is also a safe path segment.
fn hex_prefix(id: &str) -> Result<String, CliError> {
    let id = id.trim().to_ascii_lowercase();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(anyhow::anyhow!(
            "`{id}` is not an approval id: ids are hexadecimal, like 7f3a; `steward approvals` lists them"
        )
        .into());
    }
    Ok(id)
}
