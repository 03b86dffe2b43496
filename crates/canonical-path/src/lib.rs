//! canonical-path: the one reading of an agent's request target.
//!
//! steward reads the path of a request four times: the tool matcher names the
//! tool (and so its rate limit), the LLM door classifies the endpoint (and so
//! whether the call is priced), the journal and the audit log record it, and
//! the forwarder sends it upstream. When two of those readers disagree, an
//! agent is counted as one tool and executes another. `POST
//! /echo/..\api\v1\statuses` was matched as `echo` (split on `/` only), while
//! the upstream's URL parser turned `\` into `/`, resolved `..` and ran `POST
//! /api/v1/statuses` with the real credential and no limit.
//!
//! So a front door parses the target once, here, into a [`RequestTarget`]:
//! the upstream name, a [`CanonicalPath`] of decoded segments and a
//! [`CanonicalQuery`]. Every later use reads that value, and nothing re-derives
//! a path from the raw request. What could mean two things is refused with a
//! [`TargetError`] that says which segment and how to send it instead:
//!
//! - `\`, raw or encoded (`%5C`): a separator to WHATWG URL parsers and IIS;
//! - an encoded `/` (`%2F`) or `.` (`%2E`): a separator or a dot segment to a
//!   server that decodes before it splits or resolves;
//! - an encoded `%` (`%25`): a second round of decoding turns `%252F` into `/`;
//!   a `%` not followed by two hex digits is refused for the same reason;
//! - `.` and `..` segments, and empty segments (`//`); one trailing `/` is
//!   kept, because some APIs tell `/items/` from `/items`;
//! - `;`: path parameters (`..;/` is `..` to Tomcat and Spring);
//! - control characters once decoded (NUL, CR, LF, DEL, C1);
//! - bytes that are not UTF-8 once decoded (overlong forms such as `%C0%AE` included);
//! - a segment whose NFKC form breaks a rule above (`／`, `＼`, `．．`, `‥`):
//!   a server that normalizes Unicode would read a separator or a dot segment.
//!
//! Encoded `?`, `#` and any other character are decoded: `%73tatuses` is the
//! segment `statuses`, matched and forwarded as such.
//!
//! The forwarded URL is built from the decoded segments with
//! [`url::PathSegmentsMut`], each segment percent-encoded on its own, never by
//! concatenating strings a URL parser may reinterpret. [`CanonicalPath::as_str`]
//! is, byte for byte, what the upstream receives after its base path, and
//! [`CanonicalQuery::as_str`] what it receives after the `?`: the property
//! tests check both against `url` (what reqwest sends) and `http` (how hyper,
//! on the upstream's side, reads it).

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use url::Url;

#[doc(hidden)]
pub mod invariants;
#[cfg(test)]
mod tests;

/// What `url` percent-encodes in one segment of an http(s) path
/// (`SPECIAL_PATH_SEGMENT` in its parser). Rendering [`CanonicalPath::as_str`]
/// with the same set makes it equal to the path `url` builds for the upstream.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'#')
    .add(b'?')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%')
    .add(b'\\');

/// What `url` percent-encodes in the query of an http(s) URL
/// (`SPECIAL_QUERY` in its parser). A [`CanonicalQuery`] is encoded with it up
/// front, so the query steward audits is the query it sends.
const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>').add(b'\'');

/// Longest part of an offending segment quoted in an error: enough to find it
/// in the agent's code, short enough for one log line.
const QUOTE_MAX_CHARS: usize = 80;

/// How many rounds of percent-decoding [`CanonicalQuery::remove_pairs`] looks
/// through: a value encoded three times over is still recognised.
const QUERY_DECODE_ROUNDS: usize = 3;

/// What is wrong with a request target. Each has its own fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The target names no upstream (`/api/` alone).
    MissingUpstream,
    /// `\` or `%5C`.
    Backslash,
    /// `%2F`.
    EncodedSlash,
    /// `%2E`.
    EncodedDot,
    /// `%25`.
    EncodedPercent,
    /// `%` not followed by two hex digits.
    MalformedEscape,
    /// `.` or `..`.
    DotSegment,
    /// `//`.
    EmptySegment,
    /// `;`, raw or decoded.
    Semicolon,
    /// A control character once decoded.
    ControlCharacter,
    /// Not UTF-8 once decoded.
    NotUtf8,
    /// The NFKC form of the segment breaks one of the rules above.
    CompatibilityForm,
}

impl Problem {
    /// What is wrong (completes "path segment `x` ...") and how to send it instead.
    fn explain(self) -> (&'static str, &'static str) {
        match self {
            Problem::MissingUpstream => {
                ("names no upstream", "call /api/{upstream}/... or /llm/{provider}/... with a configured name")
            }
            Problem::Backslash => (
                "holds a backslash, which many servers read as `/`",
                "separate segments with `/` and send no `\\` (not even as %5C)",
            ),
            Problem::EncodedSlash => (
                "holds an encoded `/` (%2F), which a server that decodes first reads as a separator",
                "send `/` between segments, never %2F inside one",
            ),
            Problem::EncodedDot => (
                "holds an encoded `.` (%2E), which a server that decodes first can resolve as `.` or `..`",
                "send dots unencoded",
            ),
            Problem::EncodedPercent => (
                "holds an encoded `%` (%25), which a server that decodes twice reads as another escape",
                "send the path encoded once",
            ),
            Problem::MalformedEscape => {
                ("holds a `%` not followed by two hex digits", "percent-encode the path as UTF-8 (%XX for each byte)")
            }
            Problem::DotSegment => {
                ("is `.` or `..`, which climbs the path on the upstream", "send the normalized path, without . or ..")
            }
            Problem::EmptySegment => ("is empty (`//`)", "send one `/` between segments"),
            Problem::Semicolon => (
                "holds `;`, which some servers treat as a path parameter (`..;` is `..` to them)",
                "send no `;` in the path; put parameters in the query",
            ),
            Problem::ControlCharacter => {
                ("holds a control character once decoded (NUL, CR, LF...)", "remove control characters from the path")
            }
            Problem::NotUtf8 => {
                ("is not valid UTF-8 once percent-decoded", "percent-encode the path as UTF-8 (no overlong forms)")
            }
            Problem::CompatibilityForm => (
                "holds a compatibility character (fullwidth `／`, `．`, `＼`...) that Unicode normalization \
                 turns into a separator or a dot segment",
                "send the plain ASCII characters you mean",
            ),
        }
    }
}

/// A request target steward refuses to forward, because two readers could
/// take it for two different paths.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct TargetError {
    problem: Problem,
    /// The offending segment as received (still encoded), escaped and cut to
    /// [`QUOTE_MAX_CHARS`].
    segment: String,
}

impl TargetError {
    fn new(problem: Problem, raw_segment: &str) -> Self {
        let mut segment: String = raw_segment.chars().take(QUOTE_MAX_CHARS).flat_map(char::escape_debug).collect();
        if raw_segment.chars().nth(QUOTE_MAX_CHARS).is_some() {
            segment.push('…');
        }
        Self { problem, segment }
    }

    /// What is wrong.
    pub fn problem(&self) -> Problem {
        self.problem
    }

    fn message(&self) -> String {
        let (what, fix) = self.problem.explain();
        if self.problem == Problem::MissingUpstream {
            return format!("the path {what}; {fix}");
        }
        format!("path segment `{}` {what}; {fix}", self.segment)
    }
}

/// Why a forwarded URL could not be built: the base cannot take a path
/// (not an http(s) URL), which the config loader already refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("base URL {0:?} cannot take a path")]
pub struct NotABase(String);

/// The target of one agent request, read once: `/api/{upstream}{path}?{query}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTarget {
    /// The upstream or provider name (first segment, decoded).
    pub upstream: String,
    /// The path below the upstream.
    pub path: CanonicalPath,
    /// The query, if any (an empty `?` is none).
    pub query: Option<CanonicalQuery>,
}

impl RequestTarget {
    /// Reads `rest`, the target's path after the door's prefix (`/api/`,
    /// `/llm/`), still percent-encoded, and `query`, the raw query without `?`.
    pub fn parse(rest: &str, query: Option<&str>) -> Result<RequestTarget, TargetError> {
        let (name, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if name.is_empty() {
            return Err(TargetError::new(Problem::MissingUpstream, name));
        }
        let upstream = decode_segment(name)?.into_owned();
        Ok(RequestTarget { upstream, path: CanonicalPath::parse(path)?, query: query.and_then(CanonicalQuery::new) })
    }

    /// The URL the upstream at `base` receives: its base path, then the
    /// canonical segments, then the query. See [`CanonicalPath::join_onto`].
    pub fn url_on(&self, base: &Url) -> Result<Url, NotABase> {
        let mut url = self.path.join_onto(base)?;
        url.set_query(self.query.as_ref().map(CanonicalQuery::as_str));
        Ok(url)
    }
}

/// A path below an upstream, as decoded segments that mean the same to every
/// reader. Built only by [`CanonicalPath::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalPath {
    /// Decoded, non-empty segments; none is `.` or `..` or holds `/`, `\`,
    /// `%`, `;` or a control character.
    segments: Vec<String>,
    /// Whether the path ends with `/` (always true for the root).
    trailing_slash: bool,
    /// `/` + each segment encoded as `url` encodes it + the trailing `/`:
    /// what the upstream receives after its base path.
    rendered: String,
}

impl CanonicalPath {
    /// Reads a path (`/a/b`, still percent-encoded; `""` is the root `/`).
    pub fn parse(path: &str) -> Result<CanonicalPath, TargetError> {
        let rest = match path.strip_prefix('/') {
            Some(rest) => rest,
            None if path.is_empty() => "",
            // A front door always hands a path starting with `/`; anything
            // else is read as one segment and checked like one.
            None => path,
        };
        let mut raw: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
        let trailing_slash = match raw.last() {
            None => true,
            Some(&"") => {
                raw.pop();
                true
            }
            Some(_) => false,
        };
        let mut segments = Vec::with_capacity(raw.len());
        for segment in raw {
            if segment.is_empty() {
                return Err(TargetError::new(Problem::EmptySegment, segment));
            }
            segments.push(decode_segment(segment)?.into_owned());
        }
        Ok(Self::from_checked(segments, trailing_slash))
    }

    /// The root path `/`.
    pub fn root() -> CanonicalPath {
        Self::from_checked(Vec::new(), true)
    }

    fn from_checked(segments: Vec<String>, trailing_slash: bool) -> CanonicalPath {
        // The root has no segment and is always `/`.
        let trailing_slash = trailing_slash || segments.is_empty();
        let mut rendered = String::new();
        for segment in &segments {
            rendered.push('/');
            rendered.extend(utf8_percent_encode(segment, PATH_SEGMENT));
        }
        if trailing_slash {
            rendered.push('/');
        }
        CanonicalPath { segments, trailing_slash, rendered }
    }

    /// The decoded segments: what the tool matcher and the LLM door read.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether the path ends with `/`.
    pub fn has_trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// The path as the upstream receives it after its base path (`/a/b%20c`):
    /// what the journal and the audit log record.
    pub fn as_str(&self) -> &str {
        &self.rendered
    }

    /// `base` with this path appended to its path, segment by segment (each
    /// percent-encoded on its own, so no segment can become two or climb).
    /// The result's path is `base`'s path without its trailing `/`, then
    /// [`CanonicalPath::as_str`].
    pub fn join_onto(&self, base: &Url) -> Result<Url, NotABase> {
        let mut url = base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| NotABase(base.to_string()))?;
            path.pop_if_empty();
            path.extend(&self.segments);
            if self.trailing_slash {
                path.push("");
            }
        }
        Ok(url)
    }
}

impl std::fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rendered)
    }
}

/// A query string as steward forwards and records it: the raw query with
/// the characters `url` would encode already encoded, so the audited string
/// is the sent one. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalQuery(String);

impl CanonicalQuery {
    /// `None` for an empty query (a bare `?` is not forwarded).
    pub fn new(raw: &str) -> Option<CanonicalQuery> {
        (!raw.is_empty()).then(|| CanonicalQuery(utf8_percent_encode(raw, QUERY).to_string()))
    }

    /// The query without `?`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Drops every `&`-separated pair for which `matches` is true of the pair
    /// as sent or of any of its first [`QUERY_DECODE_ROUNDS`] percent-decodings
    /// (`+` read as a space). Returns the rest (`None` when nothing is left)
    /// and how many pairs were dropped.
    pub fn remove_pairs(&self, matches: impl Fn(&str) -> bool) -> (Option<CanonicalQuery>, usize) {
        let mut kept: Vec<&str> = Vec::new();
        let mut dropped = 0;
        for pair in self.0.split('&') {
            if decodings(pair).iter().any(|form| matches(form)) {
                dropped += 1;
            } else {
                kept.push(pair);
            }
        }
        if dropped == 0 {
            return (Some(self.clone()), 0);
        }
        let rest = kept.join("&");
        ((!rest.is_empty()).then_some(CanonicalQuery(rest)), dropped)
    }
}

impl std::fmt::Display for CanonicalQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `text` and its successive percent-decodings (form style: `+` is a space),
/// until one changes nothing.
fn decodings(text: &str) -> Vec<String> {
    let mut forms = vec![text.to_owned()];
    for _ in 0..QUERY_DECODE_ROUNDS {
        let Some(last) = forms.last() else { break };
        let plus_as_space = last.replace('+', " ");
        let decoded = percent_decode_str(&plus_as_space).decode_utf8_lossy().into_owned();
        if &decoded == last {
            break;
        }
        forms.push(decoded);
    }
    forms
}

/// Checks one raw segment and returns it decoded.
fn decode_segment(raw: &str) -> Result<Cow<'_, str>, TargetError> {
    let fail = |problem| Err(TargetError::new(problem, raw));
    if raw.contains('\\') {
        return fail(Problem::Backslash);
    }
    if raw.contains(';') {
        return fail(Problem::Semicolon);
    }
    let bytes = raw.as_bytes();
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + offset;
        let (Some(&hi), Some(&lo)) = (bytes.get(at + 1), bytes.get(at + 2)) else {
            return fail(Problem::MalformedEscape);
        };
        if !hi.is_ascii_hexdigit() || !lo.is_ascii_hexdigit() {
            return fail(Problem::MalformedEscape);
        }
        match (hi.to_ascii_uppercase(), lo.to_ascii_uppercase()) {
            (b'2', b'F') => return fail(Problem::EncodedSlash),
            (b'5', b'C') => return fail(Problem::Backslash),
            (b'2', b'E') => return fail(Problem::EncodedDot),
            (b'2', b'5') => return fail(Problem::EncodedPercent),
            (b'3', b'B') => return fail(Problem::Semicolon),
            _ => {}
        }
        i = at + 3;
    }
    let Ok(decoded) = percent_decode_str(raw).decode_utf8() else {
        return fail(Problem::NotUtf8);
    };
    if let Some(problem) = structural_problem(&decoded) {
        return fail(problem);
    }
    if !decoded.is_ascii() {
        let normalized = icu_normalizer::ComposingNormalizerBorrowed::new_nfkc().normalize(&decoded);
        if normalized != decoded && structural_problem(&normalized).is_some() {
            return fail(Problem::CompatibilityForm);
        }
    }
    Ok(decoded)
}

/// What makes a decoded segment mean something else to some reader.
fn structural_problem(decoded: &str) -> Option<Problem> {
    if decoded == "." || decoded == ".." {
        return Some(Problem::DotSegment);
    }
    if decoded.is_empty() {
        return Some(Problem::EmptySegment);
    }
    decoded.chars().find_map(|c| match c {
        '/' => Some(Problem::EncodedSlash),
        '\\' => Some(Problem::Backslash),
        '%' => Some(Problem::EncodedPercent),
        ';' => Some(Problem::Semicolon),
        c if c.is_control() => Some(Problem::ControlCharacter),
        _ => None,
    })
}
