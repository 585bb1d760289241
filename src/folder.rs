//! The database folder: its lock, and the names of what it holds.

use std::fs::{self, File, TryLockError};
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// The lock file, held (flock) for as long as the database is open.
pub(crate) const LOCK_FILE: &str = "LOCK";
const LOCK_RETRIES: u32 = 5;
/// The log's store.
pub(crate) const STORE_DIR: &str = "store";
/// The derived state: index segments and view files.
pub(crate) const INDEX_DIR: &str = "index";
/// View snapshots.
pub(crate) const SNAPSHOT_DIR: &str = "snapshots";

/// Takes the database's lock (`LOCK`, flock) in folder `dir`, held for as
/// long as the returned file is open.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let lock_path = dir.join(LOCK_FILE);
    let lock_file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    // A few short retries: a child process forked by this one (by any
    // thread) shares the lock until it execs, so a database closed and
    // reopened in a process that spawns children can look in use for a
    // moment. Another process that holds it still gets `InUse` within
    // 50 ms.
    let mut tries = 0;
    loop {
        match lock_file.try_lock() {
            Ok(()) => return Ok(lock_file),
            Err(TryLockError::WouldBlock) if tries < LOCK_RETRIES => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::InUse {
                    path: dir.to_path_buf(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
    }
}

/// Removes the derived files of the first on-disk format (annals before
/// December 2026): a whole-state checkpoint and view snapshots of another
/// layout. The log is read as it is (its entries keep their format); the
/// index and views are rebuilt from it on this open.
pub(crate) fn upgrade_derived(dir: &Path) -> Result<()> {
    let legacy = dir.join("state.ckpt");
    if !legacy.exists() {
        return Ok(());
    }
    let snapshots = dir.join(SNAPSHOT_DIR);
    match fs::remove_dir_all(&snapshots) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&snapshots, e)),
        _ => {}
    }
    fs::remove_file(&legacy).map_err(|e| Error::io(&legacy, e))
}
