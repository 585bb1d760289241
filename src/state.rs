//! Everything derived from the log (index and built-in views) as of one
//! head: applying entries, catching up from the log, and its persistence
//! (index segments, the views' files and the manifest naming them, all
//! in `<db>/index/`).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::{Index, Meta};
use crate::intern::{Keys, Names};
use crate::log::{Body, Entry, Head, Log};
use crate::model::Event;
use crate::projection::{
    apply_to, ActorRow, ByActor, ByCountry, ByDate, CountryRow, DateRow, Display, Views,
};
use crate::query::Query;
use crate::segment::{self, Segment};
use crate::sync::{read, sync_dir, write};
use crate::time::Granularity;

/// Derived state at `head`: a pure fold of entries `1..=head.seq`.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub head: Head,
    pub names: Names,
    pub index: Index,
    pub views: HeadViews,
}

/// The built-in views at the head. Each is read from its own file on
/// first use: opening reads none of them, the by-country view reads only
/// its own. The actors' display names, which two views show, are read
/// with the string table.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadViews {
    /// The files of the manifest head's views (none: they start empty).
    base: Option<PathBuf>,
    display: Display,
    by_country: OnceLock<ByCountry>,
    by_actor: OnceLock<ByActor>,
    by_date: OnceLock<ByDate>,
}

/// [`Views`] by reference (same fields, same order, same encoding).
#[derive(Serialize)]
pub(crate) struct ViewsRef<'a> {
    by_country: &'a ByCountry,
    by_actor: &'a ByActor,
    by_date: &'a ByDate,
    display: &'a Display,
}

fn part<'a, T: DeserializeOwned + Default>(
    cell: &'a OnceLock<T>,
    base: Option<&Path>,
    ext: &str,
) -> Result<&'a T> {
    if let Some(v) = cell.get() {
        return Ok(v);
    }
    let v = match base {
        None => T::default(),
        Some(b) => {
            let path = b.with_extension(ext);
            load_checkpoint(&path)
                .ok_or_else(|| Error::derived(&path, "view file is missing or damaged"))?
        }
    };
    Ok(cell.get_or_init(|| v))
}

impl HeadViews {
    pub(crate) fn by_country(&self) -> Result<&ByCountry> {
        part(&self.by_country, self.base.as_deref(), "country")
    }

    pub(crate) fn by_actor(&self) -> Result<&ByActor> {
        part(&self.by_actor, self.base.as_deref(), "actor")
    }

    pub(crate) fn by_date(&self) -> Result<&ByDate> {
        part(&self.by_date, self.base.as_deref(), "date")
    }

    /// All of the views, as one value.
    pub(crate) fn to_views(&self) -> Result<Views> {
        Ok(Views {
            by_country: self.by_country()?.clone(),
            by_actor: self.by_actor()?.clone(),
            by_date: self.by_date()?.clone(),
            display: self.display.clone(),
        })
    }

    /// All of the views, borrowed, serialized exactly as [`Views`].
    pub(crate) fn borrowed(&self) -> Result<ViewsRef<'_>> {
        Ok(ViewsRef {
            by_country: self.by_country()?,
            by_actor: self.by_actor()?,
            by_date: self.by_date()?,
            display: &self.display,
        })
    }

    /// Removes `before`'s contribution and adds `after`'s.
    fn apply(&mut self, before: Option<&Keys>, after: Option<&Keys>) -> Result<()> {
        self.by_country()?;
        self.by_actor()?;
        self.by_date()?;
        if let (Some(c), Some(a), Some(d)) = (
            self.by_country.get_mut(),
            self.by_actor.get_mut(),
            self.by_date.get_mut(),
        ) {
            apply_to(c, a, d, &mut self.display, before, after);
        }
        Ok(())
    }

    /// Writes the views to files named after `base`.
    fn save(&self, base: &Path, head: Head, names: &Names) -> Result<()> {
        save_checkpoint(&base.with_extension("country"), self.by_country()?, false)?;
        save_checkpoint(&base.with_extension("actor"), self.by_actor()?, false)?;
        save_checkpoint(&base.with_extension("date"), self.by_date()?, false)?;
        save_checkpoint(
            &base.with_extension("names"),
            &(head, names, &self.display),
            false,
        )
    }

    /// The names of the files [`HeadViews::save`] writes.
    fn file_names(base: &str) -> [String; 4] {
        ["country", "actor", "date", "names"].map(|ext| format!("{base}.{ext}"))
    }
}

impl State {
    /// Folds one entry in; `before` is the event's current version before
    /// it (none for a new event).
    pub(crate) fn apply(&mut self, entry: &Entry, before: Option<&Event>) -> Result<()> {
        let before = before.map(|e| Keys::of(&mut self.names, e));
        let after = entry.body.event().map(|e| Keys::of(&mut self.names, e));
        self.index.apply(entry, before.as_ref(), after.as_ref())?;
        self.views.apply(before.as_ref(), after.as_ref())
    }

    /// Rows of the by-country view.
    pub(crate) fn country_rows(&self) -> Result<Vec<CountryRow>> {
        Ok(self
            .views
            .by_country()?
            .rows(&self.names, &self.views.display))
    }

    /// Rows of the by-actor view.
    pub(crate) fn actor_rows(&self) -> Result<Vec<ActorRow>> {
        Ok(self
            .views
            .by_actor()?
            .rows(&self.names, &self.views.display))
    }

    /// Rows of the by-date view.
    pub(crate) fn date_rows(&self, g: Granularity) -> Result<Vec<DateRow>> {
        Ok(self.views.by_date()?.rows(&self.names, g))
    }

    /// Current events matching a query, as index metadata.
    pub(crate) fn select(&self, q: &Query) -> Result<Vec<Meta>> {
        self.index.select(&self.names, q)
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
/// (oldest first) and the base name of the views' files, all in
/// `index/`.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    head: Head,
    segments: Vec<String>,
    views: String,
}

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
/// only when the state proves the log lost acknowledged entries.
fn load(dir: &Path, log: &Log, log_head: Head) -> Result<Option<State>> {
    let Some(m) = load_checkpoint::<Manifest>(&dir.join(MANIFEST_FILE)) else {
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
    let base = dir.join(&m.views);
    let Some((head, mut names, display)) =
        load_checkpoint::<(Head, Names, Display)>(&base.with_extension("names"))
    else {
        return Ok(None);
    };
    if head != m.head {
        return Ok(None);
    }
    names.reindex();
    Ok(Some(State {
        head,
        names,
        index: Index::with_segments(segments),
        views: HeadViews {
            base: Some(base),
            display,
            ..HeadViews::default()
        },
    }))
}

/// Opens the derived state of `log` in `dir`: the persisted state plus a
/// replay of the entries after it, or (when missing, damaged or of an
/// older format) a rebuild from the whole log. Flushes every
/// `flush_every` entries while replaying, so memory stays bounded.
pub(crate) fn open(dir: &Path, log: &Log, flush_every: u64) -> Result<State> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let log_head = log.head()?;
    let loaded = load(dir, log, log_head)?;
    if let Some(loaded) = loaded {
        match replay(loaded, dir, log, log_head, flush_every) {
            Ok(state) => return Ok(state),
            // Damage in a derived file (a segment block, a view file)
            // means a rebuild from the log. Damage in the log itself (or
            // in the store that holds it) is reported as it is, and the
            // manifest, the only record of the durable head, is kept.
            Err(Error::DerivedDamage { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    discard(dir)?;
    replay(State::default(), dir, log, log_head, flush_every)
}

/// Replays the log from `state`'s head to `log_head`, flushing every
/// `flush_every` entries.
fn replay(state: State, dir: &Path, log: &Log, log_head: Head, flush_every: u64) -> Result<State> {
    let state = RwLock::new(state);
    loop {
        let upto = read(&state).head.seq + flush_every.max(1);
        write(&state).catch_up(log, Some(upto), |_, _| {})?;
        if read(&state).head.seq >= log_head.seq {
            break;
        }
        log.store().sync()?;
        flush(&state, dir)?;
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

/// Persists the tail: seals it into a segment, writes the views' files,
/// merges neighbouring segments of similar size, then writes the
/// manifest, and removes the files it no longer names. The caller holds
/// the writer lock and has synced the log up to the state's head (the
/// manifest must never be ahead of the durable log). Readers are held
/// off only while the new segments are swapped in.
pub(crate) fn flush(state: &RwLock<State>, dir: &Path) -> Result<()> {
    let (head, views_name) = {
        let s = read(state);
        if s.index.tail_entries() == 0 {
            return Ok(());
        }
        let lo = s.index.segments().last().map_or(1, |x| x.footer.seq_hi + 1);
        let seg = s
            .index
            .seal(&segment_path(dir, lo, s.head.seq), s.head.seq)?;
        let views = format!("views-{:020}", s.head.seq);
        s.views.save(&dir.join(&views), s.head, &s.names)?;
        let head = s.head;
        drop(s);
        let mut s = write(state);
        s.index.install(seg);
        // Every part is loaded (saving loaded it), so this only matters
        // if one is dropped later; the old files are about to go.
        s.views.base = Some(dir.join(&views));
        (head, views)
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
    let segments: Vec<String> = read(state)
        .index
        .segments()
        .iter()
        .map(|s| file_name(s.path()))
        .collect();
    let mut keep = segments.clone();
    keep.extend(HeadViews::file_names(&views_name));
    let manifest = Manifest {
        head,
        segments,
        views: views_name,
    };
    save_checkpoint(&dir.join(MANIFEST_FILE), &manifest, false)?;
    remove_unlisted(dir, &keep)
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

/// Bytes of the derived state on disk.
pub(crate) fn disk_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
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
