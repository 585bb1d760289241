//! [`Annals`], the front door: open a database, write events, read views.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use uuid::Uuid;

use crate::branch::{check_branch_name, Branch, BranchInfo, BranchMeta, MAX_BRANCH_ENTRIES};
use crate::error::{Error, Result};
use crate::integrity::VerifyReport;
use crate::json::Position;
use crate::log::EntryIter;
use crate::log::{Body, Entry, Head, Log};
use crate::model::{Event, MAX_REASON_BYTES};
use crate::projection::Views;
use crate::projection::{ActorRow, Change, CountryRow, DateRow, Projection};
use crate::query::Query;
use crate::read::{diff_rows, keyed_rows, Against, AsOf, At, DiffRow, Reader, ViewKind};
use crate::state::{load_state, save_checkpoint, State};
use crate::store::{SledStore, Storage};
use crate::time::{format_micros, now_micros, Granularity, Micros};

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
    /// After the batch is in sled's buffers. A process crash keeps it (sled
    /// writes it out in the background, every 500 ms); a machine crash may
    /// lose the last such batches, never part of one.
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

    /// How many entries may pass between checkpoints of the derived state
    /// (default 100,000). Fewer means faster opens after a crash and more
    /// time spent writing checkpoints.
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

/// One version of an event, from [`Annals::history`].
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// The entry's seq.
    pub seq: u64,
    /// The entry's transaction time.
    pub recorded_at: Micros,
    /// `created`, `corrected` or `retracted`.
    pub action: &'static str,
    /// The version (none for a retraction).
    pub event: Option<Event>,
    /// A retraction's reason.
    pub reason: Option<String>,
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

/// A user projection kept current by the database; see
/// [`Annals::register`].
pub struct Registered<P: Projection> {
    state: Arc<RwLock<(u64, P::State)>>,
}

impl<P: Projection> Registered<P> {
    /// A copy of the projection's state, and the seq it is current to.
    pub fn state(&self) -> (u64, P::State) {
        read(&self.state).clone()
    }

    /// Runs `f` on the state without copying it.
    pub fn with_state<T>(&self, f: impl FnOnce(u64, &P::State) -> T) -> T {
        let guard = read(&self.state);
        f(guard.0, &guard.1)
    }
}

/// Type-erased registered projection, fed by the writer.
trait Feed: Send + Sync {
    fn name(&self) -> &str;
    fn feed(&self, change: &Change<'_>);
    fn checkpoint(&self, head: Head, store: &dyn Storage) -> Result<()>;
    /// Whether the kept state encodes like a replay (`None` if the
    /// projection does not encode its state).
    fn matches_replay(&self, db: &Annals) -> Result<Option<bool>>;
}

struct Fed<P: Projection> {
    projection: P,
    state: Arc<RwLock<(u64, P::State)>>,
}

impl<P: Projection> Feed for Fed<P> {
    fn name(&self) -> &str {
        self.projection.name()
    }

    fn matches_replay(&self, db: &Annals) -> Result<Option<bool>> {
        let (seq, kept) = {
            let guard = read(&self.state);
            (guard.0, self.projection.encode(&guard.1))
        };
        let Some(kept) = kept else {
            return Ok(None);
        };
        let replayed = db.replay(&self.projection, Some(seq))?;
        Ok(Some(self.projection.encode(&replayed) == Some(kept)))
    }

    fn feed(&self, change: &Change<'_>) {
        let mut guard = write(&self.state);
        self.projection.apply(&mut guard.1, change);
        guard.0 = change.seq;
    }

    fn checkpoint(&self, head: Head, store: &dyn Storage) -> Result<()> {
        let guard = read(&self.state);
        if let Some(bytes) = self.projection.encode(&guard.1) {
            store.put_meta(
                &projection_key(self.projection.name()),
                &checkpoint_bytes(head, &bytes),
            )?;
        }
        Ok(())
    }
}

fn projection_key(name: &str) -> String {
    format!("projection/{name}")
}

fn checkpoint_bytes(head: Head, state: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(40 + state.len());
    v.extend_from_slice(&head.seq.to_be_bytes());
    v.extend_from_slice(&head.hash);
    v.extend_from_slice(state);
    v
}

/// Locks that survive a panicking holder: the data under them is only
/// replaced whole, so a poisoned lock still guards consistent data.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Writer {
    /// Set when a write failed after it may have reached the disk.
    poisoned: Option<String>,
    /// Head of the last checkpoint written.
    checkpointed: u64,
}

/// An open annals database. Cheap to share between threads (`&Annals` is
/// `Send + Sync`): reads run concurrently, writes are serialized, and
/// readers never see part of a batch.
pub struct Annals {
    dir: PathBuf,
    log: Arc<Log>,
    state: RwLock<State>,
    writer: Mutex<Writer>,
    feeds: Mutex<Vec<Box<dyn Feed>>>,
    /// Open branches by name.
    branches: RwLock<BTreeMap<String, Arc<Branch>>>,
    /// View snapshots on disk, by seq.
    snapshots: Mutex<BTreeMap<u64, PathBuf>>,
    /// Live subscribers to main's committed entries.
    subscribers: Mutex<Vec<Sender<Entry>>>,
    durability: Durability,
    checkpoint_every_entries: u64,
    snapshot_every_entries: u64,
    /// Held (flock) for as long as the database is open.
    _lock: File,
}

const LOCK_FILE: &str = "LOCK";
const LOCK_RETRIES: u32 = 5;
const STORE_DIR: &str = "store";
const CHECKPOINT_FILE: &str = "state.ckpt";
const SNAPSHOT_DIR: &str = "snapshots";
const BRANCH_KEY: &str = "branch/";

impl Annals {
    /// Opens the database in folder `path`, creating it if needed, with
    /// default options (durable appends).
    pub fn open(path: impl AsRef<Path>) -> Result<Annals> {
        Annals::builder(path).open()
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
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        // A few short retries: a child process forked by this one (by any
        // thread) shares the lock until it execs, so a database closed and
        // reopened in a process that spawns children can look in use for
        // a moment. Another process that holds it still gets `InUse` within
        // 50 ms.
        let mut tries = 0;
        loop {
            match lock_file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < LOCK_RETRIES => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => return Err(Error::InUse { path: dir }),
                Err(TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
            }
        }
        let store = SledStore::open(&dir.join(STORE_DIR), b.cache_capacity_bytes)?;
        let mut store: Arc<dyn Storage> = Arc::new(store);
        if let Some(wrap) = b.wrap {
            store = wrap(store);
        }
        let log = Arc::new(Log::main(store));
        let head = log.head()?;
        let mut state = match load_state(&dir.join(CHECKPOINT_FILE)) {
            Some(s) if s.head.seq <= head.seq && log.head_at(s.head.seq).ok() == Some(s.head) => s,
            // An intact checkpoint is only written once the log up to its
            // head is durable: a log that is shorter, or differs at that
            // seq, lost or changed acknowledged entries.
            Some(s) => {
                return Err(Error::corruption(
                    (head.seq + 1).min(s.head.seq),
                    format!(
                        "the log ends at seq {} but entries up to seq {} were durable \
                         (per the checkpoint); entries were lost or changed",
                        head.seq, s.head.seq
                    ),
                ))
            }
            None => State::default(),
        };
        let branches = load_branches(&log)?;
        let snapshots = list_snapshots(&dir.join(SNAPSHOT_DIR));
        let checkpointed = state.head.seq;
        state.catch_up(&log, None, |_, _| {})?;
        if state.head != head {
            return Err(Error::corruption(
                head.seq,
                format!(
                    "the log's last entry is seq {} but replay ended at seq {}",
                    head.seq, state.head.seq
                ),
            ));
        }
        Ok(Annals {
            dir,
            log,
            state: RwLock::new(state),
            writer: Mutex::new(Writer {
                poisoned: None,
                checkpointed,
            }),
            feeds: Mutex::new(Vec::new()),
            branches: RwLock::new(branches),
            snapshots: Mutex::new(snapshots),
            subscribers: Mutex::new(Vec::new()),
            durability: b.durability,
            checkpoint_every_entries: b.checkpoint_every_entries,
            snapshot_every_entries: b.snapshot_every_entries,
            _lock: lock_file,
        })
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
        let mut writer = lock(&self.writer);
        if let Some(why) = &writer.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        let head = read(&self.state).head;
        check_expected(head, expect_seq)?;
        let Prepared {
            entries,
            befores,
            written,
        } = {
            let state = read(&self.state);
            self.prepare(&self.log, head, ops, |id| {
                Ok(state.index.lookup(&id).map(|(_, m)| Pending {
                    created: m.seq,
                    original: Where::Log(m.seq),
                    current: m.retracted.is_none().then_some(Where::Log(m.current)),
                }))
            })?
        };
        if entries.is_empty() {
            return Ok(written);
        }
        let new_head = self.append_locked(&mut writer, &self.log, head, &entries)?;
        {
            let mut state = write(&self.state);
            for (entry, before) in entries.iter().zip(&befores) {
                state.apply(entry, before.as_ref());
            }
            state.head = new_head;
        }
        self.feed(&entries, &befores);
        lock(&self.subscribers).retain(|tx| entries.iter().all(|e| tx.send(e.clone()).is_ok()));
        if new_head.seq / self.snapshot_every_entries > head.seq / self.snapshot_every_entries {
            self.snapshot_locked(&writer)?;
        }
        if new_head.seq - writer.checkpointed >= self.checkpoint_every_entries {
            self.checkpoint_locked(&mut writer)?;
        }
        Ok(written)
    }

    /// Appends prepared entries to a log, poisoning the writer on failure:
    /// the batch may or may not be on disk, and only a reopen, which
    /// rebuilds from what is there, can tell.
    fn append_locked(
        &self,
        writer: &mut Writer,
        log: &Log,
        head: Head,
        entries: &[Entry],
    ) -> Result<Head> {
        log.append(head, entries, self.durability == Durability::Durable)
            .inspect_err(|e| writer.poisoned = Some(e.to_string()))
    }

    /// Writes a batch to branch `name`; see [`Annals::write`]. Main never
    /// sees it.
    pub fn write_branch(
        &self,
        name: &str,
        ops: Vec<Op>,
        expect_seq: Option<u64>,
    ) -> Result<Vec<Written>> {
        check_batch(&ops)?;
        let branch = self.branch(name)?;
        let mut writer = lock(&self.writer);
        if let Some(why) = &writer.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        let head = branch.head();
        check_expected(head, expect_seq)?;
        let own = read(&branch.entries).len();
        if own + ops.len() > MAX_BRANCH_ENTRIES {
            return Err(Error::invalid(
                "branch",
                format!("branch `{name}` would exceed {MAX_BRANCH_ENTRIES} entries of its own"),
            ));
        }
        let reader = Reader::new(self, &At::head().branch(name))?;
        let Prepared {
            entries, written, ..
        } = self.prepare(&branch.log, head, ops, |id| {
            Ok(reader.get(id)?.map(|r| Pending {
                created: r.position.seq,
                original: Where::Log(r.position.seq),
                current: r.retracted_seq.is_none().then_some(Where::Log(
                    r.position.corrected_seq.unwrap_or(r.position.seq),
                )),
            }))
        })?;
        if entries.is_empty() {
            return Ok(written);
        }
        let new_head = self.append_locked(&mut writer, &branch.log, head, &entries)?;
        write(&branch.entries).extend(entries);
        *write(&branch.head) = new_head;
        *lock(&branch.views) = None;
        // Record the head, so that a branch log found shorter on open is
        // reported as damage rather than read as a shorter history.
        let meta = BranchMeta {
            durable_head: new_head,
            ..branch.meta.clone()
        };
        if let Err(e) = self.put_branch_meta(&meta) {
            writer.poisoned = Some(e.to_string());
            return Err(e);
        }
        Ok(written)
    }

    fn put_branch_meta(&self, meta: &BranchMeta) -> Result<()> {
        let bytes = bincode::serde::encode_to_vec(meta, bincode::config::standard())
            .map_err(|e| Error::Storage(format!("encoding branch metadata: {e}")))?;
        let store = self.log.store();
        store.put_meta(&format!("{BRANCH_KEY}{}", meta.name), &bytes)?;
        store.sync()
    }

    /// Checks a batch against a log's state (`known` says what is known of
    /// an id before the batch) and turns it into entries, with each entry's
    /// `before` version. Writes nothing.
    fn prepare(
        &self,
        log: &Log,
        head: Head,
        ops: Vec<Op>,
        known_before: impl Fn(Uuid) -> Result<Option<Pending>>,
    ) -> Result<Prepared> {
        let recorded_at = now_micros().max(head.recorded_at);
        let mut pending: HashMap<Uuid, Pending> = HashMap::new();
        let mut entries: Vec<Entry> = Vec::with_capacity(ops.len());
        let mut befores = Vec::with_capacity(ops.len());
        let mut written = Vec::with_capacity(ops.len());
        for op in ops {
            let id = op.id();
            let at = || format!("event {id}");
            let next = head.seq + 1 + entries.len() as u64;
            let here = Where::Batch(entries.len());
            let known = match pending.get(&id) {
                Some(p) => Some(*p),
                None => known_before(id)?,
            };
            let body = match op {
                Op::Append(e) => {
                    let e = e.validate().map_err(|err| err.at(at()))?;
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
                    let e = e.validate().map_err(|err| err.at(at()))?;
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
        let Some((_, meta)) = read(&self.state).index.lookup(&id) else {
            return Ok(None);
        };
        let event = self.log.read_event(meta.current)?;
        Ok(Some(Record {
            event,
            position: Position {
                seq: meta.seq,
                recorded_at: meta.recorded_at,
                corrected_seq: meta.corrected_seq(),
            },
            retracted_seq: meta.retracted,
        }))
    }

    /// Every version of event `id`, oldest first; empty if unknown.
    pub fn history(&self, id: Uuid) -> Result<Vec<Version>> {
        let seqs = {
            let state = read(&self.state);
            match state.index.lookup(&id) {
                Some((n, _)) => state.index.versions(n),
                None => return Ok(Vec::new()),
            }
        };
        seqs.into_iter()
            .map(|seq| {
                let entry = self.log.read(seq)?;
                let action = entry.body.action();
                let (event, reason) = match entry.body {
                    Body::Event(e) | Body::Correction(e) => (Some(e), None),
                    Body::Retraction { reason, .. } => (None, Some(reason)),
                };
                Ok(Version {
                    seq,
                    recorded_at: entry.recorded_at,
                    action,
                    event,
                    reason,
                })
            })
            .collect()
    }

    /// Current events matching `query`, ordered by occurrence start then
    /// seq. Only the matching events are read from the log.
    pub fn query(&self, query: &Query) -> Result<Vec<Record>> {
        query.validate()?;
        let hits = read(&self.state).select(query);
        hits.into_iter()
            .map(|m| {
                Ok(Record {
                    event: self.log.read_event(m.current)?,
                    position: Position {
                        seq: m.seq,
                        recorded_at: m.recorded_at,
                        corrected_seq: m.corrected_seq(),
                    },
                    retracted_seq: None,
                })
            })
            .collect()
    }

    /// The by-country view: one row per country, sorted by code.
    pub fn by_country(&self) -> Vec<CountryRow> {
        read(&self.state).country_rows()
    }

    /// The by-actor view: one row per actor, sorted by matching key.
    pub fn by_actor(&self) -> Vec<ActorRow> {
        read(&self.state).actor_rows()
    }

    /// The by-date view at a granularity, in bucket order.
    pub fn by_date(&self, granularity: Granularity) -> Vec<DateRow> {
        read(&self.state).date_rows(granularity)
    }

    /// Sizes and counts.
    pub fn stats(&self) -> Stats {
        let state = read(&self.state);
        let events = state.index.len() as u64;
        let current = state.index.current_count() as u64;
        let ckpt = fs::metadata(self.dir.join(CHECKPOINT_FILE)).map_or(0, |m| m.len());
        Stats {
            entries: state.head.seq,
            events,
            current,
            corrected: state.index.corrected_count() as u64,
            retracted: events - current,
            countries: state.country_rows().len() as u64,
            actors: state.actor_rows().len() as u64,
            disk_bytes: self.log.store().disk_bytes() + ckpt,
        }
    }

    /// Rebuilds the index and every built-in view from the log, replacing
    /// the kept state, and writes a fresh checkpoint.
    pub fn rebuild(&self) -> Result<()> {
        let mut writer = lock(&self.writer);
        let mut fresh = State::default();
        fresh.catch_up(&self.log, None, |_, _| {})?;
        *write(&self.state) = fresh;
        self.checkpoint_locked(&mut writer)
    }

    /// Checks everything: every entry's checksum and chain link, gapless
    /// seqs, the id index and posting lists, every built-in view and every
    /// persisted user projection against a replay, every branch's base and
    /// entries. Returns the head it checked up to; damage is
    /// [`Error::Corruption`] with the first bad seq.
    pub fn verify(&self) -> Result<Head> {
        self.verify_from(1).map(|r| r.head)
    }

    /// Like [`Annals::verify`], checking the log and the index from seq
    /// `from` on, and the views by folding from the last snapshot before
    /// `from`: an incremental check after a full one.
    pub fn verify_from(&self, from: u64) -> Result<VerifyReport> {
        let _writer = lock(&self.writer);
        crate::integrity::verify(self, from)
    }

    /// Proves that entry `seq` is part of the chain that ends in `anchor`
    /// (a head recorded earlier, e.g. printed by `annals head` and kept
    /// elsewhere): re-reads entries `seq..=anchor.seq`, checks every link
    /// and that the last hash is the anchor's. Returns entry `seq`'s hash.
    /// If this passes, neither that entry nor any between it and the
    /// anchor has changed since the anchor was taken.
    pub fn prove(&self, seq: u64, anchor: Head) -> Result<crate::log::Hash> {
        if seq == 0 || seq > anchor.seq {
            return Err(Error::invalid(
                "seq",
                format!("{seq} is not in 1..={} (the anchor's seq)", anchor.seq),
            ));
        }
        let start = self.log.head_at(seq - 1)?;
        let mut entry_hash = None;
        let mut last = start;
        for item in self.log.entries_after(start) {
            let (entry, hash) = item?;
            if entry.seq == seq {
                entry_hash = Some(hash);
            }
            last = Head {
                seq: entry.seq,
                hash,
                recorded_at: entry.recorded_at,
            };
            if entry.seq == anchor.seq {
                break;
            }
        }
        match entry_hash {
            Some(h) if last.seq == anchor.seq && last.hash == anchor.hash => Ok(h),
            _ if last.seq < anchor.seq => Err(Error::corruption(
                last.seq + 1,
                format!(
                    "the log ends at seq {} before the anchor at seq {}",
                    last.seq, anchor.seq
                ),
            )),
            _ => Err(Error::corruption(
                anchor.seq,
                "the chain does not end in the anchor's hash: an entry up to the anchor changed",
            )),
        }
    }

    /// Checks that each persisted user projection equals a replay; returns
    /// how many were checked.
    pub(crate) fn verify_projections(&self) -> Result<u64> {
        let feeds = lock(&self.feeds);
        let mut n = 0;
        for f in feeds.iter() {
            if let Some(ok) = f.matches_replay(self)? {
                if !ok {
                    return Err(Error::corruption(
                        0,
                        format!("projection `{}` differs from a replay of the log", f.name()),
                    ));
                }
                n += 1;
            }
        }
        Ok(n)
    }

    /// Checks each branch: its base is in its parent's chain with the same
    /// hash, and its own entries re-read from storage are intact and the
    /// ones held in memory. Returns how many were checked.
    pub(crate) fn verify_branches(&self) -> Result<u64> {
        let branches: Vec<Arc<Branch>> = read(&self.branches).values().cloned().collect();
        for b in &branches {
            let base = b.log.base();
            if b.log.head_at(base.seq)? != base {
                return Err(Error::corruption(
                    base.seq,
                    format!(
                        "branch `{}` starts from an entry its parent does not have",
                        b.meta.name
                    ),
                ));
            }
            let stored: Vec<Entry> = b
                .log
                .entries_after(base)
                .map(|r| r.map(|(e, _)| e))
                .collect::<Result<_>>()?;
            if stored != *read(&b.entries) {
                return Err(Error::corruption(
                    base.seq + 1,
                    format!(
                        "branch `{}`: stored entries differ from the open branch",
                        b.meta.name
                    ),
                ));
            }
        }
        Ok(branches.len() as u64)
    }

    /// Every entry of main after seq `after`, in order, checked (checksum,
    /// chain, gapless seq). Entries appended while iterating may or may not
    /// be included; [`Annals::subscribe`] guarantees them.
    pub fn entries(&self, after: u64) -> Result<impl Iterator<Item = Result<Entry>> + '_> {
        self.entries_on(None, after)
    }

    /// Like [`Annals::entries`], on main (`None`) or a branch, whose
    /// entries up to its base are its parent's. Main's part is streamed
    /// from the log; a branch's own entries come from memory.
    pub fn entries_on(
        &self,
        branch: Option<&str>,
        after: u64,
    ) -> Result<Box<dyn Iterator<Item = Result<Entry>> + '_>> {
        let mut own: Vec<Entry> = Vec::new();
        let mut main_upto = u64::MAX;
        let mut next = branch.map(|b| self.branch(b)).transpose()?;
        while let Some(b) = next {
            let mut segment: Vec<Entry> = b
                .entries_upto(main_upto)
                .into_iter()
                .filter(|e| e.seq > after)
                .collect();
            segment.append(&mut own);
            own = segment;
            main_upto = b.meta.base.seq;
            next = b
                .meta
                .parent
                .as_deref()
                .map(|p| self.branch(p))
                .transpose()?;
        }
        let main_part: Box<dyn Iterator<Item = Result<Entry>> + '_> = if after < main_upto {
            let head = self.log.head_at(after.min(self.head().seq))?;
            Box::new(
                self.log
                    .entries_after(head)
                    .map(|r| r.map(|(e, _)| e))
                    .take_while(move |r| r.as_ref().map_or(true, |e| e.seq <= main_upto)),
            )
        } else {
            Box::new(std::iter::empty())
        };
        Ok(Box::new(main_part.chain(own.into_iter().map(Ok))))
    }

    /// Calls `f` with the change made by every entry after seq `after`, up
    /// to `upto` (the head if `None`). Each change's `before` comes from the
    /// index's version lists, so no scratch state is needed.
    fn changes(&self, after: u64, upto: Option<u64>, mut f: impl FnMut(&Change<'_>)) -> Result<()> {
        let state = read(&self.state);
        let upto = upto.unwrap_or(state.head.seq).min(state.head.seq);
        if after >= upto {
            return Ok(());
        }
        for item in self.log.entries_after(self.log.head_at(after)?) {
            let (entry, _) = item?;
            if entry.seq > upto {
                break;
            }
            let before = match &entry.body {
                Body::Event(_) => None,
                body => state
                    .index
                    .lookup(&body.id())
                    .and_then(|(n, _)| state.index.version_at(n, entry.seq - 1))
                    .map(|s| self.log.read_event(s))
                    .transpose()?,
            };
            f(&Change {
                seq: entry.seq,
                recorded_at: entry.recorded_at,
                id: entry.body.id(),
                before: before.as_ref(),
                after: entry.body.event(),
                entry: &entry,
            });
        }
        Ok(())
    }

    /// Folds the log from scratch through a projection, up to seq `upto`
    /// (the head if `None`), without registering it.
    pub fn replay<P: Projection>(&self, projection: &P, upto: Option<u64>) -> Result<P::State> {
        let mut acc = projection.init();
        self.changes(0, upto, |c| projection.apply(&mut acc, c))?;
        Ok(acc)
    }

    /// Registers a user projection: loads its checkpoint (if it keeps one
    /// and it matches the log), catches it up to the head, and from then on
    /// feeds it every committed change.
    pub fn register<P: Projection>(&self, projection: P) -> Result<Registered<P>> {
        // Holding the writer lock: no batch commits between catch-up and
        // the first feed, so no change is missed or applied twice.
        let _writer = lock(&self.writer);
        let mut start: (u64, P::State) = (0, projection.init());
        if let Some(bytes) = self
            .log
            .store()
            .get_meta(&projection_key(projection.name()))?
        {
            if let (Some(seq_b), Some(hash_b), Some(body)) =
                (bytes.get(..8), bytes.get(8..40), bytes.get(40..))
            {
                let mut sb = [0u8; 8];
                sb.copy_from_slice(seq_b);
                let seq = u64::from_be_bytes(sb);
                let matches =
                    seq <= self.head().seq && self.log.head_at(seq).is_ok_and(|h| h.hash == hash_b);
                if let (true, Some(s)) = (matches, projection.decode(body)) {
                    start = (seq, s);
                }
            }
        }
        let (mut seq, mut acc) = start;
        self.changes(seq, None, |c| {
            projection.apply(&mut acc, c);
            seq = c.seq;
        })?;
        let shared = Arc::new(RwLock::new((seq, acc)));
        let fed = Fed {
            projection,
            state: Arc::clone(&shared),
        };
        fed.checkpoint(self.head(), self.log.store())?;
        lock(&self.feeds).push(Box::new(fed));
        Ok(Registered { state: shared })
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
        // The log first: a checkpoint must never be ahead of the durable
        // log, so that a log shorter than its checkpoint proves damage.
        self.log.store().sync()?;
        let head = {
            let state = read(&self.state);
            save_checkpoint(&self.dir.join(CHECKPOINT_FILE), &*state)?;
            state.head
        };
        for f in lock(&self.feeds).iter() {
            f.checkpoint(head, self.log.store())?;
        }
        writer.checkpointed = head.seq;
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

    /// Creates branch `name` from main (or from branch `from`) as of `at`
    /// (default: the head). Costs one metadata write, whatever the log's
    /// length.
    pub fn create_branch(
        &self,
        name: &str,
        from: Option<&str>,
        at: Option<AsOf>,
    ) -> Result<BranchInfo> {
        check_branch_name(name)?;
        let _writer = lock(&self.writer);
        if read(&self.branches).contains_key(name) {
            return Err(Error::Conflict {
                at: String::new(),
                reason: format!("a branch named `{name}` exists"),
            });
        }
        let parent_log = match from {
            None | Some("main") => Arc::clone(&self.log),
            Some(p) => Arc::clone(&self.branch(p)?.log),
        };
        let parent_at = At {
            branch: from.filter(|p| *p != "main").map(str::to_string),
            as_of: at,
        };
        let base_seq = Reader::new(self, &parent_at)?.seq();
        let base = parent_log.head_at(base_seq)?;
        let meta = BranchMeta {
            name: name.to_string(),
            parent: parent_at.branch,
            base,
            created_at: now_micros(),
            durable_head: base,
        };
        self.put_branch_meta(&meta)?;
        let log = Arc::new(Log::branch(parent_log, base, name));
        let branch = Arc::new(open_branch(meta, log, Vec::new(), base));
        let info = branch_info(&branch);
        write(&self.branches).insert(name.to_string(), branch);
        Ok(info)
    }

    /// Every branch, by name.
    pub fn branches(&self) -> Vec<BranchInfo> {
        read(&self.branches)
            .values()
            .map(|b| branch_info(b))
            .collect()
    }

    /// Drops a branch and frees its space. Refused while another branch
    /// starts from it.
    pub fn drop_branch(&self, name: &str) -> Result<()> {
        let _writer = lock(&self.writer);
        self.branch(name)?;
        let children: Vec<String> = read(&self.branches)
            .values()
            .filter(|b| b.meta.parent.as_deref() == Some(name))
            .map(|b| b.meta.name.clone())
            .collect();
        if !children.is_empty() {
            return Err(Error::Conflict {
                at: String::new(),
                reason: format!(
                    "branch `{name}` has branches of its own ({}); drop them first",
                    children.join(", ")
                ),
            });
        }
        self.log
            .store()
            .remove_meta(&format!("{BRANCH_KEY}{name}"))?;
        self.log.store().drop_log(name)?;
        self.log.store().sync()?;
        write(&self.branches).remove(name);
        Ok(())
    }

    /// The rows of a view that differ between branch `name` (at its head)
    /// and its parent, as of the branch's base or at the parent's head. An
    /// empty diff means the views are equal.
    pub fn diff(&self, name: &str, view: ViewKind, against: Against) -> Result<Vec<DiffRow>> {
        let branch = self.branch(name)?;
        let parent = At {
            branch: branch.meta.parent.clone(),
            as_of: match against {
                Against::Base => Some(AsOf::Seq(branch.meta.base.seq)),
                Against::Head => None,
            },
        };
        let main = keyed_rows(&Reader::new(self, &parent)?, view)?;
        let mine = keyed_rows(&Reader::new(self, &At::head().branch(name))?, view)?;
        Ok(diff_rows(main, mine))
    }

    /// Folds a log (main or a branch, up to an as-of point) from scratch
    /// through a projection, without registering it.
    pub fn replay_at<P: Projection>(&self, projection: &P, at: &At) -> Result<P::State> {
        let reader = Reader::new(self, at)?;
        let log = match &at.branch {
            None => Arc::clone(&self.log),
            Some(b) => Arc::clone(&self.branch(b)?.log),
        };
        let mut acc = projection.init();
        let mut scratch = State::default();
        scratch.catch_up(&log, Some(reader.seq()), |entry, before| {
            projection.apply(
                &mut acc,
                &Change {
                    seq: entry.seq,
                    recorded_at: entry.recorded_at,
                    id: entry.body.id(),
                    before,
                    after: entry.body.event(),
                    entry,
                },
            );
        })?;
        Ok(acc)
    }

    /// Every entry of main after seq `after`, then every entry committed
    /// from now on, each exactly once and in order (no polling: the live
    /// part waits on a channel).
    pub fn subscribe(&self, after: u64) -> Result<Subscription<'_>> {
        // Under the writer lock no batch commits between reading the head
        // and registering, so the backlog ends where the live feed starts.
        let _writer = lock(&self.writer);
        let head = read(&self.state).head;
        let (tx, rx) = std::sync::mpsc::channel();
        lock(&self.subscribers).push(tx);
        let backlog = self
            .log
            .entries_after(self.log.head_at(after.min(head.seq))?);
        Ok(Subscription {
            backlog: Some(backlog),
            upto: head.seq,
            rx,
        })
    }

    /// The view snapshot at the greatest seq at or before `seq` that
    /// matches the log, or empty views at seq 0.
    pub(crate) fn snapshot_at_or_before(&self, seq: u64) -> Result<(Head, Views)> {
        let candidates: Vec<(u64, PathBuf)> = lock(&self.snapshots)
            .range(..=seq)
            .rev()
            .map(|(s, p)| (*s, p.clone()))
            .collect();
        Ok(self
            .first_valid_snapshot(candidates)
            .unwrap_or((Head::default(), Views::default())))
    }

    /// The seqs of the nearest folds around `seq`: the greatest snapshot at
    /// or before it (0 if none) and the least snapshot after it (or the
    /// head).
    pub(crate) fn snapshot_seqs_around(&self, seq: u64) -> (u64, u64) {
        let snaps = lock(&self.snapshots);
        let earlier = snaps.range(..=seq).next_back().map_or(0, |(s, _)| *s);
        let head = self.head().seq;
        let later = snaps
            .range(seq + 1..)
            .next()
            .map_or(head, |(s, _)| (*s).min(head));
        (earlier, later)
    }

    /// The views at the least valid snapshot after `seq`, or at the head.
    pub(crate) fn views_at_or_after(&self, seq: u64) -> Result<(Head, Views)> {
        let candidates: Vec<(u64, PathBuf)> = lock(&self.snapshots)
            .range(seq + 1..)
            .map(|(s, p)| (*s, p.clone()))
            .collect();
        if let Some(found) = self.first_valid_snapshot(candidates) {
            return Ok(found);
        }
        let state = read(&self.state);
        Ok((state.head, state.views.clone()))
    }

    /// The first of the candidate snapshot files that is intact and
    /// matches the log (a damaged or foreign one is skipped).
    fn first_valid_snapshot(&self, candidates: Vec<(u64, PathBuf)>) -> Option<(Head, Views)> {
        candidates.into_iter().find_map(|(s, path)| {
            let (head, views) = crate::state::load_checkpoint::<(Head, Views)>(&path)?;
            (head.seq == s && self.log.head_at(s).is_ok_and(|h| h == head)).then_some((head, views))
        })
    }

    fn snapshot_locked(&self, _writer: &Writer) -> Result<()> {
        let dir = self.dir.join(SNAPSHOT_DIR);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let (head, path) = {
            let state = read(&self.state);
            let path = dir.join(format!("{:020}.views", state.head.seq));
            save_checkpoint(&path, &(state.head, &state.views))?;
            (state.head, path)
        };
        lock(&self.snapshots).insert(head.seq, path);
        Ok(())
    }

    /// Checkpoints, syncs and closes the database, reporting any error
    /// (dropping it does the same but can only ignore errors).
    pub fn close(self) -> Result<()> {
        let mut writer = lock(&self.writer);
        self.log.store().sync()?;
        if writer.checkpointed != read(&self.state).head.seq {
            self.checkpoint_locked(&mut writer)?;
        }
        Ok(())
    }
}

/// Where a version of an event is while a batch is prepared.
#[derive(Debug, Clone, Copy)]
enum Where {
    /// Entry `i` of the batch.
    Batch(usize),
    /// The log entry with this seq.
    Log(u64),
}

/// An event as the batch being prepared sees it.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Seq of the entry that created it.
    created: u64,
    /// Its first version (for the idempotency check).
    original: Where,
    /// Its current version; none if retracted.
    current: Option<Where>,
}

/// A batch turned into entries: each entry's `before` version, and what
/// to report per operation.
struct Prepared {
    entries: Vec<Entry>,
    befores: Vec<Option<Event>>,
    written: Vec<Written>,
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
fn check_batch(ops: &[Op]) -> Result<()> {
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
fn check_expected(head: Head, expect_seq: Option<u64>) -> Result<()> {
    match expect_seq {
        Some(expected) if expected != head.seq => Err(Error::SeqMismatch {
            expected,
            actual: head.seq,
        }),
        _ => Ok(()),
    }
}

fn open_branch(meta: BranchMeta, log: Arc<Log>, entries: Vec<Entry>, head: Head) -> Branch {
    Branch {
        meta,
        log,
        entries: RwLock::new(entries),
        head: RwLock::new(head),
        views: Mutex::new(None),
    }
}

fn branch_info(b: &Branch) -> BranchInfo {
    BranchInfo {
        name: b.meta.name.clone(),
        parent: b.meta.parent.clone().unwrap_or_else(|| "main".into()),
        base_seq: b.meta.base.seq,
        head_seq: b.head().seq,
        entries: read(&b.entries).len() as u64,
        created_at: format_micros(b.meta.created_at),
    }
}

/// Opens every branch recorded in the metadata, parents first, checking
/// that each base is part of its parent's chain and reading each branch's
/// own entries (checked) into memory.
fn load_branches(main: &Arc<Log>) -> Result<BTreeMap<String, Arc<Branch>>> {
    let mut metas: Vec<BranchMeta> = Vec::new();
    for (key, bytes) in main.store().scan_meta(BRANCH_KEY)? {
        let (meta, _): (BranchMeta, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                .map_err(|e| Error::corruption(0, format!("branch metadata `{key}`: {e}")))?;
        metas.push(meta);
    }
    let mut open: BTreeMap<String, Arc<Branch>> = BTreeMap::new();
    while !metas.is_empty() {
        let before = metas.len();
        let mut rest = Vec::new();
        for meta in metas {
            let parent_log = match &meta.parent {
                None => Arc::clone(main),
                Some(p) => match open.get(p) {
                    Some(b) => Arc::clone(&b.log),
                    None => {
                        rest.push(meta);
                        continue;
                    }
                },
            };
            let base = parent_log.head_at(meta.base.seq)?;
            if base != meta.base {
                return Err(Error::corruption(
                    meta.base.seq,
                    format!(
                        "branch `{}` starts from an entry its parent does not have",
                        meta.name
                    ),
                ));
            }
            let log = Arc::new(Log::branch(parent_log, meta.base, &meta.name));
            let mut entries = Vec::new();
            let mut head = meta.base;
            for item in log.entries_after(meta.base) {
                let (entry, hash) = item?;
                head = Head {
                    seq: entry.seq,
                    hash,
                    recorded_at: entry.recorded_at,
                };
                entries.push(entry);
            }
            if head.seq < meta.durable_head.seq
                || (head.seq == meta.durable_head.seq && head != meta.durable_head)
            {
                return Err(Error::corruption(
                    (head.seq + 1).min(meta.durable_head.seq),
                    format!(
                        "branch `{}` ends at seq {} but was written up to seq {}; entries were lost or changed",
                        meta.name, head.seq, meta.durable_head.seq
                    ),
                ));
            }
            let name = meta.name.clone();
            open.insert(name, Arc::new(open_branch(meta, log, entries, head)));
        }
        if rest.len() == before {
            let names: Vec<String> = rest.iter().map(|m| m.name.clone()).collect();
            return Err(Error::corruption(
                0,
                format!("branches whose parent is missing: {}", names.join(", ")),
            ));
        }
        metas = rest;
    }
    Ok(open)
}

/// The view snapshot files in `dir`, by seq.
fn list_snapshots(dir: &Path) -> BTreeMap<u64, PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let seq = name.strip_suffix(".views")?.parse().ok()?;
            Some((seq, e.path()))
        })
        .collect()
}

/// Main's entries after a seq, then each one committed from then on; see
/// [`Annals::subscribe`].
pub struct Subscription<'a> {
    backlog: Option<EntryIter<'a>>,
    /// The head when the subscription started: the backlog ends there and
    /// the live feed starts after it.
    upto: u64,
    rx: Receiver<Entry>,
}

impl Subscription<'_> {
    /// The next entry, waiting at most `timeout` for a live one; `None` on
    /// time-out or once the database is closed.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Entry>> {
        if let Some(item) = self.next_in_backlog() {
            return Some(item);
        }
        self.rx.recv_timeout(timeout).ok().map(Ok)
    }

    fn next_in_backlog(&mut self) -> Option<Result<Entry>> {
        let backlog = self.backlog.as_mut()?;
        match backlog.next() {
            Some(Ok((e, _))) if e.seq <= self.upto => Some(Ok(e)),
            Some(Err(e)) => {
                self.backlog = None;
                Some(Err(e))
            }
            _ => {
                self.backlog = None;
                None
            }
        }
    }
}

impl Iterator for Subscription<'_> {
    type Item = Result<Entry>;

    /// The next entry, waiting for one to be committed if need be.
    fn next(&mut self) -> Option<Result<Entry>> {
        if let Some(item) = self.next_in_backlog() {
            return Some(item);
        }
        self.rx.recv().ok().map(Ok)
    }
}

impl Drop for Annals {
    fn drop(&mut self) {
        let mut writer = lock(&self.writer);
        let _ = self.log.store().sync();
        if writer.checkpointed != read(&self.state).head.seq {
            let _ = self.checkpoint_locked(&mut writer);
        }
    }
}
