//! The top-level members of a JSON object and where their values sit in the
//! bytes, so a request can be edited by splicing (add a key, replace one
//! value) while every other byte stays exactly as the client sent it.
//!
//! Re-serializing a parsed `serde_json::Value` would reorder keys, reformat
//! numbers and lose precision on integers beyond 2^53; splicing does none of
//! that. The scanner only runs on text `serde_json` has already accepted, so
//! it skips strings and nested values without validating them again.

use std::ops::Range;

/// One `"key": value` pair of the top-level object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member {
    /// The key, JSON escapes decoded.
    pub key: String,
    /// The value's bytes, from its first to its last character.
    pub value: Range<usize>,
}

/// The members of the object `body` holds, in order, and the offset just
/// after its opening `{` (where a new member can be inserted). `None` when
/// `body` is not an object; callers check it is valid JSON first.
pub(super) fn top_level_members(body: &[u8]) -> Option<(usize, Vec<Member>)> {
    let mut i = skip_whitespace(body, 0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    let inside = i + 1;
    i = inside;
    let mut members = Vec::new();
    loop {
        i = skip_whitespace(body, i);
        match body.get(i)? {
            b'}' => return Some((inside, members)),
            b',' => i += 1,
            b'"' => {
                let key_end = skip_string(body, i)?;
                let key: String = serde_json::from_slice(body.get(i..key_end)?).ok()?;
                i = skip_whitespace(body, key_end);
                if body.get(i) != Some(&b':') {
                    return None;
                }
                let start = skip_whitespace(body, i + 1);
                let end = skip_value(body, start)?;
                members.push(Member { key, value: start..end });
                i = end;
            }
            _ => return None,
        }
    }
}

/// The first offset at or after `i` that is not JSON whitespace.
fn skip_whitespace(body: &[u8], mut i: usize) -> usize {
    while matches!(body.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `body[i]` opens a string; the offset after its closing quote.
fn skip_string(body: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match body.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// `body[i]` starts a value; the offset after it.
fn skip_value(body: &[u8], i: usize) -> Option<usize> {
    match body.get(i)? {
        b'"' => skip_string(body, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match body.get(j)? {
                    b'"' => {
                        j = skip_string(body, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while !matches!(body.get(j), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                j += 1;
            }
            Some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(text: &str) -> Vec<(String, String)> {
        let (_, members) = top_level_members(text.as_bytes()).unwrap();
        members.into_iter().map(|m| (m.key, text[m.value].to_owned())).collect()
    }

    #[test]
    fn finds_every_top_level_value_exactly() {
        let text = r#" { "model" : "gpt-4o" ,"n":2, "stream":true,"x":null,
            "messages":[{"role":"user","content":"a \"}\" b ]"}],
            "o":{"a":[1,{"b":"}"}]},"f":-1.5e3,"k\"ey":"v\\"}"#;
        assert_eq!(
            members(text),
            vec![
                ("model".into(), "\"gpt-4o\"".into()),
                ("n".into(), "2".into()),
                ("stream".into(), "true".into()),
                ("x".into(), "null".into()),
                ("messages".into(), r#"[{"role":"user","content":"a \"}\" b ]"}]"#.into()),
                ("o".into(), r#"{"a":[1,{"b":"}"}]}"#.into()),
                ("f".into(), "-1.5e3".into()),
                ("k\"ey".into(), "\"v\\\\\"".into()),
            ]
        );
        let (inside, _) = top_level_members(text.as_bytes()).unwrap();
        assert_eq!(&text[..inside], " {");
    }

    #[test]
    fn escaped_keys_are_decoded() {
        assert_eq!(members(r#"{"mod\u0065l":"m"}"#), vec![("model".into(), "\"m\"".into())]);
    }

    #[test]
    fn empty_objects_and_non_objects() {
        assert_eq!(top_level_members(b"{}"), Some((1, Vec::new())));
        assert_eq!(top_level_members(b" \n{ }"), Some((3, Vec::new())));
        assert_eq!(top_level_members(b"[]"), None);
        assert_eq!(top_level_members(b"\"x\""), None);
        assert_eq!(top_level_members(b""), None);
        // Truncated input (never passed in practice) ends the scan, not a panic.
        assert_eq!(top_level_members(b"{\"a\":[1,2"), None);
        assert_eq!(top_level_members(b"{\"a\":\"x"), None);
        assert_eq!(top_level_members(b"{\"a\""), None);
    }
}
