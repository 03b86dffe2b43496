//! steward
fn main() {}
