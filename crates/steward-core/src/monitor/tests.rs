//! Tests of the alert engine against the real store with injected time, of
//! the metrics exposition format, and of the notice text's redaction. The
//! sinks' wire formats against local receivers are in `tests_sinks`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::engine::rules;
use super::*;
use crate::config::{self, LoopBreakerConfig};
use crate::decision::Decision;
use crate::events::Event;
use crate::store::{Admission, Completion, SpendHold, Window};
use crate::telemetry::CallMetrics;

/// A planted secret the redactor knows: must never reach a notice.
pub(super) const CANARY: &str = "canary-alert-secret-4f3e2d1c0b9a";

/// 2026-11-26T10:00:00Z
pub(super) fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_687_200)
}

pub(super) fn at(base: SystemTime, secs: u64) -> SystemTime {
    base + Duration::from_secs(secs)
}

pub(super) fn ms(t: SystemTime) -> i64 {
    crate::clock::unix_ms(t)
}

pub(super) fn redactor() -> SharedRedactor {
    crate::redaction::shared(redact::RedactorBuilder::new().secret("canary", CANARY).build())
}

pub(super) fn config(extra: &str) -> Config {
    let text = format!("[agent]\nname = \"poster\"\n{extra}");
    match config::parse(&text, Path::new("/srv/poster/steward.toml")) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    engine: Engine,
    config: Config,
    metrics: Arc<Metrics>,
}

async fn fixture(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
    let config = config(extra);
    let metrics = Arc::new(Metrics::new());
    let engine = Engine::load(&config, store.clone(), None, Arc::clone(&metrics), redactor()).await;
    Fixture { _dir: dir, store, engine, config, metrics }
}

impl Fixture {
    /// A new engine on the same store, as after a daemon restart.
    async fn restart(&mut self) {
        let metrics = Arc::new(Metrics::new());
        self.engine = Engine::load(&self.config, self.store.clone(), None, Arc::clone(&metrics), redactor()).await;
        self.metrics = metrics;
    }
}

fn admission(id: &str, at_ms: i64, spend: Option<SpendHold>) -> Admission {
    Admission {
        call_id: id.to_owned(),
        now_ms: at_ms,
        door: "api".into(),
        tool: Some("echo".into()),
        upstream: "social".into(),
        method: "POST".into(),
        path: "/echo".into(),
        loop_key: id.to_owned(),
        input_summary: String::new(),
        input_sha256: String::new(),
        limit: None,
        loop_breaker: LoopBreakerConfig { max_identical: 0, window: Duration::ZERO },
        undo_by_operator: false,
        spend,
    }
}

/// Journals a forwarded call started at `at` that got `status` (None: unreachable).
async fn call(store: &Store, at: SystemTime, status: Option<u16>) {
    let id = crate::store::new_call_id();
    store.admit(admission(&id, ms(at), None)).await.unwrap();
    let completion = Completion {
        call_id: id,
        now_ms: ms(at) + 20,
        status,
        duration_ms: 20,
        attempts: 1,
        response_ref: None,
        undo: None,
        error: status.is_none().then(|| "connection refused".to_owned()),
        extra_json: None,
        spend: None,
    };
    store.complete(completion).await.unwrap();
}

/// `n` calls in the minute before `end`, the first `failed` of them 503.
async fn calls(store: &Store, end: SystemTime, n: u32, failed: u32) {
    for i in 0..n {
        let t = end - Duration::from_millis(60_000 - u64::from(i) * 100);
        call(store, t, Some(if i < failed { 503 } else { 200 })).await;
    }
}

fn keys(notices: &[Alert]) -> Vec<(&str, AlertStatus, u32)> {
    notices.iter().map(|n| (n.key.as_str(), n.status, n.repeat)).collect()
}

const ERROR_RATE: &str = "[alerts]\nerror_rate_percent = 20\nerror_rate_min_calls = 20\nrepeat_every = \"10m\"\n";

#[tokio::test]
async fn error_rate_fires_once_repeats_after_repeat_every_and_resolves_on_recovery() {
    let mut f = fixture(ERROR_RATE).await;
    // 30 calls, 40% upstream 503 (12 of them).
    calls(&f.store, t0(), 30, 12).await;
    let notices = f.engine.evaluate(t0()).await;
    assert_eq!(keys(&notices), [(rules::ERROR_RATE, AlertStatus::Firing, 0)]);
    assert!(notices[0].message.contains("12 of 30 calls"), "{}", notices[0].message);
    assert!(notices[0].title.starts_with("40%"), "{}", notices[0].title);
    assert_eq!(notices[0].severity, Severity::Warning);

    // Still failing, but repeat_every (10m) has not passed: nothing new.
    for secs in [5, 60, 599] {
        assert!(f.engine.evaluate(at(t0(), secs)).await.is_empty(), "notice at +{secs}s");
    }
    // repeat_every passed and the condition still holds: one reminder.
    let reminder = f.engine.evaluate(at(t0(), 600)).await;
    assert_eq!(keys(&reminder), [(rules::ERROR_RATE, AlertStatus::Firing, 1)]);
    assert_eq!(reminder[0].label(), "REMINDER");
    assert_eq!(reminder[0].since_ms, ms(t0()));
    assert!(f.engine.evaluate(at(t0(), 601)).await.is_empty());

    // Recovery: 60 good calls bring it to 12 of 90 (13%).
    calls(&f.store, at(t0(), 660), 60, 0).await;
    let resolved = f.engine.evaluate(at(t0(), 660)).await;
    assert_eq!(keys(&resolved), [(rules::ERROR_RATE, AlertStatus::Resolved, 1)]);
    assert!(resolved[0].message.starts_with("Resolved after 11m"), "{}", resolved[0].message);
    assert!(f.engine.evaluate(at(t0(), 665)).await.is_empty());
    assert!(f.engine.firing().is_empty());

    // The history keeps the incident once (not its reminder) after it resolved.
    let fired = read_fired(&f.store, 0).await.unwrap();
    assert_eq!(fired.iter().map(|a| (a.key.as_str(), a.at_ms)).collect::<Vec<_>>(), [(rules::ERROR_RATE, ms(t0()))]);
    assert!(read_fired(&f.store, ms(t0())).await.unwrap().is_empty(), "only alerts fired after the given time");
}

#[tokio::test]
async fn the_history_of_fired_alerts_forgets_what_is_older_than_its_keep() {
    let mut f = fixture(ERROR_RATE).await;
    calls(&f.store, t0(), 30, 12).await;
    f.engine.evaluate(t0()).await;
    calls(&f.store, at(t0(), 660), 60, 0).await;
    f.engine.evaluate(at(t0(), 660)).await;
    let later = t0() + engine::FIRED_HISTORY_KEEP + Duration::from_secs(3600);
    calls(&f.store, later, 30, 12).await;
    f.engine.evaluate(later).await;
    let fired = read_fired(&f.store, 0).await.unwrap();
    assert_eq!(fired.iter().map(|a| a.at_ms).collect::<Vec<_>>(), [ms(later)]);
}

#[tokio::test]
async fn error_rate_needs_the_minimum_volume() {
    let mut f = fixture(ERROR_RATE).await;
    // 19 calls, every one failing: below error_rate_min_calls, no alert.
    calls(&f.store, t0(), 19, 19).await;
    assert!(f.engine.evaluate(t0()).await.is_empty());
    // Unreachable upstreams count as failures once the volume is there.
    call(&f.store, t0() - Duration::from_secs(1), None).await;
    let notices = f.engine.evaluate(t0()).await;
    assert_eq!(keys(&notices), [(rules::ERROR_RATE, AlertStatus::Firing, 0)]);
    assert!(notices[0].message.contains("20 of 20"), "{}", notices[0].message);
}

#[tokio::test]
async fn refusals_of_their_own_rules_do_not_count_as_errors() {
    let mut f = fixture(ERROR_RATE).await;
    calls(&f.store, t0(), 10, 0).await;
    // 30 calls refused by the kill switch, 5 rate-limited: the kill switch
    // has its own alert, and a working rate limit is not an error.
    for i in 0..30 {
        let a = admission(&crate::store::new_call_id(), ms(t0()) - 1000 - i, None);
        f.store.record_refused(a, Decision::Killed, "stopped", 403).await.unwrap();
    }
    for i in 0..5 {
        let a = admission(&crate::store::new_call_id(), ms(t0()) - 2000 - i, None);
        f.store.record_refused(a, Decision::RateLimited, "limit", 429).await.unwrap();
    }
    assert_eq!(f.store.error_counts_in(Window::ending_at(ms(t0()), engine::ERROR_RATE_WINDOW)).await.unwrap(), (15, 0));
    assert!(f.engine.evaluate(t0()).await.is_empty());
}

#[tokio::test]
async fn open_incidents_survive_a_restart_without_being_sent_again() {
    let mut f = fixture(ERROR_RATE).await;
    calls(&f.store, t0(), 30, 12).await;
    assert_eq!(f.engine.evaluate(t0()).await.len(), 1);
    f.restart().await;
    assert_eq!(f.engine.firing().len(), 1);
    assert!(f.engine.evaluate(at(t0(), 30)).await.is_empty(), "a restart re-sent an open incident");
    // The incident cleared while steward was down: the new engine resolves it.
    calls(&f.store, at(t0(), 120), 60, 0).await;
    f.restart().await;
    let notices = f.engine.evaluate(at(t0(), 120)).await;
    assert_eq!(keys(&notices), [(rules::ERROR_RATE, AlertStatus::Resolved, 0)]);
    let persisted = engine::read_firing(&f.store).await.unwrap();
    assert!(persisted.is_empty());
}

#[tokio::test]
async fn a_kill_switch_engaged_by_another_process_fires_with_its_reason_redacted() {
    let mut f = fixture("").await;
    // `steward stop` runs in its own process with its own store handle.
    let cli = Store::open(f.store.path().unwrap(), crate::store::tests::redactor()).unwrap();
    let reason = format!("token {CANARY} was leaked");
    cli.engage_kill(&reason, "cli", ms(t0())).await.unwrap();
    let notices = f.engine.evaluate(at(t0(), 3)).await;
    assert_eq!(keys(&notices), [(rules::KILL_SWITCH, AlertStatus::Firing, 0)]);
    assert_eq!(notices[0].since_ms, ms(t0()));
    let redacted = notices[0].clone().redacted(&redactor().load());
    assert!(redacted.message.contains("by cli") && redacted.message.contains("was leaked"), "{}", redacted.message);
    assert!(!serde_json::to_string(&redacted.json()).unwrap().contains(CANARY));
    assert!(!redacted.text().contains(CANARY));
    assert!(f.metrics.render().contains("steward_kill_switch_engaged 1"));

    cli.release_kill(ms(at(t0(), 60))).await.unwrap();
    let notices = f.engine.evaluate(at(t0(), 61)).await;
    assert_eq!(keys(&notices), [(rules::KILL_SWITCH, AlertStatus::Resolved, 0)]);
}

#[tokio::test]
async fn the_loop_breaker_is_its_own_alert_and_an_event_is_enough() {
    let mut f = fixture("").await;
    f.store.engage_kill("loop detected: post", "loop_breaker", ms(t0())).await.unwrap();
    let notices = f.engine.evaluate(t0()).await;
    assert_eq!(keys(&notices), [(rules::LOOP_BREAKER, AlertStatus::Firing, 0)]);
    assert!(notices[0].message.contains("loop detected: post"));
    f.store.release_kill(ms(at(t0(), 10))).await.unwrap();
    assert_eq!(keys(&f.engine.evaluate(at(t0(), 10)).await), [(rules::LOOP_BREAKER, AlertStatus::Resolved, 0)]);

    // Released before the engine looked: the event still makes it fire once.
    f.engine.observe(&Event::LoopDetected { tool: "post".into() }, at(t0(), 20));
    let notices = f.engine.evaluate(at(t0(), 21)).await;
    assert_eq!(keys(&notices), [(rules::LOOP_BREAKER, AlertStatus::Firing, 0)]);
    assert_eq!(keys(&f.engine.evaluate(at(t0(), 26)).await), [(rules::LOOP_BREAKER, AlertStatus::Resolved, 0)]);
}

#[tokio::test]
async fn agent_down_waits_for_agent_down_after_and_a_crash_loop_explains_it() {
    let mut f = fixture("[alerts]\nagent_down_after = \"30s\"\n").await;
    f.engine.observe(&Event::AgentStarted { pid: 42 }, t0());
    f.engine.observe(&Event::AgentExited { code: Some(1), signal: None, uptime: Duration::from_secs(1) }, t0());
    f.engine.observe(&Event::AgentDown { since_ms: ms(t0()) }, t0());
    assert!(f.engine.evaluate(at(t0(), 29)).await.is_empty());
    let notices = f.engine.evaluate(at(t0(), 30)).await;
    assert_eq!(keys(&notices), [(rules::AGENT_DOWN, AlertStatus::Firing, 0)]);
    assert!(notices[0].message.contains("down for 30s"), "{}", notices[0].message);
    f.engine.observe(&Event::AgentUp, at(t0(), 40));
    assert_eq!(keys(&f.engine.evaluate(at(t0(), 40)).await), [(rules::AGENT_DOWN, AlertStatus::Resolved, 0)]);

    // Down again, and this time the supervisor gives up: one crash-loop
    // alert, no separate agent-down alert.
    f.engine.observe(&Event::AgentDown { since_ms: ms(at(t0(), 100)) }, at(t0(), 100));
    f.engine.observe(&Event::CrashLoop { exits: 5 }, at(t0(), 110));
    let notices = f.engine.evaluate(at(t0(), 200)).await;
    assert_eq!(keys(&notices), [(rules::CRASH_LOOP, AlertStatus::Firing, 0)]);
    assert!(notices[0].message.contains("exited 5 times"), "{}", notices[0].message);
    assert!(f.engine.evaluate(at(t0(), 300)).await.is_empty());
}

#[tokio::test]
async fn the_supervisors_persisted_crash_loop_verdict_fires_after_a_restart() {
    let mut f = fixture("").await;
    let verdict = crate::agent_state::FatalRecord { since_ms: ms(t0()), exits: 6, reason: "crash loop".into() };
    crate::agent_state::write_fatal(&f.store, &verdict, ms(t0())).await.unwrap();
    let notices = f.engine.evaluate(at(t0(), 5)).await;
    assert_eq!(keys(&notices), [(rules::CRASH_LOOP, AlertStatus::Firing, 0)]);
    assert!(notices[0].message.contains("exited 6 times"));
    // `steward resume` clears the verdict.
    crate::agent_state::request_resume(&f.store, ms(t0())).await.unwrap();
    assert_eq!(keys(&f.engine.evaluate(at(t0(), 10)).await), [(rules::CRASH_LOOP, AlertStatus::Resolved, 0)]);
}

#[tokio::test]
async fn spend_threshold_and_cap_fire_and_resolve_with_the_day() {
    let mut f = fixture("[spend]\ndaily_cap_usd = 5\nalert_at_usd = 4\n").await;
    let day = f.config.spend.day_of(t0(), 0);
    let hold = |reserve_micros| SpendHold {
        day: day.clone(),
        provider: "openai".into(),
        model: "m".into(),
        reserve_micros,
        cap_micros: Some(5_000_000),
    };
    f.store.admit(admission("spend-1", ms(t0()), Some(hold(4_500_000)))).await.unwrap();
    let notices = f.engine.evaluate(at(t0(), 1)).await;
    assert_eq!(keys(&notices), [(rules::SPEND_THRESHOLD, AlertStatus::Firing, 0)]);
    assert!(notices[0].message.contains("$4.50"), "{}", notices[0].message);
    assert!(f.metrics.render().contains("steward_spend_today_usd 4.5"));

    // The rest of the cap is reached: critical, every call is refused.
    f.store.admit(admission("spend-2", ms(t0()) + 1, Some(hold(500_000)))).await.unwrap();
    let notices = f.engine.evaluate(at(t0(), 3)).await;
    assert_eq!(keys(&notices), [(rules::SPEND_CAP, AlertStatus::Firing, 0)]);
    assert_eq!(notices[0].severity, Severity::Critical);
    assert!(notices[0].message.contains("$5.00 of the $5.00"), "{}", notices[0].message);
    f.restart().await;
    assert!(f.engine.evaluate(at(t0(), 60)).await.is_empty(), "the cap stays reached for the day, across a restart");

    // The next day both clear.
    let notices = f.engine.evaluate(at(t0(), 86_400)).await;
    let mut got = keys(&notices);
    got.sort();
    assert_eq!(got, [(rules::SPEND_CAP, AlertStatus::Resolved, 0), (rules::SPEND_THRESHOLD, AlertStatus::Resolved, 0)]);
}

#[tokio::test]
async fn a_spend_overrun_fires_while_the_day_is_stopped_and_resolves_on_resume() {
    let mut f = fixture("[spend]\ndaily_cap_usd = 5\n").await;
    let day = f.config.spend.day_of(t0(), 0);
    let hold = SpendHold {
        day,
        provider: "openai".into(),
        model: "m".into(),
        reserve_micros: 10,
        cap_micros: Some(5_000_000),
    };
    f.store.admit(admission("over", ms(t0()), Some(hold))).await.unwrap();
    let reason = format!("provider `openai` (model `m`) used more than its reservation: billed $0.05 ({CANARY})");
    let settlement = crate::store::SpendSettlement {
        micros: 50_000,
        input_tokens: 1,
        output_tokens: 9_000,
        cached_tokens: 0,
        estimated: false,
        stop: Some(reason.clone()),
    };
    let completion = Completion {
        call_id: "over".into(),
        now_ms: ms(t0()) + 5,
        status: Some(200),
        duration_ms: 5,
        attempts: 1,
        response_ref: None,
        undo: None,
        error: None,
        extra_json: None,
        spend: Some(settlement),
    };
    f.store.complete(completion).await.unwrap();
    f.engine.observe(&Event::SpendOverrun { provider: "openai".into(), model: "m".into(), reason }, at(t0(), 1));
    let notices = f.engine.evaluate(at(t0(), 1)).await;
    assert_eq!(keys(&notices), [(rules::SPEND_OVERRUN, AlertStatus::Firing, 0)]);
    let message = &notices[0].message;
    assert!(message.contains("`openai`") && message.contains("model `m`") && message.contains("steward resume"));
    assert!(!message.contains(CANARY), "{message}");
    f.restart().await;
    assert!(f.engine.evaluate(at(t0(), 60)).await.is_empty(), "the stop is read from the store after a restart");
    f.store.lift_spend_stop().await.unwrap();
    assert_eq!(keys(&f.engine.evaluate(at(t0(), 65)).await), [(rules::SPEND_OVERRUN, AlertStatus::Resolved, 0)]);
}

#[tokio::test]
async fn a_model_mismatch_fires_for_the_rest_of_the_day() {
    let mut f = fixture("").await;
    let event = Event::UsageModelMismatch {
        provider: "openai".into(),
        requested: "gpt-4o-mini".into(),
        reported: "the response names model `o1-pro` (priced differently than `gpt-4o-mini`)".into(),
    };
    f.engine.observe(&event, t0());
    let notices = f.engine.evaluate(t0()).await;
    assert_eq!(keys(&notices), [(rules::USAGE_MODEL_MISMATCH, AlertStatus::Firing, 0)]);
    assert!(notices[0].message.contains("o1-pro"));
    f.restart().await;
    assert!(f.engine.evaluate(at(t0(), 600)).await.is_empty(), "still firing, across a restart");
    let notices = f.engine.evaluate(at(t0(), 86_400)).await;
    assert_eq!(keys(&notices), [(rules::USAGE_MODEL_MISMATCH, AlertStatus::Resolved, 0)]);
}

#[tokio::test]
async fn one_call_too_large_for_the_cap_is_a_warning_not_the_cap_reached() {
    // $0.000229 spent of a $5 cap; one call's worst case is $60 (o1-pro, 100k output tokens).
    let mut f = fixture("[spend]\ndaily_cap_usd = 5\n").await;
    let day = f.config.spend.day_of(t0(), 0);
    let hold = SpendHold { day, provider: "openai".into(), model: "m".into(), reserve_micros: 229, cap_micros: None };
    f.store.admit(admission("small", ms(t0()), Some(hold))).await.unwrap();
    let refused = Event::SpendCapHit { spent_micros: 229, cap_micros: 5_000_000, reserve_micros: 60_000_000 };
    f.engine.observe(&refused, at(t0(), 1));
    let notices = f.engine.evaluate(at(t0(), 2)).await;
    assert_eq!(keys(&notices), [(rules::SPEND_CALL_REFUSED, AlertStatus::Firing, 0)], "no critical spend_cap");
    let notice = &notices[0];
    assert_eq!(notice.severity, Severity::Warning);
    assert!(notice.title.contains("worst case does not fit"), "{}", notice.title);
    assert!(notice.message.contains("$60.00") && notice.message.contains("not reached"), "{}", notice.message);
    assert!(!notice.title.contains("reached"), "{}", notice.title);

    // It holds across a restart while the agent keeps trying, then clears an hour after the last refusal.
    f.restart().await;
    assert!(f.engine.evaluate(at(t0(), 600)).await.is_empty());
    f.engine.observe(&refused, at(t0(), 1_800));
    assert!(f.engine.evaluate(at(t0(), 1_801)).await.is_empty());
    assert!(f.engine.evaluate(at(t0(), 1_800 + 3_599)).await.is_empty());
    let notices = f.engine.evaluate(at(t0(), 1_800 + 3_600)).await;
    assert_eq!(keys(&notices), [(rules::SPEND_CALL_REFUSED, AlertStatus::Resolved, 0)]);
}

#[tokio::test]
async fn write_failures_announced_by_events_fire_then_resolve() {
    let mut f = fixture("").await;
    f.engine.observe(&Event::AuditWriteFailed { detail: format!("cannot write /logs/audit.jsonl ({CANARY})") }, t0());
    f.engine.observe(&Event::StoreWriteFailed { detail: "disk I/O error".into() }, t0());
    let notices = f.engine.evaluate(t0()).await;
    let mut got = keys(&notices);
    got.sort();
    assert_eq!(got, [(rules::AUDIT_WRITE, AlertStatus::Firing, 0), (rules::STORE_WRITE, AlertStatus::Firing, 0)]);
    assert!(notices.iter().all(|n| !n.message.contains(CANARY)), "{notices:?}");
    let text = f.metrics.render();
    assert!(
        text.contains("steward_audit_write_failures_total 1") && text.contains("steward_store_write_failures_total 1")
    );
    assert_eq!(f.engine.evaluate(at(t0(), 5)).await.len(), 2, "both resolve once writes work again");
}

#[tokio::test(start_paused = true)]
async fn the_engine_loop_alerts_an_agent_down_after_agent_down_after_on_paused_time() {
    let f = fixture("[alerts]\nagent_down_after = \"30s\"\n").await;
    let base = t0();
    let start = tokio::time::Instant::now();
    let clock: engine::Clock = Arc::new(move || base + start.elapsed());
    let (dispatcher, mut notices) = Dispatcher::for_test(redactor(), Arc::clone(&f.metrics));
    let bus = crate::events::EventBus::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(f.engine.run(bus.subscribe(), dispatcher, clock, shutdown.clone()));
    bus.publish(Event::AgentDown { since_ms: ms(base) });
    let first = notices.recv().await.unwrap();
    assert_eq!(first.key, rules::AGENT_DOWN);
    assert!(first.at_ms - first.since_ms >= 30_000, "fired {} ms after the outage began", first.at_ms - first.since_ms);
    assert!(first.at_ms - first.since_ms < 30_000 + 2 * 5_000, "fired late: {}", first.at_ms - first.since_ms);
    bus.publish(Event::AgentUp);
    let resolved = notices.recv().await.unwrap();
    assert_eq!((resolved.key.as_str(), resolved.status), (rules::AGENT_DOWN, AlertStatus::Resolved));
    shutdown.cancel();
    task.await.unwrap();
}

/// Each line of an OpenMetrics text exposition is a `# HELP`/`# TYPE`/`# UNIT`
/// line, a sample `name{label="value",...} number`, or the final `# EOF`;
/// every sample belongs to a declared family.
pub(super) fn assert_exposition(text: &str) {
    let mut families: Vec<(String, String)> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "no # EOF at the end");
    assert!(text.ends_with('\n'));
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap(), parts.next().unwrap_or_default());
            assert!(matches!(kind, "HELP" | "TYPE" | "UNIT"), "unknown comment: {line}");
            assert!(name_ok(name), "bad family name: {line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or_default();
                assert!(matches!(t, "counter" | "gauge" | "histogram"), "type {t}: {line}");
                families.push((name.to_owned(), t.to_owned()));
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        assert!(value.parse::<f64>().is_ok() || value == "+Inf", "value {value:?}: {line}");
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "bad sample name: {line}");
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "labels: {line}");
            for pair in labels[1..labels.len() - 1].split("\",") {
                let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("label pair {pair:?}: {line}"));
                assert!(name_ok(k), "label name {k:?}: {line}");
                assert!(!v.contains('\n'), "{line}");
            }
        }
        let family = families.iter().rev().find(|(f, _)| name.starts_with(f.as_str()));
        assert!(family.is_some(), "sample before its # TYPE: {line}");
    }
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let m = Metrics::new();
    m.record_call("api", Some("post"), "allowed", Some(200), Duration::from_millis(12));
    m.record_call("llm", Some("openai:chat"), "allowed", Some(502), Duration::from_millis(900));
    m.record_call("api", None, "unauthenticated", None, Duration::from_millis(1));
    m.set_spend(1_250_000, Some(5_000_000), None);
    m.set_alert_firing("error_rate", true);
    m.count_delivery("webhook", false);
    m.observe_event(&Event::AgentStarted { pid: 1 }, 0);
    let text = m.render();
    assert_exposition(&text);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |metric: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| s.value.clone())
    };
    // OpenMetrics names a counter family `x` and its sample `x_total`;
    // prometheus-parse only types samples named like their family, so it
    // reads counters as untyped. The value is what matters.
    let counter = |v: Option<prometheus_parse::Value>| match v {
        Some(prometheus_parse::Value::Counter(n) | prometheus_parse::Value::Untyped(n)) => Some(n),
        _ => None,
    };
    assert_eq!(counter(value("steward_calls_total", Some(("tool", "post")))), Some(1.0));
    assert_eq!(counter(value("steward_calls_total", Some(("decision", "unauthenticated")))), Some(1.0));
    assert_eq!(counter(value("steward_alert_deliveries_total", Some(("result", "failed")))), Some(1.0));
    assert!(
        matches!(value("steward_spend_today_usd", None), Some(prometheus_parse::Value::Gauge(v)) if (v - 1.25).abs() < 1e-9)
    );
    assert!(
        matches!(value("steward_spend_cap_usd", None), Some(prometheus_parse::Value::Gauge(v)) if (v - 5.0).abs() < 1e-9)
    );
    assert!(matches!(
        value("steward_alert_firing", Some(("rule", "error_rate"))),
        Some(prometheus_parse::Value::Gauge(1.0))
    ));
    assert!(matches!(value("steward_agent_up", None), Some(prometheus_parse::Value::Gauge(1.0))));
    assert_eq!(counter(value("steward_upstream_errors_total", Some(("kind", "status_5xx")))), Some(1.0));
    match value("steward_call_duration_seconds", Some(("tool", "post"))) {
        Some(prometheus_parse::Value::Histogram(buckets)) => assert!(buckets.len() >= 14, "{buckets:?}"),
        other => panic!("no latency histogram: {other:?}"),
    }
}

#[test]
fn alert_text_is_redacted_and_labelled() {
    let alert = Alert {
        key: "kill_switch".into(),
        status: AlertStatus::Firing,
        severity: Severity::Critical,
        agent: "poster".into(),
        title: format!("stopped: {CANARY}"),
        message: format!("reason: {CANARY}, mail ops@example.com"),
        since_ms: ms(t0()),
        at_ms: ms(t0()),
        repeat: 0,
        test: false,
    }
    .redacted(&redactor().load());
    for text in [alert.text(), alert.json().to_string(), alert.headline()] {
        assert!(!text.contains(CANARY), "{text}");
    }
    assert!(!alert.message.contains("ops@example.com"), "PII is redacted too: {}", alert.message);
    assert_eq!(alert.headline(), format!("[steward] FIRING: {} (poster)", alert.title));
    assert_eq!(alert.json()["since"], "2026-11-26T10:00:00.000Z");
    assert_eq!(alert.json()["status"], "firing");
}

/// The shipped Prometheus rules and Grafana dashboard (packaging/) query only
/// metrics steward exports: a renamed metric fails here, not at 2am.
#[test]
fn the_shipped_rules_and_dashboard_query_metrics_steward_exports() {
    // Families render only once they hold a label set: touch every one.
    let m = Metrics::new();
    m.record_call("api", Some("post"), "allowed", Some(502), Duration::from_millis(12));
    m.record_call("api", Some("post"), "rate_limited", None, Duration::from_millis(1));
    m.set_alert_firing("error_rate", true);
    m.count_notice("error_rate");
    m.count_delivery("webhook", false);
    let text = m.render();
    let exported: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split_whitespace().next()).collect();
    assert!(exported.contains(&"steward_calls"), "{text}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging");
    for file in ["prometheus/steward.rules.yml", "grafana/steward.json"] {
        let body = std::fs::read_to_string(root.join(file)).unwrap();
        let mut queried = std::collections::BTreeSet::new();
        for (at, _) in body.match_indices("steward_") {
            let name: String =
                body[at..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit()).collect();
            queried.insert(name);
        }
        assert!(queried.len() >= 3, "{file}: {queried:?}");
        for name in &queried {
            let base = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            assert!(exported.contains(&base), "{file} queries {name}, which steward does not export: {exported:?}");
        }
    }
}
