//! Fuzz target for the redaction engine.
//!
//! With cargo-fuzz: `cargo +nightly fuzz run redact`. Without it, build the
//! instrumented binary directly and run it:
//! ```sh
//! RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
//!   -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
//!   -Cllvm-args=-sanitizer-coverage-pc-table \
//!   -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Zsanitizer=address" \
//!   cargo +nightly build --release --target x86_64-unknown-linux-gnu --manifest-path fuzz/Cargo.toml
//! fuzz/target/x86_64-unknown-linux-gnu/release/redact -max_total_time=300 corpus/
//! ```
//!
//! The input's first byte chooses where a registered secret is spliced into
//! the rest, once as is and once partly escaped (the characters the first
//! byte's bits pick percent-encoded, or `\uXXXX`-escaped when its top bit
//! is set); the checks are the ones `crates/redact/tests/properties.rs`
//! runs on stable: no panic, the secret never survives in either form,
//! redaction is idempotent, clean text comes back borrowed.
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
    let escaped_secret = escape(SECRET, pos);
    let escaped = format!("{}{escaped_secret}{}", &text[..at], &text[at..]);

    for input in [text, spliced.as_str(), escaped.as_str()] {
        let once = r.redact(input);
        if r.find(input).is_empty() {
            assert!(matches!(once, Cow::Borrowed(_)));
        }
        assert!(!once.contains(SECRET), "secret survived");
        assert!(!once.contains(&escaped_secret), "escaped secret survived");
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

/// `secret` with the characters at the positions of `bits`'s low seven
/// bits (modulo 7) escaped: `%XX` per byte, or `\uXXXX` when the top bit
/// is set. `%`, `"` and `\` are always escaped, as an encoder must.
fn escape(secret: &str, bits: u8) -> String {
    let json = bits & 0x80 != 0;
    secret
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let picked = bits & (1 << (i % 7)) != 0 || matches!(c, '%' | '"' | '\\');
            match (picked, json) {
                (false, _) => c.to_string(),
                (true, false) => c.to_string().bytes().map(|b| format!("%{b:02X}")).collect(),
                (true, true) => c.encode_utf16(&mut [0u16; 2]).iter().map(|u| format!("\\u{u:04x}")).collect(),
            }
        })
        .collect()
}
