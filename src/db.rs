//! [`Annals`], the front door: open a database, write events, read views.
//! The only `impl Annals`: each method says what it does and hands the
//! work to the engine, a reader or an operation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

#[cfg(feature = "delta")]
use crate::delta::{PublishOptions, PublishReport};
use crate::engine::{Engine, Options, StorageWrapper};
use crate::error::{Error, Result};
use crate::excise::Excision;
use crate::export::ExportFormat;
use crate::import::{Import, ImportFormat};
use crate::integrity::VerifyReport;
use crate::line::branch::BranchInfo;
use crate::line::main::Cadence;
use crate::log::{Entry, EntryIter, Hash, Head};
use crate::merge::{MergeOptions, MergeReport};
use crate::model::Event;
use crate::projection::{
    ActorRow, CountryActor, CountryRow, DateRow, PlaceLevel, PlaceRow, Projection, Registered,
};
use crate::query::Query;
use crate::read::diff::{Against, DiffRow, EventDiff, ViewKind};
use crate::read::{AsOf, At, Reader};
use crate::record::{Durability, Op, Record, Stats, Version, Written};
use crate::store::Storage;
use crate::subscribe::Subscription;
use crate::time::Granularity;

/// Options for opening a database; see [`Annals::builder`].
pub struct Builder {
    wrap: Option<StorageWrapper>,
    path: PathBuf,
    durability: Durability,
    cache_capacity_bytes: u64,
    checkpoint_every_entries: u64,
    snapshot_every_entries: u64,
    view_cells_in_memory: usize,
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
            .field("view_cells_in_memory", &self.view_cells_in_memory)
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

    /// The budget of the cache of log chunks read by seq (default
    /// 32 MiB): a read-only process holds at most this much of the log,
    /// plus what it returns. Scans (verify, rebuild) bypass it.
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
    /// entries (default 100,000, as flushes: a snapshot is taken right
    /// after a flush, of the runs it left, and taking one flushes).
    pub fn snapshot_every_entries(mut self, n: u64) -> Builder {
        self.snapshot_every_entries = n.max(1);
        self
    }

    /// How many changed cells of the built-in views (one per count a
    /// change touched: a country's kind, an actor's day, ...) are held in
    /// memory before they are written out as a run (default 400,000,
    /// about 40 MiB with their encoding): the bound of the views' memory
    /// while writing, whatever the number of countries, actors and days.
    pub fn view_cells_in_memory(mut self, n: usize) -> Builder {
        self.view_cells_in_memory = n.max(1);
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
        Ok(Annals {
            engine: Engine::open(Options {
                path: self.path,
                wrap: self.wrap,
                durability: self.durability,
                cache_capacity_bytes: self.cache_capacity_bytes,
                cadence: Cadence {
                    checkpoint_every_entries: self.checkpoint_every_entries,
                    snapshot_every_entries: self.snapshot_every_entries,
                    view_cells_in_memory: self.view_cells_in_memory,
                },
                create: self.create,
            })?,
        })
    }
}

/// An open annals database. Cheap to share between threads (`&Annals` is
/// `Send + Sync`): reads run concurrently, writes are serialized, and
/// readers never see part of a batch.
pub struct Annals {
    engine: Engine,
}

impl Annals {
    /// Opens the database in folder `path`, creating it if needed, with
    /// default options (durable appends).
    pub fn open(path: impl AsRef<Path>) -> Result<Annals> {
        Annals::builder(path).open()
    }

    /// Whether folder `path` holds an annals database.
    pub fn exists(path: impl AsRef<Path>) -> bool {
        path.as_ref().join(crate::folder::STORE_DIR).is_dir()
    }

    /// Options for opening the database in folder `path`.
    pub fn builder(path: impl AsRef<Path>) -> Builder {
        Builder {
            wrap: None,
            path: path.as_ref().to_path_buf(),
            durability: Durability::Durable,
            cache_capacity_bytes: 32 * 1024 * 1024,
            checkpoint_every_entries: 100_000,
            snapshot_every_entries: 100_000,
            view_cells_in_memory: 400_000,
            create: true,
        }
    }

    /// The database folder.
    pub fn path(&self) -> &Path {
        self.engine.dir()
    }

    /// The last entry: its seq (0 when empty) and chain hash.
    pub fn head(&self) -> Head {
        self.engine.main().head()
    }

    // ---- Writing ----

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
        let reason = reason.to_string();
        let w = self.write(vec![Op::Retract { id, reason }], None)?;
        Ok(w.first().map_or(0, |w| w.seq))
    }

    /// Writes a batch of operations atomically: all of them or, on any
    /// error, none. With `expect_seq`, fails unless the head is at that seq
    /// (optimistic concurrency). Returns once durable (see [`Durability`]).
    pub fn write(&self, ops: Vec<Op>, expect_seq: Option<u64>) -> Result<Vec<Written>> {
        self.engine.write(None, ops, expect_seq)
    }

    /// Writes a batch to branch `name`; see [`Annals::write`]. Main never
    /// sees it.
    pub fn write_branch(
        &self,
        name: &str,
        ops: Vec<Op>,
        expect_seq: Option<u64>,
    ) -> Result<Vec<Written>> {
        self.engine.write(Some(name), ops, expect_seq)
    }

    /// Writes a batch to main (`None` or `Some("main")`) or to a branch:
    /// [`Annals::write`] or [`Annals::write_branch`].
    pub fn write_on(
        &self,
        branch: Option<&str>,
        ops: Vec<Op>,
        expect_seq: Option<u64>,
    ) -> Result<Vec<Written>> {
        let branch = branch.filter(|b| *b != "main");
        self.engine.write(branch, ops, expect_seq)
    }

    /// Starts an import in `format`; see [`Import`].
    pub fn import(&self, format: ImportFormat) -> Import<'_> {
        Import::new(&self.engine, format)
    }

    // ---- Reading ----

    /// A reader of main or a branch, at its head or as of a seq or time.
    /// An `as_of` before the first entry reads an empty log; one past the
    /// head reads the head.
    pub fn reader(&self, at: &At) -> Result<Reader<'_>> {
        self.engine.reader(at)
    }

    /// The current state of event `id`, retracted or not; `None` if no such
    /// event exists.
    pub fn get(&self, id: Uuid) -> Result<Option<Record>> {
        self.engine.head_reader().get(id)
    }

    /// Every version of event `id`, oldest first; empty if unknown.
    pub fn history(&self, id: Uuid) -> Result<Vec<Version>> {
        self.engine.head_reader().history(id)
    }

    /// Current events matching `query`, ordered by occurrence start then
    /// seq. Only the matching events are read from the log.
    pub fn query(&self, query: &Query) -> Result<Vec<Record>> {
        self.engine.head_reader().query(query)
    }

    /// The by-country view: one row per country, sorted by code. Fails
    /// only if the view's file is damaged.
    pub fn by_country(&self) -> Result<Arc<[CountryRow]>> {
        self.engine.head_reader().by_country()
    }

    /// The by-actor view: one row per actor, sorted by matching key.
    pub fn by_actor(&self) -> Result<Arc<[ActorRow]>> {
        self.engine.head_reader().by_actor()
    }

    /// One row of the by-country view, read alone (none if no current
    /// event concerns the country).
    pub fn country(&self, country: &str) -> Result<Option<CountryRow>> {
        self.engine.head_reader().country(country)
    }

    /// A page of the actors of a country, by key: those after actor
    /// `after` (from the first when none), at most `limit`. A by-country
    /// row lists the first [`crate::ACTORS_IN_ROW`]; this lists them all.
    pub fn country_actors(
        &self,
        country: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CountryActor>> {
        self.engine
            .head_reader()
            .country_actors(country, after, limit)
    }

    /// One row of the by-actor view, by name (trimmed, case-insensitive),
    /// read alone (none if no current event names the actor).
    pub fn actor(&self, name: &str) -> Result<Option<ActorRow>> {
        self.engine.head_reader().actor(name)
    }

    /// A page of the by-actor view: the rows after actor `after` (from the
    /// first when none), at most `limit`, by key.
    pub fn actors_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<ActorRow>> {
        self.engine.head_reader().actors_page(after, limit)
    }

    /// The by-date view at a granularity, in bucket order.
    pub fn by_date(&self, granularity: Granularity) -> Result<Arc<[DateRow]>> {
        self.engine.head_reader().by_date(granularity)
    }

    /// The by-place view at the head: per PRIO-GRID cell (or ADMIN1 unit)
    /// all time, or per month or year of occurrence (`granularity`).
    pub fn by_place(
        &self,
        level: PlaceLevel,
        granularity: Option<Granularity>,
    ) -> Result<Arc<[PlaceRow]>> {
        self.engine.head_reader().by_place(level, granularity)
    }

    /// Sizes and counts. Counting reads every event's metadata.
    pub fn stats(&self) -> Result<Stats> {
        self.engine.stats()
    }

    /// Writes the current events matching `query`, read at `at`, to `out`
    /// in `format`, ordered by occurrence start then seq. Returns the number
    /// of events written. A failed export writes an incomplete file and
    /// changes nothing in the database.
    pub fn export(
        &self,
        at: &At,
        query: &Query,
        format: ExportFormat,
        out: impl Write + Send,
    ) -> Result<u64> {
        crate::export::export(&self.engine.reader(at)?, query, format, out)
    }

    /// Writes the changes between seq `since` and `at` (see
    /// [`crate::Reader::changes_since`]) to `out`. JSON Lines: one change
    /// per line as [`crate::EventChange::to_json`]. CSV and Parquet: one
    /// row per version, `side` `before` or `after` (a created event has an
    /// after row, a retracted one a before row, a corrected one both),
    /// with [`crate::CHANGE_COLUMNS`] then the event export's columns.
    /// Returns the number of changes written.
    pub fn export_changes(
        &self,
        at: &At,
        since: u64,
        query: &Query,
        format: ExportFormat,
        out: impl Write + Send,
    ) -> Result<u64> {
        crate::export::export_changes(&self.engine.reader(at)?, since, query, format, out)
    }

    // ---- The log itself ----

    /// Every entry of main after seq `after`, then every entry committed
    /// from now on, each exactly once and in order (no polling: the live
    /// part waits on a channel).
    pub fn subscribe(&self, after: u64) -> Result<Subscription<'_>> {
        crate::subscribe::subscribe(&self.engine, after)
    }

    /// Every entry of main after seq `after`, in order, checked (checksum,
    /// chain, gapless seq). Entries appended while iterating may or may not
    /// be included; [`Annals::subscribe`] guarantees them.
    pub fn entries(&self, after: u64) -> Result<impl Iterator<Item = Result<Entry>> + '_> {
        crate::subscribe::entries_on(&self.engine, None, after)
    }

    /// Like [`Annals::entries`], on main (`None`) or a branch, whose
    /// entries up to its base are its parent's. Main's part is streamed
    /// from the log; a branch's own entries come from memory.
    pub fn entries_on(
        &self,
        branch: Option<&str>,
        after: u64,
    ) -> Result<Box<dyn Iterator<Item = Result<Entry>> + '_>> {
        crate::subscribe::entries_on(&self.engine, branch, after)
    }

    /// Entries with their chain hashes, for mirrors that must prove where
    /// they stand: main's entries after `after`, or a branch's own entries
    /// after `after` (and after its base), each checked against its
    /// predecessor. A branch's entries are read whole (branches are held
    /// in memory anyway); main's are streamed.
    pub fn chained_entries(&self, branch: Option<&str>, after: u64) -> Result<EntryIter<'_>> {
        crate::subscribe::chained_entries(&self.engine, branch, after)
    }

    // ---- User projections ----

    /// Folds the log from scratch through a projection, up to seq `upto`
    /// (the head if `None`), without registering it.
    pub fn replay<P: Projection>(&self, projection: &P, upto: Option<u64>) -> Result<P::State> {
        crate::replay::replay(&self.engine, projection, upto)
    }

    /// Folds a log (main or a branch, up to an as-of point) from scratch
    /// through a projection, without registering it.
    pub fn replay_at<P: Projection>(&self, projection: &P, at: &At) -> Result<P::State> {
        crate::replay::replay_at(&self.engine, projection, at)
    }

    /// Registers a user projection: loads its checkpoint (if it keeps one
    /// and it matches the log), catches it up to the head, and from then on
    /// feeds it every committed change.
    pub fn register<P: Projection>(&self, projection: P) -> Result<Registered<P>> {
        crate::replay::register(&self.engine, projection)
    }

    // ---- Branches ----

    /// Creates branch `name` from main (or from branch `from`) as of `at`
    /// (default: the head). Costs one metadata write, whatever the log's
    /// length.
    pub fn create_branch(
        &self,
        name: &str,
        from: Option<&str>,
        at: Option<AsOf>,
    ) -> Result<BranchInfo> {
        self.engine.create_branch(name, from, at)
    }

    /// Every branch, by name.
    pub fn branches(&self) -> Vec<BranchInfo> {
        self.engine.branches()
    }

    /// Drops a branch and frees its space. Refused while another branch
    /// starts from it.
    pub fn drop_branch(&self, name: &str) -> Result<()> {
        self.engine.drop_branch(name)
    }

    /// The rows of a view that differ between branch `name` (at its head)
    /// and its parent, as of the branch's base or at the parent's head. An
    /// empty diff means the views are equal.
    pub fn diff(&self, name: &str, view: ViewKind, against: Against) -> Result<Vec<DiffRow>> {
        crate::read::diff::diff(self.engine.lines(), name, view, against)
    }

    /// The events whose current state differs between branch `name` (at
    /// its head) and its parent as of the branch's base or at the
    /// parent's head, in id order: added, removed, or changed with the
    /// fields that differ. Reads only the events either side changed
    /// since the base. An empty list means the two hold the same events.
    pub fn diff_events(&self, name: &str, against: Against) -> Result<Vec<EventDiff>> {
        crate::read::diff::diff_events(self.engine.lines(), name, against)
    }

    /// Merges branch `branch` into main or into `opts.into`.
    ///
    /// Three-way by event id against the base, the last seq the two share:
    /// an event the branch changed since the base is brought over if the
    /// target has not changed it since (created events are appended,
    /// corrections and retractions applied); an event both changed, to
    /// different states, is a conflict, settled by `opts.on_conflict`.
    /// An event both changed to the same state is not a conflict. If the
    /// target's version of an event came from an earlier merge of this
    /// branch, and the branch held that version at the merged seq, the
    /// base for that event moves there, so merging again only brings what
    /// changed since. When the target has not moved since the base, the
    /// branch's entries are replayed one by one (a fast-forward).
    ///
    /// All changes are one atomic batch on the target; each entry records
    /// the branch, seq and hash of the branch entry it applies
    /// ([`crate::Version::origin`]), which `verify` checks. The branch is
    /// left as it was. With [`crate::OnConflict::Fail`] and conflicts,
    /// nothing is written and the error lists them;
    /// [`MergeOptions::dry_run`] returns the same report without writing.
    pub fn merge(&self, branch: &str, opts: &MergeOptions) -> Result<MergeReport> {
        crate::merge::merge(&self.engine, branch, opts)
    }

    // ---- Integrity ----

    /// Checks everything: every entry's checksum and chain link, gapless
    /// seqs, the id index and posting lists, every built-in view and every
    /// persisted user projection against a replay, every branch's base and
    /// entries. Returns the head it checked up to; damage is
    /// [`crate::Error::Corruption`] with the first bad seq.
    pub fn verify(&self) -> Result<Head> {
        crate::integrity::verify(&self.engine)
    }

    /// Like [`Annals::verify`], checking the log and the index from seq
    /// `from` on, and the views by folding from the last snapshot before
    /// `from`: an incremental check after a full one.
    pub fn verify_from(&self, from: u64) -> Result<VerifyReport> {
        crate::integrity::verify_from(&self.engine, from)
    }

    /// Proves that entry `seq` is part of the chain that ends in `anchor`
    /// (a head recorded earlier, e.g. printed by `annals head` and kept
    /// elsewhere): re-reads entries `seq..=anchor.seq`, checks every link
    /// and that the last hash is the anchor's. Returns entry `seq`'s hash.
    /// If this passes, neither that entry nor any between it and the
    /// anchor has changed since the anchor was taken.
    pub fn prove(&self, seq: u64, anchor: Head) -> Result<Hash> {
        crate::integrity::prove(&self.engine, seq, anchor)
    }

    /// Rebuilds the index and every built-in view from the log, replacing
    /// the kept state and its files.
    pub fn rebuild(&self) -> Result<()> {
        self.engine.rebuild()
    }

    /// Writes a checkpoint of the derived state now.
    pub fn checkpoint(&self) -> Result<()> {
        self.engine.checkpoint()
    }

    // ---- Excision ----

    /// Erases the payload of event `id` (everything but its id, seqs and
    /// chain data) from the whole database: every version on main and on
    /// every branch, the index, views, snapshots and projection
    /// checkpoints, and sled's files, which are rewritten. The chain still
    /// verifies; reads behave as if the event had been retracted at
    /// creation; `history` lists its entries as `excised`, with the time
    /// and the reason; the id cannot be used again.
    ///
    /// Needs the database to itself (it is closed here, like `rebuild` in
    /// place of a running program) and costs a copy of the store and a
    /// rebuild of the derived state, so it takes about as long as a full
    /// `rebuild`. A crash midway is finished on the next open.
    pub fn excise(path: impl AsRef<Path>, id: Uuid, reason: &str) -> Result<Excision> {
        let dir = path.as_ref();
        let reason = crate::excise::check_reason(reason)?;
        let db = Annals::builder(dir).create(false).open()?;
        let plan = db.engine.plan_excision(id, reason)?;
        // The lock goes on with this descriptor: no one can open the
        // database between the check and the end of the excision.
        let lock = db.engine.lock_handle()?;
        drop(db);
        let done = crate::excise::run(dir, &plan)?;
        drop(lock);
        // Rebuild the derived state now rather than on the next command.
        Annals::builder(dir).create(false).open()?.close()?;
        Ok(done)
    }

    /// Gives up an excision that cannot finish (see
    /// [`crate::Error::ExcisionStuck`]) in the database in folder `path`,
    /// returning the database to its state before the excision began: the
    /// event is not excised. Returns the event's id, or `None` when no
    /// excision was in progress. Needs the database to itself.
    pub fn abandon_excision(path: impl AsRef<Path>) -> Result<Option<Uuid>> {
        let dir = path.as_ref();
        let _lock = crate::folder::lock_dir(dir)?;
        crate::excise::abandon(dir)
    }

    /// The excision record of event `id`, if it was excised.
    pub fn excision(&self, id: Uuid) -> Result<Option<Excision>> {
        crate::excise::record(self.engine.log().store(), id)
    }

    /// The error to report for event `id` that a read did not find:
    /// `NotFound` saying when and why it was excised, or that no such
    /// event was ever written.
    pub fn not_found(&self, id: Uuid) -> Result<Error> {
        Ok(match self.excision(id)? {
            Some(x) => Error::NotFound {
                at: format!("event {id}"),
                what: format!(
                    "the event was excised at {}: {}",
                    crate::time::format_micros(x.at),
                    x.reason
                ),
            },
            None => Error::no_event(id),
        })
    }

    // ---- Delta Lake ----

    /// Publishes main (or `branch`'s own entries) into the Delta table at
    /// `dir`, creating it if needed, from where the table ends to the
    /// acknowledged head, in commits of whole batches within the default
    /// [`PublishOptions`]. Refuses a table of another chain or branch, one
    /// whose last annals commit's hash is not annals' hash at that seq,
    /// and one whose rows of annals' seqs another writer changed since.
    #[cfg(feature = "delta")]
    pub fn publish_delta(&self, dir: &Path, branch: Option<&str>) -> Result<PublishReport> {
        self.publish_delta_with(dir, branch, &PublishOptions::default())
    }

    /// [`Annals::publish_delta`] with other budgets per commit, checkpoint
    /// cadence or follow latency.
    #[cfg(feature = "delta")]
    pub fn publish_delta_with(
        &self,
        dir: &Path,
        branch: Option<&str>,
        opts: &PublishOptions,
    ) -> Result<PublishReport> {
        crate::delta::publish(&self.engine, dir, branch, opts)
    }

    /// Publishes as [`Annals::publish_delta_with`] does, then keeps
    /// publishing as new batches land (main through the live subscription,
    /// a branch by looking at its head every second; what arrives waits up
    /// to `opts.latency` for more, so that close batches share a commit),
    /// calling `on_publish` after every run; stops when it returns false.
    /// For a program that writes and publishes in one process (the
    /// database has one writer process; the CLI's `--follow` opens it for
    /// each run instead). A stop at any moment, even a kill, is safe: the
    /// next run continues where the table ends.
    #[cfg(feature = "delta")]
    pub fn follow_delta(
        &self,
        dir: &Path,
        branch: Option<&str>,
        opts: &PublishOptions,
        on_publish: &mut dyn FnMut(&PublishReport) -> bool,
    ) -> Result<()> {
        crate::delta::follow(&self.engine, dir, branch, opts, on_publish)
    }

    /// The engine, for the crate's own tests.
    #[cfg(test)]
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Checkpoints, syncs and closes the database, reporting any error
    /// (dropping it does the same but can only ignore errors).
    pub fn close(self) -> Result<()> {
        self.engine.close()
    }
}
