//! Fuzz target for the redaction engine (`cargo +nightly fuzz run redact`).
//!
//! The input's first byte chooses where a registered secret is spliced into
//! the rest; the checks are the ones `crates/redact/tests/properties.rs`
//! runs on stable: no panic, the secret never survives, redaction is
//! idempotent, clean text comes back borrowed.
#![no_main]

use std::borrow::Cow;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use redact::{Redactor, RedactorBuilder, StreamRedactor};

/// A secret with characters that need escaping in JSON and URLs, and one
/// (`#`) that no redaction marker contains.
const SECRET: &str = "fz#Secret/Value+1é";

static REDACTOR: LazyLock<Redactor> =
    LazyLock::new(|| RedactorBuilder::new().secret("fuzz", SECRET).build());

fuzz_target!(|data: &[u8]| {
    let r = &*REDACTOR;
    let Some((&pos, rest)) = data.split_first() else {
        return;
    };
    let out = r.redact_bytes(rest);
    let Ok(text) = std::str::from_utf8(rest) else {
        assert_eq!(
            &*r.redact_bytes(&out),
            &*out,
            "byte redaction not idempotent"
        );
        return;
    };

    // Splice the secret in at a char boundary chosen by the first byte.
    let mut at = usize::from(pos) * text.len() / 255;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let spliced = format!("{}{SECRET}{}", &text[..at], &text[at..]);

    for input in [text, spliced.as_str()] {
        let once = r.redact(input);
        if r.find(input).is_empty() {
            assert!(matches!(once, Cow::Borrowed(_)));
        }
        assert!(!once.contains(SECRET), "secret survived");
        let twice = r.redact(&once);
        assert_eq!(&*twice, &*once, "not idempotent");
        let _ = r.find_secrets(input);
    }

    let mut stream = StreamRedactor::with_tail(r, 32);
    let (a, b) = spliced.split_at(at);
    let mut streamed = stream.push(a);
    streamed.push_str(&stream.push(b));
    streamed.push_str(&stream.finish());
    assert!(!streamed.contains(SECRET), "secret survived streaming");
});
