//! The by-date view: per bucket of occurrence time, counts by kind and by
//! country, at day, month and year granularity.
//!
//! An event coarser than the granularity is not smeared across finer
//! buckets: it goes to the bucket of its own precision (a month-precision
//! event appears under `2025-09`, marked `month`, in the by-day view).

use std::collections::BTreeMap;

use serde::Serialize;

use super::cells::{field, Dec, Layered, Part};
use crate::error::Result;
use crate::time::{Granularity, Precision, TimePoint};

/// One row of the by-date view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DateRow {
    /// The bucket: `2025`, `2025-09` or `2025-09-10`.
    pub bucket: String,
    /// The bucket's precision: the granularity asked for, or coarser for
    /// events known only coarsely (`span` for intervals across years,
    /// filed under the year they start in).
    #[serde(serialize_with = "precision_name")]
    pub precision: Precision,
    /// Current events in the bucket.
    pub count: u64,
    /// Those events counted by kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Those events counted by country (an event counts once per country).
    pub by_country: BTreeMap<String, u64>,
}

fn precision_name<S: serde::Serializer>(p: &Precision, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// The slot of a granularity in the cells' keys.
pub(crate) fn slot(g: Granularity) -> u8 {
    match g {
        Granularity::Day => 0,
        Granularity::Month => 1,
        Granularity::Year => 2,
    }
}

/// Rows of the by-date view at a granularity, by bucket: one pass over
/// that granularity's cells.
pub(crate) fn date_rows(v: &Layered, g: Granularity) -> Result<Vec<DateRow>> {
    let lo = vec![Part::Date.byte(), b'0' + slot(g)];
    let hi = vec![Part::Date.byte(), b'0' + slot(g) + 1];
    let mut rows: Vec<DateRow> = Vec::new();
    let mut current: Option<i64> = None;
    for c in v.scan(&lo, Some(&hi)) {
        let (k, n) = c?;
        if n <= 0 {
            continue;
        }
        let mut d = Dec::new(k.get(2..).unwrap_or_default());
        let Some(b) = d.i64(false) else { continue };
        if current != Some(b) {
            let code = u8::try_from(b.rem_euclid(8)).ok();
            let Some(precision) = code.and_then(Precision::from_code) else {
                continue;
            };
            let start = b.div_euclid(8);
            current = Some(b);
            rows.push(DateRow {
                bucket: TimePoint::at(start, precision.min(Precision::Year)).to_string(),
                precision,
                count: 0,
                by_kind: BTreeMap::new(),
                by_country: BTreeMap::new(),
            });
        }
        let Some(row) = rows.last_mut() else { continue };
        match d.byte() {
            Some(field::COUNT) => row.count = n as u64,
            Some(field::KIND) => {
                row.by_kind.insert(d.str().unwrap_or_default(), n as u64);
            }
            Some(field::D_COUNTRY) => {
                row.by_country.insert(d.str().unwrap_or_default(), n as u64);
            }
            _ => {}
        }
    }
    Ok(rows)
}
