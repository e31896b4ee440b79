//! Latency histograms: microsecond resolution, three significant digits, read out in milliseconds.

use std::time::Duration;

use anyhow::{Result, anyhow};
use hdrhistogram::Histogram;

/// Largest latency kept exactly; longer ones are recorded as this (runs and requests are bounded well below).
const MAX_TRACKED_MICROS: u64 = 3_600_000_000;

#[derive(Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Latency {
    pub fn new() -> Result<Self> {
        Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 3)
            .map(|histogram| Self { histogram })
            .map_err(|e| anyhow!("cannot create histogram: {e:?}"))
    }

    /// Records `latency` as whole microseconds, at least 1 (the histogram's lowest value).
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.histogram.saturating_record(micros);
    }

    pub fn merge(&mut self, other: &Self) -> Result<()> {
        self.histogram
            .add(&other.histogram)
            .map_err(|e| anyhow!("cannot merge latency histograms: {e:?}"))
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Milliseconds at quantile `q` (0..=1), or `None` when nothing was recorded.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (!self.histogram.is_empty()).then(|| micros_to_ms(self.histogram.value_at_quantile(q)))
    }

    /// The largest value in milliseconds, or `None` when nothing was recorded.
    pub fn max_ms(&self) -> Option<f64> {
        (!self.histogram.is_empty()).then(|| micros_to_ms(self.histogram.max()))
    }
}

fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Milliseconds with microsecond precision, or `nan` when there is no value.
pub fn fmt_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "nan".to_owned(), |ms| format!("{ms:.3}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_in_milliseconds() {
        let mut latency = Latency::new().unwrap();
        assert_eq!(latency.quantile_ms(0.5), None);
        assert_eq!(fmt_ms(latency.max_ms()), "nan");
        for ms in 1..=100 {
            latency.record(Duration::from_millis(ms));
        }
        let p50 = latency.quantile_ms(0.5).unwrap();
        let p99 = latency.quantile_ms(0.99).unwrap();
        assert!((49.5..=50.5).contains(&p50), "p50 {p50}");
        assert!((98.5..=99.5).contains(&p99), "p99 {p99}");
        assert_eq!(latency.count(), 100);
        assert_eq!(fmt_ms(Some(1.5)), "1.500");
    }

    #[test]
    fn merging_and_bounds() {
        let mut a = Latency::new().unwrap();
        let mut b = Latency::new().unwrap();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(9));
        b.record(Duration::ZERO);
        a.merge(&b).unwrap();
        assert_eq!(a.count(), 3);
        let max = a.max_ms().unwrap();
        assert!((9.0..9.01).contains(&max), "max {max}");
        assert_eq!(a.quantile_ms(0.0), Some(0.001), "zero is recorded as 1 µs");
        a.record(Duration::from_secs(86_400));
        let max = a.max_ms().unwrap();
        assert!((3_599_000.0..=3_601_000.0).contains(&max), "max {max}");
    }
}
