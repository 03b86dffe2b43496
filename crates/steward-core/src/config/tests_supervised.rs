//! Tests of `[supervised]` and the per-tool `approval`: defaults, values,
//! and every validation error with its location and fix.

use std::time::Duration;

use super::tests::{MINIMAL, err, ok};
use super::{Approval, DEFAULT_SUPERVISED_EXPIRES, DEFAULT_SUPERVISED_WAIT};

#[test]
fn supervision_is_off_by_default_and_side_effect_tools_are_supervised() {
    let c = ok(MINIMAL);
    assert!(!c.supervised.enabled);
    assert_eq!((c.supervised.wait, c.supervised.expires), (DEFAULT_SUPERVISED_WAIT, DEFAULT_SUPERVISED_EXPIRES));
    let c = ok(&format!(
        "{MINIMAL}[credentials.s]\nsource = \"env:T\"\n[upstreams.s]\nbase_url = \"https://s.example\"\ncredential = \"s\"\n\
         [[tools]]\nname = \"post\"\nupstream = \"s\"\nmatch = \"POST /p\"\n\
         [[tools]]\nname = \"read\"\nupstream = \"s\"\nmatch = \"GET /p\"\n\
         [[tools]]\nname = \"delete_account\"\nupstream = \"s\"\nmatch = \"DELETE /a\"\napproval = \"always\"\n\
         [[tools]]\nname = \"like\"\nupstream = \"s\"\nmatch = \"POST /like\"\napproval = \"never\"\n\
         [supervised]\nenabled = true\nwait = \"10s\"\nexpires = \"1h\"\n"
    ));
    let approvals: Vec<Approval> = c.tools.iter().map(|t| t.approval).collect();
    assert_eq!(approvals, [Approval::Supervised, Approval::Never, Approval::Always, Approval::Never]);
    assert!(c.supervised.enabled);
    assert_eq!((c.supervised.wait, c.supervised.expires), (Duration::from_secs(10), Duration::from_secs(3600)));
    assert!(Approval::Supervised.required(true) && !Approval::Supervised.required(false));
    assert!(Approval::Always.required(false) && !Approval::Never.required(true));
}

#[test]
fn every_supervised_error_points_at_the_value_and_says_the_fix() {
    // MINIMAL is two lines; [supervised] is line 3, its first key line 4.
    let cases: &[(&str, (usize, usize), &str, &str)] = &[
        ("wait = \"soon\"", (4, 8), "soon", "wait = \"30s\""),
        ("wait = \"0s\"", (4, 8), "wait is zero", "positive duration"),
        ("wait = \"10m\"", (4, 8), "longer than the 300s", "the agent repeats the call"),
        ("wait = \"1m\"\nexpires = \"30s\"", (5, 11), "expires is shorter than wait", "expires = \"2h\""),
        ("enabled = \"yes\"", (4, 11), "expected a boolean (in [supervised])", "true or false"),
        ("enable = true", (4, 1), "unknown key `enable` in [supervised]", "enabled"),
    ];
    let mut failures = Vec::new();
    for (lines, at, message, help) in cases {
        let e = err(&format!("{MINIMAL}[supervised]\n{lines}\n"));
        let got_help = e.help_text().unwrap_or_default();
        if e.line_col() != Some(*at) || !e.message().contains(message) || !got_help.contains(help) {
            failures.push(format!("{lines}: got {:?} {:?} help {got_help:?}", e.line_col(), e.message()));
        }
    }
    let e = err(&format!(
        "{MINIMAL}[credentials.s]\nsource = \"env:T\"\n[upstreams.s]\nbase_url = \"https://s.example\"\ncredential = \"s\"\n\
         [[tools]]\nname = \"post\"\nupstream = \"s\"\nmatch = \"POST /p\"\napproval = \"sometimes\"\n"
    ));
    if e.line_col() != Some((12, 12)) || !e.help_text().unwrap_or_default().contains("approval = \"always\"") {
        failures.push(format!("approval: got {:?} {:?} {:?}", e.line_col(), e.message(), e.help_text()));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
