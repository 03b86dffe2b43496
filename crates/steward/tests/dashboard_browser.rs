//! The dashboard in a real browser: headless Chromium driven through
//! WebDriver (`chromedriver`, started here on a free loopback port, killed
//! at the end), against a real daemon and mock-upstream, with supervised
//! mode on. Log in with the one-time URL (a second use fails); an agent
//! call appears in the live feed within a second; Stop kills the agent's
//! next call and Resume lets the one after pass; a held call is approved
//! (the upstream gets exactly one call) or denied (none); Undo on a post
//! deletes it at the upstream; every form also works with JavaScript off.
//!
//! Needs the Debian packages `chromium` and `chromium-driver`. Without them
//! the test prints a loud NOT RUN line, and fails when
//! `STEWARD_REQUIRE_BROWSER=1` (as `.ci/run` sets). With
//! `STEWARD_SCREENSHOTS=<dir>` it saves a PNG of each page there.
//! The browser reaches nothing but loopback: every other host goes to a
//! dead proxy.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use common::dashboard::{self, login_url};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Every wait in this test is bounded by this.
const STEP: Duration = Duration::from_secs(15);

/// `chromedriver` on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts chromedriver, or says why the browser test cannot run.
fn driver(log: &Path) -> Result<Driver, String> {
    for needed in [CHROMEDRIVER, CHROMIUM] {
        if !Path::new(needed).exists() {
            return Err(format!("{needed} is missing (apt-get install chromium chromium-driver)"));
        }
    }
    let port = free_port();
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start {CHROMEDRIVER}: {e}"))?;
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + STEP;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("chromedriver did not listen within 15 s".to_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(driver)
}

/// A headless Chromium session; `javascript` false turns scripts off.
async fn browser(driver: &Driver, profile: &Path, javascript: bool) -> Client {
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-default-apps".to_owned(),
        // Loopback goes direct; anything else to a port nothing listens on.
        "--proxy-server=http://127.0.0.1:9".to_owned(),
        "--window-size=1200,1000".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    if !javascript {
        args.push("--blink-settings=scriptEnabled=false".to_owned());
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), json!({ "binary": CHROMIUM, "args": args }));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut builder = ClientBuilder::new(connector);
    builder.capabilities(caps);
    tokio::time::timeout(STEP, builder.connect(&driver.url)).await.unwrap().unwrap()
}

/// Saves a screenshot of the current page as `<STEWARD_SCREENSHOTS>/<name>.png`.
async fn screenshot(client: &Client, name: &str) {
    let Some(dir) = std::env::var_os("STEWARD_SCREENSHOTS") else { return };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Waits for `css` on the current page (the live script may add it).
#[expect(clippy::panic, reason = "a test helper fails its test by panicking, saying what went wrong")]
async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    match client.wait().at_most(STEP).for_element(Locator::Css(css)).await {
        Ok(element) => element,
        Err(err) => {
            let url = client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let source = client.source().await.unwrap_or_default();
            panic!("waiting for {css}: {err} at {url}: {source}")
        }
    }
}

/// Clicks the element `css` names, found afresh on each try: the live feed
/// may replace a row between finding and clicking it (a stale element), so
/// a failed click is tried again until [`STEP`] has passed.
#[expect(clippy::panic, reason = "a test helper fails its test by panicking, saying what went wrong")]
async fn click(client: &Client, css: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        let element = wait_for(client, css).await;
        match element.click().await {
            Ok(()) => return,
            Err(err) if Instant::now() < deadline => {
                eprintln!("clicking {css} again: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("clicking {css}: {err}"),
        }
    }
}

/// Opens `path` and waits for its `<h1>`.
async fn open(client: &Client, base: &str, path: &str) {
    client.goto(&format!("{base}{path}")).await.unwrap();
    wait_for(client, "h1").await;
}

/// Logs `client` in with a fresh one-time URL; returns the URL used.
async fn log_in(env: &Env, client: &Client) -> String {
    let url = login_url(env);
    client.goto(&url).await.unwrap();
    wait_for(client, "#login").await.click().await.unwrap();
    wait_for(client, "#agent-state").await;
    url
}

async fn agent_list(env: &Env) -> (u16, String) {
    let response = env.req(reqwest::Method::GET, "/api/social/api/v1/statuses").send().await.unwrap();
    let id = response.headers().get("x-steward-call-id").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (response.status().as_u16(), id)
}

/// The agent's post, held for approval: runs until a human decides.
fn agent_post(env: &Env, text: &str) -> tokio::task::JoinHandle<(u16, String, Value)> {
    let request = env
        .req(reqwest::Method::POST, "/api/social/api/v1/statuses")
        .timeout(Duration::from_secs(40))
        .json(&json!({ "status": text }));
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let id =
            response.headers().get("x-steward-call-id").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (status, id, response.json().await.unwrap_or(Value::Null))
    })
}

fn upstream_posts(env: &Env) -> usize {
    env.mock.requests().iter().filter(|r| r.method == "POST" && r.path == "/api/v1/statuses").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_in_a_real_browser() {
    let mut env = dashboard::env("", "[supervised]\nenabled = true\nwait = \"30s\"\n").await;
    let driver = match driver(&env.dir.path().join("chromedriver.log")) {
        Ok(driver) => driver,
        Err(why) => {
            assert!(
                std::env::var("STEWARD_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "STEWARD_REQUIRE_BROWSER=1 and the browser test cannot run: {why}"
            );
            eprintln!("\n!!!!! NOT RUN: the dashboard's real-browser test: {why} !!!!!\n");
            return;
        }
    };
    env.start();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path(), true).await;

    // Log in; the same URL a second time fails.
    let url = log_in(&env, &client).await;
    let base = dashboard::base_of(&url);
    assert_eq!(client.title().await.unwrap(), "Overview · steward");
    client.delete_all_cookies().await.unwrap();
    client.goto(&url).await.unwrap();
    wait_for(&client, "#login").await.click().await.unwrap();
    let error = wait_for(&client, "#error").await.text().await.unwrap();
    assert!(error.contains("not valid"), "{error}");
    open(&client, &base, "/").await;
    assert!(client.current_url().await.unwrap().path() == "/login", "no session after the refused code");
    screenshot(&client, "login").await;
    log_in(&env, &client).await;

    // An agent call appears in the live feed within a second.
    open(&client, &base, "/feed").await;
    wait_for(&client, "#badge").await;
    tokio::time::sleep(Duration::from_millis(800)).await; // the EventSource is connected
    let (status, call) = agent_list(&env).await;
    assert_eq!(status, 200);
    let appeared = Instant::now();
    let selector = format!("#call-{call}");
    loop {
        if client.find(Locator::Css(&selector)).await.is_ok() {
            break;
        }
        assert!(appeared.elapsed() < Duration::from_secs(3), "the call never appeared in the feed");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let took = appeared.elapsed();
    assert!(took < Duration::from_secs(1), "the call took {took:?} to appear");
    // The row expands to its details.
    client.find(Locator::Css(&format!("{selector} summary"))).await.unwrap().click().await.unwrap();
    let details = client.find(Locator::Css(&format!("{selector} dl"))).await.unwrap().text().await.unwrap();
    assert!(details.contains("status") && details.contains("200") && details.contains("attempts"), "{details}");
    screenshot(&client, "feed").await;

    // Stop: the agent's next call is killed; Resume: the one after passes.
    open(&client, &base, "/").await;
    wait_for(&client, "#stop-reason").await.send_keys("browser test").await.unwrap();
    client.find(Locator::Css("#stop")).await.unwrap().click().await.unwrap();
    let state = wait_for(&client, "#agent-state.killed").await.text().await.unwrap();
    assert_eq!(state, "killed");
    let (status, _) = agent_list(&env).await;
    assert_eq!(status, 403, "killed");
    let killed = env.journal().into_iter().find(|r| r["decision"] == "killed");
    assert!(killed.is_some(), "the journal has the killed call");
    client.find(Locator::Css("#resume")).await.unwrap().click().await.unwrap();
    wait_for(&client, "#agent-state:not(.killed)").await;
    let (status, _) = agent_list(&env).await;
    assert_eq!(status, 200, "resumed");
    screenshot(&client, "overview").await;

    // Supervised: a held call appears (badge and title change), Approve:
    // the upstream gets exactly one call.
    let before = upstream_posts(&env);
    let held = agent_post(&env, "approve me");
    let deadline = Instant::now() + STEP;
    while !client.title().await.unwrap().starts_with("(1) ") {
        assert!(Instant::now() < deadline, "the title never showed the pending request");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.find(Locator::Css("#badge")).await.unwrap().text().await.unwrap(), "1");
    open(&client, &base, "/approvals").await;
    wait_for(&client, ".approval").await;
    let request = client.find(Locator::Css(".approval")).await.unwrap().text().await.unwrap();
    assert!(request.contains("approve me") && request.contains("post"), "{request}");
    screenshot(&client, "approvals").await;
    client.find(Locator::Css("button[id^='approve-']")).await.unwrap().click().await.unwrap();
    wait_for(&client, "#none-pending").await;
    let (status, post_call, posted) = tokio::time::timeout(STEP, held).await.unwrap().unwrap();
    assert_eq!(status, 200, "{posted}");
    assert_eq!(upstream_posts(&env), before + 1, "the upstream got exactly one call");

    // Deny: none.
    let held = agent_post(&env, "deny me");
    open(&client, &base, "/approvals").await;
    let reason = loop {
        if let Ok(input) = client.find(Locator::Css("input[id^='deny-reason-']")).await {
            break input;
        }
        assert!(Instant::now() < deadline + STEP, "the second request never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.refresh().await.unwrap();
    };
    reason.send_keys("not today").await.unwrap();
    client.find(Locator::Css("button[id^='deny-']")).await.unwrap().click().await.unwrap();
    wait_for(&client, "#none-pending").await;
    let (status, _, body) = tokio::time::timeout(STEP, held).await.unwrap().unwrap();
    assert_ne!(status, 200, "{body}");
    assert_eq!(upstream_posts(&env), before + 1, "a denied call never reached the upstream");

    // Undo the approved post: mock-upstream deletes it.
    let status_id = posted["id"].as_str().unwrap().to_owned();
    open(&client, &base, "/feed").await;
    let row = format!("#call-{post_call}");
    // Open the row, then Undo; again from the top if the feed replaced the
    // row in between (its details closed again).
    let deadline = Instant::now() + STEP;
    loop {
        click(&client, &format!("{row} summary")).await;
        let undo = wait_for(&client, &format!("#undo-{post_call}")).await;
        match undo.click().await {
            Ok(()) => break,
            Err(err) if Instant::now() < deadline => eprintln!("clicking Undo again: {err}"),
            Err(err) => panic!("clicking Undo: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(&client, "#feed").await;
    // The click posts the form; the undo runs on the daemon while the
    // browser loads the answer (the old page's #feed may be the one found):
    // wait, bounded, for the upstream to say the post is gone.
    let deadline = Instant::now() + STEP;
    let status = loop {
        let gone = reqwest::get(format!("{}/api/v1/statuses/{status_id}", env.mock.base_url())).await.unwrap();
        if gone.status() == 404 || Instant::now() >= deadline {
            break gone.status();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 404, "the post is deleted at the upstream");
    assert!(
        env.mock.requests().iter().any(|r| r.method == "DELETE" && r.path == format!("/api/v1/statuses/{status_id}")),
        "the undo reached the upstream"
    );

    open(&client, &base, "/report").await;
    wait_for(&client, "#verdict").await;
    screenshot(&client, "report").await;
    client.set_window_size(390, 844).await.unwrap();
    open(&client, &base, "/").await;
    screenshot(&client, "overview-phone").await;
    client.close().await.unwrap();

    // JavaScript off: log in, Stop and Resume still work (plain forms).
    let profile = tempfile::tempdir().unwrap();
    let plain = browser(&driver, profile.path(), false).await;
    log_in(&env, &plain).await;
    wait_for(&plain, "#stop").await.click().await.unwrap();
    wait_for(&plain, "#agent-state.killed").await;
    assert_eq!(agent_list(&env).await.0, 403);
    wait_for(&plain, "#resume").await.click().await.unwrap();
    wait_for(&plain, "#agent-state:not(.killed)").await;
    assert_eq!(agent_list(&env).await.0, 200);
    wait_for(&plain, "#logout").await.click().await.unwrap();
    // The old page has an h1 too: wait, bounded, for the login page's URL.
    let deadline = Instant::now() + STEP;
    let path = loop {
        let path = plain.current_url().await.unwrap().path().to_owned();
        if path == "/login" || Instant::now() >= deadline {
            break path;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(path, "/login");
    wait_for(&plain, "h1").await;
    plain.close().await.unwrap();
    drop(driver);

    // Every action was audited via the dashboard, with the session.
    let lines = env.all_audit_lines();
    let ops: Vec<&Value> = lines.iter().filter(|l| l["phase"] == "operator").collect();
    let actions: Vec<&str> = ops.iter().map(|l| l["decision"].as_str().unwrap()).collect();
    assert_eq!(actions, ["stop", "resume", "undo", "stop", "resume"], "{ops:?}");
    assert!(ops.iter().all(|l| l["via"] == "dashboard" && l["by"].as_str().unwrap().starts_with("session ")));
    let decisions: Vec<&Value> = lines.iter().filter(|l| l.get("decided_via").is_some()).collect();
    assert!(decisions.len() >= 2, "approve and deny audited: {decisions:?}");
    assert!(decisions.iter().all(|l| l["decided_via"] == "dashboard"), "{decisions:?}");
    env.assert_no_secret_leaked();
}
