//! The built-in views as cells: every figure a view shows is a count
//! under a key (a country's events of one kind, an actor's events on one
//! day, a month's events in one country), so a change is a few +1/-1 on
//! keys and views add up: the views at the head are the sum of the runs
//! on disk and the cells changed since (see `runfile`).
//!
//! In memory, between flushes, a cell's key is a few interned numbers
//! (no allocation per event; hashed with [`Fx`], not SipHash). On disk and
//! when read, it is bytes that sort like the rows: a tag, the row's name
//! (a country code, an actor's key, a date bucket), then the field. A
//! row's cells are contiguous, so one row is one range read; the display
//! name of an actor travels in its keys, so reads never need the string
//! table.

use std::collections::HashMap;

use crate::intern::{FxMap, Keys, Name, Names};
use crate::projection::fold::{bucket, pack};
use crate::runfile::Cell;
use crate::time::{Granularity, Occurred, Precision};

/// A cell's key in memory: its tag's map holds it, and `a`, `b`, `t` are
/// the tag's fields (unused ones zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct K {
    a: Name,
    b: Name,
    t: i64,
}

// Tags. Country rows: count, by kind, first points, last points, actors.
const CN: usize = 0;
const CK: usize = 1;
const CF: usize = 2;
const CL: usize = 3;
const CA: usize = 4;
// Actor rows: count, by kind, by role, countries, first and last points.
const AN: usize = 5;
const AK: usize = 6;
const AR: usize = 7;
const AC: usize = 8;
const AF: usize = 9;
const AL: usize = 10;
// Date rows (per granularity): count, by kind, by country.
const DN: usize = 11;
const DK: usize = 12;
const DC: usize = 13;
// Place rows, all time (per area): count, by kind, by precision, first
// and last years, fatalities; by month (per area and bucket): count and
// fatalities (kinds per area and month would be a cell per event, most of
// the import's cost).
const PTN: usize = 14;
const PTK: usize = 15;
const PTP: usize = 16;
const PTF: usize = 17;
const PTL: usize = 18;
const PTX: usize = 19;
const PMN: usize = 20;
const PMX: usize = 21;
const TAGS: usize = 22;

/// Marks an ADMIN1 area in a place cell's `a` (else a PRIO-GRID id).
const ADMIN1_AREA: Name = 1 << 31;

/// Which view a cell belongs to (its key's first byte on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Rows of the by-country view.
    Country,
    /// Rows of the by-actor view.
    Actor,
    /// Rows of the by-date view.
    Date,
    /// Rows of the by-place view.
    Place,
}

impl Part {
    /// Every part: all four views.
    pub(crate) const ALL: [Part; 4] = [Part::Country, Part::Actor, Part::Date, Part::Place];

    fn of(tag: usize) -> Part {
        match tag {
            CN..=CA => Part::Country,
            AN..=AL => Part::Actor,
            DN..=DC => Part::Date,
            _ => Part::Place,
        }
    }

    /// The first byte of the part's keys.
    pub(crate) fn byte(self) -> u8 {
        match self {
            Part::Country => b'C',
            Part::Actor => b'A',
            Part::Date => b'D',
            Part::Place => b'P',
        }
    }
}

/// The display name each actor key was first seen under in the log. Never
/// forgotten, so that it does not depend on later retractions; kept in
/// first-seen order so that it can be persisted by appending.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Display {
    shown: FxMap<Name, Name>,
    order: Vec<(Name, Name)>,
}

impl Display {
    /// Remembers the names an event's actors are shown under (those not
    /// yet known).
    pub(crate) fn remember(&mut self, k: &Keys) {
        for (key, shown) in &k.display {
            if let std::collections::hash_map::Entry::Vacant(v) = self.shown.entry(*key) {
                v.insert(*shown);
                self.order.push((*key, *shown));
            }
        }
    }

    /// The name actor `key` is shown under.
    pub(crate) fn name<'a>(&self, names: &'a Names, key: Name) -> &'a str {
        names.name(self.shown.get(&key).copied().unwrap_or(key))
    }

    /// Pairs in first-seen order, from the `from`-th.
    pub(crate) fn pairs_from(&self, from: usize) -> &[(Name, Name)] {
        self.order.get(from..).unwrap_or(&[])
    }

    /// How many actor keys are known.
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// Rebuilds from persisted pairs.
    pub(crate) fn from_pairs(pairs: Vec<(Name, Name)>) -> Display {
        let mut d = Display::default();
        for (k, s) in pairs {
            if let std::collections::hash_map::Entry::Vacant(v) = d.shown.entry(k) {
                v.insert(s);
                d.order.push((k, s));
            }
        }
        d
    }
}

/// Changed cells, keyed by interned numbers: the views' changes since the
/// last flush, or a fold of part of a log (as-of views, branches).
#[derive(Debug, Clone)]
pub(crate) struct Cells {
    maps: [FxMap<K, i64>; TAGS],
    /// The parts kept (an as-of view folds only the view it reads).
    keep: [bool; 4],
}

impl Default for Cells {
    fn default() -> Cells {
        Cells::only(&Part::ALL)
    }
}

impl PartialEq for Cells {
    fn eq(&self, other: &Cells) -> bool {
        self.maps == other.maps
    }
}

fn part_slot(p: Part) -> usize {
    match p {
        Part::Country => 0,
        Part::Actor => 1,
        Part::Date => 2,
        Part::Place => 3,
    }
}

impl Cells {
    /// Cells that keep only the changes to `parts`.
    pub(crate) fn only(parts: &[Part]) -> Cells {
        let mut keep = [false; 4];
        for p in parts {
            keep[part_slot(*p)] = true;
        }
        Cells {
            maps: Default::default(),
            keep,
        }
    }

    fn add(&mut self, tag: usize, a: Name, b: Name, t: i64, d: i64) {
        if !self.keep[part_slot(Part::of(tag))] {
            return;
        }
        let Some(map) = self.maps.get_mut(tag) else {
            return;
        };
        // One hash per change: counters that reach zero go at once.
        match map.entry(K { a, b, t }) {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                *o.get_mut() += d;
                if *o.get() == 0 {
                    o.remove();
                }
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(d);
            }
        }
    }

    /// Removes `before`'s contribution and adds `after`'s, remembering
    /// the display names of their actors.
    pub(crate) fn apply(
        &mut self,
        display: &mut Display,
        before: Option<&Keys>,
        after: Option<&Keys>,
    ) {
        if let Some(k) = before {
            // Known already, except on a branch of a branch, whose
            // parent named an actor main never did.
            display.remember(k);
            self.bump(k, -1);
        }
        if let Some(k) = after {
            display.remember(k);
            self.bump(k, 1);
        }
    }

    fn bump(&mut self, k: &Keys, d: i64) {
        let (from, to) = (pack(k.occurred.from), pack(k.occurred.to));
        for &c in &k.countries {
            self.add(CN, c, 0, 0, d);
            self.add(CK, c, k.kind, 0, d);
            self.add(CF, c, 0, from, d);
            self.add(CL, c, 0, to, d);
            for &a in &k.actor_keys {
                self.add(CA, c, a, 0, d);
            }
        }
        for &(a, role) in &k.actors {
            self.add(AR, a, role, 0, d);
        }
        // An actor named in two roles counts once per event.
        for &a in &k.actor_keys {
            self.add(AN, a, 0, 0, d);
            self.add(AK, a, k.kind, 0, d);
            self.add(AF, a, 0, from, d);
            self.add(AL, a, 0, to, d);
            for &c in &k.countries {
                self.add(AC, a, c, 0, d);
            }
        }
        for (g, slot) in Granularity::ALL.into_iter().zip(0u32..) {
            let b = date_key(&k.occurred, g);
            self.add(DN, slot, 0, b, d);
            self.add(DK, slot, k.kind, b, d);
            for &c in &k.countries {
                self.add(DC, slot, c, b, d);
            }
        }
        if k.gid.is_some() || k.admin1.is_some() {
            // First and last to the year: to the day (or month) they would
            // make a cell per area and day (or month), more than the rest
            // of the view, and a third of an import's time; the month rows
            // give the months.
            let year =
                |p: crate::time::TimePoint| pack(p.truncate(p.precision.max(Precision::Year)));
            self.bump_place(k, year(k.occurred.from), year(k.occurred.to), d);
        }
    }

    /// The by-place cells: the event's PRIO-GRID cell and its ADMIN1 unit,
    /// all time and by month.
    fn bump_place(&mut self, k: &Keys, from: i64, to: i64, d: i64) {
        let month = date_key(&k.occurred, Granularity::Month);
        let areas = [k.gid, k.admin1.map(|a| a | ADMIN1_AREA)];
        for a in areas.into_iter().flatten() {
            self.add(PTN, a, 0, 0, d);
            self.add(PTK, a, k.kind, 0, d);
            self.add(PTP, a, u32::from(k.precision), 0, d);
            self.add(PTF, a, 0, from, d);
            self.add(PTL, a, 0, to, d);
            self.add(PMN, a, 0, month, d);
            if let Some([best, low, high]) = k.fatalities {
                // Best, the margins below and above it, and how many events
                // gave figures: sums that stay exact under corrections.
                for (slot, v) in [(0, best), (1, best - low), (2, high - best), (3, 1)] {
                    if v != 0 {
                        self.add(PTX, a, slot, 0, d * v);
                        self.add(PMX, a, slot, month, d * v);
                    }
                }
            }
        }
    }

    /// Changed cells held.
    pub(crate) fn len(&self) -> usize {
        self.maps.iter().map(HashMap::len).sum()
    }

    /// Whether nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.maps.iter().all(HashMap::is_empty)
    }

    /// The cells of `parts` as sorted byte keys (names resolved through
    /// `names` and `display`).
    pub(crate) fn encode(&self, names: &Names, display: &Display, parts: &[Part]) -> Vec<Cell> {
        let mut out: Vec<Cell> = Vec::new();
        let mut kb = Vec::with_capacity(64);
        for (tag, map) in self.maps.iter().enumerate() {
            if !parts.contains(&Part::of(tag)) {
                continue;
            }
            out.reserve(map.len());
            for (k, v) in map {
                kb.clear();
                encode_key(&mut kb, tag, k, names, display);
                out.push((kb.as_slice().into(), *v));
            }
        }
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// A bucket of the by-date view, packed like an extent's points.
fn date_key(occurred: &Occurred, g: Granularity) -> i64 {
    let (start, precision) = bucket(occurred, g);
    start
        .saturating_mul(8)
        .saturating_add(i64::from(precision.code()))
}

/// Sub-field bytes, in the order a row's cells are stored.
pub(crate) mod field {
    pub(crate) const COUNT: u8 = b'1';
    pub(crate) const KIND: u8 = b'2';
    pub(crate) const C_FIRST: u8 = b'3';
    pub(crate) const C_LAST: u8 = b'4';
    pub(crate) const C_ACTOR: u8 = b'5';
    pub(crate) const A_ROLE: u8 = b'3';
    pub(crate) const A_COUNTRY: u8 = b'4';
    pub(crate) const A_FIRST: u8 = b'5';
    pub(crate) const A_LAST: u8 = b'6';
    pub(crate) const D_COUNTRY: u8 = b'3';
}

/// How an actor is shown, relative to its key (which every cell naming
/// it holds anyway): empty when the same, `~` and the characters that
/// differ (position `:` character) when only their case differs, as it
/// mostly does, else `=` and the name. Saves most of a name's bytes in
/// each of the actor's cells.
pub(crate) fn shown_as(key: &str, shown: &str) -> String {
    if key == shown {
        return String::new();
    }
    if key.chars().count() == shown.chars().count() {
        let mut out = String::from("~");
        for (i, (k, s)) in key.chars().zip(shown.chars()).enumerate() {
            if k != s {
                out.push_str(&format!("{i}:{s}"));
            }
        }
        return out;
    }
    format!("={shown}")
}

/// The name an actor is shown under, from its key and [`shown_as`].
pub(crate) fn shown(key: &str, how: &str) -> String {
    if let Some(name) = how.strip_prefix('=') {
        return name.to_string();
    }
    let Some(diffs) = how.strip_prefix('~') else {
        return key.to_string();
    };
    let mut chars: Vec<char> = key.chars().collect();
    let mut rest = diffs.chars().peekable();
    loop {
        let mut pos = 0usize;
        let mut digits = false;
        while let Some(d) = rest.peek().and_then(|c| c.to_digit(10)) {
            pos = pos.saturating_mul(10).saturating_add(d as usize);
            digits = true;
            rest.next();
        }
        match (digits, rest.next(), rest.next()) {
            (true, Some(':'), Some(c)) => {
                if let Some(slot) = chars.get_mut(pos) {
                    *slot = c;
                }
            }
            _ => break,
        }
    }
    chars.into_iter().collect()
}

/// Appends a string so that keys sort by it and it can be read back:
/// NUL is escaped as `00 FF`, and `00 01` ends it.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

/// Appends an `i64` so that keys sort by it.
pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

/// Appends an `i64` so that keys sort by it, greatest first.
pub(crate) fn put_i64_desc(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&(!((v as u64) ^ (1 << 63))).to_be_bytes());
}

fn encode_key(out: &mut Vec<u8>, tag: usize, k: &K, names: &Names, display: &Display) {
    use field::*;
    let part = Part::of(tag);
    out.push(part.byte());
    match part {
        Part::Country => put_str(out, names.name(k.a)),
        Part::Actor => put_str(out, names.name(k.a)),
        Part::Date => {
            out.push(b'0' + k.a as u8);
            put_i64(out, k.t);
        }
        Part::Place => {
            let monthly = matches!(tag, PMN | PMX);
            out.push(if monthly {
                place::MONTHS
            } else {
                place::ALL_TIME
            });
            if k.a & ADMIN1_AREA != 0 {
                out.push(place::ADMIN1);
                let (cc, name) = names
                    .name(k.a & !ADMIN1_AREA)
                    .split_once('\u{1f}')
                    .unwrap_or(("", ""));
                put_str(out, cc);
                put_str(out, name);
            } else {
                out.push(place::CELL);
                put_i64(out, i64::from(k.a));
            }
            if monthly {
                put_i64(out, k.t);
            }
            return encode_place_field(out, tag, k, names);
        }
    }
    match tag {
        CN => out.push(COUNT),
        CK | AK | DK => {
            out.push(KIND);
            put_str(out, names.name(k.b));
        }
        CF => {
            out.push(C_FIRST);
            put_i64(out, k.t);
        }
        CL => {
            out.push(C_LAST);
            put_i64_desc(out, k.t);
        }
        CA => {
            out.push(C_ACTOR);
            let key = names.name(k.b);
            put_str(out, key);
            put_str(out, &shown_as(key, display.name(names, k.b)));
        }
        AN => {
            out.push(COUNT);
            put_str(out, &shown_as(names.name(k.a), display.name(names, k.a)));
        }
        AR => {
            out.push(A_ROLE);
            put_str(out, names.name(k.b));
        }
        AC => {
            out.push(A_COUNTRY);
            put_str(out, names.name(k.b));
        }
        AF => {
            out.push(A_FIRST);
            put_i64(out, k.t);
        }
        AL => {
            out.push(A_LAST);
            put_i64_desc(out, k.t);
        }
        DN => out.push(COUNT),
        _ => {
            out.push(D_COUNTRY);
            put_str(out, names.name(k.b));
        }
    }
}

fn encode_place_field(out: &mut Vec<u8>, tag: usize, k: &K, names: &Names) {
    use place::*;
    match tag {
        PTN | PMN => out.push(COUNT),
        PTK => {
            out.push(KIND);
            put_str(out, names.name(k.b));
        }
        PTP => {
            out.push(PRECISION);
            out.push(k.b as u8);
        }
        PTF => {
            out.push(FIRST);
            put_i64(out, k.t);
        }
        PTL => {
            out.push(LAST);
            put_i64_desc(out, k.t);
        }
        _ => {
            out.push(FATALITIES);
            out.push(k.b as u8);
        }
    }
}

/// The by-place view's key bytes: `P`, all time or by month, the area
/// (a PRIO-GRID cell's id, or an ADMIN1 unit's country and name), the
/// month bucket (by month only), then the field.
pub(crate) mod place {
    pub(crate) const ALL_TIME: u8 = b'T';
    pub(crate) const MONTHS: u8 = b'M';
    pub(crate) const ADMIN1: u8 = b'A';
    pub(crate) const CELL: u8 = b'G';
    pub(crate) const COUNT: u8 = b'1';
    pub(crate) const KIND: u8 = b'2';
    pub(crate) const PRECISION: u8 = b'3';
    pub(crate) const FIRST: u8 = b'4';
    pub(crate) const LAST: u8 = b'5';
    /// Then a slot byte: 0 best, 1 best minus low, 2 high minus best, 3
    /// events giving figures.
    pub(crate) const FATALITIES: u8 = b'6';
}

/// Reads keys written with [`put_str`] and [`put_i64`].
pub(crate) struct Dec<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Dec<'a> {
    /// Reads `b` from its start.
    pub(crate) fn new(b: &'a [u8]) -> Dec<'a> {
        Dec { b, p: 0 }
    }

    /// Bytes read so far.
    pub(crate) fn pos(&self) -> usize {
        self.p
    }

    /// The next byte.
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let v = *self.b.get(self.p)?;
        self.p += 1;
        Some(v)
    }

    /// The next string.
    pub(crate) fn str(&mut self) -> Option<String> {
        let mut s = Vec::new();
        loop {
            let b = self.byte()?;
            if b != 0 {
                s.push(b);
                continue;
            }
            match self.byte()? {
                0xFF => s.push(0),
                1 => break,
                _ => return None,
            }
        }
        String::from_utf8(s).ok()
    }

    /// The next `i64` (`desc`: written with [`put_i64_desc`]).
    pub(crate) fn i64(&mut self, desc: bool) -> Option<i64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.b.get(self.p..self.p + 8)?);
        self.p += 8;
        let u = u64::from_be_bytes(a);
        Some(((if desc { !u } else { u }) ^ (1 << 63)) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_round_trip_through_their_keys() {
        for (key, name) in [
            ("russia", "Russia"),
            ("russia", "russia"),
            ("mark rutte", "Mark RUTTE"),
            ("ü:1", "Ü:1"),
            ("12:a", "12:A"),
            ("nato", "  NATO "),
            ("straße", "STRASSE"),
        ] {
            assert_eq!(shown(key, &shown_as(key, name)), name, "{key} {name}");
        }
        assert_eq!(shown_as("tail actor 7", "Tail actor 7"), "~0:T");
    }

    #[test]
    fn keys_sort_like_their_fields_and_read_back() {
        let strs = ["", "\0", "\0a", "a", "a\0", "ab", "b", "é"];
        for x in strs {
            for y in strs {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                put_str(&mut a, x);
                put_str(&mut b, y);
                a.push(b'9');
                assert_eq!(
                    a.cmp(&b),
                    x.cmp(y).then(std::cmp::Ordering::Greater),
                    "{x:?} {y:?}"
                );
                assert_eq!(Dec::new(&a).str().as_deref(), Some(x));
            }
        }
        let ints = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for x in ints {
            for y in ints {
                let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                put_i64(&mut a, x);
                put_i64(&mut b, y);
                put_i64_desc(&mut c, x);
                put_i64_desc(&mut d, y);
                assert_eq!(a.cmp(&b), x.cmp(&y));
                assert_eq!(c.cmp(&d), y.cmp(&x));
                assert_eq!(Dec::new(&a).i64(false), Some(x));
                assert_eq!(Dec::new(&c).i64(true), Some(x));
            }
        }
    }
}

/// Views as a stack of sorted layers (runs on disk, cells in memory)
/// read as their sum: the views at the head, or at a snapshot plus the
/// fold of the entries after it, or a branch's parent plus the branch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layered {
    /// Runs, oldest first.
    pub(crate) runs: Vec<std::sync::Arc<crate::runfile::Run>>,
    /// Sorted cells held in memory, added on top.
    pub(crate) mems: Vec<std::sync::Arc<[Cell]>>,
}

impl Layered {
    /// The summed cells with keys in `lo..hi` (`hi` none: to the end).
    pub(crate) fn scan<'a>(&'a self, lo: &[u8], hi: Option<&[u8]>) -> crate::runfile::Merge<'a> {
        let mut sources: Vec<Box<dyn Iterator<Item = crate::error::Result<Cell>> + 'a>> =
            Vec::with_capacity(self.runs.len() + self.mems.len());
        for r in &self.runs {
            sources.push(Box::new(r.scan(lo, hi)));
        }
        for m in &self.mems {
            let start = m.partition_point(|(k, _)| &**k < lo);
            let hi = hi.map(<[u8]>::to_vec);
            sources.push(Box::new(
                m[start..]
                    .iter()
                    .take_while(move |(k, _)| hi.as_deref().is_none_or(|h| &**k < h))
                    .cloned()
                    .map(Ok),
            ));
        }
        crate::runfile::Merge::new(sources)
    }

    /// The first positive cell in `lo..hi`.
    pub(crate) fn first(&self, lo: &[u8], hi: &[u8]) -> crate::error::Result<Option<Cell>> {
        for c in self.scan(lo, Some(hi)) {
            let c = c?;
            if c.1 > 0 {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// These layers with `cells` on top.
    pub(crate) fn with(&self, cells: Vec<Cell>) -> Layered {
        let mut l = self.clone();
        if !cells.is_empty() {
            l.mems.push(cells.into());
        }
        l
    }
}

/// `prefix` followed by `byte`.
pub(crate) fn then(prefix: &[u8], byte: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 1);
    k.extend_from_slice(prefix);
    k.push(byte);
    k
}

/// The least key after every key starting with `prefix`: its last byte
/// plus one. `prefix` ends with a field byte or the `01` that ends a
/// string written by [`put_str`], never with `FF`.
pub(crate) fn past(prefix: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    if let Some(last) = k.last_mut() {
        *last += 1;
    }
    k
}

/// Counts by name: cells `prefix` + string, as a map.
pub(crate) fn counts(
    v: &Layered,
    prefix: &[u8],
) -> crate::error::Result<std::collections::BTreeMap<String, u64>> {
    let mut out = std::collections::BTreeMap::new();
    for c in v.scan(prefix, Some(&past(prefix))) {
        let (k, n) = c?;
        if n > 0 {
            if let Some(s) = k.get(prefix.len()..).and_then(|r| Dec::new(r).str()) {
                out.insert(s, n as u64);
            }
        }
    }
    Ok(out)
}

/// The time point written as a packed `i64` at byte `at` of a key
/// (`desc`: written with [`put_i64_desc`]), as text at its precision.
pub(crate) fn point_at(key: &[u8], at: usize, desc: bool) -> Option<String> {
    crate::projection::fold::unpack(Dec::new(key.get(at..)?).i64(desc)?).map(|p| p.to_string())
}

/// How many rows a part holds (countries, or actors), without building
/// them: one read per row, skipping to the next row's key.
pub(crate) fn count_rows(v: &Layered, part: Part) -> crate::error::Result<u64> {
    let mut n = 0;
    let mut lo = vec![part.byte()];
    let hi = vec![part.byte() + 1];
    while let Some(c) = v.scan(&lo, Some(&hi)).next() {
        let (k, _) = c?;
        let mut d = Dec::new(k.get(1..).unwrap_or_default());
        if d.str().is_none() {
            break;
        }
        n += 1;
        lo = past(k.get(..1 + d.pos()).unwrap_or_default());
    }
    Ok(n)
}
