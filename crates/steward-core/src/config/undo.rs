//! The `undo = { ... }` of a `[[tools]]` entry: its validated shape
//! ([`UndoSpec`]) and the grammar of its templates ([`Template`]).
//!
//! A tool declares how to undo one of its calls as a call of another
//! declared tool on the same upstream, filled from the original call:
//!
//! ```toml
//! undo = { tool = "delete_status", path = "/api/v1/statuses/{response.id}" }
//! undo = { none = "a sent e-mail cannot be recalled" }
//! ```
//!
//! Placeholders: `{response.<json path>}` (the upstream's 2xx JSON answer),
//! `{request.<json path>}` (the JSON body the agent sent), `{path.<param>}`
//! (a `{param}` segment of the tool's own `match` pattern). A JSON path is
//! dot-separated object keys and array indexes (`{response.data.0.id}`).
//! `{{` and `}}` are literal braces. Only the grammar lives here; filling a
//! template from a call is `crate::undo`'s job, and the checks that need the
//! other tools (the undo tool exists, same upstream, known path params) are
//! the validator's.

/// What a tool declares about undoing its calls.
#[derive(Debug, Clone, PartialEq)]
pub enum UndoSpec {
    /// `undo = { none = "why" }`: the tool's calls cannot be undone, and the
    /// operator said why (the runbook and `steward doctor` repeat it).
    Declined {
        /// The operator's reason.
        reason: String,
    },
    /// The undo is a call of another tool.
    Call(UndoCall),
}

/// The undo of a tool's call: a call of `tool`, built from the templates.
#[derive(Debug, Clone, PartialEq)]
pub struct UndoCall {
    /// The `[[tools]]` name the undo is a call of (same upstream).
    pub tool: String,
    /// The HTTP method: `method`, or the undo tool's own when it names one.
    pub method: String,
    /// The path below the upstream; each placeholder fills one segment (or
    /// part of one) and is percent-encoded, so a value cannot add segments.
    pub path: Template,
    /// The query string (without `?`); each value is percent-encoded.
    pub query: Option<Template>,
    /// A JSON body whose string leaves are templates; a leaf that is exactly
    /// one placeholder takes the value's JSON type (a number stays a number).
    pub body: Option<serde_json::Value>,
}

/// A parsed template: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// As written in the config (for the runbook and `--dry-run`).
    pub text: String,
    /// The pieces, in order.
    pub pieces: Vec<Piece>,
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text (braces already unescaped).
    Text(String),
    /// A value from the original call.
    Field(Placeholder),
}

/// Where a placeholder's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `{response.<json path>}`: the upstream's JSON answer.
    Response(Vec<Step>),
    /// `{request.<json path>}`: the JSON body the agent sent.
    Request(Vec<Step>),
    /// `{path.<param>}`: a `{param}` segment of the tool's `match` pattern.
    Path(String),
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element (a step of digits only).
    Index(usize),
}

impl std::fmt::Display for Placeholder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (source, steps) = match self {
            Placeholder::Response(steps) => ("response", steps),
            Placeholder::Request(steps) => ("request", steps),
            Placeholder::Path(name) => return write!(f, "{{path.{name}}}"),
        };
        write!(f, "{{{source}")?;
        for step in steps {
            match step {
                Step::Key(key) => write!(f, ".{key}")?,
                Step::Index(i) => write!(f, ".{i}")?,
            }
        }
        f.write_str("}")
    }
}

/// The help every template error ends with.
pub(super) const PLACEHOLDER_HELP: &str = "placeholders are {response.<json path>}, {request.<json path>} or \
     {path.<param>}, like \"/api/v1/statuses/{response.id}\"; write {{ and }} for literal braces";

impl Template {
    /// Parses `text`; the error says what is wrong (see [`PLACEHOLDER_HELP`]).
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().is_some_and(|(_, n)| *n == '}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(format!("a lone }} at byte {at}")),
                '{' => {
                    let rest = &text[at + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(format!("the {{ at byte {at} is never closed"));
                    };
                    let inner = &rest[..end];
                    let placeholder = parse_placeholder(inner)?;
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Field(placeholder));
                    // Skip the placeholder's characters and its `}`.
                    while chars.next_if(|(i, _)| *i <= at + 1 + end).is_some() {}
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { text: text.to_owned(), pieces })
    }

    /// The placeholders, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Field(field) => Some(field),
            Piece::Text(_) => None,
        })
    }

    /// The one placeholder this template is made of, if it is nothing else.
    pub fn sole_placeholder(&self) -> Option<&Placeholder> {
        match self.pieces.as_slice() {
            [Piece::Field(field)] => Some(field),
            _ => None,
        }
    }
}

fn parse_placeholder(inner: &str) -> Result<Placeholder, String> {
    let (source, path) = inner.split_once('.').ok_or_else(|| format!("placeholder {{{inner}}} has no source"))?;
    let steps = path
        .split('.')
        .map(|step| {
            if step.is_empty() {
                return Err(format!("placeholder {{{inner}}} has an empty step (..)"));
            }
            if !step.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '@' | '$')) {
                return Err(format!(
                    "placeholder {{{inner}}}: step {step:?} has characters other than a-z A-Z 0-9 _ - @ $"
                ));
            }
            Ok(match step.parse::<usize>() {
                Ok(i) if step.chars().all(|c| c.is_ascii_digit()) => Step::Index(i),
                _ => Step::Key(step.to_owned()),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    match source {
        "response" => Ok(Placeholder::Response(steps)),
        "request" => Ok(Placeholder::Request(steps)),
        "path" => match steps.as_slice() {
            [Step::Key(name)] => Ok(Placeholder::Path(name.clone())),
            _ => Err(format!("placeholder {{{inner}}}: {{path.<param>}} names one {{param}} of the tool's match")),
        },
        other => Err(format!("placeholder {{{inner}}}: unknown source {other:?}")),
    }
}

/// The string leaves of a body template, parsed; the error names the leaf.
pub(super) fn body_templates(body: &serde_json::Value) -> Result<Vec<Template>, String> {
    let mut out = Vec::new();
    walk(body, &mut out)?;
    Ok(out)
}

fn walk(value: &serde_json::Value, out: &mut Vec<Template>) -> Result<(), String> {
    match value {
        serde_json::Value::String(text) => out.push(Template::parse(text).map_err(|e| format!("body {text:?}: {e}"))?),
        serde_json::Value::Array(items) => items.iter().try_for_each(|v| walk(v, out))?,
        serde_json::Value::Object(members) => members.values().try_for_each(|v| walk(v, out))?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_literals_parse_in_order() {
        let t = Template::parse("/api/v1/statuses/{response.id}/x{{y}}").unwrap();
        assert_eq!(
            t.pieces,
            vec![
                Piece::Text("/api/v1/statuses/".into()),
                Piece::Field(Placeholder::Response(vec![Step::Key("id".into())])),
                Piece::Text("/x{y}".into()),
            ]
        );
        let t = Template::parse("{request.items.0.id}").unwrap();
        assert_eq!(
            t.sole_placeholder(),
            Some(&Placeholder::Request(vec![Step::Key("items".into()), Step::Index(0), Step::Key("id".into())]))
        );
        assert_eq!(t.sole_placeholder().unwrap().to_string(), "{request.items.0.id}");
        assert_eq!(Template::parse("/a/{path.id}").unwrap().placeholders().count(), 1);
    }

    #[test]
    fn malformed_placeholders_are_refused() {
        for bad in [
            "/a/{response.id",
            "/a/}",
            "/a/{id}",
            "/a/{reply.id}",
            "/a/{response..id}",
            "/a/{response.}",
            "/a/{path.a.b}",
            "/a/{response.i d}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
