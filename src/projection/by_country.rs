//! The by-country view: per country, counts by kind, first and last
//! occurrence, and the actors involved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::by_actor::Display;
use super::fold::{bump, named, Extent};
use crate::intern::{Keys, Name, Names};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct CountryAgg {
    count: u64,
    by_kind: BTreeMap<Name, u64>,
    extent: Extent,
    /// Actor keys and how many current events name them.
    actors: BTreeMap<Name, u64>,
}

/// State of the by-country view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ByCountry {
    rows: BTreeMap<Name, CountryAgg>,
}

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
    /// Actors involved, by the name they were first seen under, sorted.
    pub actors: Vec<String>,
}

impl ByCountry {
    pub(crate) fn bump(&mut self, k: &Keys, delta: i64) {
        for c in &k.countries {
            let agg = self.rows.entry(*c).or_default();
            agg.count = agg.count.saturating_add_signed(delta);
            bump(&mut agg.by_kind, k.kind, delta);
            agg.extent.bump(&k.occurred, delta);
            for a in &k.actor_keys {
                bump(&mut agg.actors, *a, delta);
            }
            if agg.count == 0 {
                self.rows.remove(c);
            }
        }
    }

    /// Number of rows, without building them.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn rows(&self, names: &Names, display: &Display) -> Vec<CountryRow> {
        let mut rows: Vec<CountryRow> = self
            .rows
            .iter()
            .map(|(country, agg)| {
                // Keys are the lowercase names, so sorting them sorts the
                // names case-insensitively without allocating.
                let mut keys: Vec<Name> = agg.actors.keys().copied().collect();
                keys.sort_unstable_by(|a, b| names.name(*a).cmp(names.name(*b)));
                let shown: Vec<String> = keys
                    .into_iter()
                    .map(|k| display.name(names, k).to_string())
                    .collect();
                CountryRow {
                    country: names.name(*country).to_string(),
                    count: agg.count,
                    by_kind: named(names, &agg.by_kind),
                    first: agg.extent.first(),
                    last: agg.extent.last(),
                    actors: shown,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.country.cmp(&b.country));
        rows
    }
}
