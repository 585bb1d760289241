//! `verify`: re-reads the log and checks everything derived from it, in
//! memory bounded by the views (not by the log): the log is streamed, the
//! index is checked entry by entry, and only the views are folded anew.

use serde::Serialize;

use crate::db::{lock, Annals};
use crate::error::{Error, Result};
use crate::index::{Digest, EventNo};
use crate::intern::Keys;
use crate::log::{Body, Entry, Head};
use crate::merge::check_origin;
use crate::projection::Views;
use crate::read::{Line, Reader};

/// What [`Annals::verify_from`] checked.
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

fn damage(seq: u64, what: impl Into<String>) -> Error {
    Error::corruption(seq, what)
}

/// Checks the database from seq `from` on (1 for everything). The caller
/// holds the writer lock, so nothing changes meanwhile.
/// An excised entry must belong to a recorded excision: the stub keeps
/// the chain whole, so only the record tells an erasure from a payload
/// that went missing.
pub(crate) fn check_excised(db: &Annals, entry: &Entry) -> Result<()> {
    match &entry.body {
        Body::Excised { id } if !db.excised.contains(id) => Err(damage(
            entry.seq,
            format!("the entry's payload is gone, but no excision of event {id} is recorded"),
        )),
        _ => Ok(()),
    }
}

/// Every version of excised event number `n`, created at `seq`, is an
/// excised entry of the event the id index maps to `n`.
fn check_excised_event(db: &Annals, n: EventNo, seq: u64) -> Result<()> {
    let Body::Excised { id } = db.log().read(seq)?.body else {
        return Err(damage(
            seq,
            "the index lists the event as excised, but this entry is not",
        ));
    };
    let versions = {
        let state = db.read_state();
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

pub(crate) fn verify(db: &Annals, from: u64) -> Result<VerifyReport> {
    let from = from.max(1);
    let kept_head = db.head();
    let log = db.log();

    // 1. The log: checksums, chain links, gapless seqs, time order (all
    // checked by the iterator), and each entry against the id index.
    let mut entries = 0u64;
    let mut last = log.head_at(from - 1)?;
    for item in log.entries_after(last) {
        let (entry, hash) = item?;
        let state = db.read_state();
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
        db.read_state().index.check_segments()?;
    }
    let mut names = db.read_state().names.clone();
    let full = from == 1;
    let mut events = 0u64;
    let mut expected = Digest::default();
    let count = db.read_state().index.len();
    for n in 0..count {
        let n = EventNo::try_from(n).map_err(|_| damage(0, "too many events"))?;
        let Some(meta) = db.read_state().index.meta(n)? else {
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
                let state = db.read_state();
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
    if full && db.read_state().index.posting_digest()? != expected {
        return Err(damage(
            0,
            "the posting lists differ from the live events' keys: an entry is missing, \
             stale (retracted or changed) or duplicated",
        ));
    }

    // 3. The built-in views against a fold of the log (from a snapshot
    // before `from` when checking incrementally).
    let reader = Reader::at(db, Line::Main, kept_head.seq);
    let (start, views) = if full {
        (Head::default(), Views::default())
    } else {
        db.snapshot_at_or_before(from - 1)?
    };
    let folded = reader.fold_forward(start, views, &mut names)?;
    if folded != db.read_state().views.to_views()? {
        return Err(damage(
            0,
            "a built-in view differs from a replay of the log",
        ));
    }

    // 4. Persisted user projections against a replay.
    let projections = db.verify_projections()?;

    // 5. Branches: each base is in its parent's chain, own entries intact.
    let branches = db.verify_branches()?;
    Ok(VerifyReport {
        seq: kept_head.seq,
        head: kept_head,
        entries,
        events,
        branches,
        projections,
    })
}

impl Annals {
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
}
