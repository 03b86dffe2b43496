//! Stage two for `[runbook]`: the contacts on-call reads at 2am, where
//! `steward runbook` writes the page, the free-text notes, and the user the
//! page's commands run as (`sudo -u`).
//!
//! A contact is one line of the rendered page, so it must be non-empty and
//! free of control characters (a line break would split it into two list
//! items, or into a heading). An empty list is valid: `steward doctor` warns
//! about it instead, because a missing contact does not make steward unsafe.

use super::*;

/// Default `[runbook] output`, inside the state dir: the page is always
/// written somewhere steward owns, even without a `[runbook]` section.
pub const DEFAULT_RUNBOOK_FILE: &str = "RUNBOOK.md";

impl Validator<'_> {
    /// `[runbook]`; absent gives no contacts, no notes and the default output.
    pub(super) fn runbook(&mut self, raw: Option<RawRunbook>, state: &StateConfig) -> RunbookConfig {
        let default_output = state.dir.join(DEFAULT_RUNBOOK_FILE);
        let Some(raw) = raw else {
            return RunbookConfig { contacts: Vec::new(), output: default_output, notes: None, run_as: None };
        };
        let mut contacts = Vec::new();
        for contact in raw.contacts.unwrap_or_default() {
            let text = contact.get_ref().trim();
            if text.is_empty() {
                self.push(Problem::new(
                    contact.span(),
                    "a contact is empty",
                    "empty contact",
                    "write who to call and how, like \"Ana Ops <ana@example.com> (on-call, first)\", \
                     or remove the empty string",
                ));
            } else if text.chars().any(char::is_control) {
                self.push(Problem::new(
                    contact.span(),
                    "a contact contains a line break or another control character",
                    "control character",
                    "write each contact as one line, like \"Platform team <+1 555 0100>\"; \
                     put longer text in notes = \"...\"",
                ));
            }
            contacts.push(text.to_owned());
        }
        let output = match raw.output {
            Some(text) if text.get_ref().ends_with('/') => {
                self.push(Problem::new(
                    text.span(),
                    format!("output {:?} names a directory", text.get_ref()),
                    "not a file",
                    "name the file the runbook is written to, like output = \"./RUNBOOK.md\"",
                ));
                default_output
            }
            Some(text) => self.path(&text, "output"),
            None => default_output,
        };
        let notes = raw.notes.map(Spanned::into_inner).map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        let run_as = raw.run_as.and_then(|user| {
            let name = user.get_ref();
            let valid = !name.is_empty()
                && !name.starts_with('-')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !valid {
                self.push(Problem::new(
                    user.span(),
                    format!("run_as {name:?} is not a user name"),
                    "not a user name",
                    "write the user steward runs as under systemd, like run_as = \"steward\" (letters, digits, \
                     _ - .), or remove the key",
                ));
            }
            valid.then(|| user.into_inner())
        });
        RunbookConfig { contacts, output, notes, run_as }
    }
}
