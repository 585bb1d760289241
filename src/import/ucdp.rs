//! UCDP GED (the Uppsala Georeferenced Event Dataset) CSV releases, global
//! annual and monthly candidate, read by column name (codebook 24.1/25.1).

use std::io::BufRead;

use chrono::NaiveDate;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::codes::{iso_from_gleditsch_ward, iso_from_name};
use super::row::{day_range, Item, Row, Rows};
use super::table::{self, Fields, Table};
use crate::error::{Error, Result};
use crate::model::{Actor, Event, Location, PlacePrecision};
use crate::time::{day_point, Occurred, Precision};

/// Namespace of UCDP GED event ids: UUID v5 of
/// `https://github.com/annals/annals/import/ucdp-ged` in the URL namespace.
pub const UCDP_NAMESPACE: Uuid = Uuid::from_u128(0x509b6e05_629a_5ec1_b50d_f9c8497696c3);

/// The annals id of UCDP GED event `id` (the `id` column, stable across
/// releases).
pub fn ucdp_id(id: &str) -> Uuid {
    Uuid::new_v5(&UCDP_NAMESPACE, id.trim().as_bytes())
}

#[rustfmt::skip]
/// Columns mapped to the event's structure (the rest go to `attrs`).
const MAPPED: &[&str] = &[
    "id", "type_of_violence", "side_a", "side_b", "date_start", "date_end", "latitude",
    "longitude", "where_coordinates", "source_headline", "geom_wkt",
];

#[rustfmt::skip]
/// Columns kept as JSON integers: ids, codes, precisions and the death
/// estimates (`low`, `best`, `high` and per side).
const INTEGERS: &[&str] = &[
    "year", "active_year", "conflict_dset_id", "conflict_new_id", "dyad_dset_id",
    "dyad_new_id", "side_a_dset_id", "side_a_new_id", "side_b_dset_id", "side_b_new_id",
    "number_of_sources", "where_prec", "priogrid_gid", "country_id", "event_clarity",
    "date_prec", "deaths_a", "deaths_b", "deaths_civilians", "deaths_unknown", "best", "high",
    "low",
];

/// `date_start`/`date_end`: `2022-02-24`, or with the time UCDP's CSV
/// adds (`2022-02-24 00:00:00.000`).
/// UCDP GED's `where_prec`: 1 the exact location, 2 within some 25 km of
/// a known point, 3 a second-order and 4 a first-order administrative
/// unit, 5 a linear feature (a road, a river, a border: as coarse as a
/// province), 6 the country, 7 international waters or airspace.
pub(crate) fn ucdp_precision(code: &str) -> Option<PlacePrecision> {
    match code.trim() {
        "1" => Some(PlacePrecision::Exact),
        "2" => Some(PlacePrecision::Near),
        "3" => Some(PlacePrecision::Admin2),
        "4" | "5" => Some(PlacePrecision::Admin1),
        "6" | "7" => Some(PlacePrecision::Country),
        _ => None,
    }
}

fn date(field: &str, v: &str) -> Result<NaiveDate> {
    let day = v.get(..10).unwrap_or(v);
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| Error::invalid(field, format!("`{v}` is not a date like 2022-02-24")))
}

/// `occurred` from the window UCDP gives and its `date_prec`: 1 the day,
/// 2 a window of 2-6 days, 3 a week, 4 the month, 5 the year (or longer).
/// The window is the truth: a 2-6 day window is that interval, a window
/// that is a whole month or year becomes that month or year. Precision 4
/// or 5 with a one-day window (UCDP then puts a placeholder day) widens to
/// the day's month or year.
fn occurred(f: &Fields) -> Result<Occurred> {
    let start = date("date_start", f.get("date_start"))?;
    let end = match f.opt("date_end") {
        Some(v) => date("date_end", v)?,
        None => start,
    };
    if end < start {
        return Err(Error::invalid(
            "date_end",
            format!("{end} is before date_start {start}"),
        ));
    }
    let prec = f.get("date_prec");
    let widen = |p: Precision| -> Result<Occurred> {
        let day = day_point(start).map_err(|e| e.for_field("date_start"))?;
        Ok(Occurred::point(day.truncate(p)))
    };
    match prec {
        "" | "1" | "2" | "3" => day_range("date_start", start, end),
        "4" if start == end => widen(Precision::Month),
        "5" if start == end => widen(Precision::Year),
        "4" | "5" => day_range("date_start", start, end),
        other => Err(Error::invalid(
            "date_prec",
            format!("`{other}` is not a UCDP date precision (1-5)"),
        )),
    }
}

/// UCDP's three types of organized violence.
fn kind(code: &str) -> Result<&'static str> {
    match code {
        "1" => Ok("state_based_conflict"),
        "2" => Ok("non_state_conflict"),
        "3" => Ok("one_sided_violence"),
        other => Err(Error::invalid(
            "type_of_violence",
            format!("`{other}` is not 1 (state-based), 2 (non-state) or 3 (one-sided)"),
        )),
    }
}

/// ISO codes of a cell of Gleditsch-Ward numbers (`gwnoa` may list
/// several, comma-separated, for an alliance).
fn gw_countries(f: &Fields, col: &str, out: &mut Vec<String>) -> Result<()> {
    for n in f
        .get(col)
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let iso = n
            .parse::<u32>()
            .ok()
            .and_then(iso_from_gleditsch_ward)
            .ok_or_else(|| {
                Error::invalid(col, format!("`{n}` is not a known Gleditsch-Ward number"))
            })?;
        if !out.iter().any(|c| c == iso) {
            out.push(iso.to_string());
        }
    }
    Ok(())
}

fn event(f: &Fields) -> Result<Event> {
    let source_id = f.get("id");
    if source_id.is_empty() {
        return Err(Error::invalid("id", "empty: a UCDP row needs its id"));
    }
    let occurred = occurred(f)?;
    let kind = kind(f.get("type_of_violence"))?;
    // The country where it happened first, then the states on either side.
    let mut countries = Vec::new();
    match f.opt("country_id") {
        Some(_) => gw_countries(f, "country_id", &mut countries)?,
        None => {
            let name = f.get("country");
            let iso = iso_from_name(name).ok_or_else(|| {
                Error::invalid("country", format!("`{name}` is not a known country name"))
            })?;
            countries.push(iso.to_string());
        }
    }
    let home = countries.first().cloned();
    gw_countries(f, "gwnoa", &mut countries)?;
    gw_countries(f, "gwnob", &mut countries)?;
    let (lat, lon) = (f.float("latitude")?, f.float("longitude")?);
    let place = f.opt("where_coordinates");
    let location = (place.is_some() || lat.is_some() || lon.is_some()).then(|| Location {
        name: place.map(str::to_string),
        country: home,
        lat,
        lon,
        precision: f.opt("where_prec").and_then(ucdp_precision),
        admin1: f.opt("adm_1").map(str::to_string),
    });
    let actors = [("side_a", "side_a"), ("side_b", "side_b")]
        .into_iter()
        .filter_map(|(col, role)| f.opt(col).map(|name| Actor::new(name, role)))
        .collect();
    let mut attrs = Map::new();
    attrs.insert("source_id".into(), Value::from(source_id));
    attrs.insert("dataset".into(), Value::from("ucdp-ged"));
    f.rest_into(MAPPED, INTEGERS, &mut attrs);
    Event {
        id: ucdp_id(source_id),
        kind: kind.to_string(),
        occurred,
        countries,
        location,
        actors,
        summary: f.opt("source_headline").map(str::to_string),
        sources: Vec::new(),
        confidence: None,
        tags: Vec::new(),
        attrs,
    }
    .validate()
}

/// The rows of a UCDP GED CSV release.
pub(crate) fn rows<'r>(r: &'r mut (dyn BufRead + Send)) -> Result<Box<dyn Rows + 'r>> {
    let required = &["id", "type_of_violence", "date_start", "date_prec"];
    let mut table = table::open(r, b',', required, "a UCDP GED file")?;
    if !table.cols.has("country_id") && !table.cols.has("country") {
        return Err(Error::invalid(
            "country_id",
            "the header has neither `country_id` nor `country`",
        ));
    }
    table.id_column = Some(("id", ucdp_id));
    Ok(Box::new(Ucdp { table }))
}

struct Ucdp<'r> {
    table: Table<'r>,
}

impl Rows for Ucdp<'_> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        self.table.next_row(|f| {
            Ok(Item::Upsert {
                event: event(f)?,
                stamp: None,
            })
        })
    }
}
