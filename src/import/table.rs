//! Files with a header row (ACLED and UCDP GED CSV, POLECAT TSV): fields
//! by column name, so that a release that adds, drops or reorders columns
//! still reads, and the columns an importer does not map are kept.

use std::collections::HashMap;
use std::io::{BufRead, Read};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::gdelt::next_csv_row;
use super::input::CrlfToLf;
use super::row::{Item, Row};
use crate::error::{Error, Result};

/// The header: names in order (trimmed, lowercase, spaces as `_`, so
/// POLECAT's `Event Date` is `event_date`) and their positions.
pub(crate) struct Columns {
    pub(crate) names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Columns {
    pub(crate) fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

/// One row's fields, by column name.
pub(crate) struct Fields<'a> {
    pub(crate) cols: &'a Columns,
    pub(crate) fields: &'a [&'a str],
}

impl Fields<'_> {
    /// The trimmed cell (empty if the column or the cell is missing).
    pub(crate) fn get(&self, name: &str) -> &str {
        self.cols
            .index
            .get(name)
            .and_then(|&i| self.fields.get(i))
            .map_or("", |v| v.trim())
    }

    /// The cell, unless empty.
    pub(crate) fn opt(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.is_empty())
    }

    /// The cell as a finite number; the error names the column.
    pub(crate) fn float(&self, name: &str) -> Result<Option<f64>> {
        super::row::number(name, self.opt(name))
    }

    /// Puts every non-empty cell of a column not in `mapped` into `attrs`
    /// under the column's name (those in `integers` as JSON integers when
    /// they hold one), unless `attrs` has that key already.
    pub(crate) fn rest_into(
        &self,
        mapped: &[&str],
        integers: &[&str],
        attrs: &mut Map<String, Value>,
    ) {
        for (i, name) in self.cols.names.iter().enumerate() {
            let v = self.fields.get(i).map_or("", |v| v.trim());
            if v.is_empty() || mapped.contains(&name.as_str()) || attrs.contains_key(name) {
                continue;
            }
            let value = match v.parse::<i64>() {
                Ok(n) if integers.contains(&name.as_str()) => Value::from(n),
                _ => Value::from(v),
            };
            attrs.insert(name.clone(), value);
        }
    }
}

/// A delimited file with a header, read row by row.
pub(crate) struct Table<'r> {
    csv: csv::Reader<Box<dyn Read + Send + 'r>>,
    record: csv::ByteRecord,
    pub(crate) cols: Columns,
    /// A full release's id column and how it maps to an event id: a bad
    /// row still names its event (see [`Row::id`]).
    pub(crate) id_column: Option<IdColumn>,
}

/// A column's name and the function from its cell to an event id.
pub(crate) type IdColumn = (&'static str, fn(&str) -> Uuid);

/// Reads the header of a `delimiter`-separated file and checks that the
/// `required` columns are there (`what` names the format in the error).
pub(crate) fn open<'r>(
    r: &'r mut (dyn BufRead + Send),
    delimiter: u8,
    required: &[&str],
    what: &str,
) -> Result<Table<'r>> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(delimiter)
        // POLECAT's TSV does not quote; a stray `"` is text there.
        .quoting(delimiter != b'\t')
        .from_reader(Box::new(CrlfToLf::new(r)) as Box<dyn Read + Send + 'r>);
    let names: Vec<String> = csv
        .headers()
        .map_err(|e| Error::invalid("-", format!("unreadable header: {e}")))?
        .iter()
        .map(|n| {
            n.trim()
                .trim_start_matches('\u{feff}')
                .to_ascii_lowercase()
                .replace(' ', "_")
        })
        .collect();
    let index: HashMap<String, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    for col in required {
        if !index.contains_key(*col) {
            return Err(Error::invalid(
                *col,
                format!("missing from the header; this is not {what}"),
            ));
        }
    }
    Ok(Table {
        csv,
        record: csv::ByteRecord::new(),
        cols: Columns { names, index },
        id_column: None,
    })
}

impl Table<'_> {
    /// The next row, parsed by `parse` from its fields by name.
    pub(crate) fn next_row(
        &mut self,
        parse: impl FnOnce(&Fields) -> Result<Item>,
    ) -> Result<Option<Row>> {
        let cols = &self.cols;
        let mut row = next_csv_row(&mut self.csv, &mut self.record, |fields| {
            parse(&Fields { cols, fields })
        })?;
        if let (Some(row), Some((column, id_of))) = (&mut row, self.id_column) {
            if row.item.is_err() {
                row.id = cols
                    .index
                    .get(column)
                    .and_then(|&i| row.fields.get(i))
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
                    .map(id_of);
            }
        }
        Ok(row)
    }
}
