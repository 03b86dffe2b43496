//! Stage two for `[mcp.NAME]`: an MCP server steward runs over stdio
//! (`command`, `env` with `credential:NAME` references, `workdir`) or
//! reaches over streamable HTTP (`url`, `credential`, `auth`), and the size
//! bound of its messages. The MCP tools of `[[tools]]` are checked with the
//! other tools (`upstreams`).

use super::*;

/// Default `[mcp.*] max_message_size` (16 MiB): far above a real tool
/// result (an 8 MiB one passes), small enough that one message cannot make
/// steward hold an unbounded line in memory.
pub const DEFAULT_MCP_MAX_MESSAGE_SIZE: u64 = 16 * 1024 * 1024;

/// Smallest `[mcp.*] max_message_size`: an `initialize` answer with a few
/// tools already takes kilobytes.
pub const MIN_MCP_MAX_MESSAGE_SIZE: u64 = 64 * 1024;

/// Default `[mcp.*] request_timeout`: a tool that takes minutes is rare, a
/// hung server must not hang the agent forever.
pub const DEFAULT_MCP_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The prefix of an `env` value that names a credential instead of a value.
pub const CREDENTIAL_REF_PREFIX: &str = "credential:";

impl Validator<'_> {
    pub(super) fn mcp(
        &mut self,
        raw: Vec<(Spanned<String>, Option<RawMcp>)>,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
    ) -> BTreeMap<String, McpServerConfig> {
        let mut out = BTreeMap::new();
        for (name, body) in raw {
            self.entry_name(&name, "mcp");
            if let Some(body) = body
                && let Some(server) = self.mcp_server(&name, body, credentials)
            {
                out.insert(name.into_inner(), server);
            }
        }
        out
    }

    fn mcp_server(
        &mut self,
        name: &Spanned<String>,
        raw: RawMcp,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
    ) -> Option<McpServerConfig> {
        let max_message_size =
            self.size(raw.max_message_size.clone(), "max_message_size", "16MiB", DEFAULT_MCP_MAX_MESSAGE_SIZE);
        if max_message_size < MIN_MCP_MAX_MESSAGE_SIZE
            && let Some(span) = raw_span(&raw.max_message_size)
        {
            self.push(Problem::new(
                span,
                format!("max_message_size {max_message_size} bytes is too small for MCP messages"),
                "too small",
                "use at least 64KiB; the default, 16MiB, suits almost every server",
            ));
        }
        let request_timeout = self.timeout(raw.request_timeout, "request_timeout", "5m", DEFAULT_MCP_REQUEST_TIMEOUT);
        let transport = match (raw.command, raw.url) {
            (Some(command), None) => {
                for (key, span) in [("credential", raw_span(&raw.credential)), ("auth", raw_span(&raw.auth))] {
                    if let Some(span) = span {
                        self.push(Problem::new(
                            span,
                            format!("{key} is set on a stdio server ([mcp.{}] has a command)", name.get_ref()),
                            "stdio server",
                            "give a stdio server its credential through env, like \
                             env = { SOCIAL_TOKEN = \"credential:social\" }",
                        ));
                    }
                }
                let command = self.agent_command(command);
                let env = raw.env.map(|env| self.mcp_env(env.into_inner(), credentials)).unwrap_or_default();
                let workdir = raw.workdir.map(|text| self.path(&text, "workdir"));
                McpTransport::Stdio { command, env, workdir }
            }
            (None, Some(url)) => {
                for (key, span) in [("env", raw_span(&raw.env)), ("workdir", raw_span(&raw.workdir))] {
                    if let Some(span) = span {
                        self.push(Problem::new(
                            span,
                            format!(
                                "{key} is set on a server steward does not run ([mcp.{}] has a url)",
                                name.get_ref()
                            ),
                            "HTTP server",
                            "remove it; for a server steward should run, write command = [...] instead of url",
                        ));
                    }
                }
                let url_text = self.base_url(&url);
                if let Some(credential) = &raw.credential {
                    self.credential_ref(credential, credentials, false);
                    self.credential_environment(credential, credentials, "this MCP server");
                }
                let auth = match raw.auth {
                    None => {
                        AuthInjection { header: DEFAULT_AUTH_HEADER.to_owned(), format: DEFAULT_AUTH_FORMAT.to_owned() }
                    }
                    Some(auth) => {
                        if raw.credential.is_none() {
                            self.push(Problem::new(
                                auth.span(),
                                "auth is set but the MCP server has no credential to inject",
                                "no credential",
                                "add credential = \"NAME\" naming a [credentials.NAME] section, or remove auth",
                            ));
                        }
                        self.auth(auth.into_inner())
                    }
                };
                McpTransport::Http { url: url_text, credential: raw.credential.map(Spanned::into_inner), auth }
            }
            (Some(command), Some(url)) => {
                self.push(Problem::new(
                    url.span(),
                    format!("[mcp.{}] has both command and url", name.get_ref()),
                    "command or url",
                    "keep command = [...] for a server steward runs over stdio, or url = \"https://...\" for a \
                     streamable-HTTP server, not both",
                ));
                drop(command);
                return None;
            }
            (None, None) => {
                self.push(Problem::new(
                    name.span(),
                    format!("[mcp.{}] has neither command nor url", name.get_ref()),
                    "how to reach it?",
                    "add command = [\"npx\", \"-y\", \"@acme/social-mcp\"] for a server steward runs, or \
                     url = \"https://mcp.example.com/mcp\" for a streamable-HTTP server",
                ));
                return None;
            }
        };
        Some(McpServerConfig { transport, max_message_size, request_timeout })
    }

    fn mcp_env(
        &mut self,
        env: BTreeMap<Spanned<String>, Spanned<String>>,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
    ) -> BTreeMap<String, McpEnvValue> {
        let mut out = BTreeMap::new();
        for (name, value) in env {
            self.env_entry(&name, &value, "SOCIAL_TOKEN = \"credential:social\"");
            let parsed = match value.get_ref().strip_prefix(CREDENTIAL_REF_PREFIX) {
                Some(credential) => {
                    let reference = Spanned::new(value.span(), credential.to_owned());
                    self.credential_ref(&reference, credentials, false);
                    self.credential_environment(&reference, credentials, "this MCP server");
                    McpEnvValue::Credential(credential.to_owned())
                }
                None => McpEnvValue::Plain(value.get_ref().clone()),
            };
            out.insert(name.into_inner(), parsed);
        }
        out
    }
}

/// Whether `glob` is a valid MCP tool-name pattern: not empty, no
/// whitespace or control characters. `*` matches any run of characters,
/// `?` one character; everything else matches itself.
pub(super) fn check_mcp_glob(glob: &str) -> Result<(), String> {
    if glob.is_empty() {
        return Err("match is empty".to_owned());
    }
    if glob.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("match {glob:?} contains whitespace; an MCP tool name has none"));
    }
    Ok(())
}
