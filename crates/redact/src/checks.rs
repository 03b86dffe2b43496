//! Post-match validation: placeholders and references that are not
//! secrets (`env:`, `file:`, `{secret}`, markers), the plausibility of an
//! assignment's key and value, and the cheap parsing of `key = value`
//! prefixes that lets the scanner skip regex work.

use std::ops::Range;

use crate::rules::Check;
use crate::scan::MARKER_OPEN;

/// Values that are references to a secret, not a secret: steward's
/// `env:`/`file:` references, templates, shell variables, placeholders and
/// earlier redaction markers.
pub(crate) fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'' || c == '`');
    let lower = v.to_ascii_lowercase();
    let first = v.chars().next();
    lower.starts_with("env:")
        || lower.starts_with("file:")
        || lower.starts_with("vault:")
        || lower.starts_with("keyring:")
        || v.starts_with("${")
        || v.starts_with("{{")
        || v.starts_with("$(")
        || v.starts_with(MARKER_OPEN)
        || (v.starts_with('$') && v.len() > 1 && v[1..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        || (v.starts_with('<') && v.ends_with('>'))
        || (v.starts_with('{') && v.ends_with('}'))
        || matches!(
            lower.as_str(),
            "true" | "false" | "null" | "none" | "nil" | "undefined" | "redacted" | "changeme" | "example"
        )
        || first.is_some_and(|c| v.chars().all(|x| x == c))
}

/// Character classes present in `v`: lower, upper, digit, other.
fn classes(v: &str) -> usize {
    let mut seen = [false; 4];
    for b in v.bytes() {
        let idx = if b.is_ascii_lowercase() {
            0
        } else if b.is_ascii_uppercase() {
            1
        } else if b.is_ascii_digit() {
            2
        } else {
            3
        };
        if let Some(slot) = seen.get_mut(idx) {
            *slot = true;
        }
    }
    seen.iter().filter(|s| **s).count()
}

/// Key suffixes that name metadata about a secret rather than the secret.
const METADATA_SUFFIXES: &[&str] = &[
    "name",
    "id",
    "ids",
    "path",
    "file",
    "ref",
    "env",
    "arn",
    "type",
    "length",
    "len",
    "size",
    "count",
    "url",
    "uri",
    "endpoint",
    "version",
    "expiry",
    "expires",
    "expires_at",
    "expires_in",
    "ttl",
    "hash",
    "sha256",
    "header",
    "field",
    "param",
    "prefix",
    "source",
    "store",
    "limit",
    "usage",
    "budget",
];

/// Decides whether an assignment's value is a plausible secret. A value in
/// quotes, or after `=`, is taken as deliberate; a bare value after `:` (as
/// in prose, "password: see the wiki") must look random.
pub(crate) fn assignment_value_ok(text: &str, m: Range<usize>, secret: &Range<usize>, digits_ok: bool) -> bool {
    let (Some(value), Some(head)) = (text.get(secret.clone()), text.get(m.start..secret.start)) else {
        return false;
    };
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return digits_ok && value.len() >= 4;
    }
    let quoted = head.ends_with(['"', '\'', '`']);
    let op_eq = head.trim_end_matches(['"', '\'', '`', ' ', '\t']).ends_with(['=', '>']);
    if quoted || op_eq {
        return true;
    }
    value.len() >= 8 && classes(value) >= 2
}

/// Whether `start` lies in the userinfo of a URL: the text back to the
/// nearest `/`, `?`, `#` or whitespace is preceded by `//`.
pub(crate) fn is_url_userinfo(text: &str, start: usize) -> bool {
    let Some(head) = text.get(..start) else {
        return false;
    };
    let run_start = head.rfind(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace());
    run_start.is_some_and(|i| head.get(..=i).is_some_and(|h| h.ends_with("//")))
}

/// Whether the identifier starting at `start` (the key of an assignment)
/// can name a secret: not `..._name`, `..._id`, `..._tokens` and the like.
pub(crate) fn assignment_key_ok(text: &str, start: usize) -> bool {
    let Some(rest) = text.get(start..) else {
        return false;
    };
    if is_url_userinfo(text, start) {
        // `https://user:pass@host`: the URL rules own it.
        return false;
    }
    let end =
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')).unwrap_or(rest.len());
    let key = rest.get(..end).unwrap_or_default().to_ascii_lowercase();
    let metadata = METADATA_SUFFIXES
        .iter()
        .any(|s| key.strip_suffix(s).is_some_and(|head| head.ends_with(['_', '-', '.']) || head.is_empty()));
    !metadata && !key.ends_with("tokens")
}

/// Where the value of the assignment whose key starts at `start` begins:
/// after the key (identifier characters), an optional closing quote,
/// blanks, the operator (`=`, `:=`, `:`, `=>`), blanks and an optional
/// opening quote — the prefix [`crate::rules::assignment_pattern`] matches.
pub(crate) fn assignment_value_start(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = start;
    while bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        i += 1;
    }
    if matches!(bytes.get(i), Some(b'"' | b'\'' | b'`')) {
        i += 1;
    }
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    match (bytes.get(i), bytes.get(i + 1)) {
        (Some(b':'), Some(b'=')) | (Some(b'='), Some(b'>')) => i += 2,
        (Some(b'=' | b':'), _) => i += 1,
        _ => {}
    }
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    if matches!(bytes.get(i), Some(b'"' | b'\'' | b'`')) {
        i += 1;
    }
    i
}

/// Cheap necessary condition for an assignment: within the 25 identifier
/// characters, optional quote and blanks allowed after the keyword's
/// start, an `=` or `:` appears.
pub(crate) fn operator_follows(text: &str, kw: usize) -> bool {
    let bytes = text.as_bytes();
    let mut i = kw;
    let limit = (kw + 96).min(bytes.len());
    while i < limit {
        match bytes.get(i) {
            Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') => i += 1,
            _ => break,
        }
    }
    if matches!(bytes.get(i), Some(b'"' | b'\'' | b'`')) {
        i += 1;
    }
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    matches!(bytes.get(i), Some(b'=' | b':'))
}

/// Applies a rule's [`Check`].
pub(crate) fn check_ok(check: Check, text: &str, m: Range<usize>, secret: &Range<usize>) -> bool {
    match check {
        Check::None => true,
        Check::Assignment { digits_ok } => assignment_value_ok(text, m, secret, digits_ok),
        Check::Mixed => text.get(secret.clone()).is_some_and(|v| v.len() >= 8 && classes(v) >= 2),
        Check::Email => !is_url_userinfo(text, secret.start),
    }
}
