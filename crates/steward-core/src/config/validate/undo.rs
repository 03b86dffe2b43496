//! Stage two of a tool's `undo = { ... }`: the shape (a call or a declined
//! undo with its reason), the undo tool (declared, on the same upstream),
//! the method, and every template placeholder (well-formed; `{path.x}`
//! names a `{x}` of the tool's own `match`). The grammar is `config::undo`'s.

use super::*;
use crate::config::rule::METHODS;
use crate::config::undo::{PLACEHOLDER_HELP, Placeholder, Template, UndoCall, UndoSpec, body_templates};

impl Validator<'_> {
    /// The validated undo of `tool`, or `None` after recording why not.
    pub(super) fn undo(&mut self, raw: Spanned<RawUndo>, tool: &ToolConfig, all: &[ToolConfig]) -> Option<UndoSpec> {
        let span = raw.span();
        let raw = raw.into_inner();
        if let Some(reason) = raw.none {
            let extra = [raw_span(&raw.tool), raw_span(&raw.path), raw_span(&raw.method), raw_span(&raw.query)]
                .into_iter()
                .chain([raw.body.as_ref().map(Spanned::span), raw.arguments.as_ref().map(Spanned::span)])
                .flatten()
                .next();
            if let Some(extra) = extra {
                self.push(Problem::new(
                    extra,
                    "undo has both none and an undo call",
                    "none excludes the rest",
                    "keep either undo = { none = \"why\" } or undo = { tool = ..., path = ... }",
                ));
                return None;
            }
            if reason.get_ref().trim().is_empty() {
                self.push(Problem::new(
                    reason.span(),
                    "undo = { none = ... } needs a reason",
                    "empty reason",
                    "say why the calls cannot be undone, like undo = { none = \"a sent e-mail cannot be recalled\" }",
                ));
                return None;
            }
            return Some(UndoSpec::Declined { reason: reason.into_inner() });
        }
        let Some(undo_tool) = raw.tool.clone() else {
            self.push(Problem::new(
                span,
                "undo names no tool",
                "missing tool",
                "name the tool whose call undoes this one, like undo = { tool = \"delete_status\", path = \
                 \"/api/v1/statuses/{response.id}\" }, or write undo = { none = \"why\" }",
            ));
            return None;
        };
        let Some(target) = all.iter().find(|t| t.name == *undo_tool.get_ref()) else {
            let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
            self.push(Problem::new(
                undo_tool.span(),
                format!("undo tool {:?} is not a declared tool", undo_tool.get_ref()),
                "unknown tool",
                format!(
                    "declare it as a [[tools]] entry on upstream {:?} (the tools are: {}), or fix the name",
                    tool.upstream,
                    names.join(", ")
                ),
            ));
            return None;
        };
        if tool.door == ToolDoor::Mcp || target.door == ToolDoor::Mcp {
            return self.mcp_undo(span, raw, &undo_tool, tool, target);
        }
        if target.upstream != tool.upstream {
            self.push(Problem::new(
                undo_tool.span(),
                format!(
                    "undo tool {:?} is on upstream {:?}, not on {:?} like {:?}",
                    target.name, target.upstream, tool.upstream, tool.name
                ),
                "other upstream",
                "an undo goes to the upstream that made the call: name a tool of the same upstream",
            ));
            return None;
        }
        if let Some(arguments) = &raw.arguments {
            self.push(Problem::new(
                arguments.span(),
                "undo arguments are for MCP tools",
                "HTTP tool",
                "an HTTP tool's undo is a request: write path = \"...\" (and body = { ... }) instead of arguments",
            ));
            return None;
        }
        let method = match raw.method {
            Some(method) if METHODS.contains(&method.get_ref().as_str()) => method.into_inner(),
            Some(method) => {
                self.push(Problem::new(
                    method.span(),
                    format!("undo method {:?} is not an HTTP method", method.get_ref()),
                    "not a method",
                    format!("use one of {} (upper case)", METHODS.join(", ")),
                ));
                return None;
            }
            None if target.method != "*" => target.method.clone(),
            None => {
                self.push(Problem::new(
                    undo_tool.span(),
                    format!("undo tool {:?} matches any method, so the undo must name one", target.name),
                    "method needed",
                    "add method = \"DELETE\" (or the method the undo sends) to undo",
                ));
                return None;
            }
        };
        let params = pattern_params(&tool.path);
        let Some(path) = raw.path else {
            self.push(Problem::new(
                span,
                "undo names no path",
                "missing path",
                "add the path of the undo call, like path = \"/api/v1/statuses/{response.id}\"",
            ));
            return None;
        };
        if !path.get_ref().starts_with('/') {
            self.push(Problem::new(
                path.span(),
                format!("undo path {:?} does not start with /", path.get_ref()),
                "not a path",
                "write the path below the upstream's base_url, like \"/api/v1/statuses/{response.id}\"",
            ));
            return None;
        }
        let path_template = self.template(&path, &params)?;
        let query = match raw.query {
            Some(query) => Some(self.template(&query, &params)?),
            None => None,
        };
        let body = match raw.body {
            Some(body) => {
                let span = body.span();
                let json = match serde_json::to_value(body.into_inner()) {
                    Ok(json) => json,
                    Err(err) => {
                        self.push(Problem::new(
                            span,
                            format!("undo body cannot be sent as JSON: {err}"),
                            "not JSON",
                            "write the body as a TOML table of strings, numbers and booleans",
                        ));
                        return None;
                    }
                };
                let leaves = match body_templates(&json) {
                    Ok(leaves) => leaves,
                    Err(err) => {
                        self.push(Problem::new(span, format!("undo {err}"), "bad placeholder", PLACEHOLDER_HELP));
                        return None;
                    }
                };
                for leaf in &leaves {
                    if !self.path_params_known(leaf, &params, span.clone()) {
                        return None;
                    }
                }
                Some(json)
            }
            None => None,
        };
        Some(UndoSpec::Call(UndoCall { tool: target.name.clone(), method, path: path_template, query, body }))
    }

    /// The undo of an MCP tool: a `tools/call` of another MCP tool of the
    /// same server, whose `arguments` are templates. It is kept as an
    /// [`UndoCall`] whose path is `/` + the undo tool's MCP name and whose
    /// body is the arguments.
    fn mcp_undo(
        &mut self,
        span: std::ops::Range<usize>,
        raw: RawUndo,
        undo_tool: &Spanned<String>,
        tool: &ToolConfig,
        target: &ToolConfig,
    ) -> Option<UndoSpec> {
        if tool.door != target.door || target.upstream != tool.upstream {
            self.push(Problem::new(
                undo_tool.span(),
                format!(
                    "undo tool {:?} is not an MCP tool of server {:?} like {:?}",
                    target.name, tool.upstream, tool.name
                ),
                "other server",
                "an MCP tool's undo is a call of another tool of the same [mcp.*] server (mcp = the same name)",
            ));
            return None;
        }
        let extra = [raw_span(&raw.path), raw_span(&raw.method), raw_span(&raw.query)]
            .into_iter()
            .chain([raw.body.as_ref().map(Spanned::span)])
            .flatten()
            .next();
        if let Some(extra) = extra {
            self.push(Problem::new(
                extra,
                "path, method, query and body are for HTTP tools",
                "MCP tool",
                "an MCP tool's undo is written undo = { tool = \"delete_post\", arguments = { id = \
                 \"{response.structuredContent.id}\" } }",
            ));
            return None;
        }
        if target.path.contains(['*', '?']) {
            self.push(Problem::new(
                undo_tool.span(),
                format!("undo tool {:?} matches the MCP tool names {:?}, not one name", target.name, target.path),
                "a glob",
                "declare the undo tool with the exact MCP tool name, like match = \"delete_post\"",
            ));
            return None;
        }
        let Some(arguments) = raw.arguments else {
            self.push(Problem::new(
                span,
                "the undo of an MCP tool needs its arguments",
                "missing arguments",
                "add the undo call's arguments, like arguments = { id = \"{response.structuredContent.id}\" }",
            ));
            return None;
        };
        let arguments_span = arguments.span();
        let json = match serde_json::to_value(arguments.into_inner()) {
            Ok(json @ serde_json::Value::Object(_)) => json,
            _ => {
                self.push(Problem::new(
                    arguments_span,
                    "undo arguments must be a table",
                    "not a table",
                    "write the arguments as a TOML table, like arguments = { id = \"{response.structuredContent.id}\" }",
                ));
                return None;
            }
        };
        let leaves = match body_templates(&json) {
            Ok(leaves) => leaves,
            Err(err) => {
                self.push(Problem::new(arguments_span, format!("undo {err}"), "bad placeholder", PLACEHOLDER_HELP));
                return None;
            }
        };
        for leaf in &leaves {
            if !self.path_params_known(leaf, &[], arguments_span.clone()) {
                return None;
            }
        }
        let path = Template::parse(&format!("/{}", target.path.replace('{', "{{").replace('}', "}}"))).ok()?;
        Some(UndoSpec::Call(UndoCall {
            tool: target.name.clone(),
            method: "POST".to_owned(),
            path,
            query: None,
            body: Some(json),
        }))
    }

    fn template(&mut self, text: &Spanned<String>, params: &[String]) -> Option<Template> {
        match Template::parse(text.get_ref()) {
            Ok(template) => self.path_params_known(&template, params, text.span()).then_some(template),
            Err(err) => {
                self.push(Problem::new(
                    text.span(),
                    format!("undo template {:?}: {err}", text.get_ref()),
                    "bad placeholder",
                    PLACEHOLDER_HELP,
                ));
                None
            }
        }
    }

    fn path_params_known(&mut self, template: &Template, params: &[String], span: std::ops::Range<usize>) -> bool {
        for placeholder in template.placeholders() {
            if let Placeholder::Path(name) = placeholder
                && !params.contains(name)
            {
                let help = if params.is_empty() {
                    "the tool's match has no {param} segment; use {response.<json path>} or {request.<json path>}"
                        .to_owned()
                } else {
                    format!(
                        "the tool's match names: {}",
                        params.iter().map(|p| format!("{{{p}}}")).collect::<Vec<_>>().join(", ")
                    )
                };
                self.push(Problem::new(
                    span,
                    format!("undo placeholder {placeholder} names no {{{name}}} of the tool's match"),
                    "unknown path param",
                    help,
                ));
                return false;
            }
        }
        true
    }
}

/// The `{name}` and `{*name}` parameters of a `match` path pattern.
pub(crate) fn pattern_params(pattern: &str) -> Vec<String> {
    pattern
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| name.trim_start_matches('*').to_owned())
        .collect()
}
