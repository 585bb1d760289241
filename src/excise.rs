//! Excision: erasing one event's payload from every log and every file of
//! the database (a legal erasure request), keeping the hash chain whole.
//!
//! Each entry of the event, on main and on every branch, is replaced by a
//! stub that keeps its header and the digest of its payload (`codec`), so
//! the chain verifies as before. sled keeps overwritten values in its files
//! until it happens to reuse the space, and the derived files (index,
//! views, snapshots, projection checkpoints) hold copies of the payload,
//! so the stubs alone would not make the payload physically gone: the
//! store is copied into a fresh one holding only live values (the log
//! segments that hold none of the event's entries are hard-linked, the
//! others rewritten with the stubs), swapped in whole, and the derived
//! state rebuilt from the log.
//!
//! Crash safety: a marker file, written durably before anything changes,
//! names the excision. Every step after it can be redone, and opening a
//! database with a marker redoes the excision to the end before anything
//! else, so an interrupted excision is completed, never half-done.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::{chunk_bytes, excise_entry, unpack_chunk};
use crate::error::{Error, Result};
use crate::folder::{INDEX_DIR, SNAPSHOT_DIR, STORE_DIR};
use crate::model::MAX_REASON_BYTES;
use crate::store::{Edits, Storage, Store, MAIN_LOG};
use crate::sync::sync_dir;
use crate::time::{format_micros, Micros};

/// Names the excision in progress; its presence means "finish it".
const MARKER: &str = "EXCISING";
/// The fresh copy of the store while it is being written.
const NEW_STORE: &str = "store.excise";
/// The store before the swap, removed once the copy is in place.
const OLD_STORE: &str = "store.old";
/// Metadata key prefix of the excision records.
pub(crate) const RECORD_KEY: &str = "excised/";
/// Metadata key prefix of user projections' checkpoints, which may hold
/// anything a projection kept of the payload.
const PROJECTION_KEY: &str = "projection/";

/// The record of one excision: which event, when, why, and which entries
/// of which log lost their payload. Kept in the database's metadata, so
/// that `history` can say what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excision {
    /// The excised event.
    pub id: Uuid,
    /// When it was excised (UTC microseconds).
    pub at: Micros,
    /// Why, as given.
    pub reason: String,
    /// The seqs of the erased entries, per log (`main` or a branch name).
    pub entries: BTreeMap<String, Vec<u64>>,
}

impl Excision {
    /// `{id, excised_at, reason, entries: {log: [seqs]}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id.to_string(),
            "excised_at": format_micros(self.at),
            "reason": self.reason,
            "entries": self.entries,
        })
    }
}

/// Checks an excision's reason: trimmed, not empty, within the limit.
pub(crate) fn check_reason(reason: &str) -> Result<&str> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid("reason", "an excision needs a reason"));
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(Error::invalid(
            "reason",
            format!("{} bytes; the limit is {MAX_REASON_BYTES}", reason.len()),
        ));
    }
    Ok(reason)
}

/// Runs a planned excision in the database in folder `dir`, closed, its
/// lock held by the caller: the marker first, durably, then every step.
pub(crate) fn run(dir: &Path, plan: &Plan) -> Result<Excision> {
    write_marker(dir, plan)?;
    finish(dir, plan)
}

/// What the marker holds: enough to redo the excision from any point.
#[derive(Serialize, Deserialize)]
pub(crate) struct Plan {
    /// The event.
    pub(crate) id: Uuid,
    /// When the excision was asked for.
    pub(crate) at: Micros,
    /// Why.
    pub(crate) reason: String,
    /// The event's entries on main (from the index, which the excision
    /// itself removes, so they are kept here).
    pub(crate) main: Vec<u64>,
}

/// The excision record of `id` in `store`.
pub(crate) fn record(store: &dyn Storage, id: Uuid) -> Result<Option<Excision>> {
    let key = format!("{RECORD_KEY}{id}");
    store
        .get_meta(&key)?
        .map(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::corruption(0, format!("excision record `{key}`: {e}")))
        })
        .transpose()
}

/// The ids of every excised event.
pub(crate) fn excised_ids(store: &dyn Storage) -> Result<std::collections::HashSet<Uuid>> {
    store
        .scan_meta(RECORD_KEY)?
        .into_iter()
        .map(|(key, _)| {
            key.get(RECORD_KEY.len()..)
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| Error::corruption(0, format!("bad excision record key `{key}`")))
        })
        .collect()
}

/// Finishes an excision interrupted by a crash, if there is one. Called on
/// open, with the database's lock held. An excision that cannot finish
/// (no space for the copy, damage met while copying) is reported as
/// [`Error::ExcisionStuck`], which says how to give it up.
pub(crate) fn resume(dir: &Path) -> Result<()> {
    let Some(plan) = read_marker(dir)? else {
        return Ok(());
    };
    finish(dir, &plan)
        .map(|_| ())
        .map_err(|e| Error::ExcisionStuck {
            id: plan.id,
            source: Box::new(e),
        })
}

/// The plan of the excision in progress, if there is one.
fn read_marker(dir: &Path) -> Result<Option<Plan>> {
    let path = dir.join(MARKER);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::corruption(
            0,
            format!(
            "{}: the record of an interrupted excision is unreadable ({e}); it was written whole \
             before the excision began, so the file was damaged since; `annals excise --abandon` \
             gives the excision up",
            path.display()
        ),
        )
    })
}

/// Gives up the excision in progress in the database in folder `path`,
/// if there is one, and leaves the database exactly as it was before the
/// excision began (the event is not excised). Returns the event's id
/// (`None` when there was nothing to give up, or its record was
/// unreadable). The caller holds the database's lock.
///
/// The store is never changed before the swap that ends an excision, so
/// there is always a whole store to return to: the one in place, or, if
/// the swap was interrupted, the one set aside for it.
pub(crate) fn abandon(dir: &Path) -> Result<Option<Uuid>> {
    let marker = dir.join(MARKER);
    if !marker.exists() {
        return Ok(None);
    }
    let id = read_marker(dir).ok().flatten().map(|p| p.id);
    let (store_dir, new_dir, old_dir) = (
        dir.join(STORE_DIR),
        dir.join(NEW_STORE),
        dir.join(OLD_STORE),
    );
    if !store_dir.exists() {
        if !old_dir.exists() {
            return Err(Error::BadPath {
                path: store_dir,
                reason: "neither the store nor the copy set aside by the excision is there; \
                         nothing to return to"
                    .into(),
            });
        }
        rename(&old_dir, &store_dir)?;
    }
    remove_dir(&new_dir)?;
    remove_dir(&old_dir)?;
    fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
    sync_dir(&marker)?;
    Ok(id)
}

fn write_marker(dir: &Path, plan: &Plan) -> Result<()> {
    let path = dir.join(MARKER);
    let tmp = dir.join(format!("{MARKER}.tmp"));
    let bytes =
        serde_json::to_vec(plan).map_err(|e| Error::internal(format!("encoding the plan: {e}")))?;
    fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    sync_dir(&path)
}

/// Every step of the excision, each safe to redo. The store in place is
/// only read: the stubs are written into a fresh copy, which then
/// replaces it. Until that swap, giving up ([`abandon`]) leaves the
/// database as it was.
fn finish(dir: &Path, plan: &Plan) -> Result<Excision> {
    let store_dir = dir.join(STORE_DIR);
    let new_dir = dir.join(NEW_STORE);
    let old_dir = dir.join(OLD_STORE);
    // A crash between the two renames below: the copy is complete.
    if !store_dir.exists() && new_dir.exists() {
        rename(&new_dir, &store_dir)?;
    }
    if !store_dir.exists() {
        return Err(Error::BadPath {
            path: store_dir,
            reason: "the store is missing, and the excision's copy is not complete".into(),
        });
    }
    remove_dir(&old_dir)?;
    // A crash while copying: start the copy again.
    remove_dir(&new_dir)?;

    let done = {
        let store = Store::open(&store_dir, 64 * 1024 * 1024)?;
        let (done, mut edits) = erase(&store, plan)?;
        for (key, _) in store.scan_meta(PROJECTION_KEY)? {
            edits.insert(meta_key(&key), None);
        }
        let bytes = serde_json::to_vec(&done)
            .map_err(|e| Error::internal(format!("encoding the record: {e}")))?;
        edits.insert(meta_key(&format!("{RECORD_KEY}{}", plan.id)), Some(bytes));
        store.copy_into(&new_dir, &edits)?;
        done
    };
    rename(&store_dir, &old_dir)?;
    rename(&new_dir, &store_dir)?;
    remove_dir(&old_dir)?;
    remove_dir(&dir.join(INDEX_DIR))?;
    remove_dir(&dir.join(SNAPSHOT_DIR))?;
    let marker = dir.join(MARKER);
    fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
    sync_dir(&marker)?;
    Ok(done)
}

fn meta_key(key: &str) -> (String, Vec<u8>) {
    (Store::META_TREE.to_string(), key.as_bytes().to_vec())
}

/// The event's entries as stubs, in every log: the record, and the
/// rewritten chunks as edits for the copy. Writes nothing.
fn erase(store: &Store, plan: &Plan) -> Result<(Excision, Edits)> {
    let mut entries = BTreeMap::new();
    let mut edits = Edits::new();
    let mut main_chunks = Vec::new();
    for seq in &plan.main {
        if let Some((first, _)) = store.chunk_at(MAIN_LOG, *seq)? {
            if main_chunks.last() != Some(&first) {
                main_chunks.push(first);
            }
        }
    }
    let mut logs = vec![(MAIN_LOG.to_string(), Some(main_chunks))];
    logs.extend(store.log_names()?.into_iter().map(|name| (name, None)));
    for (log, only) in logs {
        let chunks: Vec<(u64, crate::store::Bytes)> = match only {
            Some(firsts) => firsts
                .iter()
                .filter_map(|f| store.chunk_at(&log, *f).transpose())
                .collect::<Result<_>>()?,
            // Branch logs are small (bounded); each is read whole.
            None => store.scan_chunks(&log, 0).collect::<Result<_>>()?,
        };
        let mut seqs = Vec::new();
        for (first, bytes) in &chunks {
            let mut changed = false;
            let mut out = Vec::new();
            for (k, raw) in unpack_chunk(*first, bytes)?.into_iter().enumerate() {
                let seq = first + k as u64;
                let (entry, _) = crate::codec::decode_entry(seq, raw)?;
                if entry.body.id() != plan.id {
                    out.push(raw.to_vec());
                    continue;
                }
                seqs.push(seq);
                match excise_entry(seq, raw)? {
                    Some(stub) => {
                        changed = true;
                        out.push(stub);
                    }
                    None => out.push(raw.to_vec()),
                }
            }
            if changed {
                edits.insert(
                    (Store::edit_log_name(&log), first.to_be_bytes().to_vec()),
                    Some(chunk_bytes(&out)),
                );
            }
        }
        if !seqs.is_empty() {
            entries.insert(log, seqs);
        }
    }
    let record = Excision {
        id: plan.id,
        at: plan.at,
        reason: plan.reason.clone(),
        entries,
    };
    Ok((record, edits))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| Error::io(from, e))?;
    sync_dir(to)
}

fn remove_dir(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Annals;
    use crate::model::Event;
    use crate::time::now_micros;
    use crate::time::{Occurred, TimePoint};

    fn event(n: u128) -> Result<Event> {
        let mut e = Event::new("meeting", Occurred::point(TimePoint::parse("2025-09")?));
        e.id = Uuid::from_u128(n);
        e.summary = Some(format!("secret {n}"));
        e.validate()
    }

    /// A database of three events with an excision of the second begun
    /// (its marker written) but not run.
    fn begun(dir: &Path) -> Result<Uuid> {
        let db = Annals::open(dir)?;
        db.append(vec![event(1)?, event(2)?, event(3)?])?;
        db.close()?;
        let id = Uuid::from_u128(2);
        let plan = Plan {
            id,
            at: now_micros(),
            reason: "erasure request".into(),
            main: vec![2],
        };
        write_marker(dir, &plan)?;
        Ok(id)
    }

    fn summaries(dir: &Path) -> Result<Vec<Option<String>>> {
        let db = Annals::open(dir)?;
        let events = db.query(&crate::query::Query::new())?;
        db.verify()?;
        Ok(events.into_iter().map(|r| r.event.summary).collect())
    }

    /// #27 item 10: an excision that cannot finish blocked every open,
    /// with no way out. It is now reported with the way out, and giving
    /// it up returns the database to its state before.
    #[test]
    fn an_excision_that_cannot_finish_can_be_abandoned() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let dir = tmp.path().join("db");
        let id = begun(&dir)?;
        // A log the excision must read holds an undecodable entry (a log
        // left by a dropped branch, which nothing else reads).
        {
            let store = Store::open(&dir.join(STORE_DIR), 1 << 20)?;
            let chunk = chunk_bytes(&[b"not an entry".to_vec()]);
            store.write_chunks("ghost", &[(1, chunk)])?;
            store.sync()?;
        }
        for _ in 0..2 {
            match Annals::open(&dir) {
                Err(Error::ExcisionStuck { id: stuck, .. }) => assert_eq!(stuck, id),
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("a stuck excision opened"),
            }
        }
        let err = Annals::open(&dir).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("--abandon")));
        assert_eq!(Annals::abandon_excision(&dir)?, Some(id));
        assert!(!dir.join(MARKER).exists());
        assert!(!dir.join(NEW_STORE).exists());
        let all = summaries(&dir)?;
        assert_eq!(all.len(), 3);
        assert!(all.contains(&Some("secret 2".into())));
        // Nothing left to give up. Once the cause is fixed (the bad log
        // removed), the excision can be asked for again.
        assert_eq!(Annals::abandon_excision(&dir)?, None);
        {
            let store = Store::open(&dir.join(STORE_DIR), 1 << 20)?;
            store.drop_log("ghost")?;
            store.sync()?;
        }
        Annals::excise(&dir, id, "erasure request")?;
        assert_eq!(summaries(&dir)?.len(), 2);
        Ok(())
    }

    /// #27 item 10: the store set aside for the swap is never removed
    /// while the store is missing; giving up restores it.
    #[test]
    fn a_missing_store_never_costs_the_one_set_aside() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let dir = tmp.path().join("db");
        let id = begun(&dir)?;
        rename(&dir.join(STORE_DIR), &dir.join(OLD_STORE))?;
        assert!(matches!(
            Annals::open(&dir),
            Err(Error::ExcisionStuck { .. })
        ));
        assert!(dir.join(OLD_STORE).exists(), "the old store was removed");
        assert_eq!(Annals::abandon_excision(&dir)?, Some(id));
        assert_eq!(summaries(&dir)?.len(), 3);
        Ok(())
    }

    /// The store in place is only read until the swap: a copy stopped
    /// midway leaves it as it was, payload included.
    #[test]
    fn the_store_in_place_is_only_read() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let dir = tmp.path().join("db");
        let id = begun(&dir)?;
        let plan = read_marker(&dir)?.ok_or_else(|| Error::internal("no marker"))?;
        let store = Store::open(&dir.join(STORE_DIR), 1 << 20)?;
        let (done, edits) = erase(&store, &plan)?;
        assert_eq!(done.entries.get(MAIN_LOG), Some(&vec![2]));
        assert_eq!(edits.len(), 1);
        assert!(record(&store, id)?.is_none());
        drop(store);
        assert_eq!(Annals::abandon_excision(&dir)?, Some(id));
        assert!(summaries(&dir)?.contains(&Some("secret 2".into())));
        Ok(())
    }
}
