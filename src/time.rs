//! Fuzzy occurrence time: instants, days, months, years and intervals of
//! them, each stored as a UTC interval `[start, end)` in microseconds.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Microseconds since the Unix epoch, UTC.
pub type Micros = i64;

/// How precisely a time is known. Ordered from finest to coarsest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Precision {
    /// An exact instant (`2025-12-03T10:00:00Z`).
    Instant,
    /// A calendar day (`2025-12-03`).
    Day,
    /// A calendar month (`2025-09`).
    Month,
    /// A calendar year (`2025`).
    Year,
    /// An interval that spans more than one calendar year.
    Span,
}

impl Precision {
    /// The lowercase name used in output (`day`, `month`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Precision::Instant => "instant",
            Precision::Day => "day",
            Precision::Month => "month",
            Precision::Year => "year",
            Precision::Span => "span",
        }
    }

    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_code(code: u8) -> Option<Precision> {
        Some(match code {
            0 => Precision::Instant,
            1 => Precision::Day,
            2 => Precision::Month,
            3 => Precision::Year,
            4 => Precision::Span,
            _ => return None,
        })
    }
}

/// The bucket size of the by-date view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Granularity {
    /// One bucket per calendar day.
    Day,
    /// One bucket per calendar month.
    Month,
    /// One bucket per calendar year.
    Year,
}

impl Granularity {
    /// All granularities, finest first.
    pub const ALL: [Granularity; 3] = [Granularity::Day, Granularity::Month, Granularity::Year];

    pub(crate) fn precision(self) -> Precision {
        match self {
            Granularity::Day => Precision::Day,
            Granularity::Month => Precision::Month,
            Granularity::Year => Precision::Year,
        }
    }
}

impl std::str::FromStr for Granularity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "day" => Ok(Granularity::Day),
            "month" => Ok(Granularity::Month),
            "year" => Ok(Granularity::Year),
            other => Err(Error::invalid(
                "granularity",
                format!("`{other}` is not one of day, month, year"),
            )),
        }
    }
}

/// What an end of an interval is, when it is not a date (EDTF level 1).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Bound {
    /// A date.
    #[default]
    Date,
    /// `..`: the interval is open on this side. The point is the earliest
    /// (or latest) year annals holds, so that queries see it as reaching
    /// that far.
    Open,
    /// Empty: this end is not known; stored like an open end.
    Unknown,
}

/// EDTF (ISO 8601-2) qualifiers of a date: `~` approximate, `?`
/// uncertain, `%` both; and for an interval's end, whether it is open or
/// unknown. They are kept with the event and printed back; they do not
/// change which interval the date covers.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Mark {
    /// `~`: the date is approximate ("about September").
    pub approximate: bool,
    /// `?`: the date is uncertain (the source is not sure).
    pub uncertain: bool,
    /// Whether the point is a date, or an open or unknown interval end.
    pub bound: Bound,
}

impl Mark {
    /// No qualifier: a plain date.
    pub const NONE: Mark = Mark {
        approximate: false,
        uncertain: false,
        bound: Bound::Date,
    };

    /// The mark as the high four bits of a stored precision code (zero
    /// for a plain date, so entries written before EDTF read the same).
    pub(crate) fn bits(self) -> u8 {
        let bound = match self.bound {
            Bound::Date => 0,
            Bound::Open => 4,
            Bound::Unknown => 8,
        };
        (u8::from(self.approximate) | u8::from(self.uncertain) << 1 | bound) << 4
    }

    pub(crate) fn from_bits(code: u8) -> Option<Mark> {
        let b = code >> 4;
        let bound = match b & 12 {
            0 => Bound::Date,
            4 => Bound::Open,
            8 => Bound::Unknown,
            _ => return None,
        };
        Some(Mark {
            approximate: b & 1 != 0,
            uncertain: b & 2 != 0,
            bound,
        })
    }

    fn suffix(self) -> &'static str {
        match (self.approximate, self.uncertain) {
            (true, true) => "%",
            (true, false) => "~",
            (false, true) => "?",
            (false, false) => "",
        }
    }
}

/// One point of fuzzy time: the start of a unit of the given precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimePoint {
    /// The first microsecond of the unit.
    pub start: Micros,
    /// The unit (never [`Precision::Span`]).
    pub precision: Precision,
    /// EDTF qualifiers ([`Mark::NONE`] for a plain date).
    pub mark: Mark,
}

/// Earliest and latest years accepted, so that every bound fits chrono.
const MIN_YEAR: i32 = 1;
const MAX_YEAR: i32 = 9999;

/// Which end of an interval a date is read for: an EDTF date that covers
/// several units (a decade `201X`, a season `2025-21`) gives its first
/// unit as a start and its last as an end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Start,
    End,
}

/// Parses one EDTF date (no interval) into its first and last units, both
/// carrying the date's qualifiers.
fn parse_date(text: &str) -> Result<(TimePoint, TimePoint)> {
    let t = text.trim();
    let bad = |why: &str| Error::invalid("occurred", format!("`{t}`: {why}"));
    let (body, mark) = match t.as_bytes().last() {
        Some(b'~') => (&t[..t.len() - 1], (true, false)),
        Some(b'?') => (&t[..t.len() - 1], (false, true)),
        Some(b'%') => (&t[..t.len() - 1], (true, true)),
        _ => (t, (false, false)),
    };
    let mark = Mark {
        approximate: mark.0,
        uncertain: mark.1,
        bound: Bound::Date,
    };
    if body.contains(['~', '?', '%']) {
        return Err(bad(
            "a qualifier on one part of a date (EDTF level 2) is not supported; qualify the whole date (`2025-09~`)",
        ));
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let num = |s: &str| s.parse::<u32>().map_err(|_| bad("not a number"));
    let year = |y: &str| -> Result<i32> {
        let y = i32::try_from(num(y)?).map_err(|_| bad("year out of range"))?;
        if !(MIN_YEAR..=MAX_YEAR).contains(&y) {
            return Err(bad("year out of range 0001..9999"));
        }
        Ok(y)
    };
    let unit = |y: i32, m: u32, d: u32, precision: Precision| -> Result<TimePoint> {
        let day = NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| bad("no such calendar date"))?;
        Ok(TimePoint {
            start: day_start(day),
            precision,
            mark,
        })
    };
    let months = |y: i32, first: u32, last: u32| -> Result<(TimePoint, TimePoint)> {
        let (ly, lm) = if last > 12 {
            (y + 1, last - 12)
        } else {
            (y, last)
        };
        if ly > MAX_YEAR {
            return Err(bad("year out of range 0001..9999"));
        }
        Ok((
            unit(y, first, 1, Precision::Month)?,
            unit(ly, lm, 1, Precision::Month)?,
        ))
    };
    let parts: Vec<&str> = body.split('-').collect();
    let one = |p: TimePoint| Ok((p, p));
    match parts.as_slice() {
        [y] if y.len() == 4 && digits(y) => one(unit(year(y)?, 1, 1, Precision::Year)?),
        // Unspecified digits at the end of a year: a decade or a century.
        [y] if y.len() == 4 && y.ends_with('X') && digits(y.trim_end_matches('X')) => {
            let known = y.trim_end_matches('X');
            if known.len() < 2 {
                return Err(bad("an unspecified millennium or more is too vague to store"));
            }
            let scale = 10i32.pow(4 - known.len() as u32);
            // `00XX` and `000X` would include the year 0000, refused as a
            // year of its own: refused here too rather than clamped.
            let first = i32::try_from(num(known)?).map_err(|_| bad("year out of range"))? * scale;
            if first < MIN_YEAR {
                return Err(bad(
                    "includes the year 0000; years run 0001..9999 (give `0001/0099` for the first century)",
                ));
            }
            let last = (first + scale - 1).min(MAX_YEAR);
            Ok((
                unit(first, 1, 1, Precision::Year)?,
                unit(last, 1, 1, Precision::Year)?,
            ))
        }
        [y, m] if y.len() == 4 && digits(y) && m.len() == 2 => match *m {
            "XX" => one(unit(year(y)?, 1, 1, Precision::Year)?),
            m if digits(m) => match num(m)? {
                mm @ 1..=12 => one(unit(year(y)?, mm, 1, Precision::Month)?),
                // Seasons (EDTF level 1: 21-24, northern meteorological;
                // level 2: 25-32 by hemisphere, quarters, quadrimesters,
                // semesters), as the months they cover.
                code @ 21..=41 => {
                    let (first, last) = match code {
                        21 | 25 | 31 => (3, 5),
                        22 | 26 | 32 => (6, 8),
                        23 | 27 | 29 => (9, 11),
                        24 | 28 | 30 => (12, 14),
                        33..=36 => {
                            let q = (code - 33) * 3 + 1;
                            (q, q + 2)
                        }
                        37..=39 => {
                            let q = (code - 37) * 4 + 1;
                            (q, q + 3)
                        }
                        _ => {
                            let q = (code - 40) * 6 + 1;
                            (q, q + 5)
                        }
                    };
                    months(year(y)?, first, last)
                }
                _ => Err(bad("no such month or season (01-12, 21-41)")),
            },
            _ => Err(bad("the month is not two digits or XX")),
        },
        [y, m, d] if y.len() == 4 && digits(y) && m.len() == 2 && d.len() == 2 => {
            match (*m, *d) {
                ("XX", "XX") => one(unit(year(y)?, 1, 1, Precision::Year)?),
                (m, "XX") if digits(m) => one(unit(year(y)?, num(m)?, 1, Precision::Month)?),
                (m, d) if digits(m) && digits(d) => {
                    one(unit(year(y)?, num(m)?, num(d)?, Precision::Day)?)
                }
                _ => Err(bad(
                    "unspecified digits (X) are supported for a whole month or day at the end of a date",
                )),
            }
        }
        _ => {
            let start = parse_instant(body).map_err(|why| bad(&why))?;
            one(TimePoint {
                start,
                precision: Precision::Instant,
                mark,
            })
        }
    }
}

/// Parses an EDTF level 0 date and time (`YYYY-MM-DDThh:mm:ss` with an
/// optional fraction) into UTC microseconds. The zone is `Z`, `±hh:mm`
/// or `±hh`; a time without one is taken as UTC (EDTF calls it local time
/// without saying which place's, and a stored instant needs one). A leap
/// second (`23:59:60`) is refused: UTC microseconds have no place for it,
/// and chrono would carry it into the next day (and year).
fn parse_instant(body: &str) -> std::result::Result<Micros, String> {
    let fail = |e: &dyn std::fmt::Display| {
        format!("not a year, YYYY-MM, YYYY-MM-DD, an EDTF date or a date and time ({e})")
    };
    // Where the zone starts: after the `T` and the time's digits.
    let time_at = body
        .find(['T', 't'])
        .ok_or_else(|| fail(&"no `T` and time after the date"))?;
    let zone_at = body[time_at..]
        .find(['Z', 'z', '+', '-'])
        .map(|i| time_at + i);
    let normalized = match zone_at.map(|i| (&body[..i], &body[i..])) {
        None => format!("{body}Z"),
        // An offset of hours only.
        Some((time, zone)) if zone.len() == 3 && zone[1..].bytes().all(|b| b.is_ascii_digit()) => {
            format!("{time}{zone}:00")
        }
        Some(_) => body.to_string(),
    };
    let instant = DateTime::parse_from_rfc3339(&normalized).map_err(|e| fail(&e))?;
    if instant.nanosecond() >= 1_000_000_000 {
        return Err(
            "a leap second (`:60`) cannot be stored: give the second before it (`23:59:59`)".into(),
        );
    }
    let utc = instant.with_timezone(&Utc);
    if !(MIN_YEAR..=MAX_YEAR).contains(&utc.year()) {
        return Err("year out of range 0001..9999".into());
    }
    Ok(utc.timestamp_micros())
}

impl TimePoint {
    /// Parses one date: `2025`, `2025-09`, `2025-09-10` or an RFC 3339
    /// instant, optionally with an EDTF qualifier (`2025-09~`, `2025?`,
    /// `2025-09-10%`) or unspecified digits that leave one unit
    /// (`2025-XX` is the year, `2025-09-XX` the month).
    pub fn parse(text: &str) -> Result<TimePoint> {
        match parse_date(text)? {
            (a, b) if a == b => Ok(a),
            (a, b) => Err(Error::invalid(
                "occurred",
                format!(
                    "`{}` covers {a} to {b}, not one unit; give it as `occurred` or a query bound",
                    text.trim()
                ),
            )),
        }
    }

    /// Parses an end of an interval: a date (its first unit for the start,
    /// its last for the end), `..` (open) or the empty string (unknown).
    fn parse_end(text: &str, side: Side) -> Result<TimePoint> {
        let t = text.trim();
        let bound = match t {
            ".." => Bound::Open,
            "" => Bound::Unknown,
            _ => {
                let (a, b) = parse_date(t)?;
                return Ok(if side == Side::Start { a } else { b });
            }
        };
        let y = if side == Side::Start {
            MIN_YEAR
        } else {
            MAX_YEAR
        };
        let day = NaiveDate::from_ymd_opt(y, 1, 1)
            .ok_or_else(|| Error::invalid("occurred", "no such calendar date"))?;
        Ok(TimePoint {
            start: day_start(day),
            precision: Precision::Year,
            mark: Mark {
                bound,
                ..Mark::NONE
            },
        })
    }

    /// Parses a query's lower bound: any EDTF date, read as its first unit
    /// (`2025-21`, spring, starts with March).
    pub fn parse_from(text: &str) -> Result<TimePoint> {
        Ok(TimePoint::plain(parse_date(text)?.0))
    }

    /// Parses a query's upper bound: any EDTF date, read as its last unit.
    pub fn parse_to(text: &str) -> Result<TimePoint> {
        Ok(TimePoint::plain(parse_date(text)?.1))
    }

    fn plain(p: TimePoint) -> TimePoint {
        TimePoint {
            mark: Mark::NONE,
            ..p
        }
    }

    /// The first microsecond after the unit.
    pub fn end(&self) -> Micros {
        let Some(dt) = DateTime::from_timestamp_micros(self.start) else {
            return self.start.saturating_add(1);
        };
        let d = dt.date_naive();
        let next = match self.precision {
            Precision::Instant => return self.start.saturating_add(1),
            Precision::Day => d.succ_opt(),
            Precision::Month => {
                if d.month() == 12 {
                    NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
                }
            }
            Precision::Year | Precision::Span => NaiveDate::from_ymd_opt(d.year() + 1, 1, 1),
        };
        next.map(day_start).unwrap_or(Micros::MAX)
    }

    /// The point truncated to a coarser precision (finer ones are kept).
    pub fn truncate(&self, precision: Precision) -> TimePoint {
        if precision <= self.precision {
            return TimePoint::plain(*self);
        }
        let Some(dt) = DateTime::from_timestamp_micros(self.start) else {
            return *self;
        };
        let d = dt.date_naive();
        let day = match precision {
            Precision::Instant | Precision::Day => Some(d),
            Precision::Month => NaiveDate::from_ymd_opt(d.year(), d.month(), 1),
            Precision::Year | Precision::Span => NaiveDate::from_ymd_opt(d.year(), 1, 1),
        };
        TimePoint {
            start: day.map(day_start).unwrap_or(self.start),
            precision: if precision == Precision::Span {
                Precision::Year
            } else {
                precision
            },
            mark: Mark::NONE,
        }
    }

    /// A plain point (no qualifier) of `precision` starting at `start`.
    pub(crate) fn at(start: Micros, precision: Precision) -> TimePoint {
        TimePoint {
            start,
            precision,
            mark: Mark::NONE,
        }
    }

    /// Rebuilds a point from stored parts, checking that they agree.
    pub(crate) fn from_parts(start: Micros, precision: Precision) -> Option<TimePoint> {
        if precision == Precision::Span {
            return None;
        }
        let p = TimePoint::at(start, precision);
        DateTime::from_timestamp_micros(start)?;
        (p.truncate(precision).start == start).then_some(p)
    }
}

/// EDTF: the date with its qualifier, `..` for an open end, nothing for an
/// unknown one.
impl std::fmt::Display for TimePoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mark.bound {
            Bound::Open => return f.write_str(".."),
            Bound::Unknown => return Ok(()),
            Bound::Date => {}
        }
        let Some(dt) = DateTime::from_timestamp_micros(self.start) else {
            return write!(f, "@{}", self.start);
        };
        match self.precision {
            Precision::Instant => f.write_str(&dt.to_rfc3339_opts(SecondsFormat::AutoSi, true))?,
            Precision::Day => write!(f, "{}", dt.format("%Y-%m-%d"))?,
            Precision::Month => write!(f, "{}", dt.format("%Y-%m"))?,
            Precision::Year | Precision::Span => write!(f, "{}", dt.format("%Y"))?,
        }
        f.write_str(self.mark.suffix())
    }
}

/// The day `d` as a point of day precision (importers build dates from
/// their parts, not from text).
pub(crate) fn day_point(d: NaiveDate) -> Result<TimePoint> {
    if !(MIN_YEAR..=MAX_YEAR).contains(&d.year()) {
        return Err(Error::invalid(
            "occurred",
            format!("`{d}`: year out of range 0001..9999"),
        ));
    }
    Ok(TimePoint::at(day_start(d), Precision::Day))
}

fn day_start(d: NaiveDate) -> Micros {
    Utc.from_utc_datetime(&d.and_time(chrono::NaiveTime::MIN))
        .timestamp_micros()
}

/// When an event happened: one fuzzy point, or an interval `from..=to` of
/// two (inclusive at each one's precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Occurred {
    /// The first point (equal to `to` for a single point).
    pub from: TimePoint,
    /// The last point, inclusive at its precision.
    pub to: TimePoint,
}

impl Occurred {
    /// A single fuzzy point.
    pub fn point(p: TimePoint) -> Occurred {
        Occurred { from: p, to: p }
    }

    /// An interval; errors if `to` lies wholly before `from`. An end
    /// coarser than the start that contains it (`2025-09/2025`: from
    /// September to some time in 2025) is an interval to the end of that
    /// unit.
    pub fn range(from: TimePoint, to: TimePoint) -> Result<Occurred> {
        if to.end() <= from.start {
            return Err(Error::invalid(
                "occurred",
                format!("interval is inverted: `to` ({to}) ends before `from` ({from}) begins"),
            ));
        }
        Ok(Occurred { from, to })
    }

    /// Parses the string form: one date (`"2025-09"`, `"2025-09~"`; see
    /// [`TimePoint::parse`]), an EDTF date that covers several units
    /// (`"201X"`, the season `"2025-23"`), or an EDTF interval
    /// (`"2025-09/2025-11"`, `"../2025-11"`, `"2025-09/"`).
    pub fn parse(text: &str) -> Result<Occurred> {
        match text.split_once('/') {
            Some((a, b)) => Occurred::parse_range(a, b),
            None => {
                let (a, b) = parse_date(text)?;
                if a == b {
                    Ok(Occurred::point(a))
                } else {
                    Occurred::range(a, b)
                }
            }
        }
    }

    /// Parses an interval from its two ends, each a date, `..` (open) or
    /// empty (unknown).
    pub fn parse_range(from: &str, to: &str) -> Result<Occurred> {
        let from = TimePoint::parse_end(from, Side::Start)?;
        let to = TimePoint::parse_end(to, Side::End)?;
        if from.mark.bound != Bound::Date && to.mark.bound != Bound::Date {
            return Err(Error::invalid(
                "occurred",
                "an interval needs a date at one end at least",
            ));
        }
        Occurred::range(from, to)
    }

    /// Inclusive start of the UTC interval, in microseconds.
    pub fn start(&self) -> Micros {
        self.from.start
    }

    /// Exclusive end of the UTC interval, in microseconds.
    pub fn end(&self) -> Micros {
        self.to.end()
    }

    /// Whether this is a single point rather than an interval.
    pub fn is_point(&self) -> bool {
        self.from == self.to
    }

    /// The precision of the whole: a point's own, or for an interval the
    /// smallest calendar unit that contains it ([`Precision::Span`] if it
    /// crosses a year boundary).
    pub fn precision(&self) -> Precision {
        if self.is_point() {
            return self.from.precision;
        }
        let first = self.from;
        let last = TimePoint::at(self.end().saturating_sub(1), Precision::Instant);
        for p in [Precision::Day, Precision::Month, Precision::Year] {
            if first.truncate(p) == last.truncate(p) {
                return p;
            }
        }
        Precision::Span
    }

    /// Whether `[start, end)` overlaps this interval.
    pub fn overlaps(&self, start: Micros, end: Micros) -> bool {
        self.start() < end && start < self.end()
    }

    /// Whether this interval lies entirely inside `[start, end)`
    /// (`Micros::MIN` and `Micros::MAX` for an unbounded side). An open
    /// or unknown end is never certainly inside a bounded side: see
    /// [`certainly_within`].
    pub fn within(&self, start: Micros, end: Micros) -> bool {
        certainly_within(self.start(), self.end(), start, end)
    }
}

/// EDTF: `2025-09~`, `2025-09-09/2025-09-10`, `../2025-11`.
impl std::fmt::Display for Occurred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_point() {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}/{}", self.from, self.to)
        }
    }
}

/// The first microsecond of the year 0001: where an open or unknown
/// start is stored.
fn storage_start() -> Micros {
    NaiveDate::from_ymd_opt(MIN_YEAR, 1, 1).map_or(Micros::MIN, day_start)
}

/// The first microsecond after the year 9999: where an open or unknown
/// end is stored.
fn storage_end() -> Micros {
    NaiveDate::from_ymd_opt(MAX_YEAR + 1, 1, 1).map_or(Micros::MAX, day_start)
}

/// Whether the occurrence interval `[start, end)` lies certainly inside
/// the range `[lo, hi)`. An open or unknown end (`../2025`, `2025/`) is
/// stored at the limit of the storable years, and it is never certainly
/// inside a bounded side of a range: a side that reaches a storage
/// limit counts as open unless the range is unbounded on that side. The
/// index applies the same rule from the stored bounds alone, so a date
/// given as exactly the year 0001 or 9999 at that end is treated as open.
pub(crate) fn certainly_within(start: Micros, end: Micros, lo: Micros, hi: Micros) -> bool {
    let low_ok = if start <= storage_start() {
        lo == Micros::MIN
    } else {
        lo <= start
    };
    let high_ok = if end >= storage_end() {
        hi == Micros::MAX
    } else {
        end <= hi
    };
    low_ok && high_ok
}

/// Formats microseconds as RFC 3339 UTC (`recorded_at` in output).
pub fn format_micros(t: Micros) -> String {
    match DateTime::from_timestamp_micros(t) {
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => format!("@{t}"),
    }
}

/// Parses an RFC 3339 time into microseconds.
pub fn parse_rfc3339(text: &str) -> Result<Micros> {
    let t = DateTime::parse_from_rfc3339(text.trim())
        .map_err(|e| Error::invalid("time", format!("`{text}` is not an RFC 3339 time ({e})")))?;
    if t.nanosecond() >= 1_000_000_000 {
        return Err(Error::invalid(
            "time",
            format!("`{text}`: a leap second (`:60`) cannot be stored"),
        ));
    }
    Ok(t.with_timezone(&Utc).timestamp_micros())
}

/// Now, in microseconds.
pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> TimePoint {
        TimePoint::parse(s).unwrap()
    }

    #[test]
    fn parses_each_form_and_prints_it_back() {
        for (s, prec) in [
            ("2025", Precision::Year),
            ("2025-09", Precision::Month),
            ("2025-09-10", Precision::Day),
            ("2025-12-03T10:00:00Z", Precision::Instant),
            ("2025-12-03T10:00:00.250Z", Precision::Instant),
        ] {
            let t = p(s);
            assert_eq!(t.precision, prec);
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(
            p("2025-12-03T12:00:00+02:00").to_string(),
            "2025-12-03T10:00:00Z"
        );
    }

    #[test]
    fn ends_are_exclusive_unit_boundaries() {
        assert_eq!(p("2025-09").end(), p("2025-10-01").start);
        assert_eq!(p("2025-12").end(), p("2026-01-01").start);
        assert_eq!(p("2024-02-28").end(), p("2024-02-29").start);
        assert_eq!(p("2025").end(), p("2026").start);
    }

    #[test]
    fn rejects_bad_dates_and_inverted_ranges() {
        for bad in [
            "2025-13",
            "2025-02-30",
            "25-09",
            "2025-9",
            "yesterday",
            "",
            "0000",
            "2025-09-10T25:00:00Z",
        ] {
            assert!(TimePoint::parse(bad).is_err(), "{bad}");
        }
        assert!(Occurred::range(p("2025-10"), p("2025-09")).is_err());
        assert!(Occurred::range(p("2025-09"), p("2025-09-15")).is_ok());
    }

    /// #27 item 5: an end coarser than the start that contains it.
    #[test]
    fn coarser_end_containing_the_start_is_an_interval() {
        for (text, from, to, printed) in [
            ("2025-09/2025", "2025-09-01", "2026-01-01", "2025-09/2025"),
            ("2025-21/2025", "2025-03-01", "2026-01-01", "2025-03/2025"),
            (
                "2025-09-10/2025-09",
                "2025-09-10",
                "2025-10-01",
                "2025-09-10/2025-09",
            ),
            (
                "2025-09/2025-XX",
                "2025-09-01",
                "2026-01-01",
                "2025-09/2025",
            ),
        ] {
            let o = Occurred::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(o.start(), p(from).start, "{text}");
            assert_eq!(o.end(), p(to).start, "{text}");
            assert_eq!(o.to_string(), printed);
            // Printed back, it parses to the same interval.
            assert_eq!(Occurred::parse(&o.to_string()).unwrap(), o);
        }
        let err = Occurred::parse("2025-09/2024").unwrap_err().to_string();
        assert!(err.contains("inverted"), "{err}");
        assert!(Occurred::parse("2025-09-10/2025-08").is_err());
    }

    /// #27 item 6: a leap second is refused, not carried into 2017.
    #[test]
    fn leap_seconds_are_refused() {
        let err = TimePoint::parse("2016-12-31T23:59:60Z")
            .unwrap_err()
            .to_string();
        assert!(err.contains("leap second"), "{err}");
        assert!(parse_rfc3339("2016-12-31T23:59:60Z").is_err());
        assert!(TimePoint::parse("2016-12-31T23:59:59Z").is_ok());
    }

    /// #27 item 7: unspecified digits that include the year 0000.
    #[test]
    fn unspecified_years_including_0000_are_refused() {
        for bad in ["00XX", "000X", "0000"] {
            let err = Occurred::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("0000") || err.contains("out of range"),
                "{bad}: {err}"
            );
        }
        let c = Occurred::parse("01XX").unwrap();
        assert_eq!((c.start(), c.end()), (p("0100").start, p("0199").end()));
    }

    /// #27 item 8: level 0 date-times without a zone, offsets in hours.
    #[test]
    fn level_0_times_without_zone_and_hour_offsets() {
        let utc = TimePoint::parse("2001-02-03T09:30:01Z").unwrap();
        assert_eq!(TimePoint::parse("2001-02-03T09:30:01").unwrap(), utc);
        let plus5 = TimePoint::parse("2001-02-03T14:30:01+05").unwrap();
        assert_eq!(plus5, utc);
        assert_eq!(TimePoint::parse("2001-02-03T14:30:01+05:00").unwrap(), utc);
        assert_eq!(TimePoint::parse("2001-02-03T04:30:01-05").unwrap(), utc);
        let frac = TimePoint::parse("2001-02-03T09:30:01.5").unwrap();
        assert_eq!(frac.start, utc.start + 500_000);
        for bad in [
            "2001-02-03T09:30",
            "2001-02-03T09:30:01+5",
            "2001-02-03 09:30:01",
        ] {
            assert!(TimePoint::parse(bad).is_err(), "{bad}");
        }
    }

    /// #27 item 9: an open or unknown end is never certainly inside a
    /// bounded range.
    #[test]
    fn open_and_unknown_ends_are_never_certainly_within() {
        let year1 = (p("0001").start, p("0001").end());
        for text in ["../0001", "/0001"] {
            let o = Occurred::parse(text).unwrap();
            assert!(o.overlaps(year1.0, year1.1), "{text}");
            assert!(!o.within(year1.0, year1.1), "{text}");
            assert!(!o.within(year1.0, Micros::MAX), "{text}");
            assert!(o.within(Micros::MIN, year1.1), "{text}");
        }
        let open_end = Occurred::parse("2025-09/..").unwrap();
        assert!(!open_end.within(p("2025").start, p("9999").end()));
        assert!(open_end.within(p("2025").start, Micros::MAX));
        let dated = Occurred::parse("2025-09/2025-10").unwrap();
        assert!(dated.within(p("2025").start, p("2025").end()));
    }

    #[test]
    fn edtf_qualifiers_are_kept_and_printed_back() {
        for s in ["2025-09~", "2025?", "2025-09-10%", "2025-12-03T10:00:00Z~"] {
            let t = p(s);
            assert_eq!(t.to_string(), s);
            assert_eq!(t.start, p(&s[..s.len() - 1]).start, "{s}");
        }
        let about = p("2025-09~");
        assert!(about.mark.approximate && !about.mark.uncertain);
        assert!(p("2025-09%").mark.uncertain);
        assert!(TimePoint::parse("2025?-09").is_err(), "level 2 qualifier");
    }

    #[test]
    fn edtf_unspecified_digits_seasons_and_intervals() {
        let o = |s: &str| Occurred::parse(s).unwrap();
        let span = |s: &str| {
            let x = o(s);
            (TimePoint::at(x.start(), Precision::Instant), x.end())
        };
        assert_eq!(o("2025-XX"), o("2025"));
        assert_eq!(o("2025-XX-XX"), o("2025"));
        assert_eq!(o("2025-09-XX"), o("2025-09"));
        assert_eq!(span("201X").0.start, p("2010").start);
        assert_eq!(span("201X").1, p("2019").end());
        assert_eq!(span("20XX").1, p("2099").end());
        // Spring is March to May; winter runs into the next year.
        assert_eq!(span("2025-21").0.start, p("2025-03").start);
        assert_eq!(span("2025-21").1, p("2025-05").end());
        assert_eq!(span("2025-24").1, p("2026-02").end());
        assert_eq!(span("2025-34").0.start, p("2025-04").start);
        assert_eq!(span("2025-41").1, p("2025-12").end());
        let r = o("2025-09/2025-11~");
        assert_eq!(
            (r.start(), r.end()),
            (p("2025-09").start, p("2025-11").end())
        );
        assert_eq!(r.to_string(), "2025-09/2025-11~");
        let open = o("../2025-11");
        assert_eq!(open.from.mark.bound, Bound::Open);
        assert_eq!(open.start(), p("0001").start);
        assert_eq!(open.to_string(), "../2025-11");
        let unknown = o("2025-09/");
        assert_eq!(unknown.to.mark.bound, Bound::Unknown);
        assert_eq!(unknown.end(), p("9999").end());
        assert_eq!(unknown.to_string(), "2025-09/");
        for bad in [
            "../..",
            "/",
            "2025-42",
            "2025-X9",
            "2025-XX-10",
            "1XXX",
            "2025-11/2025-09",
        ] {
            assert!(Occurred::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(TimePoint::parse_from("2025-22").unwrap(), p("2025-06"));
        assert_eq!(TimePoint::parse_to("2025-22").unwrap(), p("2025-08"));
        assert!(
            TimePoint::parse("201X").is_err(),
            "a decade is not one unit"
        );
    }

    #[test]
    fn marks_survive_their_stored_bits() {
        for approximate in [false, true] {
            for uncertain in [false, true] {
                for bound in [Bound::Date, Bound::Open, Bound::Unknown] {
                    let m = Mark {
                        approximate,
                        uncertain,
                        bound,
                    };
                    assert_eq!(Mark::from_bits(m.bits() | 3), Some(m));
                }
            }
        }
        assert_eq!(Mark::from_bits(0xc0), None);
    }

    #[test]
    fn overlap_versus_within() {
        let sept = Occurred::parse("2025-09").unwrap();
        let (a, b) = (p("2025-09-10").start, p("2025-09-12").end());
        assert!(sept.overlaps(a, b));
        assert!(!sept.within(a, b));
        let day = Occurred::parse("2025-09-11").unwrap();
        assert!(day.within(a, b));
    }

    #[test]
    fn interval_precision_is_its_containing_unit() {
        let r = |a, b| Occurred::range(p(a), p(b)).unwrap().precision();
        assert_eq!(r("2025-09-01", "2025-09-30"), Precision::Month);
        assert_eq!(r("2025-06", "2025-11"), Precision::Year);
        assert_eq!(r("2024-11", "2025-02"), Precision::Span);
        assert_eq!(
            r("2025-12-03T10:00:00Z", "2025-12-03T12:00:00Z"),
            Precision::Day
        );
    }
}
