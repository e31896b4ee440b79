//! The alerts posted: alert number `seq` carries the labels `seq` and `bench_run` (unique to this process), so every
//! alert is a distinct label set, forms its own group under `group_by: ['...']`, and can be told apart when its
//! notification arrives. The other labels and annotations look like real rule output (about 400 bytes of JSON).
//! Each alert also has its own `(alertname, instance)` pair, so `group_by: [alertname, instance]` puts every alert in
//! its own group too. `startsAt` is when the run began, the same on every post of an alert, as Prometheus keeps it
//! while an alert fires.
//!
//! The `sustained` workload posts mixed batches instead ([`AlertFactory::mixed`]): alerts that keep firing, re-sent
//! with a fresh `endsAt` a few minutes ahead, and alerts that stop, sent once with `endsAt` now so they resolve; an
//! alert that joined during the run has its own `startsAt` (see [`Joins`]).
//!
//! The `waves` workload resolves the alerts it posted by posting them again with `endsAt` now
//! ([`AlertFactory::resolved`]).

use std::borrow::Cow;
use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use bytes::Bytes;
use herald_bench_common::alerts::{PostableAlert, body};
use serde::Serialize;

/// `endsAt` this far ahead: no alert resolves during a run (which would send a second notification).
const ENDS_IN: Duration = Duration::from_secs(3600);

/// Alert names with their job, severity and team, cycled through by `seq`.
const RULES: [(&str, &str, &str, &str); 6] = [
    ("HighLatency", "api", "warning", "platform"),
    ("InstanceDown", "node", "critical", "infra"),
    ("HostOutOfMemory", "node", "warning", "infra"),
    ("PostgresReplicationLag", "postgres", "critical", "data"),
    ("KubePodCrashLooping", "kubelet", "warning", "apps"),
    ("QueueBacklogGrowing", "worker", "warning", "apps"),
];

/// Alerts numbered from `first` on joined during the run, `per_second` of them a second from `at` on: alert
/// `first + k` started at `at + k / per_second`, which is its `startsAt` on every post.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Joins {
    pub(crate) first: u64,
    pub(crate) at: SystemTime,
    pub(crate) per_second: f64,
}

impl Joins {
    /// When alert `seq` started, if it joined during the run.
    fn starts_at(&self, seq: u64) -> Option<SystemTime> {
        let k = seq.checked_sub(self.first)?;
        let offset = Duration::try_from_secs_f64(k as f64 / self.per_second).ok()?;
        Some(self.at + offset)
    }
}

/// One mixed batch: the alerts that fire (posted with `endsAt` `ends_in` from now) and those that stop (posted with
/// `endsAt` now, so they resolve).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mixed {
    /// Alerts joining with this batch.
    pub(crate) new: Range<u64>,
    /// Alerts of the population re-sent.
    pub(crate) resend: Vec<u64>,
    /// Alerts leaving: sent once, resolved.
    pub(crate) resolve: Vec<u64>,
}

impl Mixed {
    pub(crate) fn len(&self) -> u64 {
        (self.new.end - self.new.start) + self.resend.len() as u64 + self.resolve.len() as u64
    }

    /// Every alert of the batch, firing or not.
    pub(crate) fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.new
            .clone()
            .chain(self.resend.iter().copied())
            .chain(self.resolve.iter().copied())
    }
}

#[derive(Clone)]
pub(crate) struct AlertFactory {
    run: String,
    /// `startsAt` of every alert (RFC 3339).
    starts_at: String,
}

impl AlertFactory {
    pub(crate) fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            run: format!("{:x}", nanos & 0xffff_ffff_ffff),
            starts_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        }
    }

    /// The value of the `bench_run` label of this process's alerts.
    pub(crate) fn run_id(&self) -> &str {
        &self.run
    }

    /// The v2 API body (a JSON array) with alerts `first .. first + len`.
    pub(crate) fn batch(&self, first: u64, len: u64) -> Result<Bytes> {
        let ends_at = humantime::format_rfc3339_seconds(SystemTime::now() + ENDS_IN).to_string();
        let alerts: Vec<Alert<'_>> = (first..first + len)
            .map(|seq| self.alert(seq, Cow::Borrowed(&self.starts_at), &ends_at))
            .collect();
        body(&alerts)
    }

    /// The v2 API body with alerts `first .. first + len` as [`Self::batch`] posts them (the same labels and
    /// `startsAt`), but `endsAt` now, so they resolve.
    pub(crate) fn resolved(&self, first: u64, len: u64) -> Result<Bytes> {
        let ends_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let alerts: Vec<Alert<'_>> = (first..first + len)
            .map(|seq| self.alert(seq, Cow::Borrowed(&self.starts_at), &ends_at))
            .collect();
        body(&alerts)
    }

    /// The v2 API body of `batch`: firing alerts end `ends_in` from now, leaving ones now; alerts that joined
    /// during the run (`joins`) start when they joined, the others when the run began.
    pub(crate) fn mixed(&self, batch: &Mixed, joins: &Joins, ends_in: Duration) -> Result<Bytes> {
        let now = SystemTime::now();
        let ends_later = humantime::format_rfc3339_millis(now + ends_in).to_string();
        let ends_now = humantime::format_rfc3339_millis(now).to_string();
        let starts = |seq: u64| match joins.starts_at(seq) {
            Some(at) => Cow::Owned(humantime::format_rfc3339_millis(at).to_string()),
            None => Cow::Borrowed(self.starts_at.as_str()),
        };
        let firing = batch.new.clone().chain(batch.resend.iter().copied());
        let alerts: Vec<Alert<'_>> = firing
            .map(|seq| self.alert(seq, starts(seq), &ends_later))
            .chain(
                batch
                    .resolve
                    .iter()
                    .map(|&seq| self.alert(seq, starts(seq), &ends_now)),
            )
            .collect();
        body(&alerts)
    }

    fn alert<'a>(&'a self, seq: u64, starts_at: Cow<'a, str>, ends_at: &'a str) -> Alert<'a> {
        let (alertname, job, severity, team) = RULES[(seq % RULES.len() as u64) as usize];
        let instance = format!("host-{}:9100", seq / RULES.len() as u64);
        PostableAlert {
            annotations: Annotations {
                summary: format!("{alertname} on {instance}"),
                description: format!(
                    "{alertname} has been firing on {instance} of job {job} for more than 5 minutes."
                ),
            },
            labels: Labels {
                alertname,
                bench_run: &self.run,
                instance,
                job,
                seq: seq.to_string(),
                severity,
                team,
            },
            starts_at,
            ends_at,
            generator_url: Cow::Borrowed("http://prometheus:9090/graph?g0.expr=up&g0.tab=1"),
        }
    }
}

type Alert<'a> = PostableAlert<'a, Labels<'a>, Annotations>;

#[derive(Serialize)]
struct Labels<'a> {
    alertname: &'static str,
    bench_run: &'a str,
    instance: String,
    job: &'static str,
    seq: String,
    severity: &'static str,
    team: &'static str,
}

#[derive(Serialize)]
struct Annotations {
    summary: String,
    description: String,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::Value;

    use super::*;

    #[test]
    fn batches_carry_distinct_numbered_alerts() {
        let factory = AlertFactory::new();
        let body = factory.batch(10, 100).unwrap();
        let alerts: Vec<Value> = serde_json::from_slice(&body).unwrap();
        assert_eq!(alerts.len(), 100);
        assert_eq!(alerts[0]["labels"]["seq"], "10");
        assert_eq!(alerts[0]["labels"]["bench_run"], factory.run_id());
        let distinct: HashSet<String> = alerts.iter().map(|a| a["labels"].to_string()).collect();
        assert_eq!(distinct.len(), 100);
        let groups: HashSet<String> = alerts
            .iter()
            .map(|a| format!("{}/{}", a["labels"]["alertname"], a["labels"]["instance"]))
            .collect();
        assert_eq!(
            groups.len(),
            100,
            "alertname and instance tell every alert apart"
        );
        let again: Vec<Value> = serde_json::from_slice(&factory.batch(10, 1).unwrap()).unwrap();
        assert_eq!(again[0]["startsAt"], alerts[0]["startsAt"]);
        for key in ["startsAt", "endsAt", "generatorURL"] {
            assert!(alerts[0][key].is_string(), "{key} missing");
        }
    }

    #[test]
    fn resolved_batches_end_now_with_the_same_labels() {
        let factory = AlertFactory::new();
        let firing: Vec<Value> = serde_json::from_slice(&factory.batch(7, 3).unwrap()).unwrap();
        let resolved: Vec<Value> =
            serde_json::from_slice(&factory.resolved(7, 3).unwrap()).unwrap();
        assert_eq!(resolved.len(), 3);
        let now = SystemTime::now();
        for (firing, resolved) in firing.iter().zip(&resolved) {
            assert_eq!(firing["labels"], resolved["labels"]);
            assert_eq!(firing["startsAt"], resolved["startsAt"]);
            assert!(parse_time(&resolved["endsAt"]) <= now, "ends now");
            assert!(parse_time(&firing["endsAt"]) > now, "fires on");
        }
    }

    fn parse_time(value: &Value) -> SystemTime {
        humantime::parse_rfc3339(value.as_str().unwrap()).unwrap()
    }

    #[test]
    fn mixed_batches_fire_and_resolve() {
        let factory = AlertFactory::new();
        let at = SystemTime::now();
        let joins = Joins {
            first: 1000,
            at,
            per_second: 10.0,
        };
        let batch = Mixed {
            new: 1005..1007,
            resend: vec![3, 1001],
            resolve: vec![4],
        };
        assert_eq!(batch.len(), 5);
        assert_eq!(
            batch.seqs().collect::<Vec<_>>(),
            vec![1005, 1006, 3, 1001, 4]
        );
        let body = factory
            .mixed(&batch, &joins, Duration::from_secs(600))
            .unwrap();
        let alerts: Vec<Value> = serde_json::from_slice(&body).unwrap();
        let seqs: Vec<&str> = alerts
            .iter()
            .map(|a| a["labels"]["seq"].as_str().unwrap())
            .collect();
        assert_eq!(seqs, vec!["1005", "1006", "3", "1001", "4"]);
        let now = SystemTime::now();
        for firing in &alerts[..4] {
            let ends = parse_time(&firing["endsAt"]);
            assert!(ends > now + Duration::from_secs(590), "firing ends later");
        }
        assert!(parse_time(&alerts[4]["endsAt"]) <= now, "leaving ends now");
        let old: Vec<Value> = serde_json::from_slice(&factory.batch(3, 1).unwrap()).unwrap();
        assert_eq!(
            alerts[2]["startsAt"], old[0]["startsAt"],
            "an old alert keeps its start"
        );
        assert_eq!(alerts[4]["startsAt"], old[0]["startsAt"]);
        let joined = parse_time(&alerts[0]["startsAt"]);
        let expected = at + Duration::from_millis(500);
        let off = joined
            .duration_since(expected)
            .unwrap_or_else(|e| e.duration());
        assert!(
            off < Duration::from_millis(2),
            "alert 1005 started 0.5 s after the joins began"
        );
        let again = factory
            .mixed(
                &Mixed {
                    resend: vec![1005],
                    ..Mixed::default()
                },
                &joins,
                Duration::from_secs(600),
            )
            .unwrap();
        let again: Vec<Value> = serde_json::from_slice(&again).unwrap();
        assert_eq!(
            again[0]["startsAt"], alerts[0]["startsAt"],
            "the same start on every post"
        );
    }
}
