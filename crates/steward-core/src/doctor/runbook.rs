//! Doctor: Runbook. Whom to call is written down (`[runbook] contacts`), and
//! the page `steward runbook` renders exists and was rendered from the
//! config as it is now (the SHA-256 recorded in the store, see `runbook`).

use super::{CheckResult, Context};
use crate::runbook::Freshness;

const SECTION: &str = "Runbook";

/// The fix of every stale-page state.
const RENDER_FIX: &str = "run `steward runbook` and keep the page where on-call finds it";

/// The Runbook section.
pub(super) fn check(ctx: &Context<'_>) -> Vec<CheckResult> {
    let contacts = &ctx.config.runbook.contacts;
    let listed = if contacts.is_empty() {
        CheckResult::warn(
            SECTION,
            "contacts are listed",
            "no [runbook] contacts: nobody is written down to call",
            "add [runbook] contacts = [\"name <email or phone>\"], in the order to call them",
        )
    } else {
        CheckResult::pass(SECTION, "contacts are listed", format!("{} contact(s) in [runbook]", contacts.len()))
    };
    let rendered = match &ctx.runbook {
        None => CheckResult::warn(SECTION, "the runbook is rendered", "not rendered yet", RENDER_FIX),
        Some(probe) => {
            let name = probe.record.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            match probe.freshness {
                Freshness::Current => CheckResult::pass(
                    SECTION,
                    "the runbook is rendered",
                    format!("{name} was rendered from the current config"),
                ),
                Freshness::ConfigChanged => CheckResult::warn(
                    SECTION,
                    "the runbook is rendered",
                    format!("{name} was rendered before the config changed"),
                    RENDER_FIX,
                ),
                Freshness::FileGone => CheckResult::warn(
                    SECTION,
                    "the runbook is rendered",
                    format!("the rendered file is gone ({name} is no longer where it was written)"),
                    RENDER_FIX,
                ),
            }
        }
    };
    vec![listed, rendered]
}
