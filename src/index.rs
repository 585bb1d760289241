//! The index over the log: id → event number, each event's versions, and
//! posting lists of current events by country, country + month, actor and
//! kind.
//!
//! It is layered like an LSM tree: immutable [`Segment`] files on disk
//! cover the log up to the last flush, and a [`Tail`] in memory covers the
//! entries since, so memory is bounded by the tail, not by the log.
//! Nothing here is the source of truth: the index is a fold over the log,
//! flushed with a manifest and caught up from the log on open.
//!
//! Removing a posting never rewrites a segment. Each source (a segment or
//! the tail) holds postings only for the versions it made current, and a
//! posting is live only if the event's current version was made in the
//! same source (its *home*) and is not a retraction. A correction in a
//! later source moves the event's home, which silently retires the older
//! postings; merging two segments drops them for good.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::intern::{Keys, Name, Names};
use crate::log::{Body, Entry};
use crate::model::{actor_key, PlacePrecision};
use crate::place::{key_ranges, place_of_key, Area, PlaceMatch, PLACE_LIST};
use crate::query::Query;
use crate::segment::{self, Changed, Created, Parts, Segment};
use crate::time::Micros;

/// An event's place in the log and its current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Whether the event's payload was excised: no version is readable.
    pub excised: bool,
}

impl Meta {
    pub(crate) fn corrected_seq(&self) -> Option<u64> {
        (self.current != self.seq).then_some(self.current)
    }

    /// The state after a creation and its later versions, in seq order.
    fn compose(c: Created, changes: &[(u64, Changed)]) -> Meta {
        let mut m = Meta {
            seq: c.seq,
            recorded_at: c.recorded_at,
            current: c.seq,
            start: c.start,
            end: c.end,
            retracted: None,
            excised: false,
        };
        for (seq, ch) in changes {
            if ch.retracted {
                // Only an excision retracts an event in its creating entry.
                m.excised |= *seq == c.seq;
                m.retracted = Some(*seq);
            } else {
                m.current = *seq;
                m.start = ch.start;
                m.end = ch.end;
            }
        }
        m
    }
}

/// Dense event numbers, in creation order.
pub(crate) type EventNo = u32;

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

/// Posting lists are named by one number: two bits of list kind, then the
/// interned name (and for country + month lists, the month in the low 24
/// bits), so that a segment keeps all lists in one sorted table.
const COUNTRY: u64 = 0;
const COUNTRY_MONTH: u64 = 1;
const ACTOR: u64 = 2;
const KIND: u64 = 3;
const MONTH_BITS: u32 = 24;
const LONG_CODE: u64 = (1 << MONTH_BITS) - 1;

fn list(kind: u64, name: Name) -> u64 {
    kind << 62 | u64::from(name)
}

fn month_list(name: Name, bucket: i32) -> u64 {
    let code = if bucket == LONG {
        LONG_CODE
    } else {
        // Valid times are within ±262,143 years: far inside 24 bits.
        (i64::from(bucket) + (1 << (MONTH_BITS - 1))) as u64 & (LONG_CODE - 1)
    };
    COUNTRY_MONTH << 62 | u64::from(name) << MONTH_BITS | code
}

/// The posting lists an event version belongs to.
fn lists_of(k: &Keys) -> Vec<u64> {
    let b = bucket(&k.occurred);
    let mut out = Vec::with_capacity(1 + 2 * k.countries.len() + k.actor_keys.len());
    for c in &k.countries {
        out.push(list(COUNTRY, *c));
        out.push(month_list(*c, b));
    }
    out.extend(k.actor_keys.iter().map(|a| list(ACTOR, *a)));
    out.push(list(KIND, k.kind));
    out.extend(k.place);
    out
}

/// A multiset digest of postings: equal digests mean equal sets (with
/// overwhelming probability), in constant memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Digest {
    pub count: u64,
    sum: u64,
}

impl Digest {
    pub(crate) fn add(&mut self, list: u64, n: EventNo) {
        let mut h = [0u8; 12];
        h[..8].copy_from_slice(&list.to_le_bytes());
        h[8..].copy_from_slice(&n.to_le_bytes());
        let mut w = [0u8; 8];
        w.copy_from_slice(&blake3::hash(&h).as_bytes()[..8]);
        self.count += 1;
        self.sum = self.sum.wrapping_add(u64::from_le_bytes(w));
    }

    /// Adds the postings an event version should have.
    pub(crate) fn add_keys(&mut self, n: EventNo, k: &Keys) {
        for l in lists_of(k) {
            self.add(l, n);
        }
    }
}

/// Where an event's current version was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Home {
    Segment(usize),
    Tail,
}

/// What arrived since the last flush, in memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tail {
    /// First seq and first event number the tail covers.
    seq_lo: u64,
    ev_lo: EventNo,
    /// Entries folded in.
    entries: u64,
    created: Vec<Created>,
    ids: HashMap<Uuid, EventNo>,
    /// Later versions made in the tail, of any event.
    changes: BTreeMap<EventNo, Vec<(u64, Changed)>>,
    /// Exact postings of the versions the tail made current (but places).
    postings: HashMap<u64, Vec<EventNo>>,
    /// Their place postings as (place list, event) pairs, in order: most
    /// places are one event's, so a list each would cost an allocation
    /// per event, and queries read them by ranges of keys.
    places: BTreeSet<(u64, EventNo)>,
}

impl Tail {
    fn post(&mut self, n: EventNo, k: &Keys) {
        if let Some(p) = k.place {
            self.places.insert((p, n));
        }
        for l in lists_of(k).into_iter().filter(|l| Some(*l) != k.place) {
            let list = self.postings.entry(l).or_default();
            if list.last().is_none_or(|&last| last < n) {
                list.push(n);
            } else if let Err(at) = list.binary_search(&n) {
                list.insert(at, n);
            }
        }
    }

    fn unpost(&mut self, n: EventNo, k: &Keys) {
        if let Some(p) = k.place {
            self.places.remove(&(p, n));
        }
        for l in lists_of(k).into_iter().filter(|l| Some(*l) != k.place) {
            if let Some(list) = self.postings.get_mut(&l) {
                if let Ok(at) = list.binary_search(&n) {
                    list.remove(at);
                }
                if list.is_empty() {
                    self.postings.remove(&l);
                }
            }
        }
    }
}

/// The index: segments (oldest first) and the tail.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    segments: Vec<Arc<Segment>>,
    tail: Tail,
}

impl Default for Index {
    fn default() -> Index {
        Index::with_segments(Vec::new())
    }
}

fn unknown(n: EventNo) -> Error {
    Error::derived("index", format!("the index has no event number {n}"))
}

impl Index {
    /// An index over segments (oldest first, adjacent, from seq 1), with
    /// an empty tail.
    pub(crate) fn with_segments(segments: Vec<Arc<Segment>>) -> Index {
        let (seq_lo, ev_lo) = segments
            .last()
            .map_or((1, 0), |s| (s.footer.seq_hi + 1, s.footer.ev_hi));
        Index {
            segments,
            tail: Tail {
                seq_lo,
                ev_lo,
                ..Tail::default()
            },
        }
    }

    /// The segments, oldest first.
    pub(crate) fn segments(&self) -> &[Arc<Segment>] {
        &self.segments
    }

    /// Entries folded into the tail since the last flush.
    pub(crate) fn tail_entries(&self) -> u64 {
        self.tail.entries
    }

    /// Number of events ever created (retracted ones included).
    pub(crate) fn len(&self) -> usize {
        self.tail.ev_lo as usize + self.tail.created.len()
    }

    fn segment_of(&self, n: EventNo) -> Option<&Arc<Segment>> {
        let i = self.segments.partition_point(|s| s.footer.ev_hi <= n);
        self.segments.get(i).filter(|s| s.footer.ev_lo <= n)
    }

    fn created(&self, n: EventNo) -> Result<Created> {
        if n >= self.tail.ev_lo {
            return self
                .tail
                .created
                .get((n - self.tail.ev_lo) as usize)
                .copied()
                .ok_or_else(|| unknown(n));
        }
        self.segment_of(n).ok_or_else(|| unknown(n))?.created(n)
    }

    /// Later versions of event `n`, in seq order.
    fn changes(&self, n: EventNo) -> Result<Vec<(u64, Changed)>> {
        let mut out = Vec::new();
        if n < self.tail.ev_lo {
            let from = self.segments.partition_point(|s| s.footer.ev_hi <= n);
            for s in self.segments.get(from..).unwrap_or_default() {
                out.extend(s.changes_of(n)?);
            }
        }
        if let Some(c) = self.tail.changes.get(&n) {
            out.extend_from_slice(c);
        }
        Ok(out)
    }

    /// Whether event `n` has any later version (cheap: in-memory lists).
    fn is_changed(&self, n: EventNo) -> Result<bool> {
        if self.tail.changes.contains_key(&n) {
            return Ok(true);
        }
        for s in self.segments.iter().rev() {
            if s.footer.ev_hi <= n {
                break;
            }
            if s.has_changes(n)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn home(&self, n: EventNo) -> Result<Home> {
        if n >= self.tail.ev_lo || self.tail.changes.contains_key(&n) {
            return Ok(Home::Tail);
        }
        for (i, s) in self.segments.iter().enumerate().rev() {
            if s.footer.ev_lo <= n || s.has_changes(n)? {
                return Ok(Home::Segment(i));
            }
        }
        Err(unknown(n))
    }

    /// The event's number, if it exists.
    pub(crate) fn id_of(&self, id: &Uuid) -> Result<Option<EventNo>> {
        if let Some(n) = self.tail.ids.get(id) {
            return Ok(Some(*n));
        }
        for s in self.segments.iter().rev() {
            if let Some(n) = s.id(id.as_bytes())? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    /// The event's number and metadata.
    pub(crate) fn lookup(&self, id: &Uuid) -> Result<Option<(EventNo, Meta)>> {
        match self.id_of(id)? {
            Some(n) => Ok(Some((n, self.meta(n)?.ok_or_else(|| unknown(n))?))),
            None => Ok(None),
        }
    }

    /// Metadata of event `n`.
    pub(crate) fn meta(&self, n: EventNo) -> Result<Option<Meta>> {
        if n as usize >= self.len() {
            return Ok(None);
        }
        let c = self.created(n)?;
        if !self.is_changed(n)? {
            return Ok(Some(Meta::compose(c, &[])));
        }
        Ok(Some(Meta::compose(c, &self.changes(n)?)))
    }

    /// Every version's seq, the creation first.
    pub(crate) fn versions(&self, n: EventNo) -> Result<Vec<u64>> {
        let mut v = vec![self.created(n)?.seq];
        v.extend(self.changes(n)?.iter().map(|(s, _)| *s));
        // An excised creation is also its own retraction: one entry.
        v.dedup();
        Ok(v)
    }

    /// Seq of the version current as of `seq` (none if the event did not
    /// exist yet or was retracted by then).
    pub(crate) fn version_at(&self, n: EventNo, seq: u64) -> Result<Option<u64>> {
        let created = self.created(n)?.seq;
        if created > seq {
            return Ok(None);
        }
        let mut current = Some(created);
        for (s, ch) in self.changes(n)? {
            if s > seq {
                break;
            }
            current = (!ch.retracted).then_some(s);
        }
        Ok(current)
    }

    /// Registers a new event created by `entry`; returns its number.
    fn create(&mut self, entry: &Entry, id: Uuid, start: i64, end: i64) -> Result<EventNo> {
        let n = EventNo::try_from(self.len())
            .map_err(|_| Error::internal("the index holds at most 2^32 events"))?;
        self.tail.created.push(Created {
            seq: entry.seq,
            recorded_at: entry.recorded_at,
            start,
            end,
        });
        self.tail.ids.insert(id, n);
        Ok(n)
    }

    /// Folds one entry in. `before` and `after` are the keys of the event's
    /// current version before and after the entry.
    pub(crate) fn apply(
        &mut self,
        entry: &Entry,
        before: Option<&Keys>,
        after: Option<&Keys>,
    ) -> Result<()> {
        self.tail.entries += 1;
        let retracted = Changed {
            retracted: true,
            start: 0,
            end: 0,
        };
        let (id, changed) = match &entry.body {
            Body::Event(e) => {
                let n = self.create(entry, e.id, e.occurred.start(), e.occurred.end())?;
                if let Some(k) = after {
                    self.tail.post(n, k);
                }
                return Ok(());
            }
            // The first entry of an excised event: created with no content,
            // retracted at once, so that no read ever finds a version.
            Body::Excised { id } if self.id_of(id)?.is_none() => {
                let n = self.create(entry, *id, 0, 0)?;
                self.tail
                    .changes
                    .entry(n)
                    .or_default()
                    .push((entry.seq, retracted));
                return Ok(());
            }
            Body::Excised { id } => (*id, retracted),
            Body::Correction(e) => (
                e.id,
                Changed {
                    retracted: false,
                    start: e.occurred.start(),
                    end: e.occurred.end(),
                },
            ),
            Body::Retraction { id, .. } => (*id, retracted),
        };
        let n = self.id_of(&id)?.ok_or_else(|| {
            Error::corruption(entry.seq, format!("entry changes unknown event {id}"))
        })?;
        // Postings of a version made in a segment retire by themselves
        // once the event's home moves to the tail.
        if self.home(n)? == Home::Tail {
            if let Some(b) = before {
                self.tail.unpost(n, b);
            }
        }
        self.tail
            .changes
            .entry(n)
            .or_default()
            .push((entry.seq, changed));
        if let Some(k) = after {
            self.tail.post(n, k);
        }
        Ok(())
    }

    /// Writes the tail as a segment file at `path` covering seqs up to
    /// `seq_hi`. The index is unchanged until [`Index::install`].
    pub(crate) fn seal(&self, path: &Path, seq_hi: u64) -> Result<Segment> {
        let t = &self.tail;
        let mut ids: Vec<([u8; 16], EventNo)> =
            t.ids.iter().map(|(id, n)| (*id.as_bytes(), *n)).collect();
        ids.sort_unstable();
        let mut lists: Vec<(&u64, &Vec<EventNo>)> = t.postings.iter().collect();
        lists.sort_unstable_by_key(|(l, _)| **l);
        // Place lists sort after the country lists, before the others.
        let (before, after) = lists.split_at(lists.partition_point(|(l, _)| **l < PLACE_LIST));
        let pairs = |part: &[(&u64, &Vec<EventNo>)]| -> Vec<(u64, EventNo)> {
            part.iter()
                .flat_map(|(l, ns)| ns.iter().map(move |n| (**l, *n)))
                .collect()
        };
        let postings = pairs(before)
            .into_iter()
            .chain(t.places.iter().copied())
            .chain(pairs(after));
        let ev_hi = EventNo::try_from(self.len())
            .map_err(|_| Error::internal("the index holds at most 2^32 events"))?;
        segment::write(
            path,
            Parts {
                seq_lo: t.seq_lo,
                seq_hi,
                ev_lo: t.ev_lo,
                ev_hi,
                created: (t.ev_lo..).zip(t.created.iter().copied()).map(Ok),
                id_count: ids.len() as u64,
                ids: ids.into_iter().map(Ok),
                changes: t
                    .changes
                    .iter()
                    .flat_map(|(n, v)| v.iter().map(move |(s, c)| Ok(((*n, *s), *c)))),
                postings: postings.map(Ok),
                changed: t.changes.keys().copied().collect(),
            },
        )
    }

    /// Replaces the tail by a segment sealed from it.
    pub(crate) fn install(&mut self, seg: Segment) {
        self.segments.push(Arc::new(seg));
        *self = Index::with_segments(std::mem::take(&mut self.segments));
    }

    /// The position of two neighbouring segments worth merging: the newer
    /// is at least half the older's size. Keeping each segment more than
    /// twice the next keeps their number logarithmic in the log's length.
    pub(crate) fn merge_candidate(&self) -> Option<usize> {
        let n = self.segments.len();
        let (older, newer) = (
            self.segments.get(n.checked_sub(2)?)?,
            self.segments.get(n - 1)?,
        );
        (older.footer.entries() <= 2 * newer.footer.entries()).then_some(n - 2)
    }

    /// Replaces segments `i` and `i + 1` by their merge.
    pub(crate) fn replace_pair(&mut self, i: usize, merged: Segment) {
        if i + 1 < self.segments.len() {
            self.segments.splice(i..i + 2, [Arc::new(merged)]);
        }
    }

    /// Number of events created at or before `seq` (events are numbered in
    /// creation order, so they are a prefix).
    pub(crate) fn created_upto(&self, seq: u64) -> Result<usize> {
        if seq >= self.tail.seq_lo {
            return Ok(
                self.tail.ev_lo as usize + self.tail.created.partition_point(|c| c.seq <= seq)
            );
        }
        let i = self.segments.partition_point(|s| s.footer.seq_hi < seq);
        let Some(s) = self.segments.get(i) else {
            return Ok(self.tail.ev_lo as usize);
        };
        // Binary search by point reads: the first event created after seq.
        let (mut lo, mut hi) = (s.footer.ev_lo, s.footer.ev_hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if s.created(mid)?.seq <= seq {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo as usize)
    }

    /// Events among the first `prefix` that changed (corrected or
    /// retracted) after `seq`: their state as of `seq` is not their current
    /// one. Costs one look at each change made after `seq`.
    pub(crate) fn changed_after(&self, seq: u64, prefix: usize) -> Result<HashSet<EventNo>> {
        let mut out = HashSet::new();
        let within = |n: EventNo| (n as usize) < prefix;
        for s in &self.segments {
            if s.footer.seq_hi <= seq {
                continue;
            }
            if s.footer.seq_lo > seq {
                out.extend(s.changed()?.iter().copied().filter(|n| within(*n)));
            } else {
                for r in s.scan_changes() {
                    let ((n, s), _) = r?;
                    if s > seq && within(n) {
                        out.insert(n);
                    }
                }
            }
        }
        for (n, v) in &self.tail.changes {
            if within(*n) && v.last().is_some_and(|(s, _)| *s > seq) {
                out.insert(*n);
            }
        }
        Ok(out)
    }

    /// The live postings of `lists`, merged, sorted and distinct.
    fn live(&self, lists: &[u64]) -> Result<Vec<EventNo>> {
        let mut out: Vec<EventNo> = Vec::new();
        for l in lists {
            if let Some(ns) = self.tail.postings.get(l) {
                out.extend_from_slice(ns);
            }
            for (i, s) in self.segments.iter().enumerate() {
                for n in s.postings(*l) {
                    let n = n?;
                    if self.home(n)? == Home::Segment(i) {
                        out.push(n);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Current events matching the query's filters, ordered by occurrence
    /// start then seq, up to its limit. Touches only posting lists and
    /// metadata: no event is read.
    pub(crate) fn select(&self, names: &Names, q: &Query) -> Result<Vec<Meta>> {
        let mut hits = self.select_where(names, q, |_| true)?;
        hits.sort_unstable_by_key(|m| (m.start, m.seq));
        if let Some(limit) = q.limit {
            hits.truncate(limit);
        }
        Ok(hits)
    }

    /// Like [`Index::select`] for the events `keep_event` accepts, unsorted
    /// and unlimited.
    pub(crate) fn select_where(
        &self,
        names: &Names,
        q: &Query,
        keep_event: impl Fn(EventNo) -> bool,
    ) -> Result<Vec<Meta>> {
        let (lo, hi) = q.range();
        let named = |kind: u64, keys: &mut dyn Iterator<Item = String>| -> Option<Vec<u64>> {
            let mut any = false;
            let lists = keys
                .inspect(|_| any = true)
                .filter_map(|k| names.get(&k).map(|n| list(kind, n)))
                .collect();
            any.then_some(lists)
        };
        let filters = [
            self.country_lists(names, q, lo, hi),
            named(ACTOR, &mut q.actors.iter().map(|a| actor_key(a))),
            named(KIND, &mut q.kinds.iter().cloned()),
        ];
        let mut candidates: Option<Vec<EventNo>> = match &q.area {
            Some(area) => Some(self.placed(area, q.place)?),
            None => None,
        };
        for lists in filters.into_iter().flatten() {
            let list = self.live(&lists)?;
            candidates = Some(match candidates {
                None => list,
                Some(c) => intersect(&c, &list),
            });
        }
        let keep = |m: &Meta| {
            m.retracted.is_none()
                && if q.within {
                    crate::time::certainly_within(m.start, m.end, lo, hi)
                } else {
                    m.start < hi && lo < m.end
                }
        };
        let mut out = Vec::new();
        match candidates {
            Some(c) => {
                for n in c.into_iter().filter(|&n| keep_event(n)) {
                    if let Some(m) = self.meta(n)?.filter(|m| keep(m)) {
                        out.push(m);
                    }
                }
            }
            None => self.for_each_meta(&mut |n, m| {
                if keep_event(n) && keep(&m) {
                    out.push(m);
                }
                Ok(())
            })?,
        }
        Ok(out)
    }

    /// Live events whose place answers `how` for the area, sorted and
    /// distinct: per precision, the key ranges of the boxes that can hold
    /// an answer, each place tested on its key's point.
    fn placed(&self, area: &Area, how: PlaceMatch) -> Result<Vec<EventNo>> {
        let scale = area.scale_km();
        let mut out = Vec::new();
        for p in PlacePrecision::ALL {
            let r = p.radius_km();
            if how == PlaceMatch::Point && r > scale {
                continue;
            }
            // Many events share a place (a town's point): test each once.
            let mut last: Option<(u64, bool)> = None;
            let mut admits = |key: u64| match last {
                Some((k, yes)) if k == key => yes,
                _ => {
                    let yes = place_of_key(key)
                        .is_some_and(|(lat, lon, p)| area.admits_at(how, scale, lat, lon, p));
                    last = Some((key, yes));
                    yes
                }
            };
            for (lo, hi) in key_ranges(&area.search_boxes(how, r), p) {
                for &(key, n) in self.tail.places.range((lo, 0)..=(hi, EventNo::MAX)) {
                    if admits(key) {
                        out.push(n);
                    }
                }
                for (i, s) in self.segments.iter().enumerate() {
                    for r in s.postings_between(lo, hi) {
                        let (key, n) = r?;
                        if admits(key) && self.home(n)? == Home::Segment(i) {
                            out.push(n);
                        }
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The lists of the query's countries that may hold events
    /// overlapping `[lo, hi)`: month lists when the range is bounded,
    /// else whole-country lists; `None` when no country is asked for.
    fn country_lists(&self, names: &Names, q: &Query, lo: Micros, hi: Micros) -> Option<Vec<u64>> {
        if q.countries.is_empty() {
            return None;
        }
        let (first, last) = (
            month_of(lo.saturating_sub(SHORT)),
            month_of(hi.saturating_sub(1)),
        );
        let bounded = lo != Micros::MIN && hi != Micros::MAX && first != LONG && last != LONG;
        let codes = q.countries.iter().filter_map(|c| names.get(c));
        if !bounded || last - first > MAX_BUCKETS {
            return Some(codes.map(|c| list(COUNTRY, c)).collect());
        }
        Some(
            codes
                .flat_map(|c| (first..=last).chain([LONG]).map(move |m| month_list(c, m)))
                .collect(),
        )
    }

    /// Calls `f` with every event's metadata, in creation order.
    pub(crate) fn for_each_meta(
        &self,
        f: &mut dyn FnMut(EventNo, Meta) -> Result<()>,
    ) -> Result<()> {
        for s in &self.segments {
            for r in s.scan_created() {
                let (n, c) = r?;
                let m = if self.is_changed(n)? {
                    Meta::compose(c, &self.changes(n)?)
                } else {
                    Meta::compose(c, &[])
                };
                f(n, m)?;
            }
        }
        for (n, c) in (self.tail.ev_lo..).zip(&self.tail.created) {
            let changes = self.tail.changes.get(&n).map_or(&[][..], Vec::as_slice);
            f(n, Meta::compose(*c, changes))?;
        }
        Ok(())
    }

    /// The digest of every live posting.
    pub(crate) fn posting_digest(&self) -> Result<Digest> {
        let mut d = Digest::default();
        for (l, ns) in &self.tail.postings {
            for n in ns {
                d.add(*l, *n);
            }
        }
        for (l, n) in &self.tail.places {
            d.add(*l, *n);
        }
        for (i, s) in self.segments.iter().enumerate() {
            for r in s.scan_postings() {
                let (l, n) = r?;
                if self.home(n)? == Home::Segment(i) && self.meta(n)?.is_some() {
                    d.add(l, n);
                }
            }
        }
        Ok(d)
    }

    /// Reads every segment whole and checks every checksum.
    pub(crate) fn check_segments(&self) -> Result<()> {
        self.segments.iter().try_for_each(|s| s.check_all())
    }

    /// Number of current events and of events with a correction.
    pub(crate) fn counts(&self) -> Result<(usize, usize)> {
        let (mut current, mut corrected) = (0, 0);
        self.for_each_meta(&mut |_, m| {
            current += usize::from(m.retracted.is_none());
            corrected += usize::from(m.current != m.seq);
            Ok(())
        })?;
        Ok((current, corrected))
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
