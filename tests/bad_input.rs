//! Every bad-input case of the brief that applies to the core commands:
//! the error names the place (line, field, id) and the database is
//! unchanged.

mod common;

use annals::{Annals, Error, Event, Occurred, Op};
use common::*;

/// A valid event line, then a bad line, then another valid line: the error
/// names line 2 and the field, and nothing is written.
fn batch_rejected(bad: &str, field: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    assert!(annals(&db, &["init"], None).status.success());
    let input = format!(
        "{}\n{bad}\n{}\n",
        r#"{"kind":"meeting","occurred":"2025-12-03","countries":["BE"]}"#,
        r#"{"kind":"statement","occurred":"2025-12-03"}"#
    );
    let out = annals(&db, &["append", "-"], Some(input.as_bytes()));
    assert_eq!(out.status.code(), Some(1), "{bad}: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("stdin line 2"), "{bad}: {err}");
    assert!(
        err.contains(&format!("`{field}`")),
        "{bad}: expected field {field} in {err}"
    );
    let head = annals(&db, &["head", "--format", "jsonl"], None);
    assert!(
        stdout(&head).starts_with(r#"{"hash":"0000"#) || stdout(&head).contains(r#""seq":0"#),
        "{}",
        stdout(&head)
    );
}

#[test]
fn malformed_json() {
    batch_rejected(r#"{"kind":"meeting","occurred":"2025""#, "-");
}

#[test]
fn unknown_field() {
    batch_rejected(
        r#"{"kind":"meeting","occurred":"2025","colour":"red"}"#,
        "colour",
    );
}

#[test]
fn bad_country_code() {
    batch_rejected(
        r#"{"kind":"meeting","occurred":"2025","countries":["PL","UK"]}"#,
        "countries[1]",
    );
}

#[test]
fn bad_kind_and_role() {
    batch_rejected(r#"{"kind":"Drone Strike","occurred":"2025"}"#, "kind");
    batch_rejected(
        r#"{"kind":"meeting","occurred":"2025","actors":[{"name":"NATO","role":"Host"}]}"#,
        "actors[0].role",
    );
}

#[test]
fn unparseable_or_inverted_occurred() {
    batch_rejected(
        r#"{"kind":"meeting","occurred":"last tuesday"}"#,
        "occurred",
    );
    batch_rejected(r#"{"kind":"meeting","occurred":"2025-02-30"}"#, "occurred");
    batch_rejected(
        r#"{"kind":"meeting","occurred":{"from":"2025-11","to":"2025-09"}}"#,
        "occurred",
    );
}

#[test]
fn confidence_and_coordinates_out_of_range() {
    batch_rejected(
        r#"{"kind":"meeting","occurred":"2025","confidence":1.01}"#,
        "confidence",
    );
    batch_rejected(
        r#"{"kind":"meeting","occurred":"2025","location":{"lat":-90.5}}"#,
        "location.lat",
    );
    batch_rejected(
        r#"{"kind":"meeting","occurred":"2025","location":{"lon":181}}"#,
        "location.lon",
    );
}

#[test]
fn oversized_fields() {
    let long = "x".repeat(annals::MAX_SUMMARY_BYTES + 1);
    batch_rejected(
        &format!(r#"{{"kind":"meeting","occurred":"2025","summary":"{long}"}}"#),
        "summary",
    );
    let tags: Vec<String> = (0..=annals::MAX_LIST_ITEMS)
        .map(|i| format!("\"t{i}\""))
        .collect();
    batch_rejected(
        &format!(
            r#"{{"kind":"meeting","occurred":"2025","tags":[{}]}}"#,
            tags.join(",")
        ),
        "tags",
    );
}

#[test]
fn limits_are_inclusive_at_the_boundary() {
    let (_d, db) = fresh();
    let mut e = Event::new("meeting", Occurred::parse("2025").unwrap());
    e.summary = Some("s".repeat(annals::MAX_SUMMARY_BYTES));
    e.tags = (0..annals::MAX_LIST_ITEMS)
        .map(|i| format!("t{i}"))
        .collect();
    db.append(vec![e]).unwrap();
}

#[test]
fn an_entry_over_the_encoded_limit_is_refused() {
    let (_d, db) = fresh();
    let mut e = Event::new("meeting", Occurred::parse("2025").unwrap());
    // Each field within its own limit, the whole over MAX_ENTRY_BYTES.
    e.summary = Some("s".repeat(annals::MAX_SUMMARY_BYTES));
    e.sources = (0..annals::MAX_LIST_ITEMS)
        .map(|i| annals::Source {
            name: format!("source {i}"),
            url: Some(format!(
                "https://example.org/{}",
                "a".repeat(annals::MAX_URL_BYTES - 30)
            )),
            reported_at: None,
        })
        .collect();
    let err = db.append(vec![e]).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    assert_eq!(db.head().seq, 0);
}

#[test]
fn non_utf8_input() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    annals(&db, &["init"], None);
    let mut input = br#"{"kind":"meeting","occurred":"2025"}"#.to_vec();
    input.extend_from_slice(b"\n{\"kind\":\"m\xff\",\"occurred\":\"2025\"}\n");
    let out = annals(&db, &["append", "-"], Some(&input));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("line 2") && stderr(&out).contains("UTF-8"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&annals(&db, &["head", "--format", "jsonl"], None)).contains(r#""seq":0"#));
}

#[test]
fn conflicting_duplicate_id_is_refused_and_identical_is_a_no_op() {
    let (_d, db) = fresh();
    let line =
        r#"{"id":"0193a3c4-0000-7000-8000-000000000001","kind":"meeting","occurred":"2025"}"#;
    let first = db.append(vec![ev(line)]).unwrap();
    let again = db.append(vec![ev(line)]).unwrap();
    assert_eq!(first[0].seq, again[0].seq);
    assert!(!again[0].new_entry);
    assert_eq!(db.head().seq, 1);
    let changed =
        r#"{"id":"0193a3c4-0000-7000-8000-000000000001","kind":"meeting","occurred":"2024"}"#;
    // In a batch with a good event: the whole batch fails.
    let good = ev(r#"{"kind":"statement","occurred":"2025"}"#);
    let err = db.append(vec![good, ev(changed)]).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("0193a3c4-0000-7000-8000-000000000001"),
        "{err}"
    );
    assert_eq!(db.head().seq, 1);
    assert_eq!(db.by_date(annals::Granularity::Year).unwrap().len(), 1);
}

#[test]
fn correcting_or_retracting_unknown_or_retracted_events() {
    let (_d, db) = fresh();
    let e = ev(r#"{"kind":"meeting","occurred":"2025"}"#);
    let unknown = uuid::Uuid::from_u128(42);
    let err = db.retract(unknown, "x").unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }) && err.to_string().contains(&unknown.to_string()),
        "{err}"
    );
    let mut other = e.clone();
    other.id = unknown;
    assert!(matches!(
        db.correct(other).unwrap_err(),
        Error::NotFound { .. }
    ));
    db.append(vec![e.clone()]).unwrap();
    db.retract(e.id, "wrong").unwrap();
    assert!(matches!(
        db.retract(e.id, "again").unwrap_err(),
        Error::Conflict { .. }
    ));
    assert!(matches!(
        db.correct(e.clone()).unwrap_err(),
        Error::Conflict { .. }
    ));
    // Within one batch: retract then correct fails as a whole.
    let f = ev(r#"{"kind":"meeting","occurred":"2025"}"#);
    db.append(vec![f.clone()]).unwrap();
    let head = db.head();
    let err = db
        .write(
            vec![
                Op::Retract {
                    id: f.id,
                    reason: "x".into(),
                },
                Op::Correct(f.clone()),
            ],
            None,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }));
    assert_eq!(db.head(), head);
}

/// A retraction says why, and a query's actor names someone: blanks are
/// refused with the field, and nothing is written.
#[test]
fn blank_reasons_and_actors_are_refused() {
    let (_d, db) = fresh();
    let e = ev(r#"{"kind":"meeting","occurred":"2025"}"#);
    db.append(vec![e.clone()]).unwrap();
    let head = db.head();
    for reason in ["", "  \t"] {
        match db.retract(e.id, reason).unwrap_err() {
            Error::Invalid { field, .. } => assert_eq!(field, "reason"),
            other => panic!("{other}"),
        }
    }
    assert_eq!(db.head(), head);
    match db.query(&annals::Query::new().actor(" ")).unwrap_err() {
        Error::Invalid { field, .. } => assert_eq!(field, "actor[0]"),
        other => panic!("{other}"),
    }
}

#[test]
fn expect_seq_mismatch() {
    let (_d, db) = fresh();
    db.append(vec![ev(r#"{"kind":"meeting","occurred":"2025"}"#)])
        .unwrap();
    let err = db
        .write(
            vec![Op::Append(ev(r#"{"kind":"meeting","occurred":"2025"}"#))],
            Some(0),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Error::SeqMismatch {
            expected: 0,
            actual: 1
        }
    ));
    db.write(
        vec![Op::Append(ev(r#"{"kind":"meeting","occurred":"2025"}"#))],
        Some(1),
    )
    .unwrap();
}

#[test]
fn database_path_that_is_a_file_or_missing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(Annals::open(&file), Err(Error::BadPath { .. })));
    let out = annals(&file, &["head"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is a file"), "{}", stderr(&out));
    let missing = dir.path().join("missing");
    let out = annals(&missing, &["query"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("annals init"), "{}", stderr(&out));
    assert!(!missing.exists());
}

#[test]
fn unwritable_database_folder() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o500);
    std::fs::set_permissions(&ro, perm).unwrap();
    // root ignores permission bits; the test means something only for others.
    let probe = std::fs::File::create(ro.join("probe"));
    if probe.is_ok() {
        eprintln!("running as root: permission bits are not enforced, skipping");
        return;
    }
    assert!(matches!(Annals::open(ro.join("db")), Err(Error::Io { .. })));
}

#[test]
fn database_in_use() {
    let (dir, db) = fresh();
    let err = Annals::open(dir.path().join("db")).err().unwrap();
    assert!(matches!(err, Error::InUse { .. }), "{err}");
    assert!(err.to_string().contains("in use"));
    drop(db);
    Annals::open(dir.path().join("db")).unwrap();
}

#[test]
fn bad_query_arguments() {
    let (_d, db) = fresh();
    assert!(db.query(&annals::Query::new().country("ZZ")).is_err());
    assert!(annals::Query::new().from("2025-13").is_err());
    let inverted = annals::Query::new()
        .from("2025-10")
        .unwrap()
        .to("2025-09")
        .unwrap();
    assert!(db.query(&inverted).is_err());
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = annals(&db_path(&dir), &["query", "--no-such-flag"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = annals(&db_path(&dir), &["frobnicate"], None);
    assert_eq!(out.status.code(), Some(2));
}
