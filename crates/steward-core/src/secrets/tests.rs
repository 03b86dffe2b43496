use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn file_source_requires_private_mode_and_trims_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "s3cr3t-value\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = resolve_one("social", &CredentialSource::File(path.clone())).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("chmod 600"), "{msg}");
    assert!(msg.contains("social"), "{msg}");
    assert!(!msg.contains("s3cr3t-value"));

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let value = resolve_one("social", &CredentialSource::File(path)).unwrap();
    assert_eq!(value.expose_secret(), "s3cr3t-value");
}

#[test]
fn env_source_missing_names_the_variable() {
    let err = resolve_one("social", &CredentialSource::Env("STEWARD_TEST_SURELY_UNSET_VAR".into())).unwrap_err();
    assert!(err.to_string().contains("STEWARD_TEST_SURELY_UNSET_VAR"));
    assert!(resolve_one("path", &CredentialSource::Env("PATH".into())).is_ok());
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
