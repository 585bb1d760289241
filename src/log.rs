//! The append-only log: entries, the hash chain that links them, and the
//! checked reads and writes over a [`Storage`].

use std::collections::VecDeque;
use std::sync::Arc;

use crate::codec::{decode_entry, encode_entry, pack_chunks, unpack_chunk};
pub(crate) use crate::entry::{Body, Entry, Hash, Head};
use crate::error::{Error, Result};
use crate::model::Event;
use crate::store::{Storage, MAIN_LOG};

/// A checked iterator over entries with their chain hashes.
pub(crate) type EntryIter<'a> = Box<dyn Iterator<Item = Result<(Entry, Hash)>> + 'a>;

/// Checked access to the entries of one log of a [`Storage`]: main, or a
/// branch, whose entries up to its base come from its parent's log.
pub(crate) struct Log {
    store: Arc<dyn Storage>,
    /// The storage log holding this log's own entries.
    name: String,
    /// For a branch: the parent's log and the head it branched at.
    parent: Option<(Arc<Log>, Head)>,
}

impl Log {
    /// The main log.
    pub(crate) fn main(store: Arc<dyn Storage>) -> Log {
        Log {
            store,
            name: MAIN_LOG.to_string(),
            parent: None,
        }
    }

    /// A branch log: entries up to `base` from `parent`, later ones from
    /// storage log `name`.
    pub(crate) fn branch(parent: Arc<Log>, base: Head, name: &str) -> Log {
        Log {
            store: Arc::clone(&parent.store),
            name: name.to_string(),
            parent: Some((parent, base)),
        }
    }

    pub(crate) fn store(&self) -> &dyn Storage {
        self.store.as_ref()
    }

    /// The head this log branched from (the empty head for main).
    pub(crate) fn base(&self) -> Head {
        self.parent.as_ref().map(|(_, b)| *b).unwrap_or_default()
    }

    /// Reads and checks one entry, with its chain hash. A missing entry is
    /// corruption, since callers only ask for seqs the index says exist.
    fn read_hashed(&self, seq: u64) -> Result<(Entry, Hash)> {
        if let Some((parent, base)) = &self.parent {
            if seq <= base.seq {
                return parent.read_hashed(seq);
            }
        }
        let chunk = self.store.chunk_at(&self.name, seq)?;
        decode_entry(seq, entry_in(chunk.as_ref(), seq)?).map(|(e, env)| (e, env.hash))
    }

    /// Reads and checks one entry.
    pub(crate) fn read(&self, seq: u64) -> Result<Entry> {
        self.read_hashed(seq).map(|(e, _)| e)
    }

    /// The event version carried by entry `seq`.
    pub(crate) fn read_event(&self, seq: u64) -> Result<Event> {
        version_of(self.read(seq)?)
    }

    /// The event versions carried by entries `seqs` (in that order), each
    /// chunk read once however many of them it holds.
    pub(crate) fn read_events(&self, seqs: &[u64]) -> Result<Vec<Event>> {
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_unstable_by_key(|&i| seqs.get(i).copied().unwrap_or(0));
        let mut out: Vec<Option<Event>> = vec![None; seqs.len()];
        // The chunk last read, with the seqs it holds.
        let mut chunk: Option<(u64, crate::store::Bytes)> = None;
        let mut holds = 0..0;
        for i in order {
            let Some(&seq) = seqs.get(i) else { continue };
            let inherited = self
                .parent
                .as_ref()
                .is_some_and(|(_, base)| seq <= base.seq);
            let event = if inherited {
                self.read_event(seq)?
            } else {
                if !holds.contains(&seq) {
                    chunk = self.store.chunk_at(&self.name, seq)?;
                    holds = match &chunk {
                        Some((first, bytes)) => {
                            *first..first + unpack_chunk(*first, bytes)?.len() as u64
                        }
                        None => 0..0,
                    };
                }
                version_of(decode_entry(seq, entry_in(chunk.as_ref(), seq)?)?.0)?
            };
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(event);
            }
        }
        out.into_iter()
            .map(|e| e.ok_or_else(|| Error::internal("an event was not read")))
            .collect()
    }

    /// The head as stored: the last entry, checked.
    pub(crate) fn head(&self) -> Result<Head> {
        let Some((first, chunk)) = self.store.last_chunk(&self.name)? else {
            return Ok(self.base());
        };
        let count = unpack_chunk(first, &chunk)?.len() as u64;
        self.head_at(first + count - 1)
    }

    /// The head at `seq` (the entry's hash and time), checked.
    pub(crate) fn head_at(&self, seq: u64) -> Result<Head> {
        if seq == 0 {
            return Ok(Head::default());
        }
        let (entry, hash) = self.read_hashed(seq)?;
        Ok(Head {
            seq,
            hash,
            recorded_at: entry.recorded_at,
        })
    }

    /// Entries after `after` in order, each checked against its predecessor:
    /// seqs gapless and the chain intact. `after` is the head to continue
    /// from (`Head::default()` for the start of the log). Stops after the
    /// first error.
    pub(crate) fn entries_after(&self, after: Head) -> EntryIter<'_> {
        match &self.parent {
            Some((parent, base)) if after.seq < base.seq => {
                let base = *base;
                let inherited = parent
                    .entries_after(after)
                    .take_while(move |r| r.as_ref().map_or(true, |(e, _)| e.seq <= base.seq));
                Box::new(inherited.chain(self.own_entries_after(base)))
            }
            _ => self.own_entries_after(after),
        }
    }

    /// Entries of this log's own storage after `after`, checked.
    fn own_entries_after(&self, after: Head) -> EntryIter<'_> {
        let start = after.seq + 1;
        let mut pending: VecDeque<Result<(Entry, Hash)>> = VecDeque::new();
        let mut chunks = match self.store.chunk_at(&self.name, start) {
            Ok(found) => self
                .store
                .scan_chunks(&self.name, found.map_or(start, |(k, _)| k)),
            Err(e) => {
                pending.push_back(Err(e));
                Box::new(std::iter::empty())
            }
        };
        let mut prev = after;
        let mut failed = false;
        Box::new(std::iter::from_fn(move || loop {
            if let Some(item) = pending.pop_front() {
                if item.is_err() {
                    failed = true;
                    pending.clear();
                }
                return Some(item);
            }
            if failed {
                return None;
            }
            let (first, chunk) = match chunks.next()? {
                Ok(c) => c,
                Err(e) => {
                    pending.push_back(Err(e));
                    continue;
                }
            };
            match unpack_chunk(first, &chunk) {
                Err(e) => pending.push_back(Err(e)),
                Ok(entries) => {
                    for (i, bytes) in entries.into_iter().enumerate() {
                        let seq = first + i as u64;
                        if seq <= prev.seq {
                            continue;
                        }
                        let checked = check_next(&mut prev, seq, bytes);
                        let stop = checked.is_err();
                        pending.push_back(checked);
                        if stop {
                            break;
                        }
                    }
                }
            }
        }))
    }

    /// Encodes entries chained onto `head`, checking each (its size
    /// above all). Writes nothing, so a refused entry leaves the log as it
    /// was. Entries must continue `head`.
    pub(crate) fn encode(&self, head: Head, entries: &[Entry]) -> Result<Encoded> {
        let mut prev = head;
        let mut encoded = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.seq != prev.seq + 1 || entry.recorded_at < prev.recorded_at {
                return Err(Error::Internal(format!(
                    "entry {} does not continue head {}",
                    entry.seq, prev.seq
                )));
            }
            let (bytes, hash) = encode_entry(entry, &prev.hash)?;
            encoded.push(bytes);
            prev = Head {
                seq: entry.seq,
                hash,
                recorded_at: entry.recorded_at,
            };
        }
        Ok(Encoded {
            chunks: pack_chunks(head.seq + 1, encoded),
            head: prev,
        })
    }

    /// Writes encoded entries atomically and, if `durable`, syncs.
    /// Returns the new head. A failure here leaves the log in a state only
    /// a reopen can tell (the batch may or may not be on disk).
    pub(crate) fn write(&self, encoded: Encoded, durable: bool) -> Result<Head> {
        if encoded.chunks.is_empty() {
            return Ok(encoded.head);
        }
        self.store.write_chunks(&self.name, &encoded.chunks)?;
        if durable {
            self.store.sync()?;
        }
        Ok(encoded.head)
    }
}

/// A batch encoded by [`Log::encode`], ready for [`Log::write`].
pub(crate) struct Encoded {
    chunks: Vec<(u64, Vec<u8>)>,
    /// The head after the batch.
    head: Head,
}

/// The stored bytes of entry `seq` in `chunk` (the chunk at or before
/// it). A missing entry is corruption: callers ask only for seqs the index
/// or the head says exist.
fn entry_in(chunk: Option<&(u64, crate::store::Bytes)>, seq: u64) -> Result<&[u8]> {
    let missing = || Error::corruption(seq, "entry is missing from the log");
    let (first, bytes) = chunk.ok_or_else(missing)?;
    let entries = unpack_chunk(*first, bytes)?;
    seq.checked_sub(*first)
        .and_then(|k| usize::try_from(k).ok())
        .and_then(|k| entries.get(k).copied())
        .ok_or_else(missing)
}

/// The event version an entry carries; a retraction where a version was
/// expected means the index is damaged.
fn version_of(entry: Entry) -> Result<Event> {
    match entry.body {
        Body::Event(e) | Body::Correction(e) => Ok(e),
        Body::Retraction { .. } | Body::Excised { .. } => Err(Error::corruption(
            entry.seq,
            format!(
                "the index points at a {} entry where an event version was expected",
                entry.body.action()
            ),
        )),
    }
}

/// Decodes the entry stored under `seq` and checks that it follows `prev`
/// (gapless, chained, time not going backwards); advances `prev`.
fn check_next(prev: &mut Head, seq: u64, bytes: &[u8]) -> Result<(Entry, Hash)> {
    let expected = prev.seq + 1;
    if seq != expected {
        return Err(Error::corruption(
            expected,
            format!("gap in the log: seq {expected} is missing (next is {seq})"),
        ));
    }
    let (entry, env) = decode_entry(seq, bytes)?;
    if env.prev != prev.hash {
        return Err(Error::corruption(
            seq,
            "hash chain broken: the entry does not link to its predecessor",
        ));
    }
    if entry.recorded_at < prev.recorded_at {
        return Err(Error::corruption(seq, "recorded_at went backwards"));
    }
    *prev = Head {
        seq,
        hash: env.hash,
        recorded_at: entry.recorded_at,
    };
    Ok((entry, env.hash))
}
