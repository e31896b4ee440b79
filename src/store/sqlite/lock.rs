//! The store lock: one herald process per SQLite store. An advisory lock on a file beside the database, held while
//! the store is open and released by the kernel when the process ends, however it ends; the file names the process
//! that holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::store::StoreError;

/// The lock file of the database at `path`: its name with `-lock` appended, beside SQLite's `-wal` and `-shm`.
pub(super) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-lock");
    PathBuf::from(name)
}

/// Takes the lock of the database at `path` for this process, or says which process holds it.
pub(super) fn acquire(path: &Path) -> Result<File, StoreError> {
    let lock = lock_path(path);
    let cannot = |error: std::io::Error| {
        StoreError::Open(format!(
            "cannot lock the store with {}: {error}",
            lock.display()
        ))
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(cannot)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim().parse::<u32>() {
                Ok(pid) => format!("process {pid}"),
                Err(_) => "another process".to_string(),
            };
            return Err(StoreError::Open(format!(
                "{} is in use by {holder} (it holds {}): one herald serves a SQLite store at a time",
                path.display(),
                lock.display()
            )));
        }
        Err(TryLockError::Error(error)) => return Err(cannot(error)),
    }
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.flush())
        .map_err(cannot)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_store_names_the_holder_and_a_released_one_is_taken_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.db");
        let held = acquire(&path).unwrap();
        let error = acquire(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(
            error.contains(&format!("process {}", std::process::id())),
            "{error}"
        );
        assert!(error.contains("herald.db-lock"), "{error}");
        drop(held);
        acquire(&path).unwrap();
    }
}
