//! Property tests: registered secrets never survive in any encoding
//! (partial and mixed escaping included: some characters percent-encoded,
//! some `\uXXXX`-escaped, double encoding), redaction is idempotent, clean
//! text is returned untouched, and no input (arbitrary Unicode, invalid
//! UTF-8, multi-byte characters next to matches, stray escapes) makes the
//! redactor panic. The fuzz target checks the same
//! properties with coverage guidance when a nightly toolchain is at hand.
#![expect(clippy::expect_used, reason = "test setup outside #[test] fns: a failure is the point of a test")]

use std::borrow::Cow;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use redact::{Redactor, RedactorBuilder, StreamRedactor};

/// Number of registered secrets shared by the properties (one build of
/// the redactor serves every case).
const SECRET_COUNT: usize = 64;

/// Characters secrets are drawn from: ASCII, symbols that need escaping in
/// JSON or URLs, and multi-byte characters.
const SECRET_CHARS: &[char] = &[
    'a', 'b', 'c', 'x', 'y', 'z', 'A', 'Q', 'Z', '0', '1', '7', '9', '-', '_', '.', '~', '!', '#', '%', '&', '*', '+',
    '/', '=', '@', '"', '\\', ' ', 'é', 'ß', '€', '日', '🙂',
];

/// Characters no redaction marker contains, one of which every secret
/// holds, so a marker can never spell a secret.
const NON_MARKER: &[char] = &['!', '#', '%', '&', '*', '+', '/', '=', '@', '"', '\\', 'é', '€'];

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

static SECRETS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut state = 0x5EED_u64;
    (0..SECRET_COUNT)
        .map(|_| {
            let len = 4 + (xorshift(&mut state) % 36) as usize;
            let mut s: String =
                (0..len).map(|_| SECRET_CHARS[(xorshift(&mut state) % SECRET_CHARS.len() as u64) as usize]).collect();
            let pos = s.char_indices().nth((xorshift(&mut state) % 3) as usize).map_or(0, |(i, _)| i);
            s.insert(pos, NON_MARKER[(xorshift(&mut state) % NON_MARKER.len() as u64) as usize]);
            s
        })
        .collect()
});

static REDACTOR: LazyLock<Redactor> = LazyLock::new(|| {
    SECRETS
        .iter()
        .enumerate()
        .fold(RedactorBuilder::new(), |b, (i, s)| b.secret(&format!("s{i}"), s))
        .try_build()
        .expect("redactor builds")
});

fn encode(secret: &str, how: usize) -> String {
    match how {
        0 => secret.to_owned(),
        1 => STANDARD.encode(secret),
        2 => STANDARD_NO_PAD.encode(secret),
        3 => URL_SAFE.encode(secret),
        4 => URL_SAFE_NO_PAD.encode(secret),
        5 => utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        _ => {
            let quoted = serde_json::to_string(secret).expect("string serializes");
            quoted[1..quoted.len() - 1].to_owned()
        }
    }
}

/// How [`escape`] writes the characters it picks.
#[derive(Debug, Clone, Copy)]
enum Scheme {
    /// `%XX` per UTF-8 byte (a URL path or query).
    Percent,
    /// `%XX`, and every space as `+` (an HTML form body).
    Form,
    /// `\uXXXX` per UTF-16 unit (a JSON string).
    Json,
    /// Per character: raw, `%XX` or `\uXXXX` (a URL-encoded value inside JSON).
    Mixed,
}

/// `secret` with the characters `picks` selects escaped the way `scheme`
/// writes them, in upper- or lower-case hex (`lower`). Characters an
/// encoder of that scheme must always escape are escaped whatever the
/// picks (`%` in a URL, `"` and `\` in JSON), so the text means the secret.
fn escape(secret: &str, scheme: Scheme, picks: u64, lower: bool) -> String {
    let percent = |c: char| {
        let mut buf = [0u8; 4];
        c.encode_utf8(&mut buf)
            .bytes()
            .map(|b| if lower { format!("%{b:02x}") } else { format!("%{b:02X}") })
            .collect::<String>()
    };
    let json = |c: char| {
        let mut buf = [0u16; 2];
        c.encode_utf16(&mut buf)
            .iter()
            .map(|u| if lower { format!("\\u{u:04x}") } else { format!("\\u{u:04X}") })
            .collect::<String>()
    };
    secret
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let pick = (picks >> (2 * (i % 32))) & 3;
            match scheme {
                Scheme::Percent if c == '%' || pick == 1 => percent(c),
                Scheme::Form if c == ' ' => "+".to_owned(),
                Scheme::Form if c == '%' || c == '+' || pick == 1 => percent(c),
                Scheme::Json if c == '"' || c == '\\' || pick == 1 => json(c),
                Scheme::Mixed if c == '%' => percent(c),
                Scheme::Mixed if c == '"' || c == '\\' => json(c),
                Scheme::Mixed if pick == 1 => percent(c),
                Scheme::Mixed if pick == 2 => json(c),
                _ => c.to_string(),
            }
        })
        .collect()
}

/// Surrounding text: letters, digits, punctuation, whitespace and
/// multi-byte characters, including characters that join onto encodings.
fn filler() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9 .,:;=\"'/@+_\\-\\n\\t€é日🙂%\\[\\]{}]{0,80}").expect("valid regex")
}

/// Snippets that look like the things the rules and detectors look for.
fn snippet() -> impl Strategy<Value = String> {
    prop_oneof![
        filler(),
        "[a-zA-Z0-9]{36}".prop_map(|s| format!("ghp_{s}")),
        "[a-z0-9._]{1,12}@[a-z]{2,8}\\.(com|io|co\\.uk)",
        "[a-zA-Z0-9]{8,20}".prop_map(|s| format!("password={s}")),
        "[a-zA-Z0-9_-]{20,50}".prop_map(|s| format!("Authorization: Bearer {s}")),
        "[A-Z2-7]{16}".prop_map(|s| format!("AKIA{s}")),
        "\\+[1-9][0-9]{1,2} [0-9]{2,4} [0-9]{3,4} [0-9]{3,4}",
        "4[0-9]{15}",
        "(25[0-5]|1[0-9]{2}|[1-9]?[0-9])\\.(1[0-9]{2}|[1-9]?[0-9])\\.[0-9]{1,2}\\.[0-9]{1,2}",
        "[0-9a-f]{1,4}::[0-9a-f]{1,4}",
        "[a-z]{2,8}_(token|secret|key)[\"']?: ?[\"']?[a-zA-Z0-9]{8,16}[\"']?",
        (0..SECRET_COUNT).prop_map(|i| SECRETS[i].clone()),
        (0..SECRET_COUNT, 0..4usize, any::<u64>(), any::<bool>()).prop_map(|(i, scheme, picks, lower)| {
            let scheme = [Scheme::Percent, Scheme::Form, Scheme::Json, Scheme::Mixed][scheme];
            escape(&SECRETS[i], scheme, picks, lower)
        }),
        "(%[0-9A-Fa-f]{2}|%25[0-9a-f]{2}|%[0-9G]|\\\\u[0-9a-fA-F]{4}|\\\\u[dD][89abAB][0-9a-f]{2}|\\\\[\"/nu]|[a-z+]){1,12}",
        Just("[REDACTED:github-pat]".to_owned()),
        Just("[REDACTED:".to_owned()),
        Just("-----BEGIN PRIVATE KEY-----\nQUJDRA==\n".to_owned()),
    ]
}

fn mixed_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(snippet(), 0..8).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn registered_secret_never_survives(idx in 0..SECRET_COUNT, how in 0usize..7, before in filler(), after in filler()) {
        let form = encode(&SECRETS[idx], how);
        let text = format!("{before}{form}{after}");
        let out = REDACTOR.redact(&text);
        prop_assert!(!out.contains(&form), "form {how} of secret {idx} survived: {out:?}");
        prop_assert!(!out.contains(SECRETS[idx].as_str()));
    }

    #[test]
    fn escaped_secret_never_survives(
        idx in 0..SECRET_COUNT,
        scheme in 0..4usize,
        picks in any::<u64>(),
        lower in any::<bool>(),
        before in filler(),
        after in filler(),
    ) {
        let scheme = [Scheme::Percent, Scheme::Form, Scheme::Json, Scheme::Mixed][scheme];
        let escaped = escape(&SECRETS[idx], scheme, picks, lower);
        let text = format!("{before}{escaped}{after}");
        let out = REDACTOR.redact(&text);
        prop_assert!(!out.contains(&escaped), "{scheme:?} escaping of secret {idx} survived: {out:?}");
        prop_assert!(!out.contains(SECRETS[idx].as_str()));
        prop_assert_eq!(&*REDACTOR.redact(&out), &*out, "not idempotent");
    }

    #[test]
    fn redaction_is_idempotent(text in mixed_text()) {
        let once = REDACTOR.redact(&text).into_owned();
        let twice = REDACTOR.redact(&once);
        prop_assert_eq!(&*twice, once.as_str());
    }

    #[test]
    fn text_without_findings_is_returned_unchanged(text in mixed_text()) {
        if REDACTOR.find(&text).is_empty() {
            let out = REDACTOR.redact(&text);
            prop_assert!(matches!(out, Cow::Borrowed(_)));
            prop_assert_eq!(&*out, text.as_str());
        } else {
            prop_assert!(matches!(REDACTOR.redact(&text), Cow::Owned(_)));
        }
    }

    #[test]
    fn findings_are_sorted_disjoint_and_on_char_boundaries(text in mixed_text()) {
        let findings = REDACTOR.find(&text);
        let mut last = 0;
        for f in &findings {
            prop_assert!(f.range.start >= last && f.range.start < f.range.end);
            prop_assert!(text.is_char_boundary(f.range.start) && text.is_char_boundary(f.range.end));
            last = f.range.end;
        }
    }

    #[test]
    fn arbitrary_unicode_never_panics(text in any::<String>(), secret_idx in 0..SECRET_COUNT, at in any::<prop::sample::Index>()) {
        let mut text = text;
        let pos = at.index(text.len() + 1);
        let pos = (0..=pos).rev().find(|p| text.is_char_boundary(*p)).unwrap_or(0);
        text.insert_str(pos, &SECRETS[secret_idx]);
        let out = REDACTOR.redact(&text);
        prop_assert!(!out.contains(SECRETS[secret_idx].as_str()));
        let _ = REDACTOR.find_secrets(&text);
        prop_assert_eq!(&*REDACTOR.redact(&out), &*out);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let out = REDACTOR.redact_bytes(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let expected = REDACTOR.redact(text).into_owned();
            prop_assert_eq!(&*out, expected.as_bytes());
        }
    }

    #[test]
    fn json_values_never_leak(idx in 0..SECRET_COUNT, key in "[a-z_]{1,12}", before in filler()) {
        let secret = &SECRETS[idx];
        let mut value = serde_json::json!({ key.clone(): format!("{before}{secret}"), "list": [secret], "n": 1 });
        REDACTOR.redact_json(&mut value);
        let dumped = serde_json::to_string(&value).expect("serializes");
        prop_assert!(!dumped.contains(&encode(secret, 6)), "{dumped}");
    }

    #[test]
    fn streamed_secret_never_survives(idx in 0..SECRET_COUNT, before in filler(), after in filler(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4)) {
        let secret = &SECRETS[idx];
        let text = format!("{before}{secret}{after}");
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(text.len() + 1)).filter(|p| text.is_char_boundary(*p)).collect();
        points.sort_unstable();
        points.dedup();
        let mut stream = StreamRedactor::with_tail(&REDACTOR, 64);
        let mut out = String::new();
        let mut last = 0;
        for p in points {
            out.push_str(&stream.push(&text[last..p]));
            last = p;
        }
        out.push_str(&stream.push(&text[last..]));
        out.push_str(&stream.finish());
        prop_assert!(!out.contains(secret.as_str()), "{out:?}");
    }
}
