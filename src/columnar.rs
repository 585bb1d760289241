//! Arrow columns of events and views: one layout shared by the Parquet
//! export and the embedding APIs (the Python package's Arrow streams), so
//! that a file and an in-process result read the same.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, MapBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, SchemaRef};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::json::event_to_value;
use crate::projection::{ActorRow, CountryRow, DateRow, PlaceRow};
use crate::record::Record;

/// Rows per record batch that annals' own writers and streams use.
pub const BATCH_ROWS: usize = 8192;

fn arrow_error(e: impl std::fmt::Display) -> Error {
    Error::Export(e.to_string())
}

/// The schema of [`events_batch`].
pub fn events_schema() -> Result<SchemaRef> {
    Ok(events_batch(&[])?.schema())
}

/// The text form of `occurred`: as in JSON, an interval as `from/to`.
pub(crate) fn occurred_text(v: &Value) -> String {
    match v.get("occurred") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => format!(
            "{}/{}",
            o.get("from").and_then(Value::as_str).unwrap_or(""),
            o.get("to").and_then(Value::as_str).unwrap_or("")
        ),
        _ => String::new(),
    }
}

pub(crate) fn json_text(v: Option<&Value>) -> String {
    v.map(Value::to_string).unwrap_or_default()
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// A list column: `lengths[i]` items of `values` belong to row `i`.
fn list(item: Field, values: ArrayRef, lengths: Vec<usize>) -> Result<ArrayRef> {
    Ok(Arc::new(
        ListArray::try_new(
            Arc::new(item),
            OffsetBuffer::from_lengths(lengths),
            values,
            None,
        )
        .map_err(arrow_error)?,
    ))
}

/// A list-of-strings column.
fn string_list(rows: &[Record], items: impl Fn(&Record) -> &[String]) -> Result<ArrayRef> {
    let mut values = StringBuilder::new();
    let mut lengths = Vec::with_capacity(rows.len());
    for r in rows {
        let xs = items(r);
        lengths.push(xs.len());
        for x in xs {
            values.append_value(x);
        }
    }
    list(utf8("item", true), Arc::new(values.finish()), lengths)
}

/// Events as one Arrow record batch, in the columns of the Parquet export
/// (`docs/import.md`, "Parquet and Arrow columns"); [`events_schema`] is
/// its schema whatever the rows.
pub fn events_batch(rows: &[Record]) -> Result<RecordBatch> {
    let ts = || TimestampMicrosecondBuilder::with_capacity(rows.len()).with_timezone("UTC");
    let (mut id, mut kind, mut occurred, mut precision, mut summary, mut attrs) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut seq, mut corrected) = (UInt64Builder::new(), UInt64Builder::new());
    let (mut recorded, mut start, mut end) = (ts(), ts(), ts());
    let mut confidence = Float64Builder::new();
    let (mut loc_name, mut loc_country) = (StringBuilder::new(), StringBuilder::new());
    let (mut lat, mut lon) = (Float64Builder::new(), Float64Builder::new());
    let (mut place_precision, mut admin1) = (StringBuilder::new(), StringBuilder::new());
    let mut loc_valid = Vec::with_capacity(rows.len());
    let (mut actor_name, mut actor_role) = (StringBuilder::new(), StringBuilder::new());
    let mut actor_lengths = Vec::with_capacity(rows.len());
    let (mut src_name, mut src_url, mut src_at) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut src_lengths = Vec::with_capacity(rows.len());
    for r in rows {
        let e = &r.event;
        let v = event_to_value(e, None);
        id.append_value(e.id.to_string());
        seq.append_value(r.position.seq);
        recorded.append_value(r.position.recorded_at);
        corrected.append_option(r.position.corrected_seq);
        kind.append_value(&e.kind);
        occurred.append_value(occurred_text(&v));
        start.append_value(e.occurred.start());
        end.append_value(e.occurred.end());
        precision.append_value(e.occurred.precision().name());
        let loc = e.location.as_ref();
        loc_valid.push(loc.is_some());
        loc_name.append_option(loc.and_then(|l| l.name.as_deref()));
        loc_country.append_option(loc.and_then(|l| l.country.as_deref()));
        lat.append_option(loc.and_then(|l| l.lat));
        lon.append_option(loc.and_then(|l| l.lon));
        place_precision.append_option(loc.and_then(|l| l.precision).map(|p| p.as_str()));
        admin1.append_option(loc.and_then(|l| l.admin1.as_deref()));
        actor_lengths.push(e.actors.len());
        for a in &e.actors {
            actor_name.append_value(&a.name);
            actor_role.append_value(&a.role);
        }
        src_lengths.push(e.sources.len());
        for s in &e.sources {
            src_name.append_value(&s.name);
            src_url.append_option(s.url.as_deref());
            src_at.append_option(s.reported_at.map(|t| t.to_string()));
        }
        summary.append_option(e.summary.as_deref());
        confidence.append_option(e.confidence);
        attrs.append_value(json_text(v.get("attrs")));
    }
    let location = StructArray::try_new(
        Fields::from(vec![
            utf8("name", true),
            utf8("country", true),
            Field::new("lat", DataType::Float64, true),
            Field::new("lon", DataType::Float64, true),
            utf8("precision", true),
            utf8("admin1", true),
        ]),
        vec![
            Arc::new(loc_name.finish()),
            Arc::new(loc_country.finish()),
            Arc::new(lat.finish()),
            Arc::new(lon.finish()),
            Arc::new(place_precision.finish()),
            Arc::new(admin1.finish()),
        ],
        Some(NullBuffer::from(loc_valid)),
    )
    .map_err(arrow_error)?;
    let actor_fields = Fields::from(vec![utf8("name", false), utf8("role", false)]);
    let actors = StructArray::try_new(
        actor_fields.clone(),
        vec![Arc::new(actor_name.finish()), Arc::new(actor_role.finish())],
        None,
    )
    .map_err(arrow_error)?;
    let source_fields = Fields::from(vec![
        utf8("name", false),
        utf8("url", true),
        utf8("reported_at", true),
    ]);
    let sources = StructArray::try_new(
        source_fields.clone(),
        vec![
            Arc::new(src_name.finish()),
            Arc::new(src_url.finish()),
            Arc::new(src_at.finish()),
        ],
        None,
    )
    .map_err(arrow_error)?;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(id.finish())),
        ("seq", Arc::new(seq.finish())),
        ("recorded_at", Arc::new(recorded.finish())),
        ("corrected_seq", Arc::new(corrected.finish())),
        ("kind", Arc::new(kind.finish())),
        ("occurred", Arc::new(occurred.finish())),
        ("occurred_start", Arc::new(start.finish())),
        ("occurred_end", Arc::new(end.finish())),
        ("occurred_precision", Arc::new(precision.finish())),
        ("countries", string_list(rows, |r| &r.event.countries)?),
        ("location", Arc::new(location)),
        (
            "actors",
            list(
                Field::new("item", DataType::Struct(actor_fields), true),
                Arc::new(actors),
                actor_lengths,
            )?,
        ),
        ("summary", Arc::new(summary.finish())),
        (
            "sources",
            list(
                Field::new("item", DataType::Struct(source_fields), true),
                Arc::new(sources),
                src_lengths,
            )?,
        ),
        ("confidence", Arc::new(confidence.finish())),
        ("tags", string_list(rows, |r| &r.event.tags)?),
        ("attrs", Arc::new(attrs.finish())),
    ];
    // Every column nullable, whatever this batch holds, so that every
    // batch has the schema the writer was opened with.
    RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, a)| (n, a, true)))
        .map_err(arrow_error)
}

/// A `map<string, uint64>` column of per-key counts.
fn counts(maps: &[&BTreeMap<String, u64>]) -> Result<ArrayRef> {
    let mut b = MapBuilder::new(None, StringBuilder::new(), UInt64Builder::new());
    for m in maps {
        for (k, v) in m.iter() {
            b.keys().append_value(k);
            b.values().append_value(*v);
        }
        b.append(true).map_err(arrow_error)?;
    }
    Ok(Arc::new(b.finish()))
}

fn strings<'a>(xs: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for x in xs {
        b.append_option(x);
    }
    Arc::new(b.finish())
}

fn u64s(xs: impl Iterator<Item = u64>) -> ArrayRef {
    let mut b = UInt64Builder::new();
    for x in xs {
        b.append_value(x);
    }
    Arc::new(b.finish())
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, a)| (n, a, true)))
        .map_err(arrow_error)
}

/// The by-country view as a record batch: `country`, `count`, `by_kind`
/// (map kind → count), `first`, `last`, `actors` (list of names, the
/// first [`crate::ACTORS_IN_ROW`]), `more_actors`.
pub fn country_batch(rows: &[CountryRow]) -> Result<RecordBatch> {
    let lengths = rows.iter().map(|r| r.actors.len()).collect();
    let mut names = StringBuilder::new();
    for a in rows.iter().flat_map(|r| &r.actors) {
        names.append_value(a);
    }
    batch(vec![
        (
            "country",
            strings(rows.iter().map(|r| Some(r.country.as_str()))),
        ),
        ("count", u64s(rows.iter().map(|r| r.count))),
        (
            "by_kind",
            counts(&rows.iter().map(|r| &r.by_kind).collect::<Vec<_>>())?,
        ),
        ("first", strings(rows.iter().map(|r| r.first.as_deref()))),
        ("last", strings(rows.iter().map(|r| r.last.as_deref()))),
        (
            "actors",
            list(utf8("item", true), Arc::new(names.finish()), lengths)?,
        ),
        (
            "more_actors",
            Arc::new(arrow_array::BooleanArray::from(
                rows.iter().map(|r| r.more_actors).collect::<Vec<_>>(),
            )),
        ),
    ])
}

/// The by-actor view as a record batch: `actor`, `count`, `by_kind`,
/// `by_role` (maps → count), `countries` (list), `first`, `last`.
pub fn actor_batch(rows: &[ActorRow]) -> Result<RecordBatch> {
    let lengths = rows.iter().map(|r| r.countries.len()).collect();
    let mut codes = StringBuilder::new();
    for c in rows.iter().flat_map(|r| &r.countries) {
        codes.append_value(c);
    }
    batch(vec![
        (
            "actor",
            strings(rows.iter().map(|r| Some(r.actor.as_str()))),
        ),
        ("count", u64s(rows.iter().map(|r| r.count))),
        (
            "by_kind",
            counts(&rows.iter().map(|r| &r.by_kind).collect::<Vec<_>>())?,
        ),
        (
            "by_role",
            counts(&rows.iter().map(|r| &r.by_role).collect::<Vec<_>>())?,
        ),
        (
            "countries",
            list(utf8("item", true), Arc::new(codes.finish()), lengths)?,
        ),
        ("first", strings(rows.iter().map(|r| r.first.as_deref()))),
        ("last", strings(rows.iter().map(|r| r.last.as_deref()))),
    ])
}

/// The by-date view as a record batch: `bucket`, `precision`, `count`,
/// `by_kind` and `by_country` (maps → count).
pub fn date_batch(rows: &[DateRow]) -> Result<RecordBatch> {
    batch(vec![
        (
            "bucket",
            strings(rows.iter().map(|r| Some(r.bucket.as_str()))),
        ),
        (
            "precision",
            strings(rows.iter().map(|r| Some(r.precision.name()))),
        ),
        ("count", u64s(rows.iter().map(|r| r.count))),
        (
            "by_kind",
            counts(&rows.iter().map(|r| &r.by_kind).collect::<Vec<_>>())?,
        ),
        (
            "by_country",
            counts(&rows.iter().map(|r| &r.by_country).collect::<Vec<_>>())?,
        ),
    ])
}

/// The by-place view as a record batch: `area`, `gid`, `lat`, `lon`,
/// `country`, `admin1`, `bucket`, `precision`, `count`, `by_kind`,
/// `by_precision` (maps → count), `fatalities_best`, `fatalities_low`,
/// `fatalities_high`, `fatalities_events`, `first`, `last`.
pub fn place_batch(rows: &[PlaceRow]) -> Result<RecordBatch> {
    let f64s = |f: &dyn Fn(&PlaceRow) -> Option<f64>| -> ArrayRef {
        let mut b = Float64Builder::new();
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let i64s = |f: &dyn Fn(&crate::projection::Fatalities) -> i64| -> ArrayRef {
        let mut b = arrow_array::builder::Int64Builder::new();
        for r in rows {
            b.append_option(r.fatalities.as_ref().map(f));
        }
        Arc::new(b.finish())
    };
    let mut gid = UInt64Builder::new();
    for r in rows {
        gid.append_option(r.gid.map(u64::from));
    }
    batch(vec![
        ("area", strings(rows.iter().map(|r| Some(r.area.as_str())))),
        ("gid", Arc::new(gid.finish())),
        ("lat", f64s(&|r| r.lat)),
        ("lon", f64s(&|r| r.lon)),
        (
            "country",
            strings(rows.iter().map(|r| r.country.as_deref())),
        ),
        ("admin1", strings(rows.iter().map(|r| r.admin1.as_deref()))),
        ("bucket", strings(rows.iter().map(|r| r.bucket.as_deref()))),
        (
            "precision",
            strings(rows.iter().map(|r| r.precision.map(|p| p.name()))),
        ),
        ("count", u64s(rows.iter().map(|r| r.count))),
        (
            "by_kind",
            counts(&rows.iter().map(|r| &r.by_kind).collect::<Vec<_>>())?,
        ),
        (
            "by_precision",
            counts(&rows.iter().map(|r| &r.by_precision).collect::<Vec<_>>())?,
        ),
        ("fatalities_best", i64s(&|f| f.best)),
        ("fatalities_low", i64s(&|f| f.low)),
        ("fatalities_high", i64s(&|f| f.high)),
        ("fatalities_events", i64s(&|f| f.events as i64)),
        ("first", strings(rows.iter().map(|r| r.first.as_deref()))),
        ("last", strings(rows.iter().map(|r| r.last.as_deref()))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Annals, Event, Granularity, Occurred};

    #[test]
    fn batches_have_one_row_per_record_and_view_row() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let db = Annals::open(dir.path().join("db"))?;
        db.append(vec![
            Event::new("sabotage", Occurred::parse("2025-11")?)
                .with_countries(["PL"])
                .with_actor("Russia", "alleged_perpetrator"),
            Event::new("airspace_violation", Occurred::parse("2025-09-10")?)
                .with_countries(["PL", "RO"]),
        ])?;
        let events = events_batch(&db.query(&crate::Query::new())?)?;
        assert_eq!(events.num_rows(), 2);
        assert_eq!(events.schema(), events_schema()?);
        let countries = country_batch(&db.by_country()?)?;
        assert_eq!(countries.num_rows(), 2);
        assert_eq!(countries.schema().field(2).name(), "by_kind");
        assert_eq!(actor_batch(&db.by_actor()?)?.num_rows(), 1);
        assert_eq!(date_batch(&db.by_date(Granularity::Month)?)?.num_rows(), 2);
        Ok(())
    }
}
