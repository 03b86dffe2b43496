//! The bounded pipe between the blocking archive code (tar, zstd, age, file
//! I/O on a blocking thread) and the async object store client.
//!
//! At most [`PIPE_CHUNKS`] chunks of [`CHUNK`] bytes wait in the pipe, so a
//! slow upload slows the archiver down instead of buffering the archive.

use std::io::{self, Read, Write};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Bytes per chunk sent through the pipe.
pub(super) const CHUNK: usize = 1024 * 1024;

/// Chunks that may wait in the pipe (4 MiB in all).
pub(super) const PIPE_CHUNKS: usize = 4;

/// The writing end, used on a blocking thread: collects [`CHUNK`] bytes and
/// sends them. A closed receiver (upload failed or cancelled) turns into a
/// `BrokenPipe` error, which stops the archiver.
pub(super) struct PipeWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl PipeWriter {
    /// Wraps the sending half of a channel made with [`PIPE_CHUNKS`].
    pub fn new(tx: mpsc::Sender<Bytes>) -> Self {
        Self { tx, buf: Vec::with_capacity(CHUNK) }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(chunk).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The reading end, used on a blocking thread: chunks come from a download
/// task; an `Err` chunk is the download's error.
pub(super) struct PipeReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl PipeReader {
    /// Wraps the receiving half of a channel made with [`PIPE_CHUNKS`].
    pub fn new(rx: mpsc::Receiver<Result<Bytes, String>>) -> Self {
        Self { rx, current: Bytes::new() }
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
