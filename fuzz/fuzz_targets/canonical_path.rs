//! Fuzz target for the canonical path: any bytes after `/api/`, read as
//! hyper reads a request target, either are refused or reach the upstream
//! as exactly the path and query steward matched and recorded
//! (`canonical_path::invariants::check_wire`, the same check
//! `crates/canonical-path/tests/properties.rs` runs on stable).
//!
//! `cargo +nightly fuzz run canonical_path -- -jobs=1 -max_total_time=600`
//! (or `RUSTC_BOOTSTRAP=1 cargo fuzz run ...` on stable). Inputs that ever
//! broke it go to `crates/canonical-path/tests/corpus/`, which `cargo test`
//! replays.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = canonical_path::invariants::check_wire(data) {
        panic!("{broken}");
    }
});
