//! The writer lock: one writer at a time, and none after a write failed
//! midway (the lock is poisoned until a reopen rebuilds from the disk).

use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::sync::lock;

/// What the writer lock guards.
#[derive(Default)]
pub(crate) struct Writer {
    /// Set when a write failed after it may have reached the disk.
    poisoned: Option<String>,
    /// Whether this instance wrote anything: only then does closing it
    /// flush (a read-only use leaves the files as it found them).
    pub(crate) dirty: bool,
}

impl Writer {
    /// Refuses every later write: the disk may hold more than memory.
    pub(crate) fn poison(&mut self, why: String) {
        self.poisoned = Some(why);
    }

    /// Whether a failed write poisoned the writer.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }
}

/// The writer lock of one database.
#[derive(Default)]
pub(crate) struct WriterLock(Mutex<Writer>);

impl WriterLock {
    /// The lock for a write: refused while a failed write poisons it.
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, Writer>> {
        let writer = lock(&self.0);
        if let Some(why) = &writer.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        Ok(writer)
    }

    /// The lock even when poisoned: for work that must not race a commit
    /// but writes no entry (verify, subscribe, rebuild, close).
    pub(crate) fn lock_any(&self) -> MutexGuard<'_, Writer> {
        lock(&self.0)
    }
}
