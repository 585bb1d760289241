//! # annals
//!
//! An embeddable, event-sourced timeline database. Events (what happened,
//! when, where, who) go into an append-only, hash-chained log; views by
//! country, by actor and by date are kept current as they arrive and can
//! always be rebuilt from the log.
//!
//! ```
//! use annals::{Annals, Event, Occurred, Query};
//!
//! # fn main() -> annals::Result<()> {
//! let dir = tempfile::tempdir().map_err(|e| annals::Error::Io { path: "tempdir".into(), source: e })?;
//! let db = Annals::open(dir.path().join("timeline.db"))?;
//!
//! // Append as reports arrive: one atomic, durable batch.
//! let drones = Event::new("airspace_violation", Occurred::parse("2025-09")?)
//!     .with_countries(["PL"])
//!     .with_actor("Russia", "alleged_perpetrator");
//! let sabotage = annals::parse_event(
//!     r#"{"kind":"sabotage","occurred":"2025-11","countries":["PL"],
//!         "actors":[{"name":"Russia","role":"alleged_perpetrator"}]}"#,
//! )?;
//! db.append(vec![drones, sabotage])?;
//!
//! // Read a view and query by occurrence time.
//! let poland = &db.by_country()?[0];
//! assert_eq!((poland.country.as_str(), poland.count), ("PL", 2));
//! let autumn = db.query(&Query::new().country("PL").from("2025-10")?.to("2025-12")?)?;
//! assert_eq!(autumn.len(), 1);
//!
//! // Replay the log from scratch: it always equals the kept views.
//! db.verify()?;
//! # Ok(())
//! # }
//! ```
//!
//! See `docs/architecture.md` for how it works and `docs/format.md` for the
//! interchange format and the command line.

#![deny(missing_docs, unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod codec;
pub mod columnar;
mod country;
mod db;
#[cfg(feature = "delta")]
mod delta;
mod engine;
mod entry;
mod error;
mod excise;
mod export;
mod folder;
mod follow;
mod import;
mod index;
mod integrity;
mod intern;
mod json;
mod line;
mod log;
mod logfile;
mod merge;
mod model;
mod place;
pub mod projection;
mod query;
mod read;
mod record;
mod replay;
mod runfile;
mod segment;
mod snapshot;
mod state;
mod store;
mod subscribe;
mod sync;
mod time;
mod write;
mod writer;

pub use codec::MAX_ENTRY_BYTES;
pub use country::{is_country_code, COUNTRY_CODES};
pub use db::{Annals, Builder};
#[cfg(feature = "delta")]
pub use delta::{
    delta_version_of, read_commits, seq_at_version, DeltaCommit, PublishOptions, PublishReport,
    PARTITION_COLUMN,
};
pub use entry::{hex, parse_hash, Body, Entry, Hash, Head, Origin};
pub use error::{Error, Result};
pub use excise::Excision;
pub use export::{ExportFormat, CHANGE_COLUMNS, CSV_COLUMNS};
pub use import::{
    acled_id, content_id, gdelt_id, polecat_id, ucdp_id, Import, ImportFormat, ImportSummary,
    Progress, Rejection, DEFAULT_BATCH_ROWS, JSONL_NAMESPACE,
};
pub use integrity::VerifyReport;
pub use json::{
    correction_event, event_from_value, event_to_line, event_to_value, parse_event, read_events,
    Position, MAX_LINE_BYTES,
};
pub use line::branch::{check_branch_name, BranchInfo, MAX_BRANCH_ENTRIES, MAX_BRANCH_NAME_BYTES};
pub use merge::{MergeChange, MergeConflict, MergeOptions, MergeReport, OnConflict};
pub use model::{
    actor_key, Actor, Event, Location, PlacePrecision, Source, MAX_ATTRS_BYTES, MAX_KIND_BYTES,
    MAX_LIST_ITEMS, MAX_NAME_BYTES, MAX_REASON_BYTES, MAX_SUMMARY_BYTES, MAX_TAG_BYTES,
    MAX_URL_BYTES,
};
pub use place::{
    distance_km, prio_grid, prio_grid_centre, Area, PlaceMatch, EARTH_RADIUS_KM, MAX_AREA_VERTICES,
    MAX_RADIUS_KM,
};
pub use projection::{
    place_granularity, ActorRow, Change, CountryActor, CountryRow, DateRow, Fatalities, PlaceLevel,
    PlaceRow, Projection, Registered, ACTORS_IN_ROW,
};
pub use query::{Filters, Query};
pub use read::diff::{Against, DiffRow, EventDiff, EventDiffKind, ViewKind};
pub use read::{AsOf, At, ChangeKind, DatasetRow, EventChange, Reader, HAND_ENTERED};
pub use record::{Durability, Op, Record, Stats, Version, Written, MAX_BATCH_ENTRIES};
pub use store::{Bytes, ChunkIter, Storage, Store, MAIN_LOG};
pub use subscribe::Subscription;
pub use time::{
    format_micros, parse_rfc3339, Bound, Granularity, Mark, Micros, Occurred, Precision, TimePoint,
};

/// Entry points for fuzzers and property tests that feed arbitrary bytes
/// to the decoders. Not part of the stable API.
#[doc(hidden)]
pub mod fuzz {
    /// Decodes one stored entry; `true` if it is valid.
    pub fn decode_entry(seq: u64, bytes: &[u8]) -> bool {
        crate::codec::decode_entry(seq, bytes).is_ok()
    }

    /// Unpacks a stored chunk and decodes its entries; `true` if all valid.
    pub fn decode_chunk(first: u64, bytes: &[u8]) -> bool {
        crate::codec::unpack_chunk(first, bytes).is_ok_and(|entries| {
            entries
                .iter()
                .enumerate()
                .all(|(i, e)| crate::codec::decode_entry(first + i as u64, e).is_ok())
        })
    }

    /// Encodes an event as the stored entry `seq` chained to zeros.
    pub fn encode_event(seq: u64, event: &crate::Event) -> Option<Vec<u8>> {
        let entry = crate::Entry::new(seq, 0, crate::Body::Event(event.clone()));
        crate::codec::encode_entry(&entry, &[0; 32])
            .ok()
            .map(|(b, _)| b)
    }

    /// Packs encoded entries into chunks.
    pub fn pack(first: u64, entries: Vec<Vec<u8>>) -> Vec<(u64, Vec<u8>)> {
        crate::codec::pack_chunks(first, entries)
    }
}
