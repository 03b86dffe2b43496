//! The optional HTTP health check (`[agent] health_url`): a GET every
//! [`SupervisorSettings::health_every`](super::SupervisorSettings), where any
//! 2xx answer within the timeout means healthy. Runs as its own task per run
//! of the agent, so a slow answer never delays the supervisor's reaction to
//! an exit or the kill switch.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::SupervisorError;

/// A configured health endpoint.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    client: reqwest::Client,
    url: String,
}

impl HealthCheck {
    /// A client that follows no redirect and gives up after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, SupervisorError> {
        let client = crate::outbound::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| SupervisorError::HealthClient(e.to_string()))?;
        Ok(Self { client, url: url.to_owned() })
    }

    /// One probe: true on a 2xx answer.
    pub async fn probe(&self) -> bool {
        match self.client.get(&self.url).send().await {
            Ok(response) => response.status().is_success(),
            Err(err) => {
                tracing::debug!(error = %err, "agent health check failed");
                false
            }
        }
    }

    /// Probes every `every` (the first one right away) and sends each result;
    /// stops when the receiver or the returned handle is dropped.
    pub fn spawn(self, every: Duration) -> (mpsc::Receiver<bool>, AbortOnDropHandle<()>) {
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if tx.send(self.probe().await).await.is_err() {
                    break;
                }
            }
        });
        (rx, AbortOnDropHandle::new(task))
    }
}
