//! Stage two for what the agent calls: `[upstreams.NAME]` (base URL,
//! credential injection, timeouts, scopes), `[[tools]]` (the rules that name
//! a call, its rate limit and retries) and `[loop_breaker]`.

use super::*;

impl Validator<'_> {
    pub(super) fn upstreams(
        &mut self,
        raw: Vec<(Spanned<String>, Option<RawUpstream>)>,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
    ) -> BTreeMap<String, Option<UpstreamConfig>> {
        let mut out = BTreeMap::new();
        for (name, body) in raw {
            self.entry_name(&name, "upstreams");
            let config = body.map(|b| self.upstream(b, credentials));
            out.insert(name.into_inner(), config);
        }
        out
    }

    fn upstream(
        &mut self,
        raw: RawUpstream,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
    ) -> UpstreamConfig {
        let base_url = self.base_url(&raw.base_url);
        if let Some(name) = &raw.credential {
            self.credential_ref(name, credentials, false);
            self.credential_environment(name, credentials, "this upstream");
        }
        let auth = match raw.auth {
            None => AuthInjection { header: DEFAULT_AUTH_HEADER.to_owned(), format: DEFAULT_AUTH_FORMAT.to_owned() },
            Some(auth) => {
                if raw.credential.is_none() {
                    self.push(Problem::new(
                        auth.span(),
                        "auth is set but the upstream has no credential to inject",
                        "no credential",
                        "add credential = \"NAME\" naming a [credentials.NAME] section, or remove auth",
                    ));
                }
                self.auth(auth.into_inner())
            }
        };
        let connect_timeout = self.timeout(raw.connect_timeout, "connect_timeout", "5s", DEFAULT_CONNECT_TIMEOUT);
        let read_timeout = self.timeout(raw.read_timeout, "read_timeout", "60s", DEFAULT_READ_TIMEOUT);
        let scopes_header = raw.scopes_header.and_then(|header| {
            if http::HeaderName::from_bytes(header.get_ref().as_bytes()).is_err() {
                self.push(Problem::new(
                    header.span(),
                    format!("{:?} is not a valid HTTP header name", header.get_ref()),
                    "invalid header name",
                    "name the response header that lists the token's scopes, like scopes_header = \"X-OAuth-Scopes\"",
                ));
                return None;
            }
            if raw.credential.is_none() {
                self.push(Problem::new(
                    header.span(),
                    "scopes_header is set but the upstream has no credential whose scopes it would report",
                    "no credential",
                    "add credential = \"NAME\", or remove scopes_header",
                ));
            }
            Some(header.into_inner())
        });
        let (introspection_url, introspection_credential) = self.introspection(
            raw.introspection_url,
            raw.introspection_credential,
            raw.credential.is_some(),
            credentials,
        );
        UpstreamConfig {
            base_url,
            credential: raw.credential.map(Spanned::into_inner),
            auth,
            connect_timeout,
            read_timeout,
            scopes_header,
            introspection_url,
            introspection_credential,
        }
    }

    /// A `base_url`, normalized; `""` (with the problem recorded) when invalid.
    /// One with user credentials in it is masked in the report.
    pub(super) fn base_url(&mut self, text: &Spanned<String>) -> String {
        match normalize_base_url(text.get_ref()) {
            Ok(url) => url,
            Err((message, help)) => {
                let problem = Problem::new(text.span(), message, "invalid base_url", help);
                self.push(if text.get_ref().contains('@') { problem.secret() } else { problem });
                String::new()
            }
        }
    }

    pub(super) fn auth(&mut self, raw: RawAuth) -> AuthInjection {
        let header = raw.header.get_ref();
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            self.push(Problem::new(
                raw.header.span(),
                format!("{header:?} is not a valid HTTP header name"),
                "invalid header name",
                "use letters, digits and -, like header = \"Authorization\" or \"X-Api-Key\"",
            ));
        }
        let format = raw.format.get_ref();
        let count = format.matches("{secret}").count();
        if count != 1 {
            let what = if count == 0 { "does not contain" } else { "repeats" };
            self.push(Problem::new(
                raw.format.span(),
                format!("auth format {format:?} {what} {{secret}}"),
                "needs {secret} exactly once",
                "put {secret} where the credential goes, exactly once, like \
                 format = \"Bearer {secret}\" or format = \"{secret}\"",
            ));
        } else if http::HeaderValue::from_str(&format.replace("{secret}", "x")).is_err() {
            self.push(Problem::new(
                raw.format.span(),
                "auth format contains characters not allowed in an HTTP header value",
                "invalid header value",
                "remove control characters and line breaks from format",
            ));
        }
        AuthInjection { header: header.clone(), format: format.clone() }
    }

    pub(super) fn tools(
        &mut self,
        raw: Vec<RawTool>,
        upstreams: &BTreeMap<String, Option<UpstreamConfig>>,
        mcp: &BTreeMap<String, McpServerConfig>,
    ) -> Vec<ToolConfig> {
        let mut first_seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        let mut undos = Vec::new();
        for tool in raw {
            let name = tool.name.get_ref();
            if !is_tool_name(name) {
                self.push(Problem::new(
                    tool.name.span(),
                    format!("tool name {name:?} has characters other than a-z 0-9 _ . -"),
                    "invalid tool name",
                    "use lower-case letters, digits, _, . and -, like name = \"post_status\"",
                ));
            }
            match first_seen.get(name) {
                Some(&offset) => {
                    let (line, _) = crate::config::error::line_col(self.source, offset);
                    self.push(Problem::new(
                        tool.name.span(),
                        format!("tool name {name:?} is used twice"),
                        "duplicate name",
                        format!(
                            "tool names must be unique (the first {name:?} is on line {line}); \
                             rename one of them"
                        ),
                    ));
                }
                None => {
                    first_seen.insert(name.clone(), tool.name.span().start);
                }
            }
            let (door, upstream, method, path) = match (tool.upstream, tool.mcp) {
                (Some(upstream), None) => {
                    self.tool_upstream(&upstream, upstreams);
                    let (method, path) = match parse_rule(tool.rule.get_ref()) {
                        Ok(rule) => (rule.method, rule.path),
                        Err(err) => {
                            self.push(Problem::new(tool.rule.span(), err.message, "invalid match", err.help));
                            ("*".to_owned(), "/".to_owned())
                        }
                    };
                    (ToolDoor::Api, upstream.into_inner(), method, path)
                }
                (None, Some(server)) => {
                    self.tool_mcp_server(&server, mcp);
                    if let Err(message) = mcp::check_mcp_glob(tool.rule.get_ref()) {
                        self.push(Problem::new(
                            tool.rule.span(),
                            message,
                            "invalid match",
                            "an MCP tool's match is the MCP tool name, or a glob of it: match = \"create_post\" \
                             or match = \"calendar_*\"",
                        ));
                    }
                    if let Some(retry) = &tool.retry
                        && retry.get_ref() != "never"
                    {
                        self.push(Problem::new(
                            retry.span(),
                            format!("retry = {:?} on an MCP tool", retry.get_ref()),
                            "never retried",
                            "remove retry: steward never repeats an MCP tools/call on its own (a repeat could \
                             act twice); the agent decides",
                        ));
                    }
                    (ToolDoor::Mcp, server.into_inner(), "*".to_owned(), tool.rule.into_inner())
                }
                (Some(upstream), Some(server)) => {
                    self.push(Problem::new(
                        server.span(),
                        format!("tool {name:?} names both an upstream and an MCP server"),
                        "upstream or mcp",
                        "keep upstream = \"NAME\" for an HTTP tool (match = \"METHOD /path\"), or mcp = \"NAME\" \
                         for an MCP tool (match = \"tool_name\"), not both",
                    ));
                    (ToolDoor::Api, upstream.into_inner(), "*".to_owned(), "/".to_owned())
                }
                (None, None) => {
                    self.push(Problem::new(
                        tool.name.span(),
                        format!("tool {name:?} names neither an upstream nor an MCP server"),
                        "upstream or mcp",
                        "add upstream = \"NAME\" (one of the [upstreams.*] names) for an HTTP tool, or \
                         mcp = \"NAME\" (one of the [mcp.*] names) for an MCP tool",
                    ));
                    (ToolDoor::Api, String::new(), "*".to_owned(), "/".to_owned())
                }
            };
            // Fail closed: an unknown (`*`) method counts as side-effecting and
            // not retryable; so does every MCP tool (its method is `*`).
            let safe_method = matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS");
            let idempotent_method = safe_method || matches!(method.as_str(), "PUT" | "DELETE");
            let side_effect = tool.side_effect.unwrap_or(!safe_method);
            let limit = tool.limit.and_then(|text| match parse_rate_limit(&text.get_ref().0) {
                Ok(limit) => Some(limit),
                Err(err) => {
                    self.push(Problem::new(
                        text.span(),
                        err.to_string(),
                        "not N/unit",
                        "for example: limit = \"10/hour\"; remove limit for no rate limit",
                    ));
                    None
                }
            });
            let default_retry = if idempotent_method { RetryPolicy::Idempotent } else { RetryPolicy::Never };
            let retry = self.choice(
                tool.retry,
                "retry",
                &[("never", RetryPolicy::Never), ("idempotent", RetryPolicy::Idempotent)],
                default_retry,
            );
            let approval = self.choice(
                tool.approval,
                "approval",
                &[("supervised", Approval::Supervised), ("always", Approval::Always), ("never", Approval::Never)],
                if side_effect { Approval::Supervised } else { Approval::Never },
            );
            if let Some(undo) = tool.undo {
                undos.push((out.len(), undo));
            }
            out.push(ToolConfig {
                name: tool.name.into_inner(),
                door,
                upstream,
                method,
                path,
                side_effect,
                limit,
                retry,
                approval,
                undo: None,
            });
        }
        // After every tool is known: an undo may name a tool declared below it.
        for (index, raw) in undos {
            let spec = self.undo(raw, &out[index], &out);
            out[index].undo = spec;
        }
        out
    }

    /// `upstream = "NAME"` of a tool names a defined upstream.
    fn tool_upstream(&mut self, upstream: &Spanned<String>, upstreams: &BTreeMap<String, Option<UpstreamConfig>>) {
        if upstreams.contains_key(upstream.get_ref()) {
            return;
        }
        let defined: Vec<&str> = upstreams.keys().map(String::as_str).collect();
        let help = if defined.is_empty() {
            format!("no upstreams are defined; add [upstreams.{}] with base_url = \"https://...\"", upstream.get_ref())
        } else {
            format!(
                "use one of the defined upstreams: {}; or add [upstreams.{}]",
                defined.join(", "),
                upstream.get_ref()
            )
        };
        self.push(Problem::new(
            upstream.span(),
            format!("upstream {:?} is not defined", upstream.get_ref()),
            "unknown upstream",
            help,
        ));
    }

    /// `mcp = "NAME"` of a tool names a defined MCP server.
    fn tool_mcp_server(&mut self, server: &Spanned<String>, mcp: &BTreeMap<String, McpServerConfig>) {
        if mcp.contains_key(server.get_ref()) {
            return;
        }
        let defined: Vec<&str> = mcp.keys().map(String::as_str).collect();
        let help = if defined.is_empty() {
            format!(
                "no MCP servers are defined; add [mcp.{}] with command = [...] or url = \"https://...\"",
                server.get_ref()
            )
        } else {
            format!("use one of the defined MCP servers: {}; or add [mcp.{}]", defined.join(", "), server.get_ref())
        };
        self.push(Problem::new(
            server.span(),
            format!("MCP server {:?} is not defined", server.get_ref()),
            "unknown MCP server",
            help,
        ));
    }

    pub(super) fn loop_breaker(&mut self, raw: RawLoopBreaker) -> LoopBreakerConfig {
        let max_identical = match raw.max_identical {
            None => DEFAULT_MAX_IDENTICAL,
            Some(n) => u32::try_from(*n.get_ref()).unwrap_or_else(|_| {
                self.push(Problem::new(
                    n.span(),
                    format!("max_identical = {} is not a count of calls", n.get_ref()),
                    "out of range",
                    "use a whole number such as max_identical = 5, or 0 to disable the loop breaker",
                ));
                DEFAULT_MAX_IDENTICAL
            }),
        };
        let window = self.timeout(raw.window, "window", "10m", DEFAULT_LOOP_WINDOW);
        LoopBreakerConfig { max_identical, window }
    }
}

/// Checks a `base_url` and returns it without a trailing slash; the error is
/// (message, fix).
fn normalize_base_url(text: &str) -> Result<String, (String, String)> {
    let fix = "write it like base_url = \"https://api.example.com\" (http or https, an optional \
               path prefix, no query or fragment)";
    let bad = |what: &str| Err((format!("base_url {text:?} {what}"), fix.to_owned()));
    if text.contains('#') {
        return bad("has a #fragment");
    }
    let Ok(uri) = text.parse::<http::Uri>() else {
        return bad("is not a URL");
    };
    let scheme = match uri.scheme_str().map(str::to_ascii_lowercase) {
        Some(s) if s == "http" || s == "https" => s,
        Some(_) => return bad("is not an http or https URL"),
        None => return bad("has no scheme (https://)"),
    };
    let Some(authority) = uri.authority() else {
        return bad("has no host");
    };
    if authority.as_str().contains('@') {
        return Err((
            format!("base_url {text:?} contains user credentials"),
            "remove user:password@ from the URL and put the secret in a [credentials.NAME] \
             section referenced by credential = \"NAME\""
                .to_owned(),
        ));
    }
    if authority.host().is_empty() {
        return bad("has no host");
    }
    if uri.query().is_some() {
        return bad("has a ?query");
    }
    let path = uri.path().trim_end_matches('/');
    Ok(format!("{scheme}://{authority}{path}"))
}
