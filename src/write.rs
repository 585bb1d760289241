//! THE write path: every batch, on main or on a branch, is prepared
//! (validated once, ids resolved given the batch so far) and appended
//! here, by [`commit`]. Main and a branch differ only in what they
//! implement of [`Target`].

use std::collections::HashMap;

use uuid::Uuid;

use crate::entry::Origin;
use crate::error::{Error, Result};
use crate::line::branch::{Branch, MAX_BRANCH_ENTRIES};
use crate::line::main::Main;
use crate::log::{Body, Entry, Head, Log};
use crate::model::{Event, MAX_REASON_BYTES};
use crate::read::Reader;
use crate::record::{Durability, Op, Written};
use crate::time::now_micros;
use crate::writer::Writer;

/// What a batch is written to: main or a branch.
pub(crate) trait Target {
    /// The log the batch is appended to.
    fn log(&self) -> &Log;
    /// The head the batch follows.
    fn head(&self) -> Head;
    /// What is known of event `id` before the batch.
    fn known(&self, id: Uuid) -> Result<Option<Pending>>;
    /// Whether `id` was excised (its id cannot be used again).
    fn is_excised(&self, id: &Uuid) -> bool;
    /// Refuses a batch of `ops` operations the target cannot take.
    fn admit(&self, ops: usize) -> Result<()>;
    /// Brings the target up to a batch appended after `before`. The batch
    /// is committed: this must not fail it (a failure here poisons the
    /// writer instead).
    fn committed(
        &self,
        writer: &mut Writer,
        before: Head,
        new_head: Head,
        entries: &[Entry],
        befores: &[Option<Event>],
    );
}

/// Prepares a batch against `target` and appends it, under the writer
/// lock; returns what each operation wrote. `validated`: every event has
/// passed [`Event::validate`] already (importers validate as they parse,
/// on another thread). `origins` (by op; may be empty) marks merged
/// entries.
///
/// An entry refused by the encoder (too large) fails the batch before
/// anything is written, and the writer stays usable. A failed write
/// poisons the writer: the batch may or may not be on disk, and only a
/// reopen, which rebuilds from what is there, can tell.
pub(crate) fn commit(
    writer: &mut Writer,
    target: &dyn Target,
    durability: Durability,
    ops: Vec<Op>,
    validated: bool,
    origins: &[Option<Origin>],
) -> Result<Vec<Written>> {
    target.admit(ops.len())?;
    let head = target.head();
    let Prepared {
        entries,
        befores,
        written,
    } = prepare(target, head, ops, validated, origins)?;
    if entries.is_empty() {
        return Ok(written);
    }
    let log = target.log();
    let encoded = log.encode(head, &entries)?;
    let new_head = log
        .write(encoded, durability == Durability::Durable)
        .inspect_err(|e| writer.poison(e.to_string()))?;
    writer.dirty = true;
    target.committed(writer, head, new_head, &entries, &befores);
    Ok(written)
}

impl Target for Main {
    fn log(&self) -> &Log {
        Main::log(self)
    }

    fn head(&self) -> Head {
        Main::head(self)
    }

    fn known(&self, id: Uuid) -> Result<Option<Pending>> {
        Ok(self.lookup(&id)?.map(|m| Pending {
            created: m.seq,
            original: Where::Log(m.seq),
            current: m.retracted.is_none().then_some(Where::Log(m.current)),
        }))
    }

    fn is_excised(&self, id: &Uuid) -> bool {
        Main::is_excised(self, id)
    }

    fn admit(&self, _ops: usize) -> Result<()> {
        // Applying a batch needs the string table: read (and checked)
        // now, so that a damaged one refuses the batch before the log is
        // written rather than leaving the views behind it.
        self.state().names.get().map(|_| ())
    }

    fn committed(
        &self,
        writer: &mut Writer,
        before: Head,
        new_head: Head,
        entries: &[Entry],
        befores: &[Option<Event>],
    ) {
        Main::committed(self, writer, before, new_head, entries, befores);
    }
}

/// A branch as a target: its own log, and what it knows of an id read
/// through its parent as of its base.
pub(crate) struct BranchTarget<'a> {
    branch: &'a Branch,
    reader: Reader<'a>,
    main: &'a Main,
}

impl<'a> BranchTarget<'a> {
    /// The branch read at its head by `reader`.
    pub(crate) fn new(branch: &'a Branch, reader: Reader<'a>, main: &'a Main) -> BranchTarget<'a> {
        BranchTarget {
            branch,
            reader,
            main,
        }
    }
}

impl Target for BranchTarget<'_> {
    fn log(&self) -> &Log {
        &self.branch.log
    }

    fn head(&self) -> Head {
        self.branch.head()
    }

    fn known(&self, id: Uuid) -> Result<Option<Pending>> {
        Ok(self.reader.get(id)?.map(|r| Pending {
            created: r.position.seq,
            original: Where::Log(r.position.seq),
            current: r.retracted_seq.is_none().then_some(Where::Log(
                r.position.corrected_seq.unwrap_or(r.position.seq),
            )),
        }))
    }

    fn is_excised(&self, id: &Uuid) -> bool {
        self.main.is_excised(id)
    }

    fn admit(&self, ops: usize) -> Result<()> {
        if self.branch.len() + ops > MAX_BRANCH_ENTRIES {
            return Err(Error::invalid(
                "branch",
                format!(
                    "branch `{}` would exceed {MAX_BRANCH_ENTRIES} entries of its own",
                    self.branch.meta.name
                ),
            ));
        }
        Ok(())
    }

    fn committed(
        &self,
        writer: &mut Writer,
        _before: Head,
        new_head: Head,
        entries: &[Entry],
        _befores: &[Option<Event>],
    ) {
        self.branch.committed(writer, new_head, entries);
    }
}

/// Checks a batch against the target's state ([`Target::known`] says
/// what is known of an id before the batch) and turns it into entries, with each entry's
/// `before` version. Writes nothing. With `validated`, the events are
/// known to be valid already and are not checked again.
fn prepare(
    target: &dyn Target,
    head: Head,
    ops: Vec<Op>,
    validated: bool,
    origins: &[Option<Origin>],
) -> Result<Prepared> {
    let log = target.log();
    // Strictly increasing, so that each batch has its own transaction
    // time (an as-of by time then never cuts a batch in two), even when
    // the clock stalls or steps back.
    let recorded_at = now_micros().max(head.recorded_at.saturating_add(1));
    let mut pending: HashMap<Uuid, Pending> = HashMap::new();
    let mut entries: Vec<Entry> = Vec::with_capacity(ops.len());
    let mut befores = Vec::with_capacity(ops.len());
    let mut written = Vec::with_capacity(ops.len());
    for (i, op) in ops.into_iter().enumerate() {
        let id = op.id();
        let at = || format!("event {id}");
        let next = head.seq + 1 + entries.len() as u64;
        let here = Where::Batch(entries.len());
        if target.is_excised(&id) {
            return Err(Error::Conflict {
                at: at(),
                reason: "the event was excised; its id cannot be used again".into(),
            });
        }
        let known = match pending.get(&id) {
            Some(p) => Some(*p),
            None => target.known(id)?,
        };
        let body = match op {
            Op::Append(e) => {
                let e = if validated {
                    e
                } else {
                    e.validate().map_err(|err| err.at(at()))?
                };
                if let Some(p) = known {
                    if version(log, &entries, p.original)? != e {
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
                let e = if validated {
                    e
                } else {
                    e.validate().map_err(|err| err.at(at()))?
                };
                let (p, current) = changeable(known, &at)?;
                befores.push(Some(version(log, &entries, current)?));
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
                // A retraction is read later by people asking why an event
                // went away; one that says nothing answers nobody. Entries
                // copied from a branch were checked when first written.
                if !validated && reason.trim().is_empty() {
                    return Err(
                        Error::invalid("reason", "empty: say why the event is retracted").at(at()),
                    );
                }
                if reason.len() > MAX_REASON_BYTES {
                    return Err(Error::invalid(
                        "reason",
                        format!("{} bytes; the limit is {MAX_REASON_BYTES}", reason.len()),
                    )
                    .at(at()));
                }
                let (p, current) = changeable(known, &at)?;
                befores.push(Some(version(log, &entries, current)?));
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
            origin: origins.get(i).cloned().flatten(),
        });
    }
    Ok(Prepared {
        entries,
        befores,
        written,
    })
}

/// An event version, from the batch being prepared or from the log.
fn version(log: &Log, entries: &[Entry], at: Where) -> Result<Event> {
    match at {
        Where::Log(seq) => log.read_event(seq),
        Where::Batch(i) => entries
            .get(i)
            .and_then(|e| e.body.event())
            .cloned()
            .ok_or_else(|| Error::internal(format!("no event at batch position {i}"))),
    }
}

/// Where a version of an event is while a batch is prepared.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Where {
    /// Entry `i` of the batch.
    Batch(usize),
    /// The log entry with this seq.
    Log(u64),
}

/// An event as the batch being prepared sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    /// Seq of the entry that created it.
    pub(crate) created: u64,
    /// Its first version (for the idempotency check).
    pub(crate) original: Where,
    /// Its current version; none if retracted.
    pub(crate) current: Option<Where>,
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
