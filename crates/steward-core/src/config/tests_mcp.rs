//! Tests of `[mcp.NAME]` and the MCP tools of `[[tools]]`: the shapes that
//! load, and every error with its location and fix.

use super::tests::{MINIMAL, err, ok, render};
use super::{McpEnvValue, McpTransport, ToolDoor, UndoSpec};

/// MINIMAL plus a credential, a stdio server and `rest`.
fn config(server: &str, rest: &str) -> String {
    format!(
        "{MINIMAL}[credentials.social]\nsource = \"env:T\"\n\
         [mcp.social]\n{server}\n{rest}"
    )
}

const STDIO: &str = "command = [\"npx\", \"-y\", \"@acme/social-mcp\"]\n\
                     env = { SOCIAL_TOKEN = \"credential:social\", LOG = \"info\" }";

const TOOLS: &str = "[[tools]]\nname = \"post\"\nmcp = \"social\"\nmatch = \"create_post\"\nlimit = \"10/hour\"\n\
                     undo = { tool = \"unpost\", arguments = { id = \"{response.structuredContent.id}\" } }\n\
                     [[tools]]\nname = \"unpost\"\nmcp = \"social\"\nmatch = \"delete_post\"\n";

#[test]
fn a_stdio_server_an_http_server_and_mcp_tools_load() {
    let c = ok(&config(
        STDIO,
        &format!(
            "[mcp.calendar]\nurl = \"https://mcp.example.com/mcp\"\ncredential = \"social\"\n\
             auth = {{ header = \"Authorization\", format = \"Bearer {{secret}}\" }}\nmax_message_size = \"1MiB\"\n{TOOLS}"
        ),
    ));
    let social = &c.mcp["social"];
    assert_eq!(social.max_message_size, 16 * 1024 * 1024);
    let McpTransport::Stdio { command, env, .. } = &social.transport else { panic!("{social:?}") };
    assert_eq!(command[0], "npx");
    assert_eq!(env["SOCIAL_TOKEN"], McpEnvValue::Credential("social".into()));
    assert_eq!(env["LOG"], McpEnvValue::Plain("info".into()));
    let calendar = &c.mcp["calendar"];
    assert_eq!(calendar.max_message_size, 1024 * 1024);
    let McpTransport::Http { url, credential, auth } = &calendar.transport else { panic!("{calendar:?}") };
    assert_eq!(
        (url.as_str(), credential.as_deref(), auth.header.as_str()),
        ("https://mcp.example.com/mcp", Some("social"), "Authorization")
    );
    let post = &c.tools[0];
    assert_eq!((post.door, post.upstream.as_str(), post.path.as_str()), (ToolDoor::Mcp, "social", "create_post"));
    // Fail closed: an MCP tool counts as side-effecting, so supervised mode holds it.
    assert!(post.side_effect);
    let Some(UndoSpec::Call(undo)) = &post.undo else { panic!("{:?}", post.undo) };
    assert_eq!(undo.tool, "unpost");
    assert_eq!(undo.path.text, "/delete_post");
    assert_eq!(undo.body, Some(serde_json::json!({"id": "{response.structuredContent.id}"})));
}

#[test]
fn every_mcp_error_points_at_the_value_and_says_the_fix() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("", "", "has neither command nor url", "command = [\"npx\""),
        ("command = [\"x\"]\nurl = \"https://a.example\"", "", "has both command and url", "not both"),
        ("command = [\"x\"]\nenv = { T = \"credential:nope\" }", "", "nope", "[credentials"),
        ("command = [\"x\"]\ncredential = \"social\"", "", "credential is set on a stdio server", "through env"),
        (
            "url = \"https://a.example\"\nenv = { A = \"b\" }",
            "",
            "env is set on a server steward does not run",
            "command = [...]",
        ),
        ("url = \"ftp://a.example\"", "", "not an http or https URL", "https://"),
        ("command = [\"x\"]\nmax_message_size = \"1KB\"", "", "too small", "64KiB"),
        (
            "command = [\"x\"]",
            "[[tools]]\nname = \"t\"\nmcp = \"nope\"\nmatch = \"a\"\n",
            "MCP server \"nope\" is not defined",
            "social",
        ),
        (
            "command = [\"x\"]",
            "[[tools]]\nname = \"t\"\nmatch = \"a\"\n",
            "names neither an upstream nor an MCP server",
            "mcp = \"NAME\"",
        ),
        ("command = [\"x\"]", "[[tools]]\nname = \"t\"\nmcp = \"social\"\nmatch = \"a b\"\n", "whitespace", "glob"),
        (
            "command = [\"x\"]",
            "[[tools]]\nname = \"t\"\nmcp = \"social\"\nmatch = \"a\"\nretry = \"idempotent\"\n",
            "retry",
            "never repeats",
        ),
        (
            "command = [\"x\"]",
            "[[tools]]\nname = \"t\"\nmcp = \"social\"\nmatch = \"a\"\nundo = { tool = \"u\", path = \"/x\" }\n\
             [[tools]]\nname = \"u\"\nmcp = \"social\"\nmatch = \"b\"\n",
            "are for HTTP tools",
            "arguments = {",
        ),
        (
            "command = [\"x\"]",
            "[[tools]]\nname = \"t\"\nmcp = \"social\"\nmatch = \"a\"\nundo = { tool = \"u\" }\n\
             [[tools]]\nname = \"u\"\nmcp = \"social\"\nmatch = \"b\"\n",
            "needs its arguments",
            "arguments = {",
        ),
        (
            "command = [\"x\"]",
            "[[tools]]\nname = \"t\"\nmcp = \"social\"\nmatch = \"a\"\nundo = { tool = \"u\", arguments = { id = \"1\" } }\n\
             [[tools]]\nname = \"u\"\nmcp = \"social\"\nmatch = \"del_*\"\n",
            "not one name",
            "exact MCP tool name",
        ),
    ];
    for (server, rest, message, help) in cases {
        let e = err(&config(server, rest));
        let text = render(&e);
        assert!(text.contains(message), "{server:?} {rest:?}: expected {message:?} in:\n{text}");
        assert!(text.contains(help), "{server:?} {rest:?}: expected the fix {help:?} in:\n{text}");
    }
}
