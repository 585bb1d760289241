//! Occurrence time: overlap versus within, inclusive ranges at their
//! precision, and the by-date view's buckets.

mod common;

use annals::{Granularity, Query};
use common::*;

fn ids(db: &annals::Annals, q: Query) -> Vec<String> {
    db.query(&q)
        .unwrap()
        .into_iter()
        .map(|r| r.event.kind)
        .collect()
}

#[test]
fn september_overlaps_ten_to_twelve_september_but_is_not_within_it() {
    let (_d, db) = fresh();
    db.append(vec![
        ev(r#"{"kind":"in_september","occurred":"2025-09"}"#),
        ev(r#"{"kind":"on_the_eleventh","occurred":"2025-09-11"}"#),
        ev(r#"{"kind":"at_noon","occurred":"2025-09-12T12:00:00Z"}"#),
        ev(r#"{"kind":"in_october","occurred":"2025-10"}"#),
    ])
    .unwrap();
    let q = Query::new()
        .from("2025-09-10")
        .unwrap()
        .to("2025-09-12")
        .unwrap();
    assert_eq!(
        ids(&db, q.clone()),
        ["in_september", "on_the_eleventh", "at_noon"]
    );
    assert_eq!(ids(&db, q.within()), ["on_the_eleventh", "at_noon"]);
}

#[test]
fn to_is_inclusive_at_its_precision_and_either_end_may_be_open() {
    let (_d, db) = fresh();
    db.append(vec![
        ev(r#"{"kind":"late_september","occurred":"2025-09-30T23:59:59Z"}"#),
        ev(r#"{"kind":"first_of_october","occurred":"2025-10-01"}"#),
    ])
    .unwrap();
    assert_eq!(
        ids(&db, Query::new().to("2025-09").unwrap()),
        ["late_september"]
    );
    assert_eq!(
        ids(&db, Query::new().from("2025-10").unwrap()),
        ["first_of_october"]
    );
    assert_eq!(
        ids(
            &db,
            Query::new()
                .from("2025")
                .unwrap()
                .to("2025")
                .unwrap()
                .within()
        )
        .len(),
        2
    );
}

#[test]
fn intervals_overlap_by_any_part() {
    let (_d, db) = fresh();
    db.append(vec![ev(
        r#"{"kind":"recent_months","occurred":{"from":"2025-09","to":"2025-11"}}"#,
    )])
    .unwrap();
    assert_eq!(ids(&db, Query::new().from("2025-11-30").unwrap()).len(), 1);
    assert!(ids(&db, Query::new().from("2025-12").unwrap()).is_empty());
    assert!(ids(
        &db,
        Query::new()
            .from("2025-10")
            .unwrap()
            .to("2025-10")
            .unwrap()
            .within()
    )
    .is_empty());
    assert_eq!(
        ids(
            &db,
            Query::new()
                .from("2025")
                .unwrap()
                .to("2025")
                .unwrap()
                .within()
        )
        .len(),
        1
    );
}

#[test]
fn results_are_ordered_by_occurrence_start_then_seq() {
    let (_d, db) = fresh();
    db.append(vec![
        ev(r#"{"kind":"b_day","occurred":"2025-09-01"}"#),
        ev(r#"{"kind":"c_instant","occurred":"2025-08-31T23:00:00Z"}"#),
        ev(r#"{"kind":"a_month","occurred":"2025-09"}"#),
    ])
    .unwrap();
    assert_eq!(ids(&db, Query::new()), ["c_instant", "b_day", "a_month"]);
}

#[test]
fn coarse_events_are_not_smeared_across_finer_buckets() {
    let (_d, db) = fresh();
    db.append(vec![
        ev(r#"{"kind":"drones","occurred":"2025-09","countries":["PL"]}"#),
        ev(r#"{"kind":"drones","occurred":"2025-09-10","countries":["PL","RO"]}"#),
        ev(r#"{"kind":"meeting","occurred":"2025-09-10T08:00:00Z"}"#),
        ev(r#"{"kind":"season","occurred":{"from":"2025-06","to":"2025-11"}}"#),
        ev(r#"{"kind":"long","occurred":{"from":"2024-11","to":"2025-02"}}"#),
    ])
    .unwrap();
    let days: Vec<(String, &str, u64)> = db
        .by_date(Granularity::Day)
        .unwrap()
        .iter()
        .map(|r| (r.bucket.clone(), r.precision.name(), r.count))
        .collect();
    assert_eq!(
        days,
        [
            ("2024".to_string(), "span", 1),
            ("2025".to_string(), "year", 1),
            ("2025-09".to_string(), "month", 1),
            ("2025-09-10".to_string(), "day", 2),
        ]
    );
    let row = db
        .by_date(Granularity::Day)
        .unwrap()
        .iter()
        .find(|r| r.bucket == "2025-09-10")
        .cloned()
        .unwrap();
    assert_eq!(row.by_country.get("PL"), Some(&1));
    assert_eq!(row.by_country.get("RO"), Some(&1));
    let months: Vec<(String, u64)> = db
        .by_date(Granularity::Month)
        .unwrap()
        .iter()
        .map(|r| (r.bucket.clone(), r.count))
        .collect();
    assert_eq!(
        months,
        [
            ("2024".into(), 1),
            ("2025".into(), 1),
            ("2025-09".into(), 3)
        ]
    );
    let years: Vec<(String, u64)> = db
        .by_date(Granularity::Year)
        .unwrap()
        .iter()
        .map(|r| (r.bucket.clone(), r.count))
        .collect();
    assert_eq!(years, [("2024".into(), 1), ("2025".into(), 4)]);
}

proptest::proptest! {
    /// Every date annals accepted before EDTF parses to the same interval
    /// as then: computed here from the calendar, not by annals.
    #[test]
    fn dates_of_the_old_syntax_keep_their_intervals(
        y in 1i32..=9999, m in 1u32..=12, d in 1u32..=28, form in 0u8..4,
        secs in 0u32..86_400, to in proptest::option::of((1i32..=9999, 1u32..=12)),
    ) {
        use chrono::NaiveDate;
        let micros = |y: i32, m: u32, d: u32| {
            NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(0, 0, 0).unwrap()
                .and_utc().timestamp_micros()
        };
        let next_month = |y: i32, m: u32| if m == 12 { micros(y + 1, 1, 1) } else { micros(y, m + 1, 1) };
        let (text, start, end) = match form {
            0 => (format!("{y:04}"), micros(y, 1, 1), micros(y + 1, 1, 1)),
            1 => (format!("{y:04}-{m:02}"), micros(y, m, 1), next_month(y, m)),
            2 => (format!("{y:04}-{m:02}-{d:02}"), micros(y, m, d), micros(y, m, d) + 86_400_000_000),
            _ => {
                let t = micros(y, m, d) + i64::from(secs) * 1_000_000;
                (format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60), t, t + 1)
            }
        };
        let o = annals::Occurred::parse(&text).unwrap();
        proptest::prop_assert_eq!((o.start(), o.end(), o.to_string()), (start, end, text.clone()));
        let line = format!(r#"{{"kind":"x","occurred":"{text}"}}"#);
        proptest::prop_assert_eq!(annals::parse_event(&line).unwrap().occurred, o);
        // The object form of an interval, as before.
        if let Some((ty, tm)) = to.filter(|&(ty, tm)| micros(ty, tm, 1) >= start) {
            let line = format!(r#"{{"kind":"x","occurred":{{"from":"{text}","to":"{ty:04}-{tm:02}"}}}}"#);
            let r = annals::parse_event(&line).unwrap().occurred;
            proptest::prop_assert_eq!((r.start(), r.end()), (start, next_month(ty, tm)));
        }
    }
}

proptest::proptest! {
    /// Any text made of EDTF's characters either is refused with an error
    /// or parses to an `occurred` whose printed EDTF parses back to it.
    #[test]
    fn edtf_text_never_panics_and_prints_back(text in "[0-9X~?%/.T:Z-]{0,22}") {
        if let Ok(o) = annals::Occurred::parse(&text) {
            let printed = o.to_string();
            proptest::prop_assert_eq!(annals::Occurred::parse(&printed).ok(), Some(o), "{}", printed);
        }
    }

    /// The same for well-formed EDTF built from its parts.
    #[test]
    fn edtf_forms_print_back(
        y in 1000u32..=9998, m in 1u32..=41, d in 1u32..=28,
        q in proptest::sample::select(vec!["", "~", "?", "%"]),
        form in 0u8..7, end in proptest::sample::select(vec!["", "..", "2999", "9998-12"]),
    ) {
        let date = match form {
            0 => format!("{y}{q}"),
            1 => format!("{y}-{m:02}{q}"),
            2 => format!("{y}-{:02}-{d:02}{q}", m % 12 + 1),
            3 => format!("{}X{q}", y / 10),
            4 => format!("{y}-XX{q}"),
            5 => format!("{y}-{:02}-XX{q}", m % 12 + 1),
            _ => format!("{y}-{m:02}/{end}"),
        };
        if let Ok(o) = annals::Occurred::parse(&date) {
            proptest::prop_assert_eq!(annals::Occurred::parse(&o.to_string()).ok(), Some(o));
            proptest::prop_assert!(o.start() < o.end());
        }
    }
}
