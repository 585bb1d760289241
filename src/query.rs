//! Query filters over current events.

use crate::country::is_country_code;
use crate::error::{Error, Result};
use crate::model::{actor_key, check_snake, Event};
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
