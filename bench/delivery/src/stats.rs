//! Latency histograms (microsecond resolution, three significant digits) and how they are reported.

use std::time::Duration;

use anyhow::{Result, anyhow};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Largest latency kept exactly; longer ones are recorded as this (runs are bounded well below).
const MAX_TRACKED_MICROS: u64 = 3_600_000_000;

pub(crate) struct Latency {
    histogram: Histogram<u64>,
}

impl Latency {
    pub(crate) fn new() -> Result<Self> {
        Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 3)
            .map(|histogram| Self { histogram })
            .map_err(|e| anyhow!("cannot create histogram: {e:?}"))
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.histogram.saturating_record(micros);
    }

    pub(crate) fn count(&self) -> u64 {
        self.histogram.len()
    }

    fn ms(&self, q: f64) -> Value {
        if self.histogram.is_empty() {
            return Value::Null;
        }
        json!(micros_to_ms(self.histogram.value_at_quantile(q)))
    }

    /// p50, p90, p99, p99.9 and max in milliseconds (null when empty).
    pub(crate) fn summary(&self) -> Value {
        let max = if self.histogram.is_empty() {
            Value::Null
        } else {
            json!(micros_to_ms(self.histogram.max()))
        };
        json!({
            "count": self.count(),
            "p50_ms": self.ms(0.5),
            "p90_ms": self.ms(0.9),
            "p99_ms": self.ms(0.99),
            "p999_ms": self.ms(0.999),
            "max_ms": max,
        })
    }

    /// One human-readable line of the summary.
    pub(crate) fn line(&self) -> String {
        let q = |q: f64| {
            if self.histogram.is_empty() {
                "nan".to_owned()
            } else {
                format!("{:.3}", micros_to_ms(self.histogram.value_at_quantile(q)))
            }
        };
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            q(1.0),
            self.count()
        )
    }
}

fn micros_to_ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_in_milliseconds() {
        let mut latency = Latency::new().unwrap();
        assert_eq!(latency.summary()["p50_ms"], Value::Null);
        for ms in 1..=100 {
            latency.record(Duration::from_millis(ms));
        }
        let summary = latency.summary();
        let p50 = summary["p50_ms"].as_f64().unwrap();
        let p99 = summary["p99_ms"].as_f64().unwrap();
        assert!((49.5..=50.5).contains(&p50), "p50 {p50}");
        assert!((98.5..=99.5).contains(&p99), "p99 {p99}");
        assert_eq!(summary["count"], 100);
    }
}
