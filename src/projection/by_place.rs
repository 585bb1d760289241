//! The by-place view: per PRIO-GRID cell (0.5 degrees, as UCDP and ViEWS
//! use), or per ADMIN1 unit where the source names one, the events placed
//! there: all time, counts by kind and by place precision, fatalities
//! where the source reports them, first and last year of occurrence; per
//! month or year of occurrence, counts and fatalities.
//!
//! An event counts in the cell of its point whatever its precision (a
//! country-level event in the cell of the country's centroid), and
//! `by_precision` says how many of a row's events are placed that
//! coarsely, so that a map can draw them as the fuzzy places they are.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cells::{place, point_at, Dec, Layered, Part};
use crate::error::{Error, Result};
use crate::model::PlacePrecision;
use crate::time::{Granularity, Precision, TimePoint};

/// Which areas the by-place view counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum PlaceLevel {
    /// PRIO-GRID cells of 0.5 by 0.5 degrees.
    #[default]
    Cell,
    /// First-level administrative units, as sources name them
    /// (`location.admin1`).
    Admin1,
}

impl PlaceLevel {
    /// `cell` or `admin1`.
    pub fn parse(s: &str) -> Result<PlaceLevel> {
        match s {
            "cell" => Ok(PlaceLevel::Cell),
            "admin1" => Ok(PlaceLevel::Admin1),
            other => Err(Error::invalid(
                "level",
                format!("`{other}`: expected cell or admin1"),
            )),
        }
    }

    /// The name [`PlaceLevel::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            PlaceLevel::Cell => "cell",
            PlaceLevel::Admin1 => "admin1",
        }
    }
}

/// The by-place view's buckets by name: `all` (all time: `None`),
/// `month` or `year`.
pub fn place_granularity(name: &str) -> Result<Option<Granularity>> {
    match name {
        "all" => Ok(None),
        "month" => Ok(Some(Granularity::Month)),
        "year" => Ok(Some(Granularity::Year)),
        other => Err(Error::invalid(
            "granularity",
            format!("`{other}`: the by-place view counts by all, month or year"),
        )),
    }
}

/// Fatalities summed over a row's events that report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fatalities {
    /// The best estimate (ACLED's `fatalities`, UCDP's `best`).
    pub best: i64,
    /// The low estimate (UCDP's `low`; the best where none is given).
    pub low: i64,
    /// The high estimate (UCDP's `high`; the best where none is given).
    pub high: i64,
    /// How many of the row's events report fatalities.
    pub events: u64,
}

/// One row of the by-place view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlaceRow {
    /// `G123456` for a PRIO-GRID cell, `UA/Kharkiv` for an ADMIN1 unit:
    /// the row's area, unique in the view.
    pub area: String,
    /// The PRIO-GRID cell's id (cell rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// The cell's centre, latitude (cell rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    /// The cell's centre, longitude (cell rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    /// The unit's country (ADMIN1 rows; empty when the event named none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The unit as the source names it (ADMIN1 rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin1: Option<String>,
    /// The bucket of occurrence time (`2025-09`, `2025`), or none for
    /// all time.
    pub bucket: Option<String>,
    /// The bucket's precision: the granularity asked for, or coarser for
    /// events known only coarsely (as in the by-date view).
    #[serde(serialize_with = "precision_name")]
    pub precision: Option<Precision>,
    /// Current events placed in the area (and bucket).
    pub count: u64,
    /// Those events counted by kind (all-time rows: per month, a cell
    /// per area, month and kind would cost more than the rest of the view).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_kind: BTreeMap<String, u64>,
    /// Those events counted by place precision (`exact`, `near`,
    /// `admin2`, `admin1`, `country`, or `unspecified`); all-time rows.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub by_precision: BTreeMap<String, u64>,
    /// Fatalities, where the events report them.
    pub fatalities: Option<Fatalities>,
    /// Earliest occurrence, to the year (all-time rows; the month rows
    /// give the months).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    /// Latest occurrence, to the year (all-time rows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<String>,
}

fn precision_name<S: serde::Serializer>(
    p: &Option<Precision>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(p.name()),
        None => s.serialize_none(),
    }
}

fn precision_label(code: u8) -> String {
    PlacePrecision::from_code(code).map_or("unspecified".to_string(), |p| p.as_str().to_string())
}

/// Rows of the by-place view at a level, all time (`None`) or by month
/// or year (`Day` is refused: months are the finest buckets kept).
pub(crate) fn place_rows(
    v: &Layered,
    level: PlaceLevel,
    granularity: Option<Granularity>,
) -> Result<Vec<PlaceRow>> {
    if granularity == Some(Granularity::Day) {
        return Err(Error::invalid(
            "granularity",
            "the by-place view counts by month or year (or all time)",
        ));
    }
    let time = if granularity.is_some() {
        place::MONTHS
    } else {
        place::ALL_TIME
    };
    let area = match level {
        PlaceLevel::Cell => place::CELL,
        PlaceLevel::Admin1 => place::ADMIN1,
    };
    let lo = vec![Part::Place.byte(), time, area];
    let hi = vec![Part::Place.byte(), time, area + 1];
    let mut rows: Vec<PlaceRow> = Vec::new();
    // The current row's key up to its fields, and its fatality slots.
    let mut current: Vec<u8> = Vec::new();
    let mut fat = [0i64; 4];
    let finish = |rows: &mut Vec<PlaceRow>, fat: &mut [i64; 4]| {
        if let Some(row) = rows.last_mut() {
            if fat[3] > 0 {
                row.fatalities = Some(Fatalities {
                    best: fat[0],
                    low: fat[0] - fat[1],
                    high: fat[0] + fat[2],
                    events: fat[3] as u64,
                });
            }
        }
        *fat = [0; 4];
    };
    for c in v.scan(&lo, Some(&hi)) {
        let (k, n) = c?;
        let mut d = Dec::new(k.get(3..).unwrap_or_default());
        let (gid, names) = match level {
            PlaceLevel::Cell => (d.i64(false), None),
            PlaceLevel::Admin1 => (None, d.str().zip(d.str())),
        };
        let bucket = if granularity.is_some() {
            d.i64(false)
        } else {
            None
        };
        let row_key = k.get(..3 + d.pos()).unwrap_or_default();
        let field_at = 3 + d.pos();
        if row_key != current.as_slice() {
            // A row starts with its count; a zero count (cells not yet
            // merged away) means no current event: no row.
            if d.byte() != Some(place::COUNT) || n <= 0 {
                continue;
            }
            finish(&mut rows, &mut fat);
            current = row_key.to_vec();
            // Packed as the by-date view packs its buckets.
            let decoded = bucket.and_then(|b| {
                let p = Precision::from_code(u8::try_from(b.rem_euclid(8)).ok()?)?;
                Some((TimePoint::at(b.div_euclid(8), p.min(Precision::Year)), p))
            });
            if bucket.is_some() && decoded.is_none() {
                continue;
            }
            let (bucket, precision) = (decoded.map(|d| d.0), decoded.map(|d| d.1));
            let centre = gid.map(|g| crate::place::prio_grid_centre(g as u32));
            rows.push(PlaceRow {
                area: match (&gid, &names) {
                    (Some(g), _) => format!("G{g}"),
                    (_, Some((cc, name))) => format!("{cc}/{name}"),
                    _ => String::new(),
                },
                gid: gid.map(|g| g as u32),
                lat: centre.map(|c| c.0),
                lon: centre.map(|c| c.1),
                country: names.as_ref().map(|n| n.0.clone()),
                admin1: names.map(|n| n.1),
                bucket: bucket.map(|b| b.to_string()),
                precision,
                count: n as u64,
                by_kind: BTreeMap::new(),
                by_precision: BTreeMap::new(),
                fatalities: None,
                first: None,
                last: None,
            });
            continue;
        }
        let Some(row) = rows.last_mut() else { continue };
        match d.byte() {
            Some(place::KIND) if n > 0 => {
                row.by_kind.insert(d.str().unwrap_or_default(), n as u64);
            }
            Some(place::PRECISION) if n > 0 => {
                let code = d.byte().unwrap_or(0);
                row.by_precision.insert(precision_label(code), n as u64);
            }
            Some(place::FIRST) if n > 0 && row.first.is_none() => {
                row.first = point_at(&k, field_at + 1, false);
            }
            Some(place::LAST) if n > 0 && row.last.is_none() => {
                row.last = point_at(&k, field_at + 1, true);
            }
            Some(place::FATALITIES) => {
                if let Some(slot) = d.byte().and_then(|s| fat.get_mut(usize::from(s))) {
                    *slot = n;
                }
            }
            _ => {}
        }
    }
    finish(&mut rows, &mut fat);
    if granularity == Some(Granularity::Year) {
        rows = by_year(rows);
    }
    Ok(rows)
}

/// Month rows summed into year rows (coarser buckets stay as they are),
/// in the order the rows came (by area, then bucket).
fn by_year(rows: Vec<PlaceRow>) -> Vec<PlaceRow> {
    let mut out: Vec<PlaceRow> = Vec::new();
    let mut at: std::collections::HashMap<(String, Option<String>, Option<Precision>), usize> =
        std::collections::HashMap::new();
    for mut r in rows {
        if r.precision == Some(Precision::Month) {
            let year = r
                .bucket
                .as_deref()
                .and_then(|b| TimePoint::parse(b.get(..4)?).ok());
            r.bucket = year.map(|y| y.to_string());
            r.precision = Some(Precision::Year);
        }
        let key = (r.area.clone(), r.bucket.clone(), r.precision);
        let Some(&i) = at.get(&key) else {
            at.insert(key, out.len());
            out.push(r);
            continue;
        };
        let Some(row) = out.get_mut(i) else { continue };
        row.count += r.count;
        for (k, n) in r.by_kind {
            *row.by_kind.entry(k).or_default() += n;
        }
        row.fatalities = match (row.fatalities, r.fatalities) {
            (Some(a), Some(b)) => Some(Fatalities {
                best: a.best + b.best,
                low: a.low + b.low,
                high: a.high + b.high,
                events: a.events + b.events,
            }),
            (a, b) => a.or(b),
        };
    }
    // By area (in the order they came), then bucket as the month rows
    // are ordered: by start, then precision.
    let mut areas: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for r in &out {
        let n = areas.len();
        areas.entry(r.area.clone()).or_insert(n);
    }
    out.sort_by_cached_key(|r| {
        let start = r
            .bucket
            .as_deref()
            .and_then(|b| TimePoint::parse(b).ok())
            .map(|t| t.start);
        (areas.get(&r.area).copied(), start, r.precision)
    });
    out
}
