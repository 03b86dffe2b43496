//! `steward runbook`: the one-page Markdown runbook of this deployment,
//! rendered from the config, and the record `steward doctor` checks it by.
//!
//! - `render`: the page itself, a pure function of (config, config path,
//!   now). It reads the config only and never resolves a credential, so it
//!   renders on a machine where no secret is present, and no secret value can
//!   reach it.
//! - here: [`write_page`] (temp file + rename, so a reader never sees half a
//!   page), the SHA-256 of the config bytes it was rendered from, the
//!   [`RenderedRecord`] kept in the store's kv table under [`KV_RENDERED`],
//!   and [`unit_user`], the `User=` of an installed systemd unit.
//!
//! The record lets doctor tell three stale states apart: never rendered, the
//! config changed since (its SHA-256 differs), and the file was deleted.

mod render;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use render::render;

use crate::store::{Store, StoreError};

/// kv key: JSON [`RenderedRecord`] of the last page `steward runbook` wrote.
pub const KV_RENDERED: &str = "runbook.rendered";

/// Mode of the written page: it holds no secret (names and references
/// only), and on-call people other than the steward user may need to read it.
pub const PAGE_MODE: u32 = 0o644;

/// What `steward runbook` records after writing the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedRecord {
    /// When the page was rendered, epoch ms.
    pub at_ms: i64,
    /// Absolute path the page was written to.
    pub path: PathBuf,
    /// Hex SHA-256 of the config file bytes the page was rendered from.
    pub config_sha256: String,
}

/// Whether a recorded page still describes the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Rendered from the current config, and the file is still there.
    Current,
    /// The config file changed since (or cannot be read now).
    ConfigChanged,
    /// The file is no longer at its path.
    FileGone,
}

impl RenderedRecord {
    /// Judges this record against the current config bytes' SHA-256
    /// (`None` when the file cannot be read) and whether its file exists.
    pub fn freshness(&self, current_config_sha256: Option<&str>, file_exists: bool) -> Freshness {
        if current_config_sha256 != Some(self.config_sha256.as_str()) {
            Freshness::ConfigChanged
        } else if !file_exists {
            Freshness::FileGone
        } else {
            Freshness::Current
        }
    }
}

/// A failure of `steward runbook`.
#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    /// The page could not be written where `[runbook] output` points.
    #[error("cannot write the runbook to {}: {source}", path.display())]
    Write {
        /// The target (or its temp file).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The record could not be stored.
    #[error("cannot record the rendered runbook in the store: {0}")]
    Store(#[from] StoreError),
}

/// Where an installed steward unit is found: the admin's copy first, then
/// the Debian package's.
pub const UNIT_PATHS: &[&str] = &[
    "/etc/systemd/system/steward.service",
    "/usr/lib/systemd/system/steward.service",
    "/lib/systemd/system/steward.service",
];

/// The `User=` of the first steward unit found at `paths` (see
/// [`UNIT_PATHS`]): under systemd the runbook's commands must run as that
/// user, so `steward runbook` uses it when `[runbook] run_as` is not set.
pub fn unit_user(paths: &[&str]) -> Option<String> {
    let text = paths.iter().find_map(|path| std::fs::read_to_string(path).ok())?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("User="))
        .map(str::trim)
        .find(|user| !user.is_empty())
        .map(str::to_owned)
}

/// Hex SHA-256 of the config file's bytes: what [`RenderedRecord::config_sha256`] holds.
pub fn config_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `page` to `path` atomically: a temp file in the same directory
/// (created when missing), flushed to disk, then renamed over `path`, mode
/// [`PAGE_MODE`]. A failed write leaves the previous page untouched.
pub fn write_page(path: &Path, page: &str) -> Result<(), RunbookError> {
    let fail = |at: &Path| {
        let at = at.to_path_buf();
        move |source| RunbookError::Write { path: at, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail(dir))?;
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PAGE_MODE)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(page.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| {
            // The mode given to open() is reduced by the umask; the page is meant to be readable.
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(PAGE_MODE))
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        RunbookError::Write { path: path.to_path_buf(), source }
    })
}

/// Stores `record` under [`KV_RENDERED`].
pub async fn record(store: &Store, record: &RenderedRecord) -> Result<(), RunbookError> {
    let text = serde_json::to_string(record).unwrap_or_default();
    Ok(store.kv_set(KV_RENDERED, &text, record.at_ms).await?)
}

/// The last [`RenderedRecord`], if any (an unreadable one counts as none).
pub async fn last_rendered(store: &Store) -> Result<Option<RenderedRecord>, StoreError> {
    Ok(store.kv_get(KV_RENDERED).await?.and_then(|text| serde_json::from_str(&text).ok()))
}

#[cfg(test)]
mod tests;
