//! Daemon events: what happened to the agent, the kill switch, the spend cap
//! and steward's own writes, as typed values that the alert engine, metrics
//! and logs consume.
//!
//! One [`EventBus`] is created by `daemon::start` and handed to every
//! producer (the supervisor, the pipeline) and consumer (the alert engine). It is a tokio `broadcast`
//! channel: [`EventBus::publish`] never blocks and never fails; a consumer
//! that falls more than [`EVENT_CAPACITY`] events behind loses the oldest
//! ones and is told so (`RecvError::Lagged`) rather than slowing the
//! producer down. Consumers that must not miss a condition (alerts) should
//! therefore also read the persisted state (the kill switch in the store,
//! `steward status`) when they see a lag.

use std::time::Duration;

use tokio::sync::broadcast;

/// Events buffered per subscriber before the slowest one starts losing the
/// oldest. A restart storm produces a handful of events per restart, and the
/// crash-loop guard stops it after five: 256 leaves an order of magnitude of
/// headroom for a consumer blocked on a slow alert sink.
pub const EVENT_CAPACITY: usize = 256;

/// Something a human may need to hear about, or a metric needs to count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The agent process was spawned.
    AgentStarted {
        /// Its pid (also its process group id).
        pid: u32,
    },
    /// The agent process ended, for whatever reason (crash, exit, stopped by steward).
    AgentExited {
        /// Exit code, when it exited on its own.
        code: Option<i32>,
        /// The signal that ended it, when one did.
        signal: Option<i32>,
        /// How long it ran.
        uptime: Duration,
    },
    /// The agent should be running and is not (it exited, is waiting to be
    /// restarted, was given up on, or fails its health check). Published
    /// once per outage, at its start; the alert engine decides how long an
    /// outage must last (`agent_down_after`) before a human hears of it.
    AgentDown {
        /// When the outage began, epoch ms.
        since_ms: i64,
    },
    /// The outage announced by [`Event::AgentDown`] is over: the agent runs
    /// and is healthy again, or it was stopped on purpose (the kill switch,
    /// reported by its own event, or steward shutting down).
    AgentUp,
    /// The agent kept dying right after its start and is no longer restarted
    /// (state `fatal`, persisted) until `steward resume`.
    CrashLoop {
        /// Short-lived exits counted inside the crash-loop window.
        exits: u32,
    },
    /// The kill switch is engaged: every call is refused and the agent is
    /// stopped. Published when the daemon first sees it engaged (at startup
    /// too), whoever engaged it (`steward stop`, the loop breaker, ...).
    KillSwitchEngaged {
        /// Why, as recorded in the store.
        reason: String,
        /// Who: `cli`, `loop_breaker`, ...
        source: String,
    },
    /// The kill switch was released (`steward resume`).
    KillSwitchReleased,
    /// The loop breaker tripped: a run of identical calls engaged the kill
    /// switch (a [`Event::KillSwitchEngaged`] with source `loop_breaker` follows).
    LoopDetected {
        /// The tool that was called over and over.
        tool: String,
    },
    /// An LLM call was refused by the daily spend cap: the day's committed
    /// spend plus its worst case would pass the cap. The cap itself may be
    /// far from reached (one large call does not fit): the alert engine
    /// tells the two apart.
    SpendCapHit {
        /// The day's committed spend, micro-dollars.
        spent_micros: u64,
        /// The cap, micro-dollars.
        cap_micros: u64,
        /// The refused call's worst case, micro-dollars.
        reserve_micros: u64,
    },
    /// A priced call used more than its reservation (the provider streamed
    /// past `max_tokens`, reported absurd counts, or steward's bound was
    /// wrong): it is billed what was reported, and priced calls are stopped
    /// for the rest of the spend day (`steward resume` lifts it).
    SpendOverrun {
        /// `[llm.NAME]` of the provider.
        provider: String,
        /// The model requested.
        model: String,
        /// What happened, with the amounts: the alert's text.
        reason: String,
    },
    /// A response named another model than the request, at another price (or
    /// none): the call was billed at the dearer of the two.
    UsageModelMismatch {
        /// `[llm.NAME]` of the provider.
        provider: String,
        /// The model requested.
        requested: String,
        /// The model the response named.
        reported: String,
    },
    /// Supervised mode: a new request waits for a human's decision. The
    /// monitor sends it to every alert sink, batched per tool per minute.
    ApprovalRequested {
        /// The request's id (`steward approve <id>`).
        id: String,
        /// The tool.
        tool: String,
        /// HTTP method.
        method: String,
        /// Path and redacted query.
        path: String,
        /// Redacted summary of the body.
        summary: String,
    },
    /// An audit record could not be written (the call's trace is missing).
    AuditWriteFailed {
        /// The error, redacted.
        detail: String,
    },
    /// The store could not journal a call (admission, refusal or outcome).
    StoreWriteFailed {
        /// The error, redacted.
        detail: String,
    },
    /// An operator's undo failed (the upstream answered 5xx or other
    /// non-404 error, was unreachable, or steward refused it): the original
    /// call is still in effect. Retryable with the same `steward undo`.
    UndoFailed {
        /// The original call.
        call_id: String,
        /// Its tool.
        tool: String,
        /// Why, redacted.
        reason: String,
    },
    /// An MCP server changed a pinned tool's definition (name, description
    /// or input schema): the tool is refused and hidden until `steward mcp
    /// trust`. Published once per new definition.
    McpToolChanged {
        /// `[mcp.NAME]`.
        server: String,
        /// The MCP tool name.
        tool: String,
    },
}

/// The daemon's event channel. Cheap to clone; every clone publishes to the
/// same subscribers.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus with room for [`EVENT_CAPACITY`] events per subscriber.
    pub fn new() -> Self {
        Self { sender: broadcast::Sender::new(EVENT_CAPACITY) }
    }

    /// Sends `event` to every current subscriber. Never blocks; with no
    /// subscriber the event is only logged.
    pub fn publish(&self, event: Event) {
        tracing::debug!(?event, "event");
        // Err only means nobody subscribes yet, which is fine.
        let _ = self.sender.send(event);
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_gets_every_event_and_publish_never_blocks() {
        let bus = EventBus::new();
        bus.publish(Event::AgentUp); // no subscriber yet: dropped, no error
        let mut a = bus.subscribe();
        let mut b = bus.clone().subscribe();
        bus.publish(Event::AgentStarted { pid: 7 });
        bus.publish(Event::KillSwitchReleased);
        for rx in [&mut a, &mut b] {
            assert_eq!(rx.recv().await.unwrap(), Event::AgentStarted { pid: 7 });
            assert_eq!(rx.recv().await.unwrap(), Event::KillSwitchReleased);
        }
        // A subscriber that falls behind loses the oldest events, the publisher never waits.
        for i in 0..(EVENT_CAPACITY + 10) {
            bus.publish(Event::CrashLoop { exits: u32::try_from(i).unwrap() });
        }
        assert!(matches!(a.recv().await, Err(broadcast::error::RecvError::Lagged(10))));
        assert_eq!(a.recv().await.unwrap(), Event::CrashLoop { exits: 10 });
    }

    #[test]
    fn events_serialize_with_a_kind_tag() {
        let json = serde_json::to_value(Event::KillSwitchEngaged { reason: "r".into(), source: "cli".into() }).unwrap();
        assert_eq!(json, serde_json::json!({"event": "kill_switch_engaged", "reason": "r", "source": "cli"}));
    }
}
