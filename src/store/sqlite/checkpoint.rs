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

/// WAL size, in frames (about 64 MiB with 2 KiB pages), past which a checkpoint also starts the WAL over.
///
/// SQLite starts the WAL over when a write begins with every frame copied back. Whenever commits pause for as long as
/// a passive checkpoint takes, that happens by itself; under a steady stream of commits a passive checkpoint never
/// catches up with the last one, so the WAL would grow until the writer checkpointed by itself after a commit (see
/// `AUTOCHECKPOINT_PAGES`), holding up writes for a whole checkpoint and its syncs. Here the checkpointer does it: it
/// copies back what it can without holding up the writer, then takes the write lock only to copy the few frames
/// committed meanwhile and start the WAL over. Writes wait for that short step only, once per this many frames.
const RESTART_FRAMES: i64 = 32_768;

/// How many passive checkpoints at most precede a restart, each copying what the one before left.
const CATCH_UP_PASSES: usize = 3;

/// A restart catches up once fewer than this many frames are left to copy.
const CAUGHT_UP_FRAMES: i64 = 256;

/// Runs a checkpoint in `mode`: (frames in the WAL, frames copied back so far, whether it could not finish as it
/// waited on a writer or reader in vain).
fn checkpoint(connection: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, bool)> {
    connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok((row.get(1)?, row.get(2)?, row.get::<_, i64>(0)? != 0))
    })
}

/// One paced checkpoint: passive; when the WAL has grown past `restart_frames`, more passive passes until little is
/// left to copy, then a restart. Returns whether it restarted.
fn pass(connection: &Connection, restart_frames: i64) -> rusqlite::Result<bool> {
    let (mut frames, mut copied, _) = checkpoint(connection, "PASSIVE")?;
    if frames < restart_frames {
        return Ok(false);
    }
    for _ in 0..CATCH_UP_PASSES {
        if frames - copied < CAUGHT_UP_FRAMES {
            break;
        }
        (frames, copied, _) = checkpoint(connection, "PASSIVE")?;
    }
    let started = Instant::now();
    let (frames, copied, busy) = checkpoint(connection, "RESTART")?;
    if busy {
        tracing::debug!(
            frames,
            copied,
            "WAL not started over: the store stayed busy"
        );
        return Ok(false);
    }
    metrics::counter!("herald_store_wal_restarts_total").increment(1);
    tracing::debug!(frames, took = ?started.elapsed(), "WAL started over");
    Ok(true)
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
        if let Err(error) = pass(connection, RESTART_FRAMES) {
            tracing::warn!(%error, "WAL checkpoint failed");
        }
        last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_frames(connection: &Connection) -> i64 {
        checkpoint(connection, "PASSIVE").unwrap().0
    }

    #[test]
    fn a_large_wal_starts_over_while_a_small_one_is_only_copied_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
            )
            .unwrap();
        let checkpointer = Connection::open(&path).unwrap();
        let write = |rows: usize| {
            for _ in 0..rows {
                writer
                    .execute("INSERT INTO t (body) VALUES (randomblob(3000))", [])
                    .unwrap();
            }
        };

        write(20);
        let before = wal_frames(&writer);
        assert!(!pass(&checkpointer, 1_000).unwrap(), "only copied back");
        assert!(before > 0);
        assert_eq!(wal_frames(&writer), before);

        write(400);
        assert!(wal_frames(&writer) >= 1_000);
        assert!(pass(&checkpointer, 1_000).unwrap(), "started over");
        write(1);
        let after = wal_frames(&writer);
        assert!(
            after > 0 && after < 10,
            "started over: the next commit writes from the start ({after} frames)"
        );
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 421);
    }
}
