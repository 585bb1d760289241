//! The in-memory index over the log: where each event's versions are, and
//! posting lists of current events by country, actor and kind.
//!
//! Nothing here is the source of truth: the index is a fold over the log,
//! checkpointed with the views and caught up from the log on open.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::intern::{Keys, Name, Names};
use crate::log::{Body, Entry};
use crate::model::actor_key;
use crate::query::Query;
use crate::time::Micros;

/// What the index keeps per event (about 50 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// Seq of the entry that created the event.
    pub seq: u64,
    /// Its transaction time.
    pub recorded_at: Micros,
    /// Seq of the entry holding the current version.
    pub current: u64,
    /// The current version's occurrence interval.
    pub start: Micros,
    pub end: Micros,
    /// Seq of the retraction, if retracted.
    pub retracted: Option<u64>,
}

impl Meta {
    pub(crate) fn corrected_seq(&self) -> Option<u64> {
        (self.current != self.seq).then_some(self.current)
    }
}

/// Dense event numbers: positions in [`Index::events`].
pub(crate) type EventNo = u32;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Index {
    events: Vec<Meta>,
    ids: HashMap<Uuid, EventNo>,
    /// Corrections (and a final retraction) of events that have them.
    later_versions: HashMap<EventNo, Vec<u64>>,
    countries: HashMap<Name, Vec<EventNo>>,
    actors: HashMap<Name, Vec<EventNo>>,
    kinds: HashMap<Name, Vec<EventNo>>,
    /// The country postings again, split by the month their occurrence
    /// starts in (events up to [`SHORT`] long), or under [`LONG`]: a
    /// country + time query reads the few months that can overlap its
    /// range instead of the country's whole list.
    country_months: HashMap<(Name, i32), Vec<EventNo>>,
}

/// Longest occurrence kept in month buckets: a calendar month and a day.
const SHORT: Micros = 32 * 86_400_000_000;
/// The bucket of longer occurrences (years, long intervals).
const LONG: i32 = i32::MIN;
/// A time range spanning more months than this reads whole lists.
const MAX_BUCKETS: i32 = 1200;

/// Months since year 0 of a UTC instant.
fn month_of(t: Micros) -> i32 {
    use chrono::Datelike;
    chrono::DateTime::from_timestamp_micros(t).map_or(LONG, |d| d.year() * 12 + d.month0() as i32)
}

/// The bucket of an occurrence.
fn bucket(o: &crate::time::Occurred) -> i32 {
    if o.end() - o.start() <= SHORT {
        month_of(o.start())
    } else {
        LONG
    }
}

fn post(list: &mut Vec<EventNo>, n: EventNo) {
    if list.last().is_none_or(|&last| last < n) {
        list.push(n);
    } else if let Err(at) = list.binary_search(&n) {
        list.insert(at, n);
    }
}

fn unpost<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<EventNo>>, key: K, n: EventNo) {
    if let Some(list) = map.get_mut(&key) {
        if let Ok(at) = list.binary_search(&n) {
            list.remove(at);
        }
        if list.is_empty() {
            map.remove(&key);
        }
    }
}

impl Index {
    /// Number of events ever created (retracted ones included).
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// The event's number and metadata.
    pub(crate) fn lookup(&self, id: &Uuid) -> Option<(EventNo, Meta)> {
        let n = *self.ids.get(id)?;
        self.events.get(n as usize).map(|m| (n, *m))
    }

    pub(crate) fn meta(&self, n: EventNo) -> Option<Meta> {
        self.events.get(n as usize).copied()
    }

    /// Every version's seq, the creation first.
    pub(crate) fn versions(&self, n: EventNo) -> Vec<u64> {
        let mut v: Vec<u64> = self.meta(n).map(|m| vec![m.seq]).unwrap_or_default();
        if let Some(later) = self.later_versions.get(&n) {
            v.extend(later);
        }
        v
    }

    /// Seq of the version current as of `seq` (none if the event did not
    /// exist yet or was retracted by then).
    pub(crate) fn version_at(&self, n: EventNo, seq: u64) -> Option<u64> {
        let meta = self.meta(n)?;
        // Called once per replayed correction: walk the versions in place
        // rather than collecting them.
        let later = self.later_versions.get(&n).into_iter().flatten().copied();
        let last = std::iter::once(meta.seq)
            .chain(later)
            .take_while(|&v| v <= seq)
            .last()?;
        (meta.retracted != Some(last)).then_some(last)
    }

    fn post_all(&mut self, n: EventNo, k: &Keys) {
        let b = bucket(&k.occurred);
        for c in &k.countries {
            post(self.countries.entry(*c).or_default(), n);
            post(self.country_months.entry((*c, b)).or_default(), n);
        }
        for a in &k.actor_keys {
            post(self.actors.entry(*a).or_default(), n);
        }
        post(self.kinds.entry(k.kind).or_default(), n);
    }

    fn unpost_all(&mut self, n: EventNo, k: &Keys) {
        let b = bucket(&k.occurred);
        for c in &k.countries {
            unpost(&mut self.countries, *c, n);
            unpost(&mut self.country_months, (*c, b), n);
        }
        for a in &k.actor_keys {
            unpost(&mut self.actors, *a, n);
        }
        unpost(&mut self.kinds, k.kind, n);
    }

    /// Folds one entry in. `before` and `after` are the keys of the event's
    /// current version before and after the entry.
    pub(crate) fn apply(&mut self, entry: &Entry, before: Option<&Keys>, after: Option<&Keys>) {
        match &entry.body {
            Body::Event(e) => {
                let Ok(n) = EventNo::try_from(self.events.len()) else {
                    return;
                };
                self.events.push(Meta {
                    seq: entry.seq,
                    recorded_at: entry.recorded_at,
                    current: entry.seq,
                    start: e.occurred.start(),
                    end: e.occurred.end(),
                    retracted: None,
                });
                self.ids.insert(e.id, n);
                if let Some(k) = after {
                    self.post_all(n, k);
                }
            }
            Body::Correction(e) => {
                let Some(&n) = self.ids.get(&e.id) else {
                    return;
                };
                if let Some(b) = before {
                    self.unpost_all(n, b);
                }
                if let Some(k) = after {
                    self.post_all(n, k);
                }
                if let Some(m) = self.events.get_mut(n as usize) {
                    m.current = entry.seq;
                    m.start = e.occurred.start();
                    m.end = e.occurred.end();
                }
                self.later_versions.entry(n).or_default().push(entry.seq);
            }
            Body::Retraction { id, .. } => {
                let Some(&n) = self.ids.get(id) else {
                    return;
                };
                if let Some(b) = before {
                    self.unpost_all(n, b);
                }
                if let Some(m) = self.events.get_mut(n as usize) {
                    m.retracted = Some(entry.seq);
                }
                self.later_versions.entry(n).or_default().push(entry.seq);
            }
        }
    }

    /// Number of events created at or before `seq` (events are numbered in
    /// creation order, so they are a prefix).
    pub(crate) fn created_upto(&self, seq: u64) -> usize {
        self.events.partition_point(|m| m.seq <= seq)
    }

    /// Events among the first `prefix` that changed (corrected or
    /// retracted) after `seq`: their state as of `seq` is not their current
    /// one. Costs one look at each corrected or retracted event.
    pub(crate) fn changed_after(&self, seq: u64, prefix: usize) -> HashSet<EventNo> {
        self.later_versions
            .iter()
            .filter(|(n, v)| (**n as usize) < prefix && v.last().is_some_and(|&l| l > seq))
            .map(|(n, _)| *n)
            .collect()
    }

    /// Current events matching the query's filters, ordered by occurrence
    /// start then seq, up to its limit. Touches only posting lists and
    /// metadata: no event is read.
    pub(crate) fn select(&self, names: &Names, q: &Query) -> Vec<Meta> {
        let mut hits = self.select_where(names, q, |_| true);
        hits.sort_unstable_by_key(|m| (m.start, m.seq));
        if let Some(limit) = q.limit {
            hits.truncate(limit);
        }
        hits
    }

    /// Like [`Index::select`] for the events `keep` accepts, unsorted and
    /// unlimited.
    pub(crate) fn select_where(
        &self,
        names: &Names,
        q: &Query,
        keep_event: impl Fn(EventNo) -> bool,
    ) -> Vec<Meta> {
        let (lo, hi) = q.range();
        let lists = [
            self.countries_in(names, q, lo, hi),
            self.union(names, &self.actors, q.actors.iter().map(|a| actor_key(a))),
            self.union(names, &self.kinds, q.kinds.iter().cloned()),
        ];
        let mut candidates: Option<Vec<EventNo>> = None;
        for list in lists.into_iter().flatten() {
            candidates = Some(match candidates {
                None => list,
                Some(c) => intersect(&c, &list),
            });
        }
        let keep = |m: &Meta| {
            m.retracted.is_none()
                && if q.within {
                    lo <= m.start && m.end <= hi
                } else {
                    m.start < hi && lo < m.end
                }
        };
        match candidates {
            Some(c) => c
                .into_iter()
                .filter(|&n| keep_event(n))
                .filter_map(|n| self.meta(n))
                .filter(|m| keep(m))
                .collect(),
            None => self
                .events
                .iter()
                .enumerate()
                .filter(|(n, m)| EventNo::try_from(*n).is_ok_and(&keep_event) && keep(m))
                .map(|(_, m)| *m)
                .collect(),
        }
    }

    /// The union of the posting lists of `keys`; `None` when no key is
    /// given (the filter is off).
    /// Events of the query's countries that may overlap `[lo, hi)`: from
    /// the month buckets when the range is bounded, else whole lists.
    fn countries_in(
        &self,
        names: &Names,
        q: &Query,
        lo: Micros,
        hi: Micros,
    ) -> Option<Vec<EventNo>> {
        let (first, last) = (
            month_of(lo.saturating_sub(SHORT)),
            month_of(hi.saturating_sub(1)),
        );
        let bounded = lo != Micros::MIN && hi != Micros::MAX && first != LONG && last != LONG;
        if !bounded || last - first > MAX_BUCKETS || q.countries.is_empty() {
            return self.union(names, &self.countries, q.countries.iter().cloned());
        }
        let mut out: Vec<EventNo> = Vec::new();
        for c in q.countries.iter().filter_map(|c| names.get(c)) {
            for m in (first..=last).chain([LONG]) {
                if let Some(list) = self.country_months.get(&(c, m)) {
                    out.extend_from_slice(list);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    fn union(
        &self,
        names: &Names,
        map: &HashMap<Name, Vec<EventNo>>,
        keys: impl Iterator<Item = String>,
    ) -> Option<Vec<EventNo>> {
        let mut any = false;
        let mut out: Vec<EventNo> = Vec::new();
        for k in keys {
            any = true;
            if let Some(list) = names.get(&k).and_then(|n| map.get(&n)) {
                out.extend_from_slice(list);
            }
        }
        out.sort_unstable();
        out.dedup();
        any.then_some(out)
    }

    /// Checks event `n` against the keys of its current version (`None`
    /// if retracted): it is in exactly the posting lists of those keys.
    /// Returns what is wrong, if anything.
    pub(crate) fn check_postings(&self, n: EventNo, keys: Option<&Keys>) -> Option<String> {
        let k = keys?;
        let has = |map: &HashMap<Name, Vec<EventNo>>, key: Name| {
            map.get(&key).is_some_and(|l| l.binary_search(&n).is_ok())
        };
        if !has(&self.kinds, k.kind) {
            return Some("missing from the kind index".into());
        }
        if let Some(c) = k.countries.iter().find(|c| !has(&self.countries, **c)) {
            return Some(format!("missing from the country index (name {c})"));
        }
        let b = bucket(&k.occurred);
        let in_month = |c: &Name| {
            self.country_months
                .get(&(*c, b))
                .is_some_and(|l| l.binary_search(&n).is_ok())
        };
        if let Some(c) = k.countries.iter().find(|c| !in_month(c)) {
            return Some(format!("missing from the country-month index (name {c})"));
        }
        if k.actor_keys.iter().any(|a| !has(&self.actors, *a)) {
            return Some("missing from the actor index".into());
        }
        None
    }

    /// Total entries of all posting lists, to check that none is stale:
    /// it must equal the sum of the keys of the live events.
    pub(crate) fn posting_count(&self) -> usize {
        let months: usize = self.country_months.values().map(Vec::len).sum();
        [&self.countries, &self.actors, &self.kinds]
            .iter()
            .flat_map(|m| m.values())
            .map(Vec::len)
            .sum::<usize>()
            + months
    }

    /// Each event's metadata, in creation order.
    pub(crate) fn metas(&self) -> &[Meta] {
        &self.events
    }

    /// Number of current (not retracted) events.
    pub(crate) fn current_count(&self) -> usize {
        self.events.iter().filter(|m| m.retracted.is_none()).count()
    }

    /// Number of events with at least one correction.
    pub(crate) fn corrected_count(&self) -> usize {
        self.events.iter().filter(|m| m.current != m.seq).count()
    }
}

fn intersect(a: &[EventNo], b: &[EventNo]) -> Vec<EventNo> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        match x.cmp(&y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(x);
                i += 1;
                j += 1;
            }
        }
    }
    out
}
