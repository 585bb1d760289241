//! The by-actor view: per actor, counts by kind and by role, countries,
//! first and last occurrence.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fold::{bump, named, Extent};
use crate::intern::{Keys, Name, Names};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ActorAgg {
    count: u64,
    by_kind: BTreeMap<Name, u64>,
    by_role: BTreeMap<Name, u64>,
    countries: BTreeMap<Name, u64>,
    extent: Extent,
}

/// State of the by-actor view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ByActor {
    rows: BTreeMap<Name, ActorAgg>,
}

/// The name each actor key was first seen under in the log. Never
/// forgotten, so that it does not depend on later retractions. Kept apart
/// from the by-actor rows because the by-country view shows it too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Display {
    names: BTreeMap<Name, Name>,
}

impl Display {
    pub(crate) fn remember(&mut self, k: &Keys) {
        for (key, shown) in &k.display {
            self.names.entry(*key).or_insert(*shown);
        }
    }

    pub(crate) fn name<'a>(&self, names: &'a Names, key: Name) -> &'a str {
        names.name(self.names.get(&key).copied().unwrap_or(key))
    }
}

/// One row of the by-actor view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActorRow {
    /// The actor's name as first seen in the log.
    pub actor: String,
    /// Current events naming the actor (in any role).
    pub count: u64,
    /// Those events counted by kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Those events counted by the actor's role in them.
    pub by_role: BTreeMap<String, u64>,
    /// Countries of those events, sorted.
    pub countries: Vec<String>,
    /// Earliest occurrence (the earliest `from`), at its precision.
    pub first: Option<String>,
    /// Latest occurrence (the latest `to`), at its precision.
    pub last: Option<String>,
}

impl ByActor {
    pub(crate) fn bump(&mut self, k: &Keys, delta: i64) {
        for (key, role) in &k.actors {
            bump(
                &mut self.rows.entry(*key).or_default().by_role,
                *role,
                delta,
            );
        }
        // An actor named in two roles counts once per event.
        for key in &k.actor_keys {
            let agg = self.rows.entry(*key).or_default();
            agg.count = agg.count.saturating_add_signed(delta);
            bump(&mut agg.by_kind, k.kind, delta);
            for c in &k.countries {
                bump(&mut agg.countries, *c, delta);
            }
            agg.extent.bump(&k.occurred, delta);
            if agg.count == 0 {
                self.rows.remove(key);
            }
        }
    }

    /// Number of rows, without building them.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn rows(&self, names: &Names, display: &Display) -> Vec<ActorRow> {
        let mut rows: Vec<(&str, ActorRow)> = self
            .rows
            .iter()
            .map(|(key, agg)| {
                let mut countries: Vec<String> = agg
                    .countries
                    .keys()
                    .map(|c| names.name(*c).to_string())
                    .collect();
                countries.sort();
                (
                    names.name(*key),
                    ActorRow {
                        actor: display.name(names, *key).to_string(),
                        count: agg.count,
                        by_kind: named(names, &agg.by_kind),
                        by_role: named(names, &agg.by_role),
                        countries,
                        first: agg.extent.first(),
                        last: agg.extent.last(),
                    },
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        rows.into_iter().map(|(_, r)| r).collect()
    }
}
