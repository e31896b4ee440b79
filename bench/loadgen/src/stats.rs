//! Counting what came back: a latency histogram of successful requests (microsecond resolution, three significant
//! digits), counts of non-2xx answers by status and of failed requests by kind, and the first failure seen.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Result, anyhow};
use hdrhistogram::Histogram;

use crate::client::Outcome;

/// Largest latency kept exactly; longer ones are recorded as this (requests time out well before).
const MAX_TRACKED_MICROS: u64 = 600_000_000;

/// Results of a set of requests.
#[derive(Clone)]
pub(crate) struct Recorder {
    latency: Histogram<u64>,
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
            latency: new_histogram()?,
            ok: 0,
            alerts_ok: 0,
            non_2xx: BTreeMap::new(),
            failures: BTreeMap::new(),
            first_problem: None,
        })
    }

    /// Records one request carrying `alerts` alerts that ended with `outcome` after `latency`. Only successful
    /// requests enter the latency histogram.
    pub(crate) fn record(&mut self, outcome: &Outcome, latency: Duration, alerts: u64) {
        match outcome {
            Outcome::Status(_) if outcome.is_success() => {
                self.ok += 1;
                self.alerts_ok += alerts;
                self.latency.saturating_record(micros(latency));
            }
            Outcome::Status(code) => {
                *self.non_2xx.entry(*code).or_default() += 1;
                self.first_problem
                    .get_or_insert_with(|| format!("HTTP {code}"));
            }
            Outcome::Failed(failure) => {
                *self.failures.entry(failure.kind).or_default() += 1;
                self.first_problem
                    .get_or_insert_with(|| format!("{}: {}", failure.kind, failure.detail));
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
        self.latency
            .add(&other.latency)
            .map_err(|e| anyhow!("cannot merge latency histograms: {e:?}"))?;
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

    /// Latency at quantile `q` (0..=1) of successful requests, or `None` when there were none.
    pub(crate) fn quantile(&self, q: f64) -> Option<Duration> {
        (self.ok > 0).then(|| Duration::from_micros(self.latency.value_at_quantile(q)))
    }

    pub(crate) fn max(&self) -> Option<Duration> {
        (self.ok > 0).then(|| Duration::from_micros(self.latency.max()))
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

/// A histogram of durations in microseconds.
pub(crate) fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 3)
        .map_err(|e| anyhow!("cannot create histogram: {e:?}"))
}

/// A duration as whole microseconds, at least 1 (the histogram's lowest value).
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Milliseconds with microsecond precision, or `nan` when there is no value.
pub(crate) fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "nan".to_owned(),
        |d| format!("{:.3}", d.as_secs_f64() * 1000.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Failure;

    #[test]
    fn percentiles_come_from_successful_requests_only() {
        let mut r = Recorder::new().unwrap();
        for ms in 1..=100 {
            r.record(&Outcome::Status(200), Duration::from_millis(ms), 10);
        }
        r.record(&Outcome::Status(503), Duration::from_secs(50), 10);
        r.record(
            &Outcome::Failed(Failure {
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
        let p50 = r.quantile(0.5).unwrap().as_secs_f64();
        let p99 = r.quantile(0.99).unwrap().as_secs_f64();
        assert!((0.0495..=0.0505).contains(&p50), "p50 {p50}");
        assert!((0.0985..=0.0995).contains(&p99), "p99 {p99}");
        assert!(r.problems().contains("503: 1"));
        assert!(r.problems().contains("first problem         HTTP 503"));
    }

    #[test]
    fn merging_adds_everything_up() {
        let mut a = Recorder::new().unwrap();
        let mut b = Recorder::new().unwrap();
        a.record(&Outcome::Status(200), Duration::from_millis(1), 5);
        b.record(&Outcome::Status(202), Duration::from_millis(9), 5);
        b.record_skipped();
        a.merge(&b).unwrap();
        assert_eq!((a.ok, a.alerts_ok, a.failed()), (2, 10, 1));
        let max = a.max().unwrap().as_secs_f64();
        assert!((0.009..0.00901).contains(&max), "max {max}");
        assert_eq!(ms(Recorder::new().unwrap().quantile(0.5)), "nan");
    }
}
