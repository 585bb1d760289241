//! `verify`: re-reads the log and checks everything derived from it, in
//! memory bounded by the views (not by the log): the log is streamed, the
//! index is checked entry by entry, and only the views are folded anew.

use serde::Serialize;

use std::sync::Arc;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::index::{Digest, EventNo};
use crate::intern::Keys;
use crate::line::branch::Branch;
use crate::line::Line;
use crate::log::{Body, Entry, Head};
use crate::projection::{Display, Layered, Part, Views};
use crate::read::Reader;

/// What [`crate::Annals::verify_from`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The head checked up to.
    pub seq: u64,
    /// Its chain hash, hex.
    #[serde(skip)]
    pub head: Head,
    /// Log entries whose checksum and chain link were checked.
    pub entries: u64,
    /// Events whose index entries were checked.
    pub events: u64,
    /// Branches whose base and own entries were checked.
    pub branches: u64,
    /// User projections compared with a replay.
    pub projections: u64,
}

impl VerifyReport {
    /// `{ok: true, seq, hash, entries, events, branches, projections}`:
    /// what `annals verify` prints and `GET /verify` returns.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"ok": true, "seq": self.seq, "hash": self.head.hash_hex(),
            "entries": self.entries, "events": self.events,
            "branches": self.branches, "projections": self.projections})
    }
}

fn damage(seq: u64, what: impl Into<String>) -> Error {
    Error::corruption(seq, what)
}

/// Checks the database from seq `from` on (1 for everything). The caller
/// holds the writer lock, so nothing changes meanwhile.
/// An excised entry must belong to a recorded excision: the stub keeps
/// the chain whole, so only the record tells an erasure from a payload
/// that went missing.
fn check_excised(db: &Engine, entry: &Entry) -> Result<()> {
    match &entry.body {
        Body::Excised { id } if !db.main().is_excised(id) => Err(damage(
            entry.seq,
            format!("the entry's payload is gone, but no excision of event {id} is recorded"),
        )),
        _ => Ok(()),
    }
}

/// Every version of excised event number `n`, created at `seq`, is an
/// excised entry of the event the id index maps to `n`.
fn check_excised_event(db: &Engine, n: EventNo, seq: u64) -> Result<()> {
    let Body::Excised { id } = db.log().read(seq)?.body else {
        return Err(damage(
            seq,
            "the index lists the event as excised, but this entry is not",
        ));
    };
    let versions = {
        let state = db.main().state();
        if state.index.id_of(&id)? != Some(n) {
            return Err(damage(
                seq,
                "the index points at a version of another event",
            ));
        }
        state.index.versions(n)?
    };
    for v in versions {
        match db.log().read(v)?.body {
            Body::Excised { id: other } if other == id => {}
            _ => return Err(damage(v, format!("not an excised entry of event {id}"))),
        }
    }
    Ok(())
}

fn verify_locked(db: &Engine, from: u64) -> Result<VerifyReport> {
    let from = from.max(1);
    let kept_head = db.main().head();
    let log = db.log();

    // 1. The log: checksums, chain links, gapless seqs, time order (all
    // checked by the iterator), and each entry against the id index.
    let mut entries = 0u64;
    let mut last = log.head_at(from - 1)?;
    for item in log.entries_after(last) {
        let (entry, hash) = item?;
        let state = db.main().state();
        let id = entry.body.id();
        let Some((n, meta)) = state.index.lookup(&id)? else {
            return Err(damage(
                entry.seq,
                format!("event {id} is not in the id index"),
            ));
        };
        let ok = match entry.body {
            Body::Event(_) => meta.seq == entry.seq,
            _ => state.index.versions(n)?.contains(&entry.seq),
        };
        if !ok {
            return Err(damage(
                entry.seq,
                format!("the index does not list this entry as a version of event {id}"),
            ));
        }
        drop(state);
        check_origin(db, &entry)?;
        check_excised(db, &entry)?;
        entries += 1;
        last = Head {
            seq: entry.seq,
            hash,
            recorded_at: entry.recorded_at,
        };
    }
    if last != kept_head {
        return Err(damage(
            last.seq.min(kept_head.seq) + 1,
            format!(
                "the log ends at seq {} but the database's head is seq {}",
                last.seq, kept_head.seq
            ),
        ));
    }

    // 2. The index: every segment's checksums; every event's versions
    // exist and concern it; the live postings are exactly those of the
    // live events' current versions (compared as multiset digests, so
    // memory stays bounded).
    if from == 1 {
        db.main().state().index.check_segments()?;
    }
    let mut names = db.main().state().names.get()?.names.clone();
    let full = from == 1;
    let mut events = 0u64;
    let mut expected = Digest::default();
    let count = db.main().state().index.len();
    for n in 0..count {
        let n = EventNo::try_from(n).map_err(|_| damage(0, "too many events"))?;
        let Some(meta) = db.main().state().index.meta(n)? else {
            return Err(damage(0, format!("event number {n} has no metadata")));
        };
        // Checking from a seq: only events it touched (the posting digest
        // needs every live event, so it is a full check's).
        if !full && meta.seq < from && meta.current < from {
            continue;
        }
        if meta.current < meta.seq || meta.current > kept_head.seq {
            return Err(damage(meta.seq, "the index points past the log"));
        }
        if meta.excised {
            check_excised_event(db, n, meta.seq)?;
            events += 1;
            continue;
        }
        let current = log.read_event(meta.current)?;
        {
            let (id, versions) = {
                let state = db.main().state();
                let id = state.index.id_of(&current.id)?;
                (id, state.index.versions(n)?)
            };
            if id != Some(n) {
                return Err(damage(
                    meta.current,
                    "the index points at a version of another event",
                ));
            }
            for v in versions {
                let entry = log.read(v)?;
                if entry.body.id() != current.id {
                    return Err(damage(v, format!("not a version of event {}", current.id)));
                }
            }
            events += 1;
        }
        if meta.retracted.is_none() {
            expected.add_keys(n, &Keys::of(&mut names, &current));
        }
    }
    if full && db.main().state().index.posting_digest()? != expected {
        return Err(damage(
            0,
            "the posting lists differ from the live events' keys: an entry is missing, \
             stale (retracted or changed) or duplicated",
        ));
    }

    // 3. The built-in views against a fold of the log (from a snapshot
    // before `from` when checking incrementally).
    let reader = Reader::at(db.lines(), Line::Main, kept_head.seq);
    let (start, base, display) = if full {
        (Head::default(), Layered::default(), Display::default())
    } else {
        let (start, base) = db.main().snapshot_at_or_before(from - 1);
        (start, base, reader.head_names()?.1)
    };
    let folded = reader.fold_forward(start, Views::over(display, &Part::ALL), &mut names)?;
    let folded = base.with(folded.encode(&names));
    let kept = db.main().state().layered(&Part::ALL)?;
    let mut theirs = kept.scan(&[], None);
    for ours in folded.scan(&[], None) {
        let ours = ours?;
        match theirs.next().transpose()? {
            Some(t) if t == ours => {}
            _ => {
                return Err(damage(
                    0,
                    format!(
                        "a built-in view differs from a replay of the log (at cell {})",
                        String::from_utf8_lossy(&ours.0)
                    ),
                ))
            }
        }
    }
    if theirs.next().is_some() {
        return Err(damage(
            0,
            "a built-in view differs from a replay of the log (it holds more cells)",
        ));
    }

    // 4. Persisted user projections against a replay.
    let projections = crate::replay::verify_projections(db)?;

    // 5. Branches: each base is in its parent's chain, own entries intact.
    let branches = verify_branches(db)?;
    Ok(VerifyReport {
        seq: kept_head.seq,
        head: kept_head,
        entries,
        events,
        branches,
        projections,
    })
}

/// Checks everything; see [`crate::Annals::verify`].
pub(crate) fn verify(engine: &Engine) -> Result<Head> {
    verify_from(engine, 1).map(|r| r.head)
}

/// Checks from seq `from` on; see [`crate::Annals::verify_from`]. Under the
/// writer lock, so that nothing commits meanwhile.
pub(crate) fn verify_from(engine: &Engine, from: u64) -> Result<VerifyReport> {
    let _writer = engine.lock_writer_any();
    verify_locked(engine, from)
}

/// Proves that entry `seq` is in the chain ending in `anchor`; see
/// [`crate::Annals::prove`].
pub(crate) fn prove(engine: &Engine, seq: u64, anchor: Head) -> Result<crate::log::Hash> {
    let log = engine.log();
    if seq == 0 || seq > anchor.seq {
        return Err(Error::invalid(
            "seq",
            format!("{seq} is not in 1..={} (the anchor's seq)", anchor.seq),
        ));
    }
    let start = log.head_at(seq - 1)?;
    let mut entry_hash = None;
    let mut last = start;
    for item in log.entries_after(start) {
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
/// Checks each branch: its base is in its parent's chain with the same
/// hash, and its own entries re-read from storage are intact and the
/// ones held in memory. Returns how many were checked.
fn verify_branches(engine: &Engine) -> Result<u64> {
    let branches: Vec<Arc<Branch>> = engine.open_branches();
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
        if !b.holds(&stored) {
            return Err(Error::corruption(
                base.seq + 1,
                format!(
                    "branch `{}`: stored entries differ from the open branch",
                    b.meta.name
                ),
            ));
        }
        for entry in &stored {
            check_origin(engine, entry)?;
            check_excised(engine, entry)?;
        }
    }
    Ok(branches.len() as u64)
}

/// Checks that a merged entry applies what its origin says: the branch
/// entry exists with that hash and carries the same event version.
/// Nothing can be checked once the branch is dropped (or its name reused
/// by a branch created after the merge).
fn check_origin(db: &Engine, entry: &Entry) -> Result<()> {
    let Some(o) = &entry.origin else {
        return Ok(());
    };
    let Ok(branch) = db.branch(&o.branch) else {
        return Ok(());
    };
    if branch.meta.created_at > entry.recorded_at {
        return Ok(());
    }
    let damage = |what: String| {
        Error::corruption(
            entry.seq,
            format!("merged from branch `{}` seq {}: {what}", o.branch, o.seq),
        )
    };
    if o.seq > branch.head().seq {
        return Err(damage("the branch has no such entry".into()));
    }
    if branch.log.head_at(o.seq)?.hash != o.hash {
        return Err(damage("the branch entry's hash differs".into()));
    }
    let from = branch.log.read(o.seq)?;
    if from.body.id() != entry.body.id() || from.body.event() != entry.body.event() {
        return Err(damage("the branch entry carries another change".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Annals;
    use crate::entry::Origin;
    use crate::merge::MergeOptions;
    use crate::model::Event;
    use crate::record::Op;
    use crate::time::Occurred;
    use uuid::Uuid;

    fn event(n: u128) -> Result<Event> {
        let mut e = Event::new("meeting", Occurred::parse("2025-10")?);
        e.id = Uuid::from_u128(n);
        Ok(e)
    }

    #[test]
    fn check_origin_catches_a_forged_origin() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let db = Annals::open(dir.path().join("db"))?;
        db.append(vec![event(1)?])?;
        db.create_branch("b", None, None)?;
        db.write_branch(
            "b",
            vec![Op::Append(event(2)?), Op::Append(event(3)?)],
            None,
        )?;
        db.merge("b", &MergeOptions::default())?;
        let merged = db.engine().log().read(2)?;
        check_origin(db.engine(), &merged)?;
        let forge = |f: &dyn Fn(&mut Origin)| {
            let mut e = merged.clone();
            if let Some(o) = e.origin.as_mut() {
                f(o);
            }
            check_origin(db.engine(), &e).map_err(|e| e.to_string())
        };
        let err = forge(&|o| o.seq = 3).err().unwrap_or_default();
        assert!(err.contains("hash differs"), "{err}");
        let err = forge(&|o| o.seq = 9).err().unwrap_or_default();
        assert!(err.contains("no such entry"), "{err}");
        let three = db.engine().log().read(3)?;
        let err = forge(&|o| {
            o.seq = 3;
            o.hash = three.origin.as_ref().map_or([0; 32], |t| t.hash);
        })
        .err()
        .unwrap_or_default();
        assert!(err.contains("another change"), "{err}");
        Ok(())
    }
}
