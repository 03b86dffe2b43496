//! Tests of the rendered page (sections, commands, what it must never
//! print), of the atomic write, and of the record doctor reads.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::render::{code, format_limit, human_duration, shell_quote};
use super::*;
use crate::config::{Config, RateLimit, parse};

/// 2027-01-15 08:00:00 UTC
const NOW_SECS: u64 = 1_800_000_000;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// Stands in for any secret value: the page must never hold it. Nothing in
/// the render reads a credential, so these only prove the page is built
/// from references.
const CANARY: &str = "canary-secret-value-31f4";

const PATH: &str = "/srv/poster/steward.toml";

/// A deployment with every section the page describes.
fn full() -> String {
    r#"[agent]
name = "poster"
command = ["python3", "agent.py"]
stop_grace = "15s"

[state]
dir = "/var/lib/poster"

[credentials.social]
source = "env:SOCIAL_TOKEN"
expires = "2027-02-14"

[credentials.llm]
source = "file:/etc/poster/llm.key"

[credentials.s3_backup]
source = "command:pass show s3"

[upstreams.social]
base_url = "https://social.example/api-prefix"
credential = "social"

[[tools]]
name = "post"
upstream = "social"
match = "POST /api/v1/statuses"
limit = "5/minute"
retry = "never"

[[tools]]
name = "read_status"
upstream = "social"
match = "GET /api/v1/statuses/{id}"

[[tools]]
name = "delete_status"
upstream = "social"
match = "DELETE /api/v1/statuses/{id}"

[llm.openai]
kind = "openai"
base_url = "https://api.openai.com"
credential = "llm"

[spend]
daily_cap_usd = 5.00
alert_at_usd = 4.00
timezone = "+02:00"

[backup]
destination = "s3://poster-backups/steward?endpoint=https://s3.example.com&region=eu-west-1"
credentials = "s3_backup"

[alerts]
[[alerts.sinks]]
kind = "webhook"
name = "oncall-hook"
url = "env:ALERT_WEBHOOK_URL"
[[alerts.sinks]]
kind = "slack"
url = "file:/etc/poster/slack.url"

[heartbeat]
url = "env:DEADMAN_URL"
every = "1m"

[runbook]
contacts = ["Ana Ops <ana@example.com> (on-call, first)", "Platform team <+1 555 0100>", "Bo <bo@example.com>"]
notes = "Social account owner: marketing (Bo)."
"#
    .to_owned()
}

fn load(source: &str, path: &str) -> Config {
    match parse(source, Path::new(path)) {
        Ok(config) => config,
        Err(err) => panic!("{:?}", miette::Report::new(err)),
    }
}

fn render_text(source: &str) -> String {
    render(&load(source, PATH), Path::new(PATH), now())
}

/// The text of the section whose heading contains `title`, up to the next heading.
fn section<'p>(page: &'p str, title: &str) -> &'p str {
    let start = page.find(&format!(". {title}\n")).unwrap_or_else(|| panic!("no section {title:?} in:\n{page}"));
    let rest = &page[start..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

/// The lines inside the page's ```sh blocks.
fn command_lines(page: &str) -> Vec<&str> {
    let mut inside = false;
    page.lines()
        .filter(|line| {
            if line.starts_with("```") {
                inside = line.starts_with("```sh");
                return false;
            }
            inside
        })
        .collect()
}

#[test]
fn every_section_is_there_in_order_with_the_header() {
    let page = render_text(&full());
    let headings: Vec<&str> = page.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        headings,
        [
            "## 1. Stop it now",
            "## 2. See what it did last",
            "## 3. Roll back a bad post",
            "## 4. Resume",
            "## 5. Spend",
            "## 6. Credentials",
            "## 7. Backups and restore",
            "## 8. Alerts",
            "## 9. Whom to call",
        ]
    );
    assert!(page.starts_with("# Runbook: poster\n"), "{page}");
    assert!(page.contains("- **Agent**: poster (environment: prod)"), "{page}");
    assert!(page.contains("- **Config**: `/srv/poster/steward.toml`"), "{page}");
    assert!(page.contains("- **Rendered**: 2027-01-15 08:00 UTC"), "{page}");
    assert!(page.contains("- **State**: `/var/lib/poster`"), "{page}");
}

#[test]
fn every_command_names_the_absolute_config() {
    let page = render_text(&full());
    let stop = section(&page, "Stop it now");
    assert!(stop.contains("```sh\nsteward stop --config /srv/poster/steward.toml --reason \"what went wrong\"\n```"));
    assert!(stop.contains("SIGKILL after 15 s"), "{stop}");
    assert!(stop.contains("survives a restart"), "{stop}");
    assert!(stop.contains("steward status --config /srv/poster/steward.toml\n"), "{stop}");
    let commands = command_lines(&page);
    assert!(commands.len() >= 15, "{commands:?}");
    for command in &commands {
        assert!(command.starts_with("steward "), "{command}");
        assert!(command.contains(" --config /srv/poster/steward.toml"), "{command}");
        assert!(!command.contains('#'), "no shell comments in pasted lines: {command}");
    }
    let last = section(&page, "See what it did last");
    for flags in ["", " --failed", " --since 2h -n 200", " --json"] {
        assert!(last.contains(&format!("steward last --config /srv/poster/steward.toml{flags}\n")), "{last}");
    }
    assert!(last.contains("steward logs agent --config /srv/poster/steward.toml -f\n"), "{last}");
    assert!(last.contains("`/var/lib/poster/logs/audit.jsonl`"), "{last}");
    assert!(last.contains("rotates at 100 MB; rotated files older than 30 day(s) are archived"), "{last}");
    assert!(section(&page, "Resume").contains("steward resume --config /srv/poster/steward.toml\n"));
    let resume = section(&page, "Resume");
    assert!(resume.contains("steward supervise --config /srv/poster/steward.toml\n"), "{resume}");
    assert!(resume.contains("steward approvals --config /srv/poster/steward.toml\n"), "{resume}");
    assert!(resume.contains("`[supervised] enabled` is **off** in this config"), "{resume}");
}

#[test]
fn under_systemd_every_command_runs_as_the_steward_user() {
    let page = render_text(&full().replace("[runbook]\n", "[runbook]\nrun_as = \"steward\"\n"));
    let commands = command_lines(&page);
    assert!(commands.len() >= 15, "{commands:?}");
    for command in &commands {
        assert!(command.starts_with("sudo -u steward steward "), "{command}");
    }
    assert!(page.contains("runs as the `steward` user"), "{page}");
    assert!(
        section(&page, "Stop it now")
            .contains("sudo -u steward steward stop --config /srv/poster/steward.toml --reason \"what went wrong\"\n")
    );
    // Without run_as, nothing changes.
    assert!(command_lines(&render_text(&full())).iter().all(|c| c.starts_with("steward ")));
}

#[test]
fn the_user_of_an_installed_unit_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("steward.service");
    std::fs::write(&unit, "[Unit]\nDescription=x\n\n[Service]\nExecStart=/usr/bin/steward run\nUser=steward\n")
        .unwrap();
    let missing = dir.path().join("none.service");
    let paths = [missing.to_str().unwrap(), unit.to_str().unwrap()];
    assert_eq!(unit_user(&paths).as_deref(), Some("steward"));
    assert_eq!(unit_user(&paths[..1]), None, "no unit installed");
    std::fs::write(&unit, "[Service]\nExecStart=/usr/bin/steward run\n").unwrap();
    assert_eq!(unit_user(&paths), None, "a unit without User= runs as root: no sudo");
}

#[test]
fn a_config_path_with_spaces_or_quotes_is_quoted_for_the_shell() {
    let path = "/srv/my agent's/steward.toml";
    let page = render(&load(&full(), path), Path::new(path), now());
    assert!(page.contains("steward stop --config '/srv/my agent'\\''s/steward.toml' --reason"), "{page}");
    assert_eq!(shell_quote("/srv/poster/steward.toml"), "/srv/poster/steward.toml");
    assert_eq!(shell_quote("a$b"), "'a$b'");
    assert_eq!(shell_quote(""), "''");
}

#[test]
fn side_effect_tools_are_listed_for_rollback_and_no_rollback_command_is_promised() {
    let page = render_text(&full());
    let rollback = section(&page, "Roll back a bad post");
    assert!(rollback.contains("steward cannot undo calls of `post`, `delete_status`"), "{rollback}");
    assert!(!rollback.contains("steward undo "), "no tool declares an undo: {rollback}");
    assert!(
        rollback.contains("| `post` | social (`https://social.example`) | `POST /api/v1/statuses` | 5/minute |"),
        "{rollback}"
    );
    assert!(
        rollback.contains(
            "| `delete_status` | social (`https://social.example`) | `DELETE /api/v1/statuses/{id}` | none |"
        ),
        "{rollback}"
    );
    assert!(!rollback.contains("read_status"), "a GET tool has no side effect: {rollback}");
    assert!(rollback.contains("steward last --config /srv/poster/steward.toml --tool post\n"), "{rollback}");
    assert!(rollback.contains("REF"), "{rollback}");
    assert!(!page.contains("api-prefix"), "upstreams are shown as scheme and host only");
    assert!(!page.contains("steward rollback"), "{page}");

    let reads_only = render_text(
        "[agent]\nname = \"reader\"\n[upstreams.u]\nbase_url = \"https://u.example\"\n\
         [[tools]]\nname = \"get\"\nupstream = \"u\"\nmatch = \"GET /x\"\n",
    );
    assert!(section(&reads_only, "Roll back a bad post").contains("No `[[tools]]` entry has a side effect"));

    // A declared undo: the one command per tool, and the manual way only for the rest.
    let with_undo = render_text(
        "[agent]\nname = \"poster\"\n[upstreams.u]\nbase_url = \"https://u.example\"\n\
         [[tools]]\nname = \"post\"\nupstream = \"u\"\nmatch = \"POST /s\"\n\
         undo = { tool = \"delete\", path = \"/s/{response.id}\" }\n\
         [[tools]]\nname = \"delete\"\nupstream = \"u\"\nmatch = \"DELETE /s/{id}\"\n\
         undo = { none = \"a deleted status cannot be restored\" }\n",
    );
    let rollback = section(&with_undo, "Roll back a bad post");
    assert!(rollback.contains("steward undo --config /srv/poster/steward.toml --tool post --since 2h\n"), "{rollback}");
    assert!(rollback.contains("steward last --config /srv/poster/steward.toml --undoable\n"), "{rollback}");
    assert!(rollback.contains("| `DELETE /s/{response.id}` (tool `delete`) |"), "{rollback}");
    assert!(rollback.contains("| none: a deleted status cannot be restored |"), "{rollback}");
    assert!(rollback.contains("steward cannot undo calls of `delete`"), "{rollback}");
}

#[test]
fn spend_credentials_backups_and_alerts_show_names_never_values_or_urls() {
    let page = render_text(&full());
    let spend = section(&page, "Spend");
    assert!(spend.contains("steward spend --config /srv/poster/steward.toml\n"), "{spend}");
    assert!(spend.contains("Daily cap: **$5.00**"), "{spend}");
    assert!(spend.contains("00:00 UTC+02:00"), "{spend}");
    assert!(spend.contains("reaches $4.00"), "{spend}");
    assert!(spend.contains("`openai` (openai)"), "{spend}");

    let credentials = section(&page, "Credentials");
    assert!(credentials.contains("steward secrets list --config /srv/poster/steward.toml\n"), "{credentials}");
    assert!(credentials.contains("steward secrets reload --config /srv/poster/steward.toml\n"), "{credentials}");
    assert!(
        credentials.contains("| `social` | environment variable SOCIAL_TOKEN | prod | 2027-02-14 (29 day(s) left) |"),
        "{credentials}"
    );
    assert!(credentials.contains("| `llm` | file /etc/poster/llm.key | prod | not declared"), "{credentials}");
    assert!(credentials.contains("| `s3_backup` | command `pass` |"), "only the program of a command: {credentials}");
    assert!(!credentials.contains("show s3"), "{credentials}");
    assert!(credentials.contains("Environment-variable sources (`social`) are read"), "{credentials}");
    assert!(credentials.contains("Then revoke the old token at the provider."), "{credentials}");

    let backups = section(&page, "Backups and restore");
    assert!(backups.contains("Destination: `s3://poster-backups/steward` at `https://s3.example.com`."), "{backups}");
    for command in ["backup list", "backup verify", "restore"] {
        assert!(backups.contains(&format!("steward {command} --config /srv/poster/steward.toml")), "{backups}");
    }
    assert!(backups.contains("steward restore --config /srv/poster/steward.toml ID --to /path/to/empty-dir\n"));
    assert!(backups.contains("Not encrypted."), "{backups}");
    assert!(!backups.contains("--identity"), "{backups}");

    let encrypted = full().replace(
        "credentials = \"s3_backup\"\n",
        "credentials = \"s3_backup\"\nencrypt_to = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n",
    );
    let encrypted = render_text(&encrypted);
    let backups = section(&encrypted, "Backups and restore");
    assert!(backups.contains("Encrypted to 1 age recipient(s); verify and restore need `--identity FILE`"));
    assert!(
        backups.contains(
            "steward restore --config /srv/poster/steward.toml ID --to /path/to/empty-dir --identity /path/to/age-identity.txt\n"
        ),
        "{backups}"
    );

    let alerts = section(&page, "Alerts");
    assert!(alerts.contains("Sinks: `oncall-hook` (webhook), `slack` (slack)."), "{alerts}");
    assert!(alerts.contains("Heartbeat: on, every 1 min"), "{alerts}");
    assert!(alerts.contains("steward alerts test --config /srv/poster/steward.toml\n"), "{alerts}");
    for reference in ["ALERT_WEBHOOK_URL", "slack.url", "DEADMAN_URL"] {
        assert!(!page.contains(reference), "{reference} printed:\n{page}");
    }
}

#[test]
fn no_secret_reaches_the_page_even_when_every_source_holds_one() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, value).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    };
    let token = secret_file("social.token", CANARY);
    let hook = secret_file("hook.url", &format!("https://hooks.example/services/{CANARY}"));
    let s3 = secret_file("s3.creds", &format!("AKIDEXAMPLE:{CANARY}"));
    let source = format!(
        "[agent]\nname = \"poster\"\n[credentials.social]\nsource = \"file:{token}\"\n\
         [credentials.s3]\nsource = \"file:{s3}\"\n[upstreams.social]\nbase_url = \"https://social.example\"\n\
         credential = \"social\"\n[backup]\ndestination = \"s3://poster-backups\"\ncredentials = \"s3\"\n\
         [[alerts.sinks]]\nkind = \"webhook\"\nurl = \"file:{hook}\"\n"
    );
    let config_path = dir.path().join("steward.toml");
    let page = render(&load(&source, &config_path.display().to_string()), &config_path, now());
    for needle in [CANARY, "AKIDEXAMPLE", "hooks.example", "hook.url"] {
        assert!(!page.contains(needle), "{needle} reached the page:\n{page}");
    }
    assert!(page.contains("Destination: `s3://poster-backups`."), "{page}");
}

#[test]
fn contacts_come_in_order_then_the_notes() {
    let page = render_text(&full());
    let contacts = section(&page, "Whom to call");
    assert!(
        contacts.contains(
            "1. Ana Ops <ana@example.com> (on-call, first)\n2. Platform team <+1 555 0100>\n3. Bo <bo@example.com>\n\n\
             Social account owner: marketing (Bo).\n"
        ),
        "{contacts}"
    );
    assert!(!contacts.contains("No contacts configured"), "{contacts}");
}

#[test]
fn a_minimal_config_renders_with_the_gaps_said_plainly() {
    let page = render_text("[agent]\nname = \"x\"\n");
    let headings: Vec<&str> = page.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(headings.len(), 8, "no backup section without [backup]: {headings:?}");
    assert!(!page.contains("Backups and restore") && !page.contains("steward backup"), "{page}");
    assert!(section(&page, "Whom to call").contains(
        "**No contacts configured — add `[runbook] contacts = [\"Name <email or phone>\"]` to `/srv/poster/steward.toml`.**"
    ));
    assert!(section(&page, "Spend").contains("No `[llm.*]` provider is configured"), "{page}");
    assert!(section(&page, "Credentials").contains("No `[credentials.*]`"), "{page}");
    assert!(section(&page, "Alerts").contains("**No alert sink**"), "{page}");
    assert!(section(&page, "Alerts").contains("Heartbeat: **off**"), "{page}");
    assert!(section(&page, "Stop it now").contains("steward does not start this agent"), "{page}");
    assert!(!page.contains("logs agent"), "no captured output without [agent] command: {page}");
}

#[test]
fn an_expired_credential_and_a_capless_spend_are_bold() {
    let page = render_text(
        "[agent]\nname = \"x\"\n[credentials.old]\nsource = \"env:OLD\"\nexpires = \"2026-12-01\"\n\
         [credentials.k]\nsource = \"env:K\"\n[llm.a]\nkind = \"anthropic\"\nbase_url = \"https://api.anthropic.com\"\n\
         credential = \"k\"\n",
    );
    assert!(page.contains("| `old` | environment variable OLD | prod | **expired** 2026-12-01 |"), "{page}");
    assert!(section(&page, "Spend").contains("**No daily cap**"), "{page}");
}

#[test]
fn rendering_is_a_pure_function_of_config_path_and_time() {
    let config = load(&full(), PATH);
    let a = render(&config, Path::new(PATH), now());
    assert_eq!(a, render(&config, Path::new(PATH), now()));
    let later = render(&config, Path::new(PATH), now() + Duration::from_secs(86_400));
    assert_ne!(a, later);
    assert!(later.contains("(28 day(s) left)"), "{later}");
}

#[test]
fn formatting_helpers() {
    assert_eq!(code("a`b"), "``a`b``");
    assert_eq!(code("`x"), "`` `x ``");
    assert_eq!(format_limit(RateLimit { max: 10, per: Duration::from_secs(3_600) }), "10/hour");
    assert_eq!(format_limit(RateLimit { max: 3, per: Duration::from_secs(90) }), "3 per 90 s");
    assert_eq!(human_duration(Duration::from_millis(1_500)), "1500 ms");
    assert_eq!(human_duration(Duration::from_secs(7_200)), "2 h");
}

#[test]
fn the_page_is_written_atomically_readable_and_replaces_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs/RUNBOOK.md");
    write_page(&path, "first\n").unwrap();
    write_page(&path, "second\n").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, PAGE_MODE);
    let names: Vec<_> = std::fs::read_dir(dir.path().join("docs")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["RUNBOOK.md"], "no temp file left behind");

    let blocked = dir.path().join("file-not-dir");
    std::fs::write(&blocked, "x").unwrap();
    let err = write_page(&blocked.join("RUNBOOK.md"), "x").unwrap_err();
    assert!(err.to_string().starts_with("cannot write the runbook to "), "{err}");
}

#[test]
fn freshness_tells_the_three_stale_states_apart() {
    let record = RenderedRecord { at_ms: 1, path: "/x/RUNBOOK.md".into(), config_sha256: config_sha256(b"a") };
    assert_eq!(record.freshness(Some(&config_sha256(b"a")), true), Freshness::Current);
    assert_eq!(record.freshness(Some(&config_sha256(b"a")), false), Freshness::FileGone);
    assert_eq!(record.freshness(Some(&config_sha256(b"b")), true), Freshness::ConfigChanged);
    assert_eq!(record.freshness(None, true), Freshness::ConfigChanged);
    assert_eq!(config_sha256(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

#[tokio::test]
async fn the_record_round_trips_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
    assert_eq!(last_rendered(&store).await.unwrap(), None);
    let rec = RenderedRecord { at_ms: 42, path: dir.path().join("RUNBOOK.md"), config_sha256: config_sha256(b"x") };
    record(&store, &rec).await.unwrap();
    assert_eq!(last_rendered(&store).await.unwrap(), Some(rec));
    let json: serde_json::Value = serde_json::from_str(&store.kv_get(KV_RENDERED).await.unwrap().unwrap()).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["at_ms", "config_sha256", "path"]);
}
