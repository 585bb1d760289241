//! Reading history: main or a branch, at its head or as of a seq or time.
//!
//! On main, as-of reads use the index: an event's state as of seq S is its
//! current state unless it changed after S, and the events that did are
//! few (the corrected and retracted ones), so they are read from the log.
//! Views as of S start from the nearest view snapshot at or before S and
//! replay the entries after it. A branch reads its parent as of its base,
//! overlaid with its own entries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

pub(crate) mod diff;

use crate::error::{Error, Result};
use crate::intern::{Keys, Names};
use crate::json::Position;
use crate::line::branch::{Branch, NamedViews};
use crate::line::{Line, Lines};
use crate::log::{Body, Entry, Head, Log};
use crate::model::actor_key;
use crate::model::Event;
use crate::projection::{
    self, ActorRow, CountryActor, CountryRow, DateRow, Layered, Part, PlaceLevel, PlaceRow, Views,
};
use crate::query::Query;
use crate::record::{Record, Version};
use crate::time::{parse_rfc3339, Granularity, Micros, TimePoint};

/// A point in transaction time: a seq, or the last entry recorded at or
/// before an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Entries `1..=seq` (a seq past the head means the head).
    Seq(u64),
    /// Entries recorded at or before this time (UTC microseconds).
    Time(Micros),
}

impl std::str::FromStr for AsOf {
    type Err = Error;
    /// A seq (digits) or an RFC 3339 time.
    fn from_str(s: &str) -> Result<AsOf> {
        let t = s.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return t
                .parse()
                .map(AsOf::Seq)
                .map_err(|e| Error::invalid("as_of", format!("`{t}`: {e}")));
        }
        parse_rfc3339(t)
            .map(AsOf::Time)
            .map_err(|e| e.for_field("as_of"))
    }
}

/// Where to read: main or a branch, at its head or as of a point in
/// transaction time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct At {
    /// A branch name; `None` for main.
    pub branch: Option<String>,
    /// A point in transaction time; `None` for the head.
    pub as_of: Option<AsOf>,
}

impl At {
    /// Main at its head.
    pub fn head() -> At {
        At::default()
    }

    /// Reads a branch instead of main.
    pub fn branch(mut self, name: &str) -> At {
        self.branch = Some(name.to_string());
        self
    }

    /// Reads as of a point in transaction time.
    pub fn as_of(mut self, as_of: AsOf) -> At {
        self.as_of = Some(as_of);
        self
    }
}

/// Reads one log (main or a branch) as of one seq. Obtained from
/// [`crate::Annals::reader`]; every answer equals a replay of the log's
/// entries `1..=seq`.
pub struct Reader<'a> {
    lines: Lines<'a>,
    line: Line,
    seq: u64,
}

impl<'a> Reader<'a> {
    /// A reader of main or a branch, at its head or as of a seq or time.
    /// An `as_of` before the first entry reads an empty log; one past the
    /// head reads the head.
    pub(crate) fn new(lines: Lines<'a>, at: &At) -> Result<Reader<'a>> {
        let line = match &at.branch {
            None => Line::Main,
            Some(name) => Line::Branch(lines.branch(name)?),
        };
        let head = line.head(lines);
        let seq = match at.as_of {
            None => head.seq,
            Some(AsOf::Seq(s)) => s.min(head.seq),
            Some(AsOf::Time(t)) => seq_at_time(&line.log(lines), head, t)?,
        };
        Ok(Reader { lines, line, seq })
    }

    /// A reader of `line` as of `seq` (at most its head).
    pub(crate) fn at(lines: Lines<'a>, line: Line, seq: u64) -> Reader<'a> {
        Reader { lines, line, seq }
    }

    /// The seq this reader reads as of.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The entry at this reader's seq: its seq and chain hash.
    pub fn head(&self) -> Result<Head> {
        self.line.log(self.lines).head_at(self.seq)
    }

    fn at_main_head(&self) -> bool {
        matches!(self.line, Line::Main) && self.seq == self.lines.main.head().seq
    }

    /// The reader of a branch's parent, as of the branch's base.
    fn parent(&self, b: &Branch) -> Result<Reader<'a>> {
        let line = match &b.meta.parent {
            None => Line::Main,
            Some(p) => Line::Branch(self.lines.branch(p)?),
        };
        Ok(Reader::at(self.lines, line, b.meta.base.seq.min(self.seq)))
    }

    /// The event as of this reader's seq (retracted ones included, with
    /// their last version); `None` if it did not exist yet.
    pub fn get(&self, id: Uuid) -> Result<Option<Record>> {
        match &self.line {
            Line::Main => self.main_get(id),
            Line::Branch(b) => {
                let own = b.own_versions(id, self.seq);
                let inherited = self.parent(b)?.get(id)?;
                if own.is_empty() {
                    return Ok(inherited);
                }
                Ok(overlay(inherited, &own))
            }
        }
    }

    fn main_get(&self, id: Uuid) -> Result<Option<Record>> {
        let (meta, versions) = {
            let state = self.lines.main.state();
            let Some((n, m)) = state.index.lookup(&id)? else {
                return Ok(None);
            };
            (m, state.index.versions(n)?)
        };
        if meta.seq > self.seq || meta.excised {
            return Ok(None);
        }
        let retracted = meta.retracted.filter(|r| *r <= self.seq);
        let last = versions
            .into_iter()
            .rfind(|v| *v <= self.seq && Some(*v) != retracted)
            .unwrap_or(meta.seq);
        Ok(Some(Record {
            event: self.lines.main.log().read_event(last)?,
            position: Position {
                seq: meta.seq,
                recorded_at: meta.recorded_at,
                corrected_seq: (last != meta.seq).then_some(last),
            },
            retracted_seq: retracted,
        }))
    }

    /// Every version of the event up to this reader's seq, oldest first.
    /// The entries of an excised event are listed with action `excised`,
    /// the excision's reason and time, and no event.
    pub fn history(&self, id: Uuid) -> Result<Vec<Version>> {
        let mut versions = self.versions(id)?;
        if versions.iter().any(|v| v.action == "excised") {
            if let Some(x) = crate::excise::record(self.lines.main.log().store(), id)? {
                for v in versions.iter_mut().filter(|v| v.action == "excised") {
                    v.reason = Some(x.reason.clone());
                    v.excised_at = Some(x.at);
                }
            }
        }
        Ok(versions)
    }

    fn versions(&self, id: Uuid) -> Result<Vec<Version>> {
        match &self.line {
            Line::Main => {
                let seqs: Vec<u64> = {
                    let state = self.lines.main.state();
                    match state.index.lookup(&id)? {
                        Some((n, _)) => state.index.versions(n)?,
                        None => return Ok(Vec::new()),
                    }
                };
                seqs.into_iter()
                    .take_while(|s| *s <= self.seq)
                    .map(|s| self.lines.main.log().read(s).map(version))
                    .collect()
            }
            Line::Branch(b) => {
                let mut v = self.parent(b)?.versions(id)?;
                v.extend(b.own_versions(id, self.seq).into_iter().map(version));
                Ok(v)
            }
        }
    }

    /// Current events (as of this reader's seq) matching the query, ordered
    /// by occurrence start then seq.
    pub fn query(&self, q: &Query) -> Result<Vec<Record>> {
        q.validate()?;
        if self.at_main_head() {
            return self.lines.main.query(q);
        }
        let mut hits = self.query_unsorted(q)?;
        hits.sort_by_key(|r| (r.event.occurred.start(), r.position.seq));
        if let Some(limit) = q.limit {
            hits.truncate(limit);
        }
        Ok(hits)
    }

    /// Calls `f` with each current event matching the query, in query
    /// order. At main's head the matches are read from the log one at a
    /// time, so memory holds only their index entries; as of another seq or
    /// on a branch the result is built whole first. Stops at the first
    /// error `f` returns, and returns it.
    pub fn for_each_record(
        &self,
        q: &Query,
        f: &mut dyn FnMut(Record) -> Result<()>,
    ) -> Result<()> {
        q.validate()?;
        if !self.at_main_head() {
            return self.query(q)?.into_iter().try_for_each(f);
        }
        let hits = self.lines.main.state().select(q)?;
        // In slices, so that memory holds a slice of events at a time.
        for slice in hits.chunks(4096) {
            self.lines
                .main
                .current_records(slice)?
                .into_iter()
                .try_for_each(&mut *f)?;
        }
        Ok(())
    }

    fn query_unsorted(&self, q: &Query) -> Result<Vec<Record>> {
        match &self.line {
            Line::Main => self.main_query_as_of(q),
            Line::Branch(b) => {
                let touched: HashSet<Uuid> = b.touched(self.seq).into_iter().collect();
                let mut hits: Vec<Record> = self
                    .parent(b)?
                    .query_unsorted(q)?
                    .into_iter()
                    .filter(|r| !touched.contains(&r.event.id))
                    .collect();
                for id in touched {
                    if let Some(r) = self.get(id)? {
                        if r.retracted_seq.is_none() && q.matches(&r.event) {
                            hits.push(r);
                        }
                    }
                }
                Ok(hits)
            }
        }
    }

    fn main_query_as_of(&self, q: &Query) -> Result<Vec<Record>> {
        let (unchanged, changed) = {
            let state = self.lines.main.state();
            let prefix = state.index.created_upto(self.seq)?;
            let changed = state.index.changed_after(self.seq, prefix)?;
            let empty = Names::default();
            let unchanged = state
                .index
                .select_where(state.names_for(q, &empty)?, q, |n| {
                    (n as usize) < prefix && !changed.contains(&n)
                })?;
            let mut at_seq: Vec<(crate::index::Meta, u64)> = Vec::new();
            for n in changed {
                if let (Some(m), Some(v)) =
                    (state.index.meta(n)?, state.index.version_at(n, self.seq)?)
                {
                    at_seq.push((m, v));
                }
            }
            (unchanged, at_seq)
        };
        let mut hits = self.lines.main.current_records(&unchanged)?;
        for (m, v) in changed {
            let event = self.lines.main.log().read_event(v)?;
            if q.matches(&event) {
                hits.push(Record {
                    event,
                    position: Position {
                        seq: m.seq,
                        recorded_at: m.recorded_at,
                        corrected_seq: (v != m.seq).then_some(v),
                    },
                    retracted_seq: None,
                });
            }
        }
        Ok(hits)
    }

    /// The by-country view.
    pub fn by_country(&self) -> Result<Arc<[CountryRow]>> {
        if self.at_main_head() {
            return self.lines.main.by_country();
        }
        Ok(projection::country_rows(&*self.layers(Part::Country)?)?.into())
    }

    /// The by-actor view.
    pub fn by_actor(&self) -> Result<Arc<[ActorRow]>> {
        if self.at_main_head() {
            return self.lines.main.by_actor();
        }
        Ok(projection::actor_rows(&*self.layers(Part::Actor)?, None, None)?.into())
    }

    /// The by-date view at a granularity.
    pub fn by_date(&self, g: Granularity) -> Result<Arc<[DateRow]>> {
        if self.at_main_head() {
            return self.lines.main.by_date(g);
        }
        Ok(projection::date_rows(&*self.layers(Part::Date)?, g)?.into())
    }

    /// The by-place view: per PRIO-GRID cell or ADMIN1 unit, all time
    /// (`None`) or per month or year of occurrence.
    pub fn by_place(
        &self,
        level: PlaceLevel,
        granularity: Option<Granularity>,
    ) -> Result<Arc<[PlaceRow]>> {
        if self.at_main_head() {
            return self.lines.main.by_place(level, granularity);
        }
        Ok(projection::place_rows(&*self.layers(Part::Place)?, level, granularity)?.into())
    }

    /// The views' cells of `part` as of this reader's seq: at main's
    /// head straight from the runs (no fold, no string table); as of a
    /// seq on main, folding only that part's cells.
    fn layers(&self, part: Part) -> Result<Arc<Layered>> {
        if self.at_main_head() {
            return Ok(Arc::new(self.lines.main.state().layered(&[part])?));
        }
        match self.line {
            Line::Main => self.main_views(&[part]),
            Line::Branch(_) => self.views(),
        }
    }

    /// One row of the by-country view (none if no current event concerns
    /// the country): a few reads, whatever the view's size.
    pub fn country(&self, country: &str) -> Result<Option<CountryRow>> {
        projection::country_row(&*self.layers(Part::Country)?, country)
    }

    /// A page of a country's actors, by key: those after `after` (from
    /// the first when none), at most `limit`. The full list behind a
    /// by-country row's `actors`.
    pub fn country_actors(
        &self,
        country: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CountryActor>> {
        let after = after.map(actor_key);
        projection::country_actors(
            &*self.layers(Part::Country)?,
            country,
            after.as_deref(),
            limit,
        )
    }

    /// One row of the by-actor view, by name (matched as queries match
    /// actors: trimmed, case-insensitively); none if no current event
    /// names the actor.
    pub fn actor(&self, name: &str) -> Result<Option<ActorRow>> {
        projection::actor_row(&*self.layers(Part::Actor)?, &actor_key(name))
    }

    /// A page of the by-actor view, by key: the rows after actor `after`
    /// (from the first when none), at most `limit`.
    pub fn actors_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<ActorRow>> {
        let after = after.map(actor_key);
        projection::actor_rows(&*self.layers(Part::Actor)?, after.as_deref(), Some(limit))
    }

    /// The built-in views' state as of this reader's seq.
    pub(crate) fn views(&self) -> Result<NamedViews> {
        match &self.line {
            Line::Main => self.main_views(&Part::ALL),
            Line::Branch(b) => {
                // The cache is for one seq, so a write racing this read can
                // never leave views of an older head behind as the new one's.
                let cached = b.views.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some((seq, v)) = cached {
                    if seq == self.seq {
                        return Ok(v);
                    }
                }
                let v = Arc::new(self.branch_views(b)?);
                if self.seq == b.head().seq {
                    *b.views.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((self.seq, Arc::clone(&v)));
                }
                Ok(v)
            }
        }
    }

    fn main_views(&self, parts: &[Part]) -> Result<NamedViews> {
        if self.at_main_head() {
            let state = self.lines.main.state();
            return Ok(Arc::new(state.layered(&Part::ALL)?));
        }
        // Start from whichever fold is nearer: a snapshot at or before the
        // seq (then fold forward), or one after it or the head (then
        // undo backward). Undoing applies each change in reverse, which
        // the views support because every change is remove-then-add and
        // their cells are counts that add up.
        let (earlier, later) = self.lines.main.snapshot_seqs_around(self.seq);
        let (mut names, display) = self.head_names()?;
        if later.saturating_sub(self.seq) < self.seq - earlier {
            let (start, base) = self.lines.main.views_at_or_after(self.seq)?;
            let entries: Vec<Entry> = self
                .lines
                .main
                .log()
                .entries_after(self.lines.main.log().head_at(self.seq)?)
                .take_while(|r| r.as_ref().map_or(true, |(e, _)| e.seq <= start.seq))
                .map(|r| r.map(|(e, _)| e))
                .collect::<Result<_>>()?;
            let mut views = Views::over(display, parts);
            for entry in entries.iter().rev() {
                let before = self.main_before(entry)?;
                let before = before.as_ref().map(|e| Keys::of(&mut names, e));
                let after = entry.body.event().map(|e| Keys::of(&mut names, e));
                views.apply(after.as_ref(), before.as_ref());
            }
            return Ok(Arc::new(base.with(views.encode(&names))));
        }
        let (start, base) = self.lines.main.snapshot_at_or_before(self.seq);
        let views = self.fold_forward(start, Views::over(display, parts), &mut names)?;
        Ok(Arc::new(base.with(views.encode(&names))))
    }

    /// A copy of main's string table and display names: names are only
    /// ever added, so the head's table names everything any seq and any
    /// branch forked from main mentions, and an actor's display name is
    /// the same at every seq.
    pub(crate) fn head_names(&self) -> Result<(Names, crate::projection::Display)> {
        let state = self.lines.main.state();
        let t = state.names.get()?;
        Ok((t.names.clone(), t.display.clone()))
    }

    /// Folds main's entries after `start` up to this reader's seq into
    /// `views` (changes on top of the views at `start`).
    pub(crate) fn fold_forward(
        &self,
        start: Head,
        mut views: Views,
        names: &mut Names,
    ) -> Result<Views> {
        for item in self.lines.main.log().entries_after(start) {
            let (entry, _) = item?;
            if entry.seq > self.seq {
                break;
            }
            let before = self.main_before(&entry)?;
            let before = before.as_ref().map(|e| Keys::of(names, e));
            let after = entry.body.event().map(|e| Keys::of(names, e));
            views.apply(before.as_ref(), after.as_ref());
        }
        Ok(views)
    }

    /// The current version (on main) of the event an entry changes, just
    /// before the entry.
    pub(crate) fn main_before(&self, entry: &Entry) -> Result<Option<Event>> {
        if let Body::Event(_) = entry.body {
            return Ok(None);
        }
        let v = {
            let state = self.lines.main.state();
            match state.index.id_of(&entry.body.id())? {
                Some(n) => state.index.version_at(n, entry.seq - 1)?,
                None => None,
            }
        };
        v.map(|s| self.lines.main.log().read_event(s)).transpose()
    }

    fn branch_views(&self, b: &Branch) -> Result<Layered> {
        let parent = self.parent(b)?;
        let base = parent.views()?;
        let (mut names, display) = self.head_names()?;
        let mut views = Views::over(display, &Part::ALL);
        let mut current: HashMap<Uuid, Option<Event>> = HashMap::new();
        for entry in b.entries_upto(self.seq) {
            let id = entry.body.id();
            let before = match current.get(&id) {
                Some(v) => v.clone(),
                None => match entry.body {
                    Body::Event(_) => None,
                    _ => parent
                        .get(id)?
                        .filter(|r| r.retracted_seq.is_none())
                        .map(|r| r.event),
                },
            };
            let after = entry.body.event().cloned();
            let bk = before.as_ref().map(|e| Keys::of(&mut names, e));
            let ak = after.as_ref().map(|e| Keys::of(&mut names, e));
            views.apply(bk.as_ref(), ak.as_ref());
            current.insert(id, after);
        }
        Ok(base.with(views.encode(&names)))
    }
}

/// How an event differs between two points of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Absent (or not yet created) at the earlier point, current at the later.
    Created,
    /// Current at both, in different versions.
    Corrected,
    /// Current at the earlier point, retracted at the later.
    Retracted,
}

/// The dataset of events that carry no `dataset` attribute: those
/// written by hand, through the API or JSON Lines.
pub const HAND_ENTERED: &str = "hand-entered";

/// One bucket of [`Reader::by_dataset`]: how many current events each
/// dataset (GDELT, ACLED, UCDP GED, POLECAT, hand-entered) holds there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetRow {
    /// The bucket: `2025`, `2025-09` or `2025-09-10`.
    pub bucket: String,
    /// The bucket's precision (`day`, `month`, `year`, `span`): the
    /// granularity asked for, or coarser for events known only that
    /// coarsely (as in the by-date view).
    pub precision: &'static str,
    /// Events per dataset (the `dataset` attribute, or [`HAND_ENTERED`]).
    pub counts: BTreeMap<String, u64>,
}

impl Reader<'_> {
    /// The events matching `q`, counted per bucket of occurrence time and
    /// per dataset, side by side: analysts check one dataset against
    /// another ("ACLED has 40 events in Poland in September, GDELT 900").
    /// Buckets follow the by-date view: an event goes to the bucket of its
    /// own precision when that is coarser than `g`.
    pub fn by_dataset(&self, q: &Query, g: Granularity) -> Result<Vec<DatasetRow>> {
        let mut rows: BTreeMap<(Micros, crate::time::Precision), BTreeMap<String, u64>> =
            BTreeMap::new();
        self.for_each_record(q, &mut |r| {
            let dataset = match r.event.attrs.get("dataset").and_then(Value::as_str) {
                Some(d) => d.to_string(),
                None => HAND_ENTERED.to_string(),
            };
            let key = crate::projection::bucket(&r.event.occurred, g);
            *rows.entry(key).or_default().entry(dataset).or_default() += 1;
            Ok(())
        })?;
        Ok(rows
            .into_iter()
            .map(|((start, precision), counts)| DatasetRow {
                bucket: TimePoint::at(start, precision.min(crate::time::Precision::Year))
                    .to_string(),
                precision: precision.name(),
                counts,
            })
            .collect())
    }
}

impl ChangeKind {
    /// `created`, `corrected` or `retracted`, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Corrected => "corrected",
            ChangeKind::Retracted => "retracted",
        }
    }
}

/// One event whose state differs between two points of a log; see
/// [`Reader::changes_since`].
#[derive(Debug, Clone, PartialEq)]
pub struct EventChange {
    /// The event.
    pub id: Uuid,
    /// What happened to it between the two points.
    pub kind: ChangeKind,
    /// Seq of the last entry in the window that concerns it.
    pub seq: u64,
    /// Its current record at the earlier point (none if created since).
    pub before: Option<Record>,
    /// Its current record at the later point (none if retracted since).
    pub after: Option<Record>,
}

impl EventChange {
    /// `{id, change, seq, before, after}` with both records as
    /// [`Record::to_json`]: what `annals changes` prints.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id.to_string(),
            "change": self.kind,
            "seq": self.seq,
            "before": self.before.as_ref().map(Record::to_json),
            "after": self.after.as_ref().map(Record::to_json),
        })
    }
}

impl Reader<'_> {
    /// Every event whose current state at this reader's seq differs from
    /// its state at `since` (a seq before it), in the order of the last
    /// entry that changed it, keeping those whose version before or after
    /// matches `q` (its limit caps the rows). An event created and
    /// retracted within the window, or corrected back to what it was, is
    /// not listed. Memory holds the changed events, not the window.
    pub fn changes_since(&self, since: u64, q: &Query) -> Result<Vec<EventChange>> {
        q.validate()?;
        if since > self.seq {
            return Err(Error::invalid(
                "since",
                format!(
                    "seq {since} is after the end of the window (seq {})",
                    self.seq
                ),
            ));
        }
        let log = self.line.log(self.lines);
        // Ids in the order of their last entry in the window.
        let mut last: HashMap<Uuid, u64> = HashMap::new();
        for item in log.entries_after(log.head_at(since)?) {
            let (entry, _) = item?;
            if entry.seq > self.seq {
                break;
            }
            last.insert(entry.body.id(), entry.seq);
        }
        let mut touched: Vec<(u64, Uuid)> = last.into_iter().map(|(id, s)| (s, id)).collect();
        touched.sort_unstable();
        let earlier = Reader::at(self.lines, self.line.clone(), since);
        let live = |r: Option<Record>| r.filter(|r| r.retracted_seq.is_none());
        let mut out = Vec::new();
        for (seq, id) in touched {
            let before = live(earlier.get(id)?);
            let after = live(self.get(id)?);
            let kind = match (&before, &after) {
                (None, Some(_)) => ChangeKind::Created,
                (Some(_), None) => ChangeKind::Retracted,
                (Some(b), Some(a)) if b.event != a.event => ChangeKind::Corrected,
                _ => continue,
            };
            let matches = |r: &Option<Record>| r.as_ref().is_some_and(|r| q.matches(&r.event));
            if !matches(&before) && !matches(&after) {
                continue;
            }
            out.push(EventChange {
                id,
                kind,
                seq,
                before,
                after,
            });
            if q.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }
}

/// The last seq recorded at or before `t` (0 if none): a binary search,
/// since `recorded_at` never decreases along seq.
fn seq_at_time(log: &Log, head: Head, t: Micros) -> Result<u64> {
    if head.seq == 0 || head.recorded_at <= t {
        return Ok(head.seq);
    }
    let (mut lo, mut hi) = (0u64, head.seq);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if log.read(mid)?.recorded_at <= t {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

fn version(entry: Entry) -> Version {
    let action = entry.body.action();
    let (event, reason) = match entry.body {
        Body::Event(e) | Body::Correction(e) => (Some(e), None),
        Body::Retraction { reason, .. } => (None, Some(reason)),
        Body::Excised { .. } => (None, None),
    };
    Version {
        seq: entry.seq,
        recorded_at: entry.recorded_at,
        action,
        event,
        reason,
        origin: entry.origin,
        excised_at: None,
    }
}

/// An event's record from its parent's state and a branch's own entries.
fn overlay(inherited: Option<Record>, own: &[Entry]) -> Option<Record> {
    let mut rec = inherited;
    for entry in own {
        match &entry.body {
            Body::Event(e) => {
                rec = Some(Record {
                    event: e.clone(),
                    position: Position {
                        seq: entry.seq,
                        recorded_at: entry.recorded_at,
                        corrected_seq: None,
                    },
                    retracted_seq: None,
                });
            }
            Body::Correction(e) => {
                if let Some(r) = &mut rec {
                    r.event = e.clone();
                    r.position.corrected_seq = Some(entry.seq);
                }
            }
            Body::Retraction { .. } => {
                if let Some(r) = &mut rec {
                    r.retracted_seq = Some(entry.seq);
                }
            }
            // Excision reaches every log, so the parent's record is gone too.
            Body::Excised { .. } => rec = None,
        }
    }
    rec
}
