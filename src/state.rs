//! Everything derived from the log (index and built-in views) as of one
//! head, its replay from the log, and its checkpoint file.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::{Index, Meta};
use crate::intern::{Keys, Names};
use crate::log::{Body, Entry, Head, Log};
use crate::model::Event;
use crate::projection::{ActorRow, CountryRow, DateRow, Views};
use crate::query::Query;
use crate::time::Granularity;

/// Derived state at `head`: a pure fold of entries `1..=head.seq`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    pub head: Head,
    pub names: Names,
    pub index: Index,
    pub views: Views,
}

impl State {
    /// Folds one entry in; `before` is the event's current version before
    /// it (none for a new event).
    pub(crate) fn apply(&mut self, entry: &Entry, before: Option<&Event>) {
        let before = before.map(|e| Keys::of(&mut self.names, e));
        let after = entry.body.event().map(|e| Keys::of(&mut self.names, e));
        self.index.apply(entry, before.as_ref(), after.as_ref());
        self.views.apply(before.as_ref(), after.as_ref());
    }

    /// Rows of the by-country view.
    pub(crate) fn country_rows(&self) -> Vec<CountryRow> {
        self.views.country_rows(&self.names)
    }

    /// Rows of the by-actor view.
    pub(crate) fn actor_rows(&self) -> Vec<ActorRow> {
        self.views.actor_rows(&self.names)
    }

    /// Rows of the by-date view.
    pub(crate) fn date_rows(&self, g: Granularity) -> Vec<DateRow> {
        self.views.date_rows(&self.names, g)
    }

    /// Current events matching a query, as index metadata.
    pub(crate) fn select(&self, q: &Query) -> Vec<Meta> {
        self.index.select(&self.names, q)
    }

    /// The current version of the event an entry concerns, before the entry,
    /// read from the log. Errors if the log is inconsistent (a correction of
    /// an unknown or retracted event), which only damage can cause.
    pub(crate) fn before(&self, log: &Log, entry: &Entry) -> Result<Option<Event>> {
        if let Body::Event(e) = &entry.body {
            if self.index.lookup(&e.id).is_some() {
                return Err(Error::corruption(
                    entry.seq,
                    format!("event {} is created twice", e.id),
                ));
            }
            return Ok(None);
        }
        let id = entry.body.id();
        match self.index.lookup(&id) {
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
            self.apply(&entry, before.as_ref());
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
        .map_err(|e| Error::Storage(format!("encoding a checkpoint: {e}")))?;
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
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| Error::io(path, e))
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

/// Loads the state checkpoint.
pub(crate) fn load_state(path: &Path) -> Option<State> {
    let mut state: State = load_checkpoint(path)?;
    state.names.reindex();
    Some(state)
}
