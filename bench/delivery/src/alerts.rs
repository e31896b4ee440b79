//! The alerts posted: alert number `seq` carries the labels `seq` and `bench_run` (unique to this process), so every
//! alert is a distinct label set, forms its own group under `group_by: ['...']`, and can be told apart when its
//! notification arrives. The other labels and annotations look like real rule output (about 400 bytes of JSON).
//! Each alert also has its own `(alertname, instance)` pair, so `group_by: [alertname, instance]` puts every alert in
//! its own group too. `startsAt` is when the run began, the same on every post of an alert, as Prometheus keeps it
//! while an alert fires.

use std::borrow::Cow;
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
            .map(|seq| self.alert(seq, &self.starts_at, &ends_at))
            .collect();
        body(&alerts)
    }

    fn alert<'a>(&'a self, seq: u64, starts_at: &'a str, ends_at: &'a str) -> Alert<'a> {
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
            starts_at: Cow::Borrowed(starts_at),
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
}
