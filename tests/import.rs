//! Importing GDELT, ACLED, UCDP GED and POLECAT files (fixtures in `tests/fixtures`, see its
//! README), living-dataset corrections and deletions, and the rules for bad
//! rows.

mod common;

use std::path::PathBuf;

use annals::{
    acled_id, gdelt_id, polecat_id, ucdp_id, Annals, AsOf, At, Error, ImportFormat, Query,
};
use common::fresh;
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn import(db: &Annals, format: ImportFormat, name: &str) -> annals::ImportSummary {
    db.import(format).file(fixture(name)).unwrap()
}

/// Imports with `skip_invalid`, returning the summary and the rejected
/// rows' lines and reasons.
fn import_skipping(
    db: &Annals,
    format: ImportFormat,
    name: &str,
) -> (annals::ImportSummary, Vec<(u64, String)>) {
    let mut rejected = Vec::new();
    let s = db
        .import(format)
        .skip_invalid(|r| {
            rejected.push((r.line, r.reason.clone()));
            Ok(())
        })
        .file(fixture(name))
        .unwrap();
    (s, rejected)
}

#[test]
fn gdelt_2_row_field_by_field() {
    let (_d, db) = fresh();
    let s = import(
        &db,
        ImportFormat::Gdelt,
        "gdelt/v2_20191024143000.slice.CSV",
    );
    assert_eq!((s.read, s.appended, s.rejected), (200, 200, 0));
    // Row 881990878: a lawyer's statement located in Ukraine (FIPS UP).
    let r = db.get(gdelt_id(881990878)).unwrap().unwrap();
    let e = r.event;
    assert_eq!(e.kind, "make_statement");
    assert_eq!(e.occurred.from.to_string(), "2019-10-17");
    assert_eq!(e.countries, ["UA"]);
    assert_eq!(e.actors.len(), 1);
    assert_eq!(
        (e.actors[0].name.as_str(), e.actors[0].role.as_str()),
        ("LAWYER", "initiator")
    );
    let loc = e.location.unwrap();
    assert_eq!(loc.name.as_deref(), Some("Ukraine"));
    assert_eq!(loc.country.as_deref(), Some("UA"));
    assert_eq!((loc.lat, loc.lon), (Some(49.0), Some(32.0)));
    // Geo type 1: the country's centroid.
    assert_eq!(loc.precision, Some(annals::PlacePrecision::Country));
    assert_eq!(e.sources[0].name, "talkingpointsmemo.com");
    assert_eq!(
        e.sources[0].reported_at.unwrap().to_string(),
        "2019-10-24T14:30:00Z"
    );
    let a = serde_json::Value::Object(e.attrs);
    assert_eq!(a["source_id"], json!("881990878"));
    assert_eq!(a["dataset"], json!("gdelt2"));
    assert_eq!(a["event_code"], json!("010"));
    assert_eq!(a["event_root_code"], json!("01"));
    assert_eq!(a["quad_class"], json!(1));
    assert_eq!(a["goldstein"], json!(0.0));
    assert_eq!(a["num_mentions"], json!(2));
    assert_eq!(a["avg_tone"], json!(-4.61538461538461));
    assert_eq!(a["action_geo_fips"], json!("UP"));
    assert_eq!(a["actor1_code"], json!("JUD"));
    assert_eq!(a["date_added"], json!("20191024143000"));
    // FIPS codes are converted: the slice has Ukraine, Poland and Russia.
    let by_country = db.by_country().unwrap();
    for cc in ["UA", "PL", "RU"] {
        assert!(by_country.iter().any(|r| r.country == cc), "{cc}");
    }
    assert!(!by_country.iter().any(|r| r.country == "UP"));
}

#[test]
fn gdelt_zip_gz_and_mixed_1_0_rows() {
    let (_d, db) = fresh();
    let s = import(
        &db,
        ImportFormat::Gdelt,
        "gdelt/v2_20190121220000.slice.CSV.zip",
    );
    assert_eq!((s.read, s.appended), (60, 60));
    let s = import(&db, ImportFormat::Gdelt, "gdelt/v1_20151207.slice.CSV.gz");
    assert_eq!((s.read, s.appended), (100, 100));
    let s = import(&db, ImportFormat::Gdelt, "gdelt/v1_sample_mixed.slice.tsv");
    assert_eq!((s.read, s.appended, s.rejected), (60, 60, 0));
    // Backfile rows (57 fields) have no SOURCEURL, daily rows (58) do.
    let all = db.query(&Query::new()).unwrap();
    let v1 = |with_source: bool| {
        all.iter()
            .filter(|r| r.event.attrs["dataset"] == "gdelt1")
            .filter(|r| r.event.sources.is_empty() != with_source)
            .count()
    };
    assert!(
        v1(false) >= 30 && v1(true) >= 30,
        "{} {}",
        v1(false),
        v1(true)
    );
}

#[test]
fn gdelt_reimport_adds_nothing() {
    let (_d, db) = fresh();
    import(
        &db,
        ImportFormat::Gdelt,
        "gdelt/v2_20191024143000.slice.CSV",
    );
    let head = db.head();
    let s = import(
        &db,
        ImportFormat::Gdelt,
        "gdelt/v2_20191024143000.slice.CSV",
    );
    assert_eq!(
        (s.read, s.unchanged, s.appended, s.corrected),
        (200, 200, 0, 0)
    );
    assert_eq!(db.head(), head);
}

#[test]
fn gdelt_r_export_reads_by_header_with_na() {
    let (_d, db) = fresh();
    let s = import(&db, ImportFormat::Gdelt, "gdelt/georgia_R-export.slice.csv");
    assert_eq!((s.read, s.appended, s.rejected), (40, 40, 0));
    for r in db.query(&Query::new()).unwrap() {
        assert_eq!(r.event.attrs["dataset"], "gdelt1");
        // SOURCEURL is NA or empty on every backfile row: no source.
        assert!(r.event.sources.is_empty());
        assert!(!r.event.attrs.values().any(|v| v == "NA"));
    }
    assert!(db.by_country().unwrap().iter().any(|r| r.country == "GE"));
}

#[test]
fn gdelt_spreadsheet_damage_is_detected_with_its_line() {
    let (_d, db) = fresh();
    let err = db
        .import(ImportFormat::Gdelt)
        .file(fixture("gdelt/excel-resaved.slice.CSV"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("excel-resaved.slice.CSV line 2"), "{msg}");
    assert!(msg.contains("spreadsheet"), "{msg}");
    assert_eq!(db.head().seq, 0);

    let mut rejected = Vec::new();
    let s = db
        .import(ImportFormat::Gdelt)
        .skip_invalid(|r| {
            rejected.push(r.clone());
            Ok(())
        })
        .file(fixture("gdelt/excel-resaved.slice.CSV"))
        .unwrap();
    assert_eq!((s.read, s.rejected, s.appended), (5, 5, 0));
    let lines: Vec<u64> = rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6]);
    assert!(rejected[0].fields.len() > 50);
}

#[test]
fn acled_2022_row_field_by_field() {
    let (_d, db) = fresh();
    let s = import(&db, ImportFormat::Acled, "acled/acled_2022_schema.csv");
    assert_eq!((s.read, s.appended), (5, 5));
    let e = db.get(acled_id("UKR9002")).unwrap().unwrap().event;
    assert_eq!(e.kind, "shelling_artillery_missile_attack");
    // time_precision 2: the week around Wednesday 23 February 2022.
    assert_eq!(e.occurred.from.to_string(), "2022-02-21");
    assert_eq!(e.occurred.to.to_string(), "2022-02-27");
    assert_eq!(e.countries, ["UA"]);
    let actors = roles(&e);
    assert_eq!(
        actors,
        [
            ("Military Forces of Russia (2000-)", "actor1"),
            ("Military Forces of Ukraine (2019-)", "actor2")
        ]
    );
    let loc = e.location.unwrap();
    assert_eq!(loc.name.as_deref(), Some("Bakhmut"));
    assert_eq!((loc.lat, loc.lon), (Some(48.5956), Some(38.0003)));
    // geo_precision 2: near the town.
    assert_eq!(loc.precision, Some(annals::PlacePrecision::Near));
    assert!(e.summary.unwrap().contains("week of 23 February"));
    let a = serde_json::Value::Object(e.attrs);
    assert_eq!(a["source_id"], json!("UKR9002"));
    assert_eq!(a["fatalities"], json!(3));
    assert_eq!(a["timestamp"], json!(1650000100));
    assert_eq!(a["inter1"], json!(8));
    assert_eq!(a["interaction"], json!(18));
    assert_eq!(a["disorder_type"], json!("Political violence"));
    assert_eq!(
        a["sub_event_type"],
        json!("Shelling/artillery/missile attack")
    );
    assert_eq!(a["source"], json!("Invented Wire; Other Wire"));
    assert_eq!(a["source_scale"], json!("International"));
    assert_eq!(a["admin1"], json!("Donetsk"));
    // Associated actors are split on `;`; Kosovo is ISO number 0 in ACLED.
    let pol = db.get(acled_id("POL9001")).unwrap().unwrap().event;
    assert_eq!(pol.actors.len(), 3);
    assert_eq!(pol.actors[2].role, "actor1_associate");
    let month = db.get(acled_id("UKR9003")).unwrap().unwrap().event;
    assert_eq!(month.occurred.from.to_string(), "2022-05");
    let kosovo = db.get(acled_id("XKX9004")).unwrap().unwrap().event;
    assert_eq!(kosovo.countries, ["XK"]);
}

#[test]
fn acled_2016_and_2020_schemas() {
    let (_d, db) = fresh();
    let s = import(&db, ImportFormat::Acled, "acled/acled_2016_schema.csv");
    assert_eq!((s.read, s.appended), (3, 3));
    let e = db.get(acled_id("9901RTA")).unwrap().unwrap().event;
    assert_eq!(e.kind, "riots_protests");
    assert_eq!(e.countries, ["ZM"]);
    assert!(e.summary.unwrap().contains("\nA second line"));
    assert_eq!(e.actors[1].role, "actor1_associate");
    assert_eq!(e.attrs["gwno"], json!(551));
    let drc = db.get(acled_id("9902RTA")).unwrap().unwrap().event;
    assert_eq!(
        (drc.kind.as_str(), drc.countries[0].as_str()),
        ("battle_no_change_of_territory", "CD")
    );
    assert_eq!(
        db.get(acled_id("9903RTA"))
            .unwrap()
            .unwrap()
            .event
            .countries,
        ["CG"]
    );

    let (s, rejected) = import_skipping(&db, ImportFormat::Acled, "acled/acled_2020_schema.csv");
    assert_eq!((s.read, s.appended, s.rejected), (4, 2, 2));
    assert_eq!(rejected[0].0, 3);
    assert!(rejected[0].1.contains("event_id_cnty"), "{:?}", rejected);
    assert_eq!(rejected[1].0, 5);
    assert!(rejected[1].1.contains("truncated"), "{:?}", rejected);
    let kyiv = db.get(acled_id("UKR9101")).unwrap().unwrap().event;
    assert_eq!(kyiv.occurred.from.to_string(), "2020-05-09");
}

#[test]
fn line_numbers_count_newlines_inside_quotes() {
    let (_d, db) = fresh();
    let text = "event_id_cnty,event_date,event_type,country,notes\n\
                A1,2022-01-01,Protests,Poland,\"two\nlines\"\n\
                A2,not a date,Protests,Poland,x\n";
    let err = db
        .import(ImportFormat::Acled)
        .reader("notes.csv", text.as_bytes())
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("notes.csv line 4: invalid `event_date`"),
        "{err}"
    );
    // The row before the bad one is committed.
    assert!(db.get(acled_id("A1")).unwrap().is_some());
}

#[test]
fn first_bad_row_stops_and_a_rerun_carries_on() {
    let (dir, db) = fresh();
    let err = db
        .import(ImportFormat::Acled)
        .file(fixture("acled/acled_2020_schema.csv"))
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { ref field, .. } if field == "event_id_cnty"));
    assert!(
        err.to_string().contains("acled_2020_schema.csv line 3"),
        "{err}"
    );
    assert_eq!(db.head().seq, 1, "the row before it is in");
    // Fix the file (drop the bad rows) and run again: it carries on.
    let text = std::fs::read_to_string(fixture("acled/acled_2020_schema.csv")).unwrap();
    let fixed: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("no id") && !l.starts_with("9000004"))
        .collect();
    let path = dir.path().join("fixed.csv");
    std::fs::write(&path, fixed.join("\r\n")).unwrap();
    let s = db.import(ImportFormat::Acled).file(&path).unwrap();
    assert_eq!((s.read, s.unchanged, s.appended), (2, 1, 1));
}

#[test]
fn living_dataset_corrections_and_deletions() {
    let (_d, db) = fresh();
    import(&db, ImportFormat::Acled, "acled/acled_2022_schema.csv");
    let before = db.head().seq;
    assert_eq!(before, 5);

    let s = import(
        &db,
        ImportFormat::Acled,
        "acled/acled_2022_schema.updated.csv",
    );
    assert_eq!(
        (s.read, s.appended, s.corrected, s.unchanged, s.skipped),
        (6, 1, 1, 3, 1)
    );
    // The revised row is a correction: history shows both versions, and a
    // read as of the first import shows what was known then.
    let id = acled_id("UKR9002");
    let history = db.history(id).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].action, "corrected");
    let now = db.get(id).unwrap().unwrap().event;
    assert_eq!(now.attrs["fatalities"], json!(5));
    assert_eq!(now.occurred.from.to_string(), "2022-02-23");
    let then = db
        .reader(&At::head().as_of(AsOf::Seq(before)))
        .unwrap()
        .get(id)
        .unwrap()
        .unwrap()
        .event;
    assert_eq!(then.attrs["fatalities"], json!(3));
    // An older timestamp never replaces a newer version.
    let kharkiv = db.get(acled_id("UKR9003")).unwrap().unwrap().event;
    assert_eq!(kharkiv.attrs["fatalities"], json!(10));

    // Importing the same export again adds nothing.
    let head = db.head();
    let s = import(
        &db,
        ImportFormat::Acled,
        "acled/acled_2022_schema.updated.csv",
    );
    assert_eq!(
        (s.appended, s.corrected, s.unchanged, s.skipped),
        (0, 0, 5, 1)
    );
    assert_eq!(db.head(), head);

    // Deletions retract; an id never imported is skipped.
    let s = import(
        &db,
        ImportFormat::AcledDeletions,
        "acled/acled_deletions.csv",
    );
    assert_eq!((s.read, s.retracted, s.skipped), (2, 1, 1));
    let k = db.history(acled_id("XKX9004")).unwrap();
    assert_eq!(k.last().unwrap().action, "retracted");
    assert!(k
        .last()
        .unwrap()
        .reason
        .as_deref()
        .unwrap()
        .starts_with("deleted by ACLED at 2022-12-02"));
    assert!(!db.by_country().unwrap().iter().any(|r| r.country == "XK"));
    let s = import(
        &db,
        ImportFormat::AcledDeletions,
        "acled/acled_deletions.csv",
    );
    assert_eq!((s.retracted, s.unchanged, s.skipped), (0, 1, 1));
    // A deleted event in an old export stays deleted.
    let s = import(&db, ImportFormat::Acled, "acled/acled_2022_schema.csv");
    assert_eq!((s.appended, s.corrected, s.skipped), (0, 0, 2));
    assert!(db
        .get(acled_id("XKX9004"))
        .unwrap()
        .unwrap()
        .retracted_seq
        .is_some());
}

#[test]
fn jsonl_import_is_an_upsert() {
    let (_d, db) = fresh();
    let line = r#"{"id":"0195f3a0-0000-7000-8000-000000000001","kind":"sabotage","occurred":"2025-11","countries":["PL"]}"#;
    let s = db
        .import(ImportFormat::Jsonl)
        .reader("a.jsonl", line.as_bytes())
        .unwrap();
    assert_eq!(s.appended, 1);
    let changed = line.replace("2025-11", "2025-11-15");
    let s = db
        .import(ImportFormat::Jsonl)
        .reader("b.jsonl", format!("\n{changed}\n{changed}\n").as_bytes())
        .unwrap();
    assert_eq!((s.read, s.corrected, s.unchanged), (2, 1, 1));
    let bad = "{\"kind\":\"x\"}\n";
    let err = db
        .import(ImportFormat::Jsonl)
        .reader("c.jsonl", bad.as_bytes())
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("c.jsonl line 1: invalid `occurred`"),
        "{err}"
    );
}

#[test]
fn a_concurrent_writer_does_not_break_an_import() {
    let (_d, db) = fresh();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..50 {
                let e = common::ev(&format!(
                    r#"{{"kind":"meeting","occurred":"2025-12-0{}","countries":["BE"]}}"#,
                    1 + i % 9
                ));
                db.append(vec![e]).unwrap();
            }
        });
        let s = db
            .import(ImportFormat::Gdelt)
            .batch_rows(7)
            .file(fixture("gdelt/v2_20191024143000.slice.CSV"))
            .unwrap();
        assert_eq!(s.appended, 200);
    });
    assert_eq!(db.head().seq, 250);
    db.verify().unwrap();
}

/// The real files of `../shared/data`, when present: every file imports
/// with no rejected row except the ones that are really invalid.
#[test]
fn real_shared_data_when_present() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/external");
    if !root.exists() {
        eprintln!("skipped: {} is not present (a fresh clone)", root.display());
        return;
    }
    let (_d, db) = fresh();
    let run = |format, file: &str| {
        let mut reasons = Vec::new();
        let s = db
            .import(format)
            .skip_invalid(|r| {
                reasons.push(r.reason.clone());
                Ok(())
            })
            .file(root.join(file))
            .unwrap();
        (s, reasons)
    };
    for (file, rows) in [
        ("gdelt/v2_raw/20151027220000.export.CSV", 2116),
        ("gdelt/v2_raw/20180326044500.export.CSV", 1540),
        ("gdelt/v2_raw/20190121220000.export.CSV.zip", 1629),
        ("gdelt/v2_raw/20191024143000.export.CSV", 2111),
        ("gdelt/v1_raw/20151207.export.CSV.first5000", 5000),
        (
            "gdelt/v1_raw/gdelt1_sample_events_dateadded20160728.tsv",
            710,
        ),
        (
            "gdelt/derived/georgia_gdelt1_sept_nov_2012.R-export.csv",
            9753,
        ),
    ] {
        let (s, reasons) = run(ImportFormat::Gdelt, file);
        assert_eq!(
            (s.read, s.appended, s.rejected),
            (rows, rows, 0),
            "{file}: {reasons:?}"
        );
    }
    // The spreadsheet copy: every row lost digits; all rejected, and the
    // same events are in from the raw zip anyway.
    let (s, reasons) = run(
        ImportFormat::Gdelt,
        "gdelt/derived/20190121220000.export2.excel-resaved.semicolon.CSV",
    );
    assert_eq!((s.read, s.rejected), (1629, 1629));
    assert!(reasons.iter().all(|r| r.contains("spreadsheet")));
    for (file, rows, rejected) in [
        ("acled/acledR_acled_old_deletion_dummy_2022H1.csv", 9000, 0),
        ("acled/acled_api_export_2020-05_global.csv", 5071, 2),
        ("acled/acled_legacy_2016_africa.csv", 500, 0),
    ] {
        let (s, reasons) = run(ImportFormat::Acled, file);
        assert_eq!(
            (s.read, s.rejected),
            (rows, rejected),
            "{file}: {reasons:?}"
        );
        assert_eq!(s.appended, rows - rejected, "{file}");
    }
    db.verify().unwrap();
}

/// An event's actors as (name, role) pairs.
fn roles(e: &annals::Event) -> Vec<(&str, &str)> {
    e.actors
        .iter()
        .map(|a| (a.name.as_str(), a.role.as_str()))
        .collect()
}

fn attrs(e: &annals::Event) -> serde_json::Value {
    serde_json::Value::Object(e.attrs.clone())
}

#[test]
fn ucdp_ged_rows_field_by_field_and_every_date_precision() {
    let (_d, db) = fresh();
    let s = import(&db, ImportFormat::UcdpGed, "ucdp/ged_release_a.csv");
    assert_eq!((s.read, s.appended, s.rejected), (6, 6, 0));
    let get = |id: &str| db.get(ucdp_id(id)).unwrap().unwrap().event;

    let e = get("900001");
    assert_eq!(e.kind, "state_based_conflict");
    assert_eq!(e.occurred.to_string(), "2025-09-10");
    // Where it happened (GW 369), then the state on side A (GW 365).
    assert_eq!(e.countries, ["UA", "RU"]);
    let actors = roles(&e);
    assert_eq!(
        actors,
        [
            ("Government of Invented A", "side_a"),
            ("Invented Front", "side_b")
        ]
    );
    let loc = e.location.clone().unwrap();
    assert_eq!(loc.name.as_deref(), Some("Invented village"));
    assert_eq!(
        (loc.country.as_deref(), loc.lat, loc.lon),
        (Some("UA"), Some(50.45), Some(30.52))
    );
    // where_prec 1 (3 for another row of the village: see the CSV).
    assert!(loc.precision.is_some());
    assert_eq!(e.summary.as_deref(), Some("Clashes near the border"));
    let a = attrs(&e);
    assert_eq!(a["dataset"], json!("ucdp-ged"));
    assert_eq!(a["source_id"], json!("900001"));
    assert_eq!(
        (a["low"].clone(), a["best"].clone(), a["high"].clone()),
        (json!(3), json!(3), json!(5))
    );
    assert_eq!(
        (a["deaths_a"].clone(), a["deaths_b"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(
        (a["where_prec"].clone(), a["date_prec"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        (a["country_id"].clone(), a["gwnoa"].clone()),
        (json!(369), json!("365"))
    );
    assert_eq!(a["conflict_name"], json!("Invented: Territory of Ostrava"));
    assert_eq!(
        a["source_article"],
        json!("Invented Wire,2025-09-11,Clashes near the border")
    );
    assert_eq!(a["adm_1"], json!("Invented oblast"));
    assert!(a.get("geom_wkt").is_none(), "the point is the location");

    // date_prec 2: a 2-6 day window is that interval, not a day.
    let e = get("900002");
    assert_eq!(e.occurred.to_string(), "2025-09-08/2025-09-11");
    assert_eq!(e.kind, "non_state_conflict");
    assert_eq!(e.countries, ["UA"]);
    // date_prec 3: the week; an alliance on side A; no location at all.
    let e = get("900003");
    assert_eq!(e.occurred.to_string(), "2025-09-15/2025-09-21");
    assert_eq!(e.countries, ["UA", "US", "GB"]);
    assert_eq!(attrs(&e)["where_prec"], json!(6));
    assert_eq!((e.location, e.summary), (None, None));
    // date_prec 4: a whole-month window is the month.
    let e = get("900004");
    assert_eq!(e.occurred.to_string(), "2025-09");
    assert_eq!(e.kind, "one_sided_violence");
    assert_eq!(attrs(&e)["deaths_civilians"], json!(7));
    // date_prec 5 with a placeholder day: the year.
    let e = get("900005");
    assert_eq!(e.occurred.to_string(), "2025");
    assert_eq!(e.countries, ["PL"]);
    assert_eq!(attrs(&e)["date_prec"], json!(5));
    // Queries see the precision: September holds the day, window, week
    // and month events, not the year one (not within September).
    let sept = Query::new()
        .country("UA")
        .from("2025-09")
        .unwrap()
        .to("2025-09")
        .unwrap()
        .within();
    assert_eq!(db.query(&sept).unwrap().len(), 4);
}

#[test]
fn ucdp_ged_next_release_corrects_and_retract_missing_retracts() {
    let (_d, db) = fresh();
    import(&db, ImportFormat::UcdpGed, "ucdp/ged_release_a.csv");
    let before = db.head().seq;
    // Without --retract-missing a dropped event stays: the file may be a
    // slice (one country, one month).
    let s = import(&db, ImportFormat::UcdpGed, "ucdp/ged_release_b.csv");
    assert_eq!(
        (s.read, s.appended, s.corrected, s.unchanged, s.retracted),
        (6, 1, 1, 4, 0)
    );
    assert!(db.get(ucdp_id("900006")).unwrap().is_some());
    let revised = db.get(ucdp_id("900001")).unwrap().unwrap().event;
    assert_eq!(attrs(&revised)["best"], json!(4));
    let then = db.reader(&At::head().as_of(AsOf::Seq(before))).unwrap();
    assert_eq!(
        attrs(&then.get(ucdp_id("900001")).unwrap().unwrap().event)["best"],
        json!(3)
    );
    assert_eq!(db.history(ucdp_id("900001")).unwrap().len(), 2);

    // As a full release: the event it dropped is retracted, with a reason,
    // and nothing else (hand-entered events are not the dataset's).
    db.append(vec![common::ev(
        r#"{"kind":"note","occurred":"2025-09","countries":["UA"]}"#,
    )])
    .unwrap();
    let mut full = db.import(ImportFormat::UcdpGed);
    let s = full.file(fixture("ucdp/ged_release_b.csv")).unwrap();
    assert_eq!((s.appended, s.corrected, s.unchanged), (0, 0, 6));
    let gone = full.retract_missing().unwrap();
    assert_eq!((gone.retracted, gone.appended), (1, 0));
    let dropped = db.get(ucdp_id("900006")).unwrap().unwrap();
    assert_eq!(dropped.retracted_seq, Some(db.head().seq));
    let h = db.history(ucdp_id("900006")).unwrap();
    assert!(h[1]
        .reason
        .as_deref()
        .unwrap()
        .contains("not in the ucdp-ged release"));
    assert_eq!(db.query(&Query::new().kind("note")).unwrap().len(), 1);
    // Running it again retracts nothing more.
    assert_eq!(full.retract_missing().unwrap().retracted, 0);
    // An import that read nothing cannot retract the whole dataset, and
    // GDELT files are no releases.
    let empty = db
        .import(ImportFormat::UcdpGed)
        .retract_missing()
        .unwrap_err();
    assert!(matches!(empty, Error::Invalid { .. }), "{empty}");
    assert!(db.import(ImportFormat::Gdelt).retract_missing().is_err());
    db.verify().unwrap();
}

#[test]
fn ucdp_ged_malformed_row_is_rejected_with_line_and_reason() {
    let (_d, db) = fresh();
    let e = db
        .import(ImportFormat::UcdpGed)
        .file(fixture("ucdp/ged_malformed.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3") && e.contains("date_prec"), "{e}");
    assert_eq!(db.head().seq, 1, "the row before it is committed");
    let (s, rejected) = import_skipping(&db, ImportFormat::UcdpGed, "ucdp/ged_malformed.csv");
    assert_eq!((s.read, s.rejected, s.appended, s.unchanged), (3, 1, 1, 1));
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0, 3);
    assert!(
        rejected[0].1.contains("not a UCDP date precision"),
        "{:?}",
        rejected
    );
    // Not a GED file at all: the header says so.
    let e = db
        .import(ImportFormat::UcdpGed)
        .file(fixture("acled/acled_2022_schema.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a UCDP GED file"), "{e}");
}

#[test]
fn polecat_rows_field_by_field() {
    let (_d, db) = fresh();
    let (s, rejected) = import_skipping(&db, ImportFormat::Polecat, "polecat/polecat_week.tsv");
    assert_eq!((s.read, s.appended, s.rejected), (4, 3, 1));
    assert_eq!(rejected[0].0, 5);
    assert!(rejected[0].1.contains("event_date"), "{:?}", rejected);

    let e = db
        .get(polecat_id("20250910-INV-0001"))
        .unwrap()
        .unwrap()
        .event;
    assert_eq!(e.kind, "assault");
    assert_eq!(e.occurred.to_string(), "2025-09-10");
    // Where it happened, then the actor's and the recipient's countries.
    assert_eq!(e.countries, ["PL", "RU"]);
    let actors = roles(&e);
    assert_eq!(
        actors,
        [
            ("Invented Air Force", "actor"),
            ("Invented Town Council", "recipient")
        ]
    );
    let loc = e.location.clone().unwrap();
    assert_eq!(
        (
            loc.name.as_deref(),
            loc.country.as_deref(),
            loc.lat,
            loc.lon
        ),
        (Some("Invented Town"), Some("PL"), Some(51.25), Some(22.57))
    );
    // GeoNames feature PPL: the town itself.
    assert_eq!(loc.precision, Some(annals::PlacePrecision::Exact));
    assert_eq!(
        e.summary.as_deref(),
        Some("Invented drones cross the border")
    );
    assert_eq!(e.tags, ["military"]);
    assert_eq!(e.sources[0].name, "Invented Wire");
    assert_eq!(e.sources[0].reported_at.unwrap().to_string(), "2025-09-11");
    let a = attrs(&e);
    assert_eq!(a["dataset"], json!("polecat"));
    assert_eq!(a["event_mode"], json!("aerial"));
    assert_eq!(a["quad_code"], json!("MATERIAL CONFLICT"));
    assert_eq!(a["actor_country"], json!("RUS"));
    assert_eq!(a["actor_sectors"], json!("Military;Government"));
    assert_eq!(a["geonames_id"], json!(765876));
    assert_eq!(a["story_id"], json!("INV-STORY-1"));
    assert!(a.get("date_fallback").is_none());

    // No resolved date: the publication date, marked uncertain; an IGO
    // recipient adds no country; no location.
    let e = db
        .get(polecat_id("20250910-INV-0002"))
        .unwrap()
        .unwrap()
        .event;
    assert_eq!(e.occurred.to_string(), "2025-09-11?");
    assert!(e.occurred.from.mark.uncertain);
    assert_eq!(e.countries, ["RO"]);
    assert_eq!(e.location, None);
    assert!(e.tags.is_empty());
    assert_eq!(attrs(&e)["date_fallback"], json!("publication_date"));
    assert_eq!(attrs(&e)["recipient_country"], json!("IGO"));
    // Two contexts, two recipient countries, a location elsewhere.
    let e = db
        .get(polecat_id("20250910-INV-0003"))
        .unwrap()
        .unwrap()
        .event;
    assert_eq!(e.countries, ["BE", "RU", "PL", "LT"]);
    assert_eq!(e.tags, ["economic", "military"]);
    // Re-importing the week adds nothing.
    let again = db
        .import(ImportFormat::Polecat)
        .skip_invalid(|_| Ok(()))
        .file(fixture("polecat/polecat_week.tsv"))
        .unwrap();
    assert_eq!((again.appended, again.unchanged), (0, 3));
}

#[test]
fn datasets_side_by_side_for_a_country_and_a_month() {
    let (_d, db) = fresh();
    import(&db, ImportFormat::UcdpGed, "ucdp/ged_release_a.csv");
    db.import(ImportFormat::Polecat)
        .skip_invalid(|_| Ok(()))
        .file(fixture("polecat/polecat_week.tsv"))
        .unwrap();
    db.append(vec![common::ev(
        r#"{"kind":"sabotage","occurred":"2025-09~","countries":["PL"]}"#,
    )])
    .unwrap();
    let q = Query::new().country("PL");
    let rows = db
        .reader(&At::head())
        .unwrap()
        .by_dataset(&q, annals::Granularity::Month)
        .unwrap();
    type Row<'a> = (&'a str, &'a str, Vec<(&'a str, u64)>);
    let got: Vec<Row> = rows
        .iter()
        .map(|r| {
            let counts = r.counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            (r.bucket.as_str(), r.precision, counts)
        })
        .collect();
    // UCDP's year-precision event stays in its year, as in by-date.
    assert_eq!(
        got,
        [
            ("2025", "year", vec![("ucdp-ged", 1)]),
            (
                "2025-09",
                "month",
                vec![(annals::HAND_ENTERED, 1), ("polecat", 2)]
            ),
        ]
    );
    // One month only: the CLI prints a column per dataset and the total.
    let path = db.path().to_path_buf();
    db.close().unwrap();
    let out = common::annals(
        &path,
        &[
            "sources",
            "--country",
            "PL",
            "--from",
            "2025-09",
            "--to",
            "2025-09",
            "--within",
        ],
        None,
    );
    let text = common::stdout(&out);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["BUCKET", "PRECISION", "HAND-ENTERED", "POLECAT", "TOTAL"]
    );
    assert_eq!(lines[1], ["2025-09", "month", "1", "2", "3"]);
    assert_eq!(lines.len(), 2);
}
