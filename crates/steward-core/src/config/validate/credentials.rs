//! Stage two for credentials: `[credentials.NAME]` (source, environment,
//! expiry, scopes) and `[policy]`, the rules every credential is held to.
//!
//! What can be decided from the file alone is decided here, so `steward
//! config check` and `steward run` refuse it alike: a forbidden scope, a
//! credential of the wrong environment used by an upstream. What needs the
//! values (a dev and a prod credential sharing one) is `secrets`' job.

use std::time::SystemTime;

use super::*;
use crate::config::argv;
use crate::config::scope::forbidden_by;

/// Default `[policy] expiry_warning_days`: two weeks to order a new token,
/// then reminders as the day comes closer.
pub const DEFAULT_EXPIRY_WARNING_DAYS: [u32; 4] = [14, 7, 3, 1];

/// Largest `expiry_warning_days` entry (a year): warnings further out are noise.
pub const MAX_EXPIRY_WARNING_DAYS: u32 = 366;

/// The five source forms, for help texts.
const SOURCE_FORMS: &str = "env:NAME, file:PATH, systemd:NAME, command:PROGRAM ARGS or vault:PATH#FIELD";

impl Validator<'_> {
    /// `[policy]`; absent means no forbidden scopes and the default warning days.
    pub(super) fn policy(&mut self, raw: RawPolicy) -> PolicyConfig {
        let mut forbidden_scopes = Vec::new();
        for pattern in raw.forbidden_scopes.unwrap_or_default() {
            let text = pattern.get_ref().trim();
            let stars = text.matches('*').count();
            let valid = !text.is_empty() && (stars == 0 || (stars == 1 && text.ends_with('*')));
            if !valid {
                self.push(Problem::new(
                    pattern.span(),
                    format!(
                        "forbidden scope pattern {:?} is not a scope, a prefix ending in * or *",
                        pattern.get_ref()
                    ),
                    "invalid pattern",
                    "write an exact scope (\"admin\"), a prefix glob (\"admin:*\") or \"*\" for any scope",
                ));
                continue;
            }
            forbidden_scopes.push(text.to_owned());
        }
        let expiry_warning_days = match raw.expiry_warning_days {
            None => DEFAULT_EXPIRY_WARNING_DAYS.to_vec(),
            Some(list) => {
                let span = list.span();
                let written = list.get_ref().len();
                let mut days = Vec::new();
                for day in list.into_inner() {
                    match u32::try_from(*day.get_ref()) {
                        Ok(d @ 1..=MAX_EXPIRY_WARNING_DAYS) => days.push(d),
                        _ => self.push(Problem::new(
                            day.span(),
                            format!("expiry warning day {} is outside 1..={MAX_EXPIRY_WARNING_DAYS}", day.get_ref()),
                            "out of range",
                            "list whole days before expiry, like expiry_warning_days = [14, 7, 3, 1]",
                        )),
                    }
                }
                if written == 0 {
                    self.push(Problem::new(
                        span,
                        "expiry_warning_days is empty, so no credential would ever be reported before it expires",
                        "no warning days",
                        "list at least one day, like expiry_warning_days = [14, 7, 3, 1] (the default)",
                    ));
                    DEFAULT_EXPIRY_WARNING_DAYS.to_vec()
                } else if days.is_empty() {
                    // Every entry was refused (and reported): carry on with the defaults.
                    DEFAULT_EXPIRY_WARNING_DAYS.to_vec()
                } else {
                    days.sort_unstable_by(|a, b| b.cmp(a));
                    days.dedup();
                    days
                }
            }
        };
        PolicyConfig { forbidden_scopes, expiry_warning_days }
    }

    /// Credential names map to `None` when their entry is broken: the name
    /// still counts as defined, so references to it are not reported too.
    pub(super) fn credentials(
        &mut self,
        raw: Vec<(Spanned<String>, Option<RawCredential>)>,
        policy: &PolicyConfig,
    ) -> BTreeMap<String, Option<CredentialConfig>> {
        let mut out = BTreeMap::new();
        for (name, body) in raw {
            self.entry_name(&name, "credentials");
            let config = body.and_then(|b| self.credential(name.get_ref(), b, policy));
            out.insert(name.into_inner(), config);
        }
        out
    }

    fn credential(&mut self, name: &str, raw: RawCredential, policy: &PolicyConfig) -> Option<CredentialConfig> {
        let source = self.credential_source(&raw.source);
        let environment = self.choice(
            raw.environment,
            "environment",
            &[("dev", Environment::Dev), ("prod", Environment::Prod)],
            self.agent_environment,
        );
        let expires = raw.expires.and_then(|value| self.expires(&value));
        let mut scopes = Vec::new();
        for scope in raw.scopes.unwrap_or_default() {
            let text = scope.get_ref().trim();
            if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c == ',') {
                self.push(Problem::new(
                    scope.span(),
                    format!("scope {:?} is empty or contains spaces or commas", scope.get_ref()),
                    "invalid scope",
                    "write one scope per string, as the provider names it, like scopes = [\"write:statuses\"]",
                ));
                continue;
            }
            if let Some(pattern) = forbidden_by(&policy.forbidden_scopes, text) {
                self.push(Problem::new(
                    scope.span(),
                    format!(
                        "credential `{name}` declares scope {text:?}, which [policy] forbidden_scopes forbids \
                         (pattern {pattern:?})"
                    ),
                    "forbidden scope",
                    "issue a token without this scope and list only the scopes the agent needs; \
                     a posting agent never needs admin rights",
                ));
            }
            scopes.push(text.to_owned());
        }
        Some(CredentialConfig { source: source?, environment, expires, scopes })
    }

    /// `expires`: a date (00:00 UTC that day) or an RFC 3339 time.
    fn expires(&mut self, value: &Spanned<toml::Value>) -> Option<SystemTime> {
        let text = match value.get_ref() {
            toml::Value::String(text) => text.clone(),
            toml::Value::Datetime(datetime) => datetime.to_string(),
            _ => String::new(),
        };
        let parsed = parse_expiry(text.trim());
        if parsed.is_none() {
            self.push(Problem::new(
                value.span(),
                "expires is not a date or a date and time with a time zone",
                "not a date",
                "write the day the token stops working, like expires = \"2027-03-01\" (00:00 UTC), \
                 or a full time such as \"2027-03-01T12:00:00Z\"",
            ));
        }
        parsed
    }

    pub(super) fn credential_source(&mut self, text: &Spanned<String>) -> Option<CredentialSource> {
        let value = text.get_ref().as_str();
        if let Some(var) = value.strip_prefix("env:") {
            if var.is_empty() {
                self.push(Problem::new(
                    text.span(),
                    "source = \"env:\" names no environment variable",
                    "empty variable name",
                    "name the variable that holds the secret, like source = \"env:SOCIAL_TOKEN\"",
                ));
                return None;
            }
            if !is_identifier(var) {
                self.push(Problem::new(
                    text.span(),
                    format!("{var:?} is not a valid environment variable name"),
                    "invalid variable name",
                    "use letters, digits and _, not starting with a digit, like \
                     source = \"env:SOCIAL_TOKEN\"",
                ));
                return None;
            }
            return Some(CredentialSource::Env(var.to_owned()));
        }
        if let Some(path) = value.strip_prefix("file:") {
            if path.is_empty() {
                self.push(Problem::new(
                    text.span(),
                    "source = \"file:\" names no file",
                    "empty path",
                    "name the file that holds the secret (mode 0600), like \
                     source = \"file:/etc/steward/social.token\"",
                ));
                return None;
            }
            let spanned = Spanned::new(text.span(), path.to_owned());
            let before = self.problems.len();
            let resolved = self.path(&spanned, "source");
            return (self.problems.len() == before).then_some(CredentialSource::File(resolved));
        }
        if let Some(name) = value.strip_prefix("systemd:") {
            let valid = !name.is_empty() && name != "." && name != ".." && !name.contains('/');
            if !valid {
                self.push(Problem::new(
                    text.span(),
                    format!("{name:?} is not a systemd credential name"),
                    "invalid credential name",
                    "name the credential as in the unit's LoadCredential=NAME:/path, like \
                     source = \"systemd:social\" (no slashes)",
                ));
                return None;
            }
            return Some(CredentialSource::Systemd(name.to_owned()));
        }
        if let Some(command) = value.strip_prefix("command:") {
            return match argv::split(command) {
                Ok(args) if !args.is_empty() => Some(CredentialSource::Command(args)),
                Ok(_) => {
                    self.push(Problem::new(
                        text.span(),
                        "source = \"command:\" names no program",
                        "empty command",
                        "name the program that prints the secret, like source = \"command:pass show social\"",
                    ));
                    None
                }
                Err(err) => {
                    self.push(Problem::new(
                        text.span(),
                        format!("the command cannot be split into arguments: {err}"),
                        "unbalanced quoting",
                        "close every quote; arguments are split at spaces, 'single' and \"double\" quotes \
                         group words, and \\ escapes one character (no shell runs the command)",
                    ));
                    None
                }
            };
        }
        if let Some(reference) = value.strip_prefix("vault:") {
            let (path, field) = reference.split_once('#').unwrap_or((reference, ""));
            let path = path.trim_matches('/');
            let clean = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '?' || c == '#');
            if !clean(path) || !clean(field) || path.split('/').any(|segment| segment == "..") {
                self.push(Problem::new(
                    text.span(),
                    format!("{reference:?} is not a Vault KV v2 reference PATH#FIELD"),
                    "invalid vault reference",
                    "write the API path of the secret and the key inside it, like \
                     source = \"vault:kv/data/agent#social\" (VAULT_ADDR and VAULT_TOKEN come from the environment)",
                ));
                return None;
            }
            return Some(CredentialSource::Vault { path: path.to_owned(), field: field.to_owned() });
        }
        // The value is never echoed: it is probably the secret itself.
        self.push(
            Problem::new(
                text.span(),
                format!("credential source is none of {SOURCE_FORMS}; it looks like the secret itself"),
                "literal value (masked)",
                LITERAL_SECRET_HELP,
            )
            .secret(),
        );
        None
    }

    /// `introspection_url` and `introspection_credential` of an upstream:
    /// the URL is http(s), https unless loopback (the token travels in the
    /// body), without user credentials, query or fragment; the upstream needs
    /// a credential to introspect; the client credential must be defined and
    /// only makes sense with a URL.
    pub(super) fn introspection(
        &mut self,
        url: Option<Spanned<String>>,
        client: Option<Spanned<String>>,
        has_credential: bool,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
    ) -> (Option<String>, Option<String>) {
        if let Some(client) = &client {
            self.credential_ref(client, credentials, false);
            self.credential_environment(client, credentials, "this upstream's introspection");
            if url.is_none() {
                self.push(Problem::new(
                    client.span(),
                    "introspection_credential is set but the upstream has no introspection_url to use it with",
                    "no introspection_url",
                    "add introspection_url = \"https://auth.example/oauth/introspect\", or remove \
                     introspection_credential",
                ));
            }
        }
        let Some(url) = url else { return (None, client.map(Spanned::into_inner)) };
        if let Err((message, help)) = check_introspection_url(url.get_ref()) {
            let problem = Problem::new(url.span(), message, "invalid introspection_url", help);
            self.push(if url.get_ref().contains('@') { problem.secret() } else { problem });
            return (None, client.map(Spanned::into_inner));
        }
        if !has_credential {
            self.push(Problem::new(
                url.span(),
                "introspection_url is set but the upstream has no credential whose token it would check",
                "no credential",
                "add credential = \"NAME\", or remove introspection_url",
            ));
        }
        (Some(url.into_inner()), client.map(Spanned::into_inner))
    }

    /// A credential used by an upstream or LLM provider must belong to the
    /// agent's environment: a dev deployment holding a prod token (or the
    /// reverse) is how test traffic reaches real accounts.
    pub(super) fn credential_environment(
        &mut self,
        name: &Spanned<String>,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
        user: &str,
    ) {
        let Some(Some(credential)) = credentials.get(name.get_ref()) else { return };
        if credential.environment == self.agent_environment {
            return;
        }
        let (agent, theirs) = (self.agent_environment.as_str(), credential.environment.as_str());
        self.push(Problem::new(
            name.span(),
            format!(
                "{user} uses credential `{}`, which is a {theirs} credential, but [agent] environment is {agent}",
                name.get_ref()
            ),
            format!("{theirs} credential in a {agent} deployment"),
            format!(
                "give this {agent} deployment its own {agent} credential, or set environment = \"{agent}\" in \
                 [credentials.{}] if it really is one",
                name.get_ref()
            ),
        ));
    }

    /// `credential = "NAME"` must name a `[credentials.NAME]` entry; when the
    /// key is `optional`, removing it is offered as a fix too.
    pub(super) fn credential_ref(
        &mut self,
        name: &Spanned<String>,
        credentials: &BTreeMap<String, Option<CredentialConfig>>,
        optional: bool,
    ) {
        if credentials.contains_key(name.get_ref()) {
            return;
        }
        let defined: Vec<&str> = credentials.keys().map(String::as_str).collect();
        let help = if defined.is_empty() {
            let remove =
                if optional { format!(", or remove credential = \"{}\"", name.get_ref()) } else { String::new() };
            format!(
                "no credentials are defined; add [credentials.{}] with source = \"env:NAME\"{remove}",
                name.get_ref()
            )
        } else {
            format!(
                "use one of: {}; or add [credentials.{}] with source = \"env:NAME\"",
                defined.join(", "),
                name.get_ref()
            )
        };
        self.push(Problem::new(
            name.span(),
            format!("credential {:?} is not defined", name.get_ref()),
            "unknown credential",
            help,
        ));
    }
}

/// `2027-03-01` (00:00 UTC) or RFC 3339 (`2027-03-01T12:00:00Z`).
pub(crate) fn parse_expiry(text: &str) -> Option<SystemTime> {
    let date_only = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &date_only) {
        return Some(date.midnight().assume_utc().into());
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok().map(SystemTime::from)
}

/// An `introspection_url`: http or https with a host, no user credentials,
/// query or fragment, and https unless the host is loopback. The error is
/// (message, fix); the message never repeats a URL holding credentials.
fn check_introspection_url(text: &str) -> Result<(), (String, String)> {
    let fix = "write the RFC 7662 endpoint of the upstream's authorization server, like \
               introspection_url = \"https://auth.example/oauth/introspect\"";
    let bad = |what: &str| Err((format!("introspection_url {text:?} {what}"), fix.to_owned()));
    if text.contains('#') {
        return bad("has a #fragment");
    }
    let Ok(uri) = text.parse::<http::Uri>() else {
        return bad("is not a URL");
    };
    let scheme = uri.scheme_str().map(str::to_ascii_lowercase);
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return bad(if scheme.is_some() { "is not an http or https URL" } else { "has no scheme (https://)" });
    }
    let Some(authority) = uri.authority() else {
        return bad("has no host");
    };
    if authority.as_str().contains('@') {
        return Err((
            "introspection_url contains user credentials".to_owned(),
            "remove user:password@ from the URL and put client_id:client_secret in a [credentials.NAME] \
             section named by introspection_credential = \"NAME\""
                .to_owned(),
        ));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return bad("has no host");
    }
    if uri.query().is_some() {
        return Err((
            format!("introspection_url {text:?} has a ?query"),
            "remove the query; client credentials belong in a [credentials.NAME] section named by \
             introspection_credential = \"NAME\""
                .to_owned(),
        ));
    }
    if scheme.as_deref() == Some("http") && !super::alerts::is_loopback_host(host) {
        return Err((
            format!(
                "introspection_url {text:?} is plain http on a non-loopback host, so the token would cross the network unencrypted"
            ),
            "use https (plain http is only for an endpoint on 127.0.0.1, ::1 or localhost)".to_owned(),
        ));
    }
    Ok(())
}
