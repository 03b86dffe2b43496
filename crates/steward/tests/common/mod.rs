//! Shared harness for the binary's integration tests: a temp dir, a mock
//! upstream, a config that points at it with a planted canary credential, the
//! real `steward run` child process, and the leak check every test ends with.

#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] fns: a failed step is a failed test")]
#![expect(dead_code, reason = "each test binary uses a different part of the harness")]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
pub use leak_check::{assert_no_needles, private_file, with_encodings};
pub use mock_upstream::MockUpstream;

pub mod dashboard;

/// The planted upstream credential: must reach the upstream and nothing else.
pub const CANARY_TOKEN: &str = "canary-upstream-token-9f8e7d6c5b4a";

/// The planted LLM provider key (`[credentials.llm]`, file `llm.token`).
pub const CANARY_LLM_KEY: &str = "canary-llm-key-0a1b2c3d4e5f6789";

/// An unsigned JWT expiring at `at` (steward reads `exp`, never the signature).
pub fn jwt_expiring(at: std::time::SystemTime) -> String {
    let exp = at.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
    format!("{}.{}.c2lnbmF0dXJl", b64(header), b64(serde_json::json!({"sub": "poster", "exp": exp})))
}

/// Config body after `[upstreams.social]`; `{base}` is replaced by the mock's URL.
pub const DEFAULT_TOOLS: &str = r#"
[[tools]]
name = "post"
upstream = "social"
match = "POST /api/v1/statuses"
side_effect = true
limit = "10/hour"
retry = "never"

[[tools]]
name = "read_status"
upstream = "social"
match = "GET /api/v1/statuses/{id}"
retry = "idempotent"

[[tools]]
name = "list"
upstream = "social"
match = "GET /api/v1/statuses"

[[tools]]
name = "redirect"
upstream = "social"
match = "GET /redirect"

[[tools]]
name = "echo"
upstream = "social"
match = "POST /echo"
side_effect = false
"#;

/// Tools whose posts declare their undo (a DELETE of the status the
/// response names), for the undo tests (`undo.rs`, `fleet.rs`).
pub const UNDOABLE_TOOLS: &str = r#"
[[tools]]
name = "post"
upstream = "social"
match = "POST /api/v1/statuses"
side_effect = true
retry = "never"
undo = { tool = "delete_status", path = "/api/v1/statuses/{response.id}" }

[[tools]]
name = "delete_status"
upstream = "social"
match = "DELETE /api/v1/statuses/{id}"
limit = "100/hour"
retry = "never"

[[tools]]
name = "list"
upstream = "social"
match = "GET /api/v1/statuses"

[[tools]]
name = "echo"
upstream = "social"
match = "POST /echo"
side_effect = true
undo = { tool = "delete_status", path = "/api/v1/statuses/{response.id}" }
"#;

/// The account supervised agents run as in these tests (and `.ci/run` creates).
pub const AGENT_USER: &str = "steward-agent";

/// uid and gid of [`AGENT_USER`], created when missing. The supervisor tests
/// run as root, as CI does: steward needs CAP_SETUID to run the agent as
/// its own user, and refuses to run it as its own.
#[expect(clippy::panic, reason = "a test helper fails its test by panicking, saying what went wrong")]
pub fn agent_user() -> (u32, u32) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the supervised-agent tests need root (as in CI): steward runs the agent as the {AGENT_USER} user"
    );
    for _ in 0..50 {
        if let Ok(Some(user)) = nix::unistd::User::from_name(AGENT_USER) {
            return (user.uid.as_raw(), user.gid.as_raw());
        }
        // Parallel tests may race to create it: useradd then fails on its lock; retry.
        let _ = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", AGENT_USER])
            .stderr(Stdio::null())
            .status();
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("cannot create the {AGENT_USER} user with useradd");
}

/// The binary under test: this build's, or `$STEWARD_BIN` (to show that a
/// regression test fails on an older build: `STEWARD_BIN=/path/to/old/steward
/// cargo test -p steward --test enforced`).
pub fn steward_bin() -> PathBuf {
    std::env::var_os("STEWARD_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_steward")), PathBuf::from)
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub mock: MockUpstream,
    pub config_path: PathBuf,
    child: Option<Child>,
    pub addr: Option<String>,
    pub token: String,
}

impl Env {
    /// A fresh environment; `logging` is extra lines for the `[logging]` section.
    pub async fn new(logging: &str) -> Env {
        Self::with_tools(logging, DEFAULT_TOOLS).await
    }

    pub async fn with_tools(logging: &str, tools: &str) -> Env {
        Self::build("", "", logging, tools).await
    }

    /// An environment whose `[gateway]` section also has `gateway` (TOML lines:
    /// `header_timeout = "1s"`, `max_connections = 8`).
    pub async fn with_gateway(gateway: &str, tools: &str) -> Env {
        Self::build("", gateway, "", tools).await
    }

    /// An environment whose `[agent]` section also has `agent` (TOML lines:
    /// `command = [...]`, `stop_grace = ...`).
    pub async fn with_agent(agent: &str, logging: &str) -> Env {
        Self::build(agent, "", logging, DEFAULT_TOOLS).await
    }

    /// [`Env::with_agent`] with `tools` (and any sections after them) instead of the default tools.
    pub async fn with_agent_and_tools(agent: &str, logging: &str, tools: &str) -> Env {
        Self::build(agent, "", logging, tools).await
    }

    async fn build(agent: &str, gateway: &str, logging: &str, tools: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        // A supervised agent runs as its own user (steward refuses anything
        // else), in ./work, which it owns; it may enter the test dir but
        // read nothing of steward's in it.
        let agent = if agent.contains("command") {
            let user = agent_user();
            std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
            let work = dir.path().join("work");
            std::fs::create_dir(&work).unwrap();
            std::os::unix::fs::chown(&work, Some(user.0), Some(user.1)).unwrap();
            let mut agent = agent.to_owned();
            if !agent.contains("user =") {
                agent.push_str(&format!("\nuser = \"{AGENT_USER}\""));
            }
            if !agent.contains("workdir =") {
                agent.push_str("\nworkdir = \"./work\"");
            }
            agent
        } else {
            agent.to_owned()
        };
        let agent = agent.as_str();
        let mock = MockUpstream::start().await.unwrap();
        private_file(&dir.path().join("social.token"), &format!("{CANARY_TOKEN}\n"));
        private_file(&dir.path().join("llm.token"), &format!("{CANARY_LLM_KEY}\n"));
        let config = format!(
            r#"
[agent]
name = "test-agent"
environment = "prod"
{agent}

[gateway]
listen = "127.0.0.1:0"
max_body = "64KB"
{gateway}

[state]
dir = "./state"

[logging]
dir = "./state/logs"
{logging}

[credentials.social]
source = "file:social.token"

[credentials.llm]
source = "file:llm.token"

[upstreams.social]
base_url = "{base}"
credential = "social"
auth = {{ header = "Authorization", format = "Bearer {{secret}}" }}
read_timeout = "5s"

{tools}

[loop_breaker]
max_identical = 5
window = "10m"

[unmatched]
policy = "deny"
"#,
            base = mock.base_url(),
            tools = tools.replace("{base}", &mock.base_url())
        );
        let config_path = dir.path().join("steward.toml");
        std::fs::write(&config_path, config).unwrap();
        Env { dir, mock, config_path, child: None, addr: None, token: String::new() }
    }

    /// `<dir>/work/<name>`: the supervised agent's working directory.
    pub fn work(&self, name: &str) -> PathBuf {
        self.dir.path().join("work").join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `steward <args> --config <this env's config>`
    pub fn steward(&self, args: &[&str]) -> std::process::Output {
        Command::new(steward_bin())
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// Starts `steward run` and waits until it listens.
    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// [`Env::start`] with extra variables in steward's own environment.
    #[expect(clippy::panic, reason = "a test helper fails its test by panicking, saying what went wrong")]
    pub fn start_with_env(&mut self, vars: &[(&str, &str)]) {
        assert!(self.child.is_none(), "daemon already started");
        let addr_file = self.state_dir().join("daemon.addr");
        let _ = std::fs::remove_file(&addr_file);
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("daemon.stderr")).unwrap();
        let child = Command::new(steward_bin())
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env("STEWARD_LOG", "info")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&addr_file) {
                self.addr = Some(addr.trim().to_owned());
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("steward run exited early ({status}): {}", self.daemon_log());
            }
            assert!(Instant::now() < deadline, "steward did not start: {}", self.daemon_log());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.token = std::fs::read_to_string(self.state_dir().join("agent.token")).unwrap().trim().to_owned();
    }

    /// SIGTERM and wait (a clean drain); `kill9` instead simulates a crash.
    pub fn stop(&mut self, kill9: bool) {
        if let Some(mut child) = self.child.take() {
            let signal = if kill9 { "-KILL" } else { "-TERM" };
            Command::new("kill").arg(signal).arg(child.id().to_string()).status().unwrap();
            let status = child.wait().unwrap();
            if !kill9 {
                assert!(status.success(), "steward run exited with {status}: {}", self.daemon_log());
            }
        }
    }

    pub fn restart(&mut self) {
        self.stop(false);
        self.start();
    }

    /// The running daemon's pid.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.stderr")).unwrap_or_default()
    }

    #[expect(clippy::expect_used, reason = "a test helper: a failed step is a failed test")]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr.as_deref().expect("daemon not started"))
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
    }

    /// An authenticated request builder.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client().request(method, self.url(path)).bearer_auth(&self.token)
    }

    /// The last line of every call: every audit line except the `admitted`
    /// ones an allowed call writes before it is forwarded, and the lines of
    /// config reloads (`phase = "reload"`), mode changes
    /// (`phase = "supervision"`) and operator actions (`phase =
    /// "operator"`: stop, resume, undo through the admin API), which are
    /// not calls.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        self.all_audit_lines()
            .into_iter()
            .filter(|line| !matches!(line["phase"].as_str(), Some("admitted" | "reload" | "supervision" | "operator")))
            .collect()
    }

    /// Every audit line, across rotated files (not archives), parsed.
    pub fn all_audit_lines(&self) -> Vec<serde_json::Value> {
        let dir = self.state_dir().join("logs");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Waits until the audit log holds `n` last lines (records of streamed
    /// responses are written as the body ends, which can trail the client).
    pub async fn wait_audit_lines(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.audit_lines();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One HTTP/1.1 exchange over a fresh TCP connection, byte for byte: an
    /// HTTP client would normalize the targets under test (`\\`, `..`).
    /// With `authed`, the agent's token goes in `Authorization`.
    #[expect(clippy::expect_used, reason = "a test helper: a failed step is a failed test")]
    pub fn raw(&self, method: &str, target: &[u8], body: &[u8], authed: bool) -> RawResponse {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.addr.as_deref().expect("daemon not started")).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut request = format!("{method} ").into_bytes();
        request.extend_from_slice(target);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if authed {
            request.extend_from_slice(format!("Authorization: Bearer {}\r\n", self.token).as_bytes());
        }
        request.extend_from_slice(
            format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        );
        request.extend_from_slice(body);
        stream.write_all(&request).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        RawResponse::parse(&response)
    }

    /// Journal rows, newest first (`steward last --json`).
    pub fn journal(&self) -> Vec<serde_json::Value> {
        let out = self.steward(&["last", "--json", "-n", "100000"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The shared leak check: no planted secret (nor its common encodings)
    /// in any file steward wrote, except the files meant to hold it.
    pub fn assert_no_secret_leaked(&self) {
        let mut needles = with_encodings(&[CANARY_TOKEN, CANARY_LLM_KEY]);
        if !self.token.is_empty() {
            needles.push(self.token.clone());
        }
        let allowed = [
            self.dir.path().join("social.token"),
            self.dir.path().join("llm.token"),
            self.state_dir().join("agent.token"),
        ];
        assert_no_needles(self.dir.path(), &needles, &allowed);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A response read off the wire by [`Env::raw`].
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    fn parse(bytes: &[u8]) -> RawResponse {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        RawResponse { status, headers, body: body.to_owned() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The refusal's machine-readable reason, in any of the three error shapes.
    pub fn reason(&self) -> String {
        let body = self.body.find('{').map_or("", |i| &self.body[i..]);
        let body = body.rfind('}').map_or(body, |i| &body[..=i]);
        let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        value["error"]["reason"].as_str().unwrap_or_default().to_owned()
    }
}
