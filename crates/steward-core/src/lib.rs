//! steward-core: everything the `steward` binary does, as a library.
//!
//! # Layout
//! - [`config`]: `steward.toml` → validated [`config::Config`] (two stages, spanned errors).
//! - [`clock`]: Unix milliseconds and the one format of each timestamp and calendar day.
//! - [`redaction`]: the [`redaction::SharedRedactor`] every writer shares, swapped on reload.
//! - [`state_dir`]: the private state dir, its files (0600) and the one-daemon lock.
//! - [`outbound`]: steward's own outbound HTTP client, and the secrets its
//!   destinations (alert sinks, heartbeat) reference.
//! - [`secrets`]: resolves credential references (`env:`, `file:`, `systemd:`, `command:`,
//!   `vault:`) into secret values; dev/prod separation, expiry, scopes, the redactor.
//! - [`store`]: the SQLite store: call journal, persistent rate windows, kill switch, approvals.
//! - [`audit`]: the JSON-lines audit log, and the rotating line files (writer, rotation,
//!   retention) it shares with the agent's captured output.
//! - [`policy`]: tool identification (method + path rules) and input normalization.
//! - [`pipeline`]: the one pipeline every front door feeds a [`pipeline::Call`] into, with
//!   supervised mode's approval step (the digest, the held calls, their release).
//! - [`decision`]: the vocabulary of call outcomes: each decision's stored name, HTTP status
//!   and error-rate weight, in one mapping the pipeline, the store and the CLI share.
//! - [`llm`]: the pure core of the LLM front door: prices, request rewriting, usage and cost.
//! - [`gateway`]: the HTTP server and the `/api/{upstream}` front door; forwarding and retries.
//! - [`agent_state`]: the agent's lifecycle records in the store (status, crash-loop hold, resume).
//! - [`supervision`]: supervised mode's records: the first supervised start, graduation, return.
//! - [`supervisor`]: runs the agent process: restarts, crash loop, kill switch, output capture.
//! - [`events`]: the daemon's event bus (agent lifecycle, kill switch, spend cap, write failures).
//! - [`telemetry`]: [`telemetry::CallMetrics`], the per-call counters the pipeline reports
//!   through and `monitor` implements (so neither imports the other).
//! - [`monitor`]: `/metrics`, `/readyz`, the alert engine and its sinks, the dead-man heartbeat.
//! - [`admin`]: the admin API on `<state>/admin.sock` (admin token, never the agent's): what
//!   the CLI and the dashboard ask a running daemon (approvals, undo, status).
//! - [`dashboard`]: the operator's web page on its own listener (`[dashboard]`): login
//!   sessions, Host/Origin/CSRF guard, overview, live feed (SSE), approvals, report; its
//!   actions call the admin API's functions.
//! - [`daemon`]: `steward run`: startup, the daemon lock, background tasks, credential reload, shutdown.
//! - [`doctor`]: `steward doctor`: the production checklist as independent checks.
//! - [`backup`]: snapshots, archives, destinations, retention, verify, restore, schedule.
//! - [`report`]: `steward report`: the supervised week summarized, and the readiness verdict.
//! - [`undo`]: a tool's declared undo resolved against one released call (pure); the
//!   pipeline journals it and runs it (`steward undo`).
//! - [`runbook`]: `steward runbook`: the one-page runbook rendered from the config, and its record.
//!
//! # Who may import whom
//! The small shared modules (`clock`, `redaction`, `state_dir`, `outbound`,
//! `telemetry`, `events`, `agent_state`) import nothing but `config`, `store`
//! and each other. The pipeline publishes through `events` and `telemetry`
//! and never imports `monitor`; `monitor` never imports `pipeline`; `secrets`
//! never imports `monitor`; and no two modules import each other, directly or
//! around a loop. The test module `module_boundaries` keeps it so.

pub mod admin;
pub mod agent_state;
pub mod audit;
pub mod backup;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dashboard;
pub mod decision;
pub mod doctor;
pub mod events;
pub mod gateway;
pub mod llm;
pub mod mcp;
pub mod monitor;
pub mod outbound;
pub mod pipeline;
pub mod policy;
pub mod redaction;
pub mod report;
pub mod runbook;
pub mod secrets;
pub mod state_dir;
pub mod store;
pub mod supervision;
pub mod supervisor;
pub mod telemetry;
pub mod undo;

#[cfg(test)]
mod module_boundaries;
