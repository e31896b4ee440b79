//! Memory of the server under test, from `/proc/PID/status`: its resident set (`VmRSS`) read on demand and sampled
//! on a timer for the peak seen during a run, and the kernel's own peak (`VmHWM`, the high-water mark since the
//! process started, which catches spikes between samples). Sizes are in KiB, as the kernel reports them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// How often the sampler reads `VmRSS`.
const EVERY: Duration = Duration::from_millis(100);

pub(crate) struct Memory {
    pid: Option<u32>,
    /// Largest `VmRSS` sampled so far (0: none yet).
    peak: Arc<AtomicU64>,
    sampler: Option<JoinHandle<()>>,
}

impl Memory {
    /// Starts sampling process `pid` (nothing without one) until dropped.
    pub(crate) fn start(pid: Option<u32>) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = pid.map(|pid| {
            let peak = Arc::clone(&peak);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(EVERY);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    ticks.tick().await;
                    match read(pid, "VmRSS:") {
                        Some(rss) => {
                            peak.fetch_max(rss, Ordering::Relaxed);
                        }
                        None => return, // the process is gone
                    }
                }
            })
        });
        Self { pid, peak, sampler }
    }

    /// `VmRSS` now (and counted towards the sampled peak).
    pub(crate) fn rss_kib(&self) -> Option<u64> {
        let rss = read(self.pid?, "VmRSS:")?;
        self.peak.fetch_max(rss, Ordering::Relaxed);
        Some(rss)
    }

    /// The largest `VmRSS` sampled so far.
    pub(crate) fn peak_kib(&self) -> Option<u64> {
        let peak = self.peak.load(Ordering::Relaxed);
        (peak > 0).then_some(peak)
    }

    /// `VmHWM`: the peak resident set since the process started.
    pub(crate) fn hwm_kib(&self) -> Option<u64> {
        read(self.pid?, "VmHWM:")
    }

    /// Now, the sampled peak and the kernel's peak, as JSON (null when unknown).
    pub(crate) fn json(&self) -> Value {
        json!({
            "rss_kib": self.rss_kib(),
            "peak_rss_kib": self.peak_kib(),
            "hwm_kib": self.hwm_kib(),
        })
    }

    /// The same on one human-readable line.
    pub(crate) fn line(&self) -> String {
        format!(
            "RSS {} now, {} sampled peak, {} VmHWM",
            fmt_mib(self.rss_kib()),
            fmt_mib(self.peak_kib()),
            fmt_mib(self.hwm_kib())
        )
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Some(sampler) = self.sampler.take() {
            sampler.abort();
        }
    }
}

/// KiB as MiB with one decimal, or `n/a`.
pub(crate) fn fmt_mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
    )
}

/// Line `key` (with its colon, e.g. `VmRSS:`) of `/proc/PID/status` in KiB; `None` when the process is gone (or a
/// zombie, which has no memory lines).
pub(crate) fn read(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&text, key)
}

/// The value in kB of line `key` (with its colon) of a `/proc/PID/status` text.
fn parse_status(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_lines() {
        let text =
            "Name:\tprometheus-aler\nVmPeak:\t 1000 kB\nVmHWM:\t   52000 kB\nVmRSS:\t   48000 kB\n";
        assert_eq!(parse_status(text, "VmRSS:"), Some(48_000));
        assert_eq!(parse_status(text, "VmHWM:"), Some(52_000));
        assert_eq!(parse_status(text, "VmSwap:"), None);
        assert_eq!(fmt_mib(Some(1536)), "1.5 MiB");
        assert_eq!(fmt_mib(None), "n/a");
    }

    #[tokio::test]
    async fn samples_this_process() {
        let memory = Memory::start(Some(std::process::id()));
        assert!(memory.rss_kib().is_some_and(|rss| rss > 0));
        assert!(memory.peak_kib().is_some());
        assert!(memory.hwm_kib().is_some());
        assert!(Memory::start(None).json()["rss_kib"].is_null());
    }
}
