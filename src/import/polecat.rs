//! POLECAT (the successor of ICEWS, coded in PLOVER) weekly files:
//! tab-separated with a header, read by column name.

use std::io::BufRead;

use chrono::NaiveDate;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::acled::snake;
use super::codes::iso_from_alpha3;
use super::row::{Item, Row, Rows};
use super::table::{self, Fields, Table};
use crate::error::{Error, Result};
use crate::model::{Actor, Event, Location, PlacePrecision, Source};
use crate::time::{day_point, Bound, Mark, Occurred, TimePoint};

/// Namespace of POLECAT event ids: UUID v5 of
/// `https://github.com/annals/annals/import/polecat` in the URL namespace.
pub const POLECAT_NAMESPACE: Uuid = Uuid::from_u128(0xa201f05f_9b3e_5b7f_a4c9_fe75e9ec6801);

/// The annals id of POLECAT event `Event ID`.
pub fn polecat_id(event_id: &str) -> Uuid {
    Uuid::new_v5(&POLECAT_NAMESPACE, event_id.trim().as_bytes())
}

/// Columns mapped to the event's structure. The country columns are
/// mapped too but also kept in `attrs` as written (ISO alpha-3, or codes
/// such as `IGO` that name no country).
const MAPPED: &[&str] = &[
    "event_id",
    "event_type",
    "actor_name",
    "recipient_name",
    "placename",
    "latitude",
    "longitude",
    "headline",
    "contexts",
    "source",
];

const INTEGERS: &[&str] = &["geonames_id"];

/// The attribute saying where an event's date came from when POLECAT
/// could not resolve it from the story.
const DATE_FALLBACK: &str = "date_fallback";

/// POLECAT's GeoNames feature code: a populated place (`PPL...`) is the
/// town itself; `ADM1`/`ADM2` a unit's centroid, finer units near; a
/// country (`PCL...`) its centroid; any other feature (a river, a
/// mountain) near its point.
pub(crate) fn polecat_precision(code: &str) -> Option<PlacePrecision> {
    let code = code.trim().to_ascii_uppercase();
    Some(match code.as_str() {
        "" => return None,
        c if c.starts_with("PPL") => PlacePrecision::Exact,
        "ADM1" | "ADM1H" => PlacePrecision::Admin1,
        "ADM2" | "ADM2H" => PlacePrecision::Admin2,
        c if c.starts_with("PCL") => PlacePrecision::Country,
        _ => PlacePrecision::Near,
    })
}

fn day(field: &str, v: &str) -> Result<TimePoint> {
    let d = NaiveDate::parse_from_str(v.get(..10).unwrap_or(v), "%Y-%m-%d")
        .map_err(|_| Error::invalid(field, format!("`{v}` is not a date like 2025-09-10")))?;
    day_point(d).map_err(|e| e.for_field(field))
}

/// `occurred`: the event's date, resolved to a day; when POLECAT left it
/// empty, the story's publication date, marked uncertain (EDTF `?`): the
/// event happened then or, more likely, shortly before.
fn occurred(f: &Fields, attrs: &mut Map<String, Value>) -> Result<Occurred> {
    if let Some(v) = f.opt("event_date") {
        return Ok(Occurred::point(day("event_date", v)?));
    }
    let Some(v) = f.opt("publication_date") else {
        return Err(Error::invalid(
            "event_date",
            "empty, and no publication_date to fall back on",
        ));
    };
    attrs.insert(DATE_FALLBACK.into(), Value::from("publication_date"));
    let p = day("publication_date", v)?;
    Ok(Occurred::point(TimePoint {
        mark: Mark {
            uncertain: true,
            bound: Bound::Date,
            ..Mark::NONE
        },
        ..p
    }))
}

/// The ISO alpha-2 codes of a cell of alpha-3 codes (`;`-separated), in
/// order, skipping codes that name no country (`IGO`, `NGO`, blanks).
fn countries(f: &Fields, col: &str, out: &mut Vec<String>) {
    for code in f.get(col).split(';').map(str::trim) {
        if let Some(iso) = iso_from_alpha3(code) {
            if !out.iter().any(|c| c == iso) {
                out.push(iso.to_string());
            }
        }
    }
}

fn names<'a>(f: &'a Fields, col: &str) -> impl Iterator<Item = &'a str> {
    f.get(col)
        .split(';')
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

fn event(f: &Fields) -> Result<Event> {
    let source_id = f.get("event_id");
    if source_id.is_empty() {
        return Err(Error::invalid(
            "event_id",
            "empty: a POLECAT row needs its id",
        ));
    }
    let kind = match f.opt("event_type") {
        Some(t) => snake(t),
        None => return Err(Error::invalid("event_type", "empty")),
    };
    let mut attrs = Map::new();
    attrs.insert("source_id".into(), Value::from(source_id));
    attrs.insert("dataset".into(), Value::from("polecat"));
    let occurred = occurred(f, &mut attrs)?;
    let mut cs = Vec::new();
    for col in ["country", "actor_country", "recipient_country"] {
        countries(f, col, &mut cs);
    }
    let place = f.opt("placename").or(f.opt("city"));
    let (lat, lon) = (f.float("latitude")?, f.float("longitude")?);
    let mut here = Vec::new();
    countries(f, "country", &mut here);
    let location = (place.is_some() || lat.is_some() || lon.is_some()).then(|| Location {
        name: place.map(str::to_string),
        country: here.into_iter().next(),
        lat,
        lon,
        precision: f.opt("feature_type").and_then(polecat_precision),
        admin1: f.opt("state").map(str::to_string),
    });
    let mut actors: Vec<Actor> = names(f, "actor_name")
        .map(|n| Actor::new(n, "actor"))
        .collect();
    actors.extend(names(f, "recipient_name").map(|n| Actor::new(n, "recipient")));
    let sources = match f.opt("source") {
        Some(name) => vec![Source {
            name: name.to_string(),
            url: None,
            reported_at: f
                .opt("publication_date")
                .map(|v| day("publication_date", v))
                .transpose()?,
        }],
        None => Vec::new(),
    };
    // PLOVER contexts (`military;terrorism`) are labels: tags.
    let tags = names(f, "contexts")
        .map(snake)
        .filter(|t| !t.is_empty())
        .collect();
    f.rest_into(MAPPED, INTEGERS, &mut attrs);
    Event {
        id: polecat_id(source_id),
        kind,
        occurred,
        countries: cs,
        location,
        actors,
        summary: f.opt("headline").map(str::to_string),
        sources,
        confidence: None,
        tags,
        attrs,
    }
    .validate()
}

/// The rows of a POLECAT weekly file.
pub(crate) fn rows<'r>(r: &'r mut (dyn BufRead + Send)) -> Result<Box<dyn Rows + 'r>> {
    let required = &["event_id", "event_type", "event_date"];
    let mut table = table::open(r, b'\t', required, "a POLECAT file")?;
    table.id_column = Some(("event_id", polecat_id));
    Ok(Box::new(Polecat { table }))
}

struct Polecat<'r> {
    table: Table<'r>,
}

impl Rows for Polecat<'_> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        self.table.next_row(|f| {
            Ok(Item::Upsert {
                event: event(f)?,
                stamp: None,
            })
        })
    }
}
