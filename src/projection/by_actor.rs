//! The by-actor view: per actor, counts by kind and by role, countries,
//! first and last occurrence.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{bump, Extent};
use crate::model::{actor_key, Event};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ActorAgg {
    count: u64,
    by_kind: BTreeMap<String, u64>,
    by_role: BTreeMap<String, u64>,
    countries: BTreeMap<String, u64>,
    extent: Extent,
}

/// State of the by-actor view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ByActor {
    rows: BTreeMap<String, ActorAgg>,
    /// The name each actor key was first seen under in the log. Never
    /// forgotten, so that it does not depend on later retractions.
    names: BTreeMap<String, String>,
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
    pub(crate) fn remember_names(&mut self, e: &Event) {
        for a in &e.actors {
            self.names
                .entry(actor_key(&a.name))
                .or_insert_with(|| a.name.clone());
        }
    }

    pub(crate) fn display_name(&self, key: &str) -> String {
        self.names
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    pub(crate) fn bump(&mut self, e: &Event, delta: i64) {
        let mut keyed: Vec<(String, &str)> = e
            .actors
            .iter()
            .map(|a| (actor_key(&a.name), a.role.as_str()))
            .collect();
        keyed.sort();
        for (i, (key, role)) in keyed.iter().enumerate() {
            let agg = self.rows.entry(key.clone()).or_default();
            bump(&mut agg.by_role, role.to_string(), delta);
            // An actor named twice (in two roles) counts once per event.
            let first_of_key = i == 0 || keyed.get(i - 1).is_some_and(|(k, _)| k != key);
            if first_of_key {
                agg.count = agg.count.saturating_add_signed(delta);
                bump(&mut agg.by_kind, e.kind.clone(), delta);
                for c in &e.countries {
                    bump(&mut agg.countries, c.clone(), delta);
                }
                agg.extent.bump(e, delta);
            }
            if agg.count == 0 && agg.by_role.is_empty() {
                self.rows.remove(key);
            }
        }
    }

    pub(crate) fn rows(&self) -> Vec<ActorRow> {
        self.rows
            .iter()
            .map(|(key, agg)| ActorRow {
                actor: self.display_name(key),
                count: agg.count,
                by_kind: agg.by_kind.clone(),
                by_role: agg.by_role.clone(),
                countries: agg.countries.keys().cloned().collect(),
                first: agg.extent.first(),
                last: agg.extent.last(),
            })
            .collect()
    }
}
