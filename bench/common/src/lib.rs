//! What herald's benchmark binaries (`herald-loadgen` and `herald-bench-delivery`) share:
//!
//! - [`target`]: the loopback-only checks of `--url` (and of a listen address);
//! - [`client`]: the pooled HTTP/1.1 client with a timeout per request;
//! - [`pacing`]: the open-loop timetable and the pacing thread that keeps it;
//! - [`latency`]: latency histograms in milliseconds;
//! - [`alerts`]: the envelope of an alert in Alertmanager's v2 API and the request body of a batch;
//! - [`retry`]: posting a batch again after 429, 5xx (honouring `Retry-After`) or a lost answer, within bounds;
//! - [`run`]: the async runtime and the exit code of a run.

pub mod alerts;
pub mod client;
pub mod latency;
pub mod pacing;
pub mod retry;
pub mod target;

use std::future::Future;
use std::process::ExitCode;

use anyhow::{Context, Result};

/// Runs `main` on a runtime with `threads` worker threads (a current-thread runtime for 1 or less, which leaves the
/// other cores to the server under test) and turns its result into the exit code, printing `NAME: error: ...` on
/// failure.
pub fn run(name: &str, threads: usize, main: impl Future<Output = Result<()>>) -> ExitCode {
    let result = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")
    .and_then(|runtime| runtime.block_on(main));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
