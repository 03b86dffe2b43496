use std::time::Duration;

use super::*;
use crate::config::{RateLimit, RetryPolicy};

fn tool(name: &str, method: &str, path: &str) -> ToolConfig {
    ToolConfig {
        door: crate::config::ToolDoor::Api,
        name: name.into(),
        upstream: "social".into(),
        method: method.into(),
        path: path.into(),
        side_effect: method != "GET",
        limit: Some(RateLimit { max: 10, per: Duration::from_secs(3600) }),
        retry: RetryPolicy::Never,
        approval: crate::config::Approval::Never,
        undo: None,
    }
}

fn matcher(policy: UnmatchedPolicy) -> ToolMatcher {
    ToolMatcher::new(
        &[
            tool("post", "POST", "/api/v1/statuses"),
            tool("read", "GET", "/api/v1/statuses/{id}"),
            tool("media", "*", "/api/v2/media/{*rest}"),
        ],
        policy,
    )
}

fn path(raw: &str) -> CanonicalPath {
    CanonicalPath::parse(raw).unwrap()
}

fn name(id: Identified<'_>) -> String {
    match id {
        Identified::Tool(t) => t.name.clone(),
        Identified::UnmatchedAllowed => "allowed".into(),
        Identified::UnmatchedDenied => "denied".into(),
    }
}

#[test]
fn identifies_by_method_and_path() {
    let m = matcher(UnmatchedPolicy::Deny);
    assert_eq!(name(m.identify("social", "POST", &path("/api/v1/statuses"))), "post");
    assert_eq!(name(m.identify("social", "post", &path("/api/v1/statuses/"))), "post");
    assert_eq!(name(m.identify("social", "GET", &path("/api/v1/statuses"))), "denied");
    assert_eq!(name(m.identify("social", "GET", &path("/api/v1/statuses/123"))), "read");
    assert_eq!(name(m.identify("social", "GET", &path("/api/v1/statuses/123/extra"))), "denied");
    assert_eq!(name(m.identify("social", "PUT", &path("/api/v2/media/a/b/c"))), "media");
    assert_eq!(name(m.identify("social", "PUT", &path("/api/v2/media"))), "media");
    assert_eq!(name(m.identify("other", "POST", &path("/api/v1/statuses"))), "denied");
}

/// The matcher reads decoded segments, as the upstream does: an escaped
/// spelling of a limited tool's path is that tool, not an unmatched call.
#[test]
fn escaped_spellings_name_the_same_tool() {
    let m = matcher(UnmatchedPolicy::AllowGet);
    assert_eq!(name(m.identify("social", "POST", &path("/api/v1/%73tatuses"))), "post");
    assert_eq!(name(m.identify("social", "GET", &path("/api/v1/statuses/%31%32"))), "read");
    let spaced = ToolMatcher::new(&[tool("spaced", "GET", "/a%20b")], UnmatchedPolicy::Deny);
    assert_eq!(name(spaced.identify("social", "GET", &path("/a b"))), "spaced");
    assert_eq!(name(spaced.identify("social", "GET", &path("/a%20b"))), "spaced");
}

#[test]
fn allow_get_lets_only_reads_through() {
    let m = matcher(UnmatchedPolicy::AllowGet);
    assert_eq!(name(m.identify("social", "GET", &path("/anything"))), "allowed");
    assert_eq!(name(m.identify("social", "HEAD", &path("/anything"))), "allowed");
    assert_eq!(name(m.identify("social", "DELETE", &path("/anything"))), "denied");
}

#[test]
fn loop_key_ignores_json_key_order_and_whitespace() {
    let a = loop_key("post", "POST", "/s", None, br#"{"a":1, "b":[1,2]}"#);
    let b = loop_key("post", "POST", "/s", None, br#"{"b":[1,2],"a":1}"#);
    let c = loop_key("post", "POST", "/s", None, br#"{"b":[2,1],"a":1}"#);
    let d = loop_key("post", "POST", "/s", Some("x=1"), br#"{"b":[1,2],"a":1}"#);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, d);
    // Length-prefixing keeps field boundaries: ("ab","c") is not ("a","bc").
    assert_ne!(loop_key("ab", "c", "/", None, b""), loop_key("a", "bc", "/", None, b""));
}

#[test]
fn summary_redacts_truncates_and_stays_on_one_line() {
    let redactor = redact::RedactorBuilder::new().secret("t", "canary-token-123").build();
    let body = format!(r#"{{"status":"hello\nworld canary-token-123 {}"}}"#, "x".repeat(500));
    let summary = input_summary(&redactor, body.as_bytes());
    assert!(!summary.contains("canary-token-123"));
    assert!(summary.contains("[REDACTED:"));
    assert!(!summary.contains('\n'));
    assert!(summary.ends_with('…'));
    assert_eq!(summary.chars().count(), SUMMARY_MAX_CHARS + 1);
    assert_eq!(input_summary(&redactor, &[0xff, 0xfe, 0x00]), "<3 bytes binary>");
    assert_eq!(input_summary(&redactor, b""), "");
}

#[test]
fn mcp_tool_globs() {
    use super::glob_matches;
    assert!(glob_matches("create_post", "create_post"));
    assert!(!glob_matches("create_post", "create_posts"));
    assert!(glob_matches("calendar_*", "calendar_"));
    assert!(glob_matches("calendar_*", "calendar_create"));
    assert!(!glob_matches("calendar_*", "calendar"));
    assert!(glob_matches("*_post", "delete_post"));
    assert!(glob_matches("a*b*c", "aXXbYYbc"));
    assert!(glob_matches("get_?", "get_x"));
    assert!(!glob_matches("get_?", "get_xy"));
    assert!(glob_matches("*", "anything"));
}

#[test]
fn mcp_tools_match_by_server_and_name_and_unmatched_follows_the_policy() {
    let mut post = tool("post", "*", "create_post");
    post.door = crate::config::ToolDoor::Mcp;
    post.upstream = "social".to_owned();
    let matcher = ToolMatcher::new(std::slice::from_ref(&post), UnmatchedPolicy::Deny);
    assert!(matches!(matcher.identify_mcp("social", "create_post", false), Identified::Tool(t) if t.name == "post"));
    assert!(matches!(matcher.identify_mcp("other", "create_post", false), Identified::UnmatchedDenied));
    assert!(matches!(matcher.identify_mcp("social", "read_post", true), Identified::UnmatchedDenied));
    // An MCP tool never names an /api call of an upstream of the same name.
    let path = CanonicalPath::parse("/create_post").unwrap();
    assert!(matches!(matcher.identify("social", "POST", &path), Identified::UnmatchedDenied));
    let matcher = ToolMatcher::new(std::slice::from_ref(&post), UnmatchedPolicy::AllowGet);
    assert!(matches!(matcher.identify_mcp("social", "read_post", true), Identified::UnmatchedAllowed));
    assert!(matches!(matcher.identify_mcp("social", "delete_post", false), Identified::UnmatchedDenied));
}
