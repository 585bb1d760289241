//! The event: what happened, when, where and who was involved.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::country::is_country_code;
use crate::error::{Error, Result};
use crate::time::{Occurred, TimePoint};

/// Longest `kind` or actor `role`, in bytes.
pub const MAX_KIND_BYTES: usize = 64;
/// Longest name (actor, location, source), in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest `summary`, in bytes.
pub const MAX_SUMMARY_BYTES: usize = 16 * 1024;
/// Longest source `url`, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest tag, in bytes.
pub const MAX_TAG_BYTES: usize = 128;
/// Most items in each list field (countries, actors, sources, tags).
pub const MAX_LIST_ITEMS: usize = 256;
/// Largest `attrs` object, in bytes of compact JSON.
pub const MAX_ATTRS_BYTES: usize = 32 * 1024;
/// Longest retraction reason, in bytes.
pub const MAX_REASON_BYTES: usize = 4096;

/// An actor taking part in an event, in a role.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    /// The name, trimmed. Matched case-insensitively.
    pub name: String,
    /// A snake_case role: `perpetrator`, `alleged_perpetrator`, `target`,
    /// `attendee`, `absentee`, `host`, `claimant`, ... (open set).
    pub role: String,
}

impl Actor {
    /// A new actor; validated when its event is.
    pub fn new(name: impl Into<String>, role: impl Into<String>) -> Actor {
        Actor {
            name: name.into().trim().to_string(),
            role: role.into(),
        }
    }

    /// The key under which actors are matched: trimmed, lowercase.
    pub fn key(&self) -> String {
        actor_key(&self.name)
    }
}

/// The matching key of an actor name: trimmed and lowercased.
pub fn actor_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Where an event took place.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Location {
    /// A place name.
    pub name: Option<String>,
    /// ISO 3166-1 alpha-2 code of the place.
    pub country: Option<String>,
    /// Latitude in degrees, in [-90, 90].
    pub lat: Option<f64>,
    /// Longitude in degrees, in [-180, 180].
    pub lon: Option<f64>,
    /// How precisely `lat`/`lon` place the event (none: as given, treated
    /// as exact; see docs/places.md).
    pub precision: Option<PlacePrecision>,
    /// The first-level administrative unit (province, oblast, state) the
    /// source names, as it names it.
    pub admin1: Option<String>,
}

/// How precisely a location's point places an event, from an exact spot
/// to a country's centroid. Spatial filters treat a place as a disc of
/// the precision's nominal radius around its point, as fuzzy dates are
/// intervals (docs/places.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlacePrecision {
    /// The point is where it happened (a village, a street, coordinates).
    Exact,
    /// Near a named settlement, or in its district.
    Near,
    /// Somewhere in a second-level administrative unit (a district, a
    /// county); the point is its centroid.
    Admin2,
    /// Somewhere in a first-level unit (a province, an oblast); the point
    /// is its centroid.
    Admin1,
    /// Somewhere in the country; the point is its centroid.
    Country,
}

impl PlacePrecision {
    /// Every precision, finest first.
    pub const ALL: [PlacePrecision; 5] = [
        PlacePrecision::Exact,
        PlacePrecision::Near,
        PlacePrecision::Admin2,
        PlacePrecision::Admin1,
        PlacePrecision::Country,
    ];

    /// The name used in JSON, the CLI, HTTP and Python.
    pub fn as_str(self) -> &'static str {
        match self {
            PlacePrecision::Exact => "exact",
            PlacePrecision::Near => "near",
            PlacePrecision::Admin2 => "admin2",
            PlacePrecision::Admin1 => "admin1",
            PlacePrecision::Country => "country",
        }
    }

    /// The precision named `s` (one of [`PlacePrecision::as_str`]).
    pub fn parse(s: &str) -> Option<PlacePrecision> {
        PlacePrecision::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The radius, in km, of the disc the place stands for: how far from
    /// its point the event may have been. Nominal figures (a district is
    /// some 25 km across, a province some hundreds), chosen so that a
    /// coarse place never counts as certainly inside a small area.
    pub fn radius_km(self) -> f64 {
        match self {
            PlacePrecision::Exact => 0.0,
            PlacePrecision::Near => 10.0,
            PlacePrecision::Admin2 => 50.0,
            PlacePrecision::Admin1 => 250.0,
            PlacePrecision::Country => 1000.0,
        }
    }

    /// A small stable number for storage (1-5).
    pub(crate) fn code(self) -> u8 {
        self as u8 + 1
    }

    /// The precision stored as `code`.
    pub(crate) fn from_code(code: u8) -> Option<PlacePrecision> {
        PlacePrecision::ALL
            .get(usize::from(code).checked_sub(1)?)
            .copied()
    }
}

impl std::fmt::Display for PlacePrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A report an event is based on.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Who reported it.
    pub name: String,
    /// Where.
    pub url: Option<String>,
    /// When (a fuzzy point, like `occurred`).
    pub reported_at: Option<TimePoint>,
}

/// One event, in the form the caller gives and reads back.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's id: the caller's idempotency key, or a generated v7 UUID.
    pub id: Uuid,
    /// What happened: lowercase snake_case (`airspace_violation`, ...).
    pub kind: String,
    /// When it happened (often fuzzy).
    pub occurred: Occurred,
    /// ISO 3166-1 alpha-2 codes the event concerns, in the given order.
    pub countries: Vec<String>,
    /// Where it happened.
    pub location: Option<Location>,
    /// Who took part, and how.
    pub actors: Vec<Actor>,
    /// A one-paragraph description.
    pub summary: Option<String>,
    /// The reports it rests on.
    pub sources: Vec<Source>,
    /// How sure the recorder is, in [0, 1].
    pub confidence: Option<f64>,
    /// Free labels.
    pub tags: Vec<String>,
    /// Any other data, kept as given (key order included).
    pub attrs: Map<String, Value>,
}

impl Event {
    /// A new event with a fresh v7 id and every optional field empty.
    pub fn new(kind: impl Into<String>, occurred: Occurred) -> Event {
        Event {
            id: Uuid::now_v7(),
            kind: kind.into(),
            occurred,
            countries: Vec::new(),
            location: None,
            actors: Vec::new(),
            summary: None,
            sources: Vec::new(),
            confidence: None,
            tags: Vec::new(),
            attrs: Map::new(),
        }
    }

    /// Builder-style: adds countries.
    pub fn with_countries<I, S>(mut self, codes: I) -> Event
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.countries.extend(codes.into_iter().map(Into::into));
        self
    }

    /// Builder-style: adds an actor.
    pub fn with_actor(mut self, name: impl Into<String>, role: impl Into<String>) -> Event {
        self.actors.push(Actor::new(name, role));
        self
    }

    /// Builder-style: sets the summary.
    pub fn with_summary(mut self, summary: impl Into<String>) -> Event {
        self.summary = Some(summary.into());
        self
    }

    /// Checks every rule of the data model and normalizes what the rules
    /// allow (trimmed actor names, duplicate countries and actors dropped,
    /// an empty summary as none). Errors name the field.
    pub fn validate(mut self) -> Result<Event> {
        check_snake("kind", &self.kind)?;
        let mut countries: Vec<String> = Vec::with_capacity(self.countries.len());
        check_len("countries", self.countries.len())?;
        for (i, c) in self.countries.iter().enumerate() {
            check_country(|| format!("countries[{i}]"), c)?;
            if !countries.contains(c) {
                countries.push(c.clone());
            }
        }
        self.countries = countries;
        if let Some(loc) = &mut self.location {
            if let Some(name) = &loc.name {
                check_text("location.name", name, MAX_NAME_BYTES)?;
            }
            if let Some(c) = &loc.country {
                check_country("location.country", c)?;
            }
            if let Some(a) = &loc.admin1 {
                check_text("location.admin1", a, MAX_NAME_BYTES)?;
            }
            check_coord("location.lat", loc.lat, 90.0)?;
            check_coord("location.lon", loc.lon, 180.0)?;
        }
        check_len("actors", self.actors.len())?;
        let mut actors: Vec<Actor> = Vec::with_capacity(self.actors.len());
        for (i, a) in self.actors.iter().enumerate() {
            let name = a.name.trim().to_string();
            if name.is_empty() {
                return Err(Error::invalid(
                    format!("actors[{i}].name"),
                    "must not be empty",
                ));
            }
            check_text(|| format!("actors[{i}].name"), &name, MAX_NAME_BYTES)?;
            check_snake(|| format!("actors[{i}].role"), &a.role)?;
            let dup = actors
                .iter()
                .any(|b| b.role == a.role && actor_key(&b.name) == actor_key(&name));
            if !dup {
                actors.push(Actor {
                    name,
                    role: a.role.clone(),
                });
            }
        }
        self.actors = actors;
        if let Some(s) = &self.summary {
            check_text("summary", s, MAX_SUMMARY_BYTES)?;
            if s.is_empty() {
                self.summary = None;
            }
        }
        check_len("sources", self.sources.len())?;
        for (i, s) in self.sources.iter().enumerate() {
            check_text(|| format!("sources[{i}].name"), &s.name, MAX_NAME_BYTES)?;
            if let Some(u) = &s.url {
                check_text(|| format!("sources[{i}].url"), u, MAX_URL_BYTES)?;
            }
        }
        if let Some(c) = self.confidence {
            if !(0.0..=1.0).contains(&c) {
                return Err(Error::invalid(
                    "confidence",
                    format!("{c} is not in [0, 1]"),
                ));
            }
        }
        check_len("tags", self.tags.len())?;
        for (i, t) in self.tags.iter().enumerate() {
            if t.is_empty() {
                return Err(Error::invalid(format!("tags[{i}]"), "must not be empty"));
            }
            check_text(|| format!("tags[{i}]"), t, MAX_TAG_BYTES)?;
        }
        let attrs_len = json_len(&self.attrs);
        if attrs_len > MAX_ATTRS_BYTES {
            return Err(Error::invalid(
                "attrs",
                format!("{attrs_len} bytes of JSON; the limit is {MAX_ATTRS_BYTES}"),
            ));
        }
        Ok(self)
    }
}

/// Bytes of compact JSON a value serializes to, counted without building
/// the text.
fn json_len(v: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

/// A field's name for an error message, built only when there is an error
/// (validation runs for every event written; formatting `actors[3].name`
/// for each would cost more than the checks).
pub(crate) trait FieldName {
    /// The name.
    fn field(&self) -> String;
}

impl FieldName for &str {
    fn field(&self) -> String {
        self.to_string()
    }
}

impl<F: Fn() -> String> FieldName for F {
    fn field(&self) -> String {
        self()
    }
}

fn check_len(field: &str, n: usize) -> Result<()> {
    if n > MAX_LIST_ITEMS {
        return Err(Error::invalid(
            field,
            format!("{n} items; the limit is {MAX_LIST_ITEMS}"),
        ));
    }
    Ok(())
}

fn check_text(field: impl FieldName, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(Error::invalid(
            field.field(),
            format!("{} bytes; the limit is {max}", s.len()),
        ));
    }
    Ok(())
}

/// Checks a lowercase snake_case name (`kind`, `role`).
pub(crate) fn check_snake(field: impl FieldName, s: &str) -> Result<()> {
    if s.len() > MAX_KIND_BYTES {
        return Err(Error::invalid(
            field.field(),
            format!("{} bytes; the limit is {MAX_KIND_BYTES}", s.len()),
        ));
    }
    let mut chars = s.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.ends_with('_')
        && !s.contains("__");
    if !ok {
        return Err(Error::invalid(
            field.field(),
            format!("`{s}` is not lowercase snake_case (like `airspace_violation`)"),
        ));
    }
    Ok(())
}

fn check_country(field: impl FieldName, c: &str) -> Result<()> {
    if !is_country_code(c) {
        return Err(Error::invalid(
            field.field(),
            format!("`{c}` is not an ISO 3166-1 alpha-2 country code (uppercase, like `PL`)"),
        ));
    }
    Ok(())
}

/// A coordinate in `[-limit, limit]` (90 for latitudes, 180 for
/// longitudes), when given.
pub(crate) fn check_coord(field: &str, v: Option<f64>, limit: f64) -> Result<()> {
    match v {
        Some(x) if !(-limit..=limit).contains(&x) => Err(Error::invalid(
            field,
            format!("{x} is not in [-{limit}, {limit}]"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Event {
        Event::new("sabotage", Occurred::parse("2025-11").unwrap())
    }

    #[test]
    fn normalizes_duplicates_and_names() {
        let e = ev()
            .with_countries(["PL", "UA", "PL"])
            .with_actor(" Russia ", "alleged_perpetrator")
            .with_actor("russia", "alleged_perpetrator")
            .with_actor("Russia", "claimant")
            .validate()
            .unwrap();
        assert_eq!(e.countries, ["PL", "UA"]);
        assert_eq!(e.actors.len(), 2);
        assert_eq!(e.actors[0].name, "Russia");
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(Event, &str)> = vec![
            (
                Event {
                    kind: "Airspace".into(),
                    ..ev()
                },
                "kind",
            ),
            (ev().with_countries(["ZZ"]), "countries[0]"),
            (ev().with_actor("x", "Bad Role"), "actors[0].role"),
            (ev().with_actor("  ", "target"), "actors[0].name"),
            (
                Event {
                    confidence: Some(1.5),
                    ..ev()
                },
                "confidence",
            ),
            (
                Event {
                    location: Some(Location {
                        lat: Some(91.0),
                        ..Default::default()
                    }),
                    ..ev()
                },
                "location.lat",
            ),
            (
                Event {
                    summary: Some("x".repeat(MAX_SUMMARY_BYTES + 1)),
                    ..ev()
                },
                "summary",
            ),
        ];
        for (e, field) in cases {
            match e.validate() {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn snake_case_rules() {
        for ok in ["meeting", "airspace_violation", "op2"] {
            assert!(check_snake("kind", ok).is_ok(), "{ok}");
        }
        for bad in ["", "Meeting", "_x", "x_", "a__b", "drone-strike", "2x", "é"] {
            assert!(check_snake("kind", bad).is_err(), "{bad}");
        }
    }
}
