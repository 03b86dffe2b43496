//! The Prometheus metrics steward exposes on `/metrics`, the agent's live
//! stats they are partly fed from, and the `/readyz` verdict.
//!
//! One [`Metrics`] per daemon owns its own `prometheus-client` [`Registry`]
//! (no global state) with typed label sets. Labels only ever hold values
//! from the config or from fixed sets (door, tool name, decision, rule, sink
//! name): never a path, a model name chosen by the agent, or anything secret,
//! which also keeps cardinality bounded.
//!
//! Writers: the pipeline calls [`Metrics::record_call`] once per call (a map
//! lookup and an atomic add, never blocking on I/O); the alert engine feeds
//! [`Metrics::observe_event`] with every bus event and refreshes spend, kill
//! switch and alert gauges on each evaluation; the sinks count deliveries;
//! `/metrics` copies the store's WAL size and checkpoint histograms in
//! ([`Metrics::observe_store`]) just before it renders.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::events::Event;
use crate::store::WalStats;
use crate::store::pg::fleet::FleetStats;
use crate::telemetry::CallMetrics;

/// Content type of [`Metrics::render`]: the OpenMetrics text format, which
/// Prometheus scrapes natively (and which ends with `# EOF`).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets: 5 ms doubling to ~41 s, covering a cached GET through a
/// long LLM generation.
const LATENCY_BUCKETS: (f64, f64, u16) = (0.005, 2.0, 14);

/// Labels of `steward_calls_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// `api`, `llm`, `mcp`.
    door: &'static str,
    /// Configured tool name; `-` for calls no tool matched (or LLM calls).
    tool: String,
    /// `allowed` or the refusal reason (`rate_limited`, `upstream_timeout`, ...).
    decision: &'static str,
}

/// Labels of the latency histogram and upstream errors.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    /// `api`, `llm`, `mcp`.
    door: &'static str,
    /// Configured tool name or `-`.
    tool: String,
}

/// Labels of `steward_upstream_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    /// `api`, `llm`, `mcp`.
    door: &'static str,
    /// Configured tool name or `-`.
    tool: String,
    /// `status_5xx`, `unreachable` or `timeout`.
    kind: &'static str,
}

/// Labels of per-rule alert gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    /// Rule key, such as `error_rate`.
    rule: String,
}

/// Labels of `steward_alert_deliveries_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    /// Configured sink name.
    sink: String,
    /// `ok` or `failed` (after every retry).
    result: &'static str,
}

/// Labels of `steward_gateway_connections_closed_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    /// `header_timeout`, `keepalive_timeout` or `evicted` (closed at the connection cap).
    reason: &'static str,
}

/// Labels of `steward_store_checkpoint_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckpointLabels {
    /// `passive` (the checkpointer thread, never blocks a call), `restart`
    /// or `truncate` (run by the writer between batches: the writer's pause).
    mode: &'static str,
}

/// Labels of `steward_store_op_duration_seconds` (a fleet's store).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    /// The store operation (`store::pg::timing::OPS`).
    op: &'static str,
}

/// A histogram the store keeps itself (cumulative since it opened), copied
/// in at each scrape: the store has no dependency on the metrics registry.
#[derive(Debug, Default)]
struct CopiedHistogram {
    /// As last copied; `None` before the first copy.
    state: std::sync::Mutex<Option<Copied>>,
}

/// `(sum in seconds, count, buckets)`: a histogram as the encoder takes it.
type Copied = (f64, u64, Vec<(f64, u64)>);

impl TypedMetric for CopiedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for CopiedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let state = self.state.lock().map_err(|_| std::fmt::Error)?;
        match &*state {
            Some((sum, count, buckets)) => encoder.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None),
            None => encoder.encode_histogram::<NoLabelSet>(0.0, 0, &[], None),
        }
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// What steward knows about the agent process, kept from the supervisor's
/// events ([`Metrics::observe_event`]) so monitoring needs no handle on the
/// supervisor. Atomics: read by the engine and `/metrics`, written by the
/// event consumer.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Any agent event was seen: steward runs the agent. Without it the
    /// agent-down rule stays quiet and `steward_agent_up` means nothing.
    supervised: AtomicBool,
    /// Up per the last lifecycle event (`AgentStarted`/`AgentUp` vs
    /// `AgentExited`/`AgentDown`).
    up: AtomicBool,
    /// Start of the current outage, epoch ms; 0 while not down.
    down_since_ms: AtomicI64,
    /// A crash loop was announced and no start followed yet.
    crash_loop: AtomicBool,
    /// The last lifecycle event was an exit, so the next start is a restart
    /// (unless a kill-switch change or crash loop came in between: those
    /// starts are resumes, not restarts).
    exited: AtomicBool,
    /// Restarts after an exit since the daemon started.
    restarts: AtomicU64,
}

/// A copy of [`AgentStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgentSnapshot {
    /// Steward runs the agent (an agent event was seen).
    pub supervised: bool,
    /// The agent is up.
    pub up: bool,
    /// Start of the current outage, epoch ms.
    pub down_since_ms: Option<i64>,
    /// Held in a crash loop.
    pub crash_loop: bool,
    /// Restarts after an exit.
    pub restarts: u64,
}

impl AgentStats {
    /// The current values.
    pub fn snapshot(&self) -> AgentSnapshot {
        let since = self.down_since_ms.load(Ordering::Relaxed);
        AgentSnapshot {
            supervised: self.supervised.load(Ordering::Relaxed),
            up: self.up.load(Ordering::Relaxed),
            down_since_ms: (since > 0).then_some(since),
            crash_loop: self.crash_loop.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
        }
    }

    /// Applies one lifecycle event; returns whether it was a restart.
    fn apply(&self, event: &Event, now_ms: i64) -> bool {
        match event {
            Event::AgentStarted { .. } => {
                self.supervised.store(true, Ordering::Relaxed);
                self.up.store(true, Ordering::Relaxed);
                self.crash_loop.store(false, Ordering::Relaxed);
                let restart = self.exited.swap(false, Ordering::Relaxed);
                if restart {
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                }
                return restart;
            }
            Event::AgentUp => {
                self.supervised.store(true, Ordering::Relaxed);
                self.up.store(true, Ordering::Relaxed);
                self.down_since_ms.store(0, Ordering::Relaxed);
            }
            Event::AgentExited { .. } => {
                self.supervised.store(true, Ordering::Relaxed);
                self.up.store(false, Ordering::Relaxed);
                self.exited.store(true, Ordering::Relaxed);
            }
            Event::AgentDown { since_ms } => {
                self.supervised.store(true, Ordering::Relaxed);
                self.up.store(false, Ordering::Relaxed);
                let since = if *since_ms > 0 { *since_ms } else { now_ms };
                let _ = self.down_since_ms.compare_exchange(0, since, Ordering::Relaxed, Ordering::Relaxed);
            }
            Event::CrashLoop { .. } => {
                self.supervised.store(true, Ordering::Relaxed);
                self.crash_loop.store(true, Ordering::Relaxed);
                self.exited.store(false, Ordering::Relaxed);
            }
            Event::KillSwitchEngaged { .. } | Event::KillSwitchReleased => {
                self.exited.store(false, Ordering::Relaxed);
            }
            _ => {}
        }
        false
    }
}

/// Every metric steward exports, in one registry.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<ToolLabels, Histogram, fn() -> Histogram>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    rate_limited: Family<ToolLabels, Counter>,
    spend_today: Gauge<f64, AtomicU64>,
    spend_cap: Gauge<f64, AtomicU64>,
    spend_alert_at: Gauge<f64, AtomicU64>,
    kill_switch: Gauge,
    agent_up: Gauge,
    agent_restarts: Counter,
    alert_firing: Family<RuleLabels, Gauge>,
    alert_notices: Family<RuleLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    audit_write_failures: Counter,
    store_write_failures: Counter,
    heartbeat_failures: Counter,
    connections_closed: Family<ConnectionLabels, Counter>,
    store_wal_bytes: Gauge,
    store_db_bytes: Gauge,
    store_checkpoints: Family<CheckpointLabels, CopiedHistogram>,
    store_pool: Family<PoolLabels, Gauge>,
    store_ops: Family<OpLabels, CopiedHistogram>,
    agent: AgentStats,
}

/// Labels of `steward_store_pool_connections`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    /// `open`, `idle`, or `waiting` (operations waiting for a connection).
    state: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("agent", &self.agent.snapshot()).finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    let (start, factor, count) = LATENCY_BUCKETS;
    Histogram::new(exponential_buckets(start, factor, count))
}

impl Metrics {
    /// A registry with every metric registered, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("steward");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register("calls", "Calls seen by the gateway, by front door, tool and decision", calls.clone());
        let latency = Family::<ToolLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register("call_duration_seconds", "Wall time of forwarded calls, until recorded", latency.clone());
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Forwarded calls that failed upstream: 5xx status, unreachable, or timed out",
            upstream_errors.clone(),
        );
        let rate_limited = Family::<ToolLabels, Counter>::default();
        registry.register("rate_limited", "Calls refused by a tool's rate limit", rate_limited.clone());
        let spend_today = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "spend_today_usd",
            "LLM spend committed today (settled plus in flight), USD",
            spend_today.clone(),
        );
        let spend_cap = Gauge::<f64, AtomicU64>::default();
        registry.register("spend_cap_usd", "The daily spend cap, USD; 0 when none is set", spend_cap.clone());
        let spend_alert_at = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "spend_alert_at_usd",
            "The spend alert threshold, USD; 0 when none is set",
            spend_alert_at.clone(),
        );
        let kill_switch = Gauge::default();
        registry.register("kill_switch_engaged", "1 while the kill switch refuses every call", kill_switch.clone());
        let agent_up = Gauge::default();
        registry.register("agent_up", "1 while the supervised agent runs and is healthy", agent_up.clone());
        let agent_restarts = Counter::default();
        registry.register(
            "agent_restarts",
            "Agent restarts after an exit since steward started",
            agent_restarts.clone(),
        );
        let alert_firing = Family::<RuleLabels, Gauge>::default();
        registry.register("alert_firing", "1 while the alert rule's condition holds", alert_firing.clone());
        let alert_notices = Family::<RuleLabels, Counter>::default();
        registry.register("alert_notices", "Alert notices produced (firing, repeat, resolved)", alert_notices.clone());
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register("alert_deliveries", "Alert deliveries per sink, after retries", deliveries.clone());
        let audit_write_failures = Counter::default();
        registry.register(
            "audit_write_failures",
            "Audit records that could not be written",
            audit_write_failures.clone(),
        );
        let store_write_failures = Counter::default();
        registry.register("store_write_failures", "Journal writes the store refused", store_write_failures.clone());
        let heartbeat_failures = Counter::default();
        registry.register(
            "heartbeat_failures",
            "Dead-man pings that failed or were withheld",
            heartbeat_failures.clone(),
        );
        let connections_closed = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "gateway_connections_closed",
            "Agent connections the gateway closed itself: a head or an idle wait too long, or the connection cap",
            connections_closed.clone(),
        );
        let store_wal_bytes = Gauge::default();
        registry.register(
            "store_wal_bytes",
            "Size of the store's write-ahead log file (steward.db-wal) on disk",
            store_wal_bytes.clone(),
        );
        let store_db_bytes = Gauge::default();
        registry.register("store_db_bytes", "Size of the store's database file on disk", store_db_bytes.clone());
        let store_checkpoints = Family::<CheckpointLabels, CopiedHistogram>::default();
        registry.register(
            "store_checkpoint_duration_seconds",
            "WAL checkpoints by mode; restart and truncate hold the store's writer for their duration",
            store_checkpoints.clone(),
        );
        let store_pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "store_pool_connections",
            "A fleet's store ([store] url): connections to the database open and idle, and operations waiting for one",
            store_pool.clone(),
        );
        let store_ops = Family::<OpLabels, CopiedHistogram>::default();
        registry.register(
            "store_op_duration_seconds",
            "A fleet's store ([store] url): each store operation's duration, round trips to the database included",
            store_ops.clone(),
        );
        Self {
            registry,
            calls,
            latency,
            upstream_errors,
            rate_limited,
            spend_today,
            spend_cap,
            spend_alert_at,
            kill_switch,
            agent_up,
            agent_restarts,
            alert_firing,
            alert_notices,
            deliveries,
            audit_write_failures,
            store_write_failures,
            heartbeat_failures,
            connections_closed,
            store_wal_bytes,
            store_db_bytes,
            store_checkpoints,
            store_pool,
            store_ops,
            agent: AgentStats::default(),
        }
    }

    /// Counts a connection the gateway closed: `header_timeout`,
    /// `keepalive_timeout` or `evicted`.
    pub fn connection_closed(&self, reason: &'static str) {
        self.connections_closed.get_or_create(&ConnectionLabels { reason }).inc();
    }
}

/// The pipeline counts through [`CallMetrics`]; this registry is what it counts into.
impl CallMetrics for Metrics {
    /// Counts one finished call. `decision` is `allowed` or the refusal
    /// reason; `status` the HTTP status of a forwarded call; `elapsed` its wall time.
    fn record_call(
        &self,
        door: &'static str,
        tool: Option<&str>,
        decision: &'static str,
        status: Option<u16>,
        elapsed: Duration,
    ) {
        let tool = tool.unwrap_or("-").to_owned();
        self.calls.get_or_create(&CallLabels { door, tool: tool.clone(), decision }).inc();
        let kind = match decision {
            "upstream_unreachable" => Some("unreachable"),
            "upstream_timeout" => Some("timeout"),
            "allowed" if status.is_some_and(|s| s >= 500) => Some("status_5xx"),
            _ => None,
        };
        if decision == "allowed" || kind.is_some() {
            self.latency.get_or_create(&ToolLabels { door, tool: tool.clone() }).observe(elapsed.as_secs_f64());
        }
        if let Some(kind) = kind {
            self.upstream_errors.get_or_create(&UpstreamErrorLabels { door, tool: tool.clone(), kind }).inc();
        }
        if decision == "rate_limited" {
            self.rate_limited.get_or_create(&ToolLabels { door, tool }).inc();
        }
    }
}

impl Metrics {
    /// Feeds one bus event: agent stats and gauges, failure counters.
    pub fn observe_event(&self, event: &Event, now_ms: i64) {
        if self.agent.apply(event, now_ms) {
            self.agent_restarts.inc();
        }
        self.agent_up.set(i64::from(self.agent.snapshot().up));
        match event {
            Event::AuditWriteFailed { .. } => {
                self.audit_write_failures.inc();
            }
            Event::StoreWriteFailed { .. } => {
                self.store_write_failures.inc();
            }
            _ => {}
        }
    }

    /// The agent as the events described it.
    pub fn agent(&self) -> AgentSnapshot {
        self.agent.snapshot()
    }

    /// Today's committed spend and the configured cap and threshold, in micro-dollars.
    pub fn set_spend(&self, spent_micros: u64, cap_micros: Option<u64>, alert_at_micros: Option<u64>) {
        let usd = |micros: u64| micros as f64 / 1_000_000.0;
        self.spend_today.set(usd(spent_micros));
        self.spend_cap.set(cap_micros.map_or(0.0, usd));
        self.spend_alert_at.set(alert_at_micros.map_or(0.0, usd));
    }

    /// Whether the kill switch is engaged.
    pub fn set_kill_switch(&self, engaged: bool) {
        self.kill_switch.set(i64::from(engaged));
    }

    /// Whether `rule` is firing.
    pub fn set_alert_firing(&self, rule: &str, firing: bool) {
        self.alert_firing.get_or_create(&RuleLabels { rule: rule.to_owned() }).set(i64::from(firing));
    }

    /// One notice produced for `rule`.
    pub fn count_notice(&self, rule: &str) {
        self.alert_notices.get_or_create(&RuleLabels { rule: rule.to_owned() }).inc();
    }

    /// One delivery to `sink` finished, successfully or not.
    pub fn count_delivery(&self, sink: &str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.deliveries.get_or_create(&DeliveryLabels { sink: sink.to_owned(), result }).inc();
    }

    /// One heartbeat ping failed or was withheld.
    pub fn count_heartbeat_failure(&self) {
        self.heartbeat_failures.inc();
    }

    /// Copies the store's file sizes and checkpoint histograms in (before a render).
    pub fn observe_store(&self, stats: &WalStats) {
        self.store_wal_bytes.set(i64::try_from(stats.wal_bytes).unwrap_or(i64::MAX));
        self.store_db_bytes.set(i64::try_from(stats.db_bytes).unwrap_or(i64::MAX));
        for histogram in &stats.checkpoints {
            let metric = self.store_checkpoints.get_or_create(&CheckpointLabels { mode: histogram.mode.as_str() });
            if let Ok(mut state) = metric.state.lock() {
                *state = Some((histogram.sum_seconds, histogram.count, histogram.buckets.clone()));
            }
        }
    }

    /// Copies a fleet's store pool state and operation durations in (before a render).
    pub fn observe_fleet(&self, stats: &FleetStats) {
        for (state, n) in [("open", stats.pool_size), ("idle", stats.pool_idle), ("waiting", stats.pool_waiting)] {
            self.store_pool.get_or_create(&PoolLabels { state }).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for op in &stats.ops {
            let metric = self.store_ops.get_or_create(&OpLabels { op: op.op });
            if let Ok(mut state) = metric.state.lock() {
                *state = Some((op.sum_seconds, op.count, op.buckets.clone()));
            }
        }
    }

    /// The exposition text served on `/metrics` ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing to a String cannot fail; keep the scrape well-formed regardless.
            return "# EOF\n".to_owned();
        }
        out
    }
}

/// Why `/readyz` says not ready.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    /// `true` when steward can record calls right now.
    pub ready: bool,
    /// The store accepted an empty write transaction.
    pub store_writable: bool,
    /// The audit log's last write succeeded.
    pub audit_writable: bool,
    /// What is wrong, redacted; absent when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Readiness {
    /// Combines the two checks.
    pub fn new(store: Result<(), String>, audit_healthy: bool) -> Self {
        let store_writable = store.is_ok();
        let mut problems = Vec::new();
        if let Err(err) = store {
            problems.push(format!("store not writable: {err}"));
        }
        if !audit_healthy {
            problems.push("audit log not writable (its last write failed)".to_owned());
        }
        Self {
            ready: store_writable && audit_healthy,
            store_writable,
            audit_writable: audit_healthy,
            detail: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_upstream_errors_and_refusals_are_counted_by_label() {
        let m = Metrics::new();
        m.record_call("api", Some("post"), "allowed", Some(200), Duration::from_millis(30));
        m.record_call("api", Some("post"), "allowed", Some(503), Duration::from_millis(10));
        m.record_call("api", Some("post"), "upstream_timeout", None, Duration::from_secs(5));
        m.record_call("api", Some("post"), "rate_limited", None, Duration::from_millis(1));
        m.record_call("api", None, "unmatched", None, Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains("steward_calls_total{door=\"api\",tool=\"post\",decision=\"allowed\"} 2"), "{text}");
        assert!(text.contains("steward_calls_total{door=\"api\",tool=\"-\",decision=\"unmatched\"} 1"), "{text}");
        assert!(text.contains("steward_upstream_errors_total{door=\"api\",tool=\"post\",kind=\"status_5xx\"} 1"));
        assert!(text.contains("steward_upstream_errors_total{door=\"api\",tool=\"post\",kind=\"timeout\"} 1"));
        assert!(text.contains("steward_rate_limited_total{door=\"api\",tool=\"post\"} 1"));
        assert!(text.contains("steward_call_duration_seconds_count{door=\"api\",tool=\"post\"} 3"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn agent_events_drive_up_down_and_restarts() {
        let m = Metrics::new();
        assert!(!m.agent().supervised);
        m.observe_event(&Event::AgentStarted { pid: 10 }, 1_000);
        assert!(m.agent().up && m.agent().supervised);
        m.observe_event(&Event::AgentExited { code: Some(1), signal: None, uptime: Duration::from_secs(3) }, 2_000);
        m.observe_event(&Event::AgentDown { since_ms: 2_000 }, 2_000);
        assert_eq!(m.agent().down_since_ms, Some(2_000));
        m.observe_event(&Event::AgentStarted { pid: 11 }, 3_000);
        m.observe_event(&Event::AgentUp, 3_500);
        assert_eq!(m.agent().down_since_ms, None);
        assert_eq!(m.agent().restarts, 1);
        // A start after the kill switch is released is a resume, not a restart.
        m.observe_event(&Event::AgentExited { code: None, signal: Some(15), uptime: Duration::from_secs(9) }, 4_000);
        m.observe_event(&Event::KillSwitchReleased, 5_000);
        m.observe_event(&Event::AgentStarted { pid: 12 }, 5_000);
        assert_eq!(m.agent().restarts, 1);
        m.observe_event(&Event::CrashLoop { exits: 5 }, 6_000);
        assert!(m.agent().crash_loop);
        let text = m.render();
        assert!(text.contains("steward_agent_restarts_total 1"), "{text}");
        assert!(text.contains("steward_agent_up 1"), "{text}");
    }

    #[tokio::test]
    async fn the_store_s_files_and_checkpoints_are_copied_in_at_each_render() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("steward.db"), crate::store::tests::redactor()).unwrap();
        store.kv_set("k", "v", 1).await.unwrap();
        let m = Metrics::new();
        let mut stats = store.wal_stats();
        stats.checkpoints[1].buckets[3].1 = 2;
        stats.checkpoints[1].count = 2;
        stats.checkpoints[1].sum_seconds = 0.007;
        m.observe_store(&stats);
        let text = m.render();
        assert!(text.contains(&format!("steward_store_db_bytes {}", stats.db_bytes)), "{text}");
        assert!(text.contains(&format!("steward_store_wal_bytes {}", stats.wal_bytes)), "{text}");
        assert!(stats.wal_bytes > 0, "a commit went to the WAL: {stats:?}");
        assert!(
            text.contains("steward_store_checkpoint_duration_seconds_bucket{le=\"0.005\",mode=\"restart\"} 2"),
            "{text}"
        );
        assert!(text.contains("steward_store_checkpoint_duration_seconds_count{mode=\"restart\"} 2"), "{text}");
        assert!(
            text.contains("steward_store_checkpoint_duration_seconds_bucket{le=\"+Inf\",mode=\"passive\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn readiness_names_what_is_wrong() {
        assert!(Readiness::new(Ok(()), true).ready);
        let r = Readiness::new(Err("disk full".into()), false);
        assert!(!r.ready && !r.store_writable && !r.audit_writable);
        let detail = r.detail.unwrap();
        assert!(detail.contains("disk full") && detail.contains("audit log"));
    }
}
