//! Routing and grouping benchmark: 100,000 active alerts spread over 10,000 aggregation groups. Reports the process
//! CPU time per alert to route and group them (first arrival and re-send), to flush every group once, and the
//! memory the group state takes. Numbers only; nothing here asserts.

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use herald::alert::{Alert, Fingerprint, Labels, Source};
use herald::dispatch::group::Held;
use herald::dispatch::groups::GroupSet;
use herald::route::tree::RouteNode;

/// A route tree of the size and shape production configs have: matchers with regexes, deprecated maps, nesting.
const CONFIG: &str = r#"
route:
  receiver: default
  group_by: [alertname, cluster, service]
  routes:
    - receiver: databases
      matchers: ['service=~"db-.*|mysql|postgres"']
      routes:
        - receiver: databases-eu
          matchers: ['region="eu"']
    - receiver: frontend
      matchers: ['team="frontend"']
    - receiver: pager
      matchers: ['severity=~"critical|page"', 'env="prod"']
    - receiver: staging
      matchers: ['env=~"staging|dev"']
    - receiver: infra
      match_re: {team: "infra|platform|sre"}
receivers:
  - {name: default}
  - {name: databases}
  - {name: databases-eu}
  - {name: frontend}
  - {name: pager}
  - {name: staging}
  - {name: infra}
"#;

const ALERTNAMES: [&str; 10] = [
    "HighLatency",
    "ErrorRate",
    "InstanceDown",
    "DiskFull",
    "MemoryPressure",
    "CrashLoop",
    "CertExpiry",
    "QueueBacklog",
    "ReplicationLag",
    "ThrottledCPU",
];
const TEAMS: [&str; 4] = ["frontend", "infra", "payments", "search"];
const ENVS: [&str; 3] = ["prod", "staging", "dev"];
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];

/// Alert `n` of 100,000: 10 alertnames x 10 clusters x 100 services = 10,000 groups of 10 instances each.
fn alert(n: usize, start: DateTime<Utc>) -> Alert {
    let (instance, group) = (n % 10, n / 10);
    let (alertname, cluster, service) = (group % 10, (group / 10) % 10, group / 100);
    let service = if service % 7 == 0 {
        format!("db-{service}")
    } else {
        format!("svc-{service}")
    };
    let labels: Labels = [
        ("alertname", ALERTNAMES[alertname].to_string()),
        ("cluster", format!("cluster-{cluster}")),
        ("region", if cluster < 5 { "eu" } else { "us" }.to_string()),
        ("service", service.clone()),
        ("instance", format!("{service}-{instance}:9100")),
        ("team", TEAMS[group % TEAMS.len()].to_string()),
        ("env", ENVS[group % ENVS.len()].to_string()),
        ("severity", SEVERITIES[group % SEVERITIES.len()].to_string()),
        ("job", "node".to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect();
    Alert {
        labels,
        annotations: [
            (
                "summary".to_string(),
                format!("{} on {service}", ALERTNAMES[alertname]),
            ),
            (
                "runbook_url".to_string(),
                format!("https://runbooks.example.com/{}", ALERTNAMES[alertname]),
            ),
        ]
        .into(),
        starts_at: start,
        ends_at: None,
        ends_at_defaulted: false,
        generator_url: "http://prometheus:9090/graph?g0.expr=up".to_string(),
        source: Source::Prometheus,
        extra: Default::default(),
    }
}

/// This process's CPU time (user + system), from /proc/self/stat, in clock ticks of 10 ms.
fn cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the command name: state is field 0, utime field 11, stime field 12.
    Ok(Duration::from_millis((ticks(11) + ticks(12)) * 10))
}

/// Resident memory in KiB, from /proc/self/status.
fn rss_kib() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    Ok(status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0))
}

fn per_alert(spent: Duration, alerts: usize) -> String {
    format!("{:.2} µs", spent.as_secs_f64() * 1e6 / alerts as f64)
}

fn main() -> Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100_000);
    let settings = herald::config::load_str(CONFIG, "bench.yaml")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .settings;
    let routes = RouteNode::build(&settings.route).map_err(|e| anyhow::anyhow!("{e}"))?;
    let start: DateTime<Utc> = "2026-11-21T12:00:00Z".parse()?;
    let alerts: Vec<(Fingerprint, Alert)> = (0..count)
        .map(|n| {
            let alert = alert(n, start);
            (alert.fingerprint(), alert)
        })
        .collect();

    let rss_before = rss_kib()?;
    let mut groups = GroupSet::default();
    let cpu = cpu_time()?;
    for (fingerprint, alert) in &alerts {
        groups.add(&routes, *fingerprint, alert, start);
    }
    let first = cpu_time()? - cpu;
    let rss_after = rss_kib()?;

    // For comparison: what the same alerts take unpacked, as a request brings them.
    let rss_alerts = rss_kib()?;
    let unpacked = alerts.clone();
    let alerts_kib = rss_kib()?.saturating_sub(rss_alerts);
    drop(unpacked);

    let cpu = cpu_time()?;
    for (fingerprint, alert) in &alerts {
        groups.update(*fingerprint, alert);
    }
    let resend = cpu_time()? - cpu;

    let cpu = cpu_time()?;
    let mut matched = 0usize;
    for (_, alert) in &alerts {
        matched += routes.matching(&alert.labels).len();
    }
    let matching = cpu_time()? - cpu;

    let flush_at = start + chrono::Duration::seconds(30);
    let due = groups.due(flush_at, usize::MAX);
    let cpu = cpu_time()?;
    let mut sent = 0usize;
    // One integration per receiver, as most have.
    let integrations = [("webhook/0", true)];
    for id in &due {
        if let Some((flush, _)) = groups.flush(id, &Held::default(), &integrations, flush_at)
            && let (Some(group), Some(entry)) = (groups.get(id), flush.entry)
        {
            sent += flush.alerts.len();
            let (receiver, key) = (group.receiver.clone(), group.key.clone());
            groups.record(&receiver, &key, "webhook/0", None, entry);
        }
    }
    let flush = cpu_time()? - cpu;

    // The next tick: nothing changed, so every group flushes and sends nothing (the cost of an idle group).
    let tick_at = flush_at + chrono::Duration::minutes(5);
    let ticking = groups.due(tick_at, usize::MAX);
    let cpu = cpu_time()?;
    let mut resent_alerts = 0usize;
    for id in &ticking {
        if let Some((flush, _)) = groups.flush(id, &Held::default(), &integrations, tick_at) {
            resent_alerts += flush.alerts.len();
        }
    }
    let tick = cpu_time()? - cpu;

    println!(
        "routing and grouping: {count} alerts, {} groups, {matched} route matches",
        groups.len()
    );
    println!(
        "  route + group, first arrival   {} per alert ({:?} total)",
        per_alert(first, count),
        first
    );
    println!(
        "  route + group, re-send         {} per alert ({:?} total)",
        per_alert(resend, count),
        resend
    );
    println!(
        "  route tree matching alone      {} per alert",
        per_alert(matching, count)
    );
    println!(
        "  first flush of every group     {} per alert ({sent} alerts in {} groups)",
        per_alert(flush, count),
        due.len()
    );
    println!(
        "  idle tick of every group       {} per group ({resent_alerts} alerts sent again in {} groups)",
        per_alert(tick, ticking.len().max(1)),
        ticking.len()
    );
    println!(
        "  the same alerts unpacked       {alerts_kib} KiB ({} bytes per alert)",
        alerts_kib * 1024 / count as u64
    );
    println!(
        "  memory of the group state      {} KiB ({} bytes per alert, the alerts held included)",
        rss_after.saturating_sub(rss_before),
        rss_after.saturating_sub(rss_before) * 1024 / count as u64
    );
    println!(
        "RESULT bench=routing alerts={count} groups={} first_us={:.3} resend_us={:.3} match_us={:.3} flush_us={:.3} \
         tick_us_per_group={:.3} group_state_kib={} alerts_kib={alerts_kib}",
        groups.len(),
        first.as_secs_f64() * 1e6 / count as f64,
        resend.as_secs_f64() * 1e6 / count as f64,
        matching.as_secs_f64() * 1e6 / count as f64,
        flush.as_secs_f64() * 1e6 / count as f64,
        tick.as_secs_f64() * 1e6 / ticking.len().max(1) as f64,
        rss_after.saturating_sub(rss_before),
    );
    Ok(())
}
