//! Importing files: JSON Lines, GDELT event exports, ACLED exports and
//! deletion lists, UCDP GED releases and POLECAT weekly files, streamed in
//! batches.
//!
//! Every row becomes an *upsert*: an unknown id is appended, a known one
//! with the same content is left alone, a known one whose content changed
//! gets a correction (ACLED rows only when their `timestamp` is newer), so
//! re-importing an updated export records what changed and when, and
//! re-importing the same file adds nothing. Ids are UUID v5 of the source's
//! own id, so a stopped import can simply be run again. The mapping of each
//! format is in `docs/import.md`.

mod acled;
mod codes;
mod gdelt;
mod input;
mod polecat;
mod row;
mod table;
mod ucdp;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::json::parse_event;
use crate::line::main::Main;
use crate::model::Event;
use crate::query::Query;
use crate::read::At;
use crate::record::{Op, MAX_BATCH_ENTRIES};
use row::{read_line, Item, Row, Rows};

pub use acled::acled_id;
pub use gdelt::gdelt_id;
pub use polecat::polecat_id;
pub use ucdp::ucdp_id;

/// The formats [`Import`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// annals' own JSON Lines (what `export --format jsonl` writes).
    Jsonl,
    /// GDELT 1.0 or 2.0 event exports (tab-separated, no header), or the
    /// same columns re-saved with a header line (R, spreadsheets).
    Gdelt,
    /// ACLED CSV exports with a header, any schema generation.
    Acled,
    /// ACLED deletion lists (`event_id_cnty`, `deleted_timestamp`): each
    /// listed event is retracted.
    AcledDeletions,
    /// UCDP GED CSV releases (global annual, or monthly candidate).
    UcdpGed,
    /// POLECAT weekly files (tab-separated, with a header).
    Polecat,
}

impl ImportFormat {
    /// Parses a format name: `jsonl`, `gdelt`, `acled`, `acled-deletions`,
    /// `ucdp-ged`, `polecat`.
    pub fn parse(name: &str) -> Result<ImportFormat> {
        Ok(match name {
            "jsonl" => ImportFormat::Jsonl,
            "gdelt" => ImportFormat::Gdelt,
            "acled" => ImportFormat::Acled,
            "acled-deletions" => ImportFormat::AcledDeletions,
            "ucdp-ged" => ImportFormat::UcdpGed,
            "polecat" => ImportFormat::Polecat,
            other => {
                return Err(Error::invalid(
                    "format",
                    format!(
                    "`{other}`; expected jsonl, gdelt, acled, acled-deletions, ucdp-ged or polecat"
                ),
                ))
            }
        })
    }

    /// Whether the format's files can be full releases, so that
    /// [`Import::retract_missing`] applies (ACLED, UCDP GED, POLECAT).
    pub fn has_releases(self) -> bool {
        self.release_dataset().is_some()
    }

    /// The `dataset` attribute the format's events carry, for a format
    /// whose files are full releases (so that [`Import::retract_missing`]
    /// can tell which events a release dropped).
    fn release_dataset(self) -> Option<&'static str> {
        match self {
            ImportFormat::Acled => Some("acled"),
            ImportFormat::UcdpGed => Some("ucdp-ged"),
            ImportFormat::Polecat => Some("polecat"),
            _ => None,
        }
    }
}

/// What an import did, row by row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Data rows read (header lines not counted).
    pub read: u64,
    /// New events appended.
    pub appended: u64,
    /// Known events whose content changed: a correction was appended.
    pub corrected: u64,
    /// Events retracted (deletion lists).
    pub retracted: u64,
    /// Rows identical to what the database holds: nothing written.
    pub unchanged: u64,
    /// Rows with nothing to do: an older version than the one held, a
    /// retracted event, a deletion of an event never imported.
    pub skipped: u64,
    /// Invalid rows (with `skip_invalid`; otherwise the first one stops the
    /// import).
    pub rejected: u64,
    /// Events [`Import::retract_missing`] left alone although no valid row
    /// held them, because a rejected row of the release named them: a
    /// retraction is final, and the row is in the release, only invalid.
    pub kept: u64,
    /// Seqs of the first and last entries the import wrote (none if it
    /// wrote nothing): `changes --since first-1 --until last` lists
    /// exactly what it changed.
    pub seqs: Option<(u64, u64)>,
}

impl ImportSummary {
    fn add(&mut self, o: &ImportSummary) {
        self.seqs = match (self.seqs, o.seqs) {
            (Some((a, _)), Some((_, d))) => Some((a, d)),
            (a, b) => a.or(b),
        };
        self.read += o.read;
        self.appended += o.appended;
        self.corrected += o.corrected;
        self.retracted += o.retracted;
        self.unchanged += o.unchanged;
        self.skipped += o.skipped;
        self.rejected += o.rejected;
        self.kept += o.kept;
    }
}

/// An invalid row, passed to the rejects handler of
/// [`Import::skip_invalid`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    /// The file (as given) and the row's first line.
    pub file: String,
    /// The 1-based line the row starts on.
    pub line: u64,
    /// What is wrong, naming the column.
    pub reason: String,
    /// The row's fields as read (for JSON Lines: the line).
    pub fields: Vec<String>,
}

/// How far an import has come, passed to [`Import::on_progress`] after
/// every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Rows read so far, in all files.
    pub rows: u64,
    /// Bytes of the current file read so far (compressed bytes for a
    /// compressed file).
    pub bytes: u64,
    /// The current file's size, when known.
    pub total_bytes: Option<u64>,
}

/// Rows per committed batch by default.
pub const DEFAULT_BATCH_ROWS: usize = 1000;

type RejectFn<'a> = Box<dyn FnMut(&Rejection) -> Result<()> + 'a>;
type ProgressFn<'a> = Box<dyn FnMut(&Progress) + 'a>;

/// An import of one or more files into main; from [`crate::Annals::import`].
///
/// ```
/// # fn main() -> annals::Result<()> {
/// # let dir = tempfile::tempdir().map_err(|e| annals::Error::Io { path: "tempdir".into(), source: e })?;
/// # let db = annals::Annals::open(dir.path().join("db"))?;
/// let rows = "{\"kind\":\"sabotage\",\"occurred\":\"2025-11\",\"countries\":[\"PL\"]}\n";
/// let mut import = db.import(annals::ImportFormat::Jsonl);
/// let summary = import.reader("rows.jsonl", rows.as_bytes())?;
/// assert_eq!(summary.appended, 1);
/// # Ok(())
/// # }
/// ```
pub struct Import<'a> {
    db: &'a Engine,
    format: ImportFormat,
    batch_rows: usize,
    on_reject: Option<RejectFn<'a>>,
    on_progress: Option<ProgressFn<'a>>,
    summary: ImportSummary,
    /// Ids of the events the files held (formats with full releases only).
    seen: HashSet<Uuid>,
    /// Ids named by rejected rows of a full release: in the release, only
    /// invalid, so never retracted as missing.
    rejected_ids: HashSet<Uuid>,
    /// Rejected rows of a full release whose id could not be read: any
    /// event could be theirs, so nothing may be retracted as missing.
    unnamed_rejects: u64,
}

impl<'a> Import<'a> {
    /// An import into `engine`'s main in `format`.
    pub(crate) fn new(engine: &'a Engine, format: ImportFormat) -> Import<'a> {
        Import {
            db: engine,
            format,
            batch_rows: DEFAULT_BATCH_ROWS,
            on_reject: None,
            on_progress: None,
            summary: ImportSummary::default(),
            seen: HashSet::new(),
            rejected_ids: HashSet::new(),
            unnamed_rejects: 0,
        }
    }
}

impl<'a> Import<'a> {
    /// Skips invalid rows, handing each to `on_reject`, instead of stopping
    /// at the first one.
    pub fn skip_invalid(mut self, on_reject: impl FnMut(&Rejection) -> Result<()> + 'a) -> Self {
        self.on_reject = Some(Box::new(on_reject));
        self
    }

    /// Called after every committed batch.
    pub fn on_progress(mut self, f: impl FnMut(&Progress) + 'a) -> Self {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Rows per committed batch (at least 1; at most
    /// [`crate::MAX_BATCH_ENTRIES`]).
    pub fn batch_rows(mut self, n: usize) -> Self {
        self.batch_rows = n.clamp(1, MAX_BATCH_ENTRIES);
        self
    }

    /// What this import has done so far, over all files; still right after
    /// an error (everything before the failing row is committed).
    pub fn summary(&self) -> ImportSummary {
        self.summary
    }

    /// Imports a file: plain, `.gz` or a `.zip` of one file. Without
    /// [`Import::skip_invalid`], the first invalid row stops the import
    /// with its line and reason; the rows before it are committed.
    pub fn file(&mut self, path: impl AsRef<Path>) -> Result<ImportSummary> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let total = std::fs::metadata(path).map(|m| m.len()).ok();
        let bytes = Arc::new(AtomicU64::new(0));
        input::with_file(path, bytes.clone(), |r| self.run(&name, r, &bytes, total))
    }

    /// Imports from a reader (stdin, memory); `name` is used in messages.
    pub fn reader(&mut self, name: &str, mut r: impl BufRead + Send) -> Result<ImportSummary> {
        let bytes = Arc::new(AtomicU64::new(0));
        self.run(name, &mut r, &bytes, None)
    }

    fn run(
        &mut self,
        name: &str,
        r: &mut (dyn BufRead + Send),
        bytes: &Arc<AtomicU64>,
        total: Option<u64>,
    ) -> Result<ImportSummary> {
        let mut rows: Box<dyn Rows + '_> = match self.format {
            ImportFormat::Jsonl => Box::new(JsonlRows { r, line: 0 }),
            ImportFormat::Gdelt => gdelt::rows(r).map_err(|e| e.at(name))?,
            ImportFormat::Acled => acled::rows(r, false).map_err(|e| e.at(name))?,
            ImportFormat::AcledDeletions => acled::rows(r, true).map_err(|e| e.at(name))?,
            ImportFormat::UcdpGed => ucdp::rows(r).map_err(|e| e.at(name))?,
            ImportFormat::Polecat => polecat::rows(r).map_err(|e| e.at(name))?,
        };
        let batch_rows = self.batch_rows;
        let mut file = ImportSummary::default();
        // Parsing and writing each take about half the time: a parser
        // thread reads batches of rows ahead (at most two, so memory stays
        // bounded) while this thread writes.
        let result = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Row>>>(2);
            scope.spawn(move || loop {
                let mut batch = Vec::with_capacity(batch_rows);
                let mut failed = None;
                while batch.len() < batch_rows {
                    match rows.next_row() {
                        Ok(Some(row)) => batch.push(row),
                        Ok(None) => break,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                let last = batch.len() < batch_rows;
                // A send fails once the writer has stopped: stop too.
                if !batch.is_empty() && tx.send(Ok(batch)).is_err() {
                    return;
                }
                if let Some(e) = failed {
                    let _ = tx.send(Err(e));
                    return;
                }
                if last {
                    return;
                }
            });
            for batch in rx {
                self.write_rows(name, batch.map_err(|e| e.at(name))?, &mut file)?;
                if let Some(f) = &mut self.on_progress {
                    f(&Progress {
                        rows: self.summary.read + file.read,
                        bytes: bytes.load(Ordering::Relaxed),
                        total_bytes: total,
                    });
                }
            }
            Ok(())
        });
        self.summary.add(&file);
        result.map(|()| file)
    }

    /// Writes one batch of parsed rows. A bad row goes to the rejects
    /// handler, or stops the import: the rows before it are committed
    /// first, so that a re-run after fixing the file carries on.
    fn write_rows(&mut self, name: &str, rows: Vec<Row>, file: &mut ImportSummary) -> Result<()> {
        let mut items = Vec::with_capacity(rows.len());
        let track = self.format.release_dataset().is_some();
        for row in rows {
            file.read += 1;
            match row.item {
                Ok(item) => {
                    if let (true, Item::Upsert { event, .. }) = (track, &item) {
                        self.seen.insert(event.id);
                    }
                    items.push(item)
                }
                Err(e) => {
                    let e = e.at(format!("{name} line {}", row.line));
                    let Some(on_reject) = &mut self.on_reject else {
                        self.commit(items, file)?;
                        return Err(e);
                    };
                    file.rejected += 1;
                    if track {
                        match row.id {
                            Some(id) => {
                                self.rejected_ids.insert(id);
                            }
                            None => self.unnamed_rejects += 1,
                        }
                    }
                    let reason = match &e {
                        Error::Invalid { field, reason, .. } => format!("`{field}`: {reason}"),
                        other => other.to_string(),
                    };
                    on_reject(&Rejection {
                        file: name.to_string(),
                        line: row.line,
                        reason,
                        fields: row.fields,
                    })?;
                }
            }
        }
        self.commit(items, file)
    }

    /// For a full release: retracts every current event of this format's
    /// dataset that none of the files imported so far held (a release that
    /// drops an event says it no longer stands), in durable batches.
    /// Without it, a dropped event stays as it was: a partial file (one
    /// month, one country) must not erase the rest. Errors for formats
    /// that have no releases (JSON Lines, GDELT, deletion lists) and when
    /// nothing was imported (an empty file is not a release).
    ///
    /// A rejected row (with [`Import::skip_invalid`]) does not make its
    /// event missing: the event is named by the row's id column, read
    /// before the row is validated, and kept as it is (counted in
    /// [`ImportSummary::kept`]). When a rejected row's id cannot be read,
    /// any event could be its, and this refuses to retract anything.
    pub fn retract_missing(&mut self) -> Result<ImportSummary> {
        let Some(dataset) = self.format.release_dataset() else {
            return Err(Error::invalid(
                "retract_missing",
                "only ACLED, UCDP GED and POLECAT files are full releases",
            ));
        };
        if self.seen.is_empty() {
            return Err(Error::invalid(
                "retract_missing",
                "no event was imported: refusing to retract the whole dataset",
            ));
        }
        if self.unnamed_rejects > 0 {
            return Err(Error::invalid(
                "retract_missing",
                format!(
                    "{} rejected rows have no readable id, so any event could be theirs: \
                     refusing to retract (a retraction is final); fix those rows, or import \
                     without retracting",
                    self.unnamed_rejects
                ),
            ));
        }
        let mut missing = Vec::new();
        let mut kept = 0;
        self.db
            .reader(&At::head())?
            .for_each_record(&Query::new(), &mut |r| {
                let of_dataset =
                    r.event.attrs.get("dataset").and_then(|v| v.as_str()) == Some(dataset);
                if of_dataset && !self.seen.contains(&r.event.id) {
                    if self.rejected_ids.contains(&r.event.id) {
                        kept += 1;
                    } else {
                        missing.push(r.event.id);
                    }
                }
                Ok(())
            })?;
        let reason = format!(
            "not in the {dataset} release imported at {}",
            crate::time::format_micros(crate::time::now_micros())
        );
        let mut done = ImportSummary {
            kept,
            ..ImportSummary::default()
        };
        for ids in missing.chunks(self.batch_rows) {
            let items = ids
                .iter()
                .map(|&id| Item::Delete {
                    id,
                    reason: reason.clone(),
                })
                .collect();
            self.commit(items, &mut done)?;
        }
        self.summary.add(&done);
        Ok(done)
    }

    /// Turns a batch of rows into operations and writes them atomically.
    /// The decisions are made under the writer lock, from the state they
    /// apply to, so a concurrent writer cannot slip in between.
    fn commit(&mut self, items: Vec<Item>, summary: &mut ImportSummary) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let db = self.db;
        let (written, mut counts) = db.write_with(None, true, |main| decide(main, items))?;
        let mut new = written.iter().filter(|w| w.new_entry).map(|w| w.seq);
        if let Some(first) = new.next() {
            counts.seqs = Some((first, new.next_back().unwrap_or(first)));
        }
        summary.add(&counts);
        Ok(())
    }
}

/// What to do with one upsert.
enum Decision {
    Append,
    Correct,
    Unchanged,
    Skip,
}

/// The operations a batch of rows asks for, given the database's state
/// (and the batch's own earlier rows: an id may appear twice).
fn decide(db: &Main, items: Vec<Item>) -> Result<(Vec<Op>, ImportSummary)> {
    let mut counts = ImportSummary::default();
    let mut ops: Vec<Op> = Vec::with_capacity(items.len());
    // Per id seen in this batch: the position of its latest op, or `None`
    // once retracted.
    let mut in_batch: HashMap<Uuid, Option<usize>> = HashMap::new();
    for item in items {
        match item {
            Item::Upsert { event, stamp } => {
                let decision = match current(db, &ops, &in_batch, event.id)? {
                    None => Decision::Append,
                    Some(None) => Decision::Skip,
                    Some(Some(cur)) if *cur == event => Decision::Unchanged,
                    Some(Some(cur)) => match (stamp, stamp_of(&cur)) {
                        (Some(new), Some(held)) if new < held => Decision::Skip,
                        _ => Decision::Correct,
                    },
                };
                match decision {
                    Decision::Append => {
                        counts.appended += 1;
                        in_batch.insert(event.id, Some(ops.len()));
                        ops.push(Op::Append(event));
                    }
                    Decision::Correct => {
                        counts.corrected += 1;
                        in_batch.insert(event.id, Some(ops.len()));
                        ops.push(Op::Correct(event));
                    }
                    Decision::Unchanged => counts.unchanged += 1,
                    Decision::Skip => counts.skipped += 1,
                }
            }
            Item::Delete { id, reason } => match current(db, &ops, &in_batch, id)? {
                None => counts.skipped += 1,
                Some(None) => counts.unchanged += 1,
                Some(Some(_)) => {
                    counts.retracted += 1;
                    in_batch.insert(id, None);
                    ops.push(Op::Retract { id, reason });
                }
            },
        }
    }
    Ok((ops, counts))
}

/// The current version of `id`, from the batch's own ops or the state:
/// `None` if unknown, `Some(None)` if retracted.
fn current<'a>(
    db: &Main,
    ops: &'a [Op],
    in_batch: &HashMap<Uuid, Option<usize>>,
    id: Uuid,
) -> Result<Option<Option<Cow<'a, Event>>>> {
    Ok(match in_batch.get(&id) {
        Some(Some(i)) => Some(ops.get(*i).and_then(op_event).map(Cow::Borrowed)),
        Some(None) => Some(None),
        None => match db.lookup(&id)? {
            None => None,
            Some(m) if m.retracted.is_some() => Some(None),
            Some(m) => Some(Some(Cow::Owned(db.log().read_event(m.current)?))),
        },
    })
}

fn op_event(op: &Op) -> Option<&Event> {
    match op {
        Op::Append(e) | Op::Correct(e) => Some(e),
        Op::Retract { .. } => None,
    }
}

/// The version stamp an event carries from its source (ACLED's
/// `timestamp`, Unix seconds of the row's last change).
fn stamp_of(e: &Event) -> Option<i64> {
    e.attrs.get(acled::STAMP_ATTR).and_then(|v| v.as_i64())
}

/// annals' JSON Lines, one event per line; blank lines are skipped.
struct JsonlRows<'r> {
    r: &'r mut (dyn BufRead + Send),
    line: u64,
}

impl Rows for JsonlRows<'_> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        loop {
            let Some(bytes) = read_line(self.r, &mut self.line)? else {
                return Ok(None);
            };
            let (text, item) = match String::from_utf8(bytes) {
                Ok(text) => {
                    if text.trim().is_empty() {
                        continue;
                    }
                    let item = import_event(&text).map(|event| Item::Upsert { event, stamp: None });
                    (text, item)
                }
                Err(e) => (
                    String::from_utf8_lossy(e.as_bytes()).into_owned(),
                    Err(Error::invalid("-", "not UTF-8")),
                ),
            };
            return Ok(Some(Row {
                line: self.line,
                fields: vec![text],
                item,
                id: None,
            }));
        }
    }
}

/// Namespace of the ids of JSON Lines rows without one: UUID v5 of
/// `https://github.com/annals/annals/import/jsonl` in the URL namespace.
pub const JSONL_NAMESPACE: Uuid = Uuid::from_u128(0x93ffd595_d7fd_5967_a6b9_37593aa1dfff);

/// One JSON Lines row as an event. A row without `id` gets
/// [`content_id`], not a fresh id, so that running an import again (or
/// on a file that grew) adds only the rows that are new.
fn import_event(text: &str) -> Result<Event> {
    let mut event = parse_event(text)?;
    // `parse_event` has checked that the line is a JSON object.
    let has_id = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
        .map(|o| o.get("id").is_some_and(|v| !v.is_null()))
        .unwrap_or(false);
    if !has_id {
        event.id = content_id(&event);
    }
    Ok(event)
}

/// The id a JSON Lines row without one is imported under: UUID v5 (in
/// [`JSONL_NAMESPACE`]) of the event's content as annals reads it, in
/// the interchange format with object keys sorted. The same row always
/// gets the same id, however its keys are ordered or its dates spelled
/// (`"2025-09"` or `{"from": "2025-09", "to": "2025-09"}`); two rows of
/// identical content are one event; a row whose content changed is a new
/// event (rows that are corrected over time need ids of their own).
pub fn content_id(event: &Event) -> Uuid {
    let mut e = event.clone();
    e.id = Uuid::nil();
    let canonical = sorted(crate::json::event_to_value(&e, None));
    Uuid::new_v5(&JSONL_NAMESPACE, canonical.to_string().as_bytes())
}

/// `v` with the keys of every object in sorted order.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use crate::model::PlacePrecision::{self, *};

    /// A dataset's mapping and (code, precision) pairs it must give.
    type Mapping = (
        fn(&str) -> Option<PlacePrecision>,
        &'static [(&'static str, Option<PlacePrecision>)],
    );

    #[test]
    fn each_dataset_s_place_codes_map_to_a_precision() {
        let cases: [Mapping; 4] = [
            (
                super::acled::acled_precision,
                &[
                    ("1", Some(Exact)),
                    ("2", Some(Near)),
                    ("3", Some(Admin1)),
                    ("", None),
                    ("9", None),
                ],
            ),
            (
                super::gdelt::gdelt_precision,
                &[
                    ("1", Some(Country)),
                    ("2", Some(Admin1)),
                    ("3", Some(Exact)),
                    ("4", Some(Exact)),
                    ("5", Some(Admin1)),
                    ("0", None),
                ],
            ),
            (
                super::ucdp::ucdp_precision,
                &[
                    ("1", Some(Exact)),
                    ("2", Some(Near)),
                    ("3", Some(Admin2)),
                    ("4", Some(Admin1)),
                    ("5", Some(Admin1)),
                    ("6", Some(Country)),
                    ("7", Some(Country)),
                    ("x", None),
                ],
            ),
            (
                super::polecat::polecat_precision,
                &[
                    ("PPLA", Some(Exact)),
                    ("ADM1", Some(Admin1)),
                    ("ADM2", Some(Admin2)),
                    ("PCLI", Some(Country)),
                    ("STM", Some(Near)),
                    ("", None),
                ],
            ),
        ];
        for (map, pairs) in cases {
            for (code, want) in pairs {
                assert_eq!(map(code), *want, "{code}");
            }
        }
    }
}
