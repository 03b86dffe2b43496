//! Delivering notices to the sinks.
//!
//! Each sink has its own worker task and bounded queue ([`SINK_QUEUE`]), so
//! a sink that hangs or keeps failing delays only its own notices, never
//! another sink's nor the engine. A failed attempt is retried up to
//! [`MAX_ATTEMPTS`] times with full-jitter exponential backoff (a random
//! wait in `0..=min(MAX_DELAY, BASE_DELAY * 2^n)`, so many stewards behind
//! one outage do not retry in lockstep); a 4xx other than 408/429 is not
//! retried. Every final result is logged, counted
//! (`steward_alert_deliveries_total`) and persisted in `kv` under
//! [`sink_key`], where `steward status` shows a failing sink.
//!
//! Notices are redacted once, in [`Dispatcher::dispatch`], before any sink
//! sees them; error texts (a program's stderr) are redacted before they are
//! logged or stored.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Alert, Metrics, Sink};
use crate::clock::unix_ms;
use crate::redaction::SharedRedactor;
use crate::store::Store;

/// Notices queued per sink before new ones are dropped (and logged): a sink
/// that far behind is down, and the engine must never wait for it.
pub const SINK_QUEUE: usize = 64;
/// Attempts per notice and sink, the first included.
pub const MAX_ATTEMPTS: u32 = 4;
/// First backoff ceiling.
pub const BASE_DELAY: Duration = Duration::from_secs(1);
/// Largest backoff ceiling.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// The outcome of delivering one notice to one sink, after retries; also
/// what `kv` keeps per sink ([`SinkHealth`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryReport {
    /// Sink name.
    pub sink: String,
    /// Sink kind.
    pub kind: String,
    /// Whether the sink accepted the notice.
    pub ok: bool,
    /// Attempts made.
    pub attempts: u32,
    /// The last error, redacted.
    pub error: Option<String>,
    /// When the delivery finished, epoch ms.
    pub at_ms: i64,
    /// The notice's rule key.
    pub alert_key: String,
}

/// The last delivery result of a sink, as persisted.
pub type SinkHealth = DeliveryReport;

/// `kv` key of a sink's last [`DeliveryReport`].
pub fn sink_key(name: &str) -> String {
    format!("alerts.sink.{name}")
}

/// The backoff before attempt `attempt + 1` (full jitter).
pub fn full_jitter(attempt: u32) -> Duration {
    let ceiling = BASE_DELAY.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1))).min(MAX_DELAY);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=millis))
}

/// Delivers `alert` to `sink`, retrying with backoff, at most `max_attempts` attempts.
pub async fn deliver(
    sink: &Sink,
    alert: &Alert,
    client: &reqwest::Client,
    redactor: &SharedRedactor,
    max_attempts: u32,
) -> DeliveryReport {
    let mut attempts = 0;
    let error = loop {
        attempts += 1;
        match sink.send(alert, client).await {
            Ok(()) => break None,
            Err(err) if attempts >= max_attempts.max(1) || !err.retryable() => break Some(err),
            Err(err) => {
                tracing::debug!(sink = sink.name(), attempt = attempts, error = %redactor.load().redact(&err.to_string()), "alert delivery failed; retrying");
                tokio::time::sleep(full_jitter(attempts)).await;
            }
        }
    };
    DeliveryReport {
        sink: sink.name().to_owned(),
        kind: sink.kind().to_owned(),
        ok: error.is_none(),
        attempts,
        error: error.map(|e| redactor.load().redact(&e.to_string()).into_owned()),
        at_ms: unix_ms(SystemTime::now()),
        alert_key: alert.key.clone(),
    }
}

/// Delivers `alert` to every sink at once (each with its retries) and
/// returns the reports in sink order: a dead sink only costs its own time.
pub async fn deliver_to_all(
    sinks: &[Sink],
    alert: &Alert,
    client: &reqwest::Client,
    redactor: &SharedRedactor,
    max_attempts: u32,
) -> Vec<DeliveryReport> {
    let alert = alert.clone().redacted(&redactor.load());
    futures_util::future::join_all(sinks.iter().map(|sink| deliver(sink, &alert, client, redactor, max_attempts))).await
}

/// Persists `report` as its sink's last result; a store failure is logged.
pub async fn record(store: &Store, report: &DeliveryReport) {
    let Ok(text) = serde_json::to_string(report) else { return };
    if let Err(err) = store.kv_set(&sink_key(&report.sink), &text, report.at_ms).await {
        tracing::error!(sink = %report.sink, error = %err, "could not persist an alert delivery result");
    }
}

/// The last persisted result of each named sink (`None`: never delivered).
pub async fn read_health(
    store: &Store,
    names: impl IntoIterator<Item = String>,
) -> Result<Vec<(String, Option<SinkHealth>)>, crate::store::StoreError> {
    let mut out = Vec::new();
    for name in names {
        let health = store.kv_get(&sink_key(&name)).await?.and_then(|text| serde_json::from_str(&text).ok());
        out.push((name, health));
    }
    Ok(out)
}

/// What the sink workers share.
#[derive(Clone)]
pub struct DeliveryContext {
    /// Where results are persisted.
    pub store: Store,
    /// Applied to every notice and error text.
    pub redactor: SharedRedactor,
    /// Delivery counters.
    pub metrics: Arc<Metrics>,
    /// The HTTP client of the HTTP sinks.
    pub client: reqwest::Client,
}

/// Hands notices to the sink workers without ever waiting for a sink.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    workers: Vec<(String, mpsc::Sender<Alert>)>,
    redactor: SharedRedactor,
    metrics: Arc<Metrics>,
}

impl Dispatcher {
    /// Starts one tracked worker per sink; they stop when `shutdown` is
    /// cancelled (a notice still being retried then is dropped).
    pub fn start(sinks: Vec<Sink>, ctx: &DeliveryContext, tracker: &TaskTracker, shutdown: &CancellationToken) -> Self {
        let mut workers = Vec::new();
        for sink in sinks {
            let (tx, rx) = mpsc::channel(SINK_QUEUE);
            workers.push((sink.name().to_owned(), tx));
            tracker.spawn(worker(sink, rx, ctx.clone(), shutdown.clone()));
        }
        Self { workers, redactor: ctx.redactor.clone(), metrics: Arc::clone(&ctx.metrics) }
    }

    /// Queues `alert`, redacted, for every sink. Never waits: a sink whose
    /// queue is full misses this notice (logged and counted as failed).
    pub fn dispatch(&self, alert: Alert) {
        let alert = alert.redacted(&self.redactor.load());
        for (name, queue) in &self.workers {
            if queue.try_send(alert.clone()).is_err() {
                tracing::error!(sink = %name, alert = %alert.key, "alert sink is not keeping up; notice dropped");
                self.metrics.count_delivery(name, false);
            }
        }
    }

    /// A dispatcher whose only "sink" is the returned channel (engine tests).
    #[cfg(test)]
    pub(crate) fn for_test(redactor: SharedRedactor, metrics: Arc<Metrics>) -> (Self, mpsc::Receiver<Alert>) {
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        (Self { workers: vec![("test".to_owned(), tx)], redactor, metrics }, rx)
    }

    /// Whether any sink is configured.
    pub fn has_sinks(&self) -> bool {
        !self.workers.is_empty()
    }
}

async fn worker(sink: Sink, mut queue: mpsc::Receiver<Alert>, ctx: DeliveryContext, shutdown: CancellationToken) {
    loop {
        let alert = tokio::select! {
            () = shutdown.cancelled() => break,
            next = queue.recv() => match next {
                Some(alert) => alert,
                None => break,
            },
        };
        let report = tokio::select! {
            () = shutdown.cancelled() => break,
            report = deliver(&sink, &alert, &ctx.client, &ctx.redactor, MAX_ATTEMPTS) => report,
        };
        ctx.metrics.count_delivery(sink.name(), report.ok);
        if report.ok {
            tracing::info!(sink = %report.sink, alert = %alert.key, status = alert.label(), "alert delivered");
        } else {
            tracing::error!(
                sink = %report.sink,
                alert = %alert.key,
                attempts = report.attempts,
                error = report.error.as_deref().unwrap_or_default(),
                "alert could not be delivered"
            );
        }
        record(&ctx.store, &report).await;
    }
}
