//! Where the time went: CPU time of the server under test (herald or Alertmanager; whole process, and per thread
//! name) and of this process from `/proc`, and counters from the server's `/metrics` (herald's or Alertmanager's,
//! whichever are there), each read before and after a measurement; and single gauges of `/metrics` read on demand.

use std::collections::BTreeMap;
use std::time::Instant;

use herald_bench_common::client::Client;
use serde_json::{Value, json};

/// Kernel clock ticks per second in `/proc/*/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// Counters read from the server's metrics (summed over their labels): herald's, then Alertmanager's.
const COUNTERS: [&str; 8] = [
    "herald_store_commits_total",
    "herald_store_writes_total",
    "herald_delivery_attempts_total",
    "herald_notifications_total",
    "herald_alerts_received_total",
    "alertmanager_alerts_received_total",
    "alertmanager_notifications_total",
    "alertmanager_notifications_failed_total",
];

/// Sum and count of this histogram give the mean time of one send (the webhook POST alone).
const SEND_HISTOGRAM: &str = "herald_delivery_latency_seconds";

#[derive(Clone, Copy)]
pub(crate) struct Probe {
    pid: Option<u32>,
}

/// One reading.
pub(crate) struct Sample {
    at: Instant,
    /// The server's user + system ticks (all threads, dead ones included).
    server: Option<u64>,
    /// The server's live threads: ticks by thread name.
    threads: BTreeMap<String, u64>,
    /// This process's ticks.
    own: Option<u64>,
    /// Busy ticks of the whole machine (all CPUs), to tell what other processes took.
    machine: Option<u64>,
    /// The server's counters by name.
    counters: BTreeMap<String, f64>,
}

impl Probe {
    pub(crate) fn new(pid: Option<u32>) -> Self {
        Self { pid }
    }

    /// The server's process id, when given.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// herald's outbox by delivery state (`herald_deliveries{state=...}`), or `None` when it cannot be read.
    pub(crate) async fn outbox(&self, client: &Client) -> Option<Outbox> {
        match client.get_metrics().await {
            Ok((200, body)) => Some(parse_outbox(&String::from_utf8_lossy(&body))),
            _ => None,
        }
    }

    /// The value of gauge `name` (a series without labels) in the server's `/metrics`, or `None` when it cannot be
    /// read or the server has no such gauge.
    pub(crate) async fn gauge(&self, client: &Client, name: &str) -> Option<f64> {
        match client.get_metrics().await {
            Ok((200, body)) => parse_gauge(&String::from_utf8_lossy(&body), name),
            _ => None,
        }
    }

    /// The server's `/metrics` text, or `None` when it cannot be read.
    pub(crate) async fn metrics(&self, client: &Client) -> Option<String> {
        match client.get_metrics().await {
            Ok((200, body)) => Some(String::from_utf8_lossy(&body).into_owned()),
            _ => None,
        }
    }

    pub(crate) async fn sample(&self, client: &Client) -> Sample {
        let counters = match client.get_metrics().await {
            Ok((200, body)) => parse_counters(&String::from_utf8_lossy(&body)),
            _ => BTreeMap::new(),
        };
        let (server, threads) = match self.pid {
            Some(pid) => (
                process_ticks(&format!("/proc/{pid}/stat")),
                thread_ticks(pid),
            ),
            None => (None, BTreeMap::new()),
        };
        Sample {
            at: Instant::now(),
            server,
            threads,
            own: process_ticks("/proc/self/stat"),
            machine: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|text| machine_busy(&text)),
            counters,
        }
    }
}

/// What happened between two samples, as JSON: CPU seconds and utilisation (1.0 = one core busy) of the server,
/// this process, the whole machine and the rest of it (`others`), and counter deltas.
pub(crate) fn between(before: &Sample, after: &Sample) -> Value {
    let wall = after.at.duration_since(before.at).as_secs_f64();
    let cpu = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => {
            let secs = b.saturating_sub(a) as f64 / TICKS_PER_SEC;
            json!({"cpu_s": round3(secs), "cores": round3(secs / wall.max(1e-9))})
        }
        _ => Value::Null,
    };
    // What neither the server nor this process used: other processes, and kernel work not charged to either.
    let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
    let others = match (
        delta(before.machine, after.machine),
        delta(before.server, after.server),
        delta(before.own, after.own),
    ) {
        (Some(machine), Some(server), Some(own)) => {
            let secs = machine.saturating_sub(server + own) as f64 / TICKS_PER_SEC;
            json!({"cpu_s": round3(secs), "cores": round3(secs / wall.max(1e-9))})
        }
        _ => Value::Null,
    };
    let mut threads = serde_json::Map::new();
    for (name, ticks) in &after.threads {
        let start = before.threads.get(name).copied().unwrap_or(0);
        let secs = ticks.saturating_sub(start) as f64 / TICKS_PER_SEC;
        if secs > 0.0 {
            threads.insert(name.clone(), json!(round3(secs)));
        }
    }
    let mut counters = serde_json::Map::new();
    for (name, value) in &after.counters {
        let start = before.counters.get(name).copied().unwrap_or(0.0);
        counters.insert(name.clone(), json!(value - start));
    }
    let sends = counters
        .get(&format!("{SEND_HISTOGRAM}_count"))
        .and_then(Value::as_f64);
    let send_secs = counters
        .get(&format!("{SEND_HISTOGRAM}_sum"))
        .and_then(Value::as_f64);
    let mean_send_ms = match (sends, send_secs) {
        (Some(n), Some(s)) if n > 0.0 => json!(round3(s / n * 1000.0)),
        _ => Value::Null,
    };
    json!({
        "wall_s": round3(wall),
        "server": cpu(before.server, after.server),
        "server_threads_cpu_s": threads,
        "bench": cpu(before.own, after.own),
        "machine": cpu(before.machine, after.machine),
        "others": others,
        "counters": counters,
        "herald_mean_send_ms": mean_send_ms,
    })
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Deliveries stored by state, from herald's `herald_deliveries` gauge.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Outbox {
    pub(crate) pending: f64,
    pub(crate) in_flight: f64,
    pub(crate) delivered: f64,
    pub(crate) dead: f64,
}

impl Outbox {
    /// Every delivery the dispatcher has queued so far.
    pub(crate) fn queued(&self) -> f64 {
        self.pending + self.in_flight + self.delivered + self.dead
    }
}

pub(crate) fn parse_outbox(text: &str) -> Outbox {
    let mut outbox = Outbox::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("herald_deliveries{state=\"") else {
            continue;
        };
        let Some((state, value)) = rest.split_once("\"} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        match state {
            "pending" => outbox.pending = value,
            "in_flight" => outbox.in_flight = value,
            "delivered" => outbox.delivered = value,
            "dead" => outbox.dead = value,
            _ => {}
        }
    }
    outbox
}

/// The value of the series `name` (no labels, or with its labels written out as the server writes them, e.g.
/// `herald_alerts{state="firing"}`), from Prometheus text.
pub(crate) fn parse_gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Busy ticks of all CPUs from `/proc/stat`'s `cpu` line: user, nice, system, irq, softirq and steal (not idle or
/// iowait).
fn machine_busy(text: &str) -> Option<u64> {
    let fields: Vec<u64> = text
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// utime + stime of a `/proc/.../stat` file.
fn process_ticks(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_stat(&text).map(|(_, ticks)| ticks)
}

/// (comm, utime + stime) of a stat line; comm may hold spaces and parentheses, so fields count from the last ')'.
fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Ticks of the server's live threads, summed by thread name (tokio's workers and blocking threads share one).
fn thread_ticks(pid: u32) -> BTreeMap<String, u64> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((comm, ticks)) = parse_stat(&text) {
            *by_name.entry(comm).or_default() += ticks;
        }
    }
    by_name
}

/// Sums the samples of each counter of interest over their labels (and the send histogram's sum and count).
fn parse_counters(text: &str) -> BTreeMap<String, f64> {
    let mut counters = BTreeMap::new();
    let wanted = |name: &str| {
        COUNTERS.contains(&name)
            || name == format!("{SEND_HISTOGRAM}_sum")
            || name == format!("{SEND_HISTOGRAM}_count")
    };
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if !wanted(name) {
            continue;
        }
        if let Ok(value) = value.parse::<f64>() {
            *counters.entry(name.to_owned()).or_default() += value;
        }
    }
    counters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stat_lines_with_odd_names() {
        let line =
            "42 (tokio-runtime-w) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 8 0 1 0 0";
        assert_eq!(parse_stat(line), Some(("tokio-runtime-w".into(), 280)));
        let odd = "7 (a) b) R 1 1 1 0 -1 0 0 0 0 0 5 6 0 0";
        assert_eq!(parse_stat(odd), Some(("a) b".into(), 11)));
    }

    #[test]
    fn reads_the_outbox_gauge() {
        let text = "# TYPE herald_deliveries gauge\nherald_deliveries{state=\"pending\"} 7\n\
            herald_deliveries{state=\"in_flight\"} 2\nherald_deliveries{state=\"delivered\"} 90\n\
            herald_deliveries{state=\"dead\"} 1\nherald_deliveries_total 5\n";
        let outbox = parse_outbox(text);
        assert_eq!(outbox.pending, 7.0);
        assert_eq!(outbox.queued(), 100.0);
    }

    #[test]
    fn reads_the_machine_busy_time() {
        let text = "cpu  100 5 50 1000 7 3 2 1 0 0\ncpu0 50 2 25 500 3 1 1 0 0 0\n";
        assert_eq!(machine_busy(text), Some(161));
        assert_eq!(machine_busy("intr 1 2 3\n"), None);
    }

    #[test]
    fn reads_a_gauge() {
        let text = "# HELP herald_delivery_oldest_open_seconds x\n\
            herald_delivery_oldest_open_seconds_total 9\nherald_delivery_oldest_open_seconds 2.5\n";
        assert_eq!(
            parse_gauge(text, "herald_delivery_oldest_open_seconds"),
            Some(2.5)
        );
        assert_eq!(parse_gauge(text, "go_goroutines"), None);
    }

    #[test]
    fn sums_counters_over_labels() {
        let text = "# TYPE herald_store_commits_total counter\nherald_store_commits_total 12\n\
            herald_delivery_attempts_total{integration=\"webhook\",outcome=\"delivered\"} 5\n\
            herald_delivery_attempts_total{integration=\"webhook\",outcome=\"retryable\"} 2\n\
            herald_delivery_latency_seconds_sum{integration=\"webhook\"} 0.5\n\
            herald_http_requests_total 99\n";
        let counters = parse_counters(text);
        assert_eq!(counters["herald_store_commits_total"], 12.0);
        assert_eq!(counters["herald_delivery_attempts_total"], 7.0);
        assert_eq!(counters["herald_delivery_latency_seconds_sum"], 0.5);
        assert!(!counters.contains_key("herald_http_requests_total"));
    }
}
