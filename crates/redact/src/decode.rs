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
//! One, undoing both schemes at once (mixed encodings such as
//! `%43\u0041NARY` included), when the text has a `%XX` or a `\uXXXX`.
//! Decoding both would change a secret that itself contains escape text
//! (`pa%41ss` inside JSON, `a\"b` in a URL), so when a registered secret
//! holds a `%` the text also gets a JSON-only view, and when one holds a
//! `\` a percent-only view ([`Singles`]); other secrets pay nothing for
//! them. Each view is decoded again while escapes remain, up to
//! [`MAX_ROUNDS`] times (double encoding: `%2543` is `%43` is `C`), and
//! every round is scanned.
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

/// One decoded escape: where it sits in the decoded text and in the text it
/// was decoded from. Bytes between escapes are copied unchanged, so their
/// position follows from the escape before them.
#[derive(Debug, Clone, Copy)]
struct Escape {
    /// Offset of its decoded bytes in the decoded text.
    at: usize,
    /// How many bytes it decoded to.
    len: usize,
    /// Offset of the escape in the text it was decoded from.
    from: usize,
    /// Length of the escape there (3 for `%XX`, 2 for `\n`, 6 or 12 for `\u`).
    from_len: usize,
}

/// One decoding round: the escapes it undid, in order.
#[derive(Debug, Clone, Default)]
struct Round {
    escapes: Vec<Escape>,
}

impl Round {
    /// The span of the round's input that `range` of its output came from.
    fn source(&self, range: &Range<usize>) -> Option<Range<usize>> {
        let last = range.end.checked_sub(1)?;
        Some(self.position(range.start).start..self.position(last).end)
    }

    /// The span of the input that byte `at` of the output came from: a whole
    /// escape, or the one byte it was copied from.
    fn position(&self, at: usize) -> Range<usize> {
        let i = self.escapes.partition_point(|e| e.at <= at);
        match i.checked_sub(1).and_then(|i| self.escapes.get(i)) {
            None => at..at + 1,
            Some(e) if at < e.at + e.len => e.from..e.from + e.from_len,
            Some(e) => {
                let copied = e.from + e.from_len + (at - e.at - e.len);
                copied..copied + 1
            }
        }
    }
}

/// A decoded copy of a text and the way back to it.
#[derive(Debug)]
pub(crate) struct View {
    /// The decoded text.
    pub(crate) text: String,
    /// The rounds that produced it, first to last.
    rounds: Vec<Round>,
}

impl View {
    /// The span of the original text that `range` of the view came from.
    pub(crate) fn original(&self, range: &Range<usize>) -> Option<Range<usize>> {
        self.rounds.iter().rev().try_fold(range.clone(), |r, round| round.source(&r))
    }
}

/// Which single-scheme views a redactor needs besides the mixed one: only
/// registered secrets that contain escape characters do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Singles {
    /// A percent-only view: some secret holds a `\`, which JSON decoding
    /// would change.
    pub(crate) percent: bool,
    /// A JSON-only view: some secret holds a `%`, which percent decoding
    /// would change.
    pub(crate) json: bool,
}

impl Singles {
    /// What secrets with these values need.
    pub(crate) fn for_secrets<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        values.into_iter().fold(Singles::default(), |acc, v| Singles {
            percent: acc.percent || v.contains('\\'),
            json: acc.json || v.contains('%'),
        })
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
pub(crate) fn views(text: &str, singles: Singles) -> Vec<View> {
    let (percent, json) = escapes(text);
    let mut schemes = Vec::with_capacity(3);
    if percent || json {
        schemes.push(Scheme::Both);
    }
    if percent && singles.percent {
        schemes.push(Scheme::Percent);
    }
    if json && singles.json {
        schemes.push(Scheme::Json);
    }
    let mut out: Vec<View> = Vec::new();
    for scheme in schemes {
        // Every round is kept: a secret that contains escape text itself
        // (`pa%41ss`) is whole after one round and changed by the next.
        let mut previous: Option<usize> = None;
        for _ in 0..MAX_ROUNDS {
            let prior = previous.and_then(|i| out.get(i));
            let source = prior.map_or(text, |v| v.text.as_str());
            let Some((decoded, round)) = decode(source, scheme) else { break };
            let mut rounds = prior.map(|v| v.rounds.clone()).unwrap_or_default();
            rounds.push(round);
            previous = match out.iter().position(|v| v.text == decoded) {
                Some(same) => Some(same),
                None => {
                    out.push(View { text: decoded, rounds });
                    Some(out.len() - 1)
                }
            };
        }
    }
    out
}

/// One round of decoding; `None` when nothing was decoded. Runs between
/// escapes are copied whole.
fn decode(text: &str, scheme: Scheme) -> Option<(String, Round)> {
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut round = Round::default();
    let mut copied = 0;
    let mut at = 0;
    let mut run: Vec<u8> = Vec::new();
    while let Some(found) = memchr::memchr2(b'%', b'\\', bytes.get(at..).unwrap_or_default()) {
        at += found;
        let is_percent = bytes.get(at) == Some(&b'%');
        if is_percent && scheme.percent() && percent_at(bytes, at).is_some() {
            // A run of adjacent `%XX` escapes is decoded together: its
            // bytes may form one multi-byte character, or invalid UTF-8.
            let start = at;
            run.clear();
            while let Some(byte) = percent_at(bytes, at) {
                run.push(byte);
                at += 3;
            }
            out.extend_from_slice(bytes.get(copied..start).unwrap_or_default());
            push_percent_run(bytes, &run, start, &mut out, &mut round);
            copied = at;
            continue;
        }
        if !is_percent
            && scheme.json()
            && let Some((c, len)) = json_escape_at(bytes, at)
        {
            out.extend_from_slice(bytes.get(copied..at).unwrap_or_default());
            let mut buf = [0u8; 4];
            let encoded = c.encode_utf8(&mut buf);
            round.escapes.push(Escape { at: out.len(), len: encoded.len(), from: at, from_len: len });
            out.extend_from_slice(encoded.as_bytes());
            at += len;
            copied = at;
            continue;
        }
        at += 1;
    }
    if round.escapes.is_empty() {
        return None;
    }
    out.extend_from_slice(bytes.get(copied..).unwrap_or_default());
    // Every decoded run was checked to be UTF-8, and the bytes copied
    // between them were text: this cannot fail; no view beats a wrong one.
    String::from_utf8(out).ok().map(|text| (text, round))
}

/// Appends a run of decoded `%XX` bytes that started at `from`: valid UTF-8
/// decoded (one escape per byte), invalid bytes as the escape text they
/// came from. A run is checked on its own: the text around it starts and
/// ends on character boundaries, so no character can span its edge.
fn push_percent_run(text: &[u8], run: &[u8], from: usize, out: &mut Vec<u8>, round: &mut Round) {
    let mut from = from;
    for chunk in run.utf8_chunks() {
        for &byte in chunk.valid().as_bytes() {
            round.escapes.push(Escape { at: out.len(), len: 1, from, from_len: 3 });
            out.push(byte);
            from += 3;
        }
        // Kept as written (`%FF`): copied bytes, like the text around them.
        let kept = 3 * chunk.invalid().len();
        out.extend_from_slice(text.get(from..from + kept).unwrap_or_default());
        from += kept;
    }
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
    if bytes.get(at) != Some(&b'\\') {
        return None;
    }
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

    /// Every view, as for secrets holding both escape characters.
    const ALL: Singles = Singles { percent: true, json: true };

    fn only(text: &str) -> View {
        let mut all = views(text, ALL);
        assert_eq!(all.len(), 1, "{text}");
        all.remove(0)
    }

    #[test]
    fn text_without_escapes_has_no_view() {
        assert!(views("plain text, 100% sure, a\\b, \\u12", ALL).is_empty());
        assert!(views("", ALL).is_empty());
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
        let texts = |t: &str| views(t, ALL).into_iter().map(|v| v.text).collect::<Vec<_>>();
        assert_eq!(texts("x%2543y"), ["x%43y", "xCy"]);
        let last = views("x%2543y", ALL).pop().unwrap();
        assert_eq!(last.original(&(1..2)), Some(1..6));
        assert_eq!(texts("%25252541"), ["%252541", "%2541", "%41"], "three rounds, then it stops");
    }

    #[test]
    fn json_escapes_and_surrogate_pairs() {
        let all = views(r#"\u0041\"\ud83d\ude00\/"#, ALL);
        // Json and Both agree here: one view.
        assert_eq!(all.len(), 1);
        let v = &all[0];
        assert_eq!(v.text, "A\"\u{1F600}/");
        assert_eq!(v.original(&(2..6)), Some(8..20));
        // A lone surrogate stays as written.
        assert_eq!(only(r"\ud83dx\u0041").text, r"\ud83dxA");
    }

    #[test]
    fn single_scheme_views_only_for_secrets_that_need_them() {
        let texts = |singles| views(r"%41\u0042", singles).into_iter().map(|v| v.text).collect::<Vec<_>>();
        assert_eq!(texts(Singles::default()), ["AB"]);
        assert_eq!(texts(Singles::for_secrets(["plain", "with%percent"])), ["AB", "%41B"]);
        assert_eq!(texts(Singles::for_secrets([r"back\slash"])), ["AB", r"A\u0042"]);
    }

    #[test]
    fn mixed_and_single_scheme_views() {
        let texts: Vec<String> = views(r"%41\u0042%2543", ALL).into_iter().map(|v| v.text).collect();
        assert!(texts.contains(&r"A\u0042C".to_owned()), "{texts:?}");
        assert!(texts.contains(&"%41B%2543".to_owned()), "{texts:?}");
        assert!(texts.contains(&"ABC".to_owned()), "{texts:?}");
        // `\u0025` is `%`: the mixed view decodes what it opens.
        assert!(views(r"\u002543", ALL).iter().any(|v| v.text == "C"));
    }

    #[test]
    fn invalid_utf8_stays_escaped_and_valid_sequences_decode() {
        let v = only("a%FFb%C3%A9c%E2%82");
        assert_eq!(v.text, "a%FFbéc%E2%82");
        assert_eq!(v.original(&(1..4)), Some(1..4));
        assert_eq!(v.original(&(5..7)), Some(5..11));
        assert_eq!(v.original(&(8..14)), Some(12..18));
        // A lone lead byte before a real multi-byte character decodes to
        // nothing valid: no view at all.
        assert!(views("%E2é", ALL).is_empty());
        assert_eq!(only("%e2%82%ACé").text, "€é");
    }

    proptest::proptest! {
        /// Every character of every view maps back to a non-empty span of
        /// the original on character boundaries, in order, and a character
        /// copied as is maps to itself.
        #[test]
        fn views_map_back_in_order(text in "([a-z%+\\\\/\"é€🙂]|%[0-9a-fA-F]{2}|%25[0-9a-f]{2}|\\\\u[0-9a-fA-F]{4}|\\\\u[dD][89abAB][0-9a-f]{2}){0,24}") {
            for view in views(&text, ALL) {
                let mut last = 0;
                for (i, c) in view.text.char_indices() {
                    let span = view.original(&(i..i + c.len_utf8())).unwrap();
                    proptest::prop_assert!(span.start >= last && span.start < span.end && span.end <= text.len());
                    proptest::prop_assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
                    if span.len() == c.len_utf8() {
                        proptest::prop_assert_eq!(&text[span.clone()], &view.text[i..i + c.len_utf8()]);
                    }
                    last = span.start;
                }
            }
        }
    }

    #[test]
    fn a_percent_sign_before_a_backslash_is_not_an_escape() {
        assert_eq!(only(r"%\u003D%\\").text, r"%=%\");
    }

    #[test]
    fn plus_is_not_a_space() {
        assert_eq!(only("a+b%20c").text, "a+b c");
    }
}
