//! Tests of the credential keys (`environment`, `expires`, `scopes`, the five
//! source forms), `[policy]`, `scopes_header`, `introspection_url` and
//! `introspection_credential`, and the refusals decided from the file alone:
//! a forbidden scope, a credential of the wrong environment.

use std::time::{Duration, SystemTime};

use super::tests::{MINIMAL, err, ok, render};
use super::*;

#[test]
fn every_source_form_and_the_credential_keys_parse() {
    let c = ok(r#"[agent]
name = "poster"
environment = "dev"

[policy]
forbidden_scopes = ["admin", "admin:*"]
expiry_warning_days = [3, 30, 7, 7]

[credentials.a]
source = "systemd:social"
[credentials.b]
source = "command:pass show 'social token'"
expires = 2027-03-01
[credentials.c]
source = "vault:/kv/data/agent/#social"
environment = "prod"
expires = "2027-03-01T12:00:00+02:00"
scopes = ["write:statuses", " read:accounts "]
"#);
    assert_eq!(c.credentials["a"].source, CredentialSource::Systemd("social".into()));
    assert_eq!(c.credentials["a"].environment, Environment::Dev, "defaults to the agent's");
    assert_eq!(c.credentials["a"].expires, None);
    assert_eq!(
        c.credentials["b"].source,
        CredentialSource::Command(vec!["pass".into(), "show".into(), "social token".into()])
    );
    assert_eq!(c.credentials["b"].expires, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_803_859_200)));
    assert_eq!(
        c.credentials["c"].source,
        CredentialSource::Vault { path: "kv/data/agent".into(), field: "social".into() }
    );
    assert_eq!(c.credentials["c"].environment, Environment::Prod);
    assert_eq!(
        c.credentials["c"].expires,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_803_859_200 + 10 * 3600))
    );
    assert_eq!(c.credentials["c"].scopes, ["write:statuses", "read:accounts"]);
    assert_eq!(c.policy.forbidden_scopes, ["admin", "admin:*"]);
    assert_eq!(c.policy.expiry_warning_days, [30, 7, 3], "sorted descending, deduplicated");
    assert_eq!(c.credentials["b"].source.kind(), "command");
    assert_eq!(c.credentials["b"].source.describe(), "command `pass`", "arguments are not shown");

    let defaults = ok(MINIMAL);
    assert!(defaults.policy.forbidden_scopes.is_empty());
    assert_eq!(defaults.policy.expiry_warning_days, DEFAULT_EXPIRY_WARNING_DAYS);
}

#[test]
fn a_forbidden_scope_is_refused_at_its_line() {
    let e = err(r#"[agent]
name = "poster"
[policy]
forbidden_scopes = ["admin", "admin:*", "*"]
[credentials.social_prod]
source = "env:SOCIAL"
scopes = ["write:statuses", "admin:org"]
"#);
    let shown = render(&e);
    // "*" forbids write:statuses as well: both are reported, in file order.
    let found: Vec<_> = e.errors().map(|p| (p.line_col().unwrap(), p.message().to_owned())).collect();
    assert_eq!(found.len(), 2, "{shown}");
    assert_eq!(found[0].0, (7, 11), "{shown}");
    assert!(found[0].1.contains("(pattern \"*\")"), "{shown}");
    assert_eq!(found[1].0, (7, 29), "{shown}");
    assert!(found[1].1.contains("`social_prod` declares scope \"admin:org\""), "{shown}");
    assert!(found[1].1.contains("pattern \"admin:*\""), "{shown}");
}

#[test]
fn a_credential_of_the_other_environment_is_refused_where_it_is_used() {
    let e = err(r#"[agent]
name = "poster"
environment = "prod"
[credentials.social_dev]
source = "env:DEV"
environment = "dev"
[credentials.unused_dev]
source = "env:OTHER"
environment = "dev"
[upstreams.social]
base_url = "https://s.example"
credential = "social_dev"
[llm.openai]
kind = "openai"
base_url = "https://api.openai.com"
credential = "social_dev"
"#);
    let shown = render(&e);
    let lines: Vec<usize> = e.errors().filter_map(|p| p.line_col()).map(|(l, _)| l).collect();
    assert_eq!(lines, [12, 16], "an unused dev credential is fine; each use is reported:\n{shown}");
    assert!(e.message().contains("a dev credential, but [agent] environment is prod"), "{shown}");
    assert!(e.help_text().unwrap_or_default().contains("environment = \"prod\""), "{shown}");
}

#[test]
fn credential_key_errors_point_at_the_value_and_say_the_fix() {
    let cases: &[(&str, (usize, usize), &str, &str)] = &[
        ("source = \"systemd:a/b\"", (4, 10), "not a systemd credential name", "LoadCredential"),
        ("source = \"command:\"", (4, 10), "names no program", "pass show"),
        ("source = \"command:pass 'open\"", (4, 10), "quote is never closed", "no shell"),
        ("source = \"vault:kv/data/agent\"", (4, 10), "not a Vault KV v2 reference", "#social"),
        ("source = \"vault:kv/../sys#x\"", (4, 10), "not a Vault KV v2 reference", "VAULT_ADDR"),
        ("source = \"env:T\"\nexpires = \"next year\"", (5, 11), "expires is not a date", "2027-03-01"),
        ("source = \"env:T\"\nexpires = 2027-03-01T12:00:00", (5, 11), "expires is not a date", "12:00:00Z"),
        ("source = \"env:T\"\nenvironment = \"staging\"", (5, 15), "environment \"staging\"", "\"dev\""),
        ("source = \"env:T\"\nscopes = [\"a b\"]", (5, 11), "contains spaces", "one scope per string"),
    ];
    let mut failures = Vec::new();
    for (body, at, message, help) in cases {
        let source = format!("{MINIMAL}[credentials.social]\n{body}\n");
        let e = err(&source);
        let shown = render(&e);
        if e.line_col() != Some(*at) || !e.message().contains(message) {
            failures.push(format!("expected {at:?} {message:?}:\n{shown}"));
        } else if !e.help_text().unwrap_or_default().contains(help) {
            failures.push(format!("help lacks {help:?}:\n{shown}"));
        }
    }
    let policy_cases: &[(&str, (usize, usize), &str)] = &[
        ("forbidden_scopes = [\"ad*min\"]", (4, 21), "not a scope, a prefix ending in * or *"),
        ("expiry_warning_days = [0]", (4, 24), "outside 1..=366"),
        ("expiry_warning_days = []", (4, 23), "expiry_warning_days is empty"),
    ];
    for (body, at, message) in policy_cases {
        let e = err(&format!("{MINIMAL}[policy]\n{body}\n"));
        let shown = render(&e);
        if e.line_col() != Some(*at) || !e.message().contains(message) {
            failures.push(format!("expected {at:?} {message:?}:\n{shown}"));
        }
    }
    let e = err(&format!("{MINIMAL}[upstreams.u]\nbase_url = \"https://s.example\"\nscopes_header = \"X Scopes\"\n"));
    if e.line_col() != Some((5, 17)) || !e.message().contains("not a valid HTTP header name") {
        failures.push(render(&e));
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}

/// `[agent]`, a token and a client credential, then one upstream with `keys`.
fn introspected(keys: &str) -> String {
    format!(
        "{MINIMAL}[credentials.social]\nsource = \"env:SOCIAL\"\n[credentials.social_client]\nsource = \"env:CLIENT\"\n\
         [upstreams.social]\nbase_url = \"https://social.example\"\n{keys}"
    )
}

#[test]
fn introspection_url_and_credential_parse_and_loopback_may_be_plain_http() {
    let c = ok(&introspected(
        "credential = \"social\"\nintrospection_url = \"https://auth.social.example/oauth/introspect\"\n\
         introspection_credential = \"social_client\"\n",
    ));
    let social = &c.upstreams["social"];
    assert_eq!(social.introspection_url.as_deref(), Some("https://auth.social.example/oauth/introspect"));
    assert_eq!(social.introspection_credential.as_deref(), Some("social_client"));
    let c = ok(&introspected("credential = \"social\"\n"));
    assert_eq!(
        (c.upstreams["social"].introspection_url.as_ref(), c.upstreams["social"].introspection_credential.as_ref()),
        (None, None)
    );
    for url in ["http://127.0.0.1:9000/introspect", "http://[::1]:9000/introspect", "http://localhost/introspect"] {
        let c = ok(&introspected(&format!("credential = \"social\"\nintrospection_url = \"{url}\"\n")));
        assert_eq!(c.upstreams["social"].introspection_url.as_deref(), Some(url));
        assert_eq!(c.upstreams["social"].introspection_credential, None, "the token itself authenticates");
    }
}

#[test]
fn a_bad_introspection_setup_is_refused_at_its_line_with_the_fix() {
    let url_line = |url: &str| format!("credential = \"social\"\nintrospection_url = \"{url}\"\n");
    // (keys, line:column, message, help)
    let cases: Vec<(String, (usize, usize), &str, &str)> = vec![
        (url_line("http://auth.social.example/introspect"), (10, 21), "plain http on a non-loopback host", "use https"),
        (
            url_line("ftp://auth.social.example/introspect"),
            (10, 21),
            "is not an http or https URL",
            "introspection_url = \"https://",
        ),
        (url_line("auth.social.example/introspect"), (10, 21), "is not a URL", "RFC 7662"),
        (url_line("auth.social.example:443"), (10, 21), "has no scheme", "RFC 7662"),
        (url_line("not a url"), (10, 21), "is not a URL", "RFC 7662"),
        (
            url_line("https://auth.social.example/introspect?client_id=x"),
            (10, 21),
            "has a ?query",
            "introspection_credential",
        ),
        (url_line("https://auth.social.example/introspect#x"), (10, 21), "has a #fragment", "RFC 7662"),
        (
            "introspection_url = \"https://auth.social.example/introspect\"\n".into(),
            (9, 21),
            "no credential whose token it would check",
            "add credential = \"NAME\"",
        ),
        (
            format!("{}introspection_credential = \"nobody\"\n", url_line("https://auth.social.example/i")),
            (11, 28),
            "credential \"nobody\" is not defined",
            "use one of: social, social_client",
        ),
        (
            "credential = \"social\"\nintrospection_credential = \"social_client\"\n".into(),
            (10, 28),
            "no introspection_url to use it with",
            "add introspection_url",
        ),
    ];
    let mut failures = Vec::new();
    for (keys, at, message, help) in cases {
        let e = err(&introspected(&keys));
        let shown = render(&e);
        if e.line_col() != Some(at) || !e.message().contains(message) {
            failures.push(format!("expected {at:?} {message:?}:\n{shown}"));
        } else if !e.help_text().unwrap_or_default().contains(help) {
            failures.push(format!("help lacks {help:?}:\n{shown}"));
        } else if !e.related_errors().is_empty() {
            failures.push(format!("expected one problem:\n{shown}"));
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_client_secret_written_into_the_introspection_url_is_refused_and_masked() {
    let secret = "Zq8xW2vB7nM4kP1sT3yH";
    let source = introspected(&format!(
        "credential = \"social\"\nintrospection_url = \"https://client:{secret}@auth.social.example/introspect\"\n"
    ));
    // The literal scan finds it on its own (validation's masked problem then
    // stands for both, so the report names it once).
    let found = crate::config::find_literal_secrets(&source);
    assert!(found.iter().any(|f| source[f.range.clone()].contains(secret)), "{found:?}");
    let e = err(&source);
    let shown = render(&e);
    assert!(e.message().contains("contains user credentials"), "{shown}");
    assert!(!shown.contains(secret), "the report repeats the secret:\n{shown}");
    assert!(!format!("{e:?}").contains(secret), "Debug repeats the secret");
}

/// Issue 12, item 11: a literal secret the snippet masks was printed in
/// full by the message above it (`auth format "Bearer ghp_..."`, `base_url
/// "...?api_key=sk-proj-..."`). No message, label or help may repeat it,
/// nor any secret-shaped value, in any rendering of the error.
#[test]
fn no_message_label_or_help_repeats_a_literal_secret() {
    let pat = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    let project = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFGH";
    let upstream = |line: &str| {
        format!(
            "{MINIMAL}[credentials.social]\nsource = \"env:SOCIAL\"\n[upstreams.social]\n\
             base_url = \"https://s.example\"\ncredential = \"social\"\n{line}\n"
        )
    };
    // (file, secret, whether a message quotes the value besides the
    // literal-secret problem)
    let cases = [
        (upstream(&format!("auth = {{ header = \"Authorization\", format = \"Bearer {pat}\" }}")), pat, true),
        (upstream(&format!("scopes_header = \"X-{pat}\"")), pat, false),
        (
            format!(
                "{MINIMAL}[credentials.social]\nsource = \"env:SOCIAL\"\n[upstreams.llm]\n\
                 base_url = \"https://api.example.com/v1?api_key={project}\"\ncredential = \"social\"\n"
            ),
            project,
            true,
        ),
        // TOML escapes are undone before a message quotes the value: the
        // rules still recognise what the file spelled differently.
        (
            upstream(
                "auth = { header = \"Authorization\", format = \"Bearer \\u0067hp_16C7e42F292c6912E7710c838347Ae178B4a\" }",
            ),
            pat,
            true,
        ),
    ];
    for (source, secret, quoted) in cases {
        let e = err(&source);
        let shown = render(&e);
        assert!(!shown.contains(secret), "the report repeats the secret:\n{shown}");
        assert!(!e.to_string().contains(secret), "Display repeats the secret: {e}");
        assert!(!format!("{e:?}").contains(secret), "Debug repeats the secret");
        for problem in e.errors() {
            for text in [problem.message(), problem.help_text().unwrap_or_default()] {
                assert!(!text.contains(secret), "{text}");
                assert!(!text.contains(&secret[..12]), "a prefix of the secret survived: {text}");
            }
        }
        // The message still says what is wrong, with the value masked.
        assert_eq!(e.errors().any(|p| p.message().contains("****")), quoted, "{shown}");
    }
}
