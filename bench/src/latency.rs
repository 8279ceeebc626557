//! Operation latency histograms with fixed bounds, so histograms from different shards (and
//! different runs) can be merged and compared.
//!
//! Values are recorded in nanoseconds, from 1 ns to 60 s, with 3 significant digits;
//! anything slower than 60 s is clamped to 60 s (and still counted).

use hdrhistogram::Histogram;
use std::time::Duration;

/// Lowest recordable latency, in nanoseconds.
pub const LATENCY_NS_MIN: u64 = 1;
/// Highest recordable latency, in nanoseconds (60 s).
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;
/// Significant decimal digits kept by the histogram.
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram with the fixed bounds above.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
    // 3 significant digits), so this cannot fail.
    Histogram::new_with_bounds(LATENCY_NS_MIN, LATENCY_NS_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Records one operation's latency, clamping it into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    record_n(histogram, latency, 1);
}

/// Records `count` operations of the same latency, clamping it into the histogram's range.
pub fn record_n(histogram: &mut Histogram<u64>, latency: Duration, count: u64) {
    let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    histogram.saturating_record_n(ns.clamp(LATENCY_NS_MIN, LATENCY_NS_MAX), count);
}

/// The latency figures a report shows, in microseconds.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LatencySummary {
    pub latency_us_mean: f64,
    pub latency_us_p50: f64,
    pub latency_us_p90: f64,
    pub latency_us_p99: f64,
    pub latency_us_p999: f64,
    pub latency_us_max: f64,
}

impl LatencySummary {
    /// Summarises a histogram (all zeros when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            latency_us_mean: histogram.mean() / 1000.0,
            latency_us_p50: us(histogram.value_at_quantile(0.50)),
            latency_us_p90: us(histogram.value_at_quantile(0.90)),
            latency_us_p99: us(histogram.value_at_quantile(0.99)),
            latency_us_p999: us(histogram.value_at_quantile(0.999)),
            latency_us_max: us(histogram.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_clamp_and_merge() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        record(&mut a, Duration::from_micros(10));
        record(&mut a, Duration::ZERO);
        record(&mut b, Duration::from_secs(3600));
        a.add(&b).unwrap();
        assert_eq!(a.len(), 3);
        let summary = LatencySummary::of(&a);
        assert!(summary.latency_us_max >= 59_000_000.0);
        assert!((summary.latency_us_p50 - 10.0).abs() < 0.1);
        assert_eq!(LatencySummary::of(&new_histogram()).latency_us_max, 0.0);
    }
}
