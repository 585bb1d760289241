//! The by-country view: per country, counts by kind, first and last
//! occurrence, and the actors involved (the first [`ACTORS_IN_ROW`] by
//! name in the row, all of them a page at a time with
//! [`country_actors`]). Read from the views' cells, one country's cells
//! at a time.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cells::{counts, field, past, point_at, put_str, shown, then, Dec, Layered, Part};
use crate::error::Result;

/// Actors listed in a by-country row; past that, the row says there are
/// more (a country of a large dataset has tens of thousands).
pub const ACTORS_IN_ROW: usize = 50;

/// One row of the by-country view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountryRow {
    /// ISO 3166-1 alpha-2 code.
    pub country: String,
    /// Current events concerning the country.
    pub count: u64,
    /// Those events counted by kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Earliest occurrence (the earliest `from`), at its precision.
    pub first: Option<String>,
    /// Latest occurrence (the latest `to`), at its precision.
    pub last: Option<String>,
    /// Actors involved, by the name they were first seen under, sorted by
    /// their keys; at most [`ACTORS_IN_ROW`] (see `more_actors`).
    pub actors: Vec<String>,
    /// Whether more actors are involved than `actors` lists (page through
    /// them all with `Annals::country_actors`).
    pub more_actors: bool,
}

/// One actor of a country, as paged by [`country_actors`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountryActor {
    /// The actor's name as first seen in the log.
    pub actor: String,
    /// The actor's key (its name case-folded), which orders the pages.
    pub key: String,
    /// Current events of the country naming the actor.
    pub count: u64,
}

fn country_prefix(country: &str) -> Vec<u8> {
    let mut p = vec![Part::Country.byte()];
    put_str(&mut p, country);
    p
}

/// The row of one country (none if no current event concerns it).
pub(crate) fn country_row(v: &Layered, country: &str) -> Result<Option<CountryRow>> {
    let p = country_prefix(country);
    let count = match v.first(&then(&p, field::COUNT), &then(&p, field::COUNT + 1))? {
        Some((_, n)) => n as u64,
        None => return Ok(None),
    };
    let by_kind = counts(v, &then(&p, field::KIND))?;
    let first = v
        .first(&then(&p, field::C_FIRST), &then(&p, field::C_FIRST + 1))?
        .and_then(|(k, _)| point_at(&k, p.len() + 1, false));
    let last = v
        .first(&then(&p, field::C_LAST), &then(&p, field::C_LAST + 1))?
        .and_then(|(k, _)| point_at(&k, p.len() + 1, true));
    let mut actors = Vec::new();
    let mut more_actors = false;
    let lo = then(&p, field::C_ACTOR);
    for c in v.scan(&lo, Some(&past(&lo))) {
        let (k, n) = c?;
        if n <= 0 {
            continue;
        }
        if actors.len() == ACTORS_IN_ROW {
            more_actors = true;
            break;
        }
        let mut d = Dec::new(k.get(lo.len()..).unwrap_or_default());
        if let (Some(key), Some(how)) = (d.str(), d.str()) {
            actors.push(shown(&key, &how));
        }
    }
    Ok(Some(CountryRow {
        country: country.to_string(),
        count,
        by_kind,
        first,
        last,
        actors,
        more_actors,
    }))
}

/// Every row of the by-country view, by country code.
pub(crate) fn country_rows(v: &Layered) -> Result<Vec<CountryRow>> {
    let mut rows = Vec::new();
    let mut lo = vec![Part::Country.byte()];
    let hi = vec![Part::Country.byte() + 1];
    loop {
        let Some(c) = v.scan(&lo, Some(&hi)).next() else {
            break;
        };
        let (k, _) = c?;
        let Some(country) = k.get(1..).and_then(|r| Dec::new(r).str()) else {
            break;
        };
        let p = country_prefix(&country);
        if let Some(row) = country_row(v, &country)? {
            rows.push(row);
        }
        lo = past(&p);
    }
    Ok(rows)
}

/// A page of a country's actors: those whose keys sort after `after`
/// (from the first if none), at most `limit`.
pub(crate) fn country_actors(
    v: &Layered,
    country: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<CountryActor>> {
    let lo = then(&country_prefix(country), field::C_ACTOR);
    let hi = past(&lo);
    let mut start = lo.clone();
    if let Some(a) = after {
        put_str(&mut start, a);
        // Past every display name of that key.
        start = past(&start);
    }
    let mut out = Vec::new();
    for c in v.scan(&start, Some(&hi)) {
        let (k, n) = c?;
        if n <= 0 {
            continue;
        }
        if out.len() == limit {
            break;
        }
        let mut d = Dec::new(k.get(lo.len()..).unwrap_or_default());
        if let (Some(key), Some(how)) = (d.str(), d.str()) {
            out.push(CountryActor {
                actor: shown(&key, &how),
                key,
                count: n as u64,
            });
        }
    }
    Ok(out)
}
