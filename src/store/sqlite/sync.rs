//! The syncer: makes committed transactions durable (fsync of the WAL) on its own thread, then answers the requests
//! that waited for it. The writer commits without syncing and goes on with the next transaction meanwhile, so one
//! fsync covers every commit made while the previous one ran, and a fsync never holds up writing.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::writer::Outcome;
use crate::store::StoreError;

/// A committed request waiting to be answered once durable.
pub(super) type Waiting = (oneshot::Sender<Result<Outcome, StoreError>>, Outcome);

/// The WAL file of the database at `path`: SQLite names it by appending `-wal`.
fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Syncs the WAL: every frame written before this call (so every transaction committed before it) is on disk after
/// it. A file descriptor of its own serves, as fsync flushes the file, whoever wrote to it.
fn sync_wal(wal: &Path) -> Result<(), StoreError> {
    std::fs::File::open(wal)
        .and_then(|file| file.sync_data())
        .map_err(|error| StoreError::Unavailable(format!("cannot sync {}: {error}", wal.display())))
}

/// Starts the syncer for the database at `path`; it runs until every sender is gone.
pub(super) fn start(
    path: &Path,
) -> Result<(mpsc::Sender<Vec<Waiting>>, JoinHandle<()>), StoreError> {
    let wal = wal_path(path);
    let (sender, receiver) = mpsc::channel::<Vec<Waiting>>();
    let thread = std::thread::Builder::new()
        .name("herald-store-sync".to_string())
        .spawn(move || {
            while let Ok(mut waiting) = receiver.recv() {
                while let Ok(more) = receiver.try_recv() {
                    waiting.extend(more);
                }
                metrics::counter!("herald_store_syncs_total").increment(1);
                match sync_wal(&wal) {
                    Ok(()) => {
                        for (reply, outcome) in waiting {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "store sync failed");
                        for (reply, _) in waiting {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        })
        .map_err(|error| StoreError::Open(format!("cannot start sync thread: {error}")))?;
    Ok((sender, thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_is_the_database_path_with_wal_appended() {
        assert_eq!(
            wal_path(Path::new("/var/lib/herald/herald.db")),
            PathBuf::from("/var/lib/herald/herald.db-wal")
        );
    }
}
