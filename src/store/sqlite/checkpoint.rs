//! The checkpointer: copies committed WAL pages back into the database file on its own connection and thread, so
//! the writer's commits do not wait for it.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::rows::unavailable;
use crate::store::StoreError;

/// At most one checkpoint per this interval, so pages rewritten by many commits are copied back once.
const PACE: Duration = Duration::from_millis(500);

/// Starts the checkpointer: passive checkpoints after commits (paced); when `commits` closes, a truncating one.
pub(super) fn start(
    path: &Path,
    busy_timeout: Duration,
    commits: mpsc::Receiver<()>,
) -> Result<JoinHandle<()>, StoreError> {
    let connection = Connection::open(path).map_err(unavailable)?;
    connection.busy_timeout(busy_timeout).map_err(unavailable)?;
    std::thread::Builder::new()
        .name("herald-store-checkpoint".to_string())
        .spawn(move || run(&connection, &commits))
        .map_err(|error| StoreError::Open(format!("cannot start checkpoint thread: {error}")))
}

fn run(connection: &Connection, commits: &mpsc::Receiver<()>) {
    paced(connection, commits);
    // The writer is gone: fold the whole WAL into the database and empty it, for a clean close.
    match connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(_) => tracing::warn!("WAL not truncated on close: the database is still in use"),
        Err(error) => tracing::warn!(%error, "WAL checkpoint on close failed"),
    }
}

/// Checkpoints after commits, at most once per `PACE`, until the writer closes the channel.
fn paced(connection: &Connection, commits: &mpsc::Receiver<()>) {
    let mut last = Instant::now();
    while commits.recv().is_ok() {
        let deadline = last + PACE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match commits.recv_timeout(left) {
                Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
        last = Instant::now();
    }
}
