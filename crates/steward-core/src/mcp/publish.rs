//! Publishes the servers' states into the store (`store::mcp_servers`), on
//! every change, so the operator's commands and the dashboard, which run
//! in other processes or read the store, see them. The states are polled
//! once a second: a change shows within a second, and no code path that
//! starts or loses a server has to remember to report it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{McpHub, ServerState};
use crate::store::Store;
use crate::store::mcp_servers::{ServerRecord, publish};

/// How often the states are compared with the last published ones.
const EVERY: Duration = Duration::from_secs(1);

fn record(state: &ServerState, now_ms: i64) -> ServerRecord {
    ServerRecord { state: state.as_str().to_owned(), reason: state.last_error().map(str::to_owned), since_ms: now_ms }
}

/// Runs until `shutdown`, then records every server as `stopped`.
pub async fn run(hub: Arc<McpHub>, store: Store, shutdown: CancellationToken) {
    let mut last: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    loop {
        let now_ms = crate::clock::unix_ms(std::time::SystemTime::now());
        for (name, state) in hub.states() {
            let rec = record(&state, now_ms);
            let key = (rec.state.clone(), rec.reason.clone());
            if last.get(&name) == Some(&key) {
                continue;
            }
            if let Err(err) = publish(&store, &name, &rec).await {
                tracing::warn!(server = %name, error = %err, "cannot record the MCP server's state in the store");
                continue;
            }
            last.insert(name, key);
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
    let now_ms = crate::clock::unix_ms(std::time::SystemTime::now());
    for (name, _) in hub.states() {
        let rec = ServerRecord { state: "stopped".to_owned(), reason: None, since_ms: now_ms };
        if let Err(err) = publish(&store, &name, &rec).await {
            tracing::warn!(server = %name, error = %err, "cannot record the MCP server's state in the store");
        }
    }
}
