//! Supervised mode's lifecycle as persisted in the store's `kv` table: when
//! the first supervised week began, and whether (and by whom) the agent was
//! graduated out of it. Written by the daemon (the start) and by
//! `steward graduate` / `steward supervise` (directly, like `steward stop`,
//! so they work with or without a running daemon); read by `steward report`,
//! `steward doctor` and the approval step, which stops asking for
//! `approval = "supervised"` tools once [`GRADUATED_KEY`] is set.
//!
//! - [`SINCE_KEY`]: epoch ms of the first daemon start with
//!   `[supervised] enabled = true`. Written once, never moved: the readiness
//!   verdict counts supervised days from it.
//! - [`GRADUATED_KEY`]: [`Graduation`] as JSON while the agent is graduated;
//!   absent while it is supervised. The key name is shared with the approval
//!   step: do not rename it.
//! - [`RETURNED_KEY`]: [`Return`] as JSON: the last `steward supervise`,
//!   which deleted a graduation (kept for `steward doctor`).
//!
//! Every change also gets one audit line (`door = "supervised"`,
//! `phase = "supervision"`), so the audit log says who switched modes when.

use std::time::SystemTime;

use crate::audit::{AuditLog, AuditRecord, Phase};
use crate::store::{Store, StoreError};

/// `kv` key: epoch ms of the first supervised start.
pub const SINCE_KEY: &str = "supervised.since";
/// `kv` key: the [`Graduation`] in force (absent: supervised).
pub const GRADUATED_KEY: &str = "supervised.graduated";
/// `kv` key: the last [`Return`] to supervised mode.
pub const RETURNED_KEY: &str = "supervised.returned";

/// The audit line's `door` for mode changes.
pub const AUDIT_DOOR: &str = "supervised";

/// A recorded `steward graduate`: the JSON of [`GRADUATED_KEY`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Graduation {
    /// When, epoch ms.
    pub at_ms: i64,
    /// Who (`--by`, else the login name).
    pub by: String,
    /// True when the readiness verdict did not pass and `--force` overrode it
    /// (absent in a record written without it: not forced).
    #[serde(default)]
    pub forced: bool,
}

/// A recorded `steward supervise`: the JSON of [`RETURNED_KEY`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Return {
    /// When, epoch ms.
    pub at_ms: i64,
    /// Who.
    pub by: String,
    /// The graduation it withdrew, if one was in force.
    pub withdrew: Option<Graduation>,
}

/// Everything recorded about supervised mode, for `report` and `doctor`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SupervisionState {
    /// The first supervised start, epoch ms; `None`: never supervised.
    pub since_ms: Option<i64>,
    /// The graduation in force.
    pub graduated: Option<Graduation>,
    /// The last return to supervised mode.
    pub returned: Option<Return>,
}

/// Reads the three records. Unreadable JSON counts as absent (a damaged
/// graduation means supervised: fail closed).
pub async fn read(store: &Store) -> Result<SupervisionState, StoreError> {
    let since_ms = store.kv_get(SINCE_KEY).await?.and_then(|text| text.trim().parse().ok());
    let graduated = graduated(store).await?;
    let returned = store.kv_get(RETURNED_KEY).await?.and_then(|text| serde_json::from_str(&text).ok());
    Ok(SupervisionState { since_ms, graduated, returned })
}

/// The graduation in force, if any: the one key the approval step reads per
/// held call. A value that does not parse counts as not graduated:
/// supervision stays on (fail closed), and a warning says which key to fix.
pub async fn graduated(store: &Store) -> Result<Option<Graduation>, StoreError> {
    let Some(text) = store.kv_get(GRADUATED_KEY).await? else { return Ok(None) };
    match serde_json::from_str(&text) {
        Ok(graduation) => Ok(Some(graduation)),
        Err(err) => {
            tracing::warn!(key = GRADUATED_KEY, error = %err, "unreadable graduation record; supervision stays on (run `steward graduate` again)");
            Ok(None)
        }
    }
}

/// At daemon start with `[supervised] enabled = true`: records `now_ms` as
/// the first supervised start unless one is recorded. Returns the start in force.
pub async fn record_start(store: &Store, now_ms: i64) -> Result<i64, StoreError> {
    if let Some(since) = store.kv_get(SINCE_KEY).await?.and_then(|text| text.trim().parse::<i64>().ok()) {
        return Ok(since);
    }
    store.kv_set(SINCE_KEY, &now_ms.to_string(), now_ms).await?;
    Ok(now_ms)
}

/// Records a graduation (replacing one in force).
pub async fn graduate(store: &Store, graduation: &Graduation) -> Result<(), StoreError> {
    let text = serde_json::to_string(graduation).map_err(|e| StoreError::Unavailable(format!("encode: {e}")))?;
    store.kv_set(GRADUATED_KEY, &text, graduation.at_ms).await
}

/// Back to supervised mode: deletes the graduation and records the return.
/// Returns the graduation it withdrew, if any.
pub async fn supervise(store: &Store, by: &str, now_ms: i64) -> Result<Option<Graduation>, StoreError> {
    let withdrew = read(store).await?.graduated;
    let record = Return { at_ms: now_ms, by: by.to_owned(), withdrew: withdrew.clone() };
    let text = serde_json::to_string(&record).map_err(|e| StoreError::Unavailable(format!("encode: {e}")))?;
    store.kv_set(RETURNED_KEY, &text, now_ms).await?;
    store.kv_delete(GRADUATED_KEY).await?;
    Ok(withdrew)
}

/// The audit line of a mode change: `decision` is `graduated` or
/// `supervised`, `reason` says by whom and why; `extra` is flattened in.
pub fn audit_line(
    agent: &str,
    decision: &str,
    reason: String,
    at: SystemTime,
    extra: serde_json::Map<String, serde_json::Value>,
) -> AuditRecord {
    AuditRecord {
        ts: crate::clock::format_ts(at),
        call_id: crate::store::new_call_id(),
        agent: agent.to_owned(),
        door: AUDIT_DOOR.to_owned(),
        tool: None,
        upstream: String::new(),
        method: "MODE".to_owned(),
        path: String::new(),
        input_summary: String::new(),
        input_sha256: String::new(),
        decision: decision.to_owned(),
        phase: Phase::Supervision,
        reason: Some(reason),
        status: None,
        duration_ms: 0,
        attempts: 0,
        extra,
    }
}

/// Writes `line` to the audit log of `logging` from a process that is not
/// the daemon (`steward graduate`, `steward supervise`): the file is opened
/// for append, so the line lands whole next to the daemon's own.
pub async fn write_audit_line(
    logging: &crate::config::LoggingConfig,
    redactor: crate::redaction::SharedRedactor,
    line: &AuditRecord,
) -> Result<(), crate::audit::AuditError> {
    let log = AuditLog::open(logging, redactor)?;
    let written = log.write(line).await;
    log.shutdown().await;
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open(&dir.path().join("state.db"), crate::redaction::shared(redact::Redactor::default())).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn the_first_start_is_kept_and_graduation_comes_and_goes() {
        let (_dir, store) = store();
        assert_eq!(read(&store).await.unwrap(), SupervisionState::default());
        assert_eq!(record_start(&store, 1_000).await.unwrap(), 1_000);
        assert_eq!(record_start(&store, 9_000).await.unwrap(), 1_000, "the first start stays");
        let g = Graduation { at_ms: 5_000, by: "ana".into(), forced: true };
        graduate(&store, &g).await.unwrap();
        let text = store.kv_get(GRADUATED_KEY).await.unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json, serde_json::json!({"at_ms": 5_000, "by": "ana", "forced": true}));
        assert_eq!(read(&store).await.unwrap().graduated, Some(g.clone()));
        assert_eq!(supervise(&store, "bo", 6_000).await.unwrap(), Some(g.clone()));
        let state = read(&store).await.unwrap();
        assert_eq!(state.since_ms, Some(1_000));
        assert_eq!(state.graduated, None);
        assert_eq!(state.returned, Some(Return { at_ms: 6_000, by: "bo".into(), withdrew: Some(g) }));
        assert_eq!(supervise(&store, "bo", 7_000).await.unwrap(), None, "already supervised");
    }

    #[tokio::test]
    async fn a_record_without_forced_is_read_and_a_broken_one_keeps_supervision_on() {
        let (_dir, store) = store();
        assert_eq!(graduated(&store).await.unwrap(), None);
        store.kv_set(GRADUATED_KEY, r#"{"at_ms": 5, "by": "ana"}"#, 1).await.unwrap();
        assert_eq!(graduated(&store).await.unwrap(), Some(Graduation { at_ms: 5, by: "ana".into(), forced: false }));
        store.kv_set(GRADUATED_KEY, "yes", 1).await.unwrap();
        assert_eq!(graduated(&store).await.unwrap(), None);
        assert_eq!(read(&store).await.unwrap().graduated, None);
    }
}
