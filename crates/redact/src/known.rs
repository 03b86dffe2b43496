//! Known secrets: the exact credential values steward loaded, and every
//! encoded form under which they commonly leak (base64 in its four
//! variants and at every byte alignment, percent-encoding, hex, JSON
//! escaping). Partial and mixed escaping (`%43ANARY...`) is not enumerated
//! here: the decoded views of `decode` see it as the value itself.
//!
//! The forms are computed once at build time and matched with one
//! Aho-Corasick automaton. The values themselves never appear in a finding's
//! kind: every match is reported as [`KNOWN_KIND`].

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Kind reported for every known-secret finding. Deliberately carries no
/// name: a credential's name can itself hint at what leaked.
pub(crate) const KNOWN_KIND: &str = "credential";

/// Shortest value that is registered. Shorter values would redact common
/// substrings of ordinary text and protect almost nothing.
pub(crate) const MIN_SECRET_LEN: usize = 4;

/// Shortest base64 fragment registered for a secret embedded at an offset in
/// a larger base64 blob (e.g. `Basic base64(user:pass)`). Shorter fragments
/// would match random base64 far too often.
const MIN_SHIFTED_B64_LEN: usize = 8;

/// Characters `encodeURIComponent` leaves alone besides alphanumerics; the
/// complement is what it escapes.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Every form of `value` worth matching, deduplicated, the raw value first.
/// Values shorter than [`MIN_SECRET_LEN`] yield nothing.
pub(crate) fn forms(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if value.len() < MIN_SECRET_LEN {
        return out;
    }
    let bytes = value.as_bytes();
    out.push(value.to_owned());
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(engine.encode(bytes));
    }
    // A secret inside a larger base64 payload is encoded at one of three
    // alignments; the characters fully determined by the secret's bits are
    // the same whatever surrounds it.
    for shift in 0..3usize {
        let mut padded = vec![0u8; shift];
        padded.extend_from_slice(bytes);
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let enc = engine.encode(&padded);
            let first = (8 * shift).div_ceil(6);
            let last = (8 * (shift + bytes.len())) / 6;
            if let Some(core) = enc.get(first..last)
                && core.len() >= MIN_SHIFTED_B64_LEN
            {
                out.push(core.to_owned());
            }
        }
    }
    for set in [NON_ALPHANUMERIC, COMPONENT] {
        let enc = utf8_percent_encode(value, set).to_string();
        out.push(lowercase_percent_hex(&enc));
        out.push(enc);
    }
    let form = utf8_percent_encode(value, COMPONENT).to_string().replace("%20", "+");
    out.push(form);
    // Hex dumps and `xxd -p`: both cases.
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    out.push(hex.to_ascii_uppercase());
    out.push(hex);
    // A form encoder writes a space as `+`; the decoded views leave `+`
    // alone (see `decode`), so a space-holding secret written partly
    // escaped in a form body is seen with `+` for each space.
    if value.contains(' ') {
        out.push(value.replace(' ', "+"));
    }
    if let Ok(quoted) = serde_json::to_string(value)
        && let Some(inner) = quoted.get(1..quoted.len().saturating_sub(1))
    {
        out.push(inner.replace('/', "\\/"));
        out.push(ascii_json_escape(inner));
        out.push(inner.to_owned());
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| f.len() >= MIN_SECRET_LEN && seen.insert(f.clone()));
    out
}

/// JSON escaping with every non-ASCII character written as `\uXXXX`, as
/// encoders with an "ensure ASCII" option produce.
fn ascii_json_escape(escaped: &str) -> String {
    let mut s = String::with_capacity(escaped.len());
    for c in escaped.chars() {
        if c.is_ascii() {
            s.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                s.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    s
}

/// `encoded` with lower-case hex digits in its percent escapes, as some
/// encoders emit them.
fn lowercase_percent_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex_left = 0usize;
    for c in encoded.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_ignored() {
        assert!(forms("").is_empty());
        assert!(forms("abc").is_empty());
        assert_eq!(forms("abcd")[0], "abcd");
    }

    #[test]
    fn includes_every_encoding() {
        let v = "p@ss/wörd+1 x\"y";
        let f = forms(v);
        assert!(f.contains(&v.to_owned()));
        assert!(f.contains(&STANDARD.encode(v)));
        assert!(f.contains(&URL_SAFE_NO_PAD.encode(v)));
        assert!(f.contains(&utf8_percent_encode(v, NON_ALPHANUMERIC).to_string()));
        assert!(f.contains(&"p@ss/wörd+1 x\\\"y".to_owned()));
        assert!(f.contains(&"p@ss\\/wörd+1 x\\\"y".to_owned()));
        assert!(f.contains(&"p@ss/w\\u00f6rd+1 x\\\"y".to_owned()));
        assert!(f.iter().any(|x| x.contains("%c3%b6")));
        assert!(f.contains(&"704073732f77c3b672642b3120782279".to_owned()));
        assert!(f.contains(&"704073732F77C3B672642B3120782279".to_owned()));
    }

    #[test]
    fn shifted_base64_is_found_inside_basic_auth() {
        let secret = "s3cr3t-passw0rd";
        let blob = STANDARD.encode(format!("user:{secret}"));
        let f = forms(secret);
        assert!(f.iter().any(|form| blob.contains(form.as_str())), "{blob} {f:?}");
    }
}
