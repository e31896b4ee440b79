//! Counting what came back: a latency histogram of successful requests, counts of non-2xx answers by status and of
//! failed requests by kind, and the first failure seen.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use herald_bench_common::client::{Answer, accepted};
use herald_bench_common::latency::{Latency, fmt_ms};

/// Results of a set of requests.
#[derive(Clone)]
pub(crate) struct Recorder {
    latency: Latency,
    /// Requests answered with 2xx.
    pub(crate) ok: u64,
    /// Alerts in the requests answered with 2xx.
    pub(crate) alerts_ok: u64,
    non_2xx: BTreeMap<u16, u64>,
    failures: BTreeMap<&'static str, u64>,
    first_problem: Option<String>,
}

impl Recorder {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self {
            latency: Latency::new()?,
            ok: 0,
            alerts_ok: 0,
            non_2xx: BTreeMap::new(),
            failures: BTreeMap::new(),
            first_problem: None,
        })
    }

    /// Records one request carrying `alerts` alerts that ended with `answer` after `latency`. Only successful
    /// requests enter the latency histogram.
    pub(crate) fn record(&mut self, answer: &Answer, latency: Duration, alerts: u64) {
        match answer {
            Ok(_) if accepted(answer) => {
                self.ok += 1;
                self.alerts_ok += alerts;
                self.latency.record(latency);
            }
            Ok((code, _)) => {
                *self.non_2xx.entry(*code).or_default() += 1;
                self.first_problem
                    .get_or_insert_with(|| format!("HTTP {code}"));
            }
            Err(failure) => {
                *self.failures.entry(failure.kind).or_default() += 1;
                self.first_problem
                    .get_or_insert_with(|| failure.to_string());
            }
        }
    }

    /// Counts a request that was due but not sent (too many already in flight).
    pub(crate) fn record_skipped(&mut self) {
        *self.failures.entry("skipped").or_default() += 1;
        self.first_problem
            .get_or_insert_with(|| "skipped: too many requests in flight".to_owned());
    }

    pub(crate) fn merge(&mut self, other: &Self) -> Result<()> {
        self.latency.merge(&other.latency)?;
        self.ok += other.ok;
        self.alerts_ok += other.alerts_ok;
        for (code, n) in &other.non_2xx {
            *self.non_2xx.entry(*code).or_default() += n;
        }
        for (kind, n) in &other.failures {
            *self.failures.entry(kind).or_default() += n;
        }
        if self.first_problem.is_none() {
            self.first_problem.clone_from(&other.first_problem);
        }
        Ok(())
    }

    pub(crate) fn non_2xx(&self) -> u64 {
        self.non_2xx.values().sum()
    }

    pub(crate) fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Latency in milliseconds at quantile `q` (0..=1) of successful requests, `nan` when there were none.
    pub(crate) fn quantile(&self, q: f64) -> String {
        fmt_ms(self.latency.quantile_ms(q))
    }

    /// Largest latency in milliseconds of successful requests, `nan` when there were none.
    pub(crate) fn max(&self) -> String {
        fmt_ms(self.latency.max_ms())
    }

    /// Human-readable lines about non-2xx answers and failures, empty when there were none.
    pub(crate) fn problems(&self) -> String {
        let mut text = String::new();
        if !self.non_2xx.is_empty() {
            let codes: Vec<String> = self
                .non_2xx
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect();
            let _ = writeln!(text, "  non-2xx by status     {}", codes.join(", "));
        }
        if !self.failures.is_empty() {
            let kinds: Vec<String> = self
                .failures
                .iter()
                .map(|(kind, n)| format!("{kind}: {n}"))
                .collect();
            let _ = writeln!(text, "  failures by kind      {}", kinds.join(", "));
        }
        if let Some(first) = &self.first_problem {
            let _ = writeln!(text, "  first problem         {first}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use herald_bench_common::client::Failure;

    use super::*;

    fn status(code: u16) -> Answer {
        Ok((code, Bytes::new()))
    }

    #[test]
    fn percentiles_come_from_successful_requests_only() {
        let mut r = Recorder::new().unwrap();
        for ms in 1..=100 {
            r.record(&status(200), Duration::from_millis(ms), 10);
        }
        r.record(&status(503), Duration::from_secs(50), 10);
        r.record(
            &Err(Failure {
                kind: "timeout",
                detail: "slow".into(),
            }),
            Duration::from_secs(60),
            10,
        );
        assert_eq!(
            (r.ok, r.alerts_ok, r.non_2xx(), r.failed()),
            (100, 1000, 1, 1)
        );
        let p50: f64 = r.quantile(0.5).parse().unwrap();
        let p99: f64 = r.quantile(0.99).parse().unwrap();
        assert!((49.5..=50.5).contains(&p50), "p50 {p50}");
        assert!((98.5..=99.5).contains(&p99), "p99 {p99}");
        assert!(r.problems().contains("503: 1"));
        assert!(r.problems().contains("first problem         HTTP 503"));
    }

    #[test]
    fn merging_adds_everything_up() {
        let mut a = Recorder::new().unwrap();
        let mut b = Recorder::new().unwrap();
        a.record(&status(200), Duration::from_millis(1), 5);
        b.record(&status(202), Duration::from_millis(9), 5);
        b.record_skipped();
        a.merge(&b).unwrap();
        assert_eq!((a.ok, a.alerts_ok, a.failed()), (2, 10, 1));
        let max: f64 = a.max().parse().unwrap();
        assert!((9.0..9.01).contains(&max), "max {max}");
        assert_eq!(Recorder::new().unwrap().quantile(0.5), "nan");
        assert!(a.problems().contains("skipped: 1"));
    }
}
