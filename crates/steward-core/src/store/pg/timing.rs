//! How long the fleet store's operations take, for `/metrics`
//! (`steward_store_op_duration_seconds{op}`): the database's round trips
//! are the floor of every call's latency on a fleet (`docs/fleet.md`), so
//! the on-call person sees which operation is slow and by how much.
//! Cumulative histograms (`store/durations.rs`), copied out at each scrape.

use std::time::Duration;

use super::super::durations::Durations;

/// The operations timed, in label order.
pub const OPS: [&str; 13] = [
    "admit",
    "precheck",
    "approval",
    "refused",
    "complete",
    "withdraw",
    "kill_switch",
    "settle",
    "kv",
    "prune",
    "undo",
    "probe",
    "read",
];

/// Upper bounds of the buckets, seconds (then `+Inf`).
const BOUNDS: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// One operation's histogram as `/metrics` encodes it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpLatency {
    /// One of [`OPS`].
    pub op: &'static str,
    /// `(upper bound in seconds, count in this bucket)`, not cumulative,
    /// ending with `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// How many ran (and succeeded).
    pub count: u64,
    /// Their total duration.
    pub sum_seconds: f64,
}

/// The histograms of every operation.
#[derive(Debug)]
pub struct OpTimes(Vec<Durations>);

impl Default for OpTimes {
    fn default() -> Self {
        OpTimes(OPS.iter().map(|_| Durations::new(&BOUNDS)).collect())
    }
}

impl OpTimes {
    /// One run of `op` that took `took`.
    pub fn record(&self, op: Op, took: Duration) {
        if let Some(durations) = self.0.get(op as usize) {
            durations.record(took);
        }
    }

    /// Every operation's histogram now.
    pub fn snapshot(&self) -> Vec<OpLatency> {
        OPS.iter()
            .zip(&self.0)
            .map(|(&op, durations)| {
                let s = durations.snapshot();
                OpLatency { op, buckets: s.buckets, count: s.count, sum_seconds: s.sum_seconds }
            })
            .collect()
    }
}

/// An operation timed: its index in [`OPS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A call's admission.
    Admit,
    /// Supervised mode's advisory check.
    Precheck,
    /// An approval's write.
    Approval,
    /// A refusal journaled before admission.
    Refused,
    /// A call's outcome and settlement.
    Complete,
    /// An admitted call withdrawn.
    Withdraw,
    /// `steward stop` or `resume`.
    KillSwitch,
    /// A restart's settlement of its calls.
    Settle,
    /// A kv write.
    Kv,
    /// Retention's pruning.
    Prune,
    /// An undo's claim or end.
    Undo,
    /// The write probe (`/readyz`, doctor).
    Probe,
    /// Any read.
    Read,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_lands_in_its_bucket_and_its_sum() {
        let times = OpTimes::default();
        times.record(Op::Admit, Duration::from_micros(1500));
        times.record(Op::Admit, Duration::from_secs(3));
        times.record(Op::Read, Duration::from_micros(100));
        let snap = times.snapshot();
        let admit = &snap[Op::Admit as usize];
        assert_eq!((admit.op, admit.count), ("admit", 2));
        assert_eq!(admit.buckets[2], (0.002, 1));
        assert_eq!(admit.buckets[BOUNDS.len()].1, 1, "past the last bound: +Inf");
        assert!((admit.sum_seconds - 3.0015).abs() < 1e-9);
        assert_eq!((snap[Op::Read as usize].op, snap[Op::Read as usize].buckets[0]), ("read", (0.0005, 1)));
    }
}
