//! Everything derived from the log (index and built-in views) as of one
//! head: applying entries, catching up from the log, and its persistence
//! (index segments, the views' runs, the string table and the manifest
//! naming them, all in `<db>/index/`).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::{Index, Meta};
use crate::intern::{Keys, Name, Names};
use crate::log::{Body, Entry, Head, Log};
use crate::model::Event;
use crate::projection::{self, ActorRow, Cells, CountryRow, DateRow, Display, Layered, Part};
use crate::query::Query;
use crate::runfile::{self, Run};
use crate::segment::{self, Segment};
use crate::sync::{read, sync_dir, write};
use crate::time::Granularity;

/// Derived state at `head`: a pure fold of entries `1..=head.seq`.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub head: Head,
    pub names: LazyNames,
    pub index: Index,
    pub views: HeadViews,
}

/// The string table and the actors' display names, read from their file
/// on first use: opening, `head` and reading a view need neither (the
/// views' cells carry their names); writing and filtering by name do.
#[derive(Debug, Clone, Default)]
pub(crate) struct LazyNames {
    /// The file and how much of it the manifest covers (none: empty).
    file: Option<(PathBuf, NamesMark)>,
    table: OnceLock<NameTable>,
}

/// The string table with the actors' display names.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameTable {
    pub names: Names,
    pub display: Display,
}

/// How much of the names file is durable: its bytes, strings and
/// display pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct NamesMark {
    bytes: u64,
    names: u64,
    display: u64,
}

/// The string table's file in the derived state's folder: frames of
/// (new strings, new display pairs), each with its length and CRC-32,
/// appended at each flush.
const NAMES_FILE: &str = "names";

impl LazyNames {
    /// The table, read on first use.
    pub(crate) fn get(&self) -> Result<&NameTable> {
        if let Some(t) = self.table.get() {
            return Ok(t);
        }
        let t = match &self.file {
            None => NameTable::default(),
            Some((path, mark)) => read_names(path, *mark)?,
        };
        Ok(self.table.get_or_init(|| t))
    }

    /// The table, to add to.
    pub(crate) fn get_mut(&mut self) -> Result<&mut NameTable> {
        self.get()?;
        self.table
            .get_mut()
            .ok_or_else(|| Error::internal("string table not loaded"))
    }

    /// The table if it was read (it always is once anything was applied).
    fn loaded(&self) -> Option<&NameTable> {
        self.table.get()
    }

    /// Appends what was added since the last flush to the names file in
    /// `dir`, durably; the new mark, for the manifest.
    fn persist(&self, dir: &Path) -> Result<NamesMark> {
        let path = dir.join(NAMES_FILE);
        let mark = self.file.as_ref().map(|f| f.1).unwrap_or_default();
        let Some(t) = self.loaded() else {
            return Ok(mark);
        };
        let (n0, d0) = (mark.names as usize, mark.display as usize);
        let new_names = t.names.since(n0);
        let new_display = t.display.pairs_from(d0);
        if new_names.is_empty() && new_display.is_empty() && mark.bytes > 0 {
            return Ok(mark);
        }
        let body =
            bincode::serde::encode_to_vec((new_names, new_display), bincode::config::standard())
                .map_err(|e| Error::internal(format!("encoding the string table: {e}")))?;
        let mut frame = Vec::with_capacity(body.len() + 8);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        frame.extend_from_slice(&body);
        let write = || -> std::io::Result<()> {
            let f = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            // Past the mark is a crashed flush's frame: overwritten.
            f.set_len(mark.bytes)?;
            f.write_all_at(&frame, mark.bytes)?;
            f.sync_all()
        };
        write().map_err(|e| Error::io(&path, e))?;
        sync_dir(&path)?;
        Ok(NamesMark {
            bytes: mark.bytes + frame.len() as u64,
            names: t.names.len() as u64,
            display: t.display.len() as u64,
        })
    }
}

/// One frame of the names file: the strings and display pairs added.
type NamesFrame = (Vec<String>, Vec<(Name, Name)>);

/// Reads the names file up to `mark`, checking every frame.
fn read_names(path: &Path, mark: NamesMark) -> Result<NameTable> {
    let damaged = |why: &str| Error::derived(path, format!("string table: {why}"));
    let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = usize::try_from(mark.bytes).map_err(|_| damaged("too large"))?;
    let mut bytes = vec![0u8; len];
    f.read_exact(&mut bytes)
        .map_err(|_| damaged("shorter than the manifest says"))?;
    let mut names = Names::default();
    let mut pairs: Vec<(Name, Name)> = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let word = |at: usize| -> Option<u32> {
            let b = bytes.get(at..at + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (Some(n), Some(crc)) = (word(pos), word(pos + 4)) else {
            return Err(damaged("frame header cut short"));
        };
        let body = bytes
            .get(pos + 8..pos + 8 + n as usize)
            .ok_or_else(|| damaged("frame cut short"))?;
        if crc32fast::hash(body) != crc {
            return Err(damaged("checksum mismatch"));
        }
        let ((strs, ds), _): (NamesFrame, usize) =
            bincode::serde::decode_from_slice(body, bincode::config::standard())
                .map_err(|_| damaged("frame does not decode"))?;
        for s in strs {
            names.intern(&s);
        }
        pairs.extend(ds);
        pos += 8 + n as usize;
    }
    if names.len() as u64 != mark.names || pairs.len() as u64 != mark.display {
        return Err(damaged(
            "holds another number of names than the manifest says",
        ));
    }
    Ok(NameTable {
        names,
        display: Display::from_pairs(pairs),
    })
}

/// Changed cells held in memory when no other number was given.
const DEFAULT_SPILL_CELLS: usize = 400_000;
/// Most runs kept before the newest two are merged whatever their sizes.
const MAX_RUNS: usize = 8;

/// The built-in views at the head: the runs on disk (those the manifest
/// names, then those written since) and the cells changed after them.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadViews {
    dir: PathBuf,
    /// Changed cells past which they are written out as a run before the
    /// next flush: bounds the memory the views take while writing,
    /// whatever the flush cadence.
    spill_cells: usize,
    runs: Vec<Arc<Run>>,
    delta: Cells,
    /// The seqs the changed cells cover (none: nothing changed).
    delta_seqs: Option<(u64, u64)>,
}

fn run_path(dir: &Path, lo: u64, hi: u64) -> PathBuf {
    dir.join(format!("{lo:020}-{hi:020}.run"))
}

impl HeadViews {
    /// The views as layers, with the changed cells of `parts` on top
    /// (their names resolved through `names`, which is read whenever
    /// anything changed since the last run).
    pub(crate) fn layered(&self, names: &LazyNames, parts: &[Part]) -> Result<Layered> {
        let layers = Layered {
            runs: self.runs.clone(),
            mems: Vec::new(),
        };
        if self.delta.is_empty() {
            return Ok(layers);
        }
        let t = names.get()?;
        Ok(layers.with(self.delta.encode(&t.names, &t.display, parts)))
    }

    /// The runs on disk, oldest first.
    pub(crate) fn runs(&self) -> &[Arc<Run>] {
        &self.runs
    }

    /// Writes the changed cells as a new run (they are then read from it).
    fn spill(&mut self, t: &NameTable) -> Result<()> {
        let Some((lo, hi)) = self.delta_seqs else {
            return Ok(());
        };
        let cells = self.delta.encode(&t.names, &t.display, &Part::ALL);
        let run = runfile::write_run(&run_path(&self.dir, lo, hi), cells)?;
        self.runs.push(Arc::new(run));
        self.delta = Cells::default();
        self.delta_seqs = None;
        Ok(())
    }
}

impl State {
    /// Folds one entry in; `before` is the event's current version before
    /// it (none for a new event).
    pub(crate) fn apply(&mut self, entry: &Entry, before: Option<&Event>) -> Result<()> {
        let t = self.names.get_mut()?;
        let before = before.map(|e| Keys::of(&mut t.names, e));
        let after = entry.body.event().map(|e| Keys::of(&mut t.names, e));
        self.index.apply(entry, before.as_ref(), after.as_ref())?;
        let v = &mut self.views;
        v.delta
            .apply(&mut t.display, before.as_ref(), after.as_ref());
        v.delta_seqs = Some(match v.delta_seqs {
            Some((lo, _)) => (lo, entry.seq),
            None => (entry.seq, entry.seq),
        });
        let limit = match v.spill_cells {
            0 => DEFAULT_SPILL_CELLS,
            n => n,
        };
        if v.delta.len() >= limit {
            v.spill(t)?;
        }
        Ok(())
    }

    /// The views at the head, with the changes of `parts` on top.
    pub(crate) fn layered(&self, parts: &[Part]) -> Result<Layered> {
        self.views.layered(&self.names, parts)
    }

    /// Rows of the by-country view.
    pub(crate) fn country_rows(&self) -> Result<Vec<CountryRow>> {
        projection::country_rows(&self.layered(&[Part::Country])?)
    }

    /// Rows of the by-actor view.
    pub(crate) fn actor_rows(&self) -> Result<Vec<ActorRow>> {
        projection::actor_rows(&self.layered(&[Part::Actor])?, None, None)
    }

    /// Rows of the by-date view.
    pub(crate) fn date_rows(&self, g: Granularity) -> Result<Vec<DateRow>> {
        projection::date_rows(&self.layered(&[Part::Date])?, g)
    }

    /// Current events matching a query, as index metadata.
    pub(crate) fn select(&self, q: &Query) -> Result<Vec<Meta>> {
        let empty = Names::default();
        self.index.select(self.names_for(q, &empty)?, q)
    }

    /// The string table if `q` filters by name (an empty one otherwise,
    /// so that a query by time alone does not read the table).
    pub(crate) fn names_for<'a>(&'a self, q: &Query, empty: &'a Names) -> Result<&'a Names> {
        if q.countries.is_empty() && q.actors.is_empty() && q.kinds.is_empty() {
            Ok(empty)
        } else {
            Ok(&self.names.get()?.names)
        }
    }

    /// The current version of the event an entry concerns, before the entry,
    /// read from the log. Errors if the log is inconsistent (a correction of
    /// an unknown or retracted event), which only damage can cause.
    pub(crate) fn before(&self, log: &Log, entry: &Entry) -> Result<Option<Event>> {
        if let Body::Event(e) = &entry.body {
            if self.index.id_of(&e.id)?.is_some() {
                return Err(Error::corruption(
                    entry.seq,
                    format!("event {} is created twice", e.id),
                ));
            }
            return Ok(None);
        }
        let id = entry.body.id();
        if let Body::Excised { .. } = entry.body {
            // Excision erases every entry of the event, the first included.
            return match self.index.lookup(&id)? {
                Some((_, m)) if !m.excised => Err(Error::corruption(
                    entry.seq,
                    format!("entry of event {id} is excised, but the event's first entry is not"),
                )),
                _ => Ok(None),
            };
        }
        match self.index.lookup(&id)? {
            Some((_, m)) if m.retracted.is_none() => log.read_event(m.current).map(Some),
            Some(_) => Err(Error::corruption(
                entry.seq,
                format!("entry changes event {id}, which was already retracted"),
            )),
            None => Err(Error::corruption(
                entry.seq,
                format!("entry changes event {id}, which does not exist"),
            )),
        }
    }

    /// Replays the log from this state's head to the log's end (or to
    /// `upto`), calling `each` with every entry and its `before`.
    pub(crate) fn catch_up(
        &mut self,
        log: &Log,
        upto: Option<u64>,
        mut each: impl FnMut(&Entry, Option<&Event>),
    ) -> Result<()> {
        for item in log.entries_after(self.head) {
            let (entry, hash) = item?;
            if upto.is_some_and(|u| entry.seq > u) {
                break;
            }
            let before = self.before(log, &entry)?;
            self.apply(&entry, before.as_ref())?;
            each(&entry, before.as_ref());
            self.head = Head {
                seq: entry.seq,
                hash,
                recorded_at: entry.recorded_at,
            };
        }
        Ok(())
    }
}

/// The manifest file in the derived state's folder.
const MANIFEST_FILE: &str = "MANIFEST";

/// What the derived state on disk covers: the head, the segment files
/// and the views' runs (oldest first), and how much of the names file,
/// all in `index/`.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    head: Head,
    segments: Vec<String>,
    runs: Vec<String>,
    names: NamesMark,
    /// What the segments' posting lists hold ([`INDEX_FORMAT`]).
    format: u32,
}

/// The derived state's format: 2 adds the place lists to the index and
/// the by-place view's cells to the runs. A manifest of another format
/// (or none, before format 2) makes the derived state rebuild from the
/// log; a snapshot of another format is skipped.
pub(crate) const INDEX_FORMAT: u32 = 2;

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn segment_path(dir: &Path, seq_lo: u64, seq_hi: u64) -> PathBuf {
    dir.join(format!("{seq_lo:020}-{seq_hi:020}.seg"))
}

/// Loads the derived state persisted in `dir` if it is intact and belongs
/// to this log (`None` otherwise: it is then rebuilt from the log). Errors
/// only when the state proves the log lost acknowledged entries. Reads
/// the manifest and the segments' and runs' footers and indexes only.
fn load(dir: &Path, log: &Log, log_head: Head) -> Result<Option<State>> {
    let Some(m) =
        load_checkpoint::<Manifest>(&dir.join(MANIFEST_FILE)).filter(|m| m.format == INDEX_FORMAT)
    else {
        return Ok(None);
    };
    if m.head.seq > log_head.seq || log.head_at(m.head.seq).ok() != Some(m.head) {
        // The manifest is only written once the log up to its head is
        // durable: a log that is shorter, or differs at that seq, lost or
        // changed acknowledged entries.
        return Err(Error::corruption(
            (log_head.seq + 1).min(m.head.seq),
            format!(
                "the log ends at seq {} but entries up to seq {} were durable \
                 (per the index manifest); entries were lost or changed",
                log_head.seq, m.head.seq
            ),
        ));
    }
    let mut segments = Vec::with_capacity(m.segments.len());
    let mut next = (1u64, 0u32);
    for name in &m.segments {
        let Ok(s) = Segment::open(&dir.join(name)) else {
            return Ok(None);
        };
        if (s.footer.seq_lo, s.footer.ev_lo) != next {
            return Ok(None);
        }
        next = (s.footer.seq_hi + 1, s.footer.ev_hi);
        segments.push(Arc::new(s));
    }
    if next.0 != m.head.seq + 1 {
        return Ok(None);
    }
    let mut runs = Vec::with_capacity(m.runs.len());
    for name in &m.runs {
        let Ok(r) = Run::open(&dir.join(name)) else {
            return Ok(None);
        };
        runs.push(Arc::new(r));
    }
    let names_path = dir.join(NAMES_FILE);
    match fs::metadata(&names_path) {
        Ok(md) if md.len() >= m.names.bytes => {}
        _ if m.names.bytes == 0 => {}
        _ => return Ok(None),
    }
    Ok(Some(State {
        head: m.head,
        names: LazyNames {
            file: (m.names.bytes > 0).then_some((names_path, m.names)),
            table: OnceLock::new(),
        },
        index: Index::with_segments(segments),
        views: HeadViews {
            dir: dir.to_path_buf(),
            runs,
            ..HeadViews::default()
        },
    }))
}

/// Opens the derived state of `log` in `dir`: the persisted state plus a
/// replay of the entries after it, or (when missing, damaged or of an
/// older format) a rebuild from the whole log. Flushes every
/// `flush_every` entries while replaying, so memory stays bounded.
///
/// `flushed` is called after each of those flushes (view snapshots are
/// taken there).
pub(crate) fn open(
    dir: &Path,
    log: &Log,
    flush_every: u64,
    spill_cells: usize,
    flushed: &mut dyn FnMut(&State),
) -> Result<State> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let log_head = log.head()?;
    let loaded = load(dir, log, log_head)?;
    if let Some(mut loaded) = loaded {
        loaded.views.spill_cells = spill_cells;
        match replay(loaded, dir, log, log_head, flush_every, flushed) {
            Ok(state) => return Ok(state),
            // Damage in a derived file (a segment block, a run, the
            // string table) means a rebuild from the log. Damage in the
            // log itself (or in the store that holds it) is reported as it
            // is, and the manifest, the only record of the durable head,
            // is kept.
            Err(Error::DerivedDamage { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    discard(dir)?;
    let fresh = State {
        views: HeadViews {
            dir: dir.to_path_buf(),
            spill_cells,
            ..HeadViews::default()
        },
        ..State::default()
    };
    replay(fresh, dir, log, log_head, flush_every, flushed)
}

/// Replays the log from `state`'s head to `log_head`, flushing every
/// `flush_every` entries (and calling `flushed` after each flush).
fn replay(
    state: State,
    dir: &Path,
    log: &Log,
    log_head: Head,
    flush_every: u64,
    flushed: &mut dyn FnMut(&State),
) -> Result<State> {
    let state = RwLock::new(state);
    loop {
        let upto = read(&state).head.seq + flush_every.max(1);
        write(&state).catch_up(log, Some(upto), |_, _| {})?;
        if read(&state).head.seq >= log_head.seq {
            break;
        }
        log.store().sync()?;
        flush(&state, dir)?;
        flushed(&read(&state));
    }
    let state = state.into_inner().unwrap_or_else(|p| p.into_inner());
    if state.head != log_head {
        return Err(Error::corruption(
            log_head.seq,
            format!(
                "the log's last entry is seq {} but replay ended at seq {}",
                log_head.seq, state.head.seq
            ),
        ));
    }
    Ok(state)
}

/// Whether the newest two of runs of these sizes are merged: when the
/// older is at most twice the newer (so sizes grow geometrically and a
/// cell is rewritten about log2(cells / flush) times), or when there
/// are too many.
fn merge_newest(sizes: &[u64]) -> bool {
    match sizes {
        [.., older, newer] => *older <= newer.saturating_mul(2) || sizes.len() > MAX_RUNS,
        _ => false,
    }
}

/// Persists what changed since the last flush: seals the index's tail
/// into a segment, writes the views' changed cells as a run and the new
/// strings to the names file, merges neighbouring segments and runs of
/// similar size, then writes the manifest, and removes the files it no
/// longer names. The caller holds the writer lock and has synced the log
/// up to the state's head (the manifest must never be ahead of the
/// durable log). Readers are held off only while files are swapped in.
pub(crate) fn flush(state: &RwLock<State>, dir: &Path) -> Result<()> {
    let head = {
        let s = read(state);
        if s.index.tail_entries() == 0 && s.views.delta_seqs.is_none() {
            return Ok(());
        }
        let seg = if s.index.tail_entries() > 0 {
            let lo = s.index.segments().last().map_or(1, |x| x.footer.seq_hi + 1);
            Some(
                s.index
                    .seal(&segment_path(dir, lo, s.head.seq), s.head.seq)?,
            )
        } else {
            None
        };
        let head = s.head;
        drop(s);
        let mut s = write(state);
        if let Some(seg) = seg {
            s.index.install(seg);
        }
        let State { names, views, .. } = &mut *s;
        if views.delta_seqs.is_some() {
            let t = names.get()?;
            views.spill(t)?;
        }
        head
    };
    loop {
        let (i, a, b) = {
            let s = read(state);
            let Some(i) = s.index.merge_candidate() else {
                break;
            };
            let segs = s.index.segments();
            match (segs.get(i), segs.get(i + 1)) {
                (Some(a), Some(b)) => (i, Arc::clone(a), Arc::clone(b)),
                _ => break,
            }
        };
        let path = segment_path(dir, a.footer.seq_lo, b.footer.seq_hi);
        let merged = segment::merge(&a, &b, &path)?;
        write(state).index.replace_pair(i, merged);
    }
    loop {
        let (a, b) = {
            let s = read(state);
            let runs = s.views.runs();
            let sizes: Vec<u64> = runs.iter().map(|r| r.bytes()).collect();
            if !merge_newest(&sizes) {
                break;
            }
            match runs {
                [.., a, b] => (Arc::clone(a), Arc::clone(b)),
                _ => break,
            }
        };
        let (lo, hi) = (run_seqs(a.path()).0, run_seqs(b.path()).1);
        let merged = Arc::new(runfile::merge_runs(&a, &b, &run_path(dir, lo, hi))?);
        let mut s = write(state);
        let n = s.views.runs.len();
        s.views.runs.truncate(n.saturating_sub(2));
        s.views.runs.push(merged);
    }
    let mark = read(state).names.persist(dir)?;
    let (segments, runs): (Vec<String>, Vec<String>) = {
        let s = read(state);
        (
            s.index
                .segments()
                .iter()
                .map(|x| file_name(x.path()))
                .collect(),
            s.views.runs.iter().map(|r| file_name(r.path())).collect(),
        )
    };
    let mut keep = segments.clone();
    keep.extend(runs.iter().cloned());
    keep.push(NAMES_FILE.to_string());
    let manifest = Manifest {
        head,
        segments,
        runs,
        names: mark,
        format: INDEX_FORMAT,
    };
    save_checkpoint(&dir.join(MANIFEST_FILE), &manifest, false)?;
    write(state).names.file = Some((dir.join(NAMES_FILE), mark));
    remove_unlisted(dir, &keep)
}

/// The seqs a run's name says it covers.
fn run_seqs(path: &Path) -> (u64, u64) {
    let name = file_name(path);
    let mut parts = name
        .trim_end_matches(".run")
        .split('-')
        .map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Removes the files of `dir` that the manifest does not name: segments
/// replaced by a merge, older views checkpoints, leftovers of a crash.
fn remove_unlisted(dir: &Path, keep: &[String]) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != MANIFEST_FILE && !keep.contains(&name) {
            match fs::remove_file(entry.path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(entry.path(), e))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Removes the persisted derived state (the manifest first, so that a
/// crash midway leaves nothing that looks whole).
pub(crate) fn discard(dir: &Path) -> Result<()> {
    let manifest = dir.join(MANIFEST_FILE);
    match fs::remove_file(&manifest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&manifest, e)),
        _ => {}
    }
    sync_dir(&manifest)?;
    remove_unlisted(dir, &[])
}

/// Bytes on disk of the files under `dirs` (recursively), a file with
/// several names (a run hard-linked into snapshots) counted once.
pub(crate) fn disk_bytes(dirs: &[&Path]) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

const CHECKPOINT_MAGIC: &[u8; 8] = b"annalsCK";
const CHECKPOINT_VERSION: u8 = 1;
/// The same, with the body deflated (view snapshots: written once, read
/// rarely, and 3-4x smaller).
const CHECKPOINT_VERSION_DEFLATED: u8 = 2;

/// Writes a checkpoint to `path` atomically: a temporary file, fsync,
/// rename, directory fsync. Layout: magic, version (1, or 2 when the body
/// is deflated), BLAKE3 of the stored body, bincode body.
pub(crate) fn save_checkpoint<T: Serialize>(path: &Path, value: &T, deflate: bool) -> Result<()> {
    let mut body = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| Error::internal(format!("encoding a checkpoint: {e}")))?;
    let version = if deflate {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&body)
            .and_then(|()| z.finish())
            .map(|b| body = b)
            .map_err(|e| Error::io(path, e))?;
        CHECKPOINT_VERSION_DEFLATED
    } else {
        CHECKPOINT_VERSION
    };
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(CHECKPOINT_MAGIC)?;
        f.write_all(&[version])?;
        f.write_all(blake3::hash(&body).as_bytes())?;
        f.write_all(&body)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| Error::io(path, e))?;
    sync_dir(path)
}

/// Reads a checkpoint; `None` if it is missing, damaged or of another
/// version (a checkpoint is only a cache of the log, so it is then rebuilt).
pub(crate) fn load_checkpoint<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = fs::read(path).ok()?;
    let header = 8 + 1 + 32;
    let (head, body) = (bytes.get(..header)?, bytes.get(header..)?);
    let version = *head.get(8)?;
    if head.get(..8)? != CHECKPOINT_MAGIC
        || ![CHECKPOINT_VERSION, CHECKPOINT_VERSION_DEFLATED].contains(&version)
    {
        return None;
    }
    if head.get(9..)? != blake3::hash(body).as_bytes() {
        return None;
    }
    let inflated;
    let body = if version == CHECKPOINT_VERSION_DEFLATED {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(body)
            .read_to_end(&mut out)
            .ok()?;
        inflated = out;
        &inflated[..]
    } else {
        body
    };
    bincode::serde::decode_from_slice(body, bincode::config::standard())
        .ok()
        .map(|(v, _)| v)
}
