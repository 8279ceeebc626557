//! Duration histograms over fixed microsecond buckets, one shape for every duration the
//! project reports: WAL group commits, flushes and compactions here, and the server's request
//! latencies. A [`Histogram`] is a plain value (`Copy`): stats snapshots carry it as is, and
//! its owner records into it behind whatever cell it keeps it in.

use std::time::Instant;

/// Upper bounds, in microseconds, of the buckets (a last bucket holds the rest).
pub const LATENCY_BOUNDS_MICROS: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

/// Buckets of a [`Histogram`]: one per bound, then the rest.
pub const BUCKETS: usize = LATENCY_BOUNDS_MICROS.len() + 1;

/// The bucket of [`LATENCY_BOUNDS_MICROS`] that `micros` falls in.
pub fn latency_bucket(micros: u64) -> usize {
    LATENCY_BOUNDS_MICROS.partition_point(|&b| b < micros)
}

/// Counts per bucket (not cumulative; the last bucket is above every bound) and the sum of
/// the recorded durations in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    pub counts: [u64; BUCKETS],
    pub sum_micros: u64,
}

impl Histogram {
    /// Records `n` events that took `micros` each.
    pub fn record(&mut self, micros: u64, n: u64) {
        let c = &mut self.counts[latency_bucket(micros)];
        *c = c.wrapping_add(n);
        self.sum_micros = self.sum_micros.wrapping_add(micros.saturating_mul(n));
    }

    /// Records one event that began at `started` and ends now.
    pub fn record_since(&mut self, started: Instant) {
        self.record(started.elapsed().as_micros() as u64, 1);
    }

    /// Events recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0, |a, &c| a.wrapping_add(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_by_upper_bound_and_sums() {
        let mut h = Histogram::default();
        h.record(50, 2);
        h.record(51, 1);
        h.record(20_000_000, 1);
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[BUCKETS - 1], 1);
        assert_eq!(h.count(), 4);
        assert_eq!(h.sum_micros, 100 + 51 + 20_000_000);
    }
}
