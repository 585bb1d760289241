//! The `import` and `export` commands: summaries, rejects, exit codes.

mod common;

use std::path::PathBuf;

use common::{annals, db_path, stderr, stdout};
use serde_json::Value;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn import_prints_one_summary_per_file_and_no_progress_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    assert!(annals(&db, &["init"], None).status.success());
    let gdelt = fixture("gdelt/v2_20191024143000.slice.CSV");
    let zip = fixture("gdelt/v2_20190121220000.slice.CSV.zip");
    let o = annals(&db, &["import", "--format", "gdelt", &gdelt, &zip], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let lines = json_lines(&stdout(&o));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["appended"], 200);
    assert_eq!(lines[0]["file"], gdelt.as_str());
    assert_eq!(lines[1]["appended"], 60);
    assert!(lines[1]["rows_per_second"].as_f64().unwrap() > 0.0);
    // Again: nothing new.
    let o = annals(&db, &["import", "--format", "gdelt", &gdelt], None);
    assert_eq!(json_lines(&stdout(&o))[0]["unchanged"], 200);
    // From standard input.
    let line = br#"{"kind":"sabotage","occurred":"2025-11","countries":["PL"]}"#;
    let o = annals(&db, &["import", "--format", "jsonl", "-"], Some(line));
    assert_eq!(json_lines(&stdout(&o))[0]["appended"], 1);
}

#[test]
fn bad_rows_stop_or_go_to_the_rejects_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    annals(&db, &["init"], None);
    let file = fixture("acled/acled_2020_schema.csv");
    let o = annals(&db, &["import", "--format", "acled", &file], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("acled_2020_schema.csv line 3: invalid `event_id_cnty`"),
        "{err}"
    );
    assert!(err.contains("\"appended\":1"), "{err}");

    let rejects = dir.path().join("rejects.jsonl");
    let o = annals(
        &db,
        &[
            "import",
            "--format",
            "acled",
            &file,
            "--skip-invalid",
            "--rejects",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "--rejects needs a file");
    let r = rejects.display().to_string();
    let o = annals(
        &db,
        &[
            "import",
            "--format",
            "acled",
            &file,
            "--skip-invalid",
            "--rejects",
            &r,
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = &json_lines(&stdout(&o))[0];
    assert_eq!(
        (summary["rejected"].as_u64(), summary["unchanged"].as_u64()),
        (Some(2), Some(1))
    );
    let rejected = json_lines(&std::fs::read_to_string(&rejects).unwrap());
    let lines: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 5]);
    assert!(rejected[1]["reason"]
        .as_str()
        .unwrap()
        .contains("truncated"));
}

#[test]
fn format_names_are_checked_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    annals(&db, &["init"], None);
    let o = annals(
        &db,
        &["import", &fixture("acled/acled_deletions.csv")],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("import needs --format"));
    let o = annals(&db, &["query", "--format", "parquet"], None);
    assert_eq!(o.status.code(), Some(2));
    let o = annals(&db, &["export", "--format", "table", "--out", "x"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("export needs --format"));
}

#[test]
fn export_writes_the_file_and_reports_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    annals(&db, &["init"], None);
    let f = fixture("acled/acled_2022_schema.csv");
    annals(&db, &["import", "--format", "acled", &f], None);
    let u = fixture("acled/acled_2022_schema.updated.csv");
    annals(&db, &["import", "--format", "acled", &u], None);
    for (format, args, events) in [
        ("parquet", vec!["--country", "PL"], 2),
        ("csv", vec!["--as-of", "5"], 5),
        ("jsonl", vec!["--kind", "armed_clash"], 1),
    ] {
        let out = dir
            .path()
            .join(format!("out.{format}"))
            .display()
            .to_string();
        let mut a = vec!["export", "--format", format, "--out", &out];
        a.extend(args);
        let o = annals(&db, &a, None);
        assert!(o.status.success(), "{}", stderr(&o));
        let v = &json_lines(&stdout(&o))[0];
        assert_eq!(v["events"], events, "{format}");
        assert!(std::fs::metadata(&out).unwrap().len() > 0);
    }
    // A failed export leaves no file behind.
    let out = dir.path().join("none.csv").display().to_string();
    let o = annals(
        &db,
        &[
            "export", "--format", "csv", "--out", &out, "--branch", "nope",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(!std::path::Path::new(&out).exists());
}

#[test]
fn a_full_ucdp_release_retracts_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    assert!(annals(&db, &["init"], None).status.success());
    let (a, b) = (
        fixture("ucdp/ged_release_a.csv"),
        fixture("ucdp/ged_release_b.csv"),
    );
    let o = annals(&db, &["import", "--format", "ucdp-ged", &a], None);
    assert_eq!(json_lines(&stdout(&o))[0]["appended"], 6);
    let o = annals(
        &db,
        &["import", "--format", "ucdp-ged", &b, "--retract-missing"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = json_lines(&stdout(&o));
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (
            lines[0]["appended"].as_u64(),
            lines[0]["corrected"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(lines[1]["file"], "(retract-missing)");
    assert_eq!(lines[1]["retracted"], 1);
    // GDELT files are no releases: a usage error, nothing imported.
    let head = stdout(&annals(&db, &["head"], None));
    let g = fixture("gdelt/v2_20191024143000.slice.CSV");
    let o = annals(
        &db,
        &["import", "--format", "gdelt", &g, "--retract-missing"],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("full releases"), "{}", stderr(&o));
    assert_eq!(stdout(&annals(&db, &["head"], None)), head);
}
