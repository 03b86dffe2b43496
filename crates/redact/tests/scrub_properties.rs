//! Property tests of the response scrubber: however a body is chunked (one
//! byte per chunk included) the streamed output equals the scrub of the
//! whole body, no form of a credential survives, and bytes without one
//! pass unchanged.
#![expect(clippy::expect_used, reason = "test setup outside #[test] fns: a failure is the point of a test")]

use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use redact::{CredentialScrubber, ScrubStream};

/// Credentials with bytes that need escaping in JSON and URLs, two sharing
/// a prefix (the stream must hold a partial match of either).
const CREDENTIALS: &[(&str, &str)] = &[
    ("social", "canary-social/Token+9f8e"),
    ("llm", "sk-proj-canary-1234567890"),
    ("llm2", "sk-proj-canary-ABCDEFGHIJ"),
    ("quote", "p\"ss\\wörd#1"),
];

static SCRUBBER: LazyLock<Arc<CredentialScrubber>> =
    LazyLock::new(|| Arc::new(CredentialScrubber::new(CREDENTIALS.iter().copied())));

/// The forms a leak would most likely take.
fn leak_forms(value: &str) -> Vec<Vec<u8>> {
    vec![
        value.as_bytes().to_vec(),
        STANDARD.encode(value).into_bytes(),
        URL_SAFE_NO_PAD.encode(value).into_bytes(),
        utf8_percent_encode(value, NON_ALPHANUMERIC).to_string().into_bytes(),
        serde_json::to_string(value).expect("a string serializes").into_bytes(),
    ]
}

/// A body: arbitrary bytes with credential forms spliced in.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..24),
        1 => (0..CREDENTIALS.len(), 0..5usize).prop_map(|(c, f)| leak_forms(CREDENTIALS[c].1).swap_remove(f)),
        // A prefix of a credential that never completes.
        1 => (0..CREDENTIALS.len(), 1..12usize).prop_map(|(c, n)| CREDENTIALS[c].1.as_bytes()[..n].to_vec()),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn streaming_equals_whole_and_nothing_survives(body in body(), cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let whole = SCRUBBER.scrub(&body).into_owned();
        for (_, value) in CREDENTIALS {
            // The quoted JSON form carries its quotes; the value inside is what matters.
            for form in leak_forms(value) {
                let inner = form.strip_prefix(b"\"").and_then(|f| f.strip_suffix(b"\"")).unwrap_or(&form);
                prop_assert!(!contains(&whole, inner), "a form of {value:?} survived");
            }
        }
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        points.sort_unstable();
        let mut stream = ScrubStream::new(Arc::clone(&SCRUBBER));
        let mut out = Vec::new();
        let mut last = 0;
        for point in points.into_iter().chain([body.len()]) {
            out.extend_from_slice(&stream.push(&body[last..point]));
            last = point;
        }
        out.extend_from_slice(&stream.finish());
        prop_assert_eq!(&out, &whole);
        let mut bytewise = ScrubStream::new(Arc::clone(&SCRUBBER));
        let mut one = Vec::new();
        for byte in &body {
            one.extend_from_slice(&bytewise.push(std::slice::from_ref(byte)));
        }
        one.extend_from_slice(&bytewise.finish());
        prop_assert_eq!(one, whole);
    }

    #[test]
    fn bytes_without_a_credential_pass_unchanged(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        prop_assume!(!SCRUBBER.contains(&body));
        prop_assert_eq!(&*SCRUBBER.scrub(&body), &body[..]);
    }
}
