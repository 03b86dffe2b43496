//! The redactor every writer shares: the audit log, the store, the alert
//! sinks, the agent's captured output and every error message that quotes
//! outside text. One [`redact::Redactor`] behind an [`ArcSwap`], swapped
//! whole when credentials reload (see `daemon`): every writer sees the new
//! values at once, and none ever stops redacting an old one.
//!
//! The redaction engine itself is the `redact` crate; this module only owns
//! how steward shares it.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// The redactor every writer shares; swapped whole when credentials reload.
pub type SharedRedactor = Arc<ArcSwap<redact::Redactor>>;

/// `redactor`, ready to share. Only the daemon's reload swaps it; CLI
/// commands and tests keep the one they built.
pub fn shared(redactor: redact::Redactor) -> SharedRedactor {
    Arc::new(ArcSwap::from_pointee(redactor))
}
