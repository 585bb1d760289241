//! What a parser hands the import: one row at a time, each an upsert or
//! a deletion, and the helpers every parser shares.

use std::io::{BufRead, Read};

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::json::MAX_LINE_BYTES;
use crate::model::Event;
use crate::time::{day_point, Occurred};

/// What one row asks for.
#[allow(clippy::large_enum_variant)] // almost every row is an upsert
pub(crate) enum Item {
    /// Append, correct or leave alone. `stamp` orders versions of one row
    /// (ACLED's `timestamp`): an older one never replaces a newer one.
    Upsert { event: Event, stamp: Option<i64> },
    /// Retract the event, if known and not retracted yet.
    Delete { id: Uuid, reason: String },
}

/// One row of a file: where it is, what it means, and (for a bad row
/// only, for the rejects file) its raw fields.
pub(crate) struct Row {
    pub(crate) line: u64,
    pub(crate) fields: Vec<String>,
    pub(crate) item: Result<Item>,
    /// For a bad row of a full release: the id of the event it names,
    /// when its id column could be read. Such an event is in the release
    /// and must not be retracted as missing from it.
    pub(crate) id: Option<Uuid>,
}

/// A parser: rows one at a time; an error is fatal (I/O), a bad row is a
/// row whose `item` is an error.
pub(crate) trait Rows: Send {
    fn next_row(&mut self) -> Result<Option<Row>>;
}

/// The days `first` to `last` as `occurred`: one day, a whole month or
/// year as that unit, otherwise the interval of days.
pub(crate) fn day_range(
    field: &str,
    first: chrono::NaiveDate,
    last: chrono::NaiveDate,
) -> Result<Occurred> {
    let (a, b) = (
        day_point(first).map_err(|e| e.for_field(field))?,
        day_point(last).map_err(|e| e.for_field(field))?,
    );
    for p in [crate::time::Precision::Year, crate::time::Precision::Month] {
        let unit = a.truncate(p);
        if unit.start == a.start && unit.end() == b.end() {
            return Ok(Occurred::point(unit));
        }
    }
    Occurred::range(a, b).map_err(|e| e.for_field(field))
}

/// A finite number from an optional cell; the error names the column.
pub(crate) fn number(column: &str, cell: Option<&str>) -> Result<Option<f64>> {
    cell.map(|v| {
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| Error::invalid(column, format!("`{v}` is not a number")))
    })
    .transpose()
}

/// Reads one line (without its `\n` or `\r\n`), counting lines. Lines
/// longer than [`MAX_LINE_BYTES`] are cut there so that memory stays
/// bounded; the parser then rejects them.
pub(crate) fn read_line(r: &mut dyn BufRead, line: &mut u64) -> Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let n = Read::take(&mut *r, MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', &mut buf)
        .map_err(|e| Error::io("input", e))?;
    if n == 0 {
        return Ok(None);
    }
    *line += 1;
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > MAX_LINE_BYTES {
        // Skip the rest of the over-long line.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let k = Read::take(&mut *r, 64 * 1024)
                .read_until(b'\n', &mut rest)
                .map_err(|e| Error::io("input", e))?;
            if k == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(buf))
}
