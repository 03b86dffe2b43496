//! Property tests of the canonical path, run by `cargo test`: whatever the
//! agent sends, what the upstream receives is what steward matched and
//! recorded (`canonical_path::invariants`). The fuzz target
//! (`fuzz/fuzz_targets/canonical_path.rs`) checks the same invariants with
//! coverage guidance; its findings and the reproductions are kept in
//! `tests/corpus/` and replayed here.

use canonical_path::invariants::{check, check_wire};
use proptest::prelude::*;

/// Pieces an attacker combines: separators, dots, escapes of the dangerous
/// bytes (both cases), compatibility characters, controls and, most often,
/// ordinary text (so that many targets are accepted and compared).
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[a-z0-9_:{}~!$'()*,@-]{1,6}",
        4 => Just("/".to_owned()),
        2 => (0u8..=255).prop_map(|b| format!("%{b:02X}")),
        1 => (0u8..=255).prop_map(|b| format!("%{b:02x}")),
        1 => any::<char>().prop_map(String::from),
        1 => prop_oneof![
            Just("\\".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(";".to_owned()),
        Just("%".to_owned()),
        Just("?".to_owned()),
        Just("#".to_owned()),
        Just("&".to_owned()),
        Just("=".to_owned()),
        Just("+".to_owned()),
        Just("\u{FF0F}".to_owned()),
        Just("\u{FF0E}".to_owned()),
        Just("\u{2025}".to_owned()),
        Just("é".to_owned()),
        ],
    ]
}

/// Either pieces thrown together, or a well-formed shape (upstream, segments,
/// maybe a trailing `/` and a query) whose segments hold odd pieces: most of
/// the second kind are accepted, so the comparison runs on real paths.
fn target() -> impl Strategy<Value = String> {
    let segment = prop::collection::vec(piece(), 1..4).prop_map(|pieces| pieces.concat().replace('/', "_"));
    let shaped = (
        "[a-z]{1,8}",
        prop::collection::vec(segment, 0..6),
        any::<bool>(),
        proptest::option::of(prop::collection::vec(piece(), 0..6)),
    )
        .prop_map(|(upstream, segments, trailing, query)| {
            let mut target = upstream;
            for segment in segments {
                target.push('/');
                target.push_str(&segment);
            }
            if trailing {
                target.push('/');
            }
            if let Some(query) = query {
                target.push('?');
                target.push_str(&query.concat());
            }
            target
        });
    prop_oneof![prop::collection::vec(piece(), 0..24).prop_map(|pieces| pieces.concat()), shaped]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn what_the_upstream_receives_is_what_steward_matched(rest in target()) {
        if let Err(broken) = check_wire(rest.as_bytes()) {
            prop_assert!(false, "{}", broken);
        }
    }

    #[test]
    fn any_string_as_path_and_query(rest in any::<String>(), query in proptest::option::of(any::<String>())) {
        if let Err(broken) = check(&rest, query.as_deref()) {
            prop_assert!(false, "{}", broken);
        }
    }
}

/// The reproductions and every input the fuzz target ever stopped
/// on: one file per input, raw bytes, as libFuzzer stores them.
#[test]
fn the_regression_corpus_holds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if let Err(broken) = check_wire(&data) {
            panic!("{}: {broken}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 5, "the corpus in {} is missing", dir.display());
}
