//! Configuration: `steward.toml` is parsed into a `RawConfig` and validated
//! into a [`Config`] in one fallible step.
//!
//! - `raw`: stage one, the TOML as written (serde, `deny_unknown_fields`, spans).
//! - `validate`: stage two, every check and default; collects all problems.
//! - [`model`](Config): the validated types the rest of steward reads.
//! - [`units`]: durations, sizes and rate limits, shared with later sections.
//! - `rule`: the `match = "METHOD PATH"` syntax of a tool.
//! - `argv`: splits a `command:` credential source into arguments.
//! - [`scope`]: matching scopes against `[policy] forbidden_scopes` patterns.
//! - `literal`: [`find_literal_secrets`], the literal-secret scan shared with `steward doctor`.
//! - [`AlertsConfig`], [`HeartbeatConfig`]: `[alerts]`, `[[alerts.sinks]]`, `[heartbeat]`.
//! - [`RunbookConfig`]: `[runbook]`, whom to call and where `steward runbook` writes.
//! - [`ConfigError`]: one miette diagnostic for every problem in the file.
//! - [`starter_template`], [`starter_template_in`]: the commented file `steward init` writes.
//!
//! Relative paths in the file resolve against the file's directory and are
//! stored absolute, so steward behaves the same whatever directory it is
//! started from.

mod alerts;
mod argv;
mod error;
mod literal;
mod model;
mod raw;
mod rule;
pub mod scope;
mod template;
pub mod undo;
pub mod units;
mod validate;

use std::path::Path;

pub use alerts::*;
pub use error::ConfigError;
pub use literal::find_literal_secrets;
pub use model::*;
pub use template::{starter_template, starter_template_in};
pub use undo::{UndoCall, UndoSpec};
pub use validate::DEFAULT_RUNBOOK_FILE;
pub use validate::local::host_name;
pub use validate::{
    AGENT_ENV_SET_BY_STEWARD, DEFAULT_AGENT_DOWN_AFTER, DEFAULT_AUTH_FORMAT, DEFAULT_AUTH_HEADER,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_ERROR_RATE_MIN_CALLS, DEFAULT_ERROR_RATE_PERCENT, DEFAULT_EXPIRY_WARNING_DAYS,
    DEFAULT_HEARTBEAT_EVERY, DEFAULT_LISTEN, DEFAULT_LLM_READ_TIMEOUT, DEFAULT_LOOP_WINDOW, DEFAULT_MAX_BODY,
    DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_IDENTICAL, DEFAULT_MAX_OUTPUT_TOKENS, DEFAULT_MAX_TOTAL_SIZE,
    DEFAULT_MIN_UPTIME, DEFAULT_READ_TIMEOUT, DEFAULT_REPEAT_EVERY, DEFAULT_RETENTION_DAYS, DEFAULT_SINK_TIMEOUT,
    DEFAULT_SPEND_HISTORY_DAYS, DEFAULT_STATE_DIR, DEFAULT_STOP_GRACE, MAX_DEFAULT_MAX_OUTPUT_TOKENS,
    MAX_EXPIRY_WARNING_DAYS, MAX_PRICE_PER_MTOK_USD, MAX_RETENTION_DAYS, MIN_MAX_FILE_SIZE,
};
pub use validate::{CREDENTIAL_REF_PREFIX, DEFAULT_MCP_MAX_MESSAGE_SIZE, DEFAULT_MCP_REQUEST_TIMEOUT};
pub use validate::{DEFAULT_BACKUP_SCHEDULE, DEFAULT_BACKUP_TIMEZONE, DEFAULT_KEEP, DEFAULT_RESTORE_TEST, parse_cron};
pub use validate::{DEFAULT_DASHBOARD_LISTEN, DEFAULT_SESSION_TTL};
pub use validate::{DEFAULT_READY_MIN_DAYS, DEFAULT_READY_MIN_DECISIONS, DEFAULT_READY_QUIET_DAYS, MAX_READY_DAYS};
pub use validate::{DEFAULT_SUPERVISED_EXPIRES, DEFAULT_SUPERVISED_WAIT, MAX_SUPERVISED_WAIT};

use error::Problem;

/// Reads and validates the config file at `path`. Relative paths inside it
/// resolve against the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))?;
    parse(&source, path)
}

/// Validates config text as if read from `path`: `path` names the file in
/// error messages and its directory anchors relative paths.
pub fn parse(source: &str, path: &Path) -> Result<Config, ConfigError> {
    let absolute = std::path::absolute(path).map_err(|e| ConfigError::io(path, e))?;
    let mut problems = Vec::new();
    let raw = raw::RawConfig::from_source(source, &mut problems);
    let config = raw.map(|raw| validate::validate(raw, source, &absolute, &mut problems));
    // A secret validation already reports (and masks), such as the password
    // of a base_url, is not reported a second time.
    let masked: Vec<_> = problems.iter().filter(|p| p.secret).map(|p| p.span.clone()).collect();
    problems.extend(
        literal_secrets(source)
            .into_iter()
            .filter(|p| !masked.iter().any(|m| m.start <= p.span.start && p.span.end <= m.end)),
    );
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigError::from_problems(path, source, problems)),
    }
}

/// Every token-shaped literal anywhere in the text (values, comments, keys):
/// a secret in a config file ends up in git, backups and screenshots.
fn literal_secrets(source: &str) -> Vec<Problem> {
    find_literal_secrets(source)
        .into_iter()
        .map(|f| (f.range, f.kind.to_string()))
        .chain(age_identities(source).map(|range| (range, "age identity".to_owned())))
        .map(|(range, kind)| {
            Problem::new(
                range,
                format!("a literal secret ({kind}) is written in the config file"),
                "literal secret (masked)",
                format!(
                    "{}; then rotate the secret, it may already be in git history or backups",
                    validate::LITERAL_SECRET_HELP
                ),
            )
            .secret()
        })
        .collect()
}

/// Byte ranges of age identities (`AGE-SECRET-KEY-1...`, the private half
/// of a backup encryption key): only the `age1...` recipient belongs in the file.
pub(super) fn age_identities(source: &str) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    source.match_indices("AGE-SECRET-KEY-").map(|(start, _)| {
        let len =
            source[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(source.len() - start);
        start..start + len
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_alerts;
#[cfg(test)]
mod tests_credentials;
#[cfg(test)]
mod tests_llm;
#[cfg(test)]
mod tests_mcp;
#[cfg(test)]
mod tests_ready;
#[cfg(test)]
mod tests_runbook;
#[cfg(test)]
mod tests_store;
#[cfg(test)]
mod tests_supervised;
#[cfg(test)]
mod tests_undo;
