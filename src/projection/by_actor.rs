//! The by-actor view: per actor, counts by kind and by role, countries,
//! first and last occurrence. Read from the views' cells: the whole view
//! in one pass, or one actor's cells.

use std::collections::BTreeMap;

use serde::Serialize;

use super::cells::{counts, field, past, point_at, put_str, shown, then, Dec, Layered, Part};
use crate::error::Result;

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

fn actor_prefix(key: &str) -> Vec<u8> {
    let mut p = vec![Part::Actor.byte()];
    put_str(&mut p, key);
    p
}

/// The row of one actor, by key (none if no current event names it).
pub(crate) fn actor_row(v: &Layered, key: &str) -> Result<Option<ActorRow>> {
    let p = actor_prefix(key);
    let lo = then(&p, field::COUNT);
    let Some((k, n)) = v.first(&lo, &past(&lo))? else {
        return Ok(None);
    };
    let how = k.get(lo.len()..).and_then(|r| Dec::new(r).str());
    let actor = shown(key, how.as_deref().unwrap_or_default());
    let first = v
        .first(&then(&p, field::A_FIRST), &then(&p, field::A_FIRST + 1))?
        .and_then(|(k, _)| point_at(&k, p.len() + 1, false));
    let last = v
        .first(&then(&p, field::A_LAST), &then(&p, field::A_LAST + 1))?
        .and_then(|(k, _)| point_at(&k, p.len() + 1, true));
    Ok(Some(ActorRow {
        actor,
        count: n as u64,
        by_kind: counts(v, &then(&p, field::KIND))?,
        by_role: counts(v, &then(&p, field::A_ROLE))?,
        countries: counts(v, &then(&p, field::A_COUNTRY))?
            .into_keys()
            .collect(),
        first,
        last,
    }))
}

/// Rows of the by-actor view whose keys sort after `after` (from the
/// first if none), at most `limit` (all if none), by key: one pass over
/// the cells.
pub(crate) fn actor_rows(
    v: &Layered,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<ActorRow>> {
    let mut lo = vec![Part::Actor.byte()];
    if let Some(a) = after {
        lo = past(&actor_prefix(a));
    }
    let hi = vec![Part::Actor.byte() + 1];
    let mut rows: Vec<ActorRow> = Vec::new();
    // The prefix of the row being read (its actor key, written).
    let mut current: Vec<u8> = Vec::new();
    for c in v.scan(&lo, Some(&hi)) {
        let (k, n) = c?;
        if n <= 0 {
            continue;
        }
        let mut d = Dec::new(&k[1..]);
        let Some(key) = d.str() else { continue };
        let plen = 1 + d.pos();
        let (prefix, rest) = k.split_at(plen);
        if prefix != current.as_slice() {
            if limit.is_some_and(|l| rows.len() == l) {
                break;
            }
            current = prefix.to_vec();
            rows.push(ActorRow {
                actor: String::new(),
                count: 0,
                by_kind: BTreeMap::new(),
                by_role: BTreeMap::new(),
                countries: Vec::new(),
                first: None,
                last: None,
            });
        }
        let Some(row) = rows.last_mut() else { continue };
        let mut d = Dec::new(rest);
        match d.byte() {
            Some(field::COUNT) => {
                row.count = n as u64;
                row.actor = shown(&key, &d.str().unwrap_or_default());
            }
            Some(field::KIND) => {
                row.by_kind.insert(d.str().unwrap_or_default(), n as u64);
            }
            Some(field::A_ROLE) => {
                row.by_role.insert(d.str().unwrap_or_default(), n as u64);
            }
            Some(field::A_COUNTRY) => row.countries.push(d.str().unwrap_or_default()),
            Some(field::A_FIRST) if row.first.is_none() => {
                row.first = point_at(rest, 1, false);
            }
            Some(field::A_LAST) if row.last.is_none() => {
                row.last = point_at(rest, 1, true);
            }
            _ => {}
        }
    }
    Ok(rows)
}
