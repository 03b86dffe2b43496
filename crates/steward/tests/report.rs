//! `steward report`, `steward graduate` and `steward supervise` against a
//! real daemon and mock-upstream: the report's numbers match the journal,
//! graduation is refused with every unmet criterion until `--force`, is
//! recorded and audited, and `supervise` undoes it, with or without a
//! running daemon.

#![expect(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::BTreeMap;

use common::{DEFAULT_TOOLS, Env};
use reqwest::Method;
use serde_json::{Value, json};

/// The default tools, with supervised mode on (the daemon records its
/// start). `post` is `approval = "never"` so the agent's calls go straight
/// through: the approvals the report counts are seeded rows, and
/// `tests/supervised.rs` covers holding and releasing real calls.
fn supervised_tools() -> String {
    let tools = DEFAULT_TOOLS.replace("side_effect = true\nlimit", "side_effect = true\napproval = \"never\"\nlimit");
    assert!(tools.contains("approval = \"never\""), "the post tool changed shape");
    format!("{tools}\n[supervised]\nenabled = true\n")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn report_json(env: &Env, args: &[&str]) -> Value {
    let mut all = vec!["report", "--json"];
    all.extend_from_slice(args);
    let out = env.steward(&all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Approval rows as the approval step writes them: `(state, created_ms, wait_ms, via)`.
fn seed_approvals(env: &Env, rows: &[(&str, i64, i64, &str)]) {
    let conn = rusqlite::Connection::open(env.state_dir().join("steward.db")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    for (i, (state, created, wait, via)) in rows.iter().enumerate() {
        let decided = (*state != "pending").then_some(created + wait);
        let via = (*state != "pending").then_some(*via);
        conn.execute(
            "INSERT INTO approvals (id, created_ms, expires_ms, door, tool, upstream, method, path, digest, summary,
                                    state, decided_ms, decided_by, decided_via)
             VALUES (?1, ?2, ?2 + 7200000, 'api', 'post', 'social', 'POST', '/api/v1/statuses', ?1, '', ?3, ?4,
                     'ana', ?5)",
            rusqlite::params![format!("req{i}"), created, state, decided, via],
        )
        .unwrap();
    }
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

#[tokio::test]
async fn report_json_numbers_match_the_journal() {
    let mut env = Env::with_tools("", &supervised_tools()).await;
    env.start();
    for i in 0..3 {
        let r = env.req(Method::POST, "/api/social/api/v1/statuses").json(&json!({ "status": format!("p{i}") }));
        assert_eq!(r.send().await.unwrap().status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(env.req(Method::GET, "/api/social/api/v1/statuses").send().await.unwrap().status(), 200);
    }
    // Refused: a call no tool matches.
    assert_eq!(env.req(Method::DELETE, "/api/social/nowhere").send().await.unwrap().status(), 403);
    let now = now_ms();
    seed_approvals(
        &env,
        &[
            ("released", now - 60_000, 30_000, "cli"),
            ("approved", now - 50_000, 90_000, "cli"),
            ("denied", now - 40_000, 10_000, "cli"),
            ("expired", now - 30_000, 20_000, "expiry"),
            ("pending", now - 1_000, 0, ""),
        ],
    );

    let report = report_json(&env, &["--since", "1h"]);
    let journal = env.journal();
    assert_eq!(report["calls_total"], journal.len(), "{report:#}");
    let mut per_tool: BTreeMap<String, u64> = BTreeMap::new();
    for row in &journal {
        *per_tool.entry(row["tool"].as_str().unwrap_or("(unmatched)").to_owned()).or_default() += 1;
    }
    let mut reported: BTreeMap<String, u64> = BTreeMap::new();
    for day in report["calls"].as_array().unwrap() {
        *reported.entry(day["tool"].as_str().unwrap().to_owned()).or_default() += day["calls"].as_u64().unwrap();
    }
    assert_eq!(reported, per_tool);
    assert_eq!(per_tool, BTreeMap::from([("(unmatched)".into(), 1), ("list".into(), 2), ("post".into(), 3)]));
    let allowed = journal.iter().filter(|r| r["decision"] == "allowed").count();
    assert_eq!(report["allowed_total"], allowed);
    assert_eq!(report["refusals"], json!([{ "reason": "unmatched", "count": 1 }]));
    assert_eq!(report["upstream_errors"], json!({ "status_5xx": 0, "unreachable": 0, "timeout": 0 }));
    assert_eq!(report["loop_breaker_trips"], 0);
    assert_eq!(
        report["approvals"],
        json!({ "requested": 5, "granted": 2, "denied": 1, "expired": 1, "pending": 1, "median_decide_ms": 30_000 })
    );
    // The daemon recorded the first supervised start.
    let since = report["supervision"]["since_ms"].as_i64().unwrap();
    assert!(since <= now && since > now - 600_000, "{since}");
    let criteria = report["readiness"]["criteria"].as_array().unwrap();
    let decisions = criteria.iter().find(|c| c["key"] == "decisions").unwrap();
    assert_eq!(decisions["measured"], "3 decisions");
    assert_eq!(decisions["status"], "fail");
    assert_eq!(report["readiness"]["ready"], false);

    // The same numbers in the other renderings.
    let text = env.steward(&["report", "--since", "1h"]);
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    let text = stdout(&text);
    assert!(
        text.contains("5 requested · 2 granted · 1 denied · 1 expired · 1 pending · median time to decide: 30s"),
        "{text}"
    );
    assert!(text.contains("Readiness: NOT READY"), "{text}");
    let md = env.steward(&["report", "--markdown", "--since", "1h"]);
    assert_eq!(md.status.code(), Some(0), "{}", stderr(&md));
    let md = stdout(&md);
    assert!(md.starts_with("## steward report: test-agent\n"), "{md}");
    assert!(md.contains("### Readiness: NOT READY"), "{md}");
    assert!(md.contains("| FAIL | at least 20 decisions in the last 7 days | 3 decisions |"), "{md}");
    assert!(md.contains("| 5 | 2 | 1 | 1 | 1 | 30s |"), "{md}");

    // A bad window is a usage error that names the fix.
    let bad = env.steward(&["report", "--since", "7 weeks"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("7d"), "{}", stderr(&bad));
    env.stop(false);
    env.assert_no_secret_leaked();
}

#[tokio::test]
async fn graduate_is_refused_until_forced_recorded_and_undone_by_supervise() {
    let mut env = Env::with_tools("", &supervised_tools()).await;
    env.start();

    let refused = env.steward(&["graduate", "--by", "ana"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(err.contains("steward graduate refused"), "{err}");
    // Every unmet criterion with its fix: a fresh supervised deployment meets none of these.
    for unmet in ["supervised for at least 7 days", "at least 20 decisions", "a restore test passed"] {
        assert!(err.contains(&format!("FAIL  {unmet}")), "{unmet}: {err}");
    }
    assert!(err.matches("fix: ").count() >= 3, "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(report_json(&env, &[])["supervision"]["graduated"], Value::Null, "nothing recorded");

    let forced = env.steward(&["graduate", "--force", "--by", "ana"]);
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    assert!(stdout(&forced).contains("recorded as forced"), "{}", stdout(&forced));
    let graduated = &report_json(&env, &[])["supervision"]["graduated"];
    assert_eq!(graduated["by"], "ana");
    assert_eq!(graduated["forced"], true);
    let at = graduated["at_ms"].as_i64().unwrap();
    assert!(at <= now_ms() && at > now_ms() - 600_000);
    let again = env.steward(&["graduate"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(stdout(&again).contains("already graduated"), "{}", stdout(&again));

    let doctor = env.steward(&["doctor", "--json"]);
    let checks: Vec<Value> = serde_json::from_slice(&doctor.stdout).unwrap();
    let row = checks.iter().find(|c| c["item"] == "supervised mode for the first week").unwrap();
    assert_eq!(row["status"], "pass");
    assert!(row["detail"].as_str().unwrap().contains("by ana (forced past the readiness verdict)"), "{row}");

    // Back to supervised without a running daemon: the store is written directly.
    env.stop(false);
    let back = env.steward(&["supervise", "--by", "bo"]);
    assert_eq!(back.status.code(), Some(0), "{}", stderr(&back));
    assert!(stdout(&back).contains("back to supervised mode"), "{}", stdout(&back));
    let report = report_json(&env, &[]);
    assert_eq!(report["supervision"]["graduated"], Value::Null);
    assert_eq!(report["supervision"]["returned"]["by"], "bo");
    assert_eq!(report["supervision"]["returned"]["withdrew"]["by"], "ana");
    let doctor = env.steward(&["doctor", "--json"]);
    let checks: Vec<Value> = serde_json::from_slice(&doctor.stdout).unwrap();
    let row = checks.iter().find(|c| c["item"] == "supervised mode for the first week").unwrap();
    assert!(row["detail"].as_str().unwrap().starts_with("supervised since "), "{row}");

    // One audit line per change, in the daemon's log file.
    let modes: Vec<Value> = env.all_audit_lines().into_iter().filter(|l| l["phase"] == "supervision").collect();
    assert_eq!(modes.len(), 2, "{modes:#?}");
    assert_eq!(modes[0]["door"], "supervised");
    assert_eq!(modes[0]["decision"], "graduated");
    assert_eq!(modes[0]["by"], "ana");
    assert_eq!(modes[0]["forced"], true);
    assert!(modes[0]["unmet"].as_array().unwrap().iter().any(|k| k == "decisions"), "{:#}", modes[0]);
    assert_eq!(modes[1]["decision"], "supervised");
    assert_eq!(modes[1]["withdrew_graduation_by"], "ana");
    env.assert_no_secret_leaked();
}
