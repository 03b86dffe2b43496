//! The dashboard over plain HTTP, against a real daemon and mock-upstream:
//! the Host allow-list on every route, Origin and CSRF on every POST, no
//! bearer token (the agent's or the admin's) ever accepted, GET never
//! changing state, the one-time login code, session expiry and logout, and
//! the actions audited `via = "dashboard"` with the session.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::time::Duration;

use common::Env;
use common::dashboard::{self, Dash, login, login_url, post_login};
use serde_json::{Value, json};

/// Every route: (method, path).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/feed"),
    ("GET", "/feed?tool=post&decision=allowed&door=api"),
    ("GET", "/approvals"),
    ("GET", "/report"),
    ("GET", "/events"),
    ("GET", "/login"),
    ("GET", "/login?code=0123"),
    ("GET", "/assets/style.css"),
    ("GET", "/assets/live.js"),
    ("GET", "/nope"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("POST", "/stop"),
    ("POST", "/resume"),
    ("POST", "/approvals/abc/approve"),
    ("POST", "/approvals/abc/deny"),
    ("POST", "/calls/abc/undo"),
];

async fn started(dashboard_lines: &str, extra: &str) -> Env {
    let mut env = dashboard::env(dashboard_lines, extra).await;
    env.start();
    env
}

fn kill_engaged(env: &Env) -> bool {
    let out = env.steward(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    status["kill_switch"]["engaged"].as_bool().unwrap()
}

/// What a GET must leave alone: the journal, the audit log, the kill
/// switch, the approvals and the undo plans.
fn snapshot(env: &Env) -> Value {
    let undos = env.steward(&["last", "--json", "--undoable"]);
    json!({
        "journal": env.journal(),
        "audit": env.all_audit_lines().len(),
        "kill": kill_engaged(env),
        "approvals": String::from_utf8_lossy(&env.steward(&["approvals", "--json"]).stdout),
        "undos": String::from_utf8_lossy(&undos.stdout),
    })
}

/// Whether `html` has an inline event handler attribute (` onclick=`, ...).
fn has_event_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(at, _)| {
        let rest = &html[at + 3..];
        let name_len = rest.chars().take_while(char::is_ascii_lowercase).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    })
}

async fn agent_post(env: &Env, text: &str) -> reqwest::Response {
    env.req(reqwest::Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": text })).send().await.unwrap()
}

/// The request of `route` with `host` and the session.
async fn send(dash: &Dash, method: &str, path: &str, host: &str) -> reqwest::Response {
    let client = dashboard::client();
    let url = format!("{}{path}", dash.base);
    let request = match method {
        "GET" => client.get(url),
        _ => client
            .post(url)
            .header("origin", &dash.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={}", dash.csrf)),
    };
    request.header("host", host).header("cookie", format!("steward_session={}", dash.cookie)).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_host_gets_403_on_every_route() {
    let env = started("", "").await;
    let dash = login(&env).await;
    let port = dash.base.rsplit(':').next().unwrap().to_owned();
    for host in ["evil.example".to_owned(), format!("evil.example:{port}"), "127.0.0.1:1".to_owned()] {
        for (method, path) in ROUTES {
            let response = send(&dash, method, path, &host).await;
            assert_eq!(response.status(), 403, "{method} {path} with Host {host}");
            let csp = response.headers()["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
            assert_eq!(response.headers()["x-frame-options"], "DENY");
        }
    }
    // The allowed names, with the bound port.
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let response = send(&dash, "GET", "/assets/style.css", &host).await;
        assert_eq!(response.status(), 200, "{host}");
    }
    assert!(!kill_engaged(&env), "no refused POST did anything");
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_sends_the_security_headers_and_no_third_party_origin() {
    let env = started("", "").await;
    let dash = login(&env).await;
    for path in ["/", "/feed", "/approvals", "/report", "/login", "/assets/style.css", "/assets/live.js"] {
        let response = dash.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'; script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("http"), "{csp}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let body = response.text().await.unwrap();
        assert!(!body.contains("http://") && !body.contains("https://"), "{path} names another origin: {body}");
        if path.starts_with("/assets") {
            continue;
        }
        assert!(!body.contains("<script>") && !has_event_handler(&body), "{path}: inline script: {body}");
        assert!(body.contains("name=\"viewport\""), "{path}");
    }
    let events = dash.get("/events").await;
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    assert_eq!(events.headers()["x-frame-options"], "DENY");
    drop(events);
    // The session cookie: HttpOnly, SameSite=Strict, not Secure over plain HTTP.
    assert!(dash.set_cookie_header.contains("HttpOnly"), "{}", dash.set_cookie_header);
    assert!(dash.set_cookie_header.contains("SameSite=Strict"), "{}", dash.set_cookie_header);
    assert!(dash.set_cookie_header.contains("Path=/"), "{}", dash.set_cookie_header);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cross_origin_or_tokenless_post_is_refused() {
    let env = started("", "").await;
    let dash = login(&env).await;
    let form = "application/x-www-form-urlencoded";
    let good = format!("csrf={}&reason=test", dash.csrf);
    // The classic attack: a form on another site posting text/plain.
    let r = dash.post_raw("/stop", Some("http://evil.example"), "text/plain", &good).await;
    assert_eq!(r.status(), 403);
    // Another origin, even with the right token and type.
    assert_eq!(dash.post_raw("/stop", Some("http://evil.example"), form, &good).await.status(), 403);
    // Another local port is another origin.
    assert_eq!(dash.post_raw("/stop", Some("http://127.0.0.1:1"), form, &good).await.status(), 403);
    // No Origin at all; `null` without the browser's same-origin mark, or
    // with another site's.
    assert_eq!(dash.post_raw("/stop", None, form, &good).await.status(), 403);
    assert_eq!(dash.post_raw("/stop", Some("null"), form, &good).await.status(), 403);
    for site in ["cross-site", "same-site", "none"] {
        let r = dashboard::client()
            .post(format!("{}/stop", dash.base))
            .header("origin", if site == "none" { "null" } else { dash.base.as_str() })
            .header("sec-fetch-site", site)
            .header("cookie", format!("steward_session={}", dash.cookie))
            .header("content-type", form)
            .body(good.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "Sec-Fetch-Site: {site}");
    }
    // Our origin, text/plain: the token is not read from such a body.
    assert_eq!(dash.post_raw("/stop", Some(&dash.base), "text/plain", &good).await.status(), 403);
    // Our origin, no token, a wrong token, another session's token.
    assert_eq!(dash.post_raw("/stop", Some(&dash.base), form, "reason=x").await.status(), 403);
    assert_eq!(dash.post_raw("/stop", Some(&dash.base), form, "csrf=00&reason=x").await.status(), 403);
    let other = login(&env).await;
    let theirs = format!("csrf={}&reason=x", other.csrf);
    assert_eq!(dash.post_raw("/stop", Some(&dash.base), form, &theirs).await.status(), 403);
    // Other methods.
    let put = dashboard::client()
        .put(format!("{}/stop", dash.base))
        .header("origin", &dash.base)
        .header("cookie", format!("steward_session={}", dash.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 405);
    assert!(!kill_engaged(&env), "a refused POST engaged the kill switch");

    // The real form: stop, audited via the dashboard with the session's name.
    let r = dash.post("/stop", "reason=from+the+dashboard").await;
    assert_eq!(r.status(), 303);
    assert!(kill_engaged(&env));
    let r = agent_post(&env, "while stopped").await;
    assert_eq!(r.status(), 403, "the agent's next call is killed");
    assert_eq!(dash.post("/resume", "").await.status(), 303);
    assert!(!kill_engaged(&env));
    let lines = env.all_audit_lines();
    let ops: Vec<&Value> = lines.iter().filter(|l| l["phase"] == "operator").collect();
    assert_eq!(ops.len(), 2, "{ops:?}");
    for (line, action) in ops.iter().zip(["stop", "resume"]) {
        assert_eq!(line["decision"], action);
        assert_eq!(line["via"], "dashboard");
        let by = line["by"].as_str().unwrap();
        assert!(by.starts_with("session ") && by.len() == 16, "{by}");
        assert!(!dash.cookie.contains(&by[8..]), "the audit name is not part of the cookie");
    }
    assert_eq!(ops[0]["reason"], "from the dashboard");
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_are_refused_and_only_the_cookie_is_a_session() {
    let env = started("", "").await;
    let dash = login(&env).await;
    let admin_token = std::fs::read_to_string(env.state_dir().join("admin.token")).unwrap().trim().to_owned();
    for token in [env.token.as_str(), admin_token.as_str()] {
        for (method, path) in ROUTES {
            let client = dashboard::client();
            let url = format!("{}{path}", dash.base);
            let request =
                if *method == "GET" { client.get(url) } else { client.post(url).header("origin", &dash.base) };
            let response = request.bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with a bearer token");
        }
        // A token as the session cookie is no session either.
        let response = dashboard::client()
            .get(format!("{}/", dash.base))
            .header("cookie", format!("steward_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/login");
        let events = dashboard::client()
            .get(format!("{}/events", dash.base))
            .header("cookie", format!("steward_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), 401);
    }
    // Logged out: pages send to the login page, POSTs get 401.
    let anonymous = dashboard::client().get(format!("{}/feed", dash.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    // The gateway never serves the dashboard.
    let gateway = env.req(reqwest::Method::GET, "/login").send().await.unwrap();
    assert_ne!(gateway.status(), 200);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn no_get_changes_anything() {
    let env = started("", "").await;
    let dash = login(&env).await;
    assert_eq!(agent_post(&env, "one").await.status(), 200);
    // A code seen by GET is not used up by it (link previews, prefetch).
    let url = login_url(&env);
    let before = snapshot(&env);
    for (method, path) in ROUTES.iter().filter(|(m, _)| *m == "GET") {
        let response = if *path == "/events" {
            // Read the first events, then drop the stream.
            let mut response = dash.get(path).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), response.chunk()).await;
            response
        } else {
            dash.get(path).await
        };
        assert!(response.status().as_u16() < 500, "{method} {path}: {}", response.status());
    }
    assert_eq!(dashboard::client().get(&url).send().await.unwrap().status(), 200);
    // GET on the action paths: not routes.
    for path in ["/stop", "/resume", "/logout", "/calls/x/undo", "/approvals/x/approve"] {
        let response = dash.get(path).await;
        assert!(matches!(response.status().as_u16(), 404 | 405), "GET {path}: {}", response.status());
    }
    assert_eq!(snapshot(&env), before, "a GET changed the store or the audit log");
    assert_eq!(post_login(&url).await.status(), 303, "the code still works after GETs of its URL");
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_code_works_once_sessions_expire_and_logout_ends_one() {
    let env = started("session_ttl = \"3s\"", "").await;
    let url = login_url(&env);
    assert_eq!(post_login(&url).await.status(), 303);
    let again = post_login(&url).await;
    assert_eq!(again.status(), 403, "a second use of the code");
    assert!(again.text().await.unwrap().contains("not valid"));
    // A made-up code, and none.
    let bogus = format!("{}/login?code=00112233445566778899aabbccddeeff", dashboard::base_of(&url));
    assert_eq!(post_login(&bogus).await.status(), 403);
    // The login form without its cookie (double submit) is refused.
    let base = dashboard::base_of(&url);
    let fresh = login_url(&env);
    let no_cookie = dashboard::client()
        .post(format!("{base}/login"))
        .header("origin", &base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}&code={}", "a".repeat(64), dashboard::code_of(&fresh)))
        .send()
        .await
        .unwrap();
    assert_eq!(no_cookie.status(), 403);
    assert_eq!(post_login(&fresh).await.status(), 303, "a refused form does not burn the code");

    // Logout ends the session.
    let dash = login(&env).await;
    assert_eq!(dash.get("/").await.status(), 200);
    let out = dash.post("/logout", "").await;
    assert_eq!(out.status(), 303);
    assert_eq!(dash.get("/").await.status(), 303, "logged out");
    assert_eq!(dash.post("/stop", "reason=x").await.status(), 401);

    // Expiry.
    let dash = login(&env).await;
    assert_eq!(dash.get("/").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let expired = dash.get("/").await;
    assert_eq!(expired.status(), 303, "an expired session");
    assert_eq!(dash.post("/stop", "reason=x").await.status(), 401);
    assert!(!kill_engaged(&env));
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_agent_sent_is_escaped_and_no_secret_reaches_a_page() {
    let env = started("", "").await;
    let dash = login(&env).await;
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    assert_eq!(agent_post(&env, evil).await.status(), 200);
    let admin_token = std::fs::read_to_string(env.state_dir().join("admin.token")).unwrap().trim().to_owned();
    for path in ["/", "/feed", "/approvals", "/report"] {
        let body = dash.get(path).await.text().await.unwrap();
        assert!(!body.contains("<script>alert") && !body.contains("<img"), "{path}: {body}");
        for secret in [common::CANARY_TOKEN, env.token.as_str(), admin_token.as_str(), dash.cookie.as_str()] {
            assert!(!body.contains(secret), "{path} shows a secret");
        }
    }
    let feed = dash.get("/feed").await.text().await.unwrap();
    assert!(feed.contains("&lt;script&gt;") || feed.contains("post"), "{feed}");
    // No file steward wrote holds the admin token (outside its own file),
    // a login code, or a session cookie.
    let url = login_url(&env);
    let needles = vec![admin_token, dashboard::code_of(&url), dash.cookie.clone(), dash.csrf.clone()];
    let allowed = [env.state_dir().join("admin.token")];
    common::assert_no_needles(env.dir.path(), &needles, &allowed);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn steward_dashboard_without_a_dashboard_says_how_to_add_one() {
    let mut env = Env::new("").await;
    env.start();
    let out = env.steward(&["dashboard"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("add [dashboard] to steward.toml") && err.contains("docs/config.md#dashboard"), "{err}");
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_certificate_the_dashboard_speaks_https_only_and_its_cookie_is_secure() {
    let mut env = started_later("tls_cert = \"tls.crt\"\ntls_key = \"tls.key\"").await;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (from, to) in [("dashboard-test.crt", "tls.crt"), ("dashboard-test.key", "tls.key")] {
        common::private_file(&env.dir.path().join(to), &std::fs::read_to_string(fixtures.join(from)).unwrap());
    }
    env.start();
    let url = login_url(&env);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let base = dashboard::base_of(&url);
    let pem = std::fs::read(fixtures.join("dashboard-test-ca.crt")).unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    // Plain HTTP on the TLS port gets no page.
    let plain = dashboard::client().get(base.replace("https://", "http://") + "/login").send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    // The login over HTTPS: both cookies are Secure.
    let form = client.get(&url).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let token = dashboard::set_cookie(&form, "steward_login").unwrap();
    let login_cookie = form.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(login_cookie.contains("; Secure"), "{login_cookie}");
    let post = |origin: String| {
        client
            .post(format!("{base}/login"))
            .header("origin", origin)
            .header("cookie", format!("steward_login={token}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={token}&code={}", dashboard::code_of(&url)))
            .send()
    };
    // The http:// origin is another origin.
    assert_eq!(post(base.replace("https://", "http://")).await.unwrap().status(), 403);
    let response = post(base.clone()).await.unwrap();
    assert_eq!(response.status(), 303);
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("steward_session="))
        .unwrap();
    assert!(session.contains("; Secure") && session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    env.assert_no_secret_leaked();
}

/// A dashboard environment not started yet.
async fn started_later(dashboard_lines: &str) -> Env {
    dashboard::env(dashboard_lines, "").await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_feed_filters_by_tool_decision_and_door_and_shows_the_undo_button() {
    let env = started("", "").await;
    let dash = login(&env).await;
    let posted = agent_post(&env, "hello").await;
    assert_eq!(posted.status(), 200);
    let post_id = posted.headers()["x-steward-call-id"].to_str().unwrap().to_owned();
    let listed = env.req(reqwest::Method::GET, "/api/social/api/v1/statuses").send().await.unwrap();
    let list_id = listed.headers()["x-steward-call-id"].to_str().unwrap().to_owned();
    let feed = |query: &'static str| {
        let dash = &dash;
        async move { dash.get(&format!("/feed{query}")).await.text().await.unwrap() }
    };
    let all = feed("").await;
    assert!(all.contains(&format!("call-{post_id}")) && all.contains(&format!("call-{list_id}")));
    assert!(all.contains(&format!("id=\"undo-{post_id}\"")), "the post can be undone");
    assert!(!all.contains(&format!("id=\"undo-{list_id}\"")), "a read has no undo");
    let only_list = feed("?tool=list").await;
    assert!(only_list.contains(&format!("call-{list_id}")) && !only_list.contains(&format!("call-{post_id}")));
    let killed = feed("?decision=killed").await;
    assert!(!killed.contains(&format!("call-{list_id}")) && !killed.contains(&format!("call-{post_id}")));
    let api = feed("?door=api").await;
    assert!(api.contains(&format!("call-{list_id}")));
    let llm = feed("?door=llm").await;
    assert!(!llm.contains(&format!("call-{list_id}")));
    // Undo through the form: the upstream deletes the post.
    assert_eq!(dash.post(&format!("/calls/{post_id}/undo"), "").await.status(), 303);
    assert!(env.mock.requests().iter().any(|r| r.method == "DELETE"), "the undo reached the upstream");
    let after = feed("").await;
    assert!(!after.contains(&format!("id=\"undo-{post_id}\"")), "an undone call has no Undo button");
    let ops: Vec<Value> = env.all_audit_lines().into_iter().filter(|l| l["phase"] == "operator").collect();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["decision"], "undo");
    assert_eq!(ops[0]["via"], "dashboard");
    assert_eq!(ops[0]["path"], post_id.as_str());
    env.assert_no_secret_leaked();
}
