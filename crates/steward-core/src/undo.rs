//! Resolving a tool's declared undo ([`crate::config::UndoCall`]) against one
//! released call: the concrete undo call (method, path, query, body) steward
//! journals with the original, or the reason there is none.
//!
//! Pure and synchronous: the pipeline calls [`resolve`] while it records a
//! call (before the agent sees the end of the response), and the store
//! keeps what it returns. Running the undo is the pipeline's job
//! (`pipeline::undo`); the template grammar is `config::undo`'s.
//!
//! **A value never changes the shape of the call.** Every value substituted
//! into the path fills (part of) one segment and is percent-encoded; a
//! value holding `/` or `\`, a `%`, or that is empty, `.` or `..` makes the
//! plan unavailable instead, and the finished path must read back through
//! [`CanonicalPath::parse`] unchanged (the one reading of a path the
//! gateway uses). Query values are percent-encoded as one value, so they
//! cannot add `&` pairs or a `#`.

use canonical_path::{CanonicalPath, CanonicalQuery};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::config::UndoCall;
use crate::config::undo::{Piece, Placeholder, Step, Template};

/// Largest 2xx response body read to resolve a template: creation answers
/// are small; a larger one makes the plan unavailable (the reason says so)
/// rather than holding megabytes per call.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Percent-encoded in a substituted path value: everything but the
/// unreserved characters of RFC 3986.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The concrete undo of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUndo {
    /// The tool the undo is a call of.
    pub tool: String,
    /// HTTP method.
    pub method: String,
    /// Canonical path below the upstream, `?query` included when there is one.
    pub path: String,
    /// The JSON body, if the undo sends one.
    pub body: Option<String>,
}

/// What a template is filled from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The upstream's 2xx answer, parsed as JSON (`None`: not JSON).
    pub response: Option<&'a Value>,
    /// The agent's request body, parsed as JSON (`None`: not JSON).
    pub request: Option<&'a Value>,
    /// The tool's `match` pattern (for `{path.<param>}`).
    pub pattern: &'a str,
    /// The call's decoded path segments.
    pub segments: &'a [String],
}

/// The undo of a call of `tool` made with `inputs`, or why there is none
/// (one sentence, for `steward last` and the dry run).
pub fn resolve(undo: &UndoCall, inputs: Inputs<'_>) -> Result<ResolvedUndo, String> {
    let mut path = String::new();
    for piece in &undo.path.pieces {
        match piece {
            Piece::Text(text) => path.push_str(text),
            Piece::Field(field) => {
                let value = scalar(field, lookup(field, inputs)?)?;
                if value.is_empty() || value == "." || value == ".." || value.contains(['/', '\\', '%']) {
                    return Err(format!("{field} is {value:?}, which cannot be one path segment"));
                }
                path.extend(utf8_percent_encode(&value, VALUE));
            }
        }
    }
    let canonical = CanonicalPath::parse(&path).map_err(|e| format!("the undo path {path:?} is refused: {e}"))?;
    let mut target = canonical.as_str().to_owned();
    if let Some(query) = &undo.query {
        let mut text = String::new();
        for piece in &query.pieces {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Field(field) => {
                    text.extend(utf8_percent_encode(&scalar(field, lookup(field, inputs)?)?, NON_ALPHANUMERIC));
                }
            }
        }
        if let Some(query) = CanonicalQuery::new(&text) {
            target.push('?');
            target.push_str(query.as_str());
        }
    }
    let body = match &undo.body {
        Some(template) => Some(fill_body(template, inputs)?.to_string()),
        None => None,
    };
    Ok(ResolvedUndo { tool: undo.tool.clone(), method: undo.method.clone(), path: target, body })
}

/// The value of `field` in `inputs`.
fn lookup<'a>(field: &Placeholder, inputs: Inputs<'a>) -> Result<Value, String> {
    let (root, steps, what) = match field {
        Placeholder::Response(steps) => (inputs.response, steps, "the response is not JSON"),
        Placeholder::Request(steps) => (inputs.request, steps, "the request body is not JSON"),
        Placeholder::Path(name) => return path_param(inputs.pattern, inputs.segments, name).map(Value::String),
    };
    let mut value = root.ok_or_else(|| format!("{field}: {what}"))?;
    for step in steps {
        let next = match step {
            Step::Key(key) => value.get(key.as_str()),
            Step::Index(i) => value.get(*i),
        };
        value = next.ok_or_else(|| format!("{field} is missing: the {} has no such field", source(field)))?;
    }
    if value.is_null() {
        return Err(format!("{field} is null in the {}", source(field)));
    }
    Ok(value.clone())
}

fn source(field: &Placeholder) -> &'static str {
    match field {
        Placeholder::Response(_) => "response",
        Placeholder::Request(_) => "request",
        Placeholder::Path(_) => "path",
    }
}

/// A value as text: strings as they are, numbers and booleans written out.
fn scalar(field: &Placeholder, value: Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("{field} is an object or a list, not a value")),
    }
}

/// `{name}` (or the rest, for `{*name}`) of `pattern` in the call's segments.
fn path_param(pattern: &str, segments: &[String], name: &str) -> Result<String, String> {
    let parts: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == format!("{{{name}}}") {
            return segments.get(i).cloned().ok_or_else(|| format!("{{path.{name}}} is not in the call's path"));
        }
        if *part == format!("{{*{name}}}") {
            return Ok(segments.get(i..).unwrap_or_default().join("/"));
        }
    }
    Err(format!("{{path.{name}}} names no parameter of the tool's match"))
}

fn fill_body(template: &Value, inputs: Inputs<'_>) -> Result<Value, String> {
    Ok(match template {
        Value::String(text) => {
            let parsed = Template::parse(text).map_err(|e| format!("body {text:?}: {e}"))?;
            if let Some(field) = parsed.sole_placeholder() {
                lookup(field, inputs)?
            } else {
                let mut out = String::new();
                for piece in &parsed.pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Field(field) => out.push_str(&scalar(field, lookup(field, inputs)?)?),
                    }
                }
                Value::String(out)
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_body(v, inputs)).collect::<Result<_, _>>()?),
        Value::Object(members) => Value::Object(
            members.iter().map(|(k, v)| Ok((k.clone(), fill_body(v, inputs)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(path: &str, query: Option<&str>, body: Option<Value>) -> UndoCall {
        UndoCall {
            tool: "delete_status".into(),
            method: "DELETE".into(),
            path: Template::parse(path).unwrap(),
            query: query.map(|q| Template::parse(q).unwrap()),
            body,
        }
    }

    fn inputs<'a>(response: &'a Value, request: &'a Value, segments: &'a [String]) -> Inputs<'a> {
        Inputs { response: Some(response), request: Some(request), pattern: "/accounts/{acct}/statuses", segments }
    }

    #[test]
    fn a_template_is_filled_from_the_response_the_request_and_the_path() {
        let segments = ["accounts".to_owned(), "ana".to_owned(), "statuses".to_owned()];
        let response = json!({"id": "109", "n": 7, "list": [{"id": "x y"}]});
        let request = json!({"status": "hi", "to": "bo"});
        let undo = call(
            "/s/{response.id}/{path.acct}/{response.list.0.id}",
            Some("to={request.to}&n={response.n}"),
            Some(json!({"id": "{response.n}", "note": "undo of {response.id}"})),
        );
        let resolved = resolve(&undo, inputs(&response, &request, &segments)).unwrap();
        assert_eq!(resolved.path, "/s/109/ana/x%20y?to=bo&n=7");
        assert_eq!(resolved.method, "DELETE");
        assert_eq!(
            serde_json::from_str::<Value>(&resolved.body.unwrap()).unwrap(),
            json!({"id": 7, "note": "undo of 109"})
        );
    }

    #[test]
    fn a_value_cannot_change_the_shape_of_the_path_or_the_query() {
        let segments: Vec<String> = Vec::new();
        for bad in ["../admin", "..", ".", "", "a/b", "a\\b", "%2e%2e", "a%2Fb"] {
            let response = json!({ "id": bad });
            let err = resolve(&call("/s/{response.id}", None, None), inputs(&response, &json!({}), &segments));
            assert!(err.is_err(), "{bad:?} gave {err:?}");
        }
        let response = json!({"id": "1?x=2#f"});
        let resolved =
            resolve(&call("/s/{response.id}", None, None), inputs(&response, &json!({}), &segments)).unwrap();
        assert_eq!(resolved.path, "/s/1%3Fx=2%23f");
        let response = json!({"id": "1&admin=true"});
        let resolved =
            resolve(&call("/s", Some("id={response.id}"), None), inputs(&response, &json!({}), &segments)).unwrap();
        assert_eq!(resolved.path, "/s?id=1%26admin%3Dtrue");
    }

    #[test]
    fn a_missing_or_unusable_field_says_which() {
        let segments: Vec<String> = Vec::new();
        let undo = call("/s/{response.id}", None, None);
        let err = resolve(&undo, inputs(&json!({"uri": "x"}), &json!({}), &segments)).unwrap_err();
        assert_eq!(err, "{response.id} is missing: the response has no such field");
        let err = resolve(&undo, inputs(&json!({"id": null}), &json!({}), &segments)).unwrap_err();
        assert!(err.contains("null"), "{err}");
        let err = resolve(&undo, inputs(&json!({"id": {"a": 1}}), &json!({}), &segments)).unwrap_err();
        assert!(err.contains("not a value"), "{err}");
        let none = Inputs { response: None, request: None, pattern: "/", segments: &segments };
        assert_eq!(resolve(&undo, none).unwrap_err(), "{response.id}: the response is not JSON");
    }
}
