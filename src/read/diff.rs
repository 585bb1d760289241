//! Comparing a branch with its parent: the view rows and the events that
//! differ.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::Result;
use crate::line::Lines;
use crate::query::Query;
use crate::read::{AsOf, At, Reader};
use crate::record::Record;
use crate::time::Granularity;

/// The rows of a view that differ between branch `name` (at its head)
/// and its parent, as of the branch's base or at the parent's head. An
/// empty diff means the views are equal.
pub(crate) fn diff(
    lines: Lines<'_>,
    name: &str,
    view: ViewKind,
    against: Against,
) -> Result<Vec<DiffRow>> {
    let branch = lines.branch(name)?;
    let parent = At {
        branch: branch.meta.parent.clone(),
        as_of: match against {
            Against::Base => Some(AsOf::Seq(branch.meta.base.seq)),
            Against::Head => None,
        },
    };
    let main = keyed_rows(&Reader::new(lines, &parent)?, view)?;
    let mine = keyed_rows(&Reader::new(lines, &At::head().branch(name))?, view)?;
    Ok(diff_rows(main, mine))
}

/// The events whose current state differs between branch `name` (at
/// its head) and its parent as of the branch's base or at the
/// parent's head, in id order: added, removed, or changed with the
/// fields that differ. Reads only the events either side changed
/// since the base. An empty list means the two hold the same events.
pub(crate) fn diff_events(
    lines: Lines<'_>,
    name: &str,
    against: Against,
) -> Result<Vec<EventDiff>> {
    let branch = lines.branch(name)?;
    let base = branch.meta.base.seq;
    let parent = Reader::new(
        lines,
        &At {
            branch: branch.meta.parent.clone(),
            as_of: match against {
                Against::Base => Some(AsOf::Seq(base)),
                Against::Head => None,
            },
        },
    )?;
    let mine = Reader::new(lines, &At::head().branch(name))?;
    let mut ids = branch.touched(mine.seq());
    if parent.seq() > base {
        let since = parent.changes_since(base, &Query::new())?;
        ids.extend(since.into_iter().map(|c| c.id));
        ids.sort_unstable();
        ids.dedup();
    }
    let mut out = Vec::new();
    for id in ids {
        if let Some(d) = event_diff(id, parent.get(id)?, mine.get(id)?) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Which built-in view to compare in [`crate::Annals::diff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    /// By country.
    ByCountry,
    /// By actor.
    ByActor,
    /// By date, at a granularity.
    ByDate(Granularity),
    /// By place: cells or ADMIN1 units, all time (`None`) or per month or
    /// year.
    ByPlace(crate::projection::PlaceLevel, Option<Granularity>),
}

impl ViewKind {
    /// A built-in view by its name: `by-country`, `by-actor`, `by-date`
    /// or `by-place` (`by_country`, ... too), a by-date view at
    /// `granularity` (by-place: cells, all time; other levels and buckets
    /// are [`ViewKind::ByPlace`]'s fields). The one parser of view names
    /// the CLI, HTTP and Python share.
    pub fn parse(name: &str, granularity: Granularity) -> Result<ViewKind> {
        match name {
            "by-country" | "by_country" => Ok(ViewKind::ByCountry),
            "by-actor" | "by_actor" => Ok(ViewKind::ByActor),
            "by-date" | "by_date" => Ok(ViewKind::ByDate(granularity)),
            "by-place" | "by_place" => {
                Ok(ViewKind::ByPlace(crate::projection::PlaceLevel::Cell, None))
            }
            other => Err(crate::error::Error::invalid(
                "view",
                format!("`{other}`: expected by-country, by-actor, by-date or by-place"),
            )),
        }
    }

    /// Whether `name` names the by-date view (which needs a granularity).
    pub fn is_by_date(name: &str) -> bool {
        matches!(name, "by-date" | "by_date")
    }
}

/// What a branch is compared with in [`crate::Annals::diff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Against {
    /// Main (or the parent branch) as of the branch's base.
    #[default]
    Base,
    /// Main (or the parent branch) at its head.
    Head,
}

/// One row that differs between a branch's view and its parent's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffRow {
    /// The row's key: a country code, an actor, a bucket.
    pub key: String,
    /// The parent's row (`None` if the branch added it).
    pub main: Option<Value>,
    /// The branch's row (`None` if the branch removed it).
    pub branch: Option<Value>,
}

/// How an event differs between a branch and its parent; see
/// [`crate::Annals::diff_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventDiffKind {
    /// Current on the branch only.
    Added,
    /// Current on the parent only (retracted on the branch, or created on
    /// the parent since the base when comparing with its head).
    Removed,
    /// Current on both, in different versions.
    Changed,
}

impl EventDiffKind {
    /// `added`, `removed` or `changed`, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            EventDiffKind::Added => "added",
            EventDiffKind::Removed => "removed",
            EventDiffKind::Changed => "changed",
        }
    }
}

/// One event that differs between a branch and its parent.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDiff {
    /// The event.
    pub id: Uuid,
    /// How it differs.
    pub kind: EventDiffKind,
    /// The interchange fields whose values differ (`summary`, `actors`,
    /// ...), for a changed event; empty otherwise.
    pub fields: Vec<String>,
    /// The parent's current record.
    pub main: Option<Record>,
    /// The branch's current record.
    pub branch: Option<Record>,
}

impl EventDiff {
    /// `{id, diff, fields, main, branch}`, records as [`Record::to_json`]:
    /// what `annals diff --events` prints.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id.to_string(),
            "diff": self.kind,
            "fields": self.fields,
            "main": self.main.as_ref().map(Record::to_json),
            "branch": self.branch.as_ref().map(Record::to_json),
        })
    }
}

/// The event's current record and the one on the other side, compared.
pub(crate) fn event_diff(
    id: Uuid,
    main: Option<Record>,
    branch: Option<Record>,
) -> Option<EventDiff> {
    let live = |r: Option<Record>| r.filter(|r| r.retracted_seq.is_none());
    let (main, branch) = (live(main), live(branch));
    let (kind, fields) = match (&main, &branch) {
        (None, None) => return None,
        (None, Some(_)) => (EventDiffKind::Added, Vec::new()),
        (Some(_), None) => (EventDiffKind::Removed, Vec::new()),
        (Some(a), Some(b)) if a.event == b.event => return None,
        (Some(a), Some(b)) => {
            let (a, b) = (
                crate::json::event_to_value(&a.event, None),
                crate::json::event_to_value(&b.event, None),
            );
            let (Value::Object(a), Value::Object(b)) = (a, b) else {
                return None;
            };
            let mut fields: Vec<String> = a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
                .collect();
            fields.sort();
            (EventDiffKind::Changed, fields)
        }
    };
    Some(EventDiff {
        id,
        kind,
        fields,
        main,
        branch,
    })
}

/// Rows of a view as (key, JSON), for comparison.
pub(crate) fn keyed_rows(r: &Reader<'_>, view: ViewKind) -> Result<Vec<(String, Value)>> {
    fn keyed<T: Serialize>(rows: Arc<[T]>, key: &str) -> Vec<(String, Value)> {
        rows.iter()
            .filter_map(|row| serde_json::to_value(row).ok())
            .map(|v| {
                let k = v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
                (k, v)
            })
            .collect()
    }
    Ok(match view {
        ViewKind::ByCountry => keyed(r.by_country()?, "country"),
        ViewKind::ByActor => keyed(r.by_actor()?, "actor"),
        ViewKind::ByDate(g) => r
            .by_date(g)?
            .iter()
            .filter_map(|row| serde_json::to_value(row).ok())
            .map(|v| {
                let bucket = v.get("bucket").and_then(Value::as_str).unwrap_or("");
                let p = v.get("precision").and_then(Value::as_str).unwrap_or("");
                (format!("{bucket} ({p})"), v)
            })
            .collect(),
        ViewKind::ByPlace(level, g) => r
            .by_place(level, g)?
            .iter()
            .filter_map(|row| serde_json::to_value(row).ok())
            .map(|v| {
                let area = v.get("area").and_then(Value::as_str).unwrap_or("");
                let key = match (
                    v.get("bucket").and_then(Value::as_str),
                    v.get("precision").and_then(Value::as_str),
                ) {
                    (Some(b), Some(p)) => format!("{area} {b} ({p})"),
                    _ => area.to_string(),
                };
                (key, v)
            })
            .collect(),
    })
}

/// The rows that differ between two keyed views, in key order.
pub(crate) fn diff_rows(main: Vec<(String, Value)>, branch: Vec<(String, Value)>) -> Vec<DiffRow> {
    let mut m: std::collections::BTreeMap<String, (Option<Value>, Option<Value>)> =
        std::collections::BTreeMap::new();
    for (k, v) in main {
        m.entry(k).or_default().0 = Some(v);
    }
    for (k, v) in branch {
        m.entry(k).or_default().1 = Some(v);
    }
    m.into_iter()
        .filter(|(_, (a, b))| a != b)
        .map(|(key, (main, branch))| DiffRow { key, main, branch })
        .collect()
}
