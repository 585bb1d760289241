//! Exports: JSON Lines round trips through import into identical views;
//! CSV and Parquet keep every event with its structure; filters, as-of and
//! branches apply.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};

use annals::{Annals, AsOf, At, ExportFormat, Granularity, ImportFormat, Op, Query, CSV_COLUMNS};
use arrow_array::{Array, ListArray, StringArray, StructArray};
use common::{fresh, gen};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A database with GDELT, ACLED (imported then revised) and the demo.
fn loaded() -> (tempfile::TempDir, Annals) {
    let (dir, db) = fresh();
    for (f, name) in [
        (ImportFormat::Gdelt, "gdelt/v2_20191024143000.slice.CSV"),
        (ImportFormat::Gdelt, "gdelt/v1_sample_mixed.slice.tsv"),
        (ImportFormat::Acled, "acled/acled_2022_schema.csv"),
        (ImportFormat::Acled, "acled/acled_2022_schema.updated.csv"),
        (ImportFormat::AcledDeletions, "acled/acled_deletions.csv"),
    ] {
        db.import(f).file(fixture(name)).unwrap();
    }
    db.append(common::scenario()).unwrap();
    (dir, db)
}

fn export(db: &Annals, at: &At, q: &Query, f: ExportFormat, path: &Path) -> u64 {
    db.export(at, q, f, File::create(path).unwrap()).unwrap()
}

fn same_views(a: &Annals, b: &Annals) {
    assert_eq!(a.by_country().unwrap(), b.by_country().unwrap());
    assert_eq!(a.by_actor().unwrap(), b.by_actor().unwrap());
    for g in [Granularity::Day, Granularity::Month, Granularity::Year] {
        assert_eq!(a.by_date(g).unwrap(), b.by_date(g).unwrap());
    }
}

fn current_events(db: &Annals) -> Vec<annals::Event> {
    let mut v: Vec<_> = db
        .query(&Query::new())
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect();
    v.sort_by_key(|e| e.id);
    v
}

#[test]
fn jsonl_round_trip_gives_identical_views() {
    let (dir, db) = loaded();
    let path = dir.path().join("all.jsonl");
    let n = export(&db, &At::head(), &Query::new(), ExportFormat::Jsonl, &path);
    assert_eq!(n as usize, db.query(&Query::new()).unwrap().len());
    let (_d2, copy) = fresh();
    let s = copy.import(ImportFormat::Jsonl).file(&path).unwrap();
    assert_eq!((s.read, s.appended), (n, n));
    same_views(&db, &copy);
    assert_eq!(current_events(&db), current_events(&copy));
}

#[test]
fn csv_has_one_row_per_event_and_the_documented_columns() {
    let (dir, db) = loaded();
    let path = dir.path().join("pl.csv");
    let q = Query::new().country("PL");
    let n = export(&db, &At::head(), &q, ExportFormat::Csv, &path);
    let mut r = csv::Reader::from_path(&path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header, CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len() as u64, n);
    let poland = db
        .by_country()
        .unwrap()
        .iter()
        .find(|r| r.country == "PL")
        .cloned()
        .unwrap();
    assert_eq!(n, poland.count);
    let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
    for row in &rows {
        assert!(row[col("countries")].split(';').any(|c| c == "PL"));
        let actors: serde_json::Value = serde_json::from_str(&row[col("actors")]).unwrap();
        assert!(actors.is_array());
        let attrs: serde_json::Value = serde_json::from_str(&row[col("attrs")]).unwrap();
        assert!(attrs.is_object());
        assert!(row[col("occurred_start")] < row[col("occurred_end")]);
    }
    // The scenario's September airspace violation is a month-precision row.
    assert!(rows
        .iter()
        .any(|r| &r[col("occurred")] == "2025-09" && &r[col("occurred_precision")] == "month"));
}

#[test]
fn parquet_keeps_structure() {
    let (dir, db) = loaded();
    let path = dir.path().join("all.parquet");
    let n = export(
        &db,
        &At::head(),
        &Query::new(),
        ExportFormat::Parquet,
        &path,
    );
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = 0;
    let mut checked_actor = false;
    for batch in reader {
        let batch = batch.unwrap();
        rows += batch.num_rows();
        let actors = batch
            .column_by_name("actors")
            .unwrap()
            .as_any()
            .downcast_ref::<ListArray>()
            .unwrap();
        let kinds = batch
            .column_by_name("kind")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for i in 0..batch.num_rows() {
            if kinds.value(i) != "absence" {
                continue;
            }
            let list = actors.value(i);
            let s = list.as_any().downcast_ref::<StructArray>().unwrap();
            let names = s
                .column_by_name("name")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            let roles = s
                .column_by_name("role")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            assert_eq!(
                (names.value(0), roles.value(0)),
                ("Marco Rubio", "absentee")
            );
            checked_actor = true;
        }
        for col in [
            "occurred_start",
            "occurred_end",
            "occurred_precision",
            "attrs",
        ] {
            assert!(batch.column_by_name(col).is_some(), "{col}");
        }
    }
    assert_eq!(rows as u64, n);
    assert!(checked_actor);
}

#[test]
fn exports_read_as_of_and_on_branches() {
    let (dir, db) = fresh();
    db.import(ImportFormat::Acled)
        .file(fixture("acled/acled_2022_schema.csv"))
        .unwrap();
    let first = db.head().seq;
    db.import(ImportFormat::Acled)
        .file(fixture("acled/acled_2022_schema.updated.csv"))
        .unwrap();
    let path = dir.path().join("then.jsonl");
    let at = At::head().as_of(AsOf::Seq(first));
    assert_eq!(
        export(&db, &at, &Query::new(), ExportFormat::Jsonl, &path),
        5
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"fatalities\":3"));
    assert!(!text.contains("\"fatalities\":5"));

    db.create_branch("no-kosovo", None, None).unwrap();
    db.write_branch(
        "no-kosovo",
        vec![Op::Retract {
            id: annals::acled_id("XKX9004"),
            reason: "what if".into(),
        }],
        None,
    )
    .unwrap();
    let at = At::head().branch("no-kosovo");
    assert_eq!(
        export(&db, &at, &Query::new(), ExportFormat::Parquet, &path),
        5
    );
    assert_eq!(
        export(&db, &At::head(), &Query::new(), ExportFormat::Csv, &path),
        6
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// export jsonl → import into a fresh database → the same current
    /// events and views, whatever the history (corrections, retractions).
    #[test]
    fn jsonl_round_trip_property(batches in gen::batches(12)) {
        let (dir, db) = fresh();
        for ops in batches {
            let _ = db.write(ops, None);
        }
        let path = dir.path().join("x.jsonl");
        export(&db, &At::head(), &Query::new(), ExportFormat::Jsonl, &path);
        let (_d2, copy) = fresh();
        copy.import(ImportFormat::Jsonl).file(&path).unwrap();
        same_views(&db, &copy);
        prop_assert_eq!(current_events(&db), current_events(&copy));
    }
}
