//! Decoded views: the text with its escapes undone, so a secret written
//! partly or wholly escaped (`%43ANARY...`, `\u0043ANARY...`, `%2543...`)
//! is seen as the secret it stands for. Each view keeps, for every one of
//! its bytes, the span of the original text it came from, so a match in
//! the view redacts the escaped bytes of the original.
//!
//! # What is decoded
//! - **Percent-encoding** (`%XX`, either case of hex): how paths, query
//!   strings and form bodies carry any byte.
//! - **JSON string escapes**, triggered by `\uXXXX` (surrogate pairs
//!   included): a JSON encoder must escape `"`, `\` and control characters,
//!   and may escape anything as `\uXXXX`. Once a `\u` escape is present the
//!   view undoes every JSON escape (`\\`, `\"`, `\/`, `\n`...), so a secret
//!   holding a backslash or a quote is seen whole. A text with only the
//!   mandatory escapes needs no view: the fully escaped form of every known
//!   secret is registered (`known`).
//! - **`+` stays `+`.** It is a literal in paths and in every base64 token;
//!   decoding it as a space would hide those. A space written `+` (HTML
//!   forms) is covered from the other side: each known secret holding a
//!   space is also registered with `+` for it.
//!
//! # Which views
//! Three, each built only when its escapes occur: percent only, JSON only,
//! and both at once (mixed encodings such as `%43\u0041NARY`). Keeping the
//! single-scheme views matters for a secret that itself contains `%41` or
//! `\u0041` as text: decoding the other scheme too would change it. Each
//! view is decoded again while escapes remain, up to [`MAX_ROUNDS`] times
//! (double encoding: `%2543` is `%43` is `C`).
//!
//! Escapes that decode to invalid UTF-8 (`%FF`) stay as written. A text
//! without escapes costs one `memchr` pass and no allocation.

use std::ops::Range;

/// Decoding rounds per view. Two catch the double encoding that proxies and
/// careless clients produce; the third is margin. Each round is one more
/// scan of the text, so the bound also caps the cost of a hostile input.
pub(crate) const MAX_ROUNDS: usize = 3;

/// Which escapes a view undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `%XX` only.
    Percent,
    /// JSON string escapes only.
    Json,
    /// Both, in one left-to-right pass.
    Both,
}

impl Scheme {
    fn percent(self) -> bool {
        matches!(self, Scheme::Percent | Scheme::Both)
    }
    fn json(self) -> bool {
        matches!(self, Scheme::Json | Scheme::Both)
    }
}

/// A decoded copy of a text and the way back to it.
#[derive(Debug)]
pub(crate) struct View {
    /// The decoded text.
    pub(crate) text: String,
    /// Per byte of `text`: the span of the original text it came from
    /// (three bytes for a `%XX`, six or twelve for a `\u` escape, one for a
    /// byte copied as is).
    spans: Vec<Range<usize>>,
}

impl View {
    /// The span of the original text that `range` of the view came from.
    pub(crate) fn original(&self, range: &Range<usize>) -> Option<Range<usize>> {
        let first = self.spans.get(range.start)?;
        let last = self.spans.get(range.end.checked_sub(1)?)?;
        Some(first.start..last.end)
    }
}

/// Which escape schemes occur in `text`.
fn escapes(text: &str) -> (bool, bool) {
    let bytes = text.as_bytes();
    let (mut percent, mut json) = (false, false);
    for at in memchr::memchr2_iter(b'%', b'\\', bytes) {
        if bytes.get(at) == Some(&b'%') {
            percent = percent || percent_at(bytes, at).is_some();
        } else {
            json = json || unicode_at(bytes, at).is_some();
        }
        if percent && json {
            break;
        }
    }
    (percent, json)
}

/// Every decoded view of `text` worth scanning (each round of each
/// scheme, without duplicates), in no particular order; empty when `text`
/// has no escapes.
pub(crate) fn views(text: &str) -> Vec<View> {
    let (percent, json) = escapes(text);
    let mut schemes = Vec::with_capacity(3);
    if percent {
        schemes.push(Scheme::Percent);
    }
    if json {
        // `\u0025` decodes to `%`: the mixed view sees what follows it.
        schemes.extend([Scheme::Json, Scheme::Both]);
    }
    let mut out: Vec<View> = Vec::new();
    for scheme in schemes {
        // Every round is kept: a secret that contains escape text itself
        // (`pa%41ss`) is whole after one round and changed by the next.
        let mut previous: Option<usize> = None;
        for _ in 0..MAX_ROUNDS {
            let source = previous.and_then(|i| out.get(i)).map_or(text, |v| v.text.as_str());
            let Some(next) = decode(source, scheme) else { break };
            let view = match previous.and_then(|i| out.get(i)) {
                Some(prior) => compose(prior, next),
                None => next,
            };
            previous = match out.iter().position(|v| v.text == view.text) {
                Some(same) => Some(same),
                None => {
                    out.push(view);
                    Some(out.len() - 1)
                }
            };
        }
    }
    out
}

/// `next` (a view of `previous.text`) as a view of the original text.
fn compose(previous: &View, next: View) -> View {
    let spans = next.spans.iter().map(|r| previous.original(r).unwrap_or_else(|| r.clone())).collect();
    View { text: next.text, spans }
}

/// One round of decoding; `None` when nothing was decoded.
fn decode(text: &str, scheme: Scheme) -> Option<View> {
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut spans: Vec<Range<usize>> = Vec::with_capacity(bytes.len());
    let mut decoded = false;
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        if b == b'%'
            && scheme.percent()
            && let Some(value) = percent_at(bytes, at)
        {
            out.push(value);
            spans.push(at..at + 3);
            decoded = true;
            at += 3;
            continue;
        }
        if b == b'\\'
            && scheme.json()
            && let Some((c, len)) = json_escape_at(bytes, at)
        {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push(byte);
                spans.push(at..at + len);
            }
            decoded = true;
            at += len;
            continue;
        }
        out.push(b);
        spans.push(at..at + 1);
        at += 1;
    }
    if !decoded {
        return None;
    }
    let (text, spans) = valid_utf8(bytes, out, spans);
    Some(View { text, spans })
}

/// The decoded bytes as a `String`: bytes that do not form valid UTF-8
/// (only decoded bytes can: everything copied as is was valid text) are
/// put back as the escape text they came from.
fn valid_utf8(original: &[u8], out: Vec<u8>, spans: Vec<Range<usize>>) -> (String, Vec<Range<usize>>) {
    let out = match String::from_utf8(out) {
        Ok(text) => return (text, spans),
        Err(e) => e.into_bytes(),
    };
    let mut text = String::with_capacity(out.len() + 8);
    let mut fixed: Vec<Range<usize>> = Vec::with_capacity(spans.len() + 8);
    let mut at = 0;
    for chunk in out.utf8_chunks() {
        let valid = chunk.valid();
        text.push_str(valid);
        fixed.extend(spans.get(at..at + valid.len()).unwrap_or_default().iter().cloned());
        at += valid.len();
        let invalid = chunk.invalid().len();
        // Put back each original escape whole, once, even when it decoded
        // to several of the invalid bytes.
        let mut last: Option<Range<usize>> = None;
        for span in spans.get(at..at + invalid).unwrap_or_default() {
            if last.as_ref() == Some(span) {
                continue;
            }
            for i in span.clone() {
                if let Some(&byte) = original.get(i) {
                    // Escape text is ASCII; the loop keeps one span per byte regardless.
                    let c = char::from(byte);
                    text.push(c);
                    fixed.extend(std::iter::repeat_n(i..i + 1, c.len_utf8()));
                }
            }
            last = Some(span.clone());
        }
        at += invalid;
    }
    (text, fixed)
}

/// The byte a `%XX` escape at `at` stands for.
fn percent_at(bytes: &[u8], at: usize) -> Option<u8> {
    match bytes.get(at..at + 3)? {
        [b'%', hi, lo] => Some(hex_digit(*hi)? << 4 | hex_digit(*lo)?),
        _ => None,
    }
}

/// The UTF-16 unit of a `\uXXXX` escape at `at`.
fn unicode_at(bytes: &[u8], at: usize) -> Option<u16> {
    match bytes.get(at..at + 6)? {
        [b'\\', b'u', digits @ ..] => digits.iter().try_fold(0u16, |acc, d| Some(acc << 4 | u16::from(hex_digit(*d)?))),
        _ => None,
    }
}

/// The character a JSON escape at `at` stands for, and its length. A lone
/// surrogate is not decoded (it is no character).
fn json_escape_at(bytes: &[u8], at: usize) -> Option<(char, usize)> {
    let simple = match bytes.get(at + 1)? {
        b'"' => Some('"'),
        b'\\' => Some('\\'),
        b'/' => Some('/'),
        b'b' => Some('\u{8}'),
        b'f' => Some('\u{c}'),
        b'n' => Some('\n'),
        b'r' => Some('\r'),
        b't' => Some('\t'),
        _ => None,
    };
    if let Some(c) = simple {
        return Some((c, 2));
    }
    let unit = unicode_at(bytes, at)?;
    if (0xD800..0xDC00).contains(&unit) {
        let low = unicode_at(bytes, at + 6).filter(|low| (0xDC00..0xE000).contains(low))?;
        let c = char::from_u32(0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00))?;
        return Some((c, 12));
    }
    char::from_u32(u32::from(unit)).map(|c| (c, 6))
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(text: &str) -> View {
        let mut all = views(text);
        assert_eq!(all.len(), 1, "{text}");
        all.remove(0)
    }

    #[test]
    fn text_without_escapes_has_no_view() {
        assert!(views("plain text, 100% sure, a\\b, \\u12").is_empty());
        assert!(views("").is_empty());
    }

    #[test]
    fn percent_escapes_map_back_to_their_bytes() {
        let v = only("a%43b%4a");
        assert_eq!(v.text, "aCbJ");
        assert_eq!(v.original(&(1..2)), Some(1..4));
        assert_eq!(v.original(&(0..4)), Some(0..8));
        assert_eq!(v.original(&(2..3)), Some(4..5));
    }

    #[test]
    fn double_encoding_is_undone_within_the_round_limit() {
        let texts = |t: &str| views(t).into_iter().map(|v| v.text).collect::<Vec<_>>();
        assert_eq!(texts("x%2543y"), ["x%43y", "xCy"]);
        let last = views("x%2543y").pop().unwrap();
        assert_eq!(last.original(&(1..2)), Some(1..6));
        assert_eq!(texts("%25252541"), ["%252541", "%2541", "%41"], "three rounds, then it stops");
    }

    #[test]
    fn json_escapes_and_surrogate_pairs() {
        let all = views(r#"\u0041\"\ud83d\ude00\/"#);
        // Json and Both agree here: one view.
        assert_eq!(all.len(), 1);
        let v = &all[0];
        assert_eq!(v.text, "A\"\u{1F600}/");
        assert_eq!(v.original(&(2..6)), Some(8..20));
        // A lone surrogate stays as written.
        assert_eq!(only(r"\ud83dx\u0041").text, r"\ud83dxA");
    }

    #[test]
    fn mixed_and_single_scheme_views() {
        let texts: Vec<String> = views(r"%41\u0042%2543").into_iter().map(|v| v.text).collect();
        assert!(texts.contains(&r"A\u0042C".to_owned()), "{texts:?}");
        assert!(texts.contains(&"%41B%2543".to_owned()), "{texts:?}");
        assert!(texts.contains(&"ABC".to_owned()), "{texts:?}");
        // `\u0025` is `%`: the mixed view decodes what it opens.
        assert!(views(r"\u002543").iter().any(|v| v.text == "C"));
    }

    #[test]
    fn invalid_utf8_stays_escaped_and_valid_sequences_decode() {
        let v = only("a%FFb%C3%A9c%E2%82");
        assert_eq!(v.text, "a%FFbéc%E2%82");
        assert_eq!(v.original(&(1..4)), Some(1..4));
        assert_eq!(v.original(&(5..7)), Some(5..11));
        assert_eq!(v.original(&(8..14)), Some(12..18));
        // A decoded lead byte followed by a real multi-byte character.
        assert_eq!(only("%E2é").text, "%E2é");
    }

    #[test]
    fn plus_is_not_a_space() {
        assert_eq!(only("a+b%20c").text, "a+b c");
    }
}
