//! Tests of the whole load path: the documented example, defaults, every
//! validation error with its location and fix, and the rendered report.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// Where the test configs pretend to live.
pub(super) const PATH: &str = "/srv/poster/steward.toml";

/// The documented example from the design brief, every key present.
const FULL: &str = r#"[agent]
name = "poster"
environment = "prod"                # dev | prod   (default prod)
command = ["python3", "agent.py"]   # optional: steward runs and supervises the agent (no shell)
workdir = "."                       # default: the config file's directory
env = { LOG_LEVEL = "info" }        # plain, non-secret env only
health_url = "http://127.0.0.1:8081/health"   # optional; 2xx = healthy
stop_grace = "10s"                  # SIGTERM -> SIGKILL of the process group
min_uptime = "10s"                  # shorter runs count towards the crash loop

[gateway]
listen = "127.0.0.1:7600"           # default 127.0.0.1:7600
allow_remote = false                # non-loopback `listen` is refused unless true
max_body = "1MB"                    # default 1MB -> GatewayConfig::max_body_bytes
header_timeout = "5s"               # default 10s
body_timeout = "20s"                # default 30s
keepalive_timeout = "90s"           # default 60s
max_connections = 256               # default 1024

[state]
dir = "./.steward"                  # default "./.steward" relative to the config file's directory

[logging]
dir = "./.steward/logs"             # default "<state dir>/logs"
max_file_size = "100MB"
retention_days = 30                 # default 30, >= 1
after_retention = "archive"         # archive (zstd) | delete, default archive
max_total_size = "2GB"              # default 2GB

[credentials.social]
source = "env:SOCIAL_TOKEN"         # env:NAME | file:PATH ; never a literal

[upstreams.social]
base_url = "https://social.example" # http or https URL, no query/fragment; trailing slash removed
credential = "social"               # optional; must name a [credentials.*]
auth = { header = "Authorization", format = "Bearer {secret}" }
connect_timeout = "5s"              # default 5s
read_timeout = "60s"                # default 60s

[[tools]]
name = "post"                       # unique, [a-z0-9_.-]+
upstream = "social"                 # must name an [upstreams.*]
match = "POST /api/v1/statuses"     # METHOD PATH
side_effect = true                  # default: true unless the method is GET/HEAD/OPTIONS
limit = "10/hour"                   # N/second|minute|hour|day
retry = "never"                     # never | idempotent

[loop_breaker]
max_identical = 5                   # default 5; 0 disables
window = "10m"                      # default 10m

[unmatched]
policy = "deny"                     # deny | allow-get ; default deny

[redaction]                         # PII detectors, all default true
email = true
phone = true
credit_card = true
iban = true
ip = true
ssn = true
"#;

/// The smallest valid file.
pub(super) const MINIMAL: &str = "[agent]\nname = \"x\"\n";

pub(super) fn ok(source: &str) -> Config {
    match parse(source, Path::new(PATH)) {
        Ok(config) => config,
        Err(err) => panic!("expected a valid config, got:\n{}", render(&err)),
    }
}

pub(super) fn err(source: &str) -> ConfigError {
    match parse(source, Path::new(PATH)) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(err) => err,
    }
}

pub(super) fn render(err: &ConfigError) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(200)
        .render_report(&mut out, err)
        .unwrap();
    out
}

/// `[agent]` plus one upstream with a credential, then `rest`.
fn with_upstream(rest: &str) -> String {
    format!(
        "[agent]\nname = \"x\"\n[credentials.social]\nsource = \"env:T\"\n\
         [upstreams.social]\nbase_url = \"https://s.example\"\ncredential = \"social\"\n{rest}"
    )
}

#[test]
fn full_example_parses_to_the_expected_config() {
    let c = ok(FULL);
    let dir = PathBuf::from("/srv/poster");
    assert_eq!(c.source_path, dir.join("steward.toml"));
    assert_eq!(c.agent.name, "poster");
    assert_eq!(c.agent.environment, Environment::Prod);
    let process = c.agent.process.as_ref().unwrap();
    assert_eq!(process.command, ["python3", "agent.py"]);
    assert_eq!(process.workdir, dir);
    assert_eq!(process.env.iter().collect::<Vec<_>>(), [(&"LOG_LEVEL".to_owned(), &"info".to_owned())]);
    assert_eq!(process.health_url.as_deref(), Some("http://127.0.0.1:8081/health"));
    assert_eq!(process.stop_grace, Duration::from_secs(10));
    assert_eq!(process.min_uptime, Duration::from_secs(10));
    assert_eq!(c.gateway.listen, "127.0.0.1:7600".parse().unwrap());
    assert!(!c.gateway.allow_remote);
    assert_eq!(c.gateway.max_body_bytes, 1_000_000);
    assert_eq!(c.gateway.header_timeout, Duration::from_secs(5));
    assert_eq!(c.gateway.body_timeout, Duration::from_secs(20));
    assert_eq!(c.gateway.keepalive_timeout, Duration::from_secs(90));
    assert_eq!(c.gateway.max_connections, 256);
    assert_eq!(c.state.dir, dir.join(".steward"));
    assert_eq!(c.state.db_path(), dir.join(".steward/steward.db"));
    assert_eq!(c.logging.dir, dir.join(".steward/logs"));
    assert_eq!(c.logging.max_file_size, 100_000_000);
    assert_eq!(c.logging.retention, Duration::from_secs(30 * 86_400));
    assert_eq!(c.logging.after_retention, AfterRetention::Archive);
    assert_eq!(c.logging.max_total_size, 2_000_000_000);

    assert_eq!(c.credentials.len(), 1);
    assert_eq!(c.credentials["social"].source, CredentialSource::Env("SOCIAL_TOKEN".into()));

    assert_eq!(c.upstreams.len(), 1);
    let up = &c.upstreams["social"];
    assert_eq!(up.base_url, "https://social.example");
    assert_eq!(up.credential.as_deref(), Some("social"));
    assert_eq!(up.auth.header, "Authorization");
    assert_eq!(up.auth.format, "Bearer {secret}");
    assert_eq!(up.connect_timeout, Duration::from_secs(5));
    assert_eq!(up.read_timeout, Duration::from_secs(60));

    assert_eq!(c.tools.len(), 1);
    let t = &c.tools[0];
    assert_eq!(t.name, "post");
    assert_eq!(t.upstream, "social");
    assert_eq!(t.method, "POST");
    assert_eq!(t.path, "/api/v1/statuses");
    assert!(t.side_effect);
    assert_eq!(t.limit, Some(RateLimit { max: 10, per: Duration::from_secs(3_600) }));
    assert_eq!(t.retry, RetryPolicy::Never);

    assert_eq!(c.loop_breaker.max_identical, 5);
    assert_eq!(c.loop_breaker.window, Duration::from_secs(600));
    assert_eq!(c.unmatched, UnmatchedPolicy::Deny);
    let r = c.redaction;
    assert!(r.email && r.phone && r.credit_card && r.iban && r.ip && r.ssn);
}

#[test]
fn minimal_config_gets_every_default() {
    let c = ok(MINIMAL);
    let dir = PathBuf::from("/srv/poster");
    assert_eq!(c.agent.name, "x");
    assert_eq!(c.agent.environment, Environment::Prod);
    assert_eq!(c.agent.process, None);
    assert_eq!(c.gateway.listen, DEFAULT_LISTEN);
    assert_eq!(c.gateway.listen, "127.0.0.1:7600".parse().unwrap());
    assert!(!c.gateway.allow_remote);
    assert_eq!(c.gateway.max_body_bytes, 1_000_000);
    assert_eq!(c.state.dir, dir.join(".steward"));
    assert_eq!(c.logging.dir, dir.join(".steward/logs"));
    assert_eq!(c.logging.max_file_size, 100_000_000);
    assert_eq!(c.logging.retention, Duration::from_secs(30 * 86_400));
    assert_eq!(c.logging.after_retention, AfterRetention::Archive);
    assert_eq!(c.logging.max_total_size, 2_000_000_000);
    assert!(c.credentials.is_empty());
    assert!(c.upstreams.is_empty());
    assert!(c.tools.is_empty());
    assert_eq!(c.loop_breaker.max_identical, 5);
    assert_eq!(c.loop_breaker.window, Duration::from_secs(600));
    assert_eq!(c.unmatched, UnmatchedPolicy::Deny);
    let r = c.redaction;
    assert!(r.email && r.phone && r.credit_card && r.iban && r.ip && r.ssn);
}

#[test]
fn non_default_values_are_read() {
    let c = ok(r#"
[agent]
name = "x"
environment = "dev"
[gateway]
listen = "0.0.0.0:9000"
allow_remote = true
max_body = 65536
[state]
dir = "/var/lib/steward"
[logging]
max_file_size = "4KiB"
retention_days = 7
after_retention = "delete"
max_total_size = "1GiB"
[credentials.social]
source = "env:T"
[upstreams.social]
base_url = "https://s.example"
credential = "social"
auth = { header = "X-Api-Key", format = "{secret}" }
connect_timeout = "500ms"
read_timeout = "2m"
[loop_breaker]
max_identical = 0
window = "1h"
[unmatched]
policy = "allow-get"
[redaction]
email = false
ip = false
"#);
    assert_eq!(c.agent.environment, Environment::Dev);
    assert_eq!(c.gateway.listen, "0.0.0.0:9000".parse().unwrap());
    assert!(c.gateway.allow_remote);
    assert_eq!(c.gateway.max_body_bytes, 65_536);
    assert_eq!(c.state.dir, PathBuf::from("/var/lib/steward"));
    assert_eq!(c.logging.dir, PathBuf::from("/var/lib/steward/logs"));
    assert_eq!(c.logging.max_file_size, 4_096);
    assert_eq!(c.logging.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(c.logging.after_retention, AfterRetention::Delete);
    assert_eq!(c.logging.max_total_size, 1 << 30);
    let up = &c.upstreams["social"];
    assert_eq!(up.auth.header, "X-Api-Key");
    assert_eq!(up.auth.format, "{secret}");
    assert_eq!(up.connect_timeout, Duration::from_millis(500));
    assert_eq!(up.read_timeout, Duration::from_secs(120));
    assert_eq!(c.loop_breaker.max_identical, 0);
    assert_eq!(c.loop_breaker.window, Duration::from_secs(3_600));
    assert_eq!(c.unmatched, UnmatchedPolicy::AllowGet);
    assert!(!c.redaction.email && !c.redaction.ip && c.redaction.phone && c.redaction.ssn);
}

#[test]
fn tool_defaults_follow_the_method() {
    let mut text = with_upstream("");
    for (name, method) in [
        ("get", "GET"),
        ("head", "HEAD"),
        ("options", "OPTIONS"),
        ("put", "PUT"),
        ("delete", "DELETE"),
        ("post", "POST"),
        ("patch", "PATCH"),
        ("any", "*"),
    ] {
        text.push_str(&format!("[[tools]]\nname = \"{name}\"\nupstream = \"social\"\nmatch = \"{method} /x\"\n"));
    }
    let c = ok(&text);
    let by_method: Vec<(&str, bool, RetryPolicy)> =
        c.tools.iter().map(|t| (t.method.as_str(), t.side_effect, t.retry)).collect();
    assert_eq!(
        by_method,
        vec![
            ("GET", false, RetryPolicy::Idempotent),
            ("HEAD", false, RetryPolicy::Idempotent),
            ("OPTIONS", false, RetryPolicy::Idempotent),
            ("PUT", true, RetryPolicy::Idempotent),
            ("DELETE", true, RetryPolicy::Idempotent),
            ("POST", true, RetryPolicy::Never),
            ("PATCH", true, RetryPolicy::Never),
            ("*", true, RetryPolicy::Never),
        ]
    );
    assert!(c.tools.iter().all(|t| t.limit.is_none()));
    // Declaration order is kept: the first matching rule names the call.
    assert_eq!(c.tools[0].name, "get");
    assert_eq!(c.tools[7].name, "any");
}

#[test]
fn explicit_side_effect_and_retry_override_the_method_defaults() {
    let c = ok(&with_upstream(
        "[[tools]]\nname = \"search\"\nupstream = \"social\"\nmatch = \"POST /search\"\n\
         side_effect = false\nretry = \"idempotent\"\n",
    ));
    assert!(!c.tools[0].side_effect);
    assert_eq!(c.tools[0].retry, RetryPolicy::Idempotent);
}

#[test]
fn base_url_is_normalized() {
    for (written, stored) in [
        ("https://s.example/", "https://s.example"),
        ("https://s.example/api/v1/", "https://s.example/api/v1"),
        ("HTTP://127.0.0.1:7700", "http://127.0.0.1:7700"),
        ("http://[::1]:7700/x", "http://[::1]:7700/x"),
    ] {
        let c = ok(&format!("{MINIMAL}[upstreams.u]\nbase_url = \"{written}\"\n"));
        assert_eq!(c.upstreams["u"].base_url, stored);
        assert_eq!(c.upstreams["u"].credential, None);
    }
}

#[test]
fn agent_process_defaults_and_relative_workdir() {
    let c = ok(&format!("{MINIMAL}command = [\"./agent\", \"--once\"]\n"));
    let process = c.agent.process.unwrap();
    assert_eq!(process.command, ["./agent", "--once"]);
    assert_eq!(process.workdir, PathBuf::from("/srv/poster"));
    assert!(process.env.is_empty());
    assert_eq!(process.health_url, None);
    assert_eq!(process.stop_grace, DEFAULT_STOP_GRACE);
    assert_eq!(process.min_uptime, DEFAULT_MIN_UPTIME);
    let c = ok(&format!(
        "{MINIMAL}command = [\"python3\", \"agent.py\"]\nworkdir = \"bots/poster\"\nstop_grace = \"500ms\"\n\
         env = {{ PATH = \"/usr/bin\", LOG_LEVEL = \"debug\" }}\n"
    ));
    let process = c.agent.process.unwrap();
    assert_eq!(process.workdir, PathBuf::from("/srv/poster/bots/poster"));
    assert_eq!(process.stop_grace, Duration::from_millis(500));
    assert_eq!(process.env["PATH"], "/usr/bin");
    assert_eq!(process.env["LOG_LEVEL"], "debug");
}

#[test]
fn localhost_listen_means_loopback() {
    let c = ok(&format!("{MINIMAL}[gateway]\nlisten = \"localhost:8000\"\n"));
    assert_eq!(c.gateway.listen, "127.0.0.1:8000".parse().unwrap());
    let c = ok(&format!("{MINIMAL}[gateway]\nlisten = \"[::1]:8000\"\n"));
    assert!(c.gateway.listen.ip().is_loopback());
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let c = ok(&format!(
        "{MINIMAL}[state]\ndir = \"data/state\"\n[logging]\ndir = \"../logs\"\n\
         [credentials.a]\nsource = \"file:./secrets/a.token\"\n\
         [credentials.b]\nsource = \"file:/etc/steward/b.token\"\n"
    ));
    assert_eq!(c.state.dir, PathBuf::from("/srv/poster/data/state"));
    assert_eq!(c.logging.dir, PathBuf::from("/srv/poster/../logs"));
    assert_eq!(c.credentials["a"].source, CredentialSource::File("/srv/poster/secrets/a.token".into()));
    assert_eq!(c.credentials["b"].source, CredentialSource::File("/etc/steward/b.token".into()));
}

#[test]
fn default_logging_dir_follows_a_custom_state_dir() {
    let c = ok(&format!("{MINIMAL}[state]\ndir = \"./run\"\n"));
    assert_eq!(c.state.dir, PathBuf::from("/srv/poster/run"));
    assert_eq!(c.logging.dir, PathBuf::from("/srv/poster/run/logs"));
}

#[test]
fn load_reads_the_file_and_resolves_against_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.toml");
    std::fs::write(&path, format!("{MINIMAL}[credentials.a]\nsource = \"file:a.token\"\n")).unwrap();
    let c = load(&path).unwrap();
    assert_eq!(c.source_path, path);
    assert_eq!(c.state.dir, dir.path().join(".steward"));
    assert_eq!(c.credentials["a"].source, CredentialSource::File(dir.path().join("a.token")));
}

#[test]
fn a_relative_config_path_is_made_absolute() {
    let c = parse(MINIMAL, Path::new("steward.toml")).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.source_path, cwd.join("steward.toml"));
    assert_eq!(c.state.dir, cwd.join(".steward"));
}

#[test]
fn a_missing_file_names_the_path_and_suggests_init() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let e = load(&path).unwrap_err();
    assert!(e.message().contains(&path.display().to_string()), "{}", e.message());
    assert!(e.help_text().unwrap().contains("steward init"));
    assert_eq!(e.line_col(), None);
    let text = render(&e);
    assert!(text.contains("steward init"), "{text}");
}

/// One case of the validation table: the file, where the error must point
/// (1-based line, column), and text the message and the help must contain.
struct Case {
    source: String,
    at: (usize, usize),
    message: &'static str,
    help: &'static str,
}

fn case(source: impl Into<String>, at: (usize, usize), message: &'static str, help: &'static str) -> Case {
    Case { source: source.into(), at, message, help }
}

#[test]
fn every_validation_error_points_at_the_value_and_says_the_fix() {
    // with_upstream() puts [upstreams.social] on lines 5-7; `rest` starts on line 8.
    let cases = vec![
        case(
            "[agent]\nname = \"x\"\nnmae = \"y\"\n",
            (3, 1),
            "unknown key `nmae` in [agent]",
            "remove `nmae` or correct its spelling; [agent] accepts: name, environment, command, workdir, env, \
             health_url, stop_grace, min_uptime",
        ),
        case(format!("{MINIMAL}[gatway]\nlisten = \"127.0.0.1:1\"\n"), (3, 2), "unknown section [gatway]", "[gateway]"),
        case(
            "name = \"x\"\n[agent]\nname = \"x\"\n",
            (1, 1),
            "unknown top-level key `name`",
            "move it below the right one of: [agent]",
        ),
        case(
            format!("{MINIMAL}[gateway]\nallow_remote = \"yes\"\n"),
            (4, 16),
            "expected a boolean",
            "write true or false (without quotes) here",
        ),
        case(format!("{MINIMAL}[logging]\nretention_days = \"30\"\n"), (4, 18), "expected i64", "whole number"),
        case("[agent]\n", (1, 1), "[agent] is missing `name`", "add name ="),
        case("# nothing\n", (1, 1), "no [agent] section", "[agent]\nname = \"my-agent\""),
        case(format!("{MINIMAL}[agent.x]\n"), (3, 8), "unknown key `x` in [agent]", "remove `x`"),
        case("[agent\nname = \"x\"\n", (1, 7), "TOML syntax error", "fix the TOML syntax"),
        case(
            format!("tools = \"post\"\n{MINIMAL}"),
            (1, 9),
            "`tools` must be a list of [[tools]] sections",
            "[[tools]]",
        ),
        case(format!("credentials = 1\n{MINIMAL}"), (1, 15), "`credentials` must be a table", "[credentials.NAME]"),
        case(
            format!("{MINIMAL}[loop_breaker]\nwindow = \"10 minutes\"\n"),
            (4, 10),
            "duration \"10 minutes\" is not an integer followed by a unit; write it like \"30s\" (units: ms, s, m, h, d)",
            "window = \"10m\"",
        ),
        case(
            format!("{MINIMAL}[loop_breaker]\nwindow = 600\n"),
            (4, 10),
            "expected a duration such as \"30s\"",
            "write a duration such as \"30s\"",
        ),
        case(format!("{MINIMAL}[loop_breaker]\nwindow = \"0s\"\n"), (4, 10), "window is zero", "positive duration"),
        case(
            format!("{MINIMAL}[loop_breaker]\nmax_identical = -1\n"),
            (4, 17),
            "max_identical = -1 is not a count of calls",
            "0 to disable",
        ),
        case(
            format!("{MINIMAL}[gateway]\nmax_body = \"1 megabyte\"\n"),
            (4, 12),
            "size \"1 megabyte\" is not a byte count",
            "max_body = \"1MB\"",
        ),
        case(format!("{MINIMAL}[gateway]\nmax_body = -5\n"), (4, 12), "size -5 is negative", "max_body = \"1MB\""),
        case(format!("{MINIMAL}[gateway]\nmax_body = 0\n"), (4, 12), "max_body is 0", "max_body = \"1MB\""),
        case(
            format!("{MINIMAL}[gateway]\nheader_timeout = \"0s\"\n"),
            (4, 18),
            "header_timeout is zero",
            "header_timeout = \"10s\"",
        ),
        case(
            format!("{MINIMAL}[gateway]\nmax_connections = 0\n"),
            (4, 19),
            "max_connections = 0 is outside 1..=1000000",
            "max_connections = 1024",
        ),
        case(
            format!("{MINIMAL}[gateway]\nmax_body = true\n"),
            (4, 12),
            "expected a size such as \"100MB\" or a byte count",
            "a size such as",
        ),
        case(
            format!("{MINIMAL}[logging]\nmax_file_size = \"1KB\"\n"),
            (4, 17),
            "below the 4KiB minimum",
            "4KiB (4096 bytes) or more",
        ),
        case(
            format!("{MINIMAL}[logging]\nretention_days = 0\n"),
            (4, 18),
            "retention_days = 0 is outside",
            "at least one day",
        ),
        case(
            format!("{MINIMAL}[logging]\nafter_retention = \"zip\"\n"),
            (4, 19),
            "after_retention \"zip\" is not one of archive, delete",
            "write after_retention = \"archive\" or after_retention = \"delete\"",
        ),
        case(
            format!("{MINIMAL}[logging]\nmax_file_size = \"3GB\"\n"),
            (4, 17),
            "max_total_size (2000000000 bytes) is smaller than max_file_size (3000000000 bytes)",
            "several times",
        ),
        case(
            "[agent]\nname = \"x\"\nenvironment = \"staging\"\n",
            (3, 15),
            "environment \"staging\" is not one of dev, prod",
            "environment = \"dev\" or environment = \"prod\"",
        ),
        case("[agent]\nname = \"  \"\n", (2, 8), "agent name is empty", "name = \"poster\""),
        case(
            format!("{MINIMAL}[gateway]\nlisten = \"0.0.0.0:7600\"\n"),
            (4, 10),
            "refusing to listen on 0.0.0.0:7600",
            "steward exposes your credentials to whoever can reach this port; bind 127.0.0.1 or set allow_remote = true",
        ),
        case(
            format!("{MINIMAL}[gateway]\nlisten = \"7600\"\n"),
            (4, 10),
            "listen \"7600\" is not an IP address and port",
            "listen = \"127.0.0.1:7600\"",
        ),
        case(
            format!("{MINIMAL}[unmatched]\npolicy = \"allow\"\n"),
            (4, 10),
            "policy \"allow\" is not one of deny, allow-get",
            "policy = \"allow-get\"",
        ),
        case(
            with_upstream("[[tools]]\nname = \"post\"\nupstream = \"socail\"\nmatch = \"POST /x\"\n"),
            (10, 12),
            "upstream \"socail\" is not defined",
            "use one of the defined upstreams: social; or add [upstreams.socail]",
        ),
        case(
            format!("{MINIMAL}[[tools]]\nname = \"post\"\nupstream = \"social\"\nmatch = \"POST /x\"\n"),
            (5, 12),
            "upstream \"social\" is not defined",
            "no upstreams are defined; add [upstreams.social]",
        ),
        case(
            format!("{MINIMAL}[upstreams.u]\nbase_url = \"https://u.example\"\ncredential = \"nope\"\n"),
            (5, 14),
            "credential \"nope\" is not defined",
            "no credentials are defined; add [credentials.nope]",
        ),
        case(
            with_upstream("[upstreams.other]\nbase_url = \"https://o.example\"\ncredential = \"socal\"\n"),
            (10, 14),
            "credential \"socal\" is not defined",
            "use one of: social",
        ),
        case(
            with_upstream(
                "[[tools]]\nname = \"post\"\nupstream = \"social\"\nmatch = \"POST /a\"\n\
                 [[tools]]\nname = \"post\"\nupstream = \"social\"\nmatch = \"POST /b\"\n",
            ),
            (13, 8),
            "tool name \"post\" is used twice",
            "the first \"post\" is on line 9",
        ),
        case(
            with_upstream("[[tools]]\nname = \"Post\"\nupstream = \"social\"\nmatch = \"POST /a\"\n"),
            (9, 8),
            "tool name \"Post\" has characters other than",
            "lower-case letters",
        ),
        case(
            format!("{MINIMAL}[credentials.social]\nsource = \"hunter2-very-secret\"\n"),
            (4, 10),
            "credential source is none of env:NAME, file:PATH",
            "never put the secret itself in the config; use source = \"env:NAME\" and export NAME",
        ),
        case(
            format!("{MINIMAL}[credentials.social]\nsource = \"env:\"\n"),
            (4, 10),
            "source = \"env:\" names no environment variable",
            "source = \"env:SOCIAL_TOKEN\"",
        ),
        case(
            format!("{MINIMAL}[credentials.social]\nsource = \"env:SOCIAL-TOKEN\"\n"),
            (4, 10),
            "\"SOCIAL-TOKEN\" is not a valid environment variable name",
            "letters, digits and _",
        ),
        case(format!("{MINIMAL}[credentials.social]\nsource = \"file:\"\n"), (4, 10), "names no file", "file:/"),
        case(
            format!("{MINIMAL}[credentials.social]\nsource = \"file:~/token\"\n"),
            (4, 10),
            "starts with ~, which steward does not expand",
            "absolute path",
        ),
        case(
            format!("{MINIMAL}[credentials.social]\n"),
            (3, 1),
            "[credentials.social] is missing `source`",
            "source = \"env:NAME\"",
        ),
        case(
            format!("{MINIMAL}[credentials.\"a b\"]\nsource = \"env:X\"\n"),
            (3, 14),
            "has characters other than letters",
            "[credentials.social]",
        ),
        case(
            with_upstream("[[tools]]\nname = \"post\"\nupstream = \"social\"\nmatch = \"POST\"\n"),
            (11, 9),
            "match \"POST\" is not METHOD PATH",
            "match = \"GET /api/v1/statuses/{id}\"",
        ),
        case(
            with_upstream("[[tools]]\nname = \"post\"\nupstream = \"social\"\nmatch = \"post /x\"\n"),
            (11, 9),
            "is not an HTTP method",
            "upper case: \"POST /x\"",
        ),
        case(
            with_upstream("[[tools]]\nname = \"post\"\nupstream = \"social\"\nmatch = \"GET statuses\"\n"),
            (11, 9),
            "does not start with /",
            "a path starts with /",
        ),
        case(
            with_upstream("[[tools]]\nname = \"p\"\nupstream = \"social\"\nmatch = \"GET /{*rest}/x\"\n"),
            (11, 9),
            "must be the last segment",
            "{*rest}",
        ),
        case(
            with_upstream("[[tools]]\nname = \"p\"\nupstream = \"social\"\nmatch = \"GET /x\"\nlimit = \"10/hr\"\n"),
            (12, 9),
            "limit \"10/hr\" is not N/unit; write it like \"10/hour\" (units: second, minute, hour, day)",
            "limit = \"10/hour\"",
        ),
        case(
            with_upstream("[[tools]]\nname = \"p\"\nupstream = \"social\"\nmatch = \"GET /x\"\nlimit = \"0/hour\"\n"),
            (12, 9),
            "allows no calls at all",
            "limit = \"10/hour\"",
        ),
        case(
            with_upstream("[[tools]]\nname = \"p\"\nupstream = \"social\"\nmatch = \"GET /x\"\nretry = \"always\"\n"),
            (12, 9),
            "retry \"always\" is not one of never, idempotent",
            "retry = \"never\" or retry = \"idempotent\"",
        ),
        case(
            with_upstream("[[tools]]\nname = \"p\"\nupstream = \"social\"\nmatch = \"GET /x\"\nside_effects = true\n"),
            (12, 1),
            "unknown key `side_effects` in [[tools]]",
            "side_effect",
        ),
        case(
            with_upstream("[[tools]]\nname = \"p\"\nupstream = \"social\"\n"),
            (8, 1),
            "[[tools]] is missing `match`",
            "add match =",
        ),
        case(
            with_upstream("auth = { header = \"Authorization\", format = \"Bearer\" }\n"),
            (8, 45),
            "auth format \"Bearer\" does not contain {secret}",
            "format = \"Bearer {secret}\"",
        ),
        case(
            with_upstream("auth = { header = \"X\", format = \"{secret}{secret}\" }\n"),
            (8, 33),
            "repeats {secret}",
            "exactly once",
        ),
        case(
            with_upstream("auth = { header = \"Bad Header\", format = \"{secret}\" }\n"),
            (8, 19),
            "\"Bad Header\" is not a valid HTTP header name",
            "X-Api-Key",
        ),
        case(
            with_upstream("auth = { header = \"Authorization\" }\n"),
            (8, 8),
            "is missing `format`",
            "format = \"Bearer {secret}\"",
        ),
        case(
            format!(
                "{MINIMAL}[upstreams.u]\nbase_url = \"https://u.example\"\nauth = {{ header = \"A\", format = \"{{secret}}\" }}\n"
            ),
            (5, 8),
            "auth is set but the upstream has no credential",
            "add credential = \"NAME\"",
        ),
        case(
            with_upstream("connect_timeout = \"5\"\n"),
            (8, 19),
            "duration \"5\" is not an integer followed by a unit",
            "connect_timeout = \"5s\"",
        ),
        case(with_upstream("read_timeout = \"0ms\"\n"), (8, 16), "read_timeout is zero", "read_timeout = \"60s\""),
        case(format!("{MINIMAL}command = []\n"), (3, 11), "command is an empty list", "command = [\"python3\""),
        case(
            format!("{MINIMAL}command = \"python3 agent.py\"\n"),
            (3, 11),
            "expected a sequence",
            "write a list of quoted strings, like [\"python3\", \"agent.py\"] here",
        ),
        case(
            format!("{MINIMAL}command = [\"python3 agent.py\"]\n"),
            (3, 12),
            "is one word with spaces; steward runs it without a shell",
            "command = [\"python3\", \"agent.py\"]",
        ),
        case(
            format!("{MINIMAL}command = [\"\", \"x\"]\n"),
            (3, 12),
            "the program in command is empty",
            "start the list",
        ),
        case(
            format!("{MINIMAL}command = [\"a\"]\nenv = {{ STEWARD_TOKEN = \"x\" }}\n"),
            (4, 9),
            "env sets STEWARD_TOKEN, which steward sets for the agent",
            "remove STEWARD_TOKEN",
        ),
        case(
            format!("{MINIMAL}command = [\"a\"]\nenv = {{ \"LOG-LEVEL\" = \"x\" }}\n"),
            (4, 9),
            "\"LOG-LEVEL\" is not a valid environment variable name",
            "LOG_LEVEL = \"info\"",
        ),
        case(
            format!("{MINIMAL}command = [\"a\"]\nenv = {{ LEVEL = 3 }}\n"),
            (4, 17),
            "expected a string",
            "a quoted string",
        ),
        case(
            format!("{MINIMAL}command = [\"a\"]\nenv = [\"LEVEL=3\"]\n"),
            (4, 7),
            "expected a map",
            "{ LOG_LEVEL = \"info\" }",
        ),
        case(
            format!("{MINIMAL}command = [\"a\"]\nhealth_url = \"ftp://h/x\"\n"),
            (4, 14),
            "health_url \"ftp://h/x\" is not an http or https URL",
            "health_url = \"http://127.0.0.1:8081/health\"",
        ),
        case(
            format!("{MINIMAL}command = [\"a\"]\nhealth_url = \"127.0.0.1:8081/health\"\n"),
            (4, 14),
            "is not",
            "health_url = \"http://",
        ),
        case(
            format!("{MINIMAL}health_url = \"http://127.0.0.1:1/h\"\n"),
            (3, 14),
            "health_url is set but [agent] has no command for steward to run",
            "add command = [\"python3\", \"agent.py\"] to [agent], or remove health_url",
        ),
        case(format!("{MINIMAL}command = [\"a\"]\nstop_grace = \"0s\"\n"), (4, 14), "stop_grace is zero", "positive"),
        case(
            format!("{MINIMAL}command = [\"a\"]\nmin_uptime = \"ten seconds\"\n"),
            (4, 14),
            "duration \"ten seconds\" is not an integer followed by a unit",
            "min_uptime = \"10s\"",
        ),
        case(
            format!("{MINIMAL}command = [\"a\"]\nworkdir = \"~/agent\"\n"),
            (4, 11),
            "workdir \"~/agent\" starts with ~",
            "absolute path",
        ),
    ];
    let base_url_cases = [
        ("https://s.example/x?y=1", "has a ?query"),
        ("https://s.example/#top", "has a #fragment"),
        ("s.example", "has no scheme"),
        ("ftp://s.example", "is not an http or https URL"),
        ("https://user:pw@s.example", "contains user credentials"),
        ("not a url", "is not a URL"),
        ("", "is not a URL"),
    ];
    let mut all = cases;
    for (url, message) in base_url_cases {
        all.push(case(format!("{MINIMAL}[upstreams.u]\nbase_url = \"{url}\"\n"), (4, 12), message, ""));
    }

    let mut failures = Vec::new();
    for Case { source, at, message, help } in all {
        let e = err(&source);
        let shown = render(&e);
        let got_help = e.help_text().unwrap_or_default();
        if e.line_col() != Some(at) {
            failures.push(format!("expected {at:?} for {message:?}:\n{shown}"));
        } else if !e.message().contains(message) {
            failures.push(format!("message lacks {message:?}:\n{shown}"));
        } else if got_help.is_empty() || !got_help.contains(help) {
            failures.push(format!("help lacks {help:?}:\n{shown}"));
        } else if !e.related_errors().iter().all(|r| r.message().contains("literal secret")) {
            // A value that is itself secret-shaped (`user:pw@` in a URL) is also
            // reported by the literal-secret scan; any other extra problem is a bug.
            failures.push(format!("expected one problem:\n{shown}"));
        }
    }
    assert!(failures.is_empty(), "{} failing cases:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_problem_in_the_file_is_reported_in_file_order() {
    let source = "[agent]\n\
                  name = \"x\"\n\
                  colour = \"blue\"\n\
                  [gateway]\n\
                  listen = \"0.0.0.0:7600\"\n\
                  max_body = \"lots\"\n\
                  [credentials.social]\n\
                  source = \"plain-secret-value\"\n\
                  [upstreams.social]\n\
                  base_url = \"https://s.example\"\n\
                  credential = \"socail\"\n\
                  [[tools]]\n\
                  name = \"post\"\n\
                  upstream = \"social\"\n\
                  match = \"POST /x\"\n\
                  limit = \"10/hr\"\n\
                  [[tools]]\n\
                  name = \"post\"\n\
                  upstream = \"nowhere\"\n\
                  match = \"FETCH /x\"\n\
                  [[tools]]\n\
                  name = \"broken\"\n\
                  upstream = 3\n";
    let e = err(source);
    let found: Vec<((usize, usize), &str)> = e.errors().map(|p| (p.line_col().unwrap(), p.message())).collect();
    let lines: Vec<usize> = found.iter().map(|((line, _), _)| *line).collect();
    assert_eq!(lines, vec![3, 5, 6, 8, 11, 16, 18, 19, 20, 23], "{found:#?}");
    assert!(found[0].1.contains("unknown key `colour`"));
    assert!(found[1].1.contains("refusing to listen"));
    assert!(found[2].1.contains("size \"lots\""));
    assert!(found[3].1.contains("none of env:NAME, file:PATH"));
    assert!(found[4].1.contains("credential \"socail\""));
    assert!(found[5].1.contains("limit \"10/hr\""));
    assert!(found[6].1.contains("used twice"));
    assert!(found[7].1.contains("upstream \"nowhere\""));
    assert!(found[8].1.contains("\"FETCH\""));
    assert!(found[9].1.contains("expected a string"));
    assert!(e.errors().all(|p| p.help_text().is_some_and(|h| !h.is_empty())));
    assert_eq!(e.related_errors().len(), 9);

    // The report shows every problem, each with its own location and fix.
    let shown = render(&e);
    for needle in [
        "steward.toml:3:1]",
        "steward.toml:5:10]",
        "steward.toml:16:9]",
        "steward.toml:23:12]",
        "bind 127.0.0.1 or set allow_remote = true",
        "use one of: social",
    ] {
        assert!(shown.contains(needle), "report lacks {needle:?}:\n{shown}");
    }
}

#[test]
fn the_rendered_report_has_location_snippet_and_hint() {
    let e = err(&with_upstream(
        "[[tools]]\nname = \"post\"\nupstream = \"social\"\nmatch = \"POST /x\"\nlimit = \"10/hr\"\n",
    ));
    let shown = render(&e);
    assert!(shown.contains(&format!("{PATH}:12:9]")), "{shown}");
    assert!(
        shown.contains("× limit \"10/hr\" is not N/unit; write it like \"10/hour\" (units: second, minute, hour, day)"),
        "{shown}"
    );
    assert!(shown.contains("12 │ limit = \"10/hr\""), "{shown}");
    assert!(shown.contains("───┬───"), "span underline missing:\n{shown}");
    assert!(shown.contains("╰── not N/unit"), "{shown}");
    assert!(shown.contains("help: for example: limit = \"10/hour\""), "{shown}");
}

#[test]
fn a_literal_credential_is_masked_in_the_report() {
    let e = err(&format!("{MINIMAL}[credentials.social]\nsource = \"hunter2-very-secret\"\n"));
    let shown = render(&e);
    assert!(!shown.contains("hunter2"), "the report repeats the secret:\n{shown}");
    assert!(!format!("{e:?}").contains("hunter2"), "Debug repeats the secret");
    assert!(shown.contains("source = \"*******************\""), "{shown}");
}

#[test]
fn display_is_the_first_message() {
    let e = err("[agent]\nname = \"x\"\nnmae = 1\n");
    assert_eq!(e.to_string(), e.message());
    assert_eq!(e.span(), Some(19..23));
}

#[test]

fn literal_secrets_anywhere_in_the_file_are_refused() {
    let token = format!("ghp_{}", "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6");
    assert_eq!(token.len(), 40);
    let source = format!("{MINIMAL}# old: token = \"{token}\"\n[state]\ndir = \"./{token}\"\n");
    let e = err(&source);
    let shown = render(&e);
    // Rules may overlap (a token rule and a generic `token = ...` rule), so
    // assert on lines rather than on an exact count.
    let lines: Vec<usize> = e.errors().filter_map(|p| p.line_col()).map(|(line, _)| line).collect();
    assert!(lines.contains(&3) && lines.contains(&5), "{lines:?}:\n{shown}");
    for problem in e.errors() {
        assert!(problem.message().contains("literal secret"), "{shown}");
        assert!(problem.help_text().unwrap().contains("env:NAME"), "{shown}");
    }
    let shown = render(&e);
    assert!(!shown.contains(&token), "the report repeats the secret:\n{shown}");
}

#[test]
fn agent_user_group_and_network_are_validated() {
    let base = "[agent]\nname = \"a\"\ncommand = [\"true\"]\n";
    let c = parse(
        &format!("{base}user = \"steward-agent\"\ngroup = \"agents\"\nnetwork = \"steward-only\"\n"),
        Path::new("/srv/a/steward.toml"),
    )
    .unwrap();
    let process = c.agent.process.unwrap();
    assert_eq!(process.user.as_deref(), Some("steward-agent"));
    assert_eq!(process.group.as_deref(), Some("agents"));
    assert_eq!(process.network, AgentNetwork::StewardOnly);
    for (extra, expected) in [
        ("group = \"agents\"\n", "group is set without user"),
        ("user = \"-rf\"\n", "is not a user or group name"),
        ("network = \"none\"\n", "network \"none\" is not one of host, steward-only"),
        (
            "network = \"steward-only\"\nhealth_url = \"http://127.0.0.1:8081/health\"\n",
            "health_url cannot be checked with network = \"steward-only\"",
        ),
    ] {
        let err = parse(&format!("{base}{extra}"), Path::new("/srv/a/steward.toml")).unwrap_err();
        // Debug escapes the quotes of the messages.
        assert!(format!("{err:?}").replace('\\', "").contains(expected), "{extra}: {err:?}");
    }
    let err = parse("[agent]\nname = \"a\"\nuser = \"x\"\n", Path::new("/srv/a/steward.toml")).unwrap_err();
    assert!(format!("{err:?}").contains("user is set but [agent] has no command"), "{err:?}");
}
