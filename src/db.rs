//! [`Annals`], the front door: open a database, write events, read views.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Duration;

use uuid::Uuid;

use crate::branch::{load_branches, Branch};
use crate::entry::Origin;
use crate::error::{Error, Result};
use crate::index::Meta;
use crate::json::Position;
use crate::log::{Body, Entry, Head, Log};
use crate::model::{Event, MAX_REASON_BYTES};

use crate::projection::{ActorRow, Change, CountryRow, DateRow, Feed};
use crate::query::Query;
use crate::read::{At, Line, Reader};
use crate::snapshot::{list_snapshots, SNAPSHOT_DIR};
use crate::state::{self, State, INDEX_DIR};
use crate::store::{SledStore, Storage};
pub(crate) use crate::sync::{lock, read, write};
use crate::time::{now_micros, Granularity, Micros};

/// Most entries in one atomic batch. Larger inputs go through `import`,
/// which commits in batches.
pub const MAX_BATCH_ENTRIES: usize = 100_000;

/// When an append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After the batch is on stable storage: sled's flush, then an fsync of
    /// its data file. Survives a process or machine crash.
    #[default]
    Durable,
    /// After the batch is in sled's in-memory buffers, which sled writes
    /// out in the background every 500 ms. A crash of the process or of the
    /// machine may lose the batches of about the last 500 ms, never part of
    /// one and never an earlier one.
    Buffered,
}

/// A function that wraps the storage engine (see [`Builder::wrap_storage`]).
type StorageWrapper = Box<dyn FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage>>;

/// Options for opening a database; see [`Annals::builder`].
pub struct Builder {
    wrap: Option<StorageWrapper>,
    path: PathBuf,
    durability: Durability,
    cache_capacity_bytes: u64,
    checkpoint_every_entries: u64,
    snapshot_every_entries: u64,
    create: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .field("cache_capacity_bytes", &self.cache_capacity_bytes)
            .field("checkpoint_every_entries", &self.checkpoint_every_entries)
            .field("snapshot_every_entries", &self.snapshot_every_entries)
            .field("create", &self.create)
            .field("wrapped_storage", &self.wrap.is_some())
            .finish()
    }
}

impl Builder {
    /// Durable (the default) or buffered appends.
    pub fn durability(mut self, d: Durability) -> Builder {
        self.durability = d;
        self
    }

    /// sled's page cache size (default 64 MiB).
    pub fn cache_capacity_bytes(mut self, bytes: u64) -> Builder {
        self.cache_capacity_bytes = bytes;
        self
    }

    /// How many entries may pass between flushes of the derived state to
    /// disk (default 100,000): the bound of the in-memory tail, and the
    /// most entries a reopen after a crash replays. Fewer means less memory
    /// and faster opens after a crash, and more, smaller segment files.
    pub fn checkpoint_every_entries(mut self, n: u64) -> Builder {
        self.checkpoint_every_entries = n.max(1);
        self
    }

    /// How many entries may pass between snapshots of the built-in views,
    /// kept on disk so that a view as of any seq replays at most this many
    /// entries (default 50,000).
    pub fn snapshot_every_entries(mut self, n: u64) -> Builder {
        self.snapshot_every_entries = n.max(1);
        self
    }

    /// Wraps the storage engine in a layer of the caller's: the seam that
    /// fault-injection tests (and metrics, or a replicating store) use.
    pub fn wrap_storage(
        mut self,
        wrap: impl FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage> + 'static,
    ) -> Builder {
        self.wrap = Some(Box::new(wrap));
        self
    }

    /// Whether to create the database if it does not exist (default true).
    pub fn create(mut self, create: bool) -> Builder {
        self.create = create;
        self
    }

    /// Opens the database.
    pub fn open(self) -> Result<Annals> {
        Annals::open_with(self)
    }
}

/// One operation of an atomic batch; see [`Annals::write`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Append a new event. If its id exists with identical content this is
    /// a no-op; with different content, a conflict.
    Append(Event),
    /// Replace an event's current version by a complete new one (same id).
    Correct(Event),
    /// Withdraw an event.
    Retract {
        /// The event.
        id: Uuid,
        /// Why.
        reason: String,
    },
}

impl Op {
    /// The id of the event the operation concerns.
    pub fn id(&self) -> Uuid {
        match self {
            Op::Append(e) | Op::Correct(e) => e.id,
            Op::Retract { id, .. } => *id,
        }
    }
}

/// The outcome of one operation of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The entry's seq (for an idempotent no-op, the existing event's).
    pub seq: u64,
    /// The event concerned.
    pub id: Uuid,
    /// False when an append was a no-op because the event already existed.
    pub new_entry: bool,
}

/// An event as it currently stands, with its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The current version.
    pub event: Event,
    /// Seq and transaction time of its creation, seq of its last correction.
    pub position: Position,
    /// Seq of its retraction, if retracted (only [`Annals::get`] returns
    /// retracted events).
    pub retracted_seq: Option<u64>,
}

impl Record {
    /// The interchange JSON of the event with its place in the log
    /// (`seq`, `recorded_at`, `corrected_seq`) and, when retracted,
    /// `retracted_seq`: what `annals get` and `annals query` print.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = crate::json::event_to_value(&self.event, Some(self.position));
        if let (Some(seq), serde_json::Value::Object(m)) = (self.retracted_seq, &mut v) {
            m.insert("retracted_seq".into(), seq.into());
        }
        v
    }
}

/// One version of an event, from [`Annals::history`].
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// The entry's seq.
    pub seq: u64,
    /// The entry's transaction time.
    pub recorded_at: Micros,
    /// `created`, `corrected`, `retracted` or `excised`.
    pub action: &'static str,
    /// The version (none for a retraction or an excised entry).
    pub event: Option<Event>,
    /// A retraction's or an excision's reason.
    pub reason: Option<String>,
    /// For a version written by a merge, the branch entry it came from.
    pub origin: Option<Origin>,
    /// For an excised entry, when the excision was made.
    pub excised_at: Option<Micros>,
}

impl Version {
    /// `{seq, recorded_at, action, event | reason, merged_from?,
    /// excised_at?}`: what `annals history` prints for the version.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = crate::entry::version_json(
            self.seq,
            self.recorded_at,
            self.action,
            None,
            self.event.as_ref(),
            self.reason.as_deref(),
            self.origin.as_ref(),
        );
        if let (Some(at), Some(m)) = (self.excised_at, v.as_object_mut()) {
            m.insert("excised_at".into(), crate::time::format_micros(at).into());
        }
        v
    }
}

/// Sizes and counts, from [`Annals::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Entries in the log.
    pub entries: u64,
    /// Events ever created.
    pub events: u64,
    /// Events neither retracted nor ... simply current.
    pub current: u64,
    /// Events with at least one correction.
    pub corrected: u64,
    /// Retracted events.
    pub retracted: u64,
    /// Rows of the by-country view.
    pub countries: u64,
    /// Rows of the by-actor view.
    pub actors: u64,
    /// Bytes on disk (store and checkpoint).
    pub disk_bytes: u64,
}

/// Rows of the built-in views at one head, shared until the head moves.
#[derive(Default)]
pub(crate) struct RowCache {
    /// The head the rows were built at (`None`: nothing built).
    seq: Option<u64>,
    country: Option<Arc<[CountryRow]>>,
    actor: Option<Arc<[ActorRow]>>,
    /// By granularity, in [`Granularity::ALL`]'s order.
    date: [Option<Arc<[DateRow]>>; 3],
}

pub(crate) struct Writer {
    /// Set when a write failed after it may have reached the disk.
    pub(crate) poisoned: Option<String>,
    /// Whether this instance wrote anything: only then does closing it
    /// flush (a read-only use leaves the files as it found them).
    pub(crate) dirty: bool,
}

/// An open annals database. Cheap to share between threads (`&Annals` is
/// `Send + Sync`): reads run concurrently, writes are serialized, and
/// readers never see part of a batch.
pub struct Annals {
    pub(crate) dir: PathBuf,
    pub(crate) log: Arc<Log>,
    pub(crate) state: RwLock<State>,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) feeds: Mutex<Vec<Box<dyn Feed>>>,
    /// Open branches by name.
    pub(crate) branches: RwLock<BTreeMap<String, Arc<Branch>>>,
    /// View snapshots on disk, by seq.
    pub(crate) snapshots: Mutex<BTreeMap<u64, PathBuf>>,
    /// The views' rows at the head, built on first read.
    pub(crate) rows: Mutex<RowCache>,
    /// Live subscribers to main's committed entries.
    pub(crate) subscribers: Mutex<Vec<Sender<Entry>>>,
    pub(crate) durability: Durability,
    pub(crate) checkpoint_every_entries: u64,
    pub(crate) snapshot_every_entries: u64,
    /// Events whose payload was excised: their ids cannot be used again.
    pub(crate) excised: HashSet<Uuid>,
    /// Held (flock) for as long as the database is open.
    pub(crate) _lock: File,
}

const LOCK_FILE: &str = "LOCK";
const LOCK_RETRIES: u32 = 5;

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
pub(crate) const STORE_DIR: &str = "store";

impl Annals {
    /// Opens the database in folder `path`, creating it if needed, with
    /// default options (durable appends).
    pub fn open(path: impl AsRef<Path>) -> Result<Annals> {
        Annals::builder(path).open()
    }

    /// Whether folder `path` holds an annals database.
    pub fn exists(path: impl AsRef<Path>) -> bool {
        path.as_ref().join(STORE_DIR).is_dir()
    }

    /// Options for opening the database in folder `path`.
    pub fn builder(path: impl AsRef<Path>) -> Builder {
        Builder {
            wrap: None,
            path: path.as_ref().to_path_buf(),
            durability: Durability::Durable,
            cache_capacity_bytes: 64 * 1024 * 1024,
            checkpoint_every_entries: 100_000,
            snapshot_every_entries: 50_000,
            create: true,
        }
    }

    fn open_with(b: Builder) -> Result<Annals> {
        let dir = b.path;
        match fs::metadata(&dir) {
            Ok(m) if !m.is_dir() => {
                return Err(Error::BadPath {
                    path: dir,
                    reason: "is a file, not a database folder".into(),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !b.create {
                    return Err(Error::BadPath {
                        path: dir,
                        reason: "no database here (create one with `annals init`)".into(),
                    });
                }
                fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let lock_file = lock_dir(&dir)?;
        crate::excise::resume(&dir)?;
        let created = !dir.join(STORE_DIR).exists();
        let store = SledStore::open(&dir.join(STORE_DIR), b.cache_capacity_bytes)?;
        let mut store: Arc<dyn Storage> = Arc::new(store);
        if let Some(wrap) = b.wrap {
            store = wrap(store);
        }
        let log = Arc::new(Log::main(store));
        upgrade_derived(&dir)?;
        let state = state::open(&dir.join(INDEX_DIR), &log, b.checkpoint_every_entries)?;
        if created {
            // The names of `LOCK`, `store/` and `index/`, and the folder's
            // own in its parent, reach the disk only with these syncs.
            crate::sync::sync_dir(&dir.join(LOCK_FILE))?;
            crate::sync::sync_dir(&dir)?;
        }
        let branches = load_branches(&log)?;
        let excised = crate::excise::excised_ids(log.store())?;
        let snapshots = list_snapshots(&dir.join(SNAPSHOT_DIR));
        Ok(Annals {
            dir,
            log,
            state: RwLock::new(state),
            writer: Mutex::new(Writer {
                poisoned: None,
                dirty: false,
            }),
            feeds: Mutex::new(Vec::new()),
            branches: RwLock::new(branches),
            snapshots: Mutex::new(snapshots),
            subscribers: Mutex::new(Vec::new()),
            rows: Mutex::new(RowCache::default()),
            durability: b.durability,
            checkpoint_every_entries: b.checkpoint_every_entries,
            snapshot_every_entries: b.snapshot_every_entries,
            excised,
            _lock: lock_file,
        })
    }

    /// Another descriptor of the held database lock, which keeps it held
    /// after this instance is dropped.
    pub(crate) fn lock_handle(&self) -> Result<File> {
        self._lock
            .try_clone()
            .map_err(|e| Error::io(self.dir.join(LOCK_FILE), e))
    }

    /// The database folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The last entry: its seq (0 when empty) and chain hash.
    pub fn head(&self) -> Head {
        read(&self.state).head
    }

    /// Appends events atomically; see [`Annals::write`].
    pub fn append(&self, events: Vec<Event>) -> Result<Vec<Written>> {
        self.write(events.into_iter().map(Op::Append).collect(), None)
    }

    /// Appends a complete new version of event `event.id`.
    pub fn correct(&self, event: Event) -> Result<u64> {
        let w = self.write(vec![Op::Correct(event)], None)?;
        Ok(w.first().map_or(0, |w| w.seq))
    }

    /// Retracts event `id`, giving a reason.
    pub fn retract(&self, id: Uuid, reason: &str) -> Result<u64> {
        let w = self.write(
            vec![Op::Retract {
                id,
                reason: reason.to_string(),
            }],
            None,
        )?;
        Ok(w.first().map_or(0, |w| w.seq))
    }

    /// Writes a batch of operations atomically: all of them or, on any
    /// error, none. With `expect_seq`, fails unless the head is at that seq
    /// (optimistic concurrency). Returns once durable (see [`Durability`]).
    pub fn write(&self, ops: Vec<Op>, expect_seq: Option<u64>) -> Result<Vec<Written>> {
        check_batch(&ops)?;
        self.write_with(expect_seq, false, |_| Ok((ops, ())))
            .map(|(written, ())| written)
    }

    /// Like [`Annals::write`], with the operations decided by `decide`
    /// under the writer lock, from the state they will apply to: nothing
    /// can change between the decision and the write (importers' upserts).
    /// `validated`: every event of the ops has passed [`Event::validate`]
    /// already (importers validate as they parse, on another thread).
    pub(crate) fn write_with<T>(
        &self,
        expect_seq: Option<u64>,
        validated: bool,
        decide: impl FnOnce(&State) -> Result<(Vec<Op>, T)>,
    ) -> Result<(Vec<Written>, T)> {
        let mut writer = self.lock_writer()?;
        check_expected(read(&self.state).head, expect_seq)?;
        let (ops, decided) = decide(&read(&self.state))?;
        check_batch(&ops)?;
        let written = self.commit_main(&mut writer, ops, validated, &[])?;
        Ok((written, decided))
    }

    /// The writer lock, refused while a failed write poisons it.
    pub(crate) fn lock_writer(&self) -> Result<MutexGuard<'_, Writer>> {
        let writer = lock(&self.writer);
        if let Some(why) = &writer.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        Ok(writer)
    }

    /// Prepares and appends a batch to main under the writer lock, then
    /// brings the derived state, feeds and subscribers up to it. `origins`
    /// (by op; may be empty) marks merged entries.
    pub(crate) fn commit_main(
        &self,
        writer: &mut Writer,
        ops: Vec<Op>,
        validated: bool,
        origins: &[Option<Origin>],
    ) -> Result<Vec<Written>> {
        let head = read(&self.state).head;
        let Prepared {
            entries,
            befores,
            written,
        } = {
            let state = read(&self.state);
            self.prepare(&self.log, head, ops, validated, origins, |id| {
                Ok(state.index.lookup(&id)?.map(|(_, m)| Pending {
                    created: m.seq,
                    original: Where::Log(m.seq),
                    current: m.retracted.is_none().then_some(Where::Log(m.current)),
                }))
            })?
        };
        if entries.is_empty() {
            return Ok(written);
        }
        let new_head = self.append_locked(writer, &self.log, head, &entries)?;
        writer.dirty = true;
        // From here the batch is committed: nothing below may report it
        // as failed (a retried correction would then apply twice).
        {
            let mut state = write(&self.state);
            state.head = new_head;
            for (entry, before) in entries.iter().zip(&befores) {
                if let Err(e) = state.apply(entry, before.as_ref()) {
                    // The derived state cannot follow the log (a damaged
                    // segment or view file): reads stay at the prefix it
                    // holds, writes are refused until a reopen rebuilds it.
                    writer.poisoned = Some(format!("updating the index at seq {}: {e}", entry.seq));
                    if let Ok(h) = self.log.head_at(entry.seq - 1) {
                        state.head = h;
                    }
                    break;
                }
            }
        }
        self.feed(&entries, &befores);
        lock(&self.subscribers).retain(|tx| entries.iter().all(|e| tx.send(e.clone()).is_ok()));
        // Snapshots and flushes are caches of the log: a failure here is
        // retried at the next batch, at close, or rebuilt on open.
        if new_head.seq / self.snapshot_every_entries > head.seq / self.snapshot_every_entries {
            let _ = self.snapshot_locked(writer);
        }
        if read(&self.state).index.tail_entries() >= self.checkpoint_every_entries {
            let _ = self.checkpoint_locked(writer);
        }
        Ok(written)
    }

    /// Appends prepared entries to a log. An entry refused by the encoder
    /// (too large) fails the batch before anything is written, and the
    /// writer stays usable. A failed write poisons the writer: the batch
    /// may or may not be on disk, and only a reopen, which rebuilds from
    /// what is there, can tell.
    pub(crate) fn append_locked(
        &self,
        writer: &mut Writer,
        log: &Log,
        head: Head,
        entries: &[Entry],
    ) -> Result<Head> {
        let encoded = log.encode(head, entries)?;
        log.write(encoded, self.durability == Durability::Durable)
            .inspect_err(|e| writer.poisoned = Some(e.to_string()))
    }

    /// Checks a batch against a log's state (`known` says what is known of
    /// an id before the batch) and turns it into entries, with each entry's
    /// `before` version. Writes nothing. With `validated`, the events are
    /// known to be valid already and are not checked again.
    pub(crate) fn prepare(
        &self,
        log: &Log,
        head: Head,
        ops: Vec<Op>,
        validated: bool,
        origins: &[Option<Origin>],
        known_before: impl Fn(Uuid) -> Result<Option<Pending>>,
    ) -> Result<Prepared> {
        // Strictly increasing, so that each batch has its own transaction
        // time (the log tells its batches apart by it after a crash, see
        // `Log::drop_torn_tail`), even when the clock stalls or steps back.
        let recorded_at = now_micros().max(head.recorded_at.saturating_add(1));
        let mut pending: HashMap<Uuid, Pending> = HashMap::new();
        let mut entries: Vec<Entry> = Vec::with_capacity(ops.len());
        let mut befores = Vec::with_capacity(ops.len());
        let mut written = Vec::with_capacity(ops.len());
        for (i, op) in ops.into_iter().enumerate() {
            let id = op.id();
            let at = || format!("event {id}");
            let next = head.seq + 1 + entries.len() as u64;
            let here = Where::Batch(entries.len());
            if self.excised.contains(&id) {
                return Err(Error::Conflict {
                    at: at(),
                    reason: "the event was excised; its id cannot be used again".into(),
                });
            }
            let known = match pending.get(&id) {
                Some(p) => Some(*p),
                None => known_before(id)?,
            };
            let body = match op {
                Op::Append(e) => {
                    let e = if validated {
                        e
                    } else {
                        e.validate().map_err(|err| err.at(at()))?
                    };
                    if let Some(p) = known {
                        if self.version(log, &entries, p.original)? != e {
                            return Err(Error::Conflict {
                                at: at(),
                                reason: format!(
                                    "id exists (seq {}) with different content; \
                                     use `correct` to change an event",
                                    p.created
                                ),
                            });
                        }
                        written.push(Written {
                            seq: p.created,
                            id,
                            new_entry: false,
                        });
                        continue;
                    }
                    pending.insert(
                        id,
                        Pending {
                            created: next,
                            original: here,
                            current: Some(here),
                        },
                    );
                    befores.push(None);
                    Body::Event(e)
                }
                Op::Correct(e) => {
                    let e = if validated {
                        e
                    } else {
                        e.validate().map_err(|err| err.at(at()))?
                    };
                    let (p, current) = changeable(known, &at)?;
                    befores.push(Some(self.version(log, &entries, current)?));
                    pending.insert(
                        id,
                        Pending {
                            current: Some(here),
                            ..p
                        },
                    );
                    Body::Correction(e)
                }
                Op::Retract { id, reason } => {
                    if reason.len() > MAX_REASON_BYTES {
                        return Err(Error::invalid(
                            "reason",
                            format!("{} bytes; the limit is {MAX_REASON_BYTES}", reason.len()),
                        )
                        .at(at()));
                    }
                    let (p, current) = changeable(known, &at)?;
                    befores.push(Some(self.version(log, &entries, current)?));
                    pending.insert(id, Pending { current: None, ..p });
                    Body::Retraction { id, reason }
                }
            };
            written.push(Written {
                seq: next,
                id,
                new_entry: true,
            });
            entries.push(Entry {
                seq: next,
                recorded_at,
                body,
                origin: origins.get(i).cloned().flatten(),
            });
        }
        Ok(Prepared {
            entries,
            befores,
            written,
        })
    }

    /// An event version, from the batch being prepared or from the log.
    fn version(&self, log: &Log, entries: &[Entry], at: Where) -> Result<Event> {
        match at {
            Where::Log(seq) => log.read_event(seq),
            Where::Batch(i) => entries
                .get(i)
                .and_then(|e| e.body.event())
                .cloned()
                .ok_or_else(|| Error::Storage(format!("internal: no event at batch position {i}"))),
        }
    }

    fn feed(&self, entries: &[Entry], befores: &[Option<Event>]) {
        let feeds = lock(&self.feeds);
        if feeds.is_empty() {
            return;
        }
        for (entry, before) in entries.iter().zip(befores) {
            let change = Change {
                seq: entry.seq,
                recorded_at: entry.recorded_at,
                id: entry.body.id(),
                before: before.as_ref(),
                after: entry.body.event(),
                entry,
            };
            for f in feeds.iter() {
                f.feed(&change);
            }
        }
    }

    /// The current state of event `id`, retracted or not; `None` if no such
    /// event exists.
    pub fn get(&self, id: Uuid) -> Result<Option<Record>> {
        self.head_reader().get(id)
    }

    /// Every version of event `id`, oldest first; empty if unknown.
    pub fn history(&self, id: Uuid) -> Result<Vec<Version>> {
        self.head_reader().history(id)
    }

    /// A reader of main at its current head.
    fn head_reader(&self) -> Reader<'_> {
        Reader::at(self, Line::Main, self.head().seq)
    }

    /// Current events matching `query`, ordered by occurrence start then
    /// seq. Only the matching events are read from the log.
    pub fn query(&self, query: &Query) -> Result<Vec<Record>> {
        query.validate()?;
        let hits = read(&self.state).select(query)?;
        self.current_records(&hits)
    }

    /// The records of events whose current versions `metas` point at,
    /// read from the log in seq order (a chunk once for all it holds).
    pub(crate) fn current_records(&self, metas: &[Meta]) -> Result<Vec<Record>> {
        let seqs: Vec<u64> = metas.iter().map(|m| m.current).collect();
        let events = self.log.read_events(&seqs)?;
        Ok(metas
            .iter()
            .zip(events)
            .map(|(meta, event)| Record {
                event,
                position: Position {
                    seq: meta.seq,
                    recorded_at: meta.recorded_at,
                    corrected_seq: meta.corrected_seq(),
                },
                retracted_seq: meta.retracted,
            })
            .collect())
    }

    /// The by-country view: one row per country, sorted by code. Fails
    /// only if the view's file is damaged.
    pub fn by_country(&self) -> Result<Arc<[CountryRow]>> {
        self.cached_rows(|c| &mut c.country, State::country_rows)
    }

    /// The by-actor view: one row per actor, sorted by matching key.
    pub fn by_actor(&self) -> Result<Arc<[ActorRow]>> {
        self.cached_rows(|c| &mut c.actor, State::actor_rows)
    }

    /// The by-date view at a granularity, in bucket order.
    pub fn by_date(&self, granularity: Granularity) -> Result<Arc<[DateRow]>> {
        let slot = Granularity::ALL
            .iter()
            .position(|g| *g == granularity)
            .unwrap_or(0);
        self.cached_rows(|c| &mut c.date[slot], |s| s.date_rows(granularity))
    }

    /// A view's rows at the head: built once per head and shared (an
    /// `Arc`) by every read until the next write, so that repeated reads
    /// cost nothing whatever the log's length.
    fn cached_rows<R>(
        &self,
        slot: impl FnOnce(&mut RowCache) -> &mut Option<Arc<[R]>>,
        build: impl FnOnce(&State) -> Result<Vec<R>>,
    ) -> Result<Arc<[R]>> {
        let state = read(&self.state);
        let mut cache = lock(&self.rows);
        if cache.seq != Some(state.head.seq) {
            *cache = RowCache {
                seq: Some(state.head.seq),
                ..RowCache::default()
            };
        }
        let slot = slot(&mut cache);
        if let Some(rows) = slot {
            return Ok(rows.clone());
        }
        let rows: Arc<[R]> = build(&state)?.into();
        *slot = Some(rows.clone());
        Ok(rows)
    }

    /// Sizes and counts. Counting reads every event's metadata.
    pub fn stats(&self) -> Result<Stats> {
        let state = read(&self.state);
        let events = state.index.len() as u64;
        let (current, corrected) = state.index.counts()?;
        Ok(Stats {
            entries: state.head.seq,
            events,
            current: current as u64,
            corrected: corrected as u64,
            retracted: events - current as u64,
            countries: state.views.by_country()?.len() as u64,
            actors: state.views.by_actor()?.len() as u64,
            disk_bytes: self.log.store().disk_bytes()
                + state::disk_bytes(&self.dir.join(INDEX_DIR)),
        })
    }

    /// Rebuilds the index and every built-in view from the log, replacing
    /// the kept state and its files.
    pub fn rebuild(&self) -> Result<()> {
        let _writer = lock(&self.writer);
        self.log.store().sync()?;
        let dir = self.dir.join(INDEX_DIR);
        state::discard(&dir)?;
        let fresh = RwLock::new(state::open(&dir, &self.log, self.checkpoint_every_entries)?);
        state::flush(&fresh, &dir)?;
        *write(&self.state) = fresh.into_inner().unwrap_or_else(|p| p.into_inner());
        *lock(&self.rows) = RowCache::default();
        Ok(())
    }

    /// Writes a checkpoint of the derived state now.
    pub fn checkpoint(&self) -> Result<()> {
        let mut writer = lock(&self.writer);
        self.checkpoint_locked(&mut writer)
    }

    fn checkpoint_locked(&self, writer: &mut Writer) -> Result<()> {
        if writer.poisoned.is_some() {
            return Ok(());
        }
        // The log first: the manifest must never be ahead of the durable
        // log, so that a log shorter than it proves damage.
        self.log.store().sync()?;
        state::flush(&self.state, &self.dir.join(INDEX_DIR))?;
        let head = read(&self.state).head;
        for f in lock(&self.feeds).iter() {
            f.checkpoint(head, self.log.store())?;
        }
        Ok(())
    }

    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        read(&self.state)
    }

    pub(crate) fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// An open branch by name.
    pub(crate) fn branch(&self, name: &str) -> Result<Arc<Branch>> {
        read(&self.branches)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                at: String::new(),
                what: format!("no branch named `{name}`"),
            })
    }

    /// A reader of main or a branch, at its head or as of a seq or time.
    /// An `as_of` before the first entry reads an empty log; one past the
    /// head reads the head.
    pub fn reader(&self, at: &At) -> Result<Reader<'_>> {
        Reader::new(self, at)
    }

    /// Checkpoints, syncs and closes the database, reporting any error
    /// (dropping it does the same but can only ignore errors).
    pub fn close(self) -> Result<()> {
        let mut writer = lock(&self.writer);
        if writer.dirty {
            self.log.store().sync()?;
            self.checkpoint_locked(&mut writer)?;
            writer.dirty = false;
        }
        Ok(())
    }
}

/// Removes the derived files of the first on-disk format (annals before
/// December 2026): a whole-state checkpoint and view snapshots of another
/// layout. The log is read as it is (its entries keep their format); the
/// index and views are rebuilt from it on this open.
fn upgrade_derived(dir: &Path) -> Result<()> {
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

/// Where a version of an event is while a batch is prepared.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Where {
    /// Entry `i` of the batch.
    Batch(usize),
    /// The log entry with this seq.
    Log(u64),
}

/// An event as the batch being prepared sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    /// Seq of the entry that created it.
    pub(crate) created: u64,
    /// Its first version (for the idempotency check).
    pub(crate) original: Where,
    /// Its current version; none if retracted.
    pub(crate) current: Option<Where>,
}

/// A batch turned into entries: each entry's `before` version, and what
/// to report per operation.
pub(crate) struct Prepared {
    pub(crate) entries: Vec<Entry>,
    pub(crate) befores: Vec<Option<Event>>,
    pub(crate) written: Vec<Written>,
}

/// The current version of an event about to be corrected or retracted.
fn changeable(known: Option<Pending>, at: &dyn Fn() -> String) -> Result<(Pending, Where)> {
    match known {
        None => Err(Error::NotFound {
            at: at(),
            what: "no event with this id".into(),
        }),
        Some(Pending { current: None, .. }) => Err(Error::Conflict {
            at: at(),
            reason: "the event is retracted; a retracted event cannot be corrected or retracted"
                .into(),
        }),
        Some(
            p @ Pending {
                current: Some(v), ..
            },
        ) => Ok((p, v)),
    }
}

/// Fails on an oversized batch.
pub(crate) fn check_batch(ops: &[Op]) -> Result<()> {
    if ops.len() > MAX_BATCH_ENTRIES {
        return Err(Error::invalid(
            "-",
            format!(
                "batch of {} operations; the limit is {MAX_BATCH_ENTRIES}",
                ops.len()
            ),
        ));
    }
    Ok(())
}

/// Fails unless the head is at the expected seq.
pub(crate) fn check_expected(head: Head, expect_seq: Option<u64>) -> Result<()> {
    match expect_seq {
        Some(expected) if expected != head.seq => Err(Error::SeqMismatch {
            expected,
            actual: head.seq,
        }),
        _ => Ok(()),
    }
}

impl Drop for Annals {
    fn drop(&mut self) {
        let mut writer = lock(&self.writer);
        if writer.dirty {
            let _ = self.log.store().sync();
            let _ = self.checkpoint_locked(&mut writer);
        }
    }
}
