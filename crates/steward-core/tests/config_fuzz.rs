//! What the config loader's fuzz target (`fuzz/fuzz_targets/config.rs`)
//! checks, run by plain `cargo test` (fuzzing needs a nightly toolchain and
//! stays out of required CI): every file of the regression corpus
//! `tests/fixtures/config-fuzz/` (seeds, and any input a fuzzing run ever
//! found failing), and a proptest that mutates those seeds with TOML
//! syntax and secret-shaped values. The property itself is in
//! `config_fuzz/check.rs`, shared with the fuzz target.

#[path = "config_fuzz/check.rs"]
mod check;

use std::path::PathBuf;
use std::sync::LazyLock;

use proptest::prelude::*;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config-fuzz")
}

/// Every corpus file, read as the fuzz target reads its input (lossy UTF-8).
#[expect(clippy::unwrap_used, reason = "a test helper: a failed step is a failed test")]
static CORPUS: LazyLock<Vec<(PathBuf, String)>> = LazyLock::new(|| {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus_dir()).unwrap().map(|entry| entry.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
        .into_iter()
        .map(|path| (path.clone(), String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned()))
        .collect()
});

/// Fragments the mutations splice in: TOML syntax, the keys steward reads,
/// and values the literal-secret scan must catch (raw, escaped, in a URL).
const FRAGMENTS: &[&str] = &[
    "\n",
    "=",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "[",
    "]",
    "[[tools]]\n",
    "{",
    "}",
    ",",
    "#",
    "\\",
    "\\u0067",
    "%67",
    "\n[upstreams.x]\nbase_url = \"https://h.example\"\ncredential = \"social\"\n",
    "\nauth = { header = \"Authorization\", format = \"Bearer ghp_16C7e42F292c6912E7710c838347Ae178B4a\" }\n",
    "\nbase_url = \"https://u:p4ssw0rd-value@h.example/v1?api_key=sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFGH\"\n",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "\\u0067hp_16C7e42F292c6912E7710c838347Ae178B4a",
    "AKIAIOSFODNN7EXAMPL3",
    "\npassword = \"Zq8xW2vB7nM4kP1sQ9\"\n",
    "Zq8xW2vB7nM4kP1sQ9",
    "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
    "\n[credentials.k]\nsource = \"env:K\"\nscopes = [\"admin\"]\n",
    "\n[[alerts.sinks]]\nname = \"s\"\nkind = \"webhook\"\nurl = \"https://hooks.example/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX\"\n",
    "\nmatch = \"* /{*rest}\"\nlimit = \"99999999999999999999/hour\"\n",
    "\nmax_body = \"18446744073709551616GB\"\n",
    "é",
    "🙂",
    "\u{0}",
];

/// One edit: insert a fragment at a position, or delete a range.
#[derive(Debug, Clone)]
enum Edit {
    Insert { at: prop::sample::Index, fragment: usize },
    Delete { at: prop::sample::Index, len: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), 0..FRAGMENTS.len()).prop_map(|(at, fragment)| Edit::Insert { at, fragment }),
        1 => (any::<prop::sample::Index>(), 1usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
    ]
}

/// The char boundary at or before `at`.
fn boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0)
}

fn apply(seed: &str, edits: &[Edit]) -> String {
    let mut text = seed.to_owned();
    for edit in edits {
        match edit {
            Edit::Insert { at, fragment } => {
                let at = boundary(&text, at.index(text.len() + 1));
                text.insert_str(at, FRAGMENTS[*fragment]);
            }
            Edit::Delete { at, len } => {
                let start = boundary(&text, at.index(text.len() + 1));
                let end = boundary(&text, start + len);
                text.replace_range(start..end, "");
            }
        }
    }
    text
}

#[test]
fn every_corpus_file_holds_the_property() {
    assert!(CORPUS.len() >= 5, "the corpus at {} is missing", corpus_dir().display());
    for (path, text) in CORPUS.iter() {
        let checked = std::panic::catch_unwind(|| check::check(text));
        assert!(checked.is_ok(), "{} fails the config fuzz property", path.display());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_seeds_hold_the_property(seed in any::<prop::sample::Index>(), edits in proptest::collection::vec(edit(), 1..12)) {
        let (_, text) = &CORPUS[seed.index(CORPUS.len())];
        check::check(&apply(text, &edits));
    }

    #[test]
    fn arbitrary_text_holds_the_property(text in any::<String>()) {
        check::check(&text);
    }
}
