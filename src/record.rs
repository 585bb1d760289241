//! The values a write and a read exchange with the caller: operations of
//! a batch and their outcomes, an event's record and versions, counts.

use uuid::Uuid;

use crate::entry::Origin;
use crate::error::{Error, Result};
use crate::json::Position;
use crate::log::Head;
use crate::model::Event;
use crate::time::Micros;

/// Most entries in one atomic batch. Larger inputs go through `import`,
/// which commits in batches.
pub const MAX_BATCH_ENTRIES: usize = 100_000;

/// When an append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After the batch is on stable storage: sled's flush, then an fsync of
    /// its data file. Survives a process or machine crash.
    #[default]
    Durable,
    /// After the batch is in sled's in-memory buffers, which sled writes
    /// out in the background every 500 ms. A crash of the process or of the
    /// machine may lose the batches of about the last 500 ms, never part of
    /// one and never an earlier one.
    Buffered,
}

/// One operation of an atomic batch; see [`crate::Annals::write`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Append a new event. If its id exists with identical content this is
    /// a no-op; with different content, a conflict.
    Append(Event),
    /// Replace an event's current version by a complete new one (same id).
    Correct(Event),
    /// Withdraw an event.
    Retract {
        /// The event.
        id: Uuid,
        /// Why.
        reason: String,
    },
}

impl Op {
    /// The id of the event the operation concerns.
    pub fn id(&self) -> Uuid {
        match self {
            Op::Append(e) | Op::Correct(e) => e.id,
            Op::Retract { id, .. } => *id,
        }
    }
}

/// The outcome of one operation of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The entry's seq (for an idempotent no-op, the existing event's).
    pub seq: u64,
    /// The event concerned.
    pub id: Uuid,
    /// False when an append was a no-op because the event already existed.
    pub new_entry: bool,
}

impl Written {
    /// The one JSON shape of a written entry, the same for the CLI, the
    /// HTTP API and Python: `{"seq", "id", "new"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"seq": self.seq, "id": self.id.to_string(), "new": self.new_entry})
    }
}

/// An event as it currently stands, with its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The current version.
    pub event: Event,
    /// Seq and transaction time of its creation, seq of its last correction.
    pub position: Position,
    /// Seq of its retraction, if retracted (only [`crate::Annals::get`] returns
    /// retracted events).
    pub retracted_seq: Option<u64>,
}

impl Record {
    /// The interchange JSON of the event with its place in the log
    /// (`seq`, `recorded_at`, `corrected_seq`) and, when retracted,
    /// `retracted_seq`: what `annals get` and `annals query` print.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = crate::json::event_to_value(&self.event, Some(self.position));
        if let (Some(seq), serde_json::Value::Object(m)) = (self.retracted_seq, &mut v) {
            m.insert("retracted_seq".into(), seq.into());
        }
        v
    }
}

/// One version of an event, from [`crate::Annals::history`].
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// The entry's seq.
    pub seq: u64,
    /// The entry's transaction time.
    pub recorded_at: Micros,
    /// `created`, `corrected`, `retracted` or `excised`.
    pub action: &'static str,
    /// The version (none for a retraction or an excised entry).
    pub event: Option<Event>,
    /// A retraction's or an excision's reason.
    pub reason: Option<String>,
    /// For a version written by a merge, the branch entry it came from.
    pub origin: Option<Origin>,
    /// For an excised entry, when the excision was made.
    pub excised_at: Option<Micros>,
}

impl Version {
    /// `{seq, recorded_at, action, event | reason, merged_from?,
    /// excised_at?}`: what `annals history` prints for the version.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = crate::entry::version_json(
            self.seq,
            self.recorded_at,
            self.action,
            None,
            self.event.as_ref(),
            self.reason.as_deref(),
            self.origin.as_ref(),
        );
        if let (Some(at), Some(m)) = (self.excised_at, v.as_object_mut()) {
            m.insert("excised_at".into(), crate::time::format_micros(at).into());
        }
        v
    }
}

/// Sizes and counts, from [`crate::Annals::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Entries in the log.
    pub entries: u64,
    /// Events ever created.
    pub events: u64,
    /// Events neither retracted nor ... simply current.
    pub current: u64,
    /// Events with at least one correction.
    pub corrected: u64,
    /// Retracted events.
    pub retracted: u64,
    /// Rows of the by-country view.
    pub countries: u64,
    /// Rows of the by-actor view.
    pub actors: u64,
    /// Bytes on disk (store and checkpoint).
    pub disk_bytes: u64,
}

/// Fails on an oversized batch.
pub(crate) fn check_batch(ops: &[Op]) -> Result<()> {
    if ops.len() > MAX_BATCH_ENTRIES {
        return Err(Error::invalid(
            "-",
            format!(
                "batch of {} operations; the limit is {MAX_BATCH_ENTRIES}",
                ops.len()
            ),
        ));
    }
    Ok(())
}

/// Fails unless the head is at the expected seq.
pub(crate) fn check_expected(head: Head, expect_seq: Option<u64>) -> Result<()> {
    match expect_seq {
        Some(expected) if expected != head.seq => Err(Error::SeqMismatch {
            expected,
            actual: head.seq,
        }),
        _ => Ok(()),
    }
}
