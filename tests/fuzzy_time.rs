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
