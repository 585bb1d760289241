//! Query filters over current events.

use crate::country::is_country_code;
use crate::error::{Error, Result};
use crate::model::{actor_key, check_snake, Event, PlacePrecision};
use crate::place::{tested_point, Area, PlaceMatch};
use crate::time::{Micros, TimePoint};

/// Which events to return. Values of one filter match any of them (`PL` or
/// `RO`); different filters must all match (`PL` and `sabotage`). With no
/// filter at all, every current event matches. Results come ordered by
/// occurrence start, then seq.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// ISO 3166-1 alpha-2 codes; matches an event's `countries`.
    pub countries: Vec<String>,
    /// Actor names, in any role, matched trimmed and case-insensitively.
    pub actors: Vec<String>,
    /// Event kinds.
    pub kinds: Vec<String>,
    /// Start of the occurrence range, inclusive at its precision.
    pub from: Option<TimePoint>,
    /// End of the occurrence range, inclusive at its precision
    /// (`2025-09` runs to the end of September).
    pub to: Option<TimePoint>,
    /// Only events entirely inside the range (certainly then), instead of
    /// every event whose interval overlaps it (possibly then).
    pub within: bool,
    /// Only events whose place answers `place` for this area (a box, a
    /// disc, polygons); events without coordinates never do.
    pub area: Option<Area>,
    /// How a place must relate to `area`: by default its point lies
    /// inside and it is no coarser than the area.
    pub place: PlaceMatch,
    /// At most this many events.
    pub limit: Option<usize>,
}

/// A query's filters as text, the words every front end shares (the CLI's
/// `--country`, `--from`, ...; HTTP's `country=`, `from=`, ...): turned
/// into a [`Query`] in one place, so that they mean the same everywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// `country`: ISO 3166-1 alpha-2 codes (any of them).
    pub countries: Vec<String>,
    /// `actor`: actor names, in any role (any of them).
    pub actors: Vec<String>,
    /// `kind`: event kinds (any of them).
    pub kinds: Vec<String>,
    /// `from`: start of the occurrence range (`2025`, `2025-09`, RFC 3339).
    pub from: Option<String>,
    /// `to`: end of the occurrence range, inclusive at its precision.
    pub to: Option<String>,
    /// `within`: only events certainly inside the range.
    pub within: bool,
    /// `bbox`: `W,S,E,N` in degrees (`W > E` crosses the antimeridian).
    pub bbox: Option<String>,
    /// `near`: `LAT,LON`, with `radius_km`.
    pub near: Option<String>,
    /// `radius_km`: the radius around `near`, in km.
    pub radius_km: Option<String>,
    /// `area`: GeoJSON text of a Polygon, MultiPolygon, Feature or
    /// FeatureCollection.
    pub area: Option<String>,
    /// `place`: `point` (default), `possible` or `certain`.
    pub place: Option<String>,
    /// `limit`: at most this many events.
    pub limit: Option<usize>,
}

impl Filters {
    /// The query the filters describe; an error names the bad value.
    pub fn to_query(&self) -> Result<Query> {
        let mut query = Query::new();
        for c in &self.countries {
            query = query.country(c);
        }
        for a in &self.actors {
            query = query.actor(a);
        }
        for k in &self.kinds {
            query = query.kind(k);
        }
        if let Some(f) = &self.from {
            query = query.from(f)?;
        }
        if let Some(t) = &self.to {
            query = query.to(t)?;
        }
        if self.within {
            query = query.within();
        }
        let areas = [
            self.bbox.is_some(),
            self.near.is_some(),
            self.area.is_some(),
        ];
        if areas.iter().filter(|a| **a).count() > 1 {
            return Err(Error::invalid(
                "bbox",
                "give one of bbox, near (with radius_km) and area",
            ));
        }
        if let Some(b) = &self.bbox {
            query.area = Some(Area::parse_bbox(b)?);
        }
        match (&self.near, &self.radius_km) {
            (Some(n), Some(r)) => {
                let km = r.trim().parse::<f64>().map_err(|_| {
                    Error::invalid("radius_km", format!("`{r}` is not a number of km"))
                })?;
                query.area = Some(Area::parse_near(n, km)?)
            }
            (Some(_), None) => {
                return Err(Error::invalid("radius_km", "missing: near needs radius_km"))
            }
            (None, Some(_)) => return Err(Error::invalid("near", "missing: radius_km needs near")),
            (None, None) => {}
        }
        if let Some(a) = &self.area {
            query.area = Some(Area::parse_geojson(a)?);
        }
        if let Some(p) = &self.place {
            if query.area.is_none() {
                return Err(Error::invalid("place", "needs an area: bbox, near or area"));
            }
            query.place = PlaceMatch::parse(p)?;
        }
        if let Some(n) = self.limit {
            query = query.limit(n);
        }
        Ok(query)
    }
}

impl Query {
    /// A query with no filter: every current event.
    pub fn new() -> Query {
        Query::default()
    }

    /// Adds a country (uppercased).
    pub fn country(mut self, code: &str) -> Query {
        self.countries.push(code.trim().to_uppercase());
        self
    }

    /// Adds an actor name.
    pub fn actor(mut self, name: &str) -> Query {
        self.actors.push(name.to_string());
        self
    }

    /// Adds a kind.
    pub fn kind(mut self, kind: &str) -> Query {
        self.kinds.push(kind.to_string());
        self
    }

    /// Sets the start of the occurrence range (`2025`, `2025-09`, ...).
    pub fn from(mut self, when: &str) -> Result<Query> {
        self.from = Some(TimePoint::parse_from(when).map_err(|e| e.for_field("from"))?);
        Ok(self)
    }

    /// Sets the end of the occurrence range, inclusive at its precision.
    pub fn to(mut self, when: &str) -> Result<Query> {
        self.to = Some(TimePoint::parse_to(when).map_err(|e| e.for_field("to"))?);
        Ok(self)
    }

    /// Asks for events entirely inside the range.
    pub fn within(mut self) -> Query {
        self.within = true;
        self
    }

    /// Keeps events placed in the box `W,S,E,N` (degrees; `W > E` crosses
    /// the antimeridian).
    pub fn bbox(mut self, bbox: &str) -> Result<Query> {
        self.area = Some(Area::parse_bbox(bbox)?);
        Ok(self)
    }

    /// Keeps events placed within `radius_km` (great-circle) of a point.
    pub fn near(mut self, lat: f64, lon: f64, radius_km: f64) -> Result<Query> {
        let a = Area::Near {
            lat,
            lon,
            radius_km,
        };
        a.validate()?;
        self.area = Some(a);
        Ok(self)
    }

    /// Keeps events placed in an area.
    pub fn area(mut self, area: Area) -> Query {
        self.area = Some(area);
        self
    }

    /// Sets how a place must relate to the area.
    pub fn place(mut self, how: PlaceMatch) -> Query {
        self.place = how;
        self
    }

    /// Caps the number of results.
    pub fn limit(mut self, n: usize) -> Query {
        self.limit = Some(n);
        self
    }

    /// The occurrence range as `[start, end)` microseconds.
    pub(crate) fn range(&self) -> (Micros, Micros) {
        (
            self.from.map_or(Micros::MIN, |p| p.start),
            self.to.map_or(Micros::MAX, |p| p.end()),
        )
    }

    /// Whether an event matches every filter (the limit aside).
    pub fn matches(&self, e: &Event) -> bool {
        let (lo, hi) = self.range();
        let time_ok = if self.within {
            e.occurred.within(lo, hi)
        } else {
            e.occurred.overlaps(lo, hi)
        };
        time_ok
            && (self.countries.is_empty() || e.countries.iter().any(|c| self.countries.contains(c)))
            && (self.kinds.is_empty() || self.kinds.contains(&e.kind))
            && (self.actors.is_empty()
                || e.actors.iter().any(|a| {
                    self.actors
                        .iter()
                        .any(|name| actor_key(name) == actor_key(&a.name))
                }))
            && self.area.as_ref().is_none_or(|area| {
                let Some(l) = &e.location else {
                    return false;
                };
                let (Some(lat), Some(lon)) = (l.lat, l.lon) else {
                    return false;
                };
                let (lat, lon) = tested_point(lat, lon);
                area.admits(
                    self.place,
                    lat,
                    lon,
                    l.precision.unwrap_or(PlacePrecision::Exact),
                )
            })
    }

    /// Checks the filters: known country codes, snake_case kinds, a range
    /// that is not inverted.
    pub fn validate(&self) -> Result<()> {
        for (i, c) in self.countries.iter().enumerate() {
            if !is_country_code(c) {
                return Err(Error::invalid(
                    format!("country[{i}]"),
                    format!("`{c}` is not an ISO 3166-1 alpha-2 country code"),
                ));
            }
        }
        for (i, k) in self.kinds.iter().enumerate() {
            check_snake(|| format!("kind[{i}]"), k)?;
        }
        // No actor is named by blanks: such a filter would silently match
        // nothing.
        for (i, a) in self.actors.iter().enumerate() {
            if a.trim().is_empty() {
                return Err(Error::invalid(
                    format!("actor[{i}]"),
                    "empty: name an actor",
                ));
            }
        }
        if let Some(a) = &self.area {
            a.validate()?;
        }
        if let (Some(f), Some(t)) = (self.from, self.to) {
            if t.end() <= f.start {
                return Err(Error::invalid(
                    "to",
                    format!("the range is inverted: `to` ({t}) is before `from` ({f})"),
                ));
            }
        }
        Ok(())
    }
}
