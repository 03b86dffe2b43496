//! The admin API against a real daemon: it listens only on
//! `<state>/admin.sock` (0600) behind `<state>/admin.token` (0600), refuses
//! the agent's token (saying whose it is) and anyone without a token, and
//! the agent's gateway has no admin route at all.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use http::{Method, StatusCode};
use steward_core::admin::{AdminClient, ClientError};

use common::Env;

/// A client of `env`'s daemon presenting `token` (written to a private file).
fn client_with(env: &Env, token: &str) -> AdminClient {
    let path = env.dir.path().join("presented.token");
    std::fs::write(&path, token).unwrap();
    AdminClient::new(&env.state_dir().join("admin.sock"), &path).unwrap()
}

#[tokio::test]
async fn the_admin_api_answers_only_the_admin_token_on_its_private_socket() {
    let mut env = Env::new("").await;
    env.start();
    let state = env.state_dir();
    let socket = state.join("admin.sock");
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "the admin socket must be private");
    let token_meta = std::fs::metadata(state.join("admin.token")).unwrap();
    assert_eq!(token_meta.permissions().mode() & 0o777, 0o600, "the admin token must be private");
    let admin_token = std::fs::read_to_string(state.join("admin.token")).unwrap();
    assert!(admin_token.starts_with("stwadm_"), "{admin_token}");
    assert_ne!(admin_token.trim(), env.token, "the admin token must differ from the agent's");

    // The admin token: the daemon answers.
    let admin = AdminClient::new(&socket, &state.join("admin.token")).unwrap();
    let (status, body) = admin.request(Method::GET, "/admin/v1/status", None).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pid"].as_u64(), env.daemon_pid().map(u64::from), "{body}");
    assert_eq!(body["kill_switch"]["engaged"], false, "{body}");
    let (status, body) = admin.request(Method::GET, "/admin/v1/nope", None).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // The agent's token: refused, and told why.
    let agent = client_with(&env, &env.token);
    for path in ["/admin/v1/status", "/admin/v1/nope"] {
        let (status, body) = agent.request(Method::GET, path, None).await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("agent's token"), "{body}");
    }
    // No token, or a wrong one: refused too.
    let wrong = client_with(&env, "stwadm_0123456789abcdef0123456789abcdef");
    let (status, body) = wrong.request(Method::POST, "/admin/v1/status", None).await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"]["help"].as_str().unwrap().contains("admin.token"), "{body}");

    // The gateway the agent talks to has no admin route, with any token.
    for token in [env.token.clone(), admin_token.trim().to_owned()] {
        let response = env.client().get(env.url("/admin/v1/status")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
    }

    // Stopped: the socket is gone and a client says how to start steward.
    env.stop(false);
    assert!(!socket.exists(), "the admin socket outlived the daemon");
    match admin.request(Method::GET, "/admin/v1/status", None).await {
        Err(err @ ClientError::NotRunning { .. }) => assert!(err.to_string().contains("steward run"), "{err}"),
        other => panic!("expected NotRunning, got {other:?}"),
    }
    env.assert_no_secret_leaked();
}
