//! Fuzz target for the two-stage config loader (`steward_core::config::parse`:
//! raw TOML with spans, then validation).
//!
//! ```sh
//! cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run config -- -jobs=1 -max_total_time=600 \
//!     ../crates/steward-core/tests/fixtures/config-fuzz
//! ```
//! (or `cargo +nightly fuzz run config`). The seeds are the regression
//! corpus that `cargo test -p steward-core --test config_fuzz` runs; copy
//! any input this target finds failing there.
//!
//! The check is `crates/steward-core/tests/config_fuzz/check.rs`, shared
//! with that test: the loader returns for any text (no panic, no hang), and
//! no rendering of a config error (`Display`, `Debug`, the miette report
//! `config check`, `run` and `doctor` print) repeats a literal secret the
//! text holds. Invalid UTF-8 is read lossily, as the loader's caller would
//! refuse it before parsing.
#![no_main]

#[path = "../../crates/steward-core/tests/config_fuzz/check.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::check(&String::from_utf8_lossy(data));
});
