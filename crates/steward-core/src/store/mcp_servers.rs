//! The MCP servers' states as the daemon last saw them, kept in the
//! store's `kv` table under `mcp.server.<name>` so `steward status`,
//! `steward mcp list`, `steward doctor` and the dashboard read them from
//! another process, like the agent's status. Written by the daemon on
//! every change (`mcp::publish`); history once the daemon is gone.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// `kv` prefix of the records.
pub const SERVER_PREFIX: &str = "mcp.server.";

/// One server's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// `idle` (not started yet), `running`, `exited` (started again by the
    /// next request), `fatal` (crash loop: refused until steward restarts),
    /// or for a server reached over HTTP `reachable` / `unreachable`.
    pub state: String,
    /// Why, for `fatal` and `unreachable` (redacted by the store's writer
    /// like every text it keeps).
    #[serde(default)]
    pub reason: Option<String>,
    /// When the state last changed, epoch ms.
    pub since_ms: i64,
}

impl ServerRecord {
    /// Whether the server cannot take calls until someone acts.
    pub fn is_failing(&self) -> bool {
        matches!(self.state.as_str(), "fatal" | "unreachable")
    }
}

/// What to show for a server whose last record is `record`: the record
/// while a daemon runs (`idle` before the first one), else `stopped`
/// (shutdown records it so) unless the daemon died with the server
/// crash-looped, which stays `fatal`: it is still why the server is down.
pub fn as_seen(record: Option<&ServerRecord>, daemon_running: bool) -> (String, Option<String>) {
    match record {
        Some(r) if daemon_running || r.state == "fatal" => (r.state.clone(), r.reason.clone()),
        _ if daemon_running => ("idle".to_owned(), None),
        _ => ("stopped".to_owned(), None),
    }
}

/// Records `server`'s state.
pub async fn publish(store: &Store, server: &str, record: &ServerRecord) -> Result<(), StoreError> {
    let value = serde_json::to_string(record).unwrap_or_default();
    store.kv_set(&format!("{SERVER_PREFIX}{server}"), &value, record.since_ms).await
}

/// Every recorded server, by name.
pub async fn all(store: &Store) -> Result<std::collections::BTreeMap<String, ServerRecord>, StoreError> {
    let rows = store.kv_with_prefix(SERVER_PREFIX).await?;
    Ok(rows
        .into_iter()
        .filter_map(|(key, value, _)| {
            let name = key.strip_prefix(SERVER_PREFIX)?.to_owned();
            Some((name, serde_json::from_str(&value).ok()?))
        })
        .collect())
}
