//! Exporting events for analytic tools: JSON Lines (annals' interchange
//! format, importable again), CSV and Parquet (for pandas, Polars, DuckDB).
//!
//! Every export is a query (any filters, as of any seq or time, on main or
//! a branch) written row by row; at main's head only the matching events
//! are read, one page at a time.

use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::columnar::{events_batch, events_schema, json_text, occurred_text, BATCH_ROWS};
use crate::error::{Error, Result};
use crate::json::event_to_value;
use crate::query::Query;
use crate::read::{EventChange, Reader};
use crate::record::Record;
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
    /// GeoParquet 1.1: the Parquet export plus a `geometry` column of WKB
    /// points (longitude, latitude; null without both), described by the
    /// file's `geo` metadata (CRS OGC:CRS84, WGS 84), for GeoPandas, QGIS
    /// and DuckDB's spatial extension.
    GeoParquet,
}

impl ExportFormat {
    /// Parses a format name: `jsonl`, `csv`, `parquet`, `geoparquet`.
    pub fn parse(name: &str) -> Result<ExportFormat> {
        Ok(match name {
            "jsonl" => ExportFormat::Jsonl,
            "csv" => ExportFormat::Csv,
            "parquet" => ExportFormat::Parquet,
            "geoparquet" => ExportFormat::GeoParquet,
            other => {
                return Err(Error::invalid(
                    "format",
                    format!("`{other}`; expected jsonl, csv, parquet or geoparquet"),
                ))
            }
        })
    }
}

/// The columns of CSV exports (Parquet has the same, with structure).
pub const CSV_COLUMNS: [&str; 22] = [
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
    "location_precision",
    "location_admin1",
    "actors",
    "summary",
    "sources",
    "confidence",
    "tags",
    "attrs",
];

/// Writes the current events matching `query`, read by `reader`, to `out`
/// in `format`, ordered by occurrence start then seq. Returns the number
/// of events written. A failed export writes an incomplete file and
/// changes nothing in the database.
pub(crate) fn export(
    reader: &Reader<'_>,
    query: &Query,
    format: ExportFormat,
    out: impl Write + Send,
) -> Result<u64> {
    let mut sink: Box<dyn Sink + '_> = match format {
        ExportFormat::Jsonl => Box::new(Jsonl(std::io::BufWriter::new(out))),
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_COLUMNS).map_err(export_error)?;
            Box::new(Csv(w))
        }
        ExportFormat::Parquet => Box::new(Parquet {
            w: parquet_writer(out, events_schema()?)?,
            page: Vec::new(),
        }),
        ExportFormat::GeoParquet => Box::new(GeoParquet {
            w: Geo::new(out, events_schema()?)?,
            page: Vec::new(),
        }),
    };
    let mut n = 0u64;
    reader.for_each_record(query, &mut |r| {
        n += 1;
        sink.put(r)
    })?;
    sink.finish()?;
    Ok(n)
}

/// A Parquet writer (Snappy) of record batches with `schema`.
fn parquet_writer<W: Write + Send>(
    out: W,
    schema: arrow_schema::SchemaRef,
) -> Result<ArrowWriter<W>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    ArrowWriter::try_new(out, schema, Some(props)).map_err(export_error)
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

struct Csv<W: Write>(csv::Writer<W>);

impl<W: Write> Sink for Csv<W> {
    fn put(&mut self, r: Record) -> Result<()> {
        self.0.write_record(csv_row(&r)).map_err(export_error)
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        self.0.flush().map_err(export_error)
    }
}

/// One event's CSV cells, in [`CSV_COLUMNS`] order.
fn csv_row(r: &Record) -> [String; 22] {
    let e = &r.event;
    let v = event_to_value(e, None);
    let loc = e.location.as_ref();
    let opt = |x: Option<String>| x.unwrap_or_default();
    [
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
        opt(loc.and_then(|l| l.precision).map(|p| p.to_string())),
        opt(loc.and_then(|l| l.admin1.clone())),
        json_text(v.get("actors")),
        opt(e.summary.clone()),
        json_text(v.get("sources")),
        opt(e.confidence.map(|c| c.to_string())),
        json_text(v.get("tags")),
        json_text(v.get("attrs")),
    ]
}

struct Parquet<W: Write + Send> {
    w: ArrowWriter<W>,
    page: Vec<Record>,
}

impl<W: Write + Send> Sink for Parquet<W> {
    fn put(&mut self, r: Record) -> Result<()> {
        self.page.push(r);
        if self.page.len() >= BATCH_ROWS {
            let batch = events_batch(&self.page)?;
            self.w.write(&batch).map_err(export_error)?;
            self.page.clear();
        }
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        if !self.page.is_empty() {
            let batch = events_batch(&self.page)?;
            self.w.write(&batch).map_err(export_error)?;
        }
        self.w.close().map_err(export_error)?;
        Ok(())
    }
}

struct GeoParquet<W: Write + Send> {
    w: Geo<W>,
    page: Vec<Record>,
}

impl<W: Write + Send> Sink for GeoParquet<W> {
    fn put(&mut self, r: Record) -> Result<()> {
        self.page.push(r);
        if self.page.len() >= BATCH_ROWS {
            let refs: Vec<&Record> = self.page.iter().collect();
            self.w.write(events_batch(&self.page)?, &refs)?;
            self.page.clear();
        }
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> Result<()> {
        if !self.page.is_empty() {
            let refs: Vec<&Record> = self.page.iter().collect();
            self.w.write(events_batch(&self.page)?, &refs)?;
        }
        self.w.close()
    }
}

/// A GeoParquet writer: batches gain a `geometry` column of WKB points,
/// and the file the `geo` metadata with the points' bounding box.
struct Geo<W: Write + Send> {
    w: ArrowWriter<W>,
    schema: arrow_schema::SchemaRef,
    /// West, south, east, north of the points written.
    bbox: Option<[f64; 4]>,
}

/// The WKB of a point: little-endian, type 1, x (longitude), y (latitude).
fn wkb_point(lon: f64, lat: f64) -> [u8; 21] {
    let mut b = [0u8; 21];
    b[0] = 1;
    b[1..5].copy_from_slice(&1u32.to_le_bytes());
    b[5..13].copy_from_slice(&lon.to_le_bytes());
    b[13..21].copy_from_slice(&lat.to_le_bytes());
    b
}

impl<W: Write + Send> Geo<W> {
    fn new(out: W, schema: arrow_schema::SchemaRef) -> Result<Geo<W>> {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("geometry", DataType::Binary, true));
        let schema = Arc::new(Schema::new(fields));
        Ok(Geo {
            w: parquet_writer(out, Arc::clone(&schema))?,
            schema,
            bbox: None,
        })
    }

    fn write(&mut self, batch: RecordBatch, rows: &[&Record]) -> Result<()> {
        let mut geometry = arrow_array::builder::BinaryBuilder::new();
        for r in rows {
            match r.event.location.as_ref().map(|l| (l.lon, l.lat)) {
                Some((Some(lon), Some(lat))) => {
                    geometry.append_value(wkb_point(lon, lat));
                    let b = self.bbox.get_or_insert([lon, lat, lon, lat]);
                    *b = [b[0].min(lon), b[1].min(lat), b[2].max(lon), b[3].max(lat)];
                }
                _ => geometry.append_null(),
            }
        }
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(geometry.finish()));
        let batch =
            RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(export_error)?;
        self.w.write(&batch).map_err(export_error)
    }

    fn close(mut self) -> Result<()> {
        let mut column = serde_json::json!({
            "encoding": "WKB",
            "geometry_types": ["Point"],
        });
        // No `crs` key: GeoParquet's default, OGC:CRS84 (WGS 84, longitude
        // then latitude), which is what annals stores.
        if let (Some(b), serde_json::Value::Object(m)) = (self.bbox, &mut column) {
            m.insert("bbox".into(), serde_json::json!(b));
        }
        let geo = serde_json::json!({
            "version": "1.1.0",
            "primary_column": "geometry",
            "columns": {"geometry": column},
        });
        self.w
            .append_key_value_metadata(parquet::file::metadata::KeyValue::new(
                "geo".to_string(),
                geo.to_string(),
            ));
        self.w.close().map_err(export_error)?;
        Ok(())
    }
}

/// The columns a changes export puts before the event's (CSV and Parquet).
pub const CHANGE_COLUMNS: [&str; 3] = ["change", "change_seq", "side"];

/// Writes the changes between seq `since` and the reader's seq (see
/// [`crate::Reader::changes_since`]) to `out`. JSON Lines: one change
/// per line as [`crate::EventChange::to_json`]. CSV and Parquet: one
/// row per version, `side` `before` or `after` (a created event has an
/// after row, a retracted one a before row, a corrected one both),
/// with [`CHANGE_COLUMNS`] then the event export's columns. Returns
/// the number of changes written.
pub(crate) fn export_changes(
    reader: &Reader<'_>,
    since: u64,
    query: &Query,
    format: ExportFormat,
    out: impl Write + Send,
) -> Result<u64> {
    let changes = reader.changes_since(since, query)?;
    match format {
        ExportFormat::Jsonl => {
            let mut w = std::io::BufWriter::new(out);
            for c in &changes {
                writeln!(w, "{}", c.to_json()).map_err(export_error)?;
            }
            w.flush().map_err(export_error)?;
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            let header = CHANGE_COLUMNS.iter().chain(CSV_COLUMNS.iter());
            w.write_record(header).map_err(export_error)?;
            for (kind, seq, side, r) in changes.iter().flat_map(sides) {
                let lead = [kind.to_string(), seq.to_string(), side.to_string()];
                w.write_record(lead.iter().chain(csv_row(r).iter()))
                    .map_err(export_error)?;
            }
            w.flush().map_err(export_error)?;
        }
        ExportFormat::Parquet => {
            let rows: Vec<_> = changes.iter().flat_map(sides).collect();
            let mut w = parquet_writer(out, change_batch(&[])?.schema())?;
            for chunk in rows.chunks(BATCH_ROWS) {
                w.write(&change_batch(chunk)?).map_err(export_error)?;
            }
            w.close().map_err(export_error)?;
        }
        ExportFormat::GeoParquet => {
            let rows: Vec<_> = changes.iter().flat_map(sides).collect();
            let mut w = Geo::new(out, change_batch(&[])?.schema())?;
            for chunk in rows.chunks(BATCH_ROWS) {
                let records: Vec<&Record> = chunk.iter().map(|r| r.3).collect();
                w.write(change_batch(chunk)?, &records)?;
            }
            w.close()?;
        }
    }
    Ok(changes.len() as u64)
}

/// The rows of one change: (kind, seq, side, version), before then after.
fn sides(c: &EventChange) -> impl Iterator<Item = (&'static str, u64, &'static str, &Record)> {
    let kind = c.kind.name();
    [("before", &c.before), ("after", &c.after)]
        .into_iter()
        .filter_map(move |(side, r)| r.as_ref().map(|r| (kind, c.seq, side, r)))
}

/// Change rows as a record batch: [`CHANGE_COLUMNS`], then the events'.
fn change_batch(rows: &[(&str, u64, &str, &Record)]) -> Result<RecordBatch> {
    let records: Vec<Record> = rows.iter().map(|(_, _, _, r)| (*r).clone()).collect();
    let events = events_batch(&records)?;
    let mut fields: Vec<Field> = vec![
        Field::new("change", DataType::Utf8, false),
        Field::new("change_seq", DataType::UInt64, false),
        Field::new("side", DataType::Utf8, false),
    ];
    fields.extend(events.schema().fields().iter().map(|f| f.as_ref().clone()));
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
    ];
    columns.extend(events.columns().iter().cloned());
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(export_error)
}
