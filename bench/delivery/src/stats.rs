//! What came back: latency histograms reported as JSON and as one human-readable line, and the requests herald did
//! not accept.

use herald_bench_common::client::{Answer, accepted};
use herald_bench_common::latency::{Latency, fmt_ms};
use serde_json::{Value, json};

/// p50, p90, p99, p99.9 and max in milliseconds (null when empty).
pub(crate) fn summary(latency: &Latency) -> Value {
    json!({
        "count": latency.count(),
        "p50_ms": latency.quantile_ms(0.5),
        "p90_ms": latency.quantile_ms(0.9),
        "p99_ms": latency.quantile_ms(0.99),
        "p999_ms": latency.quantile_ms(0.999),
        "max_ms": latency.max_ms(),
    })
}

/// The summary on one human-readable line.
pub(crate) fn line(latency: &Latency) -> String {
    let q = |q: f64| fmt_ms(latency.quantile_ms(q));
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        q(1.0),
        latency.count()
    )
}

/// Counts of requests that were not accepted, by reason, and the first one seen.
#[derive(Default, Debug)]
pub(crate) struct Problems {
    pub(crate) non_2xx: u64,
    pub(crate) errors: u64,
    pub(crate) first: Option<String>,
}

impl Problems {
    pub(crate) fn record(&mut self, answer: &Answer) {
        match answer {
            Ok(_) if accepted(answer) => {}
            Ok((code, body)) => {
                self.non_2xx += 1;
                self.first.get_or_insert_with(|| {
                    format!("HTTP {code}: {}", String::from_utf8_lossy(body).trim())
                });
            }
            Err(failure) => {
                self.errors += 1;
                self.first.get_or_insert_with(|| failure.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use herald_bench_common::client::Failure;

    use super::*;

    #[test]
    fn quantiles_in_milliseconds() {
        let mut latency = Latency::new().unwrap();
        assert_eq!(summary(&latency)["p50_ms"], Value::Null);
        assert!(line(&latency).starts_with("p50 nan  p90 nan"));
        for ms in 1..=100 {
            latency.record(Duration::from_millis(ms));
        }
        let summary = summary(&latency);
        let p50 = summary["p50_ms"].as_f64().unwrap();
        let p99 = summary["p99_ms"].as_f64().unwrap();
        assert!((49.5..=50.5).contains(&p50), "p50 {p50}");
        assert!((98.5..=99.5).contains(&p99), "p99 {p99}");
        assert_eq!(summary["count"], 100);
        assert!(line(&latency).ends_with("(100 samples)"));
    }

    #[test]
    fn counts_problems_and_keeps_the_first() {
        let mut problems = Problems::default();
        problems.record(&Ok((200, Bytes::new())));
        problems.record(&Ok((503, Bytes::from_static(b"store busy\n"))));
        problems.record(&Err(Failure {
            kind: "timeout",
            detail: "slow".into(),
        }));
        assert_eq!((problems.non_2xx, problems.errors), (1, 1));
        assert_eq!(problems.first.as_deref(), Some("HTTP 503: store busy"));
    }
}
