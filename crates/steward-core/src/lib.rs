//! steward-core: everything the `steward` binary does, as a library.
//!
//! # Layout
//! - [`config`]: `steward.toml` → validated [`config::Config`] (two stages, spanned errors).
//! - [`secrets`]: resolves credential references (`env:`, `file:`, `systemd:`, `command:`,
//!   `vault:`) into secret values; dev/prod separation, expiry, scopes, the redactor.
//! - [`store`]: the SQLite store: call journal, persistent rate windows, kill switch.
//! - [`audit`]: the JSON-lines audit log, and the rotating line files (writer, rotation,
//!   retention) it shares with the agent's captured output.
//! - [`policy`]: tool identification (method + path rules) and input normalization.
//! - [`pipeline`]: the one pipeline every front door feeds a [`pipeline::Call`] into.
//! - [`decision`]: the vocabulary of call outcomes: each decision's stored name, HTTP status
//!   and error-rate weight, in one mapping the pipeline, the store and the CLI share.
//! - [`llm`]: the pure core of the LLM front door: prices, request rewriting, usage and cost.
//! - [`gateway`]: the HTTP server and the `/api/{upstream}` front door; forwarding and retries.
//! - [`supervisor`]: runs the agent process: restarts, crash loop, kill switch, output capture.
//! - [`events`]: the daemon's event bus (agent lifecycle, kill switch, spend cap, write failures).
//! - [`monitor`]: `/metrics`, `/readyz`, the alert engine and its sinks, the dead-man heartbeat.
//! - [`daemon`]: `steward run`: startup, the daemon lock, background tasks, credential reload, shutdown.
//! - [`doctor`]: `steward doctor`: the production checklist as independent checks.
//! - [`backup`]: snapshots, archives, destinations, retention, verify, restore, schedule.
//! - [`runbook`]: `steward runbook`: the one-page runbook rendered from the config, and its record.

pub mod audit;
pub mod backup;
pub mod config;
pub mod daemon;
pub mod decision;
pub mod doctor;
pub mod events;
pub mod gateway;
pub mod llm;
pub mod monitor;
pub mod pipeline;
pub mod policy;
pub mod runbook;
pub mod secrets;
pub mod store;
pub mod supervisor;
