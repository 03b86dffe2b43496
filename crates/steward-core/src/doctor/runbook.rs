//! Doctor: Runbook. Whom to call is written down (`[runbook] contacts`),
//! the page `steward runbook` renders exists and was rendered from the
//! config as it is now (the SHA-256 recorded in the store, see `runbook`),
//! and every tool with a side effect says how to undo its calls (`undo =`,
//! which `steward undo` runs), or why they cannot be undone.

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
    let mut out = vec![listed, rendered];
    out.extend(undo_declared(ctx));
    out
}

/// One WARN per side-effect tool without `undo`, or one PASS.
fn undo_declared(ctx: &Context<'_>) -> Vec<CheckResult> {
    const ITEM: &str = "side-effect tools declare their undo";
    let side_effects: Vec<_> = ctx.config.tools.iter().filter(|t| t.side_effect).collect();
    let missing: Vec<CheckResult> = side_effects
        .iter()
        .filter(|t| t.undo.is_none())
        .map(|tool| {
            CheckResult::warn(
                SECTION,
                ITEM,
                format!("tool `{}` has a side effect and no undo: a bad call is reversed by hand", tool.name),
                format!(
                    "declare how to undo it, like undo = {{ tool = \"delete_...\", path = \"/.../{{response.id}}\" }}, \
                     or undo = {{ none = \"why it cannot be undone\" }} on the [[tools]] entry `{}`",
                    tool.name
                ),
            )
        })
        .collect();
    if !missing.is_empty() {
        return missing;
    }
    let detail = match side_effects.len() {
        0 => "no tool has a side effect".to_owned(),
        n => format!("{n} side-effect tool(s), each declares its undo or why it has none"),
    };
    vec![CheckResult::pass(SECTION, ITEM, detail)]
}
