//! Lock helpers and directory fsync: the small concurrency and durability
//! primitives every layer above uses.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{Error, Result};

/// Locks that survive a panicking holder: the data under them is only
/// replaced whole, so a poisoned lock still guards consistent data.
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// See [`read`].
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// See [`read`].
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// fsyncs the folder holding `path`, so that a file created or renamed
/// there survives a power loss.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        None => return Ok(()),
        // A bare relative name is in the current folder.
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}
