//! Where backups live: one [`object_store::ObjectStore`] for a local
//! directory or an S3-compatible bucket, plus the naming scheme.
//!
//! Objects: `<id>.tar.zst` or `<id>.tar.zst.age` (the archive) and
//! `<id>.json` (its [`BackupRecord`]). Uploads are atomic: the archive is a
//! multipart upload (S3 shows it only once completed; the local store writes
//! a staging file and renames it), and the record, a single small PUT, is
//! written only after that. Listing reads records only, so a half-written
//! backup is never listed.
//!
//! Every error message passes through a [`Scrubber`] that knows the S3
//! credential (whole, both halves, and their percent-encoded forms): no part
//! of it can reach a log line, an alert or the terminal. It replaces known
//! values only; the general redactor (every secret and PII rule) is not
//! needed here, would cost tens of MB to build, and would also mangle
//! endpoints and paths the user needs to see.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::BackupError;
use super::manifest::BackupRecord;
use crate::config::{BackupConfig, BackupDestination};
use crate::secrets::Secrets;

/// Multipart part size: S3's minimum (5 MiB). With [`UPLOAD_CONCURRENCY`]
/// parts in flight the upload holds about 15 MiB.
const PART_SIZE: usize = 5 * 1024 * 1024;

/// Parts uploaded at once.
const UPLOAD_CONCURRENCY: usize = 2;

/// Suffix of record objects.
pub(super) const RECORD_SUFFIX: &str = ".json";

/// An opened destination.
pub(super) struct Destination {
    store: Arc<dyn ObjectStore>,
    /// Key prefix (S3 prefix; empty for a local directory, which is the root).
    prefix: String,
    /// The local directory, for the same-device check and file modes.
    local_dir: Option<PathBuf>,
    /// Knows the S3 credential, to scrub error messages.
    scrubber: Scrubber,
    /// `file:///...` or `s3://bucket/prefix` (never with credentials).
    describe: String,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination").field("describe", &self.describe).finish_non_exhaustive()
    }
}

impl Destination {
    /// Opens the configured destination; a local directory is created (0700)
    /// when missing.
    pub fn open(config: &BackupConfig, secrets: &Secrets) -> Result<Self, BackupError> {
        match &config.destination {
            BackupDestination::Local(dir) => {
                let io = |e: std::io::Error| BackupError::Destination(format!("cannot create {}: {e}", dir.display()));
                if !dir.exists() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
                }
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| BackupError::Destination(format!("cannot open {}: {e}", dir.display())))?;
                Ok(Self {
                    store: Arc::new(store),
                    prefix: String::new(),
                    local_dir: Some(dir.clone()),
                    scrubber: Scrubber::default(),
                    describe: describe_destination(&config.destination),
                })
            }
            BackupDestination::S3(s3) => {
                let name = config.credentials.as_deref().unwrap_or_default();
                let secret = secrets.get(name).ok_or_else(|| {
                    BackupError::Config(format!(
                        "the S3 credential `{name}` is not resolved; check [credentials.{name}]"
                    ))
                })?;
                let value = secret.expose_secret();
                let Some((key_id, secret_key)) = value.split_once(':').filter(|(a, b)| !a.is_empty() && !b.is_empty())
                else {
                    return Err(BackupError::Config(format!(
                        "credential `{name}` must hold ACCESS_KEY_ID:SECRET_ACCESS_KEY (one colon between them)"
                    )));
                };
                let scrubber = Scrubber::new(&[value, secret_key, key_id]);
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_access_key_id(key_id)
                    .with_secret_access_key(secret_key)
                    .with_allow_http(s3.allow_http);
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                let store = builder
                    .build()
                    .map_err(|e| BackupError::Destination(scrubber.scrub(&format!("cannot configure S3: {e}"))))?;
                let describe = describe_destination(&config.destination);
                Ok(Self { store: Arc::new(store), prefix: s3.prefix.clone(), local_dir: None, scrubber, describe })
            }
        }
    }

    /// `file:///...` or `s3://bucket/prefix`.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// For a local destination: whether it is on the same filesystem (same
    /// `st_dev`) as `dir`, which makes it no protection against losing that
    /// disk. `None` for S3 or when either cannot be examined.
    pub fn same_device_as(&self, dir: &Path) -> Option<bool> {
        let local = self.local_dir.as_deref()?;
        let a = std::fs::metadata(existing_ancestor(local)?).ok()?.dev();
        let b = std::fs::metadata(existing_ancestor(dir)?).ok()?.dev();
        Some(a == b)
    }

    fn key(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    fn err(&self, doing: &str, e: &object_store::Error) -> BackupError {
        let text = match e {
            object_store::Error::NotFound { .. } => format!("{doing}: not found in {}", self.describe),
            other => format!("{doing} ({}): {other}", self.describe),
        };
        BackupError::Destination(self.scrubber.scrub(&text))
    }

    /// Scrubs the credential from any text about this destination.
    pub fn scrub(&self, text: &str) -> String {
        self.scrubber.scrub(text)
    }

    /// Streams the chunks arriving on `rx` into a multipart upload of
    /// `name`, until the sender is dropped. Nothing is visible yet: the
    /// caller completes the upload with [`Destination::complete`] once the
    /// producer reported success, or drops it with [`Destination::abort`].
    pub async fn upload(
        &self,
        name: &str,
        mut rx: mpsc::Receiver<Bytes>,
        cancel: &CancellationToken,
    ) -> Result<PendingUpload, BackupError> {
        let key = self.key(name);
        let upload = self.store.put_multipart(&key).await.map_err(|e| self.err("starting the upload", &e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        loop {
            let chunk = tokio::select! {
                () = cancel.cancelled() => {
                    let _ = writer.abort().await;
                    return Err(BackupError::Cancelled);
                }
                chunk = rx.recv() => chunk,
            };
            let Some(chunk) = chunk else { break };
            if let Err(e) = writer.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                let _ = writer.abort().await;
                return Err(self.err("uploading", &e));
            }
            writer.put(chunk);
        }
        Ok(PendingUpload { writer, name: name.to_owned() })
    }

    /// Completes an upload: from now on the object exists, whole.
    pub async fn complete(&self, pending: PendingUpload) -> Result<(), BackupError> {
        pending.writer.finish().await.map_err(|e| self.err("completing the upload", &e))?;
        self.restrict_mode(&pending.name);
        Ok(())
    }

    /// Drops an upload: nothing of it stays visible.
    pub async fn abort(&self, pending: PendingUpload) {
        if let Err(e) = pending.writer.abort().await {
            tracing::warn!(error = %self.err("aborting the upload", &e), "an aborted backup upload left parts behind");
        }
    }

    /// Writes a small object in one PUT (atomic on every store).
    pub async fn put_small(&self, name: &str, bytes: Vec<u8>) -> Result<(), BackupError> {
        self.store
            .put(&self.key(name), PutPayload::from(bytes))
            .await
            .map_err(|e| self.err(&format!("writing {name}"), &e))?;
        self.restrict_mode(name);
        Ok(())
    }

    /// Local archives hold the journal: owner-only, like the state dir.
    fn restrict_mode(&self, name: &str) {
        if let Some(dir) = &self.local_dir {
            let _ = std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600));
        }
    }

    /// Streams object `name` into `tx` chunk by chunk and returns its size and
    /// SHA-256. A failure is also sent down `tx`, so the reader stops with it.
    pub async fn download(
        &self,
        name: &str,
        tx: mpsc::Sender<Result<Bytes, String>>,
    ) -> Result<(u64, String), BackupError> {
        let fail = |err: BackupError, tx: mpsc::Sender<Result<Bytes, String>>| async move {
            let _ = tx.send(Err(err.to_string())).await;
            err
        };
        let result = match self.store.get(&self.key(name)).await {
            Ok(result) => result,
            Err(e) => return Err(fail(self.err(&format!("reading {name}"), &e), tx).await),
        };
        let mut stream = result.into_stream();
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => return Err(fail(self.err(&format!("reading {name}"), &e), tx).await),
            };
            hasher.update(&chunk);
            bytes += u64::try_from(chunk.len()).unwrap_or(0);
            if tx.send(Ok(chunk)).await.is_err() {
                // The reader stopped (it found a problem and reports it).
                break;
            }
        }
        Ok((bytes, hex::encode(hasher.finalize())))
    }

    /// A small object, whole.
    pub async fn get_small(&self, name: &str) -> Result<Bytes, BackupError> {
        let result = self.store.get(&self.key(name)).await.map_err(|e| self.err(&format!("reading {name}"), &e))?;
        result.bytes().await.map_err(|e| self.err(&format!("reading {name}"), &e))
    }

    /// Every object name under the destination with its last-modified time
    /// (epoch ms).
    pub async fn list_names(&self) -> Result<Vec<(String, i64)>, BackupError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let mut stream = self.store.list(prefix.as_ref());
        let mut names = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| self.err("listing backups", &e))?;
            let Some(name) = meta.location.filename() else { continue };
            names.push((name.to_owned(), meta.last_modified.timestamp_millis()));
        }
        names.sort();
        Ok(names)
    }

    /// Every backup record, oldest first. Unreadable records are skipped
    /// with a warning in the returned list.
    pub async fn records(&self) -> Result<(Vec<BackupRecord>, Vec<String>), BackupError> {
        let mut records = Vec::new();
        let mut warnings = Vec::new();
        for (name, _) in self.list_names().await? {
            let Some(id) = name.strip_suffix(RECORD_SUFFIX) else { continue };
            if !super::manifest::is_valid_id(id) {
                continue;
            }
            let bytes = self.get_small(&name).await?;
            match serde_json::from_slice::<BackupRecord>(&bytes) {
                Ok(record) if record.id == id => records.push(record),
                Ok(_) => warnings.push(format!("{name}: record names another backup; ignored")),
                Err(e) => warnings.push(format!("{name}: not a backup record ({e}); ignored")),
            }
        }
        records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok((records, warnings))
    }

    /// Deletes an object; one already gone is not an error.
    pub async fn delete(&self, name: &str) -> Result<(), BackupError> {
        match self.store.delete(&self.key(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(&format!("deleting {name}"), &e)),
        }
    }
}

/// `file:///dir` or `s3://bucket/prefix`, from the config alone: safe to
/// print anywhere (the runbook, error messages), since the S3 credential
/// lives in `[credentials.*]` and validation refuses `user:pass@` in an
/// endpoint; the endpoint and region are left out.
pub fn describe_destination(destination: &BackupDestination) -> String {
    match destination {
        BackupDestination::Local(dir) => format!("file://{}", dir.display()),
        BackupDestination::S3(s3) if s3.prefix.is_empty() => format!("s3://{}", s3.bucket),
        BackupDestination::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
    }
}

/// Replaces known secret values (and their percent-encoded forms) in text.
#[derive(Default)]
struct Scrubber {
    /// Longest first, so a whole value goes before its halves.
    needles: Vec<String>,
}

impl Scrubber {
    /// What `redact` calls a value too short to protect anything.
    const MIN_LEN: usize = 4;

    fn new(values: &[&str]) -> Self {
        let mut needles: Vec<String> = values
            .iter()
            .filter(|v| v.len() >= Self::MIN_LEN)
            .flat_map(|v| {
                let encoded = percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string();
                [(*v).to_owned(), encoded]
            })
            .collect();
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Self { needles }
    }

    fn scrub(&self, text: &str) -> String {
        self.needles
            .iter()
            .fold(text.to_owned(), |acc, needle| acc.replace(needle.as_str(), "[REDACTED:s3-credential]"))
    }
}

/// A multipart upload whose data is all sent but which is not yet visible.
pub(super) struct PendingUpload {
    writer: WriteMultipart,
    name: String,
}

/// `path` or its nearest existing ancestor.
fn existing_ancestor(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::Scrubber;

    #[test]
    fn the_credential_and_its_halves_are_scrubbed_in_any_encoding() {
        let s = Scrubber::new(&["AKIAEXAMPLE:se/cr+et", "se/cr+et", "AKIAEXAMPLE"]);
        let text = "key AKIAEXAMPLE, secret se/cr+et, pair AKIAEXAMPLE:se/cr+et, url se%2Fcr%2Bet";
        let out = s.scrub(text);
        assert!(!out.contains("AKIAEXAMPLE") && !out.contains("se/cr+et") && !out.contains("se%2Fcr%2Bet"), "{out}");
        assert_eq!(Scrubber::default().scrub("http://127.0.0.1:9000/x"), "http://127.0.0.1:9000/x");
    }
}
