use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

fn body_digest(body: &[u8]) -> String {
    digest("post", "social", "POST", "/api/v1/statuses", Some("a=1"), body, "v1")
}

#[test]
fn every_field_of_the_call_is_bound() {
    let base = digest("post", "social", "POST", "/s", Some("a=1"), b"{}", "v1");
    assert_eq!(base, digest("post", "social", "POST", "/s", Some("a=1"), b"{ }", "v1"));
    for other in [
        digest("put", "social", "POST", "/s", Some("a=1"), b"{}", "v1"),
        digest("post", "social2", "POST", "/s", Some("a=1"), b"{}", "v1"),
        digest("post", "social", "PUT", "/s", Some("a=1"), b"{}", "v1"),
        digest("post", "social", "POST", "/t", Some("a=1"), b"{}", "v1"),
        digest("post", "social", "POST", "/s", Some("a=2"), b"{}", "v1"),
        digest("post", "social", "POST", "/s", None, b"{}", "v1"),
        digest("post", "social", "POST", "/s", Some("a=1"), b"[]", "v1"),
        digest("post", "social", "POST", "/s", Some("a=1"), b"{}", "v2"),
        // Fields do not run into each other.
        digest("pos", "tsocial", "POST", "/s", Some("a=1"), b"{}", "v1"),
    ] {
        assert_ne!(base, other);
    }
}

#[test]
fn numbers_a_double_cannot_hold_keep_their_bytes() {
    let a = body_digest(br#"{"id": 12345678901234567890123}"#);
    let b = body_digest(br#"{"id": 12345678901234567890124}"#);
    assert_ne!(a, b);
    // Short numbers are canonical: 1.0 and 1 are the same JSON number.
    assert_eq!(body_digest(br#"{"n": 1.0}"#), body_digest(br#"{"n":1}"#));
    // Digits inside strings do not count.
    assert!(!has_long_number(br#"{"s": "12345678901234567890"}"#));
}

#[test]
fn non_json_bodies_are_bound_byte_for_byte() {
    assert_ne!(body_digest(b"status=hello"), body_digest(b"status=hello "));
    assert_eq!(body_digest(b"status=hello"), body_digest(b"status=hello"));
}

#[test]
fn the_approver_sees_the_body_redacted() {
    let redactor = redact::RedactorBuilder::new().secret("token", "canary-9f2e1d").build();
    let shown = redacted_body(&redactor, br#"{"status": "token canary-9f2e1d here"}"#);
    assert!(!shown.contains("canary-9f2e1d"), "{shown}");
    assert!(shown.contains("status"), "{shown}");
    assert_eq!(redacted_body(&redactor, &[0xff, 0xfe]), "<2 bytes of binary data>");
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        "[a-z0-9 ]{0,8}".prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    let value = leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map("[a-z]{1,4}", value, 1..6).prop_map(|m| m.into_iter().collect())
}

/// `value` written with its object keys in reverse order and extra whitespace.
fn rewritten(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> =
                map.iter().rev().map(|(k, v)| format!("\n  {} :\t{}", Value::from(k.as_str()), rewritten(v))).collect();
            format!("{{ {} }}", fields.join(" ,"))
        }
        Value::Array(items) => format!("[ {} ]", items.iter().map(rewritten).collect::<Vec<_>>().join(" , ")),
        other => other.to_string(),
    }
}

/// Every path to a leaf of `value`.
fn leaves(value: &Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| leaves(v, [path.clone(), vec![k.clone()]].concat(), out)),
        Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| leaves(v, [path.clone(), vec![i.to_string()]].concat(), out));
        }
        _ => out.push(path),
    }
}

fn leaf_at<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |v, key| match v {
        Value::Object(map) => map.get_mut(key).unwrap(),
        Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
        _ => unreachable!(),
    })
}

proptest! {
    #[test]
    fn key_order_and_whitespace_do_not_matter(map in object()) {
        let value = Value::Object(map);
        let compact = serde_json::to_vec(&value).unwrap();
        prop_assert_eq!(body_digest(&compact), body_digest(rewritten(&value).as_bytes()));
    }

    #[test]
    fn any_value_change_does(map in object(), pick in any::<prop::sample::Index>()) {
        let value = Value::Object(map);
        let mut paths = Vec::new();
        leaves(&value, Vec::new(), &mut paths);
        prop_assume!(!paths.is_empty());
        let path = &paths[pick.index(paths.len())];
        let mut changed = value.clone();
        let target = leaf_at(&mut changed, path);
        *target = match target {
            Value::String(s) => Value::from(format!("{s}x")),
            Value::Number(n) => Value::from(n.as_i64().unwrap_or(0).wrapping_add(1)),
            Value::Bool(b) => Value::from(!*b),
            _ => Value::from(0),
        };
        let original = serde_json::to_vec(&value).unwrap();
        prop_assert_ne!(body_digest(&original), body_digest(&serde_json::to_vec(&changed).unwrap()));
    }
}
