//! Regression tests for the defects found from outside (issue #27): each
//! failed before its fix. The EDTF items (5-8) and the excision dead ends
//! (10) have unit tests beside their code (`time.rs`, `excise.rs`).

mod common;

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use annals::{Actor, Annals, Durability, Error, ImportFormat, Query};
use common::hooked::{self, Gate, Hook};
use common::{ev, fresh};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// An event whose every field is within its limit but whose entry is
/// over 96 KiB.
fn oversize() -> annals::Event {
    let mut e = ev(r#"{"kind":"meeting","occurred":"2025-09","countries":["BE"]}"#);
    e.summary = Some("s".repeat(16 * 1024));
    e.actors = (0..256)
        .map(|i| Actor::new(format!("{i:03}{}", "a".repeat(247)), "attendee"))
        .collect();
    e.tags = (0..256)
        .map(|i| format!("{i:03}{}", "t".repeat(120)))
        .collect();
    let blob = "x".repeat(32 * 1024 - 32);
    e.attrs.insert("blob".into(), json!(blob));
    e.validate().unwrap()
}

/// Item 1: an oversize event is refused as input and leaves the writer
/// usable, on main and on branches.
#[test]
fn an_oversize_event_is_refused_without_poisoning_the_writer() {
    let (_d, db) = fresh();
    db.append(vec![ev(r#"{"kind":"note","occurred":"2025"}"#)])
        .unwrap();
    db.create_branch("b", None, None).unwrap();
    let head = db.head();
    let err = db.append(vec![oversize()]).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert!(err.is_input_error());
    let msg = err.to_string();
    assert!(
        msg.contains("limit of one entry") && msg.contains("event "),
        "{msg}"
    );
    assert_eq!(db.head(), head, "nothing was written");
    // Later writes, on main and on the branch, go through.
    db.append(vec![ev(r#"{"kind":"note","occurred":"2026"}"#)])
        .unwrap();
    let err = db
        .write_on(Some("b"), vec![annals::Op::Append(oversize())], None)
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    db.write_on(
        Some("b"),
        vec![annals::Op::Append(ev(
            r#"{"kind":"note","occurred":"2027"}"#,
        ))],
        None,
    )
    .unwrap();
    db.create_branch("c", None, None).unwrap();
    db.verify().unwrap();
}

/// A UCDP GED release read from memory.
fn release(text: &str) -> Cursor<Vec<u8>> {
    Cursor::new(text.as_bytes().to_vec())
}

/// Item 2: a rejected row of a full release does not make its event
/// missing; a rejected row without a readable id stops the retraction.
#[test]
fn retract_missing_never_retracts_what_a_rejected_row_names() {
    let (_d, db) = fresh();
    let full = std::fs::read_to_string(fixture("ucdp/ged_release_b.csv")).unwrap();
    db.import(ImportFormat::UcdpGed)
        .reader("release", release(&full))
        .unwrap();
    let events = db.query(&Query::new()).unwrap().len();
    // Event 900002's row gets a bad date precision.
    let bad_row = full.replacen(
        ",1,2,2025-09-08 00:00:00.000,",
        ",1,9,2025-09-08 00:00:00.000,",
        1,
    );
    assert_ne!(bad_row, full);
    let mut import = db.import(ImportFormat::UcdpGed).skip_invalid(|_| Ok(()));
    let s = import.reader("release", release(&bad_row)).unwrap();
    assert_eq!(s.rejected, 1);
    let gone = import.retract_missing().unwrap();
    assert_eq!((gone.retracted, gone.kept), (0, 1));
    let kept = db.get(annals::ucdp_id("900002")).unwrap().unwrap();
    assert_eq!(kept.retracted_seq, None);
    assert_eq!(db.query(&Query::new()).unwrap().len(), events);

    // A row whose id cannot be read could be any event's: nothing is
    // retracted, and the error says why.
    let no_id = full.replacen("\n900003,", "\n,", 1);
    assert_ne!(no_id, full);
    let mut import = db.import(ImportFormat::UcdpGed).skip_invalid(|_| Ok(()));
    import.reader("release", release(&no_id)).unwrap();
    let head = db.head();
    let err = import.retract_missing().unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("no readable id"), "{err}");
    assert_eq!(db.head(), head);
}

/// Item 3: JSON Lines rows without ids import once, however often the
/// file is imported.
#[test]
fn json_lines_without_ids_import_once() {
    let (_d, db) = fresh();
    let mut file = String::new();
    for i in 0..50 {
        file.push_str(&format!(
            "{{\"kind\":\"note\",\"occurred\":\"2025-09\",\"summary\":\"row {i}\"}}\n"
        ));
    }
    let first = db
        .import(ImportFormat::Jsonl)
        .reader("rows", Cursor::new(file.clone().into_bytes()))
        .unwrap();
    assert_eq!(first.appended, 50);
    let again = db
        .import(ImportFormat::Jsonl)
        .reader("rows", Cursor::new(file.into_bytes()))
        .unwrap();
    assert_eq!((again.appended, again.unchanged), (0, 50));
    assert_eq!(db.query(&Query::new()).unwrap().len(), 50);
    // The id depends on the content, not on key order or date spelling.
    let a = ev(r#"{"kind":"note","occurred":"2025-09","countries":["PL"],"attrs":{"a":1,"b":2}}"#);
    let b = ev(
        r#"{"countries":["PL"],"attrs":{"b":2,"a":1},"occurred":{"from":"2025-09","to":"2025-09"},"kind":"note"}"#,
    );
    assert_eq!(annals::content_id(&a), annals::content_id(&b));
    let c = ev(r#"{"kind":"note","occurred":"2025-10","countries":["PL"]}"#);
    assert_ne!(annals::content_id(&a), annals::content_id(&c));
}

/// Fails `drop_log` while `armed`, and every call once `poison` is set.
#[derive(Clone, Default)]
struct Switch {
    fail_drop: Arc<AtomicBool>,
    fail_all: Arc<AtomicBool>,
}

impl Hook for Switch {
    fn gate(&self, call: &str) -> Gate {
        if self.fail_all.load(Ordering::SeqCst)
            || (call == "drop_log" && self.fail_drop.load(Ordering::SeqCst))
        {
            Gate::Fail
        } else {
            Gate::Go
        }
    }
}

/// Item 4: branch creation and dropping refuse to write after a failed
/// write; a branch's log left behind by a failed drop is not reused.
#[test]
fn branches_respect_poisoning_and_leave_no_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let switch = Switch::default();
    let open = |s: &Switch| {
        Annals::builder(&path)
            .durability(Durability::Durable)
            .wrap_storage(hooked::wrap(s.clone()))
            .open()
            .unwrap()
    };
    let db = open(&switch);
    db.append(vec![ev(r#"{"kind":"note","occurred":"2025"}"#)])
        .unwrap();
    db.create_branch("b", None, None).unwrap();
    db.write_on(
        Some("b"),
        vec![annals::Op::Append(ev(
            r#"{"kind":"note","occurred":"2026"}"#,
        ))],
        None,
    )
    .unwrap();
    // A drop that fails after removing the record leaves the log.
    switch.fail_drop.store(true, Ordering::SeqCst);
    assert!(db.drop_branch("b").is_err());
    switch.fail_drop.store(false, Ordering::SeqCst);
    drop(db);
    // Opening drops the leftover; a new `b` starts empty and reopens.
    let db = open(&switch);
    assert!(db.branches().is_empty());
    let b = db.create_branch("b", None, None).unwrap();
    assert_eq!(b.head_seq, b.base_seq);
    drop(db);
    let db = open(&switch);
    db.verify().unwrap();
    let reopened = db.branches();
    assert_eq!(reopened.len(), 1);
    assert_eq!(
        reopened[0].head_seq, b.base_seq,
        "the old entries came back"
    );

    // A failed write poisons the writer; branch creation and dropping
    // are then refused like every other write.
    switch.fail_all.store(true, Ordering::SeqCst);
    assert!(db
        .append(vec![ev(r#"{"kind":"note","occurred":"2027"}"#)])
        .is_err());
    switch.fail_all.store(false, Ordering::SeqCst);
    assert!(matches!(
        db.create_branch("c", None, None),
        Err(Error::Poisoned(_))
    ));
    assert!(matches!(db.drop_branch("b"), Err(Error::Poisoned(_))));
}

/// Item 9: through the index, an open or unknown end is never certainly
/// inside a bounded range.
#[test]
fn within_never_counts_an_open_end_as_inside() {
    let (_d, db) = fresh();
    db.append(vec![
        ev(r#"{"kind":"note","occurred":"../0001","countries":["PL"]}"#),
        ev(r#"{"kind":"note","occurred":"2025-09/","countries":["PL"]}"#),
        ev(r#"{"kind":"note","occurred":"2025-09/2025-10","countries":["PL"]}"#),
    ])
    .unwrap();
    let count = |q: Query| db.query(&q).unwrap().len();
    let year1 = Query::new().from("0001").unwrap().to("0001").unwrap();
    assert_eq!(count(year1.clone()), 1);
    assert_eq!(count(year1.within()), 0);
    let since = Query::new().from("2025").unwrap();
    assert_eq!(count(since.clone().within()), 2, "unbounded above");
    let y2025 = since.to("9999").unwrap().within();
    assert_eq!(count(y2025.clone()), 1);
    assert_eq!(count(y2025.country("PL")), 1);
    assert_eq!(
        count(Query::new().to("0001").unwrap().within()),
        1,
        "unbounded below"
    );
}

/// Fails every `scan_chunks` call as damage the store reports: opening's
/// first is the replay after the manifest's head (a torn tail is the
/// segment files' own recovery, which reads no chunk through the store).
struct DamagedReplay;

impl Hook for DamagedReplay {
    fn gate(&self, call: &str) -> Gate {
        if call == "scan_chunks" {
            Gate::Damaged
        } else {
            Gate::Go
        }
    }
}

/// Item 11: damage the store reports while replaying is log damage: it
/// is reported, and the manifest (the record of the durable head) is
/// kept. Damage in a derived file is its own kind, which a rebuild
/// repairs.
#[test]
fn log_damage_and_derived_damage_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let index = path.join("index");
    let events = common::scenario();
    let db = Annals::open(&path).unwrap();
    db.append(events[..4].to_vec()).unwrap();
    db.close().unwrap();
    let early = common::read_dir_files(&index);
    let db = Annals::open(&path).unwrap();
    db.append(events[4..].to_vec()).unwrap();
    db.close().unwrap();
    // The index as of the first close: opening replays the rest.
    common::write_dir_files(&index, &early);
    let manifest = std::fs::read(index.join("MANIFEST")).unwrap();
    let err = Annals::builder(&path)
        .wrap_storage(hooked::wrap(DamagedReplay))
        .open()
        .err()
        .unwrap();
    assert!(matches!(err, Error::Corruption { .. }), "{err}");
    assert_eq!(
        std::fs::read(index.join("MANIFEST")).ok(),
        Some(manifest),
        "the manifest was discarded for damage in the log"
    );
    let db = Annals::open(&path).unwrap();
    assert_eq!(db.head().seq, events.len() as u64);
    db.verify().unwrap();
    db.close().unwrap();

    // A damaged segment is derived damage: its own kind.
    let seg = std::fs::read_dir(&index)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let db = Annals::open(&path).unwrap();
    let err = db.verify().unwrap_err();
    assert!(matches!(err, Error::DerivedDamage { .. }), "{err}");
    assert!(err.is_damage() && err.to_string().contains("annals rebuild"));
    db.rebuild().unwrap();
    db.verify().unwrap();
    assert_eq!(db.head().seq, events.len() as u64);
}

/// Item 10 from the command line: `excise --abandon` with nothing to give
/// up says so and changes nothing.
#[test]
fn excise_abandon_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let o = common::annals(&db, &["init"], None);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let o = common::annals(&db, &["excise", "--abandon"], None);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(
        common::stdout(&o).contains(r#""abandoned":null"#),
        "{}",
        common::stdout(&o)
    );
    let o = common::annals(&db, &["excise", "--abandon", "--reason", "x"], None);
    assert_eq!(o.status.code(), Some(2), "--abandon takes no reason");
}

const WHENS: &[&str] = &[
    "../0001",
    "/0001",
    "0001",
    "0001/0002",
    "2025-09/",
    "2025-09/..",
    "../2025",
    "2025-09/2025",
    "2025-09-10/2025-09",
    "2025-09-10T12:00:00",
    "9999",
    "9998/9999",
];
const BOUNDS: &[&str] = &["0001", "0002", "2025", "2025-09", "2025-12", "9999"];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// The index's answer to a time filter, `--within` or not, equals the
    /// library's own rule ([`Query::matches`]) applied to every event:
    /// the two apply one rule for open and unknown ends.
    #[test]
    fn the_index_and_the_rule_agree_on_open_ends(
        whens in proptest::collection::vec(0..WHENS.len(), 1..8),
        from in proptest::option::of(0..BOUNDS.len()),
        to in proptest::option::of(0..BOUNDS.len()),
        within: bool,
        country: bool,
    ) {
        let (_d, db) = fresh();
        let events: Vec<annals::Event> = whens
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let mut e = ev(&format!(
                    r#"{{"kind":"note","occurred":"{}","countries":["PL"]}}"#,
                    WHENS[w]
                ));
                e.id = uuid::Uuid::from_u128(i as u128 + 1);
                e
            })
            .collect();
        db.append(events.clone()).unwrap();
        let mut q = Query::new();
        if let Some(f) = from {
            q = q.from(BOUNDS[f]).unwrap();
        }
        if let Some(t) = to {
            q = q.to(BOUNDS[t]).unwrap();
        }
        if within {
            q = q.within();
        }
        if country {
            q = q.country("PL");
        }
        if q.validate().is_err() {
            return Ok(());
        }
        let mut got: Vec<_> = db.query(&q).unwrap().into_iter().map(|r| r.event.id).collect();
        got.sort();
        let want: Vec<_> = events.iter().filter(|e| q.matches(e)).map(|e| e.id).collect();
        proptest::prop_assert_eq!(got, want);
    }
}
