//! Configuration: `steward.toml` is parsed into a `RawConfig` and validated
//! into a [`Config`] in one fallible step.

mod model;

pub use model::*;
