//! Exporting events for analytic tools: JSON Lines (annals' interchange
//! format, importable again), CSV and Parquet (for pandas, Polars, DuckDB).
//!
//! Every export is a query (any filters, as of any seq or time, on main or
//! a branch) written row by row; at main's head only the matching events
//! are read, one page at a time.

use std::io::Write;

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::columnar::{events_batch, events_schema, json_text, occurred_text, BATCH_ROWS};
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
                let schema = events_schema()?;
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
