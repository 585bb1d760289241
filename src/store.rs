//! The storage seam: a narrow trait between the log and what keeps its
//! bytes, and its implementation: the logs in annals' own segment files
//! (`logfile`), the small metadata in sled 0.34.
//!
//! Everything above this trait deals in seqs and checked bytes; nothing
//! above it knows about files or sled. Tests put fault-injecting stores
//! here, and a replicated or remote log could later take this one's place.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::logfile::{LogFiles, DEFAULT_SEGMENT_BYTES};

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
    /// Writes one batch's chunks to log `log` so that after a crash either
    /// all of them or none are present. Not durable until
    /// [`Storage::sync`].
    fn write_chunks(&self, log: &str, chunks: &[(u64, Vec<u8>)]) -> Result<()>;
    /// Makes every write so far durable (survives a machine crash).
    fn sync(&self) -> Result<()>;
    /// The chunk of `log` with the greatest first seq at or below `seq`.
    fn chunk_at(&self, log: &str, seq: u64) -> Result<Option<(u64, Bytes)>>;
    /// Chunks of `log` whose first seq is at or above `from`, in order.
    fn scan_chunks(&self, log: &str, from: u64) -> ChunkIter<'_>;
    /// The last chunk of `log`.
    fn last_chunk(&self, log: &str) -> Result<Option<(u64, Bytes)>>;
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

/// The store: each log in its own folder of segment files under
/// `log/` (`main`, and `branches/NAME`), the metadata in one sled tree.
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    /// The logs opened so far, by name (shared with the flusher thread).
    logs: Arc<OpenLogs>,
    /// Whether metadata changed since the last sync (sled is flushed only
    /// then: a batch on main touches no metadata).
    meta_dirty: std::sync::atomic::AtomicBool,
    /// sled's data file, fsynced after each flush (see `sync`).
    data_file: File,
    /// Blob files already fsynced (sled writes each once, never fsyncs it).
    synced_blobs: std::sync::Mutex<std::collections::HashSet<std::ffi::OsString>>,
    dir: PathBuf,
    segment_bytes: u64,
    /// Chunks read by seq, within a byte budget (scans bypass it).
    cache: std::sync::Mutex<ChunkCache>,
}

/// Recently read chunks, up to a byte budget: what makes a warm query
/// cheap while keeping a read-only process's memory bounded by the
/// budget plus its result (the OS page cache, outside the process, holds
/// the rest of the files).
struct ChunkCache {
    budget: u64,
    bytes: u64,
    tick: u64,
    /// (log, first seq) → (bytes, last use).
    map: std::collections::HashMap<(String, u64), Cached>,
}

type Cached = (Arc<[u8]>, u64);

impl ChunkCache {
    fn get(&mut self, log: &str, first: u64) -> Option<Arc<[u8]>> {
        self.tick += 1;
        let tick = self.tick;
        let hit = self.map.get_mut(&(log.to_string(), first))?;
        hit.1 = tick;
        Some(Arc::clone(&hit.0))
    }

    fn put(&mut self, log: &str, first: u64, bytes: Arc<[u8]>) {
        if bytes.len() as u64 > self.budget / 4 {
            return;
        }
        self.tick += 1;
        self.bytes += bytes.len() as u64;
        let old = self
            .map
            .insert((log.to_string(), first), (bytes, self.tick));
        if let Some((old, _)) = old {
            self.bytes -= old.len() as u64;
        }
        if self.bytes > self.budget {
            // Least recently used first, down to 3/4 of the budget, so
            // that evicting is rare.
            let mut by_age: Vec<(u64, (String, u64))> =
                self.map.iter().map(|(k, v)| (v.1, k.clone())).collect();
            by_age.sort_unstable();
            for (_, key) in by_age {
                if self.bytes <= self.budget / 4 * 3 {
                    break;
                }
                if let Some((b, _)) = self.map.remove(&key) {
                    self.bytes -= b.len() as u64;
                }
            }
        }
    }

    fn forget_log(&mut self, log: &str) {
        let bytes = &mut self.bytes;
        self.map.retain(|(l, _), (b, _)| {
            let keep = l != log;
            if !keep {
                *bytes -= b.len() as u64;
            }
            keep
        });
    }
}

/// sled's own cache: it holds only the metadata now.
const SLED_CACHE_BYTES: u64 = 4 * 1024 * 1024;

type OpenLogs = std::sync::Mutex<std::collections::HashMap<String, Arc<LogFiles>>>;

/// Syncs the logs' buffered batches once they have waited
/// [`BUFFERED_WINDOW`], while any write keeps coming or not; stops once
/// the store is dropped. A failed sync is kept by the log and reported by
/// its next write or sync.
fn spawn_flusher(logs: &Arc<OpenLogs>) {
    let logs = Arc::downgrade(logs);
    let spawned = std::thread::Builder::new()
        .name("annals-flusher".into())
        .spawn(move || loop {
            std::thread::sleep(BUFFERED_WINDOW / 4);
            let Some(logs) = logs.upgrade() else { return };
            let open: Vec<Arc<LogFiles>> = crate::sync::lock(&logs).values().cloned().collect();
            drop(logs);
            for files in open {
                if files.unsynced_for().is_some_and(|t| t >= BUFFERED_WINDOW) {
                    let _ = files.sync();
                }
            }
        });
    // Without the thread, buffered batches are still synced at the next
    // write after the window, at checkpoints and at close.
    drop(spawned);
}

/// The folder of the logs' segment files, inside the store's folder.
const LOG_DIR: &str = "log";
/// The same while an upgrade from the log in sled builds it.
const NEW_LOG_DIR: &str = "log.new";
/// How long a buffered batch may wait for its sync (sled's flush interval
/// before: the promise of `Durability::Buffered`).
const BUFFERED_WINDOW: std::time::Duration = std::time::Duration::from_millis(500);

impl Store {
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

    /// Opens (or creates) the store in `dir`, with a cache of recently
    /// read chunks of at most `cache_capacity_bytes`. A store whose logs
    /// are still in sled (written before segment files) is upgraded first,
    /// once; see [`Store::upgrade`].
    pub fn open(dir: &Path, cache_capacity_bytes: u64) -> Result<Store> {
        Self::open_with(dir, cache_capacity_bytes, DEFAULT_SEGMENT_BYTES)
    }

    /// [`Store::open`] with segments sealed at `segment_bytes` (small in
    /// tests, so that they cover sealing).
    pub fn open_with(dir: &Path, cache_capacity_bytes: u64, segment_bytes: u64) -> Result<Store> {
        let fresh = !dir.join("conf").exists();
        remove_unfinished_snapshots(dir)?;
        let store = Self::open_sled(dir, cache_capacity_bytes, segment_bytes)?;
        if fresh {
            store.sync_layout()?;
        }
        store.upgrade()?;
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

    fn open_sled(dir: &Path, cache_capacity_bytes: u64, segment_bytes: u64) -> Result<Store> {
        guard("opening", || {
            let config = sled::Config::default()
                .path(dir)
                .cache_capacity(SLED_CACHE_BYTES);
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
            let meta = db.open_tree(Store::META_TREE)?;
            let data_path = dir.join("db");
            let data_file = File::open(&data_path).map_err(|e| Error::io(&data_path, e))?;
            let logs = Arc::new(OpenLogs::default());
            spawn_flusher(&logs);
            Ok(Store {
                db,
                meta,
                logs,
                meta_dirty: std::sync::atomic::AtomicBool::new(false),
                data_file,
                synced_blobs: std::sync::Mutex::new(std::collections::HashSet::new()),
                dir: dir.to_path_buf(),
                segment_bytes,
                cache: std::sync::Mutex::new(ChunkCache {
                    budget: cache_capacity_bytes,
                    bytes: 0,
                    tick: 0,
                    map: std::collections::HashMap::new(),
                }),
            })
        })
    }

    /// Moves logs kept in sled trees (`log`, `log/NAME`: the format before
    /// segment files) into segment files, once. Crash-safe at every step:
    /// the files are built in `log.new/` and synced, each log's chain is
    /// checked end to end as it is copied, then `log.new/` is renamed to
    /// `log/` (the switch), and only then are the trees dropped. Opening
    /// after a crash before the switch starts over; after it, drops what
    /// trees are left.
    fn upgrade(&self) -> Result<()> {
        let root = self.dir.join(LOG_DIR);
        let trees: Vec<(String, String)> = self
            .db
            .tree_names()
            .iter()
            .filter_map(|n| {
                let n = String::from_utf8_lossy(n).into_owned();
                let log = match n.as_str() {
                    "log" => MAIN_LOG.to_string(),
                    other => other.strip_prefix("log/")?.to_string(),
                };
                Some((n, log))
            })
            .collect();
        if !root.exists() {
            let new = self.dir.join(NEW_LOG_DIR);
            remove_dir_all(&new)?;
            for (tree, log) in &trees {
                let files = LogFiles::open(&log_dir(&new, log)?, self.segment_bytes)?;
                let tree = guard("upgrading", || Ok(self.db.open_tree(tree.as_bytes())?))?;
                copy_legacy(&tree, &files, log)?;
                files.sync()?;
            }
            LogFiles::open(&log_dir(&new, MAIN_LOG)?, self.segment_bytes)?;
            sync_tree(&new)?;
            std::fs::rename(&new, &root).map_err(|e| Error::io(&new, e))?;
            crate::sync::sync_dir(&root)?;
        }
        if !trees.is_empty() {
            guard("upgrading", || {
                for (tree, _) in &trees {
                    self.db.drop_tree(tree.as_bytes())?;
                }
                self.db.flush()?;
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The segment files of log `log`, opened (and recovered) on first use.
    fn log(&self, log: &str) -> Result<Arc<LogFiles>> {
        let mut logs = crate::sync::lock(&self.logs);
        if let Some(l) = logs.get(log) {
            return Ok(Arc::clone(l));
        }
        let dir = log_dir(&self.dir.join(LOG_DIR), log)?;
        let files = Arc::new(LogFiles::open(&dir, self.segment_bytes)?);
        logs.insert(log.to_string(), Arc::clone(&files));
        Ok(files)
    }

    /// The sled tree that holds the metadata (as named in [`Edits`]).
    pub(crate) const META_TREE: &'static str = "meta";

    /// The name [`Edits`] gives log `log`'s chunks.
    pub(crate) fn edit_log_name(log: &str) -> String {
        format!("log/{log}")
    }

    /// Copies the store into a new one in `dest`, with `edits` applied,
    /// and makes it durable. This store is only read. The copy's files
    /// hold only live values (sled keeps overwritten and removed ones in
    /// its files until it reuses their space), and an edited value is
    /// written in its edited form only: what an edit replaces never
    /// reaches the copy. A log segment holding no edited chunk is
    /// hard-linked, not copied; one that does is rewritten, each batch
    /// still one frame.
    pub(crate) fn copy_into(&self, dest: &Path, edits: &Edits) -> Result<()> {
        let copy = Store::open_with(dest, 64 * 1024 * 1024, self.segment_bytes)?;
        guard("copying", || {
            let to = copy.db.open_tree(Store::META_TREE)?;
            let mut batch = sled::Batch::default();
            for item in self.meta.iter() {
                let (k, v) = item?;
                match edits.get(&(Store::META_TREE.to_string(), k.to_vec())) {
                    None => batch.insert(k, v),
                    Some(Some(edited)) => batch.insert(k, edited.as_slice()),
                    Some(None) => continue,
                }
            }
            to.apply_batch(batch)?;
            // Edits that add a key the source does not have.
            for ((tree, key), value) in edits {
                if let (true, Some(value)) = (tree == Store::META_TREE, value) {
                    if !to.contains_key(key)? {
                        to.insert(key.as_slice(), value.as_slice())?;
                    }
                }
            }
            Ok(())
        })?;
        copy.meta_dirty
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut logs = vec![MAIN_LOG.to_string()];
        logs.extend(self.log_names()?);
        let root = dest.join(LOG_DIR);
        for log in logs {
            let name = Store::edit_log_name(&log);
            let edit = |first: u64| -> Option<Vec<u8>> {
                edits
                    .get(&(name.clone(), first.to_be_bytes().to_vec()))
                    .and_then(|v| v.clone())
            };
            self.log(&log)?.copy_to(&log_dir(&root, &log)?, &edit)?;
        }
        copy.sync()
    }
}

/// Changes [`Store::copy_into`] applies, by (tree, key): the new value,
/// or `None` to leave the key out. Metadata is tree [`Store::META_TREE`];
/// a log's chunks are [`Store::edit_log_name`], keyed by their first
/// seq (big-endian).
pub(crate) type Edits = std::collections::BTreeMap<(String, Vec<u8>), Option<Vec<u8>>>;

/// The folder of log `log` under `root`: `main`, or `branches/NAME`.
fn log_dir(root: &Path, log: &str) -> Result<PathBuf> {
    if log == MAIN_LOG {
        return Ok(root.join(MAIN_LOG));
    }
    let safe = !log.is_empty()
        && !log.starts_with('.')
        && log
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !safe {
        return Err(Error::internal(format!("`{log}` cannot name a log folder")));
    }
    Ok(root.join("branches").join(log))
}

fn remove_dir_all(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// fsyncs every folder under `path` and `path` itself, so that the names
/// of the files built there survive a power loss.
fn sync_tree(path: &Path) -> Result<()> {
    for e in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let e = e.map_err(|e| Error::io(path, e))?;
        if e.path().is_dir() {
            sync_tree(&e.path())?;
        }
    }
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Copies a log kept in a sled tree into segment files, checking that its
/// seqs continue and its chain links, entry by entry (a branch's first
/// entry links to its parent, which is checked when the branch opens).
fn copy_legacy(tree: &sled::Tree, to: &LogFiles, log: &str) -> Result<()> {
    let mut prev: Option<(u64, crate::entry::Hash)> = None;
    for item in tree.iter() {
        let (k, v) = guard("upgrading", || Ok(item?))?;
        let first = key_seq(&k)?;
        for (i, raw) in crate::codec::unpack_chunk(first, &v)?
            .into_iter()
            .enumerate()
        {
            let seq = first + i as u64;
            let (_, env) = crate::codec::decode_entry(seq, raw)?;
            if let Some((p, hash)) = prev {
                if seq != p + 1 || env.prev != hash {
                    return Err(Error::corruption(
                        seq,
                        format!("upgrading log `{log}`: the entry does not follow seq {p}"),
                    ));
                }
            }
            prev = Some((seq, env.hash));
        }
        to.append(&[(first, v.to_vec())])?;
    }
    Ok(())
}

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

fn key_seq(k: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(k)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::corruption(0, "log key is not a seq"))
}

fn with_bytes(c: Option<crate::logfile::Chunk>) -> Option<(u64, Bytes)> {
    c.map(|(first, bytes)| (first, Bytes::new(bytes)))
}

impl Storage for Store {
    fn write_chunks(&self, log: &str, chunks: &[(u64, Vec<u8>)]) -> Result<()> {
        let files = self.log(log)?;
        files.append(chunks)?;
        // A buffered batch reaches the disk within about the window: at
        // the next write after it, or at the next sync or close.
        if files.unsynced_for().is_some_and(|t| t >= BUFFERED_WINDOW) {
            files.sync()?;
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        let logs: Vec<Arc<LogFiles>> = crate::sync::lock(&self.logs).values().cloned().collect();
        for files in logs {
            files.sync()?;
        }
        if !self
            .meta_dirty
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
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
        .inspect_err(|_| {
            self.meta_dirty
                .store(true, std::sync::atomic::Ordering::SeqCst)
        })
    }

    fn chunk_at(&self, log: &str, seq: u64) -> Result<Option<(u64, Bytes)>> {
        let files = self.log(log)?;
        let Some(first) = files.first_at(seq) else {
            return Ok(None);
        };
        if let Some(hit) = crate::sync::lock(&self.cache).get(log, first) {
            return Ok(Some((first, Bytes::new(hit))));
        }
        let Some((first, bytes)) = files.chunk_at(seq)? else {
            return Ok(None);
        };
        let bytes: Arc<[u8]> = bytes.into();
        crate::sync::lock(&self.cache).put(log, first, Arc::clone(&bytes));
        Ok(Some((first, Bytes::new(bytes))))
    }

    fn scan_chunks(&self, log: &str, from: u64) -> ChunkIter<'_> {
        match self.log(log) {
            Ok(files) => {
                let mut next = from;
                Box::new(std::iter::from_fn(move || {
                    let item = files.scan(next).next()?;
                    if let Ok((first, _)) = &item {
                        next = first + 1;
                    }
                    Some(item.map(|(first, bytes)| (first, Bytes::new(bytes))))
                }))
            }
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn last_chunk(&self, log: &str) -> Result<Option<(u64, Bytes)>> {
        Ok(with_bytes(self.log(log)?.last_chunk()?))
    }

    fn drop_log(&self, log: &str) -> Result<()> {
        crate::sync::lock(&self.logs).remove(log);
        crate::sync::lock(&self.cache).forget_log(log);
        let dir = log_dir(&self.dir.join(LOG_DIR), log)?;
        if !dir.exists() {
            return Ok(());
        }
        remove_dir_all(&dir)?;
        crate::sync::sync_dir(&dir)
    }

    fn log_names(&self) -> Result<Vec<String>> {
        let dir = self.dir.join(LOG_DIR).join("branches");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut names = Vec::new();
        for e in entries {
            let e = e.map_err(|e| Error::io(&dir, e))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.meta_dirty
            .store(true, std::sync::atomic::Ordering::SeqCst);
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
        self.meta_dirty
            .store(true, std::sync::atomic::Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_cache_stays_within_its_budget_and_keeps_what_is_used() {
        let mut c = ChunkCache {
            budget: 1000,
            bytes: 0,
            tick: 0,
            map: std::collections::HashMap::new(),
        };
        let chunk = |n: usize| -> Arc<[u8]> { vec![0u8; n].into() };
        c.put("main", 1, chunk(200));
        for first in 2..40 {
            // Chunk 1 stays in use; the others come and go.
            assert!(c.get("main", 1).is_some(), "evicted at {first}");
            c.put("main", first, chunk(100));
            assert!(c.bytes <= c.budget);
        }
        assert!(c.get("main", 2).is_none());
        // Too large for the cache: not kept at all.
        c.put("main", 99, chunk(400));
        assert!(c.get("main", 99).is_none());
        c.forget_log("main");
        assert_eq!((c.bytes, c.map.len()), (0, 0));
    }
}
