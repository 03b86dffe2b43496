//! [`CredentialScrubber`]: removes the loaded credential values, in every
//! encoded form the known-secret matcher knows (raw, base64 at every
//! alignment, percent-encoded, JSON-escaped), from bytes relayed to the
//! agent, as `[REDACTED:<credential name>]`; and [`ScrubStream`], the same
//! over a body that arrives in chunks.
//!
//! This is not [`crate::Redactor`]: a response belongs to the agent, which
//! may read its own data (emails, phone numbers, tokens of its own that the
//! secret rules would match), so only the values steward holds for it are
//! removed. The marker names the credential because the agent needs to know
//! which of its upstream's answers was changed; the value never leaves.
//!
//! Bodies are bytes, not text: a response may be binary or cut mid-UTF-8.
//! The stream holds back only what may still become a match: the suffix of
//! the data received that is a prefix of some form (usually nothing, at most
//! the longest form minus one byte). Its output, concatenated, equals
//! [`CredentialScrubber::scrub`] of the whole body, however the body was
//! chunked (one byte per chunk included).

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::known;

/// Marker kind emitted when the scrubber could not be built: every byte is
/// withheld (fail closed), since relaying unscrubbed could leak a credential.
pub const SCRUBBER_FAILED_KIND: &str = "scrubber-error";

/// The compiled forms of the loaded credentials.
#[derive(Debug)]
struct Matcher {
    /// Every form of every credential, leftmost-longest, so an encoded form
    /// that contains the raw value (`…%2F…`) wins over a shorter one.
    ac: AhoCorasick,
    /// Per pattern id: which marker replaces it.
    marker_of: Vec<usize>,
    /// The distinct markers, `[REDACTED:<name>]`.
    markers: Vec<Vec<u8>>,
    /// Every form, sorted: the forms that start with some bytes are a
    /// contiguous run, found by binary search (see [`Matcher::is_form_prefix`]).
    sorted_forms: Vec<Vec<u8>>,
    /// Whether some form starts with this byte: most positions of a body
    /// are ruled out as the start of a partial match with one lookup.
    starts: [bool; 256],
    /// Longest form: a partial match is shorter than this.
    max_len: usize,
}

impl Matcher {
    /// Whether `bytes` is a prefix of (or equal to) some form.
    fn is_form_prefix(&self, bytes: &[u8]) -> bool {
        let at = self.sorted_forms.partition_point(|form| form.as_slice() < bytes);
        self.sorted_forms.get(at).is_some_and(|form| form.starts_with(bytes))
    }

    /// The first position in `from..to` where `buf[p..]` could still grow
    /// into a form with more data; `None` when there is none.
    fn hold_point(&self, buf: &[u8], from: usize, to: usize) -> Option<usize> {
        let tail_start = buf.len().saturating_sub(self.max_len.saturating_sub(1));
        (from.max(tail_start)..to)
            .find(|&p| buf.get(p).is_some_and(|&b| self.starts[usize::from(b)]) && self.is_form_prefix(&buf[p..]))
    }
}

/// Removes the loaded credential values from relayed bytes. Cheap to share
/// behind an [`Arc`]; built once per set of credentials.
#[derive(Debug)]
pub struct CredentialScrubber {
    /// `None` when no credential is loaded (or every value is too short to
    /// protect anything, see [`known`]): bytes pass unchanged.
    matcher: Option<Matcher>,
    /// The automaton could not be built: every byte is withheld.
    failed: bool,
}

impl Default for CredentialScrubber {
    /// Knows no credential: scrubs nothing.
    fn default() -> Self {
        Self { matcher: None, failed: false }
    }
}

impl CredentialScrubber {
    /// A scrubber for `(name, value)` pairs. Never panics: if the automaton
    /// cannot be built (an absurd number of secrets), the scrubber fails
    /// closed and withholds everything as `[REDACTED:scrubber-error]`.
    /// When two credentials share a form, the first one names it.
    pub fn new<'a>(credentials: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut markers: Vec<Vec<u8>> = Vec::new();
        let mut forms: Vec<(Vec<u8>, usize)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in credentials {
            let marker = format!("[REDACTED:{name}]").into_bytes();
            let index = match markers.iter().position(|m| *m == marker) {
                Some(index) => index,
                None => {
                    markers.push(marker);
                    markers.len() - 1
                }
            };
            for form in known::forms(value) {
                if seen.insert(form.clone()) {
                    forms.push((form.into_bytes(), index));
                }
            }
        }
        if forms.is_empty() {
            return Self::default();
        }
        let Ok(ac) = AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(forms.iter().map(|(f, _)| f))
        else {
            return Self { matcher: None, failed: true };
        };
        let mut starts = [false; 256];
        for (form, _) in &forms {
            if let Some(&first) = form.first() {
                starts[usize::from(first)] = true;
            }
        }
        let max_len = forms.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
        let marker_of = forms.iter().map(|(_, m)| *m).collect();
        let mut sorted_forms: Vec<Vec<u8>> = forms.into_iter().map(|(f, _)| f).collect();
        sorted_forms.sort();
        Self { matcher: Some(Matcher { ac, marker_of, markers, sorted_forms, starts, max_len }), failed: false }
    }

    /// Whether nothing is ever changed (no credential to look for).
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none() && !self.failed
    }

    /// Whether `bytes` holds any form of a credential.
    pub fn contains(&self, bytes: &[u8]) -> bool {
        match &self.matcher {
            Some(m) => m.ac.is_match(bytes),
            None => self.failed && !bytes.is_empty(),
        }
    }

    /// `bytes` with every form of every credential replaced by its marker;
    /// borrowed, without allocating, when nothing matched.
    pub fn scrub<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(m) = &self.matcher else {
            if self.failed && !bytes.is_empty() {
                return Cow::Owned(failed_marker());
            }
            return Cow::Borrowed(bytes);
        };
        let mut out: Option<Vec<u8>> = None;
        let mut last = 0;
        for found in m.ac.find_iter(bytes) {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
            buf.extend_from_slice(&bytes[last..found.start()]);
            buf.extend_from_slice(&m.markers[m.marker_of[found.pattern().as_usize()]]);
            last = found.end();
        }
        match out {
            Some(mut buf) => {
                buf.extend_from_slice(&bytes[last..]);
                Cow::Owned(buf)
            }
            None => Cow::Borrowed(bytes),
        }
    }
}

/// The marker a failed scrubber emits instead of the data.
fn failed_marker() -> Vec<u8> {
    format!("[REDACTED:{SCRUBBER_FAILED_KIND}]").into_bytes()
}

/// Streaming front end of a [`CredentialScrubber`]: feed each chunk to
/// [`ScrubStream::push`], relay what it returns, and relay
/// [`ScrubStream::finish`] at the end of the body. See the module docs.
#[derive(Debug)]
pub struct ScrubStream {
    /// The scrubber doing the work.
    scrubber: Arc<CredentialScrubber>,
    /// Bytes received and not yet emitted: a possible start of a form.
    pending: Vec<u8>,
    /// A failed scrubber emitted its one marker already.
    withheld: bool,
}

impl ScrubStream {
    /// A stream at the start of a body.
    pub fn new(scrubber: Arc<CredentialScrubber>) -> Self {
        Self { scrubber, pending: Vec::new(), withheld: false }
    }

    /// Bytes held back, waiting to see whether they start a credential.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Adds a chunk; returns the scrubbed bytes now safe to emit (possibly
    /// empty). A borrowed result is always a prefix of `chunk`, so a caller
    /// holding `chunk` in a shared buffer can relay a slice of it.
    pub fn push<'c>(&mut self, chunk: &'c [u8]) -> Cow<'c, [u8]> {
        let scrubber = Arc::clone(&self.scrubber);
        let Some(m) = &scrubber.matcher else {
            return self.unmatched(chunk);
        };
        if self.pending.is_empty() {
            let (out, hold) = emit(m, chunk);
            self.pending.extend_from_slice(&chunk[hold..]);
            return out;
        }
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(chunk);
        let (out, hold) = emit(m, &buf);
        let out = out.into_owned();
        buf.drain(..hold);
        self.pending = buf;
        Cow::Owned(out)
    }

    /// Ends the body: the held bytes, scrubbed.
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        if self.scrubber.matcher.is_none() {
            return if self.scrubber.failed { Vec::new() } else { rest };
        }
        self.scrubber.scrub(&rest).into_owned()
    }

    /// A scrubber without a matcher: everything passes, or (failed) one
    /// marker stands in for the whole body.
    fn unmatched<'c>(&mut self, chunk: &'c [u8]) -> Cow<'c, [u8]> {
        if !self.scrubber.failed {
            return Cow::Borrowed(chunk);
        }
        if chunk.is_empty() || std::mem::replace(&mut self.withheld, true) {
            return Cow::Borrowed(&[]);
        }
        Cow::Owned(failed_marker())
    }
}

/// Scrubs what of `buf` is final and returns it with the position where the
/// held part starts. Matches are leftmost-longest over `buf`; a match is
/// final when no position before its start could still grow into a form
/// (see [`Matcher::hold_point`]), which makes the streamed output equal the
/// scrub of the whole body.
fn emit<'b>(m: &Matcher, buf: &'b [u8]) -> (Cow<'b, [u8]>, usize) {
    let mut out: Option<Vec<u8>> = None;
    let mut cursor = 0;
    for found in m.ac.find_iter(buf) {
        // Up to and including the match's start: a match that reaches the
        // end of `buf` may still grow into a longer form.
        if let Some(hold) = m.hold_point(buf, cursor, found.start() + 1) {
            return (finish_out(out, buf, cursor, hold), hold);
        }
        let o = out.get_or_insert_with(|| Vec::with_capacity(buf.len()));
        o.extend_from_slice(&buf[cursor..found.start()]);
        o.extend_from_slice(&m.markers[m.marker_of[found.pattern().as_usize()]]);
        cursor = found.end();
    }
    let hold = m.hold_point(buf, cursor, buf.len()).unwrap_or(buf.len());
    (finish_out(out, buf, cursor, hold), hold)
}

/// The emitted bytes: `out` (scrubbed up to `cursor`) plus `buf[cursor..hold]`,
/// or a borrowed prefix of `buf` when nothing was replaced.
fn finish_out(out: Option<Vec<u8>>, buf: &[u8], cursor: usize, hold: usize) -> Cow<'_, [u8]> {
    match out {
        Some(mut o) => {
            o.extend_from_slice(&buf[cursor..hold]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(&buf[..hold]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const SECRET: &str = "tok-0123456789/abcdef";

    fn scrubber() -> Arc<CredentialScrubber> {
        Arc::new(CredentialScrubber::new([("social", SECRET), ("llm", "sk-live-XYZ987654321")]))
    }

    fn streamed(s: &Arc<CredentialScrubber>, body: &[u8], chunk: usize) -> Vec<u8> {
        let mut stream = ScrubStream::new(Arc::clone(s));
        let mut out = Vec::new();
        for piece in body.chunks(chunk.max(1)) {
            out.extend_from_slice(&stream.push(piece));
        }
        out.extend_from_slice(&stream.finish());
        out
    }

    #[test]
    fn every_form_is_replaced_by_the_credential_name() {
        let s = scrubber();
        let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
        let body = format!(
            r#"{{"raw":"{SECRET}","b64":"{b64}","url":"tok-0123456789%2Fabcdef","json":"tok-0123456789\/abcdef","k":"sk-live-XYZ987654321"}}"#
        );
        let out = String::from_utf8(s.scrub(body.as_bytes()).into_owned()).unwrap();
        assert_eq!(out.matches("[REDACTED:social]").count(), 4, "{out}");
        assert_eq!(out.matches("[REDACTED:llm]").count(), 1, "{out}");
        assert!(!out.contains("0123456789"), "{out}");
    }

    #[test]
    fn clean_bytes_come_back_borrowed() {
        let s = scrubber();
        assert!(matches!(s.scrub(b"nothing to see"), Cow::Borrowed(_)));
        assert!(CredentialScrubber::default().is_empty());
        assert!(matches!(CredentialScrubber::new([("short", "abc")]).scrub(b"abc"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_split_at_every_byte_and_chunk_size_is_caught() {
        let s = scrubber();
        let body = format!("data: {{\"echo\":\"{SECRET}\"}}\n\nmore {SECRET}\n\n").into_bytes();
        let whole = s.scrub(&body).into_owned();
        for chunk in 1..body.len() {
            assert_eq!(streamed(&s, &body, chunk), whole, "chunk size {chunk}");
        }
    }

    #[test]
    fn the_stream_holds_only_a_possible_start_of_a_form() {
        let s = scrubber();
        let mut stream = ScrubStream::new(Arc::clone(&s));
        let out = stream.push(b"hello world\n\n");
        assert!(matches!(out, Cow::Borrowed(b) if b == b"hello world\n\n"));
        assert_eq!(stream.held(), 0);
        let out = stream.push(b"partial tok-0123").into_owned();
        assert_eq!(out, b"partial ");
        assert_eq!(stream.held(), 8);
        let out = stream.push(b"456789/abcdef!").into_owned();
        assert_eq!(out, b"[REDACTED:social]!");
        // A prefix that never completes is released at the end, as it was.
        let _ = stream.push(b" tok-01");
        assert_eq!(stream.finish(), b"tok-01");
    }

    #[test]
    fn invalid_utf8_passes_through() {
        let s = scrubber();
        let mut body = vec![0xff, 0xfe, b'x'];
        body.extend_from_slice(SECRET.as_bytes());
        body.push(0xc3);
        let out = s.scrub(&body).into_owned();
        assert_eq!(out, [&[0xff, 0xfe, b'x'][..], b"[REDACTED:social]", &[0xc3]].concat());
        assert_eq!(streamed(&s, &body, 1), out);
    }
}
