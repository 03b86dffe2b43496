//! The property the config loader's fuzz target (`fuzz/fuzz_targets/config.rs`)
//! and its regression test (`tests/config_fuzz.rs`) both check, kept in one
//! file that each includes with `#[path]`.

use std::path::Path;

/// Where the fuzzed text pretends to live: relative paths in it resolve
/// against `/fuzz`, and nothing is read from there.
pub const FUZZ_PATH: &str = "/fuzz/steward.toml";

/// Secret-rule findings shorter than this are not checked against the
/// report: a short value (a 6-byte `password = "abcdef"`) can occur in the
/// report's own words by chance.
const MIN_CHECKED_SECRET: usize = 10;

/// For any text: the two-stage loader returns (no panic, no hang), and when
/// it refuses the text, no rendering of the error (`Display`, `Debug`, the
/// miette report `config check`, `run` and `doctor` print) repeats a literal
/// secret the text holds.
pub fn check(text: &str) {
    let Err(err) = steward_core::config::parse(text, Path::new(FUZZ_PATH)) else {
        return;
    };
    let display = err.to_string();
    let debug = format!("{err:?}");
    let report = format!("{:?}", miette::Report::new(err));
    for finding in steward_core::config::find_literal_secrets(text) {
        let Some(secret) = text.get(finding.range.clone()) else { continue };
        let secret = secret.trim_matches(['"', '\'']);
        if secret.len() < MIN_CHECKED_SECRET {
            continue;
        }
        for (what, shown) in [("Display", &display), ("Debug", &debug), ("report", &report)] {
            assert!(
                !shown.contains(secret),
                "the {what} of a config error repeats the literal secret {secret:?}:\n{shown}"
            );
        }
    }
}
