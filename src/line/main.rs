//! Main: the database's own history. Its log, the derived state that
//! follows it (index and views), the views' rows at the head, view
//! snapshots and the followers of its commits.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use uuid::Uuid;

use crate::error::Result;
use crate::follow::Followers;
use crate::index::Meta;
use crate::json::Position;
use crate::log::{Entry, Head, Log};
use crate::model::Event;
use crate::projection::{self, ActorRow, CountryRow, DateRow, Layered, Part, PlaceLevel, PlaceRow};
use crate::query::Query;
use crate::record::Record;
use crate::snapshot::Snapshots;
use crate::state::{self, State};
use crate::sync::{lock, read, write};
use crate::time::Granularity;
use crate::writer::Writer;

/// Rows of the built-in views at one head, shared until the head moves.
#[derive(Default)]
struct RowCache {
    /// The head the rows were built at (`None`: nothing built).
    seq: Option<u64>,
    country: Option<Arc<[CountryRow]>>,
    actor: Option<Arc<[ActorRow]>>,
    /// By granularity, in [`Granularity::ALL`]'s order.
    date: [Option<Arc<[DateRow]>>; 3],
    /// By level and bucket (all time, month, year).
    place: [Option<Arc<[PlaceRow]>>; 6],
}

/// How often main's derived state is saved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cadence {
    /// Entries between flushes of the derived state.
    pub(crate) checkpoint_every_entries: u64,
    /// Entries between view snapshots.
    pub(crate) snapshot_every_entries: u64,
    /// Changed view cells held in memory before they are written out.
    pub(crate) view_cells_in_memory: usize,
}

/// Main's log and everything derived from it.
pub(crate) struct Main {
    log: Arc<Log>,
    /// The index and views; readers take it shared, the writer exclusive
    /// while it applies a committed batch.
    state: RwLock<State>,
    index_dir: PathBuf,
    snapshot_dir: PathBuf,
    /// The views' rows at the head, built on first read.
    rows: Mutex<RowCache>,
    snapshots: Snapshots,
    followers: Followers,
    /// Events whose payload was excised: their ids cannot be used again.
    excised: HashSet<Uuid>,
    cadence: Cadence,
}

impl Main {
    /// Opens main's derived state (in `index_dir`, rebuilt from the log if
    /// missing or damaged) and its snapshots (in `snapshot_dir`).
    pub(crate) fn open(
        log: Arc<Log>,
        index_dir: &Path,
        snapshot_dir: &Path,
        cadence: Cadence,
    ) -> Result<Main> {
        let snapshots = Snapshots::open(snapshot_dir);
        let state = state::open(
            index_dir,
            &log,
            cadence.checkpoint_every_entries,
            cadence.view_cells_in_memory,
            &mut snapshot_when_due(&snapshots, cadence),
        )?;
        let excised = crate::excise::excised_ids(log.store())?;
        Ok(Main {
            log,
            state: RwLock::new(state),
            index_dir: index_dir.to_path_buf(),
            snapshot_dir: snapshot_dir.to_path_buf(),
            rows: Mutex::new(RowCache::default()),
            snapshots,
            followers: Followers::default(),
            excised,
            cadence,
        })
    }

    /// The log.
    pub(crate) fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The last entry the derived state covers: main's head.
    pub(crate) fn head(&self) -> Head {
        read(&self.state).head
    }

    /// The derived state, shared with other readers.
    pub(crate) fn state(&self) -> RwLockReadGuard<'_, State> {
        read(&self.state)
    }

    /// Who hears main's commits.
    pub(crate) fn followers(&self) -> &Followers {
        &self.followers
    }

    /// Whether event `id` was excised.
    pub(crate) fn is_excised(&self, id: &Uuid) -> bool {
        self.excised.contains(id)
    }

    /// The view snapshot at or before `seq` (see [`Snapshots`]).
    pub(crate) fn snapshot_at_or_before(&self, seq: u64) -> (Head, Layered) {
        self.snapshots.at_or_before(&self.log, seq)
    }

    /// The seqs of the nearest folds around `seq` (see [`Snapshots`]).
    pub(crate) fn snapshot_seqs_around(&self, seq: u64) -> (u64, u64) {
        self.snapshots.seqs_around(seq, self.head().seq)
    }

    /// The views at the least valid snapshot after `seq`, or at the head.
    pub(crate) fn views_at_or_after(&self, seq: u64) -> Result<(Head, Layered)> {
        if let Some(found) = self.snapshots.after(&self.log, seq) {
            return Ok(found);
        }
        let state = self.state();
        Ok((state.head, state.layered(&Part::ALL)?))
    }

    /// What main's index holds of event `id` (`None`: unknown): the one
    /// lookup both the write path and the importers' upsert decisions use.
    pub(crate) fn lookup(&self, id: &Uuid) -> Result<Option<Meta>> {
        Ok(self.state().index.lookup(id)?.map(|(_, m)| m))
    }

    /// Current events matching `query`, ordered by occurrence start then
    /// seq. Only the matching events are read from the log.
    pub(crate) fn query(&self, query: &Query) -> Result<Vec<Record>> {
        query.validate()?;
        let hits = self.state().select(query)?;
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

    /// The by-country view at the head.
    pub(crate) fn by_country(&self) -> Result<Arc<[CountryRow]>> {
        self.cached_rows(|c| &mut c.country, State::country_rows)
    }

    /// The by-actor view at the head.
    pub(crate) fn by_actor(&self) -> Result<Arc<[ActorRow]>> {
        self.cached_rows(|c| &mut c.actor, State::actor_rows)
    }

    /// The by-date view at the head.
    pub(crate) fn by_date(&self, granularity: Granularity) -> Result<Arc<[DateRow]>> {
        let slot = Granularity::ALL
            .iter()
            .position(|g| *g == granularity)
            .unwrap_or(0);
        self.cached_rows(|c| &mut c.date[slot], |s| s.date_rows(granularity))
    }

    /// The by-place view at the head.
    pub(crate) fn by_place(
        &self,
        level: PlaceLevel,
        granularity: Option<Granularity>,
    ) -> Result<Arc<[PlaceRow]>> {
        let g = match granularity {
            None => 0,
            Some(Granularity::Year) => 2,
            Some(_) => 1,
        };
        let slot = g + 3 * usize::from(level == PlaceLevel::Admin1);
        self.cached_rows(
            |c| &mut c.place[slot],
            |s| projection::place_rows(&s.layered(&[Part::Place])?, level, granularity),
        )
    }

    /// A view's rows at the head: built once per head and shared (an
    /// `Arc`) by every read until the next write, so that repeated reads
    /// cost nothing whatever the log's length.
    fn cached_rows<R>(
        &self,
        slot: impl FnOnce(&mut RowCache) -> &mut Option<Arc<[R]>>,
        build: impl FnOnce(&State) -> Result<Vec<R>>,
    ) -> Result<Arc<[R]>> {
        let state = self.state();
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

    /// Bytes of the derived state on disk.
    pub(crate) fn derived_bytes(&self) -> u64 {
        state::disk_bytes(&[&self.index_dir, &self.snapshot_dir])
    }

    /// Brings the derived state, followers, snapshots and checkpoint up to
    /// a batch appended after `before` (each entry with the version it
    /// replaced). The batch is committed: nothing here may report it as
    /// failed (a retried correction would then apply twice).
    pub(crate) fn committed(
        &self,
        writer: &mut Writer,
        before: Head,
        new_head: Head,
        entries: &[Entry],
        befores: &[Option<Event>],
    ) {
        {
            let mut state = write(&self.state);
            state.head = new_head;
            for (entry, before) in entries.iter().zip(befores) {
                if let Err(e) = state.apply(entry, before.as_ref()) {
                    // The derived state cannot follow the log (a damaged
                    // segment or view file): reads stay at the prefix it
                    // holds, writes are refused until a reopen rebuilds it.
                    writer.poison(format!("updating the index at seq {}: {e}", entry.seq));
                    if let Ok(h) = self.log.head_at(entry.seq - 1) {
                        state.head = h;
                    }
                    break;
                }
            }
        }
        self.followers.notify(entries, befores);
        // Snapshots and flushes are caches of the log: a failure here is
        // retried at the next batch, at close, or rebuilt on open.
        // A snapshot is taken right after a flush, so that it is only
        // links to the runs the flush left (with the defaults, flushes and
        // snapshots coincide).
        let every = self.cadence.snapshot_every_entries;
        let snapshot = new_head.seq / every > before.seq / every;
        if snapshot || self.state().index.tail_entries() >= self.cadence.checkpoint_every_entries {
            let flushed = self.checkpoint(writer);
            if snapshot && flushed.is_ok() && !writer.is_poisoned() {
                let _ = self.snapshots.save(&self.state());
            }
        }
    }

    /// Writes the derived state and the feeds' checkpoints to disk, after
    /// the log (never when a failed write poisoned the writer: memory may
    /// then be behind the disk).
    pub(crate) fn checkpoint(&self, writer: &Writer) -> Result<()> {
        if writer.is_poisoned() {
            return Ok(());
        }
        // The log first: the manifest must never be ahead of the durable
        // log, so that a log shorter than it proves damage.
        self.log.store().sync()?;
        state::flush(&self.state, &self.index_dir)?;
        self.followers.checkpoint(self.head(), self.log.store())
    }

    /// Rebuilds the derived state from the log, replacing the kept state
    /// and its files. The caller holds the writer lock.
    pub(crate) fn rebuild(&self, _writer: &Writer) -> Result<()> {
        self.log.store().sync()?;
        // Snapshots are derived too: a damaged one is only met when read.
        self.snapshots.clear()?;
        state::discard(&self.index_dir)?;
        let fresh = RwLock::new(state::open(
            &self.index_dir,
            &self.log,
            self.cadence.checkpoint_every_entries,
            self.cadence.view_cells_in_memory,
            &mut snapshot_when_due(&self.snapshots, self.cadence),
        )?);
        state::flush(&fresh, &self.index_dir)?;
        *write(&self.state) = fresh.into_inner().unwrap_or_else(|p| p.into_inner());
        *lock(&self.rows) = RowCache::default();
        Ok(())
    }
}

/// What a replay (open, rebuild) does after each flush: a snapshot each
/// time it has passed another `snapshot_every_entries` entries, as the
/// writer takes them.
fn snapshot_when_due(snapshots: &Snapshots, cadence: Cadence) -> impl FnMut(&State) + '_ {
    let every = cadence.snapshot_every_entries.max(1);
    let mut last = snapshots.latest().unwrap_or(0);
    move |state: &State| {
        if state.head.seq / every > last / every && snapshots.save(state).is_ok() {
            last = state.head.seq;
        }
    }
}
