//! Policy: which tool a call is, and what "the same input" means.
//!
//! Owns tool identification (method + path rules from `[[tools]]`, first
//! match wins), the normalized input key the loop breaker counts, and the
//! redacted input summary the journal and audit log record. Pure functions
//! over config and bytes: no I/O, so every front door gets identical answers.
//!
//! Rules match the decoded segments of the call's [`CanonicalPath`], the same
//! value the forwarder sends: a tool is never named from one reading of the
//! path while the upstream executes another. Literal segments of a rule are
//! read the same way (`%20` in a rule is a space).

use std::collections::HashMap;

use canonical_path::CanonicalPath;
use sha2::{Digest, Sha256};

use crate::config::{ToolConfig, ToolDoor, UnmatchedPolicy};

/// Longest input summary kept in the journal and audit log, in characters.
/// Long enough to recognise a post, short enough that a log line stays a line.
pub const SUMMARY_MAX_CHARS: usize = 200;

/// One compiled `match = "METHOD /path/{id}"` rule.
#[derive(Debug, Clone)]
struct Rule {
    /// Index into the config's tool list.
    tool: usize,
    /// Upper-case method, or `None` for `*`.
    method: Option<String>,
    /// Path pattern, one entry per segment (a trailing `/` is ignored).
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A decoded literal segment.
    Literal(String),
    /// `{name}`: exactly one non-empty segment.
    Param,
    /// `{*name}`: the rest of the path, possibly empty.
    Rest,
}

/// Identifies tools from method and path, per upstream.
#[derive(Debug, Clone)]
pub struct ToolMatcher {
    tools: Vec<ToolConfig>,
    /// Rules per upstream name, in declaration order.
    rules: HashMap<String, Vec<Rule>>,
    /// MCP tools per `[mcp.*]` server: (index into `tools`, name glob), in
    /// declaration order.
    mcp_rules: HashMap<String, Vec<(usize, String)>>,
    unmatched: UnmatchedPolicy,
}

/// What the matcher decided for one call.
#[derive(Debug, Clone, Copy)]
pub enum Identified<'a> {
    /// A declared tool.
    Tool(&'a ToolConfig),
    /// No rule matched, but `[unmatched] policy = "allow-get"` lets this read through.
    UnmatchedAllowed,
    /// No rule matched and policy refuses it.
    UnmatchedDenied,
}

impl ToolMatcher {
    /// Compiles every tool rule. The config loader already validated the patterns.
    pub fn new(tools: &[ToolConfig], unmatched: UnmatchedPolicy) -> Self {
        let mut rules: HashMap<String, Vec<Rule>> = HashMap::new();
        let mut mcp_rules: HashMap<String, Vec<(usize, String)>> = HashMap::new();
        for (index, tool) in tools.iter().enumerate() {
            if tool.door == ToolDoor::Mcp {
                mcp_rules.entry(tool.upstream.clone()).or_default().push((index, tool.path.clone()));
                continue;
            }
            let method = (tool.method != "*").then(|| tool.method.to_ascii_uppercase());
            rules.entry(tool.upstream.clone()).or_default().push(Rule {
                tool: index,
                method,
                segments: compile_pattern(&tool.path),
            });
        }
        Self { tools: tools.to_vec(), rules, mcp_rules, unmatched }
    }

    /// Names the tool for a `tools/call` of `name` on the MCP server
    /// `server`: the first MCP tool whose glob matches. An unmatched tool
    /// is what an unmatched REST call is: refused, except that
    /// `allow-get` lets through a tool whose (pinned) definition says it
    /// only reads (`annotations.readOnlyHint`), as it lets a GET through.
    pub fn identify_mcp(&self, server: &str, name: &str, read_only: bool) -> Identified<'_> {
        let found = self
            .mcp_rules
            .get(server)
            .and_then(|rules| rules.iter().find(|(_, glob)| glob_matches(glob, name)))
            .and_then(|(index, _)| self.tools.get(*index));
        match found {
            Some(tool) => Identified::Tool(tool),
            None if self.unmatched == UnmatchedPolicy::AllowGet && read_only => Identified::UnmatchedAllowed,
            None => Identified::UnmatchedDenied,
        }
    }

    /// The `[[tools]]` entry named `name`.
    pub fn tool(&self, name: &str) -> Option<&ToolConfig> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Names the tool for `method path` on `upstream`. A trailing `/` does
    /// not make another tool.
    pub fn identify(&self, upstream: &str, method: &str, path: &CanonicalPath) -> Identified<'_> {
        let segments = path.segments();
        let found = self.rules.get(upstream).and_then(|rules| {
            rules.iter().find(|rule| {
                rule.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
                    && matches_segments(&rule.segments, segments)
            })
        });
        match found {
            Some(rule) => match self.tools.get(rule.tool) {
                Some(tool) => Identified::Tool(tool),
                None => Identified::UnmatchedDenied,
            },
            None if self.unmatched == UnmatchedPolicy::AllowGet
                && (method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")) =>
            {
                Identified::UnmatchedAllowed
            }
            None => Identified::UnmatchedDenied,
        }
    }
}

/// Whether the MCP tool name `name` matches `glob`: `*` is any run of
/// characters (none included), `?` exactly one, anything else itself.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (glob, name): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point (the last `*`): linear in
    // practice, never exponential.
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some('*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(c) if *c == '?' || *c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    g = sg + 1;
                    n = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|c| *c == '*')
}

/// The segments of a rule's path pattern. The config loader refused every
/// pattern that is not a canonical path (`\\`, `..`, `%2F`...), so the
/// fallback (a pattern no path matches) is never reached in practice.
fn compile_pattern(pattern: &str) -> Vec<Segment> {
    let Ok(path) = CanonicalPath::parse(pattern) else {
        return vec![Segment::Literal("/".to_owned())];
    };
    path.segments()
        .iter()
        .map(|segment| {
            if segment.starts_with("{*") && segment.ends_with('}') {
                Segment::Rest
            } else if segment.starts_with('{') && segment.ends_with('}') {
                Segment::Param
            } else {
                Segment::Literal(segment.clone())
            }
        })
        .collect()
}

fn matches_segments(pattern: &[Segment], path: &[String]) -> bool {
    let mut i = 0;
    for (p, segment) in pattern.iter().enumerate() {
        match segment {
            Segment::Rest => return p == pattern.len() - 1,
            Segment::Param => {
                if i >= path.len() {
                    return false;
                }
            }
            Segment::Literal(lit) => {
                if path.get(i) != Some(lit) {
                    return false;
                }
            }
        }
        i += 1;
    }
    i == path.len()
}

/// The loop breaker's notion of "the same call": tool, method, path, query and
/// the body with JSON re-serialized canonically (object keys sorted, no
/// whitespace), so `{"a":1, "b":2}` and `{"b":2,"a":1}` count as identical.
pub fn loop_key(tool: &str, method: &str, path: &str, query: Option<&str>, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for part in [tool.as_bytes(), method.as_bytes(), path.as_bytes(), query.unwrap_or("").as_bytes()] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        // serde_json's default map is a BTreeMap, so serializing sorts keys.
        Ok(value) => hasher.update(value.to_string().as_bytes()),
        Err(_) => hasher.update(body),
    }
    hex::encode(hasher.finalize())
}

/// SHA-256 of the raw request body, hex: lets an operator match a journal
/// entry to a payload they hold without steward keeping the payload.
pub fn input_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The redacted, truncated one-line summary of a request body kept in the
/// journal and audit log. JSON bodies are redacted structurally (sensitive
/// keys blanked), other bodies as text; binary bodies are described, not shown.
pub fn input_summary(redactor: &redact::Redactor, body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            redactor.redact_json(&mut value);
            value.to_string()
        }
        Err(_) => match std::str::from_utf8(body) {
            Ok(text) => redactor.redact(text).into_owned(),
            Err(_) => return format!("<{} bytes binary>", body.len()),
        },
    };
    truncate_summary(&text)
}

/// Truncates at a character boundary and marks the cut, then collapses
/// control characters so a summary can never break a log line or a terminal.
/// The text is redacted *before* truncation so a cut never exposes half a secret.
pub fn truncate_summary(text: &str) -> String {
    let mut out: String = text.chars().take(SUMMARY_MAX_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(SUMMARY_MAX_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests;
