//! The agent's stdout and stderr: read line by line, redacted, and appended
//! to `<logging.dir>/agent.log` (rotated and aged out with the audit log, see
//! [`LineLog`]).
//!
//! Each line is written as `<RFC 3339 time> <stdout|stderr> <text>`. The text
//! passes through the shared redactor first, and control characters (ANSI
//! colour codes included) are escaped (`\x1b`), so neither `cat agent.log`
//! nor `steward logs agent` lets the agent drive the reader's terminal.
//!
//! Lines are bounded: beyond [`MAX_LINE`] bytes the rest of the line is
//! dropped (and counted). The cut never splits a secret: the scanned window
//! extends [`SCAN_TAIL`] bytes past the cut, and a finding that straddles the
//! cut moves the cut to its start.
//!
//! The pipes are always drained, even while the log cannot be written (disk
//! full): an agent blocked on a full pipe would look hung. Lines that could
//! not be written are counted and reported in steward's own log.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::audit::LineLog;
use crate::clock::format_ts;
use crate::redaction::SharedRedactor;

/// Longest line kept, in bytes (before redaction). Beyond it a line is cut.
pub const MAX_LINE: usize = 16 * 1024;

/// Bytes past [`MAX_LINE`] read into the redaction window, so a secret that
/// straddles the cut is still recognised whole. Longer than any token.
pub const SCAN_TAIL: usize = 4 * 1024;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The agent's stdout.
    Stdout,
    /// The agent's stderr.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Copies one pipe into the log until it closes (every process holding it
/// exited). Returns the number of lines that could not be written.
pub async fn capture<R: AsyncRead + Unpin>(
    pipe: R,
    stream: Stream,
    log: Arc<LineLog>,
    redactor: SharedRedactor,
) -> u64 {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    let mut lost = 0_u64;
    loop {
        buf.clear();
        let dropped = match read_bounded_line(&mut reader, &mut buf, MAX_LINE + SCAN_TAIL).await {
            Ok(Some(dropped)) => dropped,
            Ok(None) => break,
            Err(err) => {
                tracing::warn!(stream = stream.as_str(), error = %err, "reading the agent's output failed");
                break;
            }
        };
        let text = render(&redactor.load(), &buf, dropped);
        let line = format!("{} {} {text}", format_ts(SystemTime::now()), stream.as_str());
        if let Err(err) = log.write_line(line).await {
            if lost == 0 {
                tracing::error!(error = %err, "cannot write the agent's output to agent.log; dropping lines until it works again");
            }
            lost += 1;
        } else if lost > 0 {
            tracing::warn!(lost, "agent.log is writable again");
            lost = 0;
        }
    }
    lost
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `keep`
/// bytes. Returns how many further bytes of the line were dropped, or `None`
/// at end of input with nothing read.
async fn read_bounded_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    keep: usize,
) -> std::io::Result<Option<usize>> {
    let mut dropped = 0_usize;
    let mut any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(any.then_some(dropped));
        }
        any = true;
        let (chunk, found_newline) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        let room = keep.saturating_sub(buf.len());
        let taken = chunk.len().min(room);
        buf.extend_from_slice(&chunk[..taken]);
        dropped += chunk.len() - taken;
        let consumed = chunk.len() + usize::from(found_newline);
        reader.consume(consumed);
        if found_newline {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(dropped));
        }
    }
}

/// The redacted, escaped text of one raw line (at most `MAX_LINE + SCAN_TAIL`
/// bytes read, `dropped` more discarded).
pub fn render(redactor: &redact::Redactor, raw: &[u8], dropped: usize) -> String {
    let text = String::from_utf8_lossy(raw);
    if text.len() <= MAX_LINE && dropped == 0 {
        return escape_controls(&redactor.redact(&text)).into_owned();
    }
    let mut cut = floor_char_boundary(&text, MAX_LINE.min(text.len()));
    for finding in redactor.find(&text) {
        if finding.range.start < cut && cut < finding.range.end {
            cut = finding.range.start;
        }
    }
    let cut_bytes = text.len() - cut + dropped;
    let mut out = escape_controls(&redactor.redact(&text[..cut])).into_owned();
    let _ = write!(out, " [... {cut_bytes} more bytes of this line not logged]");
    out
}

/// `text` with control characters other than tab written as `\xNN`: the
/// log is read by people in terminals, and the agent must not drive them.
fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The largest char boundary of `text` at or below `index`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    (0..=index.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secret: &str) -> redact::Redactor {
        redact::RedactorBuilder::new().secret("canary", secret).build()
    }

    #[tokio::test]
    async fn lines_are_split_bounded_and_stripped_of_line_ends() {
        let long = "y".repeat(MAX_LINE + SCAN_TAIL + 100);
        let input = format!("one\r\ntwo\n{long}\nlast-without-newline");
        let mut reader = BufReader::with_capacity(64, input.as_bytes());
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while let Some(dropped) = read_bounded_line(&mut reader, &mut buf, MAX_LINE + SCAN_TAIL).await.unwrap() {
            lines.push((String::from_utf8(std::mem::take(&mut buf)).unwrap(), dropped));
        }
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], ("one".to_owned(), 0));
        assert_eq!(lines[1], ("two".to_owned(), 0));
        assert_eq!(lines[2].0.len(), MAX_LINE + SCAN_TAIL);
        assert_eq!(lines[2].1, 100);
        assert_eq!(lines[3], ("last-without-newline".to_owned(), 0));
    }

    #[test]
    fn secrets_are_redacted_and_control_characters_escaped() {
        let r = redactor("tok-123456");
        assert_eq!(render(&r, b"key=tok-123456 ok", 0), "key=[REDACTED:credential] ok");
        assert_eq!(render(&r, b"\x1b[31mred\x1b[0m\tend", 0), "\\x1b[31mred\\x1b[0m\tend");
        assert_eq!(render(&r, &[0xff, b'a'], 0), "\u{fffd}a");
    }

    #[test]
    fn the_cut_of_a_long_line_never_splits_a_secret() {
        let secret = "canary-secret-value-abcdef";
        let r = redactor(secret);
        // The secret starts 5 bytes before the cut.
        let raw = format!("{}{secret}{}", "a".repeat(MAX_LINE - 5), "b".repeat(SCAN_TAIL));
        let out = render(&r, raw.as_bytes(), 50);
        assert!(!out.contains("canary-"), "a piece of the secret was logged");
        assert!(out.starts_with(&"a".repeat(MAX_LINE - 5)));
        let cut = raw.len() - (MAX_LINE - 5) + 50;
        assert!(
            out.ends_with(&format!(" [... {cut} more bytes of this line not logged]")),
            "{}",
            &out[out.len() - 60..]
        );
        // A secret wholly before the cut is redacted, the rest is cut at MAX_LINE.
        let raw = format!("{secret}{}", "c".repeat(MAX_LINE + 10));
        let out = render(&r, raw.as_bytes(), 0);
        assert!(out.starts_with("[REDACTED:credential]c"));
        assert!(out.ends_with(&format!(" [... {} more bytes of this line not logged]", raw.len() - MAX_LINE)));
    }
}
