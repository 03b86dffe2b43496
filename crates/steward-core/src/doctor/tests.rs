use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::*;
use crate::secrets::tests::jwt_expiring;

/// A GitHub-token-shaped literal (never a real one).
fn planted_token() -> String {
    format!("ghp_{}", "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6")
}

const BASE: &str = r#"[agent]
name = "poster"

[state]
dir = "./state"

[credentials.social]
source = "env:SOCIAL"

[upstreams.social]
base_url = "https://social.example"
credential = "social"
"#;

fn write_config(dir: &Path, extra: &str) -> Config {
    let path = dir.join("steward.toml");
    std::fs::write(&path, format!("{BASE}{extra}")).unwrap();
    crate::config::load(&path).unwrap()
}

async fn context<'a>(config: &'a Config, env: &[(&str, &str)], now: SystemTime) -> Context<'a> {
    let map: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let lookup = move |name: &str| map.get(name).cloned();
    let resolution = Secrets::resolve_all_with(config, &lookup).await;
    let (store, opened) = probe_store(config, None).await;
    let disk = DiskProbe::gather(config, opened.as_ref(), now).await;
    Context {
        config,
        now,
        resolution,
        store,
        backup_health: None,
        alerts_test: None,
        introspection: BTreeMap::new(),
        namespaces: NamespaceProbe { root: false, userns_refused: None },
        runbook: None,
        disk,
        running_config: None,
        supervision: None,
        mcp: None,
    }
}

fn item<'r>(report: &'r Report, name: &str) -> &'r CheckResult {
    report.checks.iter().find(|c| c.item == name).unwrap_or_else(|| panic!("no item {name:?}"))
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git").arg("-C").arg(dir).args(args).status().unwrap();
    assert!(status.success(), "git {args:?} failed");
}

#[test]
fn tracked_files_are_scanned_and_findings_carry_file_and_line_only() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    let config_dir = repo.path().join("deploy");
    std::fs::create_dir(&config_dir).unwrap();
    write_config(&config_dir, "");
    let token = planted_token();
    std::fs::write(repo.path().join("notes.md"), format!("# notes\n\nold token: {token}\n")).unwrap();
    std::fs::write(repo.path().join("untracked.md"), format!("{token}\n")).unwrap();
    std::fs::write(repo.path().join("blob.bin"), [&b"\0\0"[..], token.as_bytes()].concat()).unwrap();
    git(repo.path(), &["add", "deploy/steward.toml", "notes.md", "blob.bin"]);

    let ScanOutcome::Scanned { files, secrets } = scan_tracked_files(&config_dir) else {
        panic!("expected a scan");
    };
    assert_eq!(files, 2, "the binary file is skipped");
    assert_eq!(secrets, [TrackedSecret { file: "notes.md".into(), line: 3, kind: "github-pat".into() }]);

    let outside = tempfile::tempdir().unwrap();
    assert_eq!(scan_tracked_files(outside.path()), ScanOutcome::NotARepository);
}

#[tokio::test]
async fn a_literal_secret_in_a_tracked_file_fails_with_file_line_masked() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    let config = write_config(repo.path(), "");
    let token = planted_token();
    std::fs::write(repo.path().join("deploy.sh"), format!("#!/bin/sh\nexport GH={token}\n")).unwrap();
    git(repo.path(), &["add", "."]);
    let ctx = context(&config, &[("SOCIAL", "social-value")], SystemTime::now()).await;
    let report = score(&ctx);
    let found = item(&report, "no secret in git-tracked files");
    assert_eq!(found.status, Status::Fail);
    assert!(found.detail.contains("deploy.sh:2 github-pat (masked)"), "{found:?}");
    assert!(found.fix.as_deref().unwrap_or_default().contains("rotate"), "{found:?}");
    let json = serde_json::to_string(&report.checks).unwrap();
    assert!(!json.contains(&token) && !json.contains("social-value"), "{json}");
    assert_eq!(report.worst(), Status::Fail);
}

#[tokio::test]
async fn expiry_is_scored_against_the_warning_window() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let day = Duration::from_secs(86_400);

    let soon = jwt_expiring(now + 5 * day);
    let report = score(&context(&config, &[("SOCIAL", &soon)], now).await);
    let expiry = item(&report, "every credential has a known expiry");
    assert_eq!(expiry.status, Status::Warn);
    assert!(expiry.detail.contains("social (5 day(s) left)"), "{expiry:?}");

    let gone = jwt_expiring(now - day);
    let report = score(&context(&config, &[("SOCIAL", &gone)], now).await);
    let expiry = item(&report, "every credential has a known expiry");
    assert_eq!(expiry.status, Status::Fail);
    assert!(expiry.detail.contains("social (expired 2027-01-14)"), "{expiry:?}");

    let far = jwt_expiring(now + 60 * day);
    let report = score(&context(&config, &[("SOCIAL", &far)], now).await);
    assert_eq!(item(&report, "every credential has a known expiry").status, Status::Pass);

    let report = score(&context(&config, &[("SOCIAL", "opaque")], now).await);
    let expiry = item(&report, "every credential has a known expiry");
    assert_eq!((expiry.status, expiry.detail.as_str()), (Status::Warn, "no known expiry: social"));
}

#[tokio::test]
async fn dev_prod_sharing_and_unresolved_credentials_fail() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[credentials.social_dev]\nsource = \"env:DEV\"\nenvironment = \"dev\"\n");
    let report =
        score(&context(&config, &[("SOCIAL", "same-value-1234"), ("DEV", "same-value-1234")], SystemTime::now()).await);
    let separate = item(&report, "dev and prod credentials are separate");
    assert_eq!(separate.status, Status::Fail);
    assert!(separate.detail.contains("`social_dev` (dev) = `social` (prod)"), "{separate:?}");
    assert_eq!(item(&report, "every credential resolves").status, Status::Pass);

    let report = score(&context(&config, &[("DEV", "dev-value")], SystemTime::now()).await);
    let resolve = item(&report, "every credential resolves");
    assert_eq!(resolve.status, Status::Fail);
    assert!(resolve.detail.contains("environment variable SOCIAL is not set"), "{resolve:?}");
    assert_eq!(item(&report, "dev and prod credentials are separate").status, Status::Warn);
}

#[tokio::test]
async fn rate_limiting_and_logging_items_fail_with_their_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        r#"
[credentials.llm]
source = "env:LLM"

[llm.openai]
kind = "openai"
base_url = "https://api.openai.com"
credential = "llm"

[[tools]]
name = "post"
upstream = "social"
match = "POST /statuses"
retry = "idempotent"

[loop_breaker]
max_identical = 0

[redaction]
email = false
"#,
    );
    std::fs::create_dir_all(&config.logging.dir).unwrap();
    std::fs::set_permissions(&config.logging.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let report = score(&context(&config, &[("SOCIAL", "a-value"), ("LLM", "b-value")], SystemTime::now()).await);
    let expect = [
        ("every side-effecting tool has a limit", Status::Fail, "no limit on: post"),
        ("retries use backoff", Status::Warn, "may repeat them: post"),
        ("a daily spend cap is set", Status::Fail, "without a daily cap"),
        ("the loop breaker is on", Status::Fail, "disables it"),
        ("the store is writable", Status::Pass, "went through"),
        ("redaction is on", Status::Warn, "PII detectors off: email"),
        ("log directory is writable and 0700", Status::Fail, "mode 755"),
        ("side-effect tools declare their undo", Status::Warn, "tool `post` has a side effect and no undo"),
    ];
    for (name, status, detail) in expect {
        let found = item(&report, name);
        assert_eq!(found.status, status, "{found:?}");
        assert!(found.detail.contains(detail), "{found:?}");
    }
    assert!(
        item(&report, "log directory is writable and 0700").fix.as_deref().unwrap_or_default().contains("chmod 700")
    );
    for check in &report.checks {
        assert_eq!(check.fix.is_none(), check.status == Status::Pass, "{check:?}");
    }
}

#[tokio::test]
async fn sections_come_in_checklist_order_with_stable_items() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let report = score(&context(&config, &[("SOCIAL", "v")], SystemTime::now()).await);
    let mut sections: Vec<&str> = report.checks.iter().map(|c| c.section).collect();
    sections.dedup();
    assert_eq!(
        sections,
        ["Credentials", "Logging", "Rate limiting", "Monitoring", "Backups", "Runbook", "Config", "First deployment"]
    );
    assert_eq!(report.checks.len(), 7 + 7 + 5 + 3 + 4 + 3 + 1 + 1);
    assert_eq!(item(&report, "side-effect tools declare their undo").detail, "no tool has a side effect");
    assert_eq!(item(&report, "the store is writable").status, Status::Warn, "no state dir yet");
    assert_eq!(item(&report, "dead-man heartbeat is configured").status, Status::Warn);
    assert!(item(&report, "dead-man heartbeat is configured").detail.starts_with("no [heartbeat]"));
    // No sink: alerts are only logged, which degrades but does not break the deployment.
    assert_eq!(item(&report, "agent-down, error-rate and spend alerts have a sink").status, Status::Warn);
}

const BUDGET_ITEM: &str = "the store and logs fit in max_total_size";
const ROOM_ITEM: &str = "the disk has room for the retention window";

#[tokio::test]
async fn the_disk_items_project_the_observed_call_rate_over_the_retention_window() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let now_ms = crate::clock::unix_ms(now);

    // No calls yet: nothing to project, and the budget is the bound.
    let ctx = context(&config, &[("SOCIAL", "v")], now).await;
    assert_eq!(ctx.disk.rate, None);
    let budget = item(&score(&ctx), BUDGET_ITEM).clone();
    assert_eq!(budget.status, Status::Pass, "{budget:?}");
    assert!(budget.detail.contains("no calls journaled"), "{budget:?}");

    // 2,000 calls over the last two days: 1,000 a day.
    std::fs::create_dir_all(&config.state.dir).unwrap();
    let store = Store::open(&config.state.db_path(), crate::store::tests::redactor()).unwrap();
    for i in 1..=2_000_i64 {
        let id = format!("c{i}");
        store.admit(crate::store::tests::admission(&id, now_ms - i * 86_400, None, &id)).await.unwrap();
    }
    drop(store);
    let mut ctx = context(&config, &[("SOCIAL", "v")], now).await;
    let rate = ctx.disk.rate.unwrap();
    assert_eq!(rate.calls, 2_000);
    assert!((rate.per_day() - 1_000.0).abs() < 1.0, "{rate:?}");
    assert_ne!(ctx.disk.store_bytes_per_call, DEFAULT_STORE_BYTES_PER_CALL, "measured on 2,000 rows");
    let report = score(&ctx);
    assert_eq!(item(&report, BUDGET_ITEM).status, Status::Pass, "{:?}", item(&report, BUDGET_ITEM));
    assert!(item(&report, BUDGET_ITEM).detail.starts_with("at 1,000 calls/day: store ~"), "{report:?}");

    // Fat audit lines: 30 days of them no longer fit next to the store.
    ctx.disk.audit_bytes_per_call = 100_000;
    let found = item(&score(&ctx), BUDGET_ITEM).clone();
    assert_eq!(found.status, Status::Warn, "{found:?}");
    assert!(found.detail.contains("audit files older than about 19 days will be deleted"), "{found:?}");
    assert!(found.fix.unwrap().contains("lower [logging] retention_days to 19"));

    // A budget smaller than the store alone: the store is not trimmed, say so.
    let small = write_config(dir.path(), "[logging]\nmax_file_size = \"100KB\"\nmax_total_size = \"1MB\"\n");
    let ctx = context(&small, &[("SOCIAL", "v")], now).await;
    let found = item(&score(&ctx), BUDGET_ITEM).clone();
    assert_eq!(found.status, Status::Warn, "{found:?}");
    assert!(found.detail.contains("the store alone will reach"), "{found:?}");
    assert!(found.detail.contains("never trimmed for size"), "{found:?}");

    // The disk: room here, not once the free space is a kilobyte.
    let mut ctx = context(&config, &[("SOCIAL", "v")], now).await;
    assert_eq!(item(&score(&ctx), ROOM_ITEM).status, Status::Pass, "{:?}", item(&score(&ctx), ROOM_ITEM));
    ctx.disk.state_free = Some(1_000);
    ctx.disk.log_free = Some(1_000);
    let found = item(&score(&ctx), ROOM_ITEM).clone();
    assert_eq!(found.status, Status::Warn, "{found:?}");
    assert!(found.detail.starts_with("at 1,000 calls/day, over the retention window: "), "{found:?}");
    assert!(found.detail.contains("1.0 KB free"), "{found:?}");
    assert!(found.fix.unwrap().contains("refuse every call"));
}

/// An upstream whose token steward introspects, with `[policy]` forbidding admin.
const INTROSPECTED: &str = r#"
[credentials.gh]
source = "env:GH"
scopes = ["repo", "read:org"]

[upstreams.gh]
base_url = "https://api.gh.example"
credential = "gh"
introspection_url = "https://auth.gh.example/introspect"

[policy]
forbidden_scopes = ["admin", "admin:*"]
"#;

const SCOPES_ITEM: &str = "scopes match what the upstream reports";

/// A record as the daemon writes it.
fn introspected(reported: &[&str], active: Option<bool>, error: Option<&str>) -> IntrospectionRecord {
    IntrospectionRecord {
        at_ms: 1,
        active,
        reported: (active == Some(true) && error.is_none()).then(|| reported.iter().map(|s| (*s).to_owned()).collect()),
        error: error.map(str::to_owned),
        ..IntrospectionRecord::default()
    }
}

#[tokio::test]
async fn the_introspection_item_scores_the_latest_outcome_against_the_current_declaration() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), INTROSPECTED);
    let env = [("SOCIAL", "s-value"), ("GH", "g-value")];
    let cases: Vec<(Option<IntrospectionRecord>, Status, &str, &str)> = vec![
        (None, Status::Warn, "not checked yet: gh", "steward run"),
        (
            Some(introspected(&["read:org", "repo"], Some(true), None)),
            Status::Pass,
            "exactly the declared scopes: gh",
            "",
        ),
        (Some(introspected(&["repo"], Some(true), None)), Status::Warn, "gh (gh): missing read:org", "fix `scopes`"),
        (
            // The record predates the policy: the scopes are compared again.
            Some(introspected(&["read:org", "repo", "admin:org"], Some(true), None)),
            Status::Fail,
            "forbidden scopes reported: gh: admin:org",
            "revoke",
        ),
        (
            Some(introspected(&[], Some(false), Some("not active"))),
            Status::Fail,
            "token not active: gh (credential gh)",
            "issue a new token",
        ),
        (
            Some(introspected(&[], None, Some("cannot reach the introspection endpoint"))),
            Status::Warn,
            "gh: cannot reach the introspection endpoint",
            "introspection_url",
        ),
    ];
    for (record, status, detail, fix) in cases {
        let mut ctx = context(&config, &env, SystemTime::now()).await;
        ctx.introspection.extend(record.clone().map(|r| ("gh".to_owned(), r)));
        let report = score(&ctx);
        let found = item(&report, SCOPES_ITEM);
        assert_eq!(found.status, status, "{record:?}: {found:?}");
        assert!(found.detail.contains(detail), "{record:?}: {found:?}");
        assert!(found.fix.as_deref().unwrap_or_default().contains(fix), "{record:?}: {found:?}");
        let names: Vec<&str> = report.checks.iter().filter(|c| c.section == "Credentials").map(|c| c.item).collect();
        assert_eq!(names[6], SCOPES_ITEM, "after the declared-scope item: {names:?}");
    }
}

#[tokio::test]
async fn runbook_items_follow_the_contacts_and_the_recorded_page() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let now = SystemTime::now();
    let report = score(&context(&config, &[("SOCIAL", "v")], now).await);
    let contacts = item(&report, "contacts are listed");
    assert_eq!(
        (contacts.status, contacts.detail.as_str()),
        (Status::Warn, "no [runbook] contacts: nobody is written down to call")
    );
    assert!(contacts.fix.as_deref().unwrap().contains("[runbook] contacts = ["), "{contacts:?}");
    let rendered = item(&report, "the runbook is rendered");
    assert_eq!((rendered.status, rendered.detail.as_str()), (Status::Warn, "not rendered yet"));
    assert!(rendered.fix.as_deref().unwrap().contains("`steward runbook`"), "{rendered:?}");

    let config = write_config(dir.path(), "[runbook]\ncontacts = [\"Ana <ana@example.com>\", \"Bo <+1 555 0100>\"]\n");
    let bytes = std::fs::read(&config.source_path).unwrap();
    let page = config.runbook.output.clone();
    std::fs::create_dir_all(page.parent().unwrap()).unwrap();
    std::fs::write(&page, "# Runbook\n").unwrap();
    let record = crate::runbook::RenderedRecord {
        at_ms: 1,
        path: page.clone(),
        config_sha256: crate::runbook::config_sha256(&bytes),
    };
    let mut ctx = context(&config, &[("SOCIAL", "v")], now).await;
    let states = [
        (Status::Pass, "RUNBOOK.md was rendered from the current config"),
        (Status::Warn, "the rendered file is gone (RUNBOOK.md is no longer where it was written)"),
        (Status::Warn, "RUNBOOK.md was rendered before the config changed"),
    ];
    for (step, (status, detail)) in states.into_iter().enumerate() {
        match step {
            1 => std::fs::remove_file(&page).unwrap(),
            2 => {
                std::fs::write(&page, "# Runbook\n").unwrap();
                let mut file = std::fs::OpenOptions::new().append(true).open(&config.source_path).unwrap();
                std::io::Write::write_all(&mut file, b"# a comment\n").unwrap();
            }
            _ => {}
        }
        ctx.runbook = Some(RunbookProbe::probe(record.clone(), &config.source_path));
        let report = score(&ctx);
        assert_eq!(item(&report, "contacts are listed").detail, "2 contact(s) in [runbook]");
        assert_eq!(item(&report, "contacts are listed").status, Status::Pass);
        let rendered = item(&report, "the runbook is rendered");
        assert_eq!((rendered.status, rendered.detail.as_str()), (status, detail), "step {step}");
        assert_eq!(rendered.fix.is_none(), status == Status::Pass);
    }
}

#[tokio::test]
async fn without_an_introspection_url_there_is_no_introspection_item() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "scopes_header = \"X-OAuth-Scopes\"\n");
    let report = score(&context(&config, &[("SOCIAL", "v")], SystemTime::now()).await);
    assert!(report.checks.iter().all(|c| c.item != SCOPES_ITEM));
}

#[tokio::test]
async fn doctor_reads_the_record_the_daemon_left_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), INTROSPECTED);
    std::fs::create_dir_all(&config.state.dir).unwrap();
    let store = Store::open(&config.state.db_path(), crate::store::tests::redactor()).unwrap();
    let record = introspected(&["repo", "read:org"], Some(true), None);
    let key = crate::secrets::introspect::record_key("gh");
    assert_eq!(key, "scopes.introspection.gh");
    store.kv_set(&key, &serde_json::to_string(&record).unwrap(), 1).await.unwrap();
    drop(store);
    let ctx = gather(&config, SystemTime::now()).await;
    assert_eq!(ctx.introspection.get("gh"), Some(&record));
    assert_eq!(item(&score(&ctx), SCOPES_ITEM).status, Status::Pass);
}

#[tokio::test]
async fn gather_reads_the_runbook_record_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let bytes = std::fs::read(&config.source_path).unwrap();
    crate::state_dir::ensure_private_dir(&config.state.dir).unwrap();
    let page = config.runbook.output.clone();
    crate::runbook::write_page(&page, "# Runbook\n").unwrap();
    let record =
        crate::runbook::RenderedRecord { at_ms: 1, path: page, config_sha256: crate::runbook::config_sha256(&bytes) };
    let store = Store::open(&config.state.db_path(), crate::store::tests::redactor()).unwrap();
    crate::runbook::record(&store, &record).await.unwrap();
    drop(store);
    let ctx = gather(&config, SystemTime::now()).await;
    assert_eq!(ctx.runbook, Some(RunbookProbe { record, freshness: crate::runbook::Freshness::Current }));
    assert_eq!(item(&score(&ctx), "the runbook is rendered").status, Status::Pass);
}

fn agent_config(dir: &Path, agent: &str) -> Config {
    let path = dir.join("steward.toml");
    let text = BASE.replacen("name = \"poster\"", &format!("name = \"poster\"\ncommand = [\"true\"]\n{agent}"), 1);
    std::fs::write(&path, text).unwrap();
    crate::config::load(&path).unwrap()
}

#[tokio::test]
async fn a_production_agent_with_stewards_own_uid_fails_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(dir.path(), "");
    let report = score(&context(&config, &[("SOCIAL", "tok-123456789")], SystemTime::now()).await);
    let user = item(&report, "the agent runs as its own user, away from steward's files");
    assert_eq!(user.status, Status::Fail);
    assert!(user.detail.contains("in production") && user.detail.contains("release its kill switch"), "{user:?}");
    assert!(user.fix.as_deref().unwrap().contains("user = \"steward-agent\""), "{user:?}");
    let net = item(&report, "the agent reaches the network only through steward");
    assert_eq!(net.status, Status::Warn);
    assert_eq!(item(&report, "the kernel can box the agent (PID namespace)").status, Status::Pass);

    // A kernel that refuses user namespaces, steward not root: FAIL with the sysctl.
    let mut ctx = context(&config, &[("SOCIAL", "tok-123456789")], SystemTime::now()).await;
    ctx.namespaces = NamespaceProbe { root: false, userns_refused: Some("user.max_user_namespaces = 0".into()) };
    let report = score(&ctx);
    let kernel = item(&report, "the kernel can box the agent (PID namespace)");
    assert_eq!(kernel.status, Status::Fail);
    assert!(kernel.fix.as_deref().unwrap().contains("max_user_namespaces"), "{kernel:?}");

    // An unknown user fails with how to create it; steward-only passes.
    let config = agent_config(dir.path(), "user = \"no-such-user-q7\"\nnetwork = \"steward-only\"");
    let report = score(&context(&config, &[("SOCIAL", "tok-123456789")], SystemTime::now()).await);
    let user = item(&report, "the agent runs as its own user, away from steward's files");
    assert_eq!(user.status, Status::Fail);
    assert!(user.fix.as_deref().unwrap().contains("useradd"), "{user:?}");
    assert_eq!(item(&report, "the agent reaches the network only through steward").status, Status::Pass);
}

#[tokio::test]
async fn the_first_week_row_says_supervised_graduated_or_never_supervised() {
    use crate::supervision::{Graduation, SupervisionState};
    const ITEM: &str = "supervised mode for the first week";
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_687_200);
    let off = write_config(dir.path(), "");
    let mut ctx = context(&off, &[("SOCIAL", "v")], now).await;
    let never = item(&score(&ctx), ITEM).clone();
    assert_eq!(never.status, Status::Warn);
    assert!(never.detail.starts_with("never supervised"), "{never:?}");
    assert!(never.fix.as_deref().unwrap().contains("[supervised] enabled = true"), "{never:?}");

    let since = SupervisionState { since_ms: Some(1_795_000_000_000), ..SupervisionState::default() };
    ctx.supervision = Some(since.clone());
    let dropped = item(&score(&ctx), ITEM).clone();
    assert_eq!(dropped.status, Status::Warn, "turned off without graduating: {dropped:?}");
    assert!(dropped.fix.as_deref().unwrap().contains("steward graduate"), "{dropped:?}");

    let on = write_config(dir.path(), "\n[supervised]\nenabled = true\n");
    let mut ctx = context(&on, &[("SOCIAL", "v")], now).await;
    let pending = item(&score(&ctx), ITEM).clone();
    assert_eq!(pending.status, Status::Pass);
    assert!(pending.detail.contains("next `steward run`"), "{pending:?}");
    ctx.supervision = Some(since.clone());
    let supervised = item(&score(&ctx), ITEM).clone();
    assert_eq!(supervised.status, Status::Pass);
    assert!(supervised.detail.starts_with("supervised since 2026-11-18"), "{supervised:?}");

    let graduated = Graduation { at_ms: 1_795_687_200_000, by: "ana".into(), forced: true };
    ctx.supervision = Some(SupervisionState { graduated: Some(graduated), ..since });
    let done = item(&score(&ctx), ITEM).clone();
    assert_eq!(done.status, Status::Pass);
    assert_eq!(
        done.detail,
        "graduated on 2026-11-26 by ana (forced past the readiness verdict), after supervision since 2026-11-18; \
         `steward supervise` goes back"
    );
}
