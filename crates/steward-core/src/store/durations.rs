//! A cumulative histogram of durations in atomics: recorded from any
//! thread without a lock, copied out for `/metrics`. The store keeps two
//! families of them: the SQLite checkpoints' (`checkpoint.rs`, per mode)
//! and a fleet's store operations' (`pg/timing.rs`, per operation).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts per bucket of `bounds` (seconds, ascending) plus `+Inf`, and
/// the total time.
#[derive(Debug)]
pub(crate) struct Durations {
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

/// A [`Durations`] as it stood: what the encoder takes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    /// `(upper bound in seconds, count in this bucket)`, not cumulative,
    /// ending with `+Inf`.
    pub(crate) buckets: Vec<(f64, u64)>,
    /// How many were recorded.
    pub(crate) count: u64,
    /// Their total duration.
    pub(crate) sum_seconds: f64,
}

impl Durations {
    /// An empty histogram over `bounds`.
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Durations {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// One run that took `took`.
    pub(crate) fn record(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = self.bounds.iter().position(|&le| seconds <= le).unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The histogram now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let bounds = self.bounds.iter().copied().chain(std::iter::once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> =
            bounds.zip(&*self.counts).map(|(le, n)| (le, n.load(Ordering::Relaxed))).collect();
        Snapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_lands_in_its_bucket_and_its_sum() {
        let d = Durations::new(&[0.001, 0.01]);
        d.record(Duration::from_micros(500));
        d.record(Duration::from_millis(5));
        d.record(Duration::from_secs(3));
        let s = d.snapshot();
        assert_eq!(s.buckets, [(0.001, 1), (0.01, 1), (f64::INFINITY, 1)]);
        assert_eq!(s.count, 3);
        assert!((s.sum_seconds - 3.0055).abs() < 1e-9);
    }
}
