//! The storage seam: a narrow trait between the log and the engine that
//! keeps its bytes, and its sled 0.34 implementation.
//!
//! Everything above this trait deals in seqs and checked bytes; nothing
//! above it knows about sled. Tests put fault-injecting stores here, and a
//! replicated or remote log could later take sled's place.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Bytes handed out by a store without copying (sled shares its buffers).
pub struct Bytes(Box<dyn AsRef<[u8]> + Send + Sync>);

impl Bytes {
    /// Wraps any owned byte buffer.
    pub fn new(b: impl AsRef<[u8]> + Send + Sync + 'static) -> Bytes {
        Bytes(Box::new(b))
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// A fallible iterator over stored chunks, `(first seq, bytes)` in order.
pub type ChunkIter<'a> = Box<dyn Iterator<Item = Result<(u64, Bytes)>> + 'a>;

/// What annals needs from a storage engine: for each log (`main`, and one
/// per branch), an ordered map from the first seq of each chunk of entries
/// to the chunk's bytes; plus a little metadata. Chunks are opaque here;
/// `codec` gives them their layout.
pub trait Storage: Send + Sync {
    /// Writes chunks to log `log` so that after a crash either all of them
    /// or none are present. Not durable until [`Storage::sync`].
    fn write_chunks(&self, log: &str, chunks: &[(u64, Vec<u8>)]) -> Result<()>;
    /// Makes every write so far durable (survives a machine crash).
    fn sync(&self) -> Result<()>;
    /// The chunk of `log` with the greatest first seq at or below `seq`.
    fn chunk_at(&self, log: &str, seq: u64) -> Result<Option<(u64, Bytes)>>;
    /// Chunks of `log` whose first seq is at or above `from`, in order.
    fn scan_chunks(&self, log: &str, from: u64) -> ChunkIter<'_>;
    /// The last chunk of `log`.
    fn last_chunk(&self, log: &str) -> Result<Option<(u64, Bytes)>>;
    /// Removes every chunk of `log` whose first seq is at or above
    /// `from`, all or none. Not durable until [`Storage::sync`]. Used only
    /// to drop the torn tail a power loss can leave (see `Log`).
    fn remove_chunks_from(&self, log: &str, from: u64) -> Result<()>;
    /// Removes a log and frees its space.
    fn drop_log(&self, log: &str) -> Result<()>;
    /// The names of the logs present other than main (branches' logs, and
    /// the leftovers of a branch dropped by a crash midway).
    fn log_names(&self) -> Result<Vec<String>>;
    /// Stores a small metadata value (branches, projection checkpoints).
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Reads a metadata value.
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Removes a metadata value.
    fn remove_meta(&self, key: &str) -> Result<()>;
    /// Every metadata value whose key starts with `prefix`, in key order.
    fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// Bytes the engine occupies on disk.
    fn disk_bytes(&self) -> u64;
}

/// How long opening waits for sled's file lock, released by a previous
/// instance's flusher thread.
const SLED_LOCK_WAIT_MS: u64 = 5_000;

/// The name of the main log.
pub const MAIN_LOG: &str = "main";

/// How much of a sled panic message an error keeps.
const MAX_PANIC_CHARS: usize = 200;

/// Runs a call into sled, turning a panic into an error: sled 0.34 can
/// panic on a damaged file instead of returning an error, and a damaged
/// file must not crash the host program.
fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            // sled's messages can quote a whole key (megabytes, seen after
            // a simulated power loss): the start says what went wrong.
            let msg = match msg.char_indices().nth(MAX_PANIC_CHARS) {
                Some((cut, _)) => format!("{}...", &msg[..cut]),
                None => msg,
            };
            Err(Error::corruption(
                0,
                format!("storage engine failed while {what}: {msg}"),
            ))
        }
    }
}

/// Removes the temporary files of snapshots sled did not finish. sled
/// writes its snapshot to `snap.<lsn>.generating` and renames it when
/// complete, but on open it reads the last `snap.*` file by name, and
/// `.generating` sorts last: a process killed while writing one left a
/// store that would not open ("storage engine reports damage at None",
/// found by the kill -9 excision test, about 1 kill in 450). An unfinished
/// snapshot is never needed: sled recovers from the previous one and its
/// log.
fn remove_unfinished_snapshots(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// The sled 0.34 store: one tree for the log (key: a chunk's first seq,
/// big-endian; value: the chunk), one
/// for metadata.
pub struct SledStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    /// Trees of branch logs, opened on first use.
    branches: std::sync::Mutex<std::collections::HashMap<String, sled::Tree>>,
    /// sled's data file, fsynced after each flush (see `sync`).
    data_file: File,
    /// Blob files already fsynced (sled writes each once, never fsyncs it).
    synced_blobs: std::sync::Mutex<std::collections::HashSet<std::ffi::OsString>>,
    dir: PathBuf,
}

impl SledStore {
    /// fsyncs the blob files sled wrote since the last sync, and the blobs
    /// folder. sled writes any page (tree node) over 128 KiB to its own file
    /// in `blobs/` and never fsyncs it; a leaf of the log tree holds up to
    /// 16 chunks, so such pages happen (seen: dozens per 30,000 GDELT rows).
    /// Without this, an acknowledged batch could live only in the page
    /// cache.
    fn sync_blobs(&self) -> Result<()> {
        let dir = self.dir.join("blobs");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut synced = crate::sync::lock(&self.synced_blobs);
        let mut present = std::collections::HashSet::new();
        let mut any_new = false;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                match File::open(entry.path()) {
                    Ok(f) => f.sync_all().map_err(|e| Error::io(entry.path(), e))?,
                    // sled removed it meanwhile: nothing refers to it.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(entry.path(), e)),
                }
                any_new = true;
            }
            present.insert(name);
        }
        if any_new {
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(&dir, e))?;
        }
        *synced = present;
        Ok(())
    }

    /// Opens (or creates) a sled store in `dir`.
    pub fn open(dir: &Path, cache_capacity_bytes: u64) -> Result<SledStore> {
        let fresh = !dir.join("conf").exists();
        remove_unfinished_snapshots(dir)?;
        let store = Self::open_sled(dir, cache_capacity_bytes)?;
        if fresh {
            store.sync_layout()?;
        }
        Ok(store)
    }

    /// sled creates its `conf`, `db` and `blobs/` without syncing them or
    /// the folders that hold their names, so that a power loss after the
    /// first acknowledged batch could leave no store at all (found by
    /// `tests/power_loss.rs`). Called once, on creation.
    fn sync_layout(&self) -> Result<()> {
        for p in [
            self.dir.join("conf"),
            self.dir.join("blobs"),
            self.dir.clone(),
        ] {
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&p, e))?;
        }
        Ok(())
    }

    fn open_sled(dir: &Path, cache_capacity_bytes: u64) -> Result<SledStore> {
        guard("opening", || {
            let config = sled::Config::default()
                .path(dir)
                .cache_capacity(cache_capacity_bytes);
            // The caller holds annals' own LOCK, so a lock conflict on
            // sled's file can only be this process's previous instance,
            // whose background flusher releases the file a moment after
            // the database is closed (seen under load when reopening).
            let mut waited = 0;
            let db = loop {
                match config.open() {
                    // sled reports it as ErrorKind::Other with this text.
                    Err(sled::Error::Io(e))
                        if e.to_string().starts_with("could not acquire lock")
                            && waited < SLED_LOCK_WAIT_MS =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        waited += 10;
                    }
                    other => break other?,
                }
            };
            let log = db.open_tree(SledStore::tree_name(MAIN_LOG))?;
            let meta = db.open_tree(SledStore::META_TREE)?;
            let data_path = dir.join("db");
            let data_file = File::open(&data_path).map_err(|e| Error::io(&data_path, e))?;
            Ok(SledStore {
                db,
                log,
                meta,
                branches: std::sync::Mutex::new(std::collections::HashMap::new()),
                data_file,
                synced_blobs: std::sync::Mutex::new(std::collections::HashSet::new()),
                dir: dir.to_path_buf(),
            })
        })
    }
}

impl SledStore {
    /// The sled tree that holds log `log` (as named in [`Edits`]).
    pub(crate) fn tree_name(log: &str) -> String {
        if log == MAIN_LOG {
            "log".into()
        } else {
            format!("log/{log}")
        }
    }

    /// The sled tree that holds the metadata (as named in [`Edits`]).
    pub(crate) const META_TREE: &'static str = "meta";

    /// Copies every tree into a new store in `dest`, with `edits` applied,
    /// and makes it durable. This store is only read. The copy's files
    /// hold only live values (sled keeps overwritten and removed ones in
    /// its files until it reuses their space), and an edited value is
    /// written in its edited form only: what an edit replaces never
    /// reaches the copy.
    pub(crate) fn copy_into(&self, dest: &Path, edits: &Edits) -> Result<()> {
        let copy = SledStore::open(dest, 64 * 1024 * 1024)?;
        guard("copying", || {
            for name in self.db.tree_names() {
                if name == b"__sled__default" {
                    continue;
                }
                let tree_name = String::from_utf8_lossy(&name).into_owned();
                let (from, to) = (self.db.open_tree(&name)?, copy.db.open_tree(&name)?);
                let mut batch = sled::Batch::default();
                let mut n = 0;
                for item in from.iter() {
                    let (k, v) = item?;
                    match edits.get(&(tree_name.clone(), k.to_vec())) {
                        None => batch.insert(k, v),
                        Some(Some(edited)) => batch.insert(k, edited.as_slice()),
                        Some(None) => continue,
                    }
                    n += 1;
                    if n % 4096 == 0 {
                        to.apply_batch(std::mem::take(&mut batch))?;
                    }
                }
                to.apply_batch(batch)?;
            }
            // Edits that add a key the source does not have.
            for ((tree, key), value) in edits {
                if let Some(value) = value {
                    let to = copy.db.open_tree(tree.as_bytes())?;
                    if !to.contains_key(key)? {
                        to.insert(key.as_slice(), value.as_slice())?;
                    }
                }
            }
            Ok(())
        })?;
        copy.sync()
    }
}

/// Changes [`SledStore::copy_into`] applies, by (tree, key): the new value,
/// or `None` to leave the key out.
pub(crate) type Edits = std::collections::BTreeMap<(String, Vec<u8>), Option<Vec<u8>>>;

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl SledStore {
    /// The tree of a log: `log` for main, `log/NAME` for a branch.
    fn tree(&self, log: &str) -> Result<sled::Tree> {
        if log == MAIN_LOG {
            return Ok(self.log.clone());
        }
        let mut trees = self.branches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = trees.get(log) {
            return Ok(t.clone());
        }
        let t = self.db.open_tree(SledStore::tree_name(log))?;
        trees.insert(log.to_string(), t.clone());
        Ok(t)
    }
}

fn key_seq(k: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(k)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::corruption(0, "log key is not a seq"))
}

fn chunk(item: Option<sled::Result<(sled::IVec, sled::IVec)>>) -> Result<Option<(u64, Bytes)>> {
    match item {
        None => Ok(None),
        Some(Err(e)) => Err(e.into()),
        Some(Ok((k, v))) => Ok(Some((key_seq(&k)?, Bytes::new(v)))),
    }
}

impl Storage for SledStore {
    fn write_chunks(&self, log: &str, chunks: &[(u64, Vec<u8>)]) -> Result<()> {
        guard("writing", || {
            let mut batch = sled::Batch::default();
            for (seq, bytes) in chunks {
                batch.insert(&seq.to_be_bytes(), bytes.as_slice());
            }
            self.tree(log)?.apply_batch(batch)?;
            Ok(())
        })
    }

    fn sync(&self) -> Result<()> {
        guard("flushing", || {
            self.db.flush()?;
            self.sync_blobs()?;
            // sled makes its log durable with sync_file_range on Linux, which
            // flushes neither file metadata nor the disk's write cache. An
            // fsync of the same file (any descriptor will do) does both.
            self.data_file
                .sync_all()
                .map_err(|e| Error::io(self.dir.join("db"), e))
        })
    }

    fn chunk_at(&self, log: &str, seq: u64) -> Result<Option<(u64, Bytes)>> {
        guard("reading", || {
            chunk(self.tree(log)?.range(..=seq.to_be_bytes()).next_back())
        })
    }

    fn scan_chunks(&self, log: &str, from: u64) -> ChunkIter<'_> {
        let mut iter = match self.tree(log) {
            Ok(t) => t.range(from.to_be_bytes()..),
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        Box::new(std::iter::from_fn(move || {
            guard("scanning", || chunk(iter.next())).transpose()
        }))
    }

    fn last_chunk(&self, log: &str) -> Result<Option<(u64, Bytes)>> {
        guard("reading", || chunk(self.tree(log)?.iter().next_back()))
    }

    fn remove_chunks_from(&self, log: &str, from: u64) -> Result<()> {
        guard("removing", || {
            let tree = self.tree(log)?;
            let mut batch = sled::Batch::default();
            for key in tree.range(from.to_be_bytes()..).keys() {
                batch.remove(key?);
            }
            tree.apply_batch(batch)?;
            Ok(())
        })
    }

    fn drop_log(&self, log: &str) -> Result<()> {
        guard("dropping", || {
            self.branches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(log);
            self.db.drop_tree(SledStore::tree_name(log))?;
            Ok(())
        })
    }

    fn log_names(&self) -> Result<Vec<String>> {
        guard("listing", || {
            Ok(self
                .db
                .tree_names()
                .iter()
                .filter_map(|n| n.strip_prefix(b"log/"))
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect())
        })
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        guard("writing", || {
            self.meta.insert(key.as_bytes(), value)?;
            Ok(())
        })
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        guard("reading", || {
            Ok(self.meta.get(key.as_bytes())?.map(|v| v.to_vec()))
        })
    }

    fn remove_meta(&self, key: &str) -> Result<()> {
        guard("writing", || {
            self.meta.remove(key.as_bytes())?;
            Ok(())
        })
    }

    fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        guard("reading", || {
            self.meta
                .scan_prefix(prefix.as_bytes())
                .map(|item| {
                    let (k, v) = item?;
                    Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
                })
                .collect()
        })
    }

    fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }
}
