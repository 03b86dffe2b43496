//! Unit tests: each refused form, the forms that pass, and the URL built upstream.

use super::*;

fn path(raw: &str) -> CanonicalPath {
    CanonicalPath::parse(raw).unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
}

fn problem(raw: &str) -> Problem {
    match CanonicalPath::parse(raw) {
        Ok(p) => panic!("{raw:?} accepted as {:?}", p.segments()),
        Err(e) => e.problem(),
    }
}

fn base(url: &str) -> Url {
    Url::parse(url).unwrap()
}

#[test]
fn the_reproductions_are_refused() {
    // The REST and LLM reproductions.
    assert_eq!(problem("/echo/..\\api\\v1\\statuses"), Problem::Backslash);
    assert_eq!(problem("/v1/x\\..\\chat\\completions"), Problem::Backslash);
}

#[test]
fn every_ambiguous_form_is_refused_with_its_own_problem() {
    for (raw, expected) in [
        ("/a\\b", Problem::Backslash),
        ("/a%5Cb", Problem::Backslash),
        ("/a%5cb", Problem::Backslash),
        ("/a%2Fb", Problem::EncodedSlash),
        ("/a%2fb", Problem::EncodedSlash),
        ("/%2e%2e/admin", Problem::EncodedDot),
        ("/file%2Ejson", Problem::EncodedDot),
        ("/%252F", Problem::EncodedPercent),
        ("/%25", Problem::EncodedPercent),
        ("/a%", Problem::MalformedEscape),
        ("/a%4", Problem::MalformedEscape),
        ("/a%zz", Problem::MalformedEscape),
        ("/.", Problem::DotSegment),
        ("/a/../b", Problem::DotSegment),
        ("/a/./b", Problem::DotSegment),
        ("//a", Problem::EmptySegment),
        ("/a//b", Problem::EmptySegment),
        ("/a//", Problem::EmptySegment),
        ("/echo/..;/api", Problem::Semicolon),
        ("/a;x=1", Problem::Semicolon),
        ("/a%3Bx", Problem::Semicolon),
        ("/a%00b", Problem::ControlCharacter),
        ("/a%0Ab", Problem::ControlCharacter),
        ("/a%0d%0aHost:x", Problem::ControlCharacter),
        ("/a%7F", Problem::ControlCharacter),
        ("/a%C2%85", Problem::ControlCharacter),
        ("/a%FF", Problem::NotUtf8),
        ("/%C0%AE%C0%AE", Problem::NotUtf8),
        ("/%E0%80%AF", Problem::NotUtf8),
        ("/a\u{FF0F}b", Problem::CompatibilityForm),
        ("/a%EF%BC%8Fb", Problem::CompatibilityForm),
        ("/\u{FF0E}\u{FF0E}", Problem::CompatibilityForm),
        ("/\u{2025}", Problem::CompatibilityForm),
        ("/a\u{FF3C}b", Problem::CompatibilityForm),
        ("/\u{FE52}", Problem::CompatibilityForm),
    ] {
        assert_eq!(problem(raw), expected, "{raw:?}");
    }
}

#[test]
fn ordinary_paths_are_decoded_and_rendered_as_url_sends_them() {
    let p = path("/api/v1/statuses");
    assert_eq!(p.segments(), ["api", "v1", "statuses"]);
    assert!(!p.has_trailing_slash());
    assert_eq!(p.as_str(), "/api/v1/statuses");

    let p = path("/api/v1/%73tatuses/");
    assert_eq!(p.segments(), ["api", "v1", "statuses"]);
    assert!(p.has_trailing_slash());
    assert_eq!(p.as_str(), "/api/v1/statuses/");

    let p = path("/a%20b/%C3%A9/caf\u{e9}/x:batchGet/{id}/q%3Fx/h%23y/file.json/v1.2");
    assert_eq!(p.segments(), ["a b", "é", "café", "x:batchGet", "{id}", "q?x", "h#y", "file.json", "v1.2"]);
    assert_eq!(p.as_str(), "/a%20b/%C3%A9/caf%C3%A9/x:batchGet/%7Bid%7D/q%3Fx/h%23y/file.json/v1.2");

    // A fullwidth letter normalizes to a letter: nothing structural, kept as sent.
    assert_eq!(path("/\u{FF41}").segments(), ["\u{FF41}"]);
    assert_eq!(path("/...").segments(), ["..."]);
}

#[test]
fn the_root_is_one_slash() {
    for raw in ["", "/"] {
        let p = path(raw);
        assert!(p.segments().is_empty());
        assert!(p.has_trailing_slash());
        assert_eq!(p.as_str(), "/");
        assert_eq!(p, CanonicalPath::root());
    }
}

#[test]
fn the_url_is_built_segment_by_segment_under_the_base_path() {
    let cases = [
        ("http://127.0.0.1:9/base", "/api/v1/statuses", "/base/api/v1/statuses"),
        ("http://127.0.0.1:9/base/", "/api/v1/statuses", "/base/api/v1/statuses"),
        ("http://127.0.0.1:9", "/api/v1/statuses", "/api/v1/statuses"),
        ("http://127.0.0.1:9/", "/a/", "/a/"),
        ("http://127.0.0.1:9/base", "/", "/base/"),
        ("http://127.0.0.1:9", "/", "/"),
        ("https://h/x/y", "/q%3Fx/h%23y/%7B", "/x/y/q%3Fx/h%23y/%7B"),
    ];
    for (b, raw, expected) in cases {
        let p = path(raw);
        let url = p.join_onto(&base(b)).unwrap();
        assert_eq!(url.path(), expected, "{b} + {raw}");
        assert_eq!(format!("{}{}", base(b).path().trim_end_matches('/'), p.as_str()), expected);
        assert_eq!(url.query(), None);
    }
}

#[test]
fn a_target_names_its_upstream_then_path_then_query() {
    let t = RequestTarget::parse("social/api/v1/statuses", Some("limit=5&x=%22")).unwrap();
    assert_eq!(t.upstream, "social");
    assert_eq!(t.path.segments(), ["api", "v1", "statuses"]);
    assert_eq!(t.query.as_ref().map(CanonicalQuery::as_str), Some("limit=5&x=%22"));
    let url = t.url_on(&base("http://127.0.0.1:9/base")).unwrap();
    assert_eq!(url.as_str(), "http://127.0.0.1:9/base/api/v1/statuses?limit=5&x=%22");

    let t = RequestTarget::parse("social", Some("")).unwrap();
    assert_eq!(t.path, CanonicalPath::root());
    assert_eq!(t.query, None, "a bare ? is not forwarded");

    assert_eq!(RequestTarget::parse("", None).unwrap_err().problem(), Problem::MissingUpstream);
    assert_eq!(RequestTarget::parse("/x", None).unwrap_err().problem(), Problem::MissingUpstream);
    assert_eq!(RequestTarget::parse("soc%2Fial/x", None).unwrap_err().problem(), Problem::EncodedSlash);
    assert_eq!(RequestTarget::parse("soc%69al/x", None).unwrap().upstream, "social");
}

#[test]
fn the_query_is_encoded_as_url_would_encode_it() {
    let q = CanonicalQuery::new("a='x'&b=\"y\"&c=\u{e9}&d=%41+b").unwrap();
    assert_eq!(q.as_str(), "a=%27x%27&b=%22y%22&c=%C3%A9&d=%41+b");
    let mut url = base("http://h/p");
    url.set_query(Some(q.as_str()));
    assert_eq!(url.query(), Some(q.as_str()), "url re-encodes nothing");
}

#[test]
fn query_pairs_are_removed_by_their_value_in_any_percent_encoding() {
    let token = "stw_0123abcd";
    let is_token = |text: &str| text.contains(token);
    for raw in [
        "access_token=stw_0123abcd",
        "access_token=%73tw_0123abcd",
        "access_token=stw%5F0123abcd",
        "access_token=%2573tw_0123abcd",
        "access_token=Bearer+stw_0123abcd",
        "x=1;access_token=stw_0123abcd",
        "stw_0123abcd",
    ] {
        let q = CanonicalQuery::new(&format!("a=1&{raw}&b=2")).unwrap();
        let (rest, dropped) = q.remove_pairs(is_token);
        assert_eq!(dropped, 1, "{raw}");
        assert_eq!(rest.as_ref().map(CanonicalQuery::as_str), Some("a=1&b=2"), "{raw}");
    }
    let only = CanonicalQuery::new("token=stw_0123abcd").unwrap();
    assert_eq!(only.remove_pairs(is_token), (None, 1));
    let clean = CanonicalQuery::new("a=stw_other").unwrap();
    assert_eq!(clean.remove_pairs(is_token), (Some(clean.clone()), 0));
}

#[test]
fn errors_name_the_segment_and_the_fix_without_echoing_more_than_a_line() {
    let err = CanonicalPath::parse("/echo/..\\api").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("`..\\\\api`"), "{text}");
    assert!(text.contains("send no `\\`"), "{text}");
    let long = format!("/{}%2F", "a".repeat(500));
    let text = CanonicalPath::parse(&long).unwrap_err().to_string();
    assert!(text.len() < 400, "{text}");
    let text = CanonicalPath::parse("/a%0Ab").unwrap_err().to_string();
    assert!(!text.contains('\n'));
}
