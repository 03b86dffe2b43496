//! Whether supervised mode has graduated: the one `kv` key `steward
//! graduate` writes and `steward supervise` deletes, read by the pipeline
//! (is a `supervised` tool's call held?), `doctor` and `report`.

use super::{Store, StoreError};

/// `kv` key of the graduation record: JSON [`Graduation`]; absent while the
/// deployment is supervised (or never was).
pub const GRADUATED_KEY: &str = "supervised.graduated";

/// Who ended the supervised first week, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Graduation {
    /// When, epoch ms.
    pub at_ms: i64,
    /// Who (`$USER` of `steward graduate`).
    pub by: String,
}

impl Store {
    /// The graduation record, if supervised mode has graduated. A value
    /// that does not parse counts as not graduated: supervision stays on
    /// (fail closed), and a warning says which key to fix.
    pub async fn supervision_graduated(&self) -> Result<Option<Graduation>, StoreError> {
        let Some(text) = self.kv_get(GRADUATED_KEY).await? else { return Ok(None) };
        match serde_json::from_str(&text) {
            Ok(graduation) => Ok(Some(graduation)),
            Err(err) => {
                tracing::warn!(key = GRADUATED_KEY, error = %err, "unreadable graduation record; supervision stays on (run `steward graduate` again)");
                Ok(None)
            }
        }
    }
}
