//! The changes feed: the events that differ between two points of the log.
//! Applying the changes between a and b to the events current at a gives
//! exactly the events current at b (property); kinds, filters, branches,
//! bad windows and what an import reports.

mod common;

use std::collections::BTreeMap;

use annals::{AsOf, At, ChangeKind, Op, Query};
use common::gen;
use proptest::prelude::*;
use uuid::Uuid;

fn current(db: &annals::Annals, seq: u64) -> BTreeMap<Uuid, annals::Event> {
    common::events_at(db, &At::head().as_of(AsOf::Seq(seq)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn changes_from_a_to_b_turn_the_events_at_a_into_those_at_b(
        batches in gen::batches(12), a in 0u64..=100, b in 0u64..=100,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = annals::Annals::builder(dir.path().join("db"))
            .durability(annals::Durability::Buffered)
            .checkpoint_every_entries(5)
            .open()
            .unwrap();
        for batch in &batches {
            let _ = db.write(batch.clone(), None);
        }
        let head = db.head().seq;
        let (a, b) = (head * a.min(b) / 100, head * a.max(b) / 100);
        let changes = db
            .reader(&At::head().as_of(AsOf::Seq(b)))
            .unwrap()
            .changes_since(a, &Query::new())
            .unwrap();
        let mut events = current(&db, a);
        for c in &changes {
            prop_assert!(c.seq > a && c.seq <= b);
            match c.kind {
                ChangeKind::Created => {
                    prop_assert!(c.before.is_none());
                    let after = c.after.clone().unwrap().event;
                    prop_assert!(events.insert(c.id, after).is_none());
                }
                ChangeKind::Corrected => {
                    let (before, after) = (c.before.clone().unwrap(), c.after.clone().unwrap());
                    prop_assert_ne!(&before.event, &after.event);
                    prop_assert_eq!(events.insert(c.id, after.event), Some(before.event));
                }
                ChangeKind::Retracted => {
                    prop_assert!(c.after.is_none());
                    prop_assert_eq!(events.remove(&c.id), c.before.clone().map(|r| r.event));
                }
            }
        }
        prop_assert_eq!(events, current(&db, b));
    }
}

#[test]
fn kinds_filters_branches_and_bad_windows() {
    let (_d, db) = common::fresh();
    let events = common::scenario();
    db.append(events[..5].to_vec()).unwrap();
    let mut fixed = events[2].clone();
    fixed.summary = Some("revised".into());
    db.write(
        vec![
            Op::Append(events[5].clone()),
            Op::Correct(fixed),
            Op::Retract {
                id: events[3].id,
                reason: "unverified".into(),
            },
        ],
        None,
    )
    .unwrap();
    let all = db
        .reader(&At::head())
        .unwrap()
        .changes_since(5, &Query::new())
        .unwrap();
    let kinds: Vec<(Uuid, ChangeKind)> = all.iter().map(|c| (c.id, c.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (events[5].id, ChangeKind::Created),
            (events[2].id, ChangeKind::Corrected),
            (events[3].id, ChangeKind::Retracted),
        ]
    );
    // A filter keeps changes whose version before or after matches it: the
    // retracted event matches only before.
    let country = events[3].countries[0].clone();
    let pl = db
        .reader(&At::head())
        .unwrap()
        .changes_since(5, &Query::new().country(&country))
        .unwrap();
    assert!(pl.iter().any(|c| c.id == events[3].id));
    assert!(pl.iter().all(|c| c
        .before
        .iter()
        .chain(&c.after)
        .any(|r| r.event.countries.contains(&country))));
    // On a branch, only the branch's own window.
    db.create_branch("what-if", None, None).unwrap();
    db.write_branch(
        "what-if",
        vec![Op::Retract {
            id: events[0].id,
            reason: "hypothesis".into(),
        }],
        None,
    )
    .unwrap();
    let base = db.head().seq;
    let b = db
        .reader(&At::head().branch("what-if"))
        .unwrap()
        .changes_since(base, &Query::new())
        .unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].id, b[0].kind), (events[0].id, ChangeKind::Retracted));
    // An empty window, and a start after the end.
    let r = db.reader(&At::head().as_of(AsOf::Seq(3))).unwrap();
    assert!(r.changes_since(3, &Query::new()).unwrap().is_empty());
    assert!(r.changes_since(4, &Query::new()).is_err());
}

#[test]
fn an_import_reports_the_seqs_it_wrote_and_the_cli_lists_them() {
    let (dir, db) = common::fresh();
    let path = db.path().to_path_buf();
    db.append(common::scenario()[..2].to_vec()).unwrap();
    let lines: String = common::scenario()[2..]
        .iter()
        .map(|e| format!("{}\n", annals::event_to_line(e, None)))
        .collect();
    let file = dir.path().join("more.jsonl");
    std::fs::write(&file, lines).unwrap();
    let summary = db.import(annals::ImportFormat::Jsonl).file(&file).unwrap();
    assert_eq!(summary.seqs, Some((3, 11)));
    let again = db.import(annals::ImportFormat::Jsonl).file(&file).unwrap();
    assert_eq!(again.seqs, None);
    db.close().unwrap();
    let out = common::annals(
        &path,
        &["changes", "--since", "2", "--format", "jsonl"],
        None,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let rows: Vec<serde_json::Value> = common::stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 9);
    assert!(rows
        .iter()
        .all(|r| r["change"] == "created" && r["before"].is_null()));
    let out = common::annals(&path, &["changes", "--since", "5", "--until", "2"], None);
    assert!(!out.status.success());
    let out = common::annals(
        &path,
        &["changes", "--since", "2", "--summary", "--format", "json"],
        None,
    );
    let summary: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(summary["changes"]["created"], 9);
}

#[test]
fn changes_export_as_jsonl_csv_and_parquet() {
    use arrow_array::{Array, StringArray, UInt64Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let (dir, db) = common::fresh();
    let events = common::scenario();
    db.append(events[..3].to_vec()).unwrap();
    let mut fixed = events[0].clone();
    fixed.summary = Some("revised".into());
    db.write(
        vec![
            Op::Append(events[3].clone()),
            Op::Correct(fixed),
            Op::Retract {
                id: events[1].id,
                reason: "hoax".into(),
            },
        ],
        None,
    )
    .unwrap();
    let export = |format| {
        let mut buf = Vec::new();
        let n = db
            .export_changes(&At::head(), 3, &Query::new(), format, &mut buf)
            .unwrap();
        assert_eq!(n, 3);
        buf
    };
    let jsonl = String::from_utf8(export(annals::ExportFormat::Jsonl)).unwrap();
    let kinds: Vec<String> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["change"].to_string())
        .collect();
    assert_eq!(kinds, ["\"created\"", "\"corrected\"", "\"retracted\""]);

    let csv = String::from_utf8(export(annals::ExportFormat::Csv)).unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("change,change_seq,side,id,seq,"));
    let rows: Vec<String> = lines
        .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(
        rows,
        [
            "created,4,after",
            "corrected,5,before",
            "corrected,5,after",
            "retracted,6,before"
        ]
    );

    let file = dir.path().join("lib.parquet");
    std::fs::write(&file, export(annals::ExportFormat::Parquet)).unwrap();
    let batches: Vec<_> =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), 4);
    let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
    let side = col("side");
    let side = side.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(side.value(1), "before");
    let seqs = col("change_seq");
    let seqs = seqs.as_any().downcast_ref::<UInt64Array>().unwrap();
    assert_eq!(seqs.values().to_vec(), [4, 5, 5, 6]);
    let summary = col("summary");
    let summary = summary.as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(summary.value(2), "revised");
    db.close().unwrap();

    // The CLI writes the file whole; without a file format it is a usage error.
    let path = dir.path().join("changes.parquet");
    let out = common::annals(
        &dir.path().join("db"),
        &[
            "--format",
            "parquet",
            "changes",
            "--since",
            "3",
            "--out",
            path.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("\"changes\":3"));
    assert!(path.metadata().unwrap().len() > 0);
    let out = common::annals(
        &dir.path().join("db"),
        &["changes", "--since", "3", "--out", path.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("--format jsonl, csv, parquet or geoparquet"));
}
