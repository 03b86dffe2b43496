use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine;

use super::*;
use crate::config::CredentialSource;

/// A config at `dir/steward.toml` from `body` (an `[agent]` section is prepended).
fn config_in(dir: &Path, agent_env: &str, body: &str) -> Config {
    let text = format!("[agent]\nname = \"t\"\nenvironment = \"{agent_env}\"\n\n{body}");
    crate::config::parse(&text, &dir.join("steward.toml")).unwrap()
}

/// An environment lookup over a fixed map.
fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync + use<> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |name: &str| map.get(name).cloned()
}

/// An unsigned JWT (the signature is never checked) whose payload is `claims`.
pub(crate) fn jwt(claims: &serde_json::Value) -> String {
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.c2lnbmF0dXJl", b64(&serde_json::json!({"alg": "HS256", "typ": "JWT"})), b64(claims))
}

/// An unsigned JWT whose `exp` is `at` (whole seconds).
pub(crate) fn jwt_expiring(at: SystemTime) -> String {
    let exp = at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    jwt(&serde_json::json!({ "exp": exp }))
}

fn unix(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

async fn read_value(name: &str, source: &CredentialSource, env: EnvLookup<'_>) -> Result<String, SecretsError> {
    sources::read(name, source, env).await.map(|v| v.value.expose_secret().to_owned())
}

#[tokio::test]
async fn file_source_requires_private_mode_and_trims_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "s3cr3t-value\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = read_value("social", &CredentialSource::File(path.clone()), &process_env).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&format!("chmod 600 {}", path.display())), "{msg}");
    assert!(msg.contains("social"), "{msg}");
    assert!(!msg.contains("s3cr3t-value"));
    assert!(err.is_unsafe());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let value = read_value("social", &CredentialSource::File(path), &process_env).await.unwrap();
    assert_eq!(value, "s3cr3t-value");
}

#[tokio::test]
async fn env_source_missing_names_the_variable() {
    let err = read_value("social", &CredentialSource::Env("SOCIAL".into()), &env_of(&[])).await.unwrap_err();
    assert!(err.to_string().contains("SOCIAL"));
    assert!(!err.is_unsafe(), "a missing variable is local to this machine, not an unsafe setup");
    let value = read_value("social", &CredentialSource::Env("SOCIAL".into()), &env_of(&[("SOCIAL", "tok")])).await;
    assert_eq!(value.unwrap(), "tok");
}

#[tokio::test]
async fn systemd_source_reads_the_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("social"), "from-systemd\n").unwrap();
    // systemd may expose credentials through an ACL: group bits are not refused.
    std::fs::set_permissions(dir.path().join("social"), std::fs::Permissions::from_mode(0o440)).unwrap();
    let source = CredentialSource::Systemd("social".into());
    let env = env_of(&[(CREDENTIALS_DIRECTORY, dir.path().to_str().unwrap())]);
    assert_eq!(read_value("social", &source, &env).await.unwrap(), "from-systemd");

    let err = read_value("social", &source, &env_of(&[])).await.unwrap_err();
    assert!(matches!(err, SecretsError::SystemdUnavailable { .. }));
    assert!(err.to_string().contains("LoadCredential=social:"), "{err}");
}

#[tokio::test]
async fn command_source_trims_stdout_and_never_quotes_stderr() {
    let source = CredentialSource::Command(vec!["printf".into(), "  from-command \\n\\n".into()]);
    assert_eq!(read_value("social", &source, &process_env).await.unwrap(), "from-command");

    let failing = CredentialSource::Command(vec![
        "sh".into(),
        "-c".into(),
        "echo leaked-on-stderr-123 >&2; echo partial; exit 3".into(),
    ]);
    let err = read_value("social", &failing, &process_env).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SecretsError::CommandFailed { .. }), "{msg}");
    assert!(msg.contains("`sh`") && msg.contains("exit status: 3"), "{msg}");
    assert!(!msg.contains("leaked-on-stderr-123") && !msg.contains("partial"), "{msg}");

    let missing = CredentialSource::Command(vec!["/nonexistent/steward-test-program".into()]);
    let err = read_value("social", &missing, &process_env).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn command_source_is_killed_at_its_timeout() {
    // With time paused, the runtime jumps to the timeout as soon as it is idle.
    let source = CredentialSource::Command(vec!["sleep".into(), "600".into()]);
    let err = read_value("social", &source, &process_env).await.unwrap_err();
    assert!(matches!(err, SecretsError::CommandTimeout { secs, .. } if secs == COMMAND_TIMEOUT.as_secs()), "{err}");
}

/// A fake Vault KV v2 endpoint on 127.0.0.1 that knows one secret.
async fn fake_vault() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::{HeaderMap, StatusCode};
    async fn read(headers: HeaderMap) -> (StatusCode, String) {
        if headers.get("x-vault-token").and_then(|v| v.to_str().ok()) != Some("vault-test-token-77") {
            return (StatusCode::FORBIDDEN, r#"{"errors":["permission denied"]}"#.into());
        }
        let body = serde_json::json!({
            "request_id": "r",
            "data": {
                "data": { "social": "from-vault-value", "other": "x" },
                "metadata": { "version": 3 }
            }
        });
        (StatusCode::OK, body.to_string())
    }
    let app = axum::Router::new().route("/v1/kv/data/agent", axum::routing::get(read));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn vault_source_reads_kv_v2_and_registers_the_vault_token() {
    let (addr, server) = fake_vault().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path(), "prod", "[credentials.social]\nsource = \"vault:kv/data/agent#social\"\n");
    let env = env_of(&[("VAULT_ADDR", &addr), ("VAULT_TOKEN", "vault-test-token-77")]);
    let resolution = Secrets::resolve_all_with(&config, &env).await;
    assert!(resolution.errors.is_empty(), "{:?}", resolution.errors);
    let secrets = resolution.secrets;
    assert_eq!(secrets.get("social").unwrap().expose_secret(), "from-vault-value");
    let redactor = secrets.redactor(&AgentToken::from_value("stw_x"), &RedactionConfig::default());
    let line = redactor.redact("value from-vault-value via vault-test-token-77");
    assert!(!line.contains("from-vault-value") && !line.contains("vault-test-token-77"), "{line}");

    let wrong = env_of(&[("VAULT_ADDR", &addr), ("VAULT_TOKEN", "wrong")]);
    let errors = Secrets::resolve_all_with(&config, &wrong).await.errors;
    assert!(errors[0].to_string().contains("permission denied"), "{}", errors[0]);

    let other_field = config_in(dir.path(), "prod", "[credentials.social]\nsource = \"vault:kv/data/agent#missing\"\n");
    let errors = Secrets::resolve_all_with(&other_field, &env).await.errors;
    let msg = errors[0].to_string();
    assert!(msg.contains("no field `missing`") && msg.contains("other, social"), "{msg}");
    assert!(!msg.contains("from-vault-value"), "{msg}");

    let unset = Secrets::resolve_all_with(&config, &env_of(&[("VAULT_ADDR", &addr)])).await.errors;
    assert!(matches!(&unset[0], SecretsError::VaultNotConfigured { var, .. } if var == "VAULT_TOKEN"));
    server.abort();
}

#[tokio::test]
async fn dev_and_prod_sharing_a_value_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(
        dir.path(),
        "prod",
        "[credentials.social_dev]\nsource = \"env:DEV\"\nenvironment = \"dev\"\n\n\
         [credentials.social_prod]\nsource = \"env:PROD\"\nenvironment = \"prod\"\n",
    );
    let shared = env_of(&[("DEV", "same-token-value-42"), ("PROD", "same-token-value-42")]);
    let err = Secrets::resolve_all_with(&config, &shared).await.errors.remove(0);
    let msg = err.to_string();
    assert!(matches!(err, SecretsError::SharedAcrossEnvironments { .. }));
    assert!(msg.contains("`social_dev` (dev)") && msg.contains("`social_prod` (prod)"), "{msg}");
    assert!(!msg.contains("same-token-value-42"));
    assert!(err.is_unsafe());
    assert_eq!(err.credentials(), ["social_dev", "social_prod"]);

    let apart = env_of(&[("DEV", "dev-token"), ("PROD", "prod-token")]);
    assert!(Secrets::resolve_all_with(&config, &apart).await.errors.is_empty());
}

#[test]
fn jwt_exp_is_read_without_checking_the_signature() {
    assert_eq!(jwt_expiry(&jwt(&serde_json::json!({"sub": "a", "exp": 1_900_000_000}))), Some(unix(1_900_000_000)));
    assert_eq!(jwt_expiry(&jwt(&serde_json::json!({"exp": 1_900_000_000.5}))), Some(unix(1_900_000_000)));
    assert_eq!(jwt_expiry(&jwt(&serde_json::json!({"sub": "no exp"}))), None);
    assert_eq!(jwt_expiry("ghp_notajwt"), None);
    assert_eq!(jwt_expiry("a.b.c"), None);
    assert_eq!(jwt_expiry("version.1.2"), None);
    // Padding is tolerated.
    let padded = jwt(&serde_json::json!({"exp": 1_900_000_000})).replacen('.', "==.", 1);
    assert_eq!(jwt_expiry(&padded), Some(unix(1_900_000_000)));
}

#[tokio::test]
async fn expiry_findings_report_the_threshold_crossed() {
    let now = unix(1_800_000_000);
    let day = 86_400;
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(
        dir.path(),
        "prod",
        "[credentials.five]\nsource = \"env:FIVE\"\n\
         [credentials.fourteen]\nsource = \"env:FOURTEEN\"\n\
         [credentials.far]\nsource = \"env:FAR\"\n\
         [credentials.gone]\nsource = \"env:GONE\"\n\
         [credentials.plain]\nsource = \"env:PLAIN\"\n\
         [credentials.declared]\nsource = \"env:PLAIN2\"\nexpires = 2027-06-10\n",
    );
    let exp = |secs: u64| jwt(&serde_json::json!({ "exp": secs }));
    let env = env_of(&[
        ("FIVE", &exp(1_800_000_000 + 5 * day)),
        ("FOURTEEN", &exp(1_800_000_000 + 14 * day)),
        ("FAR", &exp(1_800_000_000 + 40 * day)),
        ("GONE", &exp(1_800_000_000 - 10)),
        ("PLAIN", "plain-token"),
        ("PLAIN2", "plain-token-2"),
    ]);
    let secrets = Secrets::resolve_all_with(&config, &env).await.secrets;
    assert_eq!(secrets.expiry("five").map(|(_, s)| s), Some(ExpirySource::Jwt));
    assert_eq!(secrets.expiry("declared").map(|(_, s)| s), Some(ExpirySource::Declared));
    let findings = expiry_findings(&config, &secrets, now);
    let by_name: HashMap<&str, &ExpiryFinding> = findings.iter().map(|f| (f.credential.as_str(), f)).collect();
    assert_eq!(by_name.len(), 3, "{findings:?}");
    assert_eq!(
        (by_name["five"].days_left, by_name["five"].threshold_hit, by_name["five"].expired),
        (5, Some(7), false)
    );
    assert_eq!(by_name["fourteen"].threshold_hit, Some(14));
    assert_eq!(
        (by_name["gone"].days_left, by_name["gone"].threshold_hit, by_name["gone"].expired),
        (-1, Some(1), true)
    );
    assert!(secrets.is_expired("gone", now) && !secrets.is_expired("five", now) && !secrets.is_expired("plain", now));

    // A day later the five-day credential is inside the 7-day window still; two more, inside 3.
    let later = expiry_findings(&config, &secrets, now + Duration::from_secs(3 * day));
    let five = later.iter().find(|f| f.credential == "five").unwrap();
    assert_eq!((five.days_left, five.threshold_hit), (2, Some(3)));
}

#[tokio::test]
async fn a_declared_expiry_earlier_than_the_jwt_wins() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        config_in(dir.path(), "prod", "[credentials.api]\nsource = \"env:API\"\nexpires = \"2030-01-01T00:00:00Z\"\n");
    let token = jwt(&serde_json::json!({ "exp": 4_000_000_000_u64 }));
    let secrets = Secrets::resolve_all_with(&config, &env_of(&[("API", &token)])).await.secrets;
    assert_eq!(secrets.expiry("api"), Some((unix(1_893_456_000), ExpirySource::Declared)));
}

#[test]
fn a_reload_keeps_old_values_redacted_and_fingerprints_hide_the_value() {
    let token = AgentToken::from_value("stw_agent");
    let old = Secrets::from_values([("social".to_owned(), SecretString::from("old-token-value-aaaa"))]);
    let new = Secrets::from_values([("social".to_owned(), SecretString::from("new-token-value-bbbb"))]);
    assert_ne!(old.fingerprint("social"), new.fingerprint("social"));
    let fingerprint = new.fingerprint("social").unwrap();
    assert_eq!(fingerprint.len(), FINGERPRINT_HEX_LEN);
    assert!(fingerprint.chars().all(|c| c.is_ascii_hexdigit()));

    let new = new.retain_retired(&old);
    assert_eq!(new.retired_count(), 1);
    assert_eq!(new.get("social").unwrap().expose_secret(), "new-token-value-bbbb");
    let redactor = new.redactor(&token, &RedactionConfig::default());
    let line = redactor.redact("old-token-value-aaaa then new-token-value-bbbb");
    assert!(!line.contains("old-token-value-aaaa") && !line.contains("new-token-value-bbbb"), "{line}");

    // Retired values carry over further reloads, without duplicates.
    let newer = Secrets::from_values([("social".to_owned(), SecretString::from("old-token-value-aaaa"))]);
    let newer = newer.retain_retired(&new);
    assert_eq!(newer.retired_count(), 1, "the current value is not also retired");
    let redactor = newer.redactor(&token, &RedactionConfig::default());
    assert!(!redactor.redact("new-token-value-bbbb").contains("bbbb"));
    assert!(!format!("{newer:?}").contains("token-value"));
}

#[tokio::test]
async fn describe_lists_everything_but_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(
        dir.path(),
        "prod",
        "[credentials.social]\nsource = \"env:SOCIAL\"\nexpires = \"2027-03-01\"\nscopes = [\"write:statuses\"]\n\
         [credentials.missing]\nsource = \"env:MISSING\"\n",
    );
    let resolution = Secrets::resolve_all_with(&config, &env_of(&[("SOCIAL", "listed-token-value")])).await;
    let infos = describe(&config, &resolution, unix(1_803_513_600)); // 2027-02-25
    let json = serde_json::to_string(&infos).unwrap();
    assert!(!json.contains("listed-token-value"), "{json}");
    let social = infos.iter().find(|i| i.name == "social").unwrap();
    assert_eq!(social.source, "env");
    assert_eq!(social.environment, "prod");
    assert_eq!(social.expires.as_deref(), Some("2027-03-01"));
    assert_eq!(social.days_left, Some(4));
    assert_eq!(social.scopes, ["write:statuses"]);
    assert_eq!(social.fingerprint, resolution.secrets.fingerprint("social"));
    let missing = infos.iter().find(|i| i.name == "missing").unwrap();
    assert_eq!(missing.fingerprint, None);
    assert!(missing.error.as_deref().unwrap_or_default().contains("MISSING"));
}

#[test]
fn scope_watch_warns_once_per_reported_set() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(
        dir.path(),
        "prod",
        "[policy]\nforbidden_scopes = [\"admin:*\"]\n\n\
         [credentials.gh]\nsource = \"env:GH\"\nscopes = [\"repo\", \"read:org\"]\n\n\
         [upstreams.github]\nbase_url = \"https://api.github.example\"\ncredential = \"gh\"\nscopes_header = \"X-OAuth-Scopes\"\n",
    );
    let watch = ScopeWatch::new(&config);
    let headers = |value: &str| {
        let mut map = http::HeaderMap::new();
        map.insert("x-oauth-scopes", http::HeaderValue::from_str(value).unwrap());
        map
    };
    assert_eq!(watch.observe("github", &headers("read:org, repo")), None, "same set in another order");
    let mismatch = watch.observe("github", &headers("repo, admin:org")).unwrap();
    assert_eq!(mismatch.credential, "gh");
    assert_eq!(mismatch.undeclared, ["admin:org"]);
    assert_eq!(mismatch.missing, ["read:org"]);
    assert_eq!(mismatch.forbidden, ["admin:org"]);
    assert_eq!(watch.observe("github", &headers("repo, admin:org")), None, "warned once");
    assert!(watch.observe("github", &headers("repo")).is_some(), "another set is news");
    assert_eq!(watch.observe("other", &headers("repo")), None);
    assert_eq!(watch.observe("github", &http::HeaderMap::new()), None);
}

#[test]
fn agent_token_is_created_private_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.token");
    let (token, created) = AgentToken::load_or_create(&path).unwrap();
    assert!(created);
    assert!(token.expose().starts_with(AGENT_TOKEN_PREFIX));
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let (again, created) = AgentToken::load_or_create(&path).unwrap();
    assert!(!created);
    assert_eq!(again.expose(), token.expose());
    assert!(token.verify(token.expose().as_bytes()));
    assert!(!token.verify(b"stw_wrong"));
    assert!(!format!("{token:?}").contains(token.expose()));
}
