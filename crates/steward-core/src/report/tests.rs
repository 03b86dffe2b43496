//! The report against a real store seeded through the store API (calls,
//! refusals, spend, approvals, kv records), the readiness verdict's every
//! branch, and the renderings.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::{self, LoopBreakerConfig, ReadyThresholds};
use crate::store::{Admission, Completion, SpendHold, SpendSettlement};
use crate::supervision::{self, Graduation};

/// 2026-11-26T10:00:00Z
fn t0() -> i64 {
    1_795_687_200_000
}

fn config(extra: &str) -> Config {
    let text = format!("[agent]\nname = \"poster\"\n{extra}");
    match config::parse(&text, Path::new("/srv/poster/steward.toml")) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    }
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
    (dir, store)
}

fn admission(at_ms: i64, tool: Option<&str>, spend: Option<SpendHold>) -> Admission {
    let id = crate::store::new_call_id();
    Admission {
        call_id: id.clone(),
        now_ms: at_ms,
        door: "api".into(),
        tool: tool.map(str::to_owned),
        upstream: "social".into(),
        method: "POST".into(),
        path: "/x".into(),
        loop_key: id,
        input_summary: String::new(),
        input_sha256: String::new(),
        limit: None,
        loop_breaker: LoopBreakerConfig { max_identical: 0, window: Duration::ZERO },
        spend,
        undo_by_operator: false,
    }
}

/// An admitted call finished with `status` (`None`: forwarding failed with `error`).
async fn call(store: &Store, at_ms: i64, tool: &str, status: Option<u16>, error: Option<&str>) {
    let a = admission(at_ms, Some(tool), None);
    let id = a.call_id.clone();
    store.admit(a).await.unwrap();
    let completion = Completion {
        call_id: id,
        now_ms: at_ms + 10,
        status,
        duration_ms: 10,
        attempts: 1,
        response_ref: None,
        error: error.map(str::to_owned),
        extra_json: None,
        spend: None,
        undo: None,
    };
    store.complete(completion).await.unwrap();
}

async fn approval(store: &Store, id: &str, created_ms: i64, state: &str, decided: Option<(i64, &str)>) {
    let (decided_ms, via) = match decided {
        Some((ms, via)) => (ms.to_string(), format!("'{via}'")),
        None => ("NULL".to_owned(), "NULL".to_owned()),
    };
    store
        .exec_on_writer(&format!(
            "INSERT INTO approvals (id, created_ms, expires_ms, door, tool, upstream, method, path, digest, summary,
                                    state, decided_ms, decided_by, decided_via)
             VALUES ('{id}', {created_ms}, {created_ms} + 7200000, 'api', 'post', 'social', 'POST', '/x', 'd{id}', '',
                     '{state}', {decided_ms}, 'ana', {via})"
        ))
        .await
        .unwrap();
}

const HOUR: i64 = 3_600_000;

#[tokio::test]
async fn the_report_counts_what_the_store_holds() {
    let (_dir, store) = store();
    let config = config("[spend]\ndaily_cap_usd = 10.0\n[supervised]\nenabled = true\n");
    let now = t0() + 2 * DAY_MS;
    // Outside the window (3 days back with --since 2d): not counted.
    call(&store, t0() - DAY_MS, "post", Some(200), None).await;
    // Day one (2026-11-26): two posts, one 503; day two: a read, a timeout, an unreachable upstream.
    call(&store, t0() + HOUR, "post", Some(200), None).await;
    call(&store, t0() + 2 * HOUR, "post", Some(503), None).await;
    call(&store, t0() + DAY_MS, "read", Some(200), None).await;
    call(&store, t0() + DAY_MS + HOUR, "read", None, Some("upstream timed out after 1 attempt(s)")).await;
    call(&store, t0() + DAY_MS + 2 * HOUR, "post", None, Some("upstream unreachable after 2 attempt(s): refused"))
        .await;
    // Refusals: two rate_limited, one loop_detected, one unmatched.
    for (decision, tool, offset) in [
        (Decision::RateLimited, Some("post"), 3 * HOUR),
        (Decision::RateLimited, Some("post"), 4 * HOUR),
        (Decision::LoopDetected, Some("read"), 5 * HOUR),
        (Decision::Unmatched, None, 6 * HOUR),
    ] {
        store.record_refused(admission(t0() + offset, tool, None), decision, "refused", 429).await.unwrap();
    }
    // A priced call on day two: $0.25 settled.
    let hold = SpendHold {
        day: "2026-11-27".into(),
        provider: "openai".into(),
        model: "gpt".into(),
        reserve_micros: 1_000_000,
        cap_micros: Some(10_000_000),
    };
    let a = admission(t0() + DAY_MS + 3 * HOUR, Some("chat"), Some(hold));
    let id = a.call_id.clone();
    store.admit(a).await.unwrap();
    let settled = SpendSettlement {
        micros: 250_000,
        input_tokens: 1,
        output_tokens: 1,
        cached_tokens: 0,
        estimated: false,
        stop: None,
    };
    let completion = Completion {
        call_id: id,
        now_ms: t0() + DAY_MS + 3 * HOUR + 5,
        status: Some(200),
        duration_ms: 5,
        attempts: 1,
        response_ref: None,
        error: None,
        extra_json: None,
        spend: Some(settled),
        undo: None,
    };
    store.complete(completion).await.unwrap();
    // Approvals: granted after 60 s and 180 s, denied after 120 s, one expired, one pending, one too old.
    approval(&store, "a1", t0() + HOUR, "released", Some((t0() + HOUR + 60_000, "cli"))).await;
    approval(&store, "a2", t0() + 2 * HOUR, "approved", Some((t0() + 2 * HOUR + 180_000, "cli"))).await;
    approval(&store, "a3", t0() + 3 * HOUR, "denied", Some((t0() + 3 * HOUR + 120_000, "cli"))).await;
    approval(&store, "a4", t0() + 4 * HOUR, "expired", Some((t0() + 6 * HOUR, "expiry"))).await;
    approval(&store, "a5", t0() + 5 * HOUR, "pending", None).await;
    approval(&store, "a0", t0() - DAY_MS, "approved", Some((t0() - DAY_MS + 1_000, "cli"))).await;
    // A restore test passed in the window, another before it.
    store.kv_set("backup.verified.b1", &(t0() + HOUR).to_string(), t0() + HOUR).await.unwrap();
    store.kv_set("backup.verified.b0", &(t0() - DAY_MS).to_string(), t0() - DAY_MS).await.unwrap();
    supervision::record_start(&store, t0() - 3 * DAY_MS).await.unwrap();

    let inputs = Inputs {
        now: from_unix_ms(now),
        since: Duration::from_secs(2 * 86_400),
        doctor_fails: vec!["Backups: config and state are backed up daily".into()],
    };
    let report = gather(&store, &config, inputs).await.unwrap();
    let rows: Vec<_> = report.calls.iter().map(|d| (d.day.as_str(), d.tool.as_str(), d.calls, d.allowed)).collect();
    assert_eq!(
        rows,
        [
            ("2026-11-26", "(unmatched)", 1, 0),
            ("2026-11-26", "post", 4, 2),
            ("2026-11-26", "read", 1, 0),
            ("2026-11-27", "chat", 1, 1),
            ("2026-11-27", "post", 1, 1),
            ("2026-11-27", "read", 2, 2),
        ]
    );
    assert_eq!((report.calls_total, report.allowed_total), (10, 6));
    assert_eq!(
        report.approvals,
        Approvals { requested: 5, granted: 2, denied: 1, expired: 1, pending: 1, median_decide_ms: Some(120_000) }
    );
    let refusals: Vec<_> = report.refusals.iter().map(|r| (r.reason.as_str(), r.count)).collect();
    assert_eq!(refusals, [("rate_limited", 2), ("loop_detected", 1), ("unmatched", 1)]);
    assert_eq!(report.loop_breaker_trips, 1);
    assert_eq!(report.upstream_errors, UpstreamErrors { status_5xx: 1, unreachable: 1, timeout: 1 });
    assert_eq!(report.spend, [SpendDay { day: "2026-11-27".into(), calls: 1, usd: 0.25 }]);
    assert_eq!(report.restore_tests_passed, 1);
    assert_eq!(report.supervision.since_ms, Some(t0() - 3 * DAY_MS));

    // Readiness, over the last 7 days: 5 days supervised, 4 decisions (a0 included), a denial 2 days ago.
    let by_key = |key: &str| report.readiness.criteria.iter().find(|c| c.key == key).unwrap().clone();
    assert!(!report.readiness.ready);
    assert_eq!(by_key("supervised_days").measured, "5 days (since 2026-11-23)");
    assert_eq!(by_key("decisions").measured, "4 decisions");
    assert_eq!(by_key("no_recent_denial").status, Verdict::Fail);
    assert_eq!(by_key("no_crash_loop").status, Verdict::Pass);
    assert_eq!(by_key("restore_test").measured, "no [backup] configured");
    assert!(by_key("doctor").measured.contains("backed up daily"));

    // The JSON shape scripts read.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["approvals"]["median_decide_ms"], 120_000);
    assert_eq!(json["readiness"]["criteria"][0]["status"], "fail");
    assert_eq!(json["upstream_errors"]["timeout"], 1);
}

#[tokio::test]
async fn a_crash_loop_counts_after_resume_through_the_alert_history() {
    let (_dir, store) = store();
    let config = config("");
    let now = t0();
    let record = crate::agent_state::FatalRecord { since_ms: now - DAY_MS, exits: 5, reason: "crash".into() };
    crate::agent_state::write_fatal(&store, &record, now - DAY_MS).await.unwrap();
    let readiness = check_readiness(&store, &config, from_unix_ms(now), Vec::new()).await.unwrap();
    let crash = readiness.criteria.iter().find(|c| c.key == "no_crash_loop").unwrap();
    assert_eq!(crash.status, Verdict::Fail, "held as fatal");
    crate::agent_state::request_resume(&store, now).await.unwrap();
    let readiness = check_readiness(&store, &config, from_unix_ms(now), Vec::new()).await.unwrap();
    assert_eq!(readiness.criteria.iter().find(|c| c.key == "no_crash_loop").unwrap().status, Verdict::Pass);
    // The engine recorded the crash_loop alert: it is remembered after the resume.
    let state = serde_json::json!({"firing": {}, "fired": [
        {"key": "crash_loop", "title": "The agent is crash-looping", "severity": "critical", "at_ms": now - DAY_MS}
    ]});
    store.kv_set(crate::monitor::engine::STATE_KEY, &state.to_string(), now).await.unwrap();
    let readiness = check_readiness(&store, &config, from_unix_ms(now), Vec::new()).await.unwrap();
    let crash = readiness.criteria.iter().find(|c| c.key == "no_crash_loop").unwrap();
    assert_eq!(crash.status, Verdict::Fail);
    assert_eq!(crash.measured, "crash loop on 2026-11-25");
}

fn facts() -> ReadinessFacts {
    ReadinessFacts {
        window_days: 7,
        enabled: true,
        since_ms: Some(t0() - 8 * DAY_MS),
        decisions: 25,
        last_denial_ms: Some(t0() - 4 * DAY_MS),
        crash_loop_ms: None,
        restore_test: Some(Some((t0() - DAY_MS, true))),
        doctor_fails: Vec::new(),
    }
}

#[test]
fn every_criterion_passes_and_each_fails_on_its_own_with_a_fix() {
    let thresholds = ReadyThresholds::default();
    let all = readiness(&facts(), &thresholds, t0());
    assert!(all.ready, "{all:?}");
    assert!(all.criteria.iter().all(|c| c.fix.is_none()));
    let keys: Vec<_> = all.criteria.iter().map(|c| c.key).collect();
    assert_eq!(keys, ["supervised_days", "decisions", "no_recent_denial", "no_crash_loop", "restore_test", "doctor"]);

    let cases: Vec<(&str, ReadinessFacts, &str)> = vec![
        ("supervised_days", ReadinessFacts { since_ms: Some(t0() - 5 * DAY_MS), ..facts() }, "until 2026-11-28"),
        ("supervised_days", ReadinessFacts { since_ms: None, enabled: false, ..facts() }, "enabled = true"),
        ("supervised_days", ReadinessFacts { since_ms: None, ..facts() }, "steward run"),
        ("decisions", ReadinessFacts { decisions: 19, ..facts() }, "1 more"),
        ("no_recent_denial", ReadinessFacts { last_denial_ms: Some(t0() - DAY_MS), ..facts() }, "until 2026-11-28"),
        ("no_crash_loop", ReadinessFacts { crash_loop_ms: Some(t0() - DAY_MS), ..facts() }, "steward resume"),
        ("restore_test", ReadinessFacts { restore_test: None, ..facts() }, "[backup]"),
        ("restore_test", ReadinessFacts { restore_test: Some(None), ..facts() }, "steward backup verify"),
        ("restore_test", ReadinessFacts { restore_test: Some(Some((t0(), false))), ..facts() }, "backup verify"),
        ("doctor", ReadinessFacts { doctor_fails: vec!["Logging: x".into()], ..facts() }, "steward doctor"),
    ];
    for (key, case, fix) in cases {
        let verdict = readiness(&case, &thresholds, t0());
        assert!(!verdict.ready, "{key}");
        let unmet: Vec<_> = verdict.unmet().collect();
        assert_eq!(unmet.len(), 1, "{key}: {unmet:?}");
        assert_eq!(unmet[0].key, key);
        let text = unmet[0].fix.as_deref().unwrap();
        assert!(text.contains(fix), "{key}: {text}");
    }
}

#[test]
fn the_thresholds_come_from_the_config() {
    let relaxed = ReadyThresholds { min_days: 2, min_decisions: 0, quiet_days: 0 };
    let f =
        ReadinessFacts { since_ms: Some(t0() - 2 * DAY_MS), decisions: 0, last_denial_ms: Some(t0() - 1), ..facts() };
    assert!(readiness(&f, &relaxed, t0()).ready);
    assert!(!readiness(&f, &ReadyThresholds::default(), t0()).ready);
}

#[test]
fn a_median_of_an_even_count_is_the_mean_of_the_middle_two() {
    let row = |state: &str, wait: i64, via: &str| crate::store::ApprovalOutcome {
        state: state.into(),
        created_ms: 0,
        decided_ms: Some(wait),
        decided_via: Some(via.into()),
    };
    let rows = [row("approved", 10, "cli"), row("denied", 30, "cli"), row("expired", 5_000, "expiry")];
    let a = summarize_approvals(&rows);
    assert_eq!((a.granted, a.denied, a.expired, a.median_decide_ms), (1, 1, 1, Some(20)));
    assert_eq!(summarize_approvals(&[]).median_decide_ms, None);
}

fn sample() -> Report {
    Report {
        agent: "poster".into(),
        generated_ms: t0(),
        since_ms: t0() - 7 * DAY_MS,
        timezone: "UTC".into(),
        calls: vec![ToolDay { day: "2026-11-25".into(), tool: "post|x".into(), calls: 3, allowed: 2 }],
        calls_total: 3,
        allowed_total: 2,
        approvals: Approvals {
            requested: 2,
            granted: 1,
            denied: 1,
            expired: 0,
            pending: 0,
            median_decide_ms: Some(90_000),
        },
        refusals: vec![ReasonCount { reason: "rate_limited".into(), count: 1 }],
        upstream_errors: UpstreamErrors { status_5xx: 1, unreachable: 0, timeout: 0 },
        spend: vec![SpendDay { day: "2026-11-25".into(), calls: 2, usd: 0.5 }],
        spend_total_usd: 0.5,
        loop_breaker_trips: 0,
        alerts: vec![AlertCount { key: "error_rate".into(), fired: 2, last_title: "40% of calls failed".into() }],
        restore_tests_passed: 1,
        supervision: supervision::SupervisionState {
            since_ms: Some(t0() - 8 * DAY_MS),
            graduated: Some(Graduation { at_ms: t0(), by: "ana".into(), forced: true }),
            returned: None,
        },
        readiness: readiness(&ReadinessFacts { decisions: 2, ..facts() }, &ReadyThresholds::default(), t0()),
    }
}

#[test]
fn the_markdown_has_a_readiness_table_and_every_section() {
    let md = markdown(&sample());
    assert!(md.starts_with("## steward report: poster\n"), "{md}");
    assert!(md.contains("Mode: graduated on 2026-11-26 10:00 UTC by ana (forced past the readiness verdict)."), "{md}");
    assert!(md.contains("### Readiness: NOT READY (5 of 6 criteria pass, over the last 7 day(s))"), "{md}");
    assert!(
        md.contains("| FAIL | at least 20 decisions in the last 7 days | 2 decisions | approve or deny 18 more"),
        "{md}"
    );
    assert!(md.contains("| PASS | a restore test passed | passed on 2026-11-25 |  |"), "{md}");
    assert!(md.contains("| 2026-11-25 | post\\|x | 3 | 2 |"), "a pipe in a cell is escaped: {md}");
    assert!(md.contains("| 2 | 1 | 1 | 0 | 0 | 1m |"), "{md}");
    assert!(md.contains("| total | $0.50 | |"), "{md}");
    assert!(md.contains("  - `error_rate`: 2 (last: 40% of calls failed)"), "{md}");
    for heading in ["Calls per tool per day", "Approvals", "Refusals by reason", "Upstream errors", "Spend per day"] {
        assert!(md.contains(&format!("\n### {heading}\n")), "{heading}: {md}");
    }
}

#[test]
fn the_text_shows_each_criterion_with_its_fix() {
    let text = text(&sample());
    assert!(text.contains("Readiness: NOT READY (5 of 6 criteria pass"), "{text}");
    assert!(
        text.contains(
            "  FAIL  at least 20 decisions in the last 7 days — 2 decisions\n        fix: approve or deny 18 more"
        ),
        "{text}"
    );
    assert!(text.contains("  PASS  no crash loop in the last 7 days — none\n"), "{text}");
    assert!(text.contains("median time to decide: 1m"), "{text}");
    assert!(text.contains("5xx 1 · unreachable 0 · timeout 0"), "{text}");
}
