//! Tests of a tool's `undo = { ... }`: the shapes that load, and every
//! error with its location and fix.

use super::tests::{MINIMAL, err, ok, render};
use super::undo::{Piece, Placeholder, Step};
use super::{UndoCall, UndoSpec};

/// MINIMAL plus one upstream (lines 3-4) and two tools; `{undo}` is the
/// post tool's undo line (line 9), `{extra}` more tools after it.
fn config(undo: &str, extra: &str) -> String {
    format!(
        "{MINIMAL}[upstreams.social]\nbase_url = \"http://127.0.0.1:9\"\n\
         [[tools]]\nname = \"post\"\nupstream = \"social\"\nmatch = \"POST /api/v1/accounts/{{acct}}/statuses\"\n\
         {undo}\n\
         [[tools]]\nname = \"delete_status\"\nupstream = \"social\"\nmatch = \"DELETE /api/v1/statuses/{{id}}\"\n\
         {extra}"
    )
}

#[test]
fn an_undo_call_and_a_declined_undo_load() {
    let c = ok(&config("undo = { tool = \"delete_status\", path = \"/api/v1/statuses/{response.id}\" }", ""));
    let Some(UndoSpec::Call(UndoCall { tool, method, path, query, body })) = &c.tools[0].undo else {
        panic!("{:?}", c.tools[0].undo)
    };
    assert_eq!((tool.as_str(), method.as_str(), query, body), ("delete_status", "DELETE", &None, &None));
    assert_eq!(path.pieces[1], Piece::Field(Placeholder::Response(vec![Step::Key("id".into())])));
    assert_eq!(c.tools[1].undo, None);

    let c = ok(&config(
        "undo = { tool = \"delete_status\", method = \"POST\", path = \"/x/{path.acct}\", query = \"id={request.id}\", \
         body = { id = \"{response.id}\", n = 1 } }",
        "",
    ));
    let Some(UndoSpec::Call(call)) = &c.tools[0].undo else { panic!() };
    assert_eq!(call.method, "POST");
    assert_eq!(call.body, Some(serde_json::json!({"id": "{response.id}", "n": 1})));
    assert!(call.query.is_some());

    let c = ok(&config("undo = { none = \"a sent e-mail cannot be recalled\" }", ""));
    assert_eq!(c.tools[0].undo, Some(UndoSpec::Declined { reason: "a sent e-mail cannot be recalled".into() }));
}

#[test]
fn every_undo_error_points_at_the_value_and_says_the_fix() {
    let other = "[upstreams.mail]\nbase_url = \"http://127.0.0.1:9\"\n\
                 [[tools]]\nname = \"unsend\"\nupstream = \"mail\"\nmatch = \"DELETE /m/{id}\"\n\
                 [[tools]]\nname = \"any\"\nupstream = \"social\"\nmatch = \"* /any/{id}\"\n";
    let cases: &[(&str, (usize, usize), &str, &str)] = &[
        ("undo = { tool = \"nope\", path = \"/a\" }", (9, 17), "is not a declared tool", "declare it as a [[tools]]"),
        ("undo = { tool = \"unsend\", path = \"/m/1\" }", (9, 17), "is on upstream \"mail\"", "same upstream"),
        ("undo = { tool = \"any\", path = \"/any/1\" }", (9, 17), "matches any method", "method = \"DELETE\""),
        (
            "undo = { tool = \"delete_status\", path = \"/s/{response.id\" }",
            (9, 41),
            "never closed",
            "{response.<json path>}",
        ),
        (
            "undo = { tool = \"delete_status\", path = \"/s/{reply.id}\" }",
            (9, 41),
            "unknown source",
            "{request.<json path>}",
        ),
        ("undo = { tool = \"delete_status\", path = \"/s/{path.id}\" }", (9, 41), "names no {id}", "{acct}"),
        ("undo = { tool = \"delete_status\", path = \"s/1\" }", (9, 41), "does not start with /", "below the upstream"),
        (
            "undo = { tool = \"delete_status\", method = \"del\", path = \"/s\" }",
            (9, 43),
            "not an HTTP method",
            "DELETE",
        ),
        ("undo = { none = \" \" }", (9, 17), "needs a reason", "cannot be recalled"),
        ("undo = { none = \"x\", tool = \"delete_status\" }", (9, 29), "both none and an undo call", "keep either"),
        ("undo = \"none\"", (9, 8), "expected an undo table", "undo = { none = "),
        ("undo = { path = \"/s\" }", (9, 8), "names no tool", "undo = { none = \"why\" }"),
        ("undo = { tool = \"delete_status\", paht = \"/s\" }", (9, 34), "unknown key `paht`", "accepts: tool, path"),
    ];
    let mut failures = Vec::new();
    for (body, at, message, help) in cases {
        let e = err(&config(body, other));
        let shown = render(&e);
        if e.line_col() != Some(*at) {
            failures.push(format!("expected {at:?} for {message:?}, got {:?}:\n{shown}", e.line_col()));
        }
        if !shown.contains(message) || !shown.contains(help) {
            failures.push(format!("expected {message:?} and {help:?} in:\n{shown}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
