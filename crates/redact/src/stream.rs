//! Redaction of text that arrives in chunks (agent stdout, SSE bodies):
//! a tail of each chunk is held back until the next one arrives, so a
//! secret split across a chunk boundary is still seen whole.

use crate::{Redactor, apply};

/// Bytes held back by default: longer than every bounded token format and
/// every known-secret form steward expects.
pub const DEFAULT_TAIL: usize = 4096;

/// Most bytes held while a match keeps running to the end of the buffer
/// (e.g. a PEM block still arriving). Past this the partial match is
/// redacted and emitted, so memory stays bounded.
pub const MAX_HOLD: usize = 1 << 20;

/// Streaming front end of a [`Redactor`]. Feed chunks with
/// [`StreamRedactor::push`], emit what it returns, and call
/// [`StreamRedactor::finish`] at the end of the stream.
#[derive(Debug)]
pub struct StreamRedactor<'r> {
    /// The redactor doing the work.
    redactor: &'r Redactor,
    /// Text received but not yet emitted.
    pending: String,
    /// Bytes held back after each push.
    tail: usize,
}

impl<'r> StreamRedactor<'r> {
    /// A stream holding back [`DEFAULT_TAIL`] bytes.
    pub fn new(redactor: &'r Redactor) -> Self {
        Self::with_tail(redactor, DEFAULT_TAIL)
    }

    /// A stream holding back `tail` bytes: at least the longest secret or
    /// token that must be caught across a chunk boundary.
    pub fn with_tail(redactor: &'r Redactor, tail: usize) -> Self {
        Self { redactor, pending: String::new(), tail }
    }

    /// Adds a chunk; returns the redacted text that is now safe to emit
    /// (possibly empty).
    pub fn push(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        if self.pending.len() <= self.tail {
            return String::new();
        }
        let mut cut = self.pending.len() - self.tail;
        while !self.pending.is_char_boundary(cut) {
            cut -= 1;
        }
        let findings = self.redactor.find(&self.pending);
        // A finding that crosses the cut may grow with the next chunk:
        // hold it back whole, unless that would hold too much.
        if let Some(f) = findings.iter().find(|f| f.range.start < cut && f.range.end > cut) {
            if self.pending.len() - f.range.start <= MAX_HOLD {
                cut = f.range.start;
            } else {
                cut = f.range.end;
            }
        }
        let emitted: Vec<_> = findings.into_iter().filter(|f| f.range.end <= cut).collect();
        let head = self.pending.get(..cut).unwrap_or_default();
        let out = apply(head, &emitted);
        self.pending.drain(..cut);
        out
    }

    /// Ends the stream, returning the rest of the text, redacted.
    pub fn finish(self) -> String {
        self.redactor.redact(&self.pending).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedactorBuilder;

    #[test]
    fn secret_split_across_chunks_is_caught() {
        let secret = "tok-0123456789-abcdef";
        let r = RedactorBuilder::new().secret("x", secret).build();
        let text = format!("{}{secret} and more text {}", "lorem ipsum ".repeat(10), "dolor ".repeat(10));
        for split in 1..text.len() {
            if !text.is_char_boundary(split) {
                continue;
            }
            let mut s = StreamRedactor::with_tail(&r, 64);
            let mut out = s.push(&text[..split]);
            out.push_str(&s.push(&text[split..]));
            out.push_str(&s.finish());
            assert!(!out.contains(secret), "split at {split}: {out}");
            assert_eq!(out, r.redact(&text), "split at {split}");
        }
    }

    #[test]
    fn long_pending_match_is_bounded() {
        let r = RedactorBuilder::new().build();
        let mut s = StreamRedactor::with_tail(&r, 16);
        let mut out = s.push("-----BEGIN PRIVATE KEY-----\n");
        for _ in 0..10 {
            out.push_str(&s.push(&"QUJD".repeat(64)));
        }
        out.push_str(&s.push("\n-----END PRIVATE KEY-----\nafter"));
        out.push_str(&s.finish());
        assert_eq!(out, "[REDACTED:private-key]\nafter");
    }
}
