//! Tests of `[runbook]`: contacts, output, notes, their defaults, every
//! validation error with its location and fix, and that ordinary contact
//! details do not trip the literal-secret scan.

use std::path::PathBuf;

use super::tests::{MINIMAL, err, ok, render};

#[test]
fn the_runbook_section_parses_in_order_with_a_relative_output() {
    let c = ok(&format!(
        "{MINIMAL}[runbook]\n\
         contacts = [\"Ana Ops <ana@example.com> (on-call, first)\", \"  Platform team <+1 555 0100>  \"]\n\
         output = \"./docs/RUNBOOK.md\"\n\
         notes = \"Social account owner: marketing (Bo).\\n\"\n"
    ));
    assert_eq!(c.runbook.contacts, ["Ana Ops <ana@example.com> (on-call, first)", "Platform team <+1 555 0100>"]);
    assert_eq!(c.runbook.output, PathBuf::from("/srv/poster/docs/RUNBOOK.md"));
    assert_eq!(c.runbook.notes.as_deref(), Some("Social account owner: marketing (Bo)."));
    assert_eq!(c.runbook.run_as, None);
    let c = ok(&format!("{MINIMAL}[runbook]\nrun_as = \"steward\"\n"));
    assert_eq!(c.runbook.run_as.as_deref(), Some("steward"));
}

#[test]
fn without_the_section_nobody_is_listed_and_the_page_goes_to_the_state_dir() {
    let c = ok(MINIMAL);
    assert!(c.runbook.contacts.is_empty() && c.runbook.notes.is_none());
    assert_eq!(c.runbook.output, PathBuf::from("/srv/poster/.steward/RUNBOOK.md"));

    let c = ok(&format!("{MINIMAL}[state]\ndir = \"/var/lib/steward\"\n[runbook]\ncontacts = []\nnotes = \"  \"\n"));
    assert!(c.runbook.contacts.is_empty() && c.runbook.notes.is_none());
    assert_eq!(c.runbook.output, PathBuf::from("/var/lib/steward/RUNBOOK.md"));
}

#[test]
fn every_runbook_error_points_at_the_value_and_says_the_fix() {
    // MINIMAL is two lines; [runbook] is line 3, its first key line 4.
    let cases: &[(&str, (usize, usize), &str, &str)] = &[
        ("contacts = [\"Ana <ana@example.com>\", \" \"]", (4, 38), "a contact is empty", "remove the empty string"),
        ("contacts = [\"Ana\\nBo\"]", (4, 13), "line break", "put longer text in notes"),
        ("output = \"./docs/\"", (4, 10), "names a directory", "output = \"./RUNBOOK.md\""),
        ("output = \"~/RUNBOOK.md\"", (4, 10), "starts with ~", "relative to the directory of this config file"),
        ("contacts = \"Ana\"", (4, 12), "expected a sequence", "a list of quoted strings"),
        (
            "contact = [\"Ana\"]",
            (4, 1),
            "unknown key `contact` in [runbook]",
            "accepts: contacts, output, notes, run_as",
        ),
        ("run_as = \"steward; rm -rf /\"", (4, 10), "is not a user name", "run_as = \"steward\""),
        ("run_as = \"-u\"", (4, 10), "is not a user name", "run_as = \"steward\""),
    ];
    let mut failures = Vec::new();
    for (body, at, message, help) in cases {
        let e = err(&format!("{MINIMAL}[runbook]\n{body}\n"));
        let shown = render(&e);
        let got_help = e.help_text().unwrap_or_default();
        if e.line_col() != Some(*at) {
            failures.push(format!("expected {at:?} for {message:?}:\n{shown}"));
        } else if !e.message().contains(message) {
            failures.push(format!("message lacks {message:?}:\n{shown}"));
        } else if !got_help.contains(help) {
            failures.push(format!("help lacks {help:?}:\n{shown}"));
        } else if !e.related_errors().is_empty() {
            failures.push(format!("expected one problem:\n{shown}"));
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn emails_and_phone_numbers_in_contacts_are_not_literal_secrets() {
    let source = format!(
        "{MINIMAL}[runbook]\n\
         contacts = [\n  \"Ana Ops <ana@example.com> (on-call, first)\",\n  \"Platform team <+1 555 0100>\",\n  \
         \"Bo Marketing <bo.marketing+social@corp.example.org>, +44 20 7946 0958\",\n  \
         \"Night desk: +49 (0)30 901820, pager 0171-5551234\",\n  \"ops@example.com\",\n]\n\
         notes = \"Social account owner: marketing (Bo). Escalate to cto@example.com after 30 minutes; \
         the Mastodon admin is admin@social.example, password reset via the provider.\"\n"
    );
    let c = ok(&source);
    assert_eq!(c.runbook.contacts.len(), 5);
    // The scan that runs on the whole file finds nothing in these lines.
    assert!(super::find_literal_secrets(&source).is_empty(), "{:?}", super::find_literal_secrets(&source));
}

#[test]
fn a_token_pasted_into_the_runbook_is_still_refused() {
    let token = format!("ghp_{}", "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6");
    let e = err(&format!("{MINIMAL}[runbook]\nnotes = \"bot token: {token}\"\n"));
    let shown = render(&e);
    assert!(e.message().contains("literal secret"), "{shown}");
    assert!(!shown.contains(&token), "{shown}");
}
