//! What a backup says about itself: the [`Manifest`] inside the archive (one
//! entry per file with size, mode and SHA-256) and the [`BackupRecord`] stored
//! next to the archive, which is what `steward backup list` reads.
//!
//! The record is written only after the archive upload completed, so a backup
//! without its record (a crash mid-upload) is never listed.

use serde::{Deserialize, Serialize};

/// Version of the manifest and record formats; a reader refuses a newer one.
pub const FORMAT: u32 = 1;

/// Name of the manifest entry: the last entry of every archive, because the
/// checksums are known only once every file was read.
pub const MANIFEST_NAME: &str = "MANIFEST.json";

/// Largest manifest a restore reads into memory (about 300,000 files): a
/// hostile archive cannot make restore allocate without bound.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// The table of contents inside an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// Backup id (also the archive's object name).
    pub id: String,
    /// When the backup started, epoch ms.
    pub created_ms: i64,
    /// Host name of the machine that took it.
    pub host: String,
    /// steward version that wrote it.
    pub steward_version: String,
    /// `[agent] name`.
    pub agent: String,
    /// Archive path of `steward.toml`.
    pub config_entry: String,
    /// Archive path of the store snapshot; `None` when there was no store yet.
    pub db_entry: Option<String>,
    /// Every file in the archive except the manifest, in archive order.
    pub files: Vec<ManifestEntry>,
}

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path inside the archive, `/`-separated, relative to the config file's
    /// directory (`_absolute/...` for files outside it).
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Permission bits (0o777 mask).
    pub mode: u32,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

/// The small JSON object written next to each archive once it is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// [`FORMAT`].
    pub format: u32,
    /// `20261126T030000Z-1a2b`: sorts by time, unique per run.
    pub id: String,
    /// When the backup started, epoch ms.
    pub created_ms: i64,
    /// Host that took it.
    pub host: String,
    /// steward version that wrote it.
    pub steward_version: String,
    /// `[agent] name`.
    pub agent: String,
    /// Why it was taken: `manual`, `scheduled`, `pre-restore`.
    pub tag: String,
    /// Object name of the archive, relative to the destination.
    pub archive: String,
    /// Archive size as stored (compressed, encrypted).
    pub archive_bytes: u64,
    /// SHA-256 of the stored archive bytes, hex.
    pub archive_sha256: String,
    /// Whether the archive is age-encrypted.
    pub encrypted: bool,
    /// Files in the archive (the manifest excluded).
    pub files: u64,
    /// Uncompressed bytes of those files.
    pub content_bytes: u64,
}

/// A fresh backup id for a backup started at `now_ms`.
pub fn new_id(now_ms: i64) -> String {
    let stamp = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z")).ok())
        .unwrap_or_else(|| now_ms.to_string());
    format!("{stamp}-{:04x}", rand::random::<u16>())
}

/// Whether `id` has the shape [`new_id`] produces: ids become object names
/// and directory names, so nothing else is accepted from a user.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// This machine's host name, for the manifest (`unknown` when unreadable).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_are_safe_names() {
        let a = new_id(1_790_000_000_000);
        let b = new_id(1_790_000_060_000);
        assert!(a < b, "{a} {b}");
        assert!(a.starts_with("20260921T141320Z-"), "{a}");
        assert!(is_valid_id(&a));
        for bad in ["", "../x", "a/b", "a.b", "x y"] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }
}
