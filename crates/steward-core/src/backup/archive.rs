//! The archive format: tar, compressed with zstd (frame checksum on),
//! optionally age-encrypted to x25519 recipients, written and read as a
//! stream.
//!
//! Memory stays constant whatever the size of the state: files are copied in
//! 64 KiB reads through the tar builder, the zstd encoder keeps one window,
//! age encrypts 64 KiB chunks, and the output goes to a bounded pipe (see
//! `pipe`). Every file is hashed (SHA-256) as it is written; the
//! [`Manifest`] with those hashes is the last entry, because only then are
//! they known.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::manifest::{MANIFEST_NAME, Manifest, ManifestEntry};
use super::{BackupError, Progress};

/// zstd level 3 (zstd's default): about the speed of a disk, a good ratio on
/// SQLite pages and JSON, and a window of a few MB.
const ZSTD_LEVEL: i32 = 3;

/// Largest zstd window a restore accepts (2^23 = 8 MiB): the decoder
/// allocates the window a frame asks for, so a hostile archive could
/// otherwise take 128 MiB per frame (zstd's default limit). Level 3 writes
/// 2 MiB windows; every level up to 19 fits.
const MAX_WINDOW_LOG: u32 = 23;

/// One file to put into the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Source {
    /// Path inside the archive (`/`-separated, relative).
    pub archive_path: String,
    /// Where to read it now.
    pub file: PathBuf,
}

/// What writing an archive produced.
#[derive(Debug)]
pub(super) struct Written {
    /// The manifest written as the last entry.
    pub manifest: Manifest,
    /// Files that changed size while being read (their entry holds what was read).
    pub warnings: Vec<String>,
}

/// Writes `sources` and then `manifest` (whose `files` are filled in here)
/// to `sink` as tar + zstd (+ age when `recipients` is not empty).
pub(super) fn write_archive<W: Write>(
    sink: W,
    sources: &[Source],
    recipients: &[age::x25519::Recipient],
    mut manifest: Manifest,
    progress: &dyn Progress,
) -> Result<(W, Written), BackupError> {
    let archive_err = |e: io::Error| BackupError::Archive(format!("writing the archive: {e}"));
    let layer = if recipients.is_empty() {
        Encrypting::Plain(sink)
    } else {
        let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| BackupError::Archive(format!("cannot encrypt to the configured recipients: {e}")))?;
        Encrypting::Age(encryptor.wrap_output(sink).map_err(archive_err)?)
    };
    let mut encoder = zstd::stream::write::Encoder::new(layer, ZSTD_LEVEL).map_err(archive_err)?;
    encoder.include_checksum(true).map_err(archive_err)?;
    let mut tar = tar::Builder::new(encoder);
    let mut warnings = Vec::new();
    manifest.files.clear();
    for source in sources {
        let shown = source.file.display().to_string();
        let file = File::open(&source.file).map_err(|e| BackupError::Source { path: shown.clone(), source: e })?;
        let meta = file.metadata().map_err(|e| BackupError::Source { path: shown.clone(), source: e })?;
        let size = meta.len();
        let mode = meta.permissions().mode() & 0o777;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(mode);
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        let mut reader = ExactReader { inner: file, remaining: size, short: false, hasher: Sha256::new() };
        tar.append_data(&mut header, &source.archive_path, &mut reader)
            .map_err(|e| BackupError::Archive(format!("adding {shown}: {e}")))?;
        if reader.short {
            warnings.push(format!("{shown} shrank while being backed up; its entry is padded with zeros"));
        }
        manifest.files.push(ManifestEntry {
            path: source.archive_path.clone(),
            size,
            mode,
            sha256: hex::encode(reader.hasher.finalize()),
        });
        progress.advance(size);
    }
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BackupError::Archive(format!("cannot encode the manifest: {e}")))?;
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(u64::try_from(json.len()).unwrap_or(u64::MAX));
    header.set_mode(0o600);
    header.set_mtime(u64::try_from(manifest.created_ms / 1000).unwrap_or(0));
    tar.append_data(&mut header, MANIFEST_NAME, json.as_slice()).map_err(archive_err)?;
    let encoder = tar.into_inner().map_err(archive_err)?;
    let layer = encoder.finish().map_err(archive_err)?;
    let mut sink = layer.finish().map_err(archive_err)?;
    sink.flush().map_err(archive_err)?;
    Ok((sink, Written { manifest, warnings }))
}

/// Opens a stored archive for reading: decrypts (when `encrypted`) with
/// `identity`, then decompresses. The result is the plain tar stream.
pub(super) fn open_archive<'a, R: Read + 'a>(
    raw: R,
    encrypted: bool,
    identity: Option<&'a age::x25519::Identity>,
) -> Result<Box<dyn Read + 'a>, BackupError> {
    let decrypted: Box<dyn Read + 'a> = if encrypted {
        let Some(identity) = identity else {
            return Err(BackupError::NoIdentity);
        };
        let decryptor = age::Decryptor::new(raw).map_err(|e| BackupError::Decrypt(e.to_string()))?;
        let reader = decryptor.decrypt(std::iter::once(identity as &dyn age::Identity)).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => BackupError::Decrypt(
                "the identity does not match any recipient of this backup (wrong key file?)".to_owned(),
            ),
            other => BackupError::Decrypt(other.to_string()),
        })?;
        Box::new(reader)
    } else {
        Box::new(raw)
    };
    let mut decoder = zstd::stream::read::Decoder::new(decrypted)
        .map_err(|e| BackupError::Damaged { near: None, detail: format!("not a zstd stream: {e}") })?;
    decoder
        .window_log_max(MAX_WINDOW_LOG)
        .map_err(|e| BackupError::Damaged { near: None, detail: format!("cannot limit the zstd window: {e}") })?;
    Ok(Box::new(decoder))
}

/// The age layer or nothing, finished in the right order.
enum Encrypting<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Encrypting<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Encrypting::Plain(w) => Ok(w),
            Encrypting::Age(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for Encrypting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encrypting::Plain(w) => w.write(buf),
            Encrypting::Age(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encrypting::Plain(w) => w.flush(),
            Encrypting::Age(w) => w.flush(),
        }
    }
}

/// Yields exactly `remaining` bytes of a file whose size was read up front:
/// a file that grows is cut there, one that shrinks is padded with zeros,
/// so the tar header's size always holds. Hashes what it yields.
struct ExactReader {
    inner: File,
    remaining: u64,
    short: bool,
    hasher: Sha256,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
        let n = if self.short { 0 } else { self.inner.read(&mut buf[..want])? };
        let n = if n == 0 {
            self.short = true;
            buf[..want].fill(0);
            want
        } else {
            n
        };
        self.hasher.update(&buf[..n]);
        self.remaining -= u64::try_from(n).unwrap_or(self.remaining);
        Ok(n)
    }
}

/// Counts and hashes the bytes passing to `inner`: the stored archive's
/// size and SHA-256 go into its record.
pub(super) struct HashingWriter<W> {
    /// Where the bytes go.
    pub inner: W,
    /// Bytes written so far.
    pub bytes: u64,
    /// SHA-256 of those bytes.
    pub hasher: Sha256,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner, bytes: 0, hasher: Sha256::new() }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += u64::try_from(n).unwrap_or(0);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
