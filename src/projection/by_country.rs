//! The by-country view: per country, counts by kind, first and last
//! occurrence, and the actors involved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::by_actor::ByActor;
use super::{bump, Extent};
use crate::model::{actor_key, Event};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct CountryAgg {
    count: u64,
    by_kind: BTreeMap<String, u64>,
    extent: Extent,
    /// Actor keys (see [`actor_key`]) and how many current events name them.
    actors: BTreeMap<String, u64>,
}

/// State of the by-country view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ByCountry {
    rows: BTreeMap<String, CountryAgg>,
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
    pub(crate) fn bump(&mut self, e: &Event, delta: i64) {
        let mut keys: Vec<String> = e.actors.iter().map(|a| actor_key(&a.name)).collect();
        keys.sort();
        keys.dedup();
        for c in &e.countries {
            let agg = self.rows.entry(c.clone()).or_default();
            agg.count = agg.count.saturating_add_signed(delta);
            bump(&mut agg.by_kind, e.kind.clone(), delta);
            agg.extent.bump(e, delta);
            for k in &keys {
                bump(&mut agg.actors, k.clone(), delta);
            }
            if agg.count == 0 {
                self.rows.remove(c);
            }
        }
    }

    pub(crate) fn rows(&self, actors: &ByActor) -> Vec<CountryRow> {
        self.rows
            .iter()
            .map(|(country, agg)| {
                let mut names: Vec<String> =
                    agg.actors.keys().map(|k| actors.display_name(k)).collect();
                names.sort_by_key(|n| n.to_lowercase());
                CountryRow {
                    country: country.clone(),
                    count: agg.count,
                    by_kind: agg.by_kind.clone(),
                    first: agg.extent.first(),
                    last: agg.extent.last(),
                    actors: names,
                }
            })
            .collect()
    }
}
