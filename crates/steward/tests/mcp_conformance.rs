//! The MCP conformance suite (`@modelcontextprotocol/conformance`, npm,
//! pinned and installed by `.ci/run` into `.mcp-node`), run twice per
//! server, directly and through steward, asserting the same result for
//! every check both ways: steward relays what it does not decide.
//!
//! The headline server is the suite's own reference server,
//! `examples/servers/typescript/everything-server.ts` of the suite's
//! repository at the 0.1.13 release, vendored in
//! `tests/fixtures/mcp-conformance` (run with `tsx`, its dependencies pinned
//! in `.mcp-node`): it implements every `test_*` tool, prompt and resource
//! the suite asks for, so every scenario passes directly, and through
//! steward (`[mcp.conformance] url = ...`, steward an HTTP MCP client of it).
//! The MCP project's demo server `@modelcontextprotocol/server-everything`
//! runs too (through steward over stdio); it lacks the `test_*` names, so
//! many of its scenarios fail, the same way both ways, except that steward
//! passes `dns-rebinding-protection` where it fails. The README records both.
//!
//! The suite's client sends no `Authorization` header and has no option
//! for one, so the through-steward runs go through a loopback proxy in
//! this test that adds the agent's steward token and passes everything
//! else (method, path, headers, `Host` included, and streamed bodies) on
//! as it is.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] fns: a failed step is a failed test"
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::Env;

/// The whole suite takes about 3 s against the reference server; this only
/// catches a hang.
const SUITE_TIMEOUT: Duration = Duration::from_secs(180);

/// A scenario's checks: check id → status (`SUCCESS`, `FAILURE`,
/// `WARNING`, ...), `INFO` checks left out.
type Results = BTreeMap<String, BTreeMap<String, String>>;

/// `.mcp-node`, where `.ci/run` installs the pinned npm packages.
fn mcp_node() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.mcp-node")
}

/// What the test runs: the suite, server-everything and `tsx` (which runs
/// the vendored TypeScript reference server).
struct Installed {
    /// The suite's CLI.
    suite: PathBuf,
    /// server-everything's entry point.
    everything: PathBuf,
    /// `tsx`'s loader, for `node --import`.
    tsx: PathBuf,
}

/// The entry points, `None` (NOT RUN, loudly) when node or a package is
/// missing, unless `STEWARD_REQUIRE_MCP` is set, as CI does.
fn installed() -> Option<Installed> {
    let modules = mcp_node().join("node_modules");
    let installed = Installed {
        suite: modules.join("@modelcontextprotocol/conformance/dist/index.js"),
        everything: modules.join("@modelcontextprotocol/server-everything/dist/index.js"),
        tsx: modules.join("tsx/dist/loader.mjs"),
    };
    let node = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if node && installed.suite.exists() && installed.everything.exists() && installed.tsx.exists() {
        return Some(installed);
    }
    assert!(
        std::env::var_os("STEWARD_REQUIRE_MCP").is_none(),
        "STEWARD_REQUIRE_MCP is set but node, @modelcontextprotocol/conformance, server-everything or tsx (.mcp-node) is missing; run .ci/run"
    );
    eprintln!("!!! NOT RUN: the MCP conformance suite is not installed in .mcp-node (run .ci/run) !!!");
    None
}

/// The suite's own reference server on 127.0.0.1:`port`, once it listens,
/// and the directory it runs from (removed on drop).
///
/// Node resolves the server's imports (`express`, `zod`, the SDK) from the
/// file's own directory upwards, so the vendored file is copied into a
/// directory inside `.mcp-node` first. It would listen on every interface:
/// `tests/sdk/loopback.mjs` keeps it on 127.0.0.1.
async fn reference_server(tsx: &Path, port: u16) -> (tokio::process::Child, tempfile::TempDir) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp-conformance/everything-server.ts");
    let dir = tempfile::tempdir_in(mcp_node()).unwrap();
    let server = dir.path().join("everything-server.ts");
    std::fs::copy(&fixture, &server).unwrap();
    let loopback = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/loopback.mjs");
    let file_url = |path: &Path| format!("file://{}", path.canonicalize().unwrap().display());
    let child = tokio::process::Command::new("node")
        .args(["--import", &file_url(&loopback), "--import", &file_url(tsx)])
        .arg(&server)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_listening(port).await;
    (child, dir)
}

/// Runs every active server scenario against `url`, writing under `out`,
/// and reads the results back.
async fn run_suite(suite: &Path, url: &str, out: &Path) -> Results {
    let mut command = tokio::process::Command::new("node");
    command
        .arg(suite)
        .args(["server", "--url", url, "--output-dir"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SUITE_TIMEOUT, command.output()).await;
    let output =
        output.unwrap_or_else(|_| panic!("the conformance suite did not finish within {SUITE_TIMEOUT:?}")).unwrap();
    // Exit 1 means "some scenario failed", which server-everything does.
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("=== SUMMARY ==="), "{summary}\n{}", String::from_utf8_lossy(&output.stderr));
    read_results(out)
}

/// `out/server-<scenario>-<timestamp>/checks.json`, per scenario.
fn read_results(out: &Path) -> Results {
    let mut results = Results::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let entry = entry.unwrap();
        let dir = entry.file_name().to_string_lossy().into_owned();
        // The timestamp is `2026-12-03T19-51-31-781Z`: the last six `-` parts.
        let scenario = dir.strip_prefix("server-").unwrap().rsplitn(7, '-').last().unwrap().to_owned();
        let checks: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.path().join("checks.json")).unwrap()).unwrap();
        let statuses = checks
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] != "INFO")
            .map(|c| (c["id"].as_str().unwrap().to_owned(), c["status"].as_str().unwrap().to_owned()))
            .collect();
        results.insert(scenario, statuses);
    }
    results
}

/// Checks whose outcome differs through steward by design, and why; any
/// other difference fails the test.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[(
    "server-sse-streams-functional",
    "the server answers each POST as an SSE stream, steward answers this scenario's tools/list as application/json \
     (steward answers as SSE only a request with a progress token; the suite scores JSON answers INFO, 'SSE streaming \
     is optional'); the scenario passes both ways",
)];

/// The scenario steward may pass where the server itself fails: steward
/// checks `Host` and `Origin` at its door (DNS-rebinding protection),
/// server-everything does not.
const STEWARD_MAY_PASS: &str = "dns-rebinding-protection";

/// Whether a scenario passed: every check `SUCCESS` or `WARNING`.
fn passed(checks: &BTreeMap<String, String>) -> bool {
    checks.values().all(|s| s == "SUCCESS" || s == "WARNING")
}

/// Every scenario whose checks differ between the two runs, apart from the
/// known differences above, printing each run's results on the way (the
/// record for the README: `cargo test ... -- --nocapture`).
fn differences(server: &str, direct: &Results, through: &Results) -> Vec<String> {
    assert_eq!(direct.keys().collect::<Vec<_>>(), through.keys().collect::<Vec<_>>(), "the same scenarios ran");
    let mut differences = Vec::new();
    for (scenario, checks) in direct {
        eprintln!("{server} {scenario}: direct {checks:?} / through steward {:?}", through[scenario]);
        let (mut direct_checks, mut through_checks) = (checks.clone(), through[scenario].clone());
        for (known, why) in KNOWN_DIFFERENCES {
            // Present one way only: the check is INFO (left out) the other way.
            if direct_checks.contains_key(*known) != through_checks.contains_key(*known) {
                eprintln!("{server} {scenario}: {known} differs, as expected: {why}");
                direct_checks.remove(*known);
                through_checks.remove(*known);
            }
        }
        if scenario == STEWARD_MAY_PASS && !passed(checks) && passed(&through[scenario]) {
            eprintln!("{server} {scenario}: steward passes where the server fails, as expected: {STEWARD_MAY_PASS:?}");
            continue;
        }
        if direct_checks != through_checks || passed(checks) != passed(&through[scenario]) {
            differences.push(format!("{scenario}: direct {checks:?}, through steward {:?}", through[scenario]));
        }
    }
    differences
}

/// A free loopback port (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port`.
async fn wait_listening(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on 127.0.0.1:{port} after 10 s");
}

/// A loopback proxy to `target` that adds `Authorization: Bearer token` and
/// changes nothing else; its address.
async fn token_proxy(target: String, token: String) -> std::net::SocketAddr {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::Response;

    async fn forward(
        State((client, target, token)): State<(reqwest::Client, String, String)>,
        request: Request,
    ) -> Response {
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        let body = axum::body::to_bytes(body, 64 << 20).await.unwrap();
        let sent = client.request(parts.method, &target).headers(headers).body(body).send().await;
        match sent {
            Ok(answer) => {
                let mut response = Response::builder().status(answer.status());
                for (name, value) in answer.headers() {
                    if name != "transfer-encoding" && name != "content-length" && name != "connection" {
                        response = response.header(name, value);
                    }
                }
                response.body(Body::from_stream(answer.bytes_stream())).unwrap()
            }
            Err(err) => Response::builder().status(502).body(Body::from(err.to_string())).unwrap(),
        }
    }

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let app = axum::Router::new().fallback(forward).with_state((client, target, token));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suites_own_reference_server_passes_every_scenario_directly_and_through_steward() {
    let Some(installed) = installed() else { return };
    let out = tempfile::tempdir().unwrap();

    // Directly: the reference server's streamable HTTP.
    let port = free_port();
    let (mut server, _dir) = reference_server(&installed.tsx, port).await;
    let direct = run_suite(&installed.suite, &format!("http://127.0.0.1:{port}/mcp"), &out.path().join("direct")).await;
    server.kill().await.unwrap();

    // Through steward: a fresh server, steward its streamable-HTTP client,
    // every tool allowed.
    let port = free_port();
    let (_server, _dir) = reference_server(&installed.tsx, port).await;
    let config = format!(
        r#"
[mcp.conformance]
url = "http://127.0.0.1:{port}/mcp"

[[tools]]
name = "conformance"
mcp = "conformance"
match = "*"
side_effect = false
"#
    );
    let mut env = Env::with_tools("", &config).await;
    env.start();
    let proxy = token_proxy(env.url("/mcp/conformance"), env.token.clone()).await;
    let through = run_suite(&installed.suite, &format!("http://{proxy}/mcp"), &out.path().join("through")).await;

    assert!(direct.len() >= 30, "the suite ran its scenarios: {direct:#?}");
    let differences = differences("reference", &direct, &through);
    let failed: Vec<_> = direct.iter().filter(|(_, checks)| !passed(checks)).collect();
    assert!(failed.is_empty(), "the suite's own server fails directly: {failed:#?}");
    assert!(differences.is_empty(), "results differ through steward:\n{}", differences.join("\n"));
    // The 12 scenarios that call a tool went through the pipeline: one
    // audit line each.
    let audited = env.audit_lines().into_iter().filter(|l| l["door"] == "mcp").count();
    assert!(audited >= 12, "{audited} MCP audit lines:\n{}", env.daemon_log());
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_gives_the_same_results_directly_and_through_steward() {
    let Some(installed) = installed() else { return };
    let out = tempfile::tempdir().unwrap();

    // Directly: the reference server's streamable HTTP.
    let port = free_port();
    let mut server = tokio::process::Command::new("node")
        .arg(&installed.everything)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_listening(port).await;
    let direct = run_suite(&installed.suite, &format!("http://127.0.0.1:{port}/mcp"), &out.path().join("direct")).await;
    server.kill().await.unwrap();

    // Through steward: the same server over stdio, every tool allowed.
    let config = format!(
        r#"
[mcp.everything]
command = ["node", "{entry}", "stdio"]

[[tools]]
name = "everything"
mcp = "everything"
match = "*"
side_effect = false
"#,
        entry = installed.everything.display()
    );
    let mut env = Env::with_tools("", &config).await;
    env.start();
    let proxy = token_proxy(env.url("/mcp/everything"), env.token.clone()).await;
    let through = run_suite(&installed.suite, &format!("http://{proxy}/mcp"), &out.path().join("through")).await;

    assert!(direct.len() >= 20, "the suite ran its scenarios: {direct:#?}");
    let differences = differences("server-everything", &direct, &through);
    assert!(differences.is_empty(), "results differ through steward:\n{}", differences.join("\n"));
    // The suite's tool calls went through the pipeline: one audit line each.
    let audited = env.audit_lines().into_iter().filter(|l| l["door"] == "mcp").count();
    assert!(audited >= 10, "{audited} MCP audit lines:\n{}", env.daemon_log());
    env.stop(false);
    env.assert_no_secret_leaked();
}
