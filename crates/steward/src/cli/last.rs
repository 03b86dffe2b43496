//! `steward last`: what the agent did, newest first, from the journal. The
//! table also shows supervised mode's decisions (approved, denied, expired:
//! who, how, how long it took) among the calls of the same period; `--json`
//! stays the journal's rows.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use comfy_table::{ContentArrangement, Table, presets};
use steward_core::config::Config;
use steward_core::decision::status_of_decision;
use steward_core::store::{ApprovalRow, ApprovalState, CallRow, LastQuery, UndoQuery, UndoRow, UndoState};

use super::{CliError, exit, format_ms, load_config, now_ms, open_store_read_only, print_json, runtime};

/// `steward last`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many calls to show.
    #[arg(short = 'n', long, default_value_t = 20)]
    limit: u32,
    /// Only this tool.
    #[arg(long)]
    tool: Option<String>,
    /// Only calls newer than this (e.g. 30m, 2h, 7d).
    #[arg(long, value_parser = parse_since)]
    since: Option<std::time::Duration>,
    /// Only refused or failed calls.
    #[arg(long)]
    failed: bool,
    /// Only calls steward can still undo, with the undo it would send (`steward undo CALL`).
    #[arg(long, conflicts_with = "failed")]
    undoable: bool,
    /// With [store] url: every instance's calls (the fleet's journal), each with its instance;
    /// without it only this instance's.
    #[arg(long)]
    fleet: bool,
    /// One JSON array, for scripts.
    #[arg(long)]
    pub(super) json: bool,
}

fn parse_since(text: &str) -> Result<std::time::Duration, String> {
    steward_core::config::units::parse_duration(text).map_err(|e| e.to_string())
}

pub fn run(path: &Path, args: Args) -> Result<ExitCode, CliError> {
    let config = load_config(path)?;
    if args.fleet && config.store.fleet.is_none() {
        return Err(anyhow::anyhow!(
            "--fleet needs a fleet: this steward's store is the embedded SQLite file, which holds only its own \
             calls; set [store] url to share a PostgreSQL database between instances (docs/fleet.md)"
        )
        .into());
    }
    if args.undoable {
        return undoable(&config, &args);
    }
    let query = LastQuery {
        limit: args.limit,
        tool: args.tool.clone(),
        since_ms: args.since.map(|d| now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        failed_only: args.failed,
        instance: match &config.store.fleet {
            Some(fleet) if !args.fleet => Some(fleet.instance.clone()),
            _ => None,
        },
    };
    let since_ms = query.since_ms;
    let (mut rows, decisions, undos) = runtime()?.block_on(async {
        let store = open_store_read_only(&config).await?;
        let rows = store.last(query).await.context("cannot read the journal")?;
        // Decisions made since the oldest call shown (or the --since bound).
        let from = rows.last().map(|r| r.started_ms).or(since_ms).unwrap_or(0);
        let decisions = if args.json || args.failed {
            Vec::new()
        } else {
            store.approvals_decided_since(from).await.context("cannot read the approval decisions")?
        };
        // The undo state of the calls shown: `steward last` marks undone calls.
        let undos = match rows.iter().map(|r| r.started_ms).min() {
            Some(since_ms) => {
                let q = UndoQuery {
                    call_ids: Some(rows.iter().map(|r| r.id.clone()).collect()),
                    since_ms: Some(since_ms),
                    ..UndoQuery::default()
                };
                store.undos(q).await.context("cannot read the undo plans")?
            }
            None => Vec::new(),
        };
        anyhow::Ok((rows, decisions, undos))
    })?;
    let decisions: Vec<ApprovalRow> =
        decisions.into_iter().filter(|d| args.tool.as_ref().is_none_or(|t| *t == d.tool)).collect();
    let undos: HashMap<String, UndoRow> = undos.into_iter().map(|u| (u.call_id.clone(), u)).collect();
    if rows.is_empty()
        && let Some(tool) = &args.tool
        && !is_a_tool(&config, tool)
    {
        return Err(anyhow::anyhow!("no tool is named `{tool}`; {}", known_tools(&config)).into());
    }
    for row in &mut rows {
        // Refused at admission: journaled before the response existed (see status_of_decision).
        if row.status.is_none() && row.finished_ms.is_some() {
            row.status = status_of_decision(&row.decision);
        }
    }
    if args.json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|row| {
                let mut value = serde_json::to_value(row).unwrap_or_default();
                if let Some(undo) = undos.get(&row.id) {
                    value["undo"] = serde_json::to_value(undo).unwrap_or_default();
                }
                value
            })
            .collect();
        print_json(&rows)?;
        return Ok(ExitCode::from(exit::OK));
    }
    if rows.is_empty() && decisions.is_empty() {
        let of_tool = args.tool.as_ref().map(|t| format!(" of tool `{t}`")).unwrap_or_default();
        anstream::println!("no calls{of_tool} recorded{}", if args.failed { " that failed" } else { "" });
        return Ok(ExitCode::from(exit::OK));
    }
    anstream::println!("{}", table(&rows, &decisions, &undos));
    Ok(ExitCode::from(exit::OK))
}

/// `steward last --undoable`: the calls steward can still undo, newest first.
fn undoable(config: &Config, args: &Args) -> Result<ExitCode, CliError> {
    let query = UndoQuery {
        tool: args.tool.clone(),
        since_ms: args.since.map(|d| now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        undoable_only: true,
        limit: args.limit,
        ..UndoQuery::default()
    };
    let rows = runtime()?.block_on(async {
        let store = open_store_read_only(config).await?;
        store.undos(query).await.context("cannot read the undo plans")
    })?;
    if args.json {
        print_json(&rows)?;
        return Ok(ExitCode::from(exit::OK));
    }
    if rows.is_empty() {
        anstream::println!("no call can be undone (a tool declares its undo with undo = {{ tool, path }})");
        return Ok(ExitCode::from(exit::OK));
    }
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["TIME (UTC)", "CALL", "TOOL", "STATE", "UNDO (steward undo CALL)"]);
    for row in &rows {
        let undo = format!("{} {}", row.method.as_deref().unwrap_or("?"), row.path.as_deref().unwrap_or("?"));
        let state = match row.state {
            UndoState::Failed => format!("failed: {}", row.reason.as_deref().unwrap_or("?")),
            other => other.to_string(),
        };
        table.add_row([
            format_ms(row.started_ms),
            short_id(&row.call_id),
            row.tool.clone(),
            escape(&state, 60),
            escape(&undo, 80),
        ]);
    }
    anstream::println!("{table}");
    Ok(ExitCode::from(exit::OK))
}

/// The UNDO column: what `steward undo` did or can do for the call, or
/// which call an undo call undid.
fn undo_mark(row: &CallRow, undo: Option<&UndoRow>) -> String {
    let undo_of = row
        .extra_json
        .as_deref()
        .and_then(|extra| serde_json::from_str::<serde_json::Value>(extra).ok())
        .and_then(|extra| extra["undo_of"].as_str().map(short_id));
    match undo.map(|u| u.state) {
        None => undo_of.map_or_else(|| "-".into(), |of| format!("undo of {of}")),
        Some(UndoState::Undone | UndoState::Gone) => "undone".into(),
        Some(UndoState::Planned) => "undoable".into(),
        Some(UndoState::Failed) => "undo failed".into(),
        Some(UndoState::Running) => "undoing".into(),
        Some(UndoState::Unavailable) => "no undo".into(),
    }
}

/// A `[[tools]]` name, or `PROVIDER:ENDPOINT` of an `[llm.*]` provider.
fn is_a_tool(config: &Config, name: &str) -> bool {
    config.tools.iter().any(|t| t.name == name)
        || name.split_once(':').is_some_and(|(provider, _)| config.llm.contains_key(provider))
}

/// The tools `--tool` takes, for an error message.
fn known_tools(config: &Config) -> String {
    let mut text = match config.tools.len() {
        0 => "no [[tools]] are configured".to_owned(),
        _ => format!("the tools are: {}", config.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")),
    };
    if let Some((provider, llm)) = config.llm.iter().next() {
        let endpoint = match llm.kind {
            steward_core::config::LlmKind::Anthropic => "messages",
            steward_core::config::LlmKind::OpenAi => "chat.completions",
        };
        text.push_str(&format!("; LLM calls are named PROVIDER:ENDPOINT, like {provider}:{endpoint}"));
    }
    text
}

fn table(rows: &[CallRow], decisions: &[ApprovalRow], undos: &HashMap<String, UndoRow>) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["TIME (UTC)", "CALL", "TOOL", "DECISION", "STATUS", "MS", "REF", "UNDO", "REQUEST"]);
    // Newest first, decisions among the calls.
    let mut decisions: Vec<&ApprovalRow> = decisions.iter().collect();
    decisions.sort_by_key(|d| std::cmp::Reverse(d.decided_ms));
    let mut decisions = decisions.into_iter().peekable();
    for row in rows {
        while let Some(d) = decisions.next_if(|d| d.decided_ms.unwrap_or(0) >= row.started_ms) {
            table.add_row(decision_row(d));
        }
        table.add_row([
            format_ms(row.started_ms),
            short_id(&row.id),
            row.tool.clone().unwrap_or_else(|| "-".into()),
            row.decision.clone(),
            row.status.map_or_else(|| "-".into(), |s| s.to_string()),
            row.duration_ms.map_or_else(|| "-".into(), |d| d.to_string()),
            row.response_ref.clone().unwrap_or_else(|| "-".into()),
            undo_mark(row, undos.get(&row.id)),
            escape(&request_text(row), 60),
        ]);
    }
    for d in decisions {
        table.add_row(decision_row(d));
    }
    table
}

/// A decision as a row: who decided, how, and how long it took.
fn decision_row(d: &ApprovalRow) -> [String; 9] {
    let word = match d.state {
        ApprovalState::Approved | ApprovalState::Released => "approved",
        ApprovalState::Denied => "denied",
        ApprovalState::Expired | ApprovalState::Pending => "expired",
    };
    let who = format!(
        "{} by {} via {}{}",
        d.id.chars().take(8).collect::<String>(),
        d.decided_by.as_deref().unwrap_or("-"),
        d.decided_via.as_deref().unwrap_or("-"),
        d.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default()
    );
    [
        format_ms(d.decided_ms.unwrap_or(d.created_ms)),
        "approval".to_owned(),
        d.tool.clone(),
        word.to_owned(),
        "-".to_owned(),
        d.time_to_decide_ms().map_or_else(|| "-".into(), |ms| ms.to_string()),
        "-".to_owned(),
        "-".to_owned(),
        escape(&who, 60),
    ]
}

/// The body summary, or the method and path for calls without a body.
fn request_text(row: &CallRow) -> String {
    if row.input_summary.is_empty() { format!("{} {}", row.method, row.path) } else { row.input_summary.clone() }
}

/// The random tail of a UUIDv7: its head is a timestamp shared by neighbours.
fn short_id(id: &str) -> String {
    id.rsplit('-').next().unwrap_or(id).to_owned()
}

/// Truncates and drops control characters, so upstream text cannot drive the terminal.
fn escape(text: &str, max: usize) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}
