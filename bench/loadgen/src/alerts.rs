//! The synthetic alert population: alert number `i` always has the same label set (so re-sending it is an upsert of
//! the same fingerprint, as when Prometheus re-sends firing alerts) and different numbers never share one. Labels and
//! annotations look like what real alerting rules produce.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use anyhow::{Result, ensure};
use bytes::Bytes;
use herald_bench_common::alerts::{PostableAlert, body};
use serde::Serialize;

/// One alerting rule: the alert name and the labels and texts that come with it.
struct Rule {
    alertname: &'static str,
    severity: &'static str,
    job: &'static str,
    port: u16,
    team: &'static str,
    summary: &'static str,
    description: &'static str,
    expr: &'static str,
}

#[rustfmt::skip]
const RULES: [Rule; 12] = [
    Rule { alertname: "HighLatency", severity: "warning", job: "api", port: 8080, team: "platform",
        summary: "High request latency on {instance}",
        description: "99th percentile latency of {instance} has been above 500ms for the last 10 minutes.",
        expr: "histogram_quantile(0.99,rate(http_request_duration_seconds_bucket[5m]))>0.5" },
    Rule { alertname: "HighErrorRate", severity: "critical", job: "api", port: 8080, team: "platform",
        summary: "High 5xx error rate on {instance}",
        description: "Over 5% of the requests served by {instance} failed with a 5xx status in the last 5 minutes.",
        expr: "rate(http_requests_total{code=~\"5..\"}[5m])/rate(http_requests_total[5m])>0.05" },
    Rule { alertname: "InstanceDown", severity: "critical", job: "node", port: 9100, team: "infra",
        summary: "Instance {instance} is down",
        description: "{instance} of job node has not answered Prometheus scrapes for more than 5 minutes.",
        expr: "up{job=\"node\"}==0" },
    Rule { alertname: "HostHighCpuLoad", severity: "warning", job: "node", port: 9100, team: "infra",
        summary: "CPU load is high on {instance}",
        description: "CPU utilisation of {instance} has stayed above 90% for 15 minutes; check the busiest processes.",
        expr: "1-avg by(instance)(rate(node_cpu_seconds_total{mode=\"idle\"}[5m]))>0.9" },
    Rule { alertname: "HostOutOfMemory", severity: "warning", job: "node", port: 9100, team: "infra",
        summary: "Host {instance} is running out of memory",
        description: "Less than 10% of the memory of {instance} is available; processes may soon be OOM-killed.",
        expr: "node_memory_MemAvailable_bytes/node_memory_MemTotal_bytes<0.1" },
    Rule { alertname: "HostDiskWillFillIn24Hours", severity: "warning", job: "node", port: 9100, team: "infra",
        summary: "Disk on {instance} will fill within 24 hours",
        description: "At the current write rate, the root filesystem of {instance} runs out of space within 24 hours.",
        expr: "predict_linear(node_filesystem_avail_bytes{mountpoint=\"/\"}[6h],86400)<0" },
    Rule { alertname: "PostgresReplicationLag", severity: "critical", job: "postgres", port: 9187, team: "data",
        summary: "Replication lag on {instance} is over 30s",
        description: "The replica {instance} is more than 30 seconds behind its primary; reads from it are stale.",
        expr: "pg_replication_lag_seconds>30" },
    Rule { alertname: "PostgresTooManyConnections", severity: "warning", job: "postgres", port: 9187, team: "data",
        summary: "Postgres on {instance} is near its connection limit",
        description: "More than 80% of max_connections are in use on {instance}; new clients may be refused soon.",
        expr: "sum by(instance)(pg_stat_activity_count)/pg_settings_max_connections>0.8" },
    Rule { alertname: "RedisMemoryHigh", severity: "warning", job: "redis", port: 9121, team: "data",
        summary: "Redis on {instance} uses over 90% of maxmemory",
        description: "Redis on {instance} is close to maxmemory and will start evicting keys under its policy.",
        expr: "redis_memory_used_bytes/redis_memory_max_bytes>0.9" },
    Rule { alertname: "KubePodCrashLooping", severity: "warning", job: "kubelet", port: 10250, team: "apps",
        summary: "A pod on {instance} is crash looping",
        description: "A container scheduled on {instance} restarted more than 3 times in the last 15 minutes.",
        expr: "increase(kube_pod_container_status_restarts_total[15m])>3" },
    Rule { alertname: "CertificateExpiresSoon", severity: "info", job: "blackbox", port: 9115, team: "security",
        summary: "TLS certificate served by {instance} expires soon",
        description: "The certificate presented by {instance} expires in less than 14 days; renew it before then.",
        expr: "probe_ssl_earliest_cert_expiry-time()<86400*14" },
    Rule { alertname: "QueueBacklogGrowing", severity: "warning", job: "worker", port: 9400, team: "apps",
        summary: "Job queue backlog is growing on {instance}",
        description: "The queue consumed by {instance} has grown for 30 minutes; its workers cannot keep up.",
        expr: "deriv(queue_depth[30m])>0" },
];

/// Host pools, clusters and regions instances are spread over.
const POOLS: [&str; 6] = ["web", "api", "db", "cache", "worker", "edge"];
const CLUSTERS: [(&str, &str); 4] = [
    ("prod-eu-1", "eu-west-1"),
    ("prod-eu-2", "eu-central-1"),
    ("prod-us-1", "us-east-1"),
    ("prod-ap-1", "ap-south-1"),
];

/// How far back the oldest alert started; start times are spread over this window.
const START_SPREAD_SECS: u64 = 6 * 3600;

/// A bounded set of `distinct` alerts whose batches can be rendered as v2 API request bodies.
pub(crate) struct Population {
    distinct: u64,
    /// Reference time start times are counted back from.
    epoch: SystemTime,
    /// `endsAt` is the send time plus this, as Prometheus sets it to a few evaluation intervals ahead.
    ends_in: Duration,
}

impl Population {
    pub(crate) fn new(distinct: u64, ends_in: Duration) -> Result<Self> {
        ensure!(distinct > 0, "the alert population must not be empty");
        Ok(Self {
            distinct,
            epoch: SystemTime::now(),
            ends_in,
        })
    }

    pub(crate) fn distinct(&self) -> u64 {
        self.distinct
    }

    /// The JSON array of `len` consecutive alerts starting at `first` (wrapping around the population), so a
    /// batch never holds the same alert twice while `len <= distinct`.
    pub(crate) fn batch(&self, first: u64, len: u64) -> Result<Bytes> {
        let ends_at =
            humantime::format_rfc3339_seconds(SystemTime::now() + self.ends_in).to_string();
        let alerts: Vec<Alert<'_>> = (0..len)
            .map(|k| self.alert((first + k) % self.distinct, &ends_at))
            .collect();
        body(&alerts)
    }

    fn alert<'a>(&self, index: u64, ends_at: &'a str) -> Alert<'a> {
        let rule_count = RULES.len() as u64;
        let rule = &RULES[(index % rule_count) as usize];
        let host = index / rule_count;
        let pool = POOLS[(host % POOLS.len() as u64) as usize];
        let (cluster, region) = CLUSTERS[((host / 7) % CLUSTERS.len() as u64) as usize];
        let instance = format!("{pool}-{host}:{}", rule.port);
        let started =
            self.epoch - Duration::from_secs(index.wrapping_mul(7919) % START_SPREAD_SECS);
        PostableAlert {
            labels: Labels {
                alertname: rule.alertname,
                cluster,
                instance: instance.clone(),
                job: rule.job,
                region,
                severity: rule.severity,
                team: rule.team,
            },
            annotations: Annotations {
                summary: rule.summary.replace("{instance}", &instance),
                description: rule.description.replace("{instance}", &instance),
                runbook_url: format!("https://runbooks.example.com/{}", rule.alertname),
            },
            starts_at: Cow::Owned(humantime::format_rfc3339_seconds(started).to_string()),
            ends_at,
            generator_url: Cow::Owned(format!(
                "http://prometheus:9090/graph?g0.expr={}&g0.tab=1",
                query_escape(rule.expr)
            )),
        }
    }
}

/// Escapes a query-string value the way Prometheus does for `generatorURL` (Go's `url.QueryEscape`).
fn query_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() * 3 / 2);
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                escaped.push(char::from(byte))
            }
            b' ' => escaped.push('+'),
            _ => {
                let _ = write!(escaped, "%{byte:02X}");
            }
        }
    }
    escaped
}

/// One alert as the v2 API takes it.
type Alert<'a> = PostableAlert<'a, Labels, Annotations>;

#[derive(Serialize)]
struct Labels {
    alertname: &'static str,
    cluster: &'static str,
    instance: String,
    job: &'static str,
    region: &'static str,
    severity: &'static str,
    team: &'static str,
}

#[derive(Serialize)]
struct Annotations {
    summary: String,
    description: String,
    runbook_url: String,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::Value;

    use super::*;

    fn parse(body: &Bytes) -> Vec<Value> {
        serde_json::from_slice::<Vec<Value>>(body).unwrap()
    }

    #[test]
    fn batches_are_v2_alert_arrays() {
        let population = Population::new(1000, Duration::from_secs(300)).unwrap();
        let alerts = parse(&population.batch(0, 3).unwrap());
        assert_eq!(alerts.len(), 3);
        let first = &alerts[0];
        assert_eq!(first["labels"]["alertname"], "HighLatency");
        assert_eq!(first["labels"]["instance"], "web-0:8080");
        assert!(
            first["annotations"]["summary"]
                .as_str()
                .unwrap()
                .contains("web-0:8080")
        );
        for key in ["startsAt", "endsAt", "generatorURL"] {
            assert!(first[key].is_string(), "{key} missing");
        }
        let ends_at = humantime::parse_rfc3339(first["endsAt"].as_str().unwrap()).unwrap();
        assert!(ends_at > SystemTime::now());
    }

    #[test]
    fn alerts_are_distinct_and_stable() {
        let population = Population::new(50_000, Duration::from_secs(300)).unwrap();
        let labels: Vec<String> = parse(&population.batch(0, 50_000).unwrap())
            .iter()
            .map(|a| a["labels"].to_string())
            .collect();
        assert_eq!(labels.iter().collect::<HashSet<_>>().len(), 50_000);
        let again = parse(&population.batch(49_999, 2).unwrap());
        assert_eq!(again[0]["labels"].to_string(), labels[49_999]);
        assert_eq!(
            again[1]["labels"].to_string(),
            labels[0],
            "batches wrap around the population"
        );
        assert_eq!(
            again[1]["startsAt"],
            parse(&population.batch(0, 1).unwrap())[0]["startsAt"]
        );
    }

    #[test]
    fn generator_urls_are_escaped_like_prometheus() {
        assert_eq!(
            query_escape(r#"up{job="node"} == 0"#),
            "up%7Bjob%3D%22node%22%7D+%3D%3D+0"
        );
    }

    #[test]
    fn annotations_are_about_a_hundred_bytes() {
        let population = Population::new(RULES.len() as u64, Duration::from_secs(300)).unwrap();
        for alert in parse(&population.batch(0, RULES.len() as u64).unwrap()) {
            let description = alert["annotations"]["description"].as_str().unwrap().len();
            assert!(
                (70..=130).contains(&description),
                "description of {} bytes",
                description
            );
        }
    }
}
