//! The command line: one file per command, this file holds the argument
//! types, the dispatch, the exit codes and the colour policy; `error` holds
//! the error report (text, or JSON with `--json`).

mod admin_client;
mod agent_exec;

mod alerts;
mod approvals;
mod backup;
mod completions;
mod config_check;
mod dashboard;
mod demo;
mod doctor;
mod error;
mod graduate;
mod init;
mod last;
mod logs;
mod mcp;
mod migrate;
mod reload;
mod report;
mod restore;
mod run;
mod runbook;
mod secrets;
mod spend;
mod status;
mod stop;
mod undo;

pub use error::CliError;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use steward_core::config::{self, Config};

/// Documented exit codes (also in `steward --help`).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A command failed at run time (store unreadable, daemon could not start, ...).
    pub const FAILURE: u8 = 1;
    /// Wrong command-line usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// The configuration is invalid: fix steward.toml at the reported line
    /// (also: `config check` found an unsafe secret file or a dev/prod share).
    pub const CONFIG: u8 = 3;
    /// `steward graduate` refused: a readiness criterion is not met (each is
    /// printed with its fix; `--force` overrides).
    pub const NOT_READY: u8 = 4;
    // `steward doctor` has its own codes: 0 nothing fails, 1 an item fails,
    // 2 doctor could not run (see `doctor::code`).
}

const AFTER_HELP: &str = "\
Exit codes: 0 success · 1 failure · 2 usage error · 3 invalid configuration
            (steward graduate: 4 not ready, a readiness criterion is not met)
            (steward doctor: 0 no item fails · 1 an item fails · 2 could not run)

Start here:
  steward demo                 run the quickstart (mock upstream + example agent), no setup
  steward init                 write a commented ./steward.toml and the state dir
  steward config check         validate it (errors point to file:line:column)
  steward run                  start the gateway (and the agent, with [agent] command); the agent calls
                               http://127.0.0.1:7600/api/{upstream}/...
  steward status               agent state, restarts, kill switch, limits
  steward logs agent -f        the agent's output (redacted)
  steward doctor               score the deployment against the production checklist
  steward last                 what the agent did, newest first
  steward undo --tool post --since 2h   undo the agent's recent posts (the tool's declared undo)
  steward alerts test          send a test alert through every [[alerts.sinks]] entry
  steward stop --reason \"...\"  kill switch: refuse every call and stop the agent until `steward resume`
  steward backup now           back up config, store and agent state to the [backup] destination
  steward report --since 7d    what the agent did, approvals, and whether it is ready to run unsupervised
  steward graduate             end supervised mode (refused with the unmet criteria unless --force)
  steward runbook              write the one-page runbook of this deployment ([runbook] output)

Colour only on a terminal; NO_COLOR=1 turns it off, CLICOLOR_FORCE=1 forces it.
With --json, a failed command prints {\"error\": {\"kind\", \"message\", \"help\", \"location\"}} on stdout.";

/// steward: makes the production checklist true for an AI agent, in code.
#[derive(Debug, Parser)]
#[command(name = "steward", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, env = "STEWARD_CONFIG", default_value = "steward.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented starter steward.toml and create the state dir and agent token.
    Init(init::Args),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the gateway (and the agent, with [agent] command) in the foreground (logs to stderr; Ctrl-C or SIGTERM stops it cleanly).
    Run(run::Args),
    /// Engage the kill switch: every call is refused and the agent stopped until `steward resume`. Works with or without a running daemon.
    Stop(stop::StopArgs),
    /// Release the kill switch, and clear a crash-loop hold: the agent starts again.
    Resume(stop::ResumeArgs),
    /// Create or upgrade the schema of the fleet's PostgreSQL database ([store] url); once, from any host,
    /// before starting instances of a new version. The embedded store needs nothing.
    Migrate(migrate::Args),
    /// Show recent calls, newest first.
    Last(last::Args),
    /// Supervised mode: the requests waiting for a human, oldest first, with the full request (--json).
    Approvals(approvals::ListArgs),
    /// Supervised mode: approve a waiting request (id or unique prefix); its call is released once.
    Approve(approvals::ApproveArgs),
    /// Supervised mode: deny a waiting request; the agent is told the reason.
    Deny(approvals::DenyArgs),
    /// Undo calls through their tool's declared undo (`steward undo CALL`, or `--tool T --since 2h`):
    /// shows the plan and asks; --yes for scripts, --dry-run sends nothing. Needs the running daemon.
    Undo(undo::Args),
    /// Print a one-time login URL for the dashboard ([dashboard] in steward.toml); --open opens it here.
    Dashboard(dashboard::Args),
    /// Show the agent (state, pid, uptime, restarts, last exit), the daemon, the kill switch, spend, and calls against limits.
    Status(status::Args),
    /// Show LLM spend: today against the cap, per model per day.
    Spend(spend::Args),
    /// Alert sinks: `steward alerts test` sends a test alert through every sink.
    #[command(subcommand)]
    Alerts(alerts::Command),
    /// Show captured logs: `steward logs agent [-f] [-n N]`.
    #[command(subcommand)]
    Logs(logs::LogsCommand),
    /// Make the running daemon reload steward.toml and every credential: validated first (an invalid file
    /// is refused and the running config stays), swapped at once; listener, state dir and agent changes need a restart.
    Reload(reload::Args),
    /// Run the quickstart: mock upstream + gateway + example agent, no external services.
    Demo(demo::Args),
    /// Credentials: list them (never the values) or make the running daemon reload them.
    #[command(subcommand)]
    Secrets(secrets::Command),
    /// MCP: `steward mcp NAME` is the stdio server NAME for an agent (bridged to the running daemon's /mcp/NAME);
    /// `steward mcp list` shows servers, tools and pins; `steward mcp trust NAME` accepts changed tool definitions.
    #[command(subcommand)]
    Mcp(mcp::Command),
    /// Score this deployment against the production checklist: PASS/WARN/FAIL with a fix for each.
    Doctor(doctor::Args),
    /// Internal: the agent's box (namespaces, its own user, parent-death signal).
    #[command(hide = true)]
    AgentExec(agent_exec::Args),
    /// Internal: the init of the agent's PID namespace.
    #[command(hide = true)]
    AgentInit(agent_exec::InitArgs),
    /// Take, list and verify backups ([backup] in steward.toml).
    #[command(subcommand)]
    Backup(backup::Command),
    /// Restore a backup into a new directory, or in place.
    Restore(restore::Args),
    /// Render this deployment's one-page runbook (Markdown: stop, last, roll back, resume, spend,
    /// credentials, backups, alerts, whom to call) to [runbook] output, or print it with --stdout.
    Runbook(runbook::Args),
    /// Summarize what the agent did (calls per tool per day, approvals, refusals, upstream errors, spend,
    /// loop-breaker trips, alerts, restore tests) and whether it is ready to run without approvals.
    Report(report::Args),
    /// End supervised mode: refused, with every unmet readiness criterion and its fix, unless all pass or
    /// --force; recorded (who, when, forced) and audited. Works with or without a running daemon.
    Graduate(graduate::GraduateArgs),
    /// Go back to supervised mode (undo `steward graduate`), recorded and audited.
    Supervise(graduate::SuperviseArgs),
    /// Print a shell completion script: `steward completions bash > /etc/bash_completion.d/steward`.
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff): `steward man | man -l -`; `--dir D` writes one page per command.
    Man(completions::ManArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration; errors point to file:line:column with a fix.
    Check(config_check::Args),
}

impl Cli {
    /// Whether the command was asked for JSON output (`--json`): its errors
    /// are then JSON on stdout too.
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Config(ConfigCommand::Check(args)) => args.json,
            Command::Last(args) => args.json,
            Command::Migrate(args) => args.json,
            Command::Approvals(args) => args.json,
            Command::Approve(args) => args.json,
            Command::Deny(args) => args.json,
            Command::Undo(args) => args.json,
            Command::Status(args) => args.json,
            Command::Dashboard(args) => args.json,
            Command::Spend(args) => args.json,
            Command::Alerts(alerts::Command::Test(args)) => args.json,
            Command::Logs(logs::LogsCommand::Agent(args)) => args.json,
            Command::Secrets(secrets::Command::List(args)) => args.json,
            Command::Doctor(args) => args.json,
            Command::Backup(backup::Command::Now(args)) => args.json,
            Command::Backup(backup::Command::List(args)) => args.json,
            Command::Backup(backup::Command::Verify(args)) => args.json,
            Command::Restore(args) => args.json,
            Command::Runbook(args) => args.json,
            Command::Report(args) => args.json,
            Command::Mcp(mcp::Command::List(args)) => args.json,
            Command::Mcp(_) => false,
            Command::Graduate(_) | Command::Supervise(_) => false,
            Command::Init(_)
            | Command::Run(_)
            | Command::Stop(_)
            | Command::Resume(_)
            | Command::Demo(_)
            | Command::Reload(_)
            | Command::Secrets(secrets::Command::Reload(_))
            | Command::AgentExec(_)
            | Command::AgentInit(_)
            | Command::Completions(_)
            | Command::Man(_) => false,
        }
    }
}

/// A command line clap refused: clap's own report and exit code (2), or with
/// `--json` among the words, the JSON error object on stdout (kind `usage`),
/// so a script that asked for JSON always gets JSON. Help and version are
/// printed as usual.
pub fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let wants_json = std::env::args_os().skip(1).any(|arg| arg == "--json");
    if !wants_json || matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = err.print();
        return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(exit::USAGE));
    }
    let text = err.to_string();
    let message = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
    let error = serde_json::json!({
        "error": { "kind": "usage", "message": message, "help": "steward --help lists the commands and their options", "location": null }
    });
    anstream::println!("{}", serde_json::to_string_pretty(&error).unwrap_or_default());
    ExitCode::from(exit::USAGE)
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let config_path = cli.config;
    match cli.command {
        Command::Init(args) => init::run(&config_path, args),
        Command::Config(ConfigCommand::Check(args)) => config_check::run(&config_path, args),
        Command::Run(args) => run::run(&config_path, args),
        Command::Stop(args) => stop::stop(&config_path, args),
        Command::Resume(args) => stop::resume(&config_path, args),
        Command::Last(args) => last::run(&config_path, args),
        Command::Migrate(args) => migrate::run(&config_path, args),
        Command::Approvals(args) => approvals::list(&config_path, &args),
        Command::Approve(args) => approvals::approve(&config_path, &args),
        Command::Deny(args) => approvals::deny(&config_path, &args),
        Command::Undo(args) => undo::run(&config_path, args),
        Command::Status(args) => status::run(&config_path, args),
        Command::Dashboard(args) => dashboard::run(&config_path, args),
        Command::Spend(args) => spend::run(&config_path, args),
        Command::Logs(command) => logs::run(&config_path, command),
        Command::Demo(args) => demo::run(args),
        Command::Reload(args) => reload::run(&config_path, args),
        Command::Secrets(command) => secrets::run(&config_path, command),
        Command::Doctor(args) => Ok(doctor::run(&config_path, args)),
        Command::Mcp(command) => mcp::run(&config_path, command),
        Command::Alerts(command) => alerts::run(&config_path, command),
        Command::AgentExec(args) => Ok(agent_exec::run(args)),
        Command::AgentInit(args) => Ok(agent_exec::run_init(args)),
        Command::Backup(command) => backup::run(&config_path, command),
        Command::Restore(args) => restore::run(&config_path, args),
        Command::Runbook(args) => runbook::run(&config_path, args),
        Command::Report(args) => report::run(&config_path, args),
        Command::Graduate(args) => graduate::graduate(&config_path, args),
        Command::Supervise(args) => graduate::supervise(&config_path, args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
    }
}

/// Whether stdout gets colour, by the same rules as [`color_on_stderr`].
pub fn color_on_stdout() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

/// Whether stderr gets colour: a terminal, unless `NO_COLOR` is set;
/// `CLICOLOR_FORCE` forces it (anstream's rules, so steward's own lines,
/// config errors and the daemon's log lines all agree).
pub fn color_on_stderr() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// Loads and validates the config at `path`.
fn load_config(path: &Path) -> Result<Config, CliError> {
    config::load(path).map_err(|err| CliError::config(path, err))
}

/// Opens the store of `config` for a command that writes it. Every free
/// text it writes passes [`steward_core::secrets::local_redactor`]: the
/// rules, the agent token and the credentials readable at once (see there
/// for why `command:` and `vault:` sources are not asked). Commands that
/// change state (`stop`) create the private state dir first, so they work
/// before the daemon ever ran.
async fn open_store(config: &Config) -> anyhow::Result<steward_core::store::Store> {
    let redactor = steward_core::redaction::shared(steward_core::secrets::local_redactor(config).await);
    open_store_with(config, redactor).await
}

/// [`open_store`] with a redactor the command already built (one that knows
/// more secrets, such as `alerts test`'s).
/// With `[store] url`, the fleet's database (its URL resolved here).
async fn open_store_with(
    config: &Config,
    redactor: steward_core::redaction::SharedRedactor,
) -> anyhow::Result<steward_core::store::Store> {
    use anyhow::Context;
    use secrecy::ExposeSecret as _;
    steward_core::state_dir::ensure_private_dir(&config.state.dir).context("cannot create the state dir")?;
    let url = steward_core::secrets::store_url(config).await.context("cannot resolve [store] url")?;
    steward_core::store::Store::open_configured(config, url.as_ref().map(|u| u.expose_secret()), redactor)
        .await
        .context("cannot open the store")
}

/// Opens the store of `config` for a command that only reads it (`last`,
/// `status`, `spend`): building a redactor would cost more than the command,
/// so any free text written through this handle is withheld whole instead
/// (fail closed, never stored unchecked).
async fn open_store_read_only(config: &Config) -> anyhow::Result<steward_core::store::Store> {
    open_store_with(config, steward_core::redaction::shared(redact::Redactor::withhold_all())).await
}

/// A runtime for commands that talk to the store.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Now, in Unix milliseconds.
fn now_ms() -> i64 {
    steward_core::clock::unix_ms(std::time::SystemTime::now())
}

/// `2026-11-26 04:00:00` (UTC) from Unix milliseconds.
fn format_ms(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Prints `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    anstream::println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
