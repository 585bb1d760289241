//! ACLED CSV exports (with a header; the 2016, 2020 and 2022 schema
//! generations, read by column name) and ACLED deletion lists.

use std::io::BufRead;

use chrono::{Datelike, Days, NaiveDate};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::codes::{iso_from_name, iso_from_numeric};
use super::row::{Item, Row, Rows};
use super::table::{self, Fields, Table};
use crate::error::{Error, Result};
use crate::model::{Actor, Event, Location, PlacePrecision};
use crate::time::{day_point, format_micros, Occurred, TimePoint};

/// Namespace of ACLED event ids: UUID v5 of
/// `https://github.com/annals/annals/import/acled` in the URL namespace.
pub const ACLED_NAMESPACE: Uuid = Uuid::from_u128(0x9401ee22_9ec9_599d_9354_5474916fa155);

/// The attribute holding ACLED's `timestamp` (Unix seconds of the row's
/// last change), which orders versions of one event.
pub(crate) const STAMP_ATTR: &str = "timestamp";

/// The annals id of ACLED event `event_id_cnty`.
pub fn acled_id(event_id_cnty: &str) -> Uuid {
    Uuid::new_v5(&ACLED_NAMESPACE, event_id_cnty.trim().as_bytes())
}

#[rustfmt::skip]
/// Columns mapped to the event's structure (everything else non-empty
/// goes to `attrs` under its own name).
const STRUCTURED: &[&str] = &[
    "", "event_id_cnty", "event_date", "actor1", "assoc_actor_1", "ally_actor_1", "actor2",
    "assoc_actor_2", "ally_actor_2", "country", "location", "latitude", "longitude", "notes",
];

#[rustfmt::skip]
/// Columns kept as JSON integers when they hold one (ACLED's newer API can
/// return text labels for `inter1`/`inter2`: those stay strings).
const INTEGERS: &[&str] = &[
    "year", "time_precision", "inter1", "inter2", "interaction", "iso", "geo_precision",
    "fatalities", "timestamp", "data_id", "event_id_no_cnty", "gwno",
];

/// `event_date` in the forms ACLED's channels write: `2022-02-23` (API,
/// acledR), `9-May-20` (through Excel), `23 February 2022` (web export).
/// ACLED's `geo_precision`: 1 the named town, 2 near it or part of a
/// region, 3 a larger region (the point is its capital).
pub(crate) fn acled_precision(code: &str) -> Option<PlacePrecision> {
    match code.trim() {
        "1" => Some(PlacePrecision::Exact),
        "2" => Some(PlacePrecision::Near),
        "3" => Some(PlacePrecision::Admin1),
        _ => None,
    }
}

fn parse_date(v: &str) -> Result<NaiveDate> {
    for fmt in ["%Y-%m-%d", "%d-%b-%y", "%d-%b-%Y", "%d %B %Y", "%d-%m-%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(v, fmt) {
            return Ok(d);
        }
    }
    Err(Error::invalid(
        "event_date",
        format!("`{v}` is not a date like 2022-02-23, 9-May-20 or 23 February 2022"),
    ))
}

fn day(d: NaiveDate) -> Result<TimePoint> {
    day_point(d).map_err(|e| e.for_field("event_date"))
}

/// `occurred` from the date and ACLED's `time_precision`: 1 that day, 2 the
/// surrounding week (Monday to Sunday), 3 the month.
fn occurred(date: &str, precision: &str) -> Result<Occurred> {
    if date.is_empty() {
        return Err(Error::invalid("event_date", "empty"));
    }
    let d = parse_date(date)?;
    match precision {
        "" | "1" => Ok(Occurred::point(day(d)?)),
        "2" => {
            let monday = d - Days::new(u64::from(d.weekday().num_days_from_monday()));
            let sunday = monday + Days::new(6);
            Occurred::range(day(monday)?, day(sunday)?)
        }
        "3" => TimePoint::parse(&d.format("%Y-%m").to_string())
            .map(Occurred::point)
            .map_err(|e| e.for_field("event_date")),
        other => Err(Error::invalid(
            "time_precision",
            format!("`{other}` is not 1 (day), 2 (week) or 3 (month)"),
        )),
    }
}

/// ACLED's event type names in snake_case: `Shelling/artillery/missile
/// attack` → `shelling_artillery_missile_attack`.
pub(crate) fn snake(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

fn event(f: &Fields) -> Result<Event> {
    let source_id = f.get("event_id_cnty");
    if source_id.is_empty() {
        return Err(Error::invalid(
            "event_id_cnty",
            "empty: an ACLED row needs its id to be imported (and corrected later)",
        ));
    }
    // Every ACLED row fills these; an empty one where the column exists
    // means the row was cut short (the 2020 export's last row is).
    for col in ["country", "fatalities", STAMP_ATTR] {
        if f.cols.has(col) && f.get(col).is_empty() {
            return Err(Error::invalid(col, "empty: the row looks truncated"));
        }
    }
    let occurred = occurred(f.get("event_date"), f.get("time_precision"))?;
    let kind = match f.opt("sub_event_type").or(f.opt("event_type")) {
        Some(t) => snake(t),
        None => return Err(Error::invalid("event_type", "empty")),
    };
    let iso = match f.opt("iso") {
        Some(n) => n
            .parse::<u32>()
            .ok()
            .and_then(iso_from_numeric)
            .ok_or_else(|| Error::invalid("iso", format!("`{n}` is not an ISO 3166-1 number")))?,
        None => {
            let name = f.get("country");
            iso_from_name(name).ok_or_else(|| {
                Error::invalid("country", format!("`{name}` is not a known country name"))
            })?
        }
    };
    let (lat, lon) = (f.float("latitude")?, f.float("longitude")?);
    let place = f.opt("location");
    let location = (place.is_some() || lat.is_some() || lon.is_some()).then(|| Location {
        name: place.map(str::to_string),
        country: Some(iso.to_string()),
        lat,
        lon,
        precision: f.opt("geo_precision").and_then(acled_precision),
        admin1: f.opt("admin1").map(str::to_string),
    });
    let mut actors = Vec::new();
    for (cols, role) in [
        (&["actor1"][..], "actor1"),
        (&["assoc_actor_1", "ally_actor_1"][..], "actor1_associate"),
        (&["actor2"][..], "actor2"),
        (&["assoc_actor_2", "ally_actor_2"][..], "actor2_associate"),
    ] {
        for col in cols {
            for name in f
                .get(col)
                .split(';')
                .map(str::trim)
                .filter(|n| !n.is_empty())
            {
                actors.push(Actor::new(name, role));
            }
        }
    }
    let mut attrs = Map::new();
    attrs.insert("source_id".into(), Value::from(source_id));
    attrs.insert("dataset".into(), Value::from("acled"));
    f.rest_into(STRUCTURED, INTEGERS, &mut attrs);
    Event {
        id: acled_id(source_id),
        kind,
        occurred,
        countries: vec![iso.to_string()],
        location,
        actors,
        summary: f.opt("notes").map(str::to_string),
        sources: Vec::new(),
        confidence: None,
        tags: Vec::new(),
        attrs,
    }
    .validate()
}

fn stamp(f: &Fields) -> Result<Option<i64>> {
    f.opt(STAMP_ATTR)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| Error::invalid(STAMP_ATTR, format!("`{v}` is not Unix seconds")))
        })
        .transpose()
}

fn deletion(f: &Fields) -> Result<Item> {
    let source_id = f.get("event_id_cnty");
    if source_id.is_empty() {
        return Err(Error::invalid("event_id_cnty", "empty"));
    }
    let reason = match f.opt("deleted_timestamp") {
        None => "deleted by ACLED".to_string(),
        Some(v) => {
            let secs: i64 = v.parse().map_err(|_| {
                Error::invalid("deleted_timestamp", format!("`{v}` is not Unix seconds"))
            })?;
            format!(
                "deleted by ACLED at {} (deleted_timestamp {secs})",
                format_micros(secs.saturating_mul(1_000_000))
            )
        }
    };
    Ok(Item::Delete {
        id: acled_id(source_id),
        reason,
    })
}

/// The rows of an ACLED export (or, with `deletions`, a deletion list).
pub(crate) fn rows<'r>(
    r: &'r mut (dyn BufRead + Send),
    deletions: bool,
) -> Result<Box<dyn Rows + 'r>> {
    let required: &[&str] = if deletions {
        &["event_id_cnty"]
    } else {
        &["event_id_cnty", "event_date", "event_type"]
    };
    let mut table = table::open(r, b',', required, "an ACLED file of that kind")?;
    if !deletions && !table.cols.has("iso") && !table.cols.has("country") {
        return Err(Error::invalid(
            "country",
            "the header has neither `iso` nor `country`",
        ));
    }
    if !deletions {
        table.id_column = Some(("event_id_cnty", acled_id));
    }
    Ok(Box::new(Acled { table, deletions }))
}

struct Acled<'r> {
    table: Table<'r>,
    deletions: bool,
}

impl Rows for Acled<'_> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        let deletions = self.deletions;
        self.table.next_row(|f| {
            if deletions {
                deletion(f)
            } else {
                Ok(Item::Upsert {
                    event: event(f)?,
                    stamp: stamp(f)?,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_every_channel_form() {
        let d = NaiveDate::from_ymd_opt(2020, 5, 9).unwrap();
        for s in [
            "2020-05-09",
            "9-May-20",
            "09-May-2020",
            "9 May 2020",
            "09-05-2020",
        ] {
            assert_eq!(parse_date(s).unwrap(), d, "{s}");
        }
        assert!(parse_date("May 9").is_err());
    }

    #[test]
    fn precision_widens_the_interval() {
        let day = occurred("2022-02-23", "1").unwrap();
        assert_eq!(day.from.to_string(), "2022-02-23");
        // 23 Feb 2022 was a Wednesday: the week runs Monday 21 to Sunday 27.
        let week = occurred("2022-02-23", "2").unwrap();
        assert_eq!(
            (week.from.to_string(), week.to.to_string()),
            ("2022-02-21".into(), "2022-02-27".into())
        );
        assert_eq!(
            occurred("2022-02-23", "3").unwrap().from.to_string(),
            "2022-02"
        );
        assert!(occurred("2022-02-23", "4").is_err());
    }

    #[test]
    fn kinds_in_snake_case() {
        assert_eq!(
            snake("Shelling/artillery/missile attack"),
            "shelling_artillery_missile_attack"
        );
        assert_eq!(
            snake("Battle-No change of territory"),
            "battle_no_change_of_territory"
        );
        assert_eq!(snake("Riots/Protests"), "riots_protests");
        assert_eq!(
            snake(" Remote explosive/landmine/IED "),
            "remote_explosive_landmine_ied"
        );
    }
}
