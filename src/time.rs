//! Fuzzy occurrence time: instants, days, months, years and intervals of
//! them, each stored as a UTC interval `[start, end)` in microseconds.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeZone, Utc};
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

/// One point of fuzzy time: the start of a unit of the given precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimePoint {
    /// The first microsecond of the unit.
    pub start: Micros,
    /// The unit (never [`Precision::Span`]).
    pub precision: Precision,
}

/// Earliest and latest years accepted, so that every bound fits chrono.
const MIN_YEAR: i32 = 1;
const MAX_YEAR: i32 = 9999;

impl TimePoint {
    /// Parses `2025`, `2025-09`, `2025-09-10` or an RFC 3339 instant.
    pub fn parse(text: &str) -> Result<TimePoint> {
        let t = text.trim();
        let bad = |why: &str| Error::invalid("occurred", format!("`{t}`: {why}"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let parts: Vec<&str> = t.split('-').collect();
        let (precision, date) = match parts.as_slice() {
            [y] if y.len() == 4 && digits(y) => (Precision::Year, (*y, "01", "01")),
            [y, m] if y.len() == 4 && m.len() == 2 && digits(y) && digits(m) => {
                (Precision::Month, (*y, *m, "01"))
            }
            [y, m, d]
                if y.len() == 4
                    && m.len() == 2
                    && d.len() == 2
                    && digits(y)
                    && digits(m)
                    && digits(d) =>
            {
                (Precision::Day, (*y, *m, *d))
            }
            _ => {
                let instant = DateTime::parse_from_rfc3339(t).map_err(|e| {
                    bad(&format!(
                        "not a year, YYYY-MM, YYYY-MM-DD or RFC 3339 instant ({e})"
                    ))
                })?;
                let utc = instant.with_timezone(&Utc);
                if !(MIN_YEAR..=MAX_YEAR).contains(&utc.year()) {
                    return Err(bad("year out of range 0001..9999"));
                }
                return Ok(TimePoint {
                    start: utc.timestamp_micros(),
                    precision: Precision::Instant,
                });
            }
        };
        let num = |s: &str| s.parse::<u32>().map_err(|_| bad("not a number"));
        let year = i32::try_from(num(date.0)?).map_err(|_| bad("year out of range"))?;
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(bad("year out of range 0001..9999"));
        }
        let day = NaiveDate::from_ymd_opt(year, num(date.1)?, num(date.2)?)
            .ok_or_else(|| bad("no such calendar date"))?;
        Ok(TimePoint {
            start: day_start(day),
            precision,
        })
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
            return *self;
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
        }
    }

    /// Rebuilds a point from stored parts, checking that they agree.
    pub(crate) fn from_parts(start: Micros, precision: Precision) -> Option<TimePoint> {
        if precision == Precision::Span {
            return None;
        }
        let p = TimePoint { start, precision };
        DateTime::from_timestamp_micros(start)?;
        (p.truncate(precision).start == start).then_some(p)
    }
}

impl std::fmt::Display for TimePoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(dt) = DateTime::from_timestamp_micros(self.start) else {
            return write!(f, "@{}", self.start);
        };
        match self.precision {
            Precision::Instant => f.write_str(&dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Precision::Day => write!(f, "{}", dt.format("%Y-%m-%d")),
            Precision::Month => write!(f, "{}", dt.format("%Y-%m")),
            Precision::Year | Precision::Span => write!(f, "{}", dt.format("%Y")),
        }
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
    Ok(TimePoint {
        start: day_start(d),
        precision: Precision::Day,
    })
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

    /// An interval; errors if `to` lies before `from`.
    pub fn range(from: TimePoint, to: TimePoint) -> Result<Occurred> {
        if to.start < from.start || to.end() <= from.start {
            return Err(Error::invalid(
                "occurred",
                format!("interval is inverted: `to` ({to}) is before `from` ({from})"),
            ));
        }
        Ok(Occurred { from, to })
    }

    /// Parses the string form (`"2025-09"`); see [`TimePoint::parse`].
    pub fn parse(text: &str) -> Result<Occurred> {
        TimePoint::parse(text).map(Occurred::point)
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
        let last = TimePoint {
            start: self.end().saturating_sub(1),
            precision: Precision::Instant,
        };
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

    /// Whether this interval lies entirely inside `[start, end)`.
    pub fn within(&self, start: Micros, end: Micros) -> bool {
        start <= self.start() && self.end() <= end
    }
}

impl std::fmt::Display for Occurred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_point() {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}..{}", self.from, self.to)
        }
    }
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
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
        .map_err(|e| Error::invalid("time", format!("`{text}` is not an RFC 3339 time ({e})")))
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
