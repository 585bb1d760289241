//! Exporting events for analytic tools: JSON Lines (annals' interchange
//! format, importable again), CSV and Parquet (for pandas, Polars, DuckDB).
//!
//! Every export is a query (any filters, as of any seq or time, on main or
//! a branch) written row by row; at main's head only the matching events
//! are read, one page at a time.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value;

use crate::db::{Annals, Record};
use crate::error::{Error, Result};
use crate::json::event_to_value;
use crate::query::Query;
use crate::read::At;
use crate::time::format_micros;

/// The formats [`Annals::export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One event per line in the interchange format, with `seq`,
    /// `recorded_at` and `corrected_seq`: `import --format jsonl` reads it.
    Jsonl,
    /// One row per event, lists and objects as JSON text; see
    /// `docs/import.md` for the columns.
    Csv,
    /// Parquet (Snappy): actors and sources as lists of structs, countries
    /// and tags as lists of strings, occurred as start, end and precision,
    /// attrs as JSON text.
    Parquet,
}

impl ExportFormat {
    /// Parses a format name: `jsonl`, `csv`, `parquet`.
    pub fn parse(name: &str) -> Result<ExportFormat> {
        Ok(match name {
            "jsonl" => ExportFormat::Jsonl,
            "csv" => ExportFormat::Csv,
            "parquet" => ExportFormat::Parquet,
            other => {
                return Err(Error::invalid(
                    "format",
                    format!("`{other}`; expected jsonl, csv or parquet"),
                ))
            }
        })
    }
}

/// The columns of CSV exports (Parquet has the same, with structure).
pub const CSV_COLUMNS: [&str; 20] = [
    "id",
    "seq",
    "recorded_at",
    "corrected_seq",
    "kind",
    "occurred",
    "occurred_start",
    "occurred_end",
    "occurred_precision",
    "countries",
    "location_name",
    "location_country",
    "location_lat",
    "location_lon",
    "actors",
    "summary",
    "sources",
    "confidence",
    "tags",
    "attrs",
];

/// Events per Parquet record batch.
const PAGE: usize = 8192;

impl Annals {
    /// Writes the current events matching `query`, read at `at`, to `out`
    /// in `format`, ordered by occurrence start then seq. Returns the number
    /// of events written. A failed export writes an incomplete file and
    /// changes nothing in the database.
    pub fn export(
        &self,
        at: &At,
        query: &Query,
        format: ExportFormat,
        out: impl Write + Send,
    ) -> Result<u64> {
        let reader = self.reader(at)?;
        let mut sink: Box<dyn Sink + '_> = match format {
            ExportFormat::Jsonl => Box::new(Jsonl(std::io::BufWriter::new(out))),
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(CSV_COLUMNS).map_err(export_error)?;
                Box::new(Csv(w))
            }
            ExportFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                let schema = parquet_batch(&[])?.schema();
                let w = ArrowWriter::try_new(out, schema, Some(props)).map_err(export_error)?;
                Box::new(Parquet {
                    w,
                    page: Vec::new(),
                })
            }
        };
        let mut n = 0u64;
        reader.for_each_record(query, &mut |r| {
            n += 1;
            sink.put(r)
        })?;
        sink.finish()?;
        Ok(n)
    }
}

fn export_error(e: impl std::fmt::Display) -> Error {
    Error::Export(e.to_string())
}

trait Sink {
    fn put(&mut self, r: Record) -> Result<()>;
    fn finish(self: Box<Self>) -> Result<()>;
}

struct Jsonl<W: Write>(std::io::BufWriter<W>);

impl<W: Write> Sink for Jsonl<W> {
    fn put(&mut self, r: Record) -> Result<()> {
        let line = crate::json::event_to_line(&r.event, Some(r.position));
        writeln!(self.0, "{line}").map_err(export_error)
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.0.flush().map_err(export_error)
    }
}

/// The text form of `occurred`: as in JSON, an interval as `from/to`.
fn occurred_text(v: &Value) -> String {
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

fn json_text(v: Option<&Value>) -> String {
    v.map(Value::to_string).unwrap_or_default()
}

struct Csv<W: Write>(csv::Writer<W>);

impl<W: Write> Sink for Csv<W> {
    fn put(&mut self, r: Record) -> Result<()> {
        let e = &r.event;
        let v = event_to_value(e, None);
        let loc = e.location.as_ref();
        let opt = |x: Option<String>| x.unwrap_or_default();
        let row: [String; 20] = [
            e.id.to_string(),
            r.position.seq.to_string(),
            format_micros(r.position.recorded_at),
            opt(r.position.corrected_seq.map(|s| s.to_string())),
            e.kind.clone(),
            occurred_text(&v),
            format_micros(e.occurred.start()),
            format_micros(e.occurred.end()),
            e.occurred.precision().name().to_string(),
            e.countries.join(";"),
            opt(loc.and_then(|l| l.name.clone())),
            opt(loc.and_then(|l| l.country.clone())),
            opt(loc.and_then(|l| l.lat).map(|x| x.to_string())),
            opt(loc.and_then(|l| l.lon).map(|x| x.to_string())),
            json_text(v.get("actors")),
            opt(e.summary.clone()),
            json_text(v.get("sources")),
            opt(e.confidence.map(|c| c.to_string())),
            json_text(v.get("tags")),
            json_text(v.get("attrs")),
        ];
        self.0.write_record(&row).map_err(export_error)
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.0.flush().map_err(export_error)
    }
}

struct Parquet<W: Write + Send> {
    w: ArrowWriter<W>,
    page: Vec<Record>,
}

impl<W: Write + Send> Sink for Parquet<W> {
    fn put(&mut self, r: Record) -> Result<()> {
        self.page.push(r);
        if self.page.len() >= PAGE {
            let batch = parquet_batch(&self.page)?;
            self.w.write(&batch).map_err(export_error)?;
            self.page.clear();
        }
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        if !self.page.is_empty() {
            let batch = parquet_batch(&self.page)?;
            self.w.write(&batch).map_err(export_error)?;
        }
        self.w.close().map_err(export_error)?;
        Ok(())
    }
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
        .map_err(export_error)?,
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

/// One Parquet record batch of events.
fn parquet_batch(rows: &[Record]) -> Result<RecordBatch> {
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
        ]),
        vec![
            Arc::new(loc_name.finish()),
            Arc::new(loc_country.finish()),
            Arc::new(lat.finish()),
            Arc::new(lon.finish()),
        ],
        Some(NullBuffer::from(loc_valid)),
    )
    .map_err(export_error)?;
    let actor_fields = Fields::from(vec![utf8("name", false), utf8("role", false)]);
    let actors = StructArray::try_new(
        actor_fields.clone(),
        vec![Arc::new(actor_name.finish()), Arc::new(actor_role.finish())],
        None,
    )
    .map_err(export_error)?;
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
    .map_err(export_error)?;
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
        .map_err(export_error)
}
