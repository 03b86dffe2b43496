//! Tests of `[supervised] enabled` and `[supervised.ready]`: defaults, values, and
//! every validation error with its location and fix.

use super::tests::{MINIMAL, err, ok};
use super::{DEFAULT_READY_MIN_DAYS, DEFAULT_READY_MIN_DECISIONS, DEFAULT_READY_QUIET_DAYS};

#[test]
fn supervised_mode_is_off_with_the_default_thresholds_unless_written() {
    let c = ok(MINIMAL);
    assert!(!c.supervised.enabled);
    assert_eq!(
        (c.supervised.ready.min_days, c.supervised.ready.min_decisions, c.supervised.ready.quiet_days),
        (DEFAULT_READY_MIN_DAYS, DEFAULT_READY_MIN_DECISIONS, DEFAULT_READY_QUIET_DAYS)
    );
    assert_eq!((DEFAULT_READY_MIN_DAYS, DEFAULT_READY_MIN_DECISIONS, DEFAULT_READY_QUIET_DAYS), (7, 20, 3));
    let c = ok(&format!(
        "{MINIMAL}[supervised]\nenabled = true\n[supervised.ready]\nmin_days = 14\nmin_decisions = 0\nquiet_days = 5\n"
    ));
    assert!(c.supervised.enabled);
    assert_eq!(
        (c.supervised.ready.min_days, c.supervised.ready.min_decisions, c.supervised.ready.quiet_days),
        (14, 0, 5)
    );
}

#[test]
fn every_supervised_error_points_at_the_value_and_says_the_fix() {
    // MINIMAL is two lines; [supervised] is line 3, [supervised.ready] line 4, its key line 5.
    let cases: &[(&str, (usize, usize), &str, &str)] = &[
        ("min_days = -1", (5, 12), "min_days = -1 is out of range", "from 0 to 3650, like min_days = 7"),
        ("quiet_days = 4000", (5, 14), "quiet_days = 4000 is out of range", "like quiet_days = 3"),
        ("min_decisions = 2000000", (5, 17), "out of range", "like min_decisions = 20"),
        ("min_days = \"7d\"", (5, 12), "expected i64", "a whole number without quotes"),
        ("max_days = 7", (5, 1), "unknown key `max_days` in [supervised]", "min_days, min_decisions, quiet_days"),
    ];
    let mut failures = Vec::new();
    for (body, at, message, help) in cases {
        let e = err(&format!("{MINIMAL}[supervised]\n[supervised.ready]\n{body}\n"));
        let got_help = e.help_text().unwrap_or_default();
        if e.line_col() != Some(*at) || !e.to_string().contains(message) || !got_help.contains(help) {
            failures.push(format!("{body}: got {:?} {:?} help {got_help:?}", e.line_col(), e.to_string()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let e = err(&format!("{MINIMAL}[supervised]\nenabled = \"yes\"\n"));
    assert_eq!(e.line_col(), Some((4, 11)), "{e}");
    assert!(e.help_text().unwrap_or_default().contains("true or false"), "{:?}", e.help_text());
}
