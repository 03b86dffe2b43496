//! Configuration: `steward.toml` is parsed into a `RawConfig` and validated
//! into a [`Config`] in one fallible step.
//!
//! - `raw`: stage one, the TOML as written (serde, `deny_unknown_fields`, spans).
//! - `validate`: stage two, every check and default; collects all problems.
//! - [`model`](Config): the validated types the rest of steward reads.
//! - [`units`]: durations, sizes and rate limits, shared with later sections.
//! - `rule`: the `match = "METHOD PATH"` syntax of a tool.
//! - [`AlertsConfig`], [`HeartbeatConfig`]: `[alerts]`, `[[alerts.sinks]]`, `[heartbeat]`.
//! - [`ConfigError`]: one miette diagnostic for every problem in the file.
//! - [`starter_template`]: the commented file `steward init` writes.
//!
//! Relative paths in the file resolve against the file's directory and are
//! stored absolute, so steward behaves the same whatever directory it is
//! started from.

mod alerts;
mod error;
mod model;
mod raw;
mod rule;
mod template;
pub mod units;
mod validate;

use std::path::Path;

pub use alerts::*;
pub use error::ConfigError;
pub use model::*;
pub use template::starter_template;
pub use validate::{
    AGENT_ENV_SET_BY_STEWARD, DEFAULT_AGENT_DOWN_AFTER, DEFAULT_AUTH_FORMAT, DEFAULT_AUTH_HEADER,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_ERROR_RATE_MIN_CALLS, DEFAULT_ERROR_RATE_PERCENT, DEFAULT_HEARTBEAT_EVERY,
    DEFAULT_LISTEN, DEFAULT_LLM_READ_TIMEOUT, DEFAULT_LOOP_WINDOW, DEFAULT_MAX_BODY, DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_IDENTICAL, DEFAULT_MAX_OUTPUT_TOKENS, DEFAULT_MAX_TOTAL_SIZE, DEFAULT_MIN_UPTIME, DEFAULT_READ_TIMEOUT,
    DEFAULT_REPEAT_EVERY, DEFAULT_RETENTION_DAYS, DEFAULT_SINK_TIMEOUT, DEFAULT_STATE_DIR, DEFAULT_STOP_GRACE,
    MAX_DEFAULT_MAX_OUTPUT_TOKENS, MAX_PRICE_PER_MTOK_USD, MAX_RETENTION_DAYS, MIN_MAX_FILE_SIZE,
};

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
    // `credential = "social"` names a [credentials.social] entry: a
    // reference, not a secret, whatever a keyword rule makes of it.
    let references: Vec<&str> =
        raw.iter().flat_map(|r| r.credentials.iter().map(|(name, _)| name.get_ref().as_str())).collect();
    problems.extend(literal_secrets(source).into_iter().filter(|p| {
        let text = source.get(p.span.clone()).unwrap_or_default().trim_matches(['"', '\'']);
        !references.contains(&text)
    }));
    let config = raw.map(|raw| validate::validate(raw, source, &absolute, &mut problems));
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigError::from_problems(path, source, problems)),
    }
}

/// Every token-shaped literal anywhere in the text (values, comments, keys):
/// a secret in a config file ends up in git, backups and screenshots.
fn literal_secrets(source: &str) -> Vec<Problem> {
    // Compiling the rule set is the expensive part: once per process.
    static SCANNER: std::sync::OnceLock<redact::Redactor> = std::sync::OnceLock::new();
    SCANNER
        .get_or_init(|| redact::RedactorBuilder::new().build())
        .find_secrets(source)
        .into_iter()
        .filter(|finding| !is_credential_reference(source, finding))
        .map(|finding| {
            Problem::new(
                finding.range,
                format!("a literal secret ({}) is written in the config file", finding.kind),
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

/// `credential = "social"` (and `credentials = "..."`) name a
/// `[credentials.*]` entry: steward's own way to reference a secret, which
/// the generic "credential assignment" rule would otherwise flag.
fn is_credential_reference(source: &str, finding: &redact::Finding) -> bool {
    if finding.kind != "credential-assignment" {
        return false;
    }
    let before = source.get(..finding.range.start).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let head = before.get(line_start..).unwrap_or_default().trim_start_matches([' ', '\t', '#']);
    let key = head.split(['=', ' ', '\t']).next().unwrap_or_default();
    matches!(key, "credential" | "credentials")
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_alerts;
#[cfg(test)]
mod tests_llm;
