//! Reopening: the derived state comes back equal to a rebuild, whether the
//! checkpoint is current, stale, damaged or missing.

mod common;

use annals::{Annals, Durability, Granularity};
use common::*;

type Rows<T> = std::sync::Arc<[T]>;

fn snapshot(
    db: &Annals,
) -> (
    annals::Head,
    Rows<annals::CountryRow>,
    Rows<annals::ActorRow>,
    Rows<annals::DateRow>,
) {
    (
        db.head(),
        db.by_country().unwrap(),
        db.by_actor().unwrap(),
        db.by_date(Granularity::Day).unwrap(),
    )
}

fn open(path: &std::path::Path) -> Annals {
    Annals::builder(path)
        .durability(Durability::Buffered)
        .open()
        .unwrap()
}

#[test]
fn reopen_after_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = open(&path);
    db.append(scenario()).unwrap();
    let before = snapshot(&db);
    db.close().unwrap();
    let db = open(&path);
    assert_eq!(snapshot(&db), before);
    db.verify().unwrap();
}

#[test]
fn a_stale_checkpoint_is_caught_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = open(&path);
    let events = scenario();
    db.append(events[..5].to_vec()).unwrap();
    db.checkpoint().unwrap();
    let stale = read_dir_files(&path.join("index"));
    db.append(events[5..].to_vec()).unwrap();
    db.retract(events[0].id, "test").unwrap();
    let expected = snapshot(&db);
    db.close().unwrap();
    // As if the process died after the later batches but before any
    // newer checkpoint reached the disk.
    write_dir_files(&path.join("index"), &stale);
    let db = open(&path);
    assert_eq!(snapshot(&db), expected);
    db.verify().unwrap();
}

#[test]
fn a_damaged_checkpoint_is_ignored_and_a_foreign_one_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = open(&path);
    db.append(scenario()).unwrap();
    let expected = snapshot(&db);
    db.close().unwrap();
    let index = path.join("index");
    let kept = read_dir_files(&index);
    // Damage in any file of the derived state: in the manifest, the string
    // table or a segment's footer it is detected at open and the state is
    // rebuilt from the log; inside a segment's blocks or a view's file
    // (read only when needed, so that opening stays constant-time) the
    // read that meets it and `verify` report it, naming the file, and
    // `rebuild` repairs it. Never a wrong answer.
    for (name, bytes) in &kept {
        for (at, garbage) in [(bytes.len() / 2, false), (0, true)] {
            write_dir_files(&index, &kept);
            let file = index.join(name);
            if garbage {
                std::fs::write(&file, b"garbage").unwrap();
            } else {
                let mut b = bytes.clone();
                b[at] ^= 0x40;
                std::fs::write(&file, &b).unwrap();
            }
            let db = open(&path);
            if let Err(e) = db.verify() {
                let e = e.to_string();
                assert!(
                    e.contains("index segment") || e.contains("view file"),
                    "{name:?}: {e}"
                );
                db.rebuild().unwrap();
                db.verify().unwrap();
            }
            assert_eq!(snapshot(&db), expected, "{name:?}");
        }
    }
    std::fs::remove_dir_all(&index).unwrap();
    assert_eq!(snapshot(&open(&path)), expected);
    // An intact manifest of another history (same seq, other hash) means
    // the log is not the one it was written for: reported, not ignored.
    let other_dir = tempfile::tempdir().unwrap();
    let other = open(&other_dir.path().join("db"));
    let mut evs = scenario();
    evs.reverse();
    other.append(evs).unwrap();
    other.close().unwrap();
    write_dir_files(&index, &read_dir_files(&other_dir.path().join("db/index")));
    let err = Annals::builder(&path).open().err().unwrap();
    assert!(matches!(err, annals::Error::Corruption { .. }), "{err}");
    std::fs::remove_dir_all(&index).unwrap();
    assert_eq!(snapshot(&open(&path)), expected);
}

#[test]
fn a_log_shorter_than_its_checkpoint_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = open(&path);
    db.append(scenario()[..4].to_vec()).unwrap();
    db.close().unwrap();
    let short = read_dir_files(&path.join("index"));
    let db = open(&path);
    db.append(scenario()[4..].to_vec()).unwrap();
    db.close().unwrap();
    let long = read_dir_files(&path.join("index"));
    // Put the short database back under the long one's checkpoint: as if
    // the storage lost the last batch.
    std::fs::remove_dir_all(&path).unwrap();
    let db = open(&path);
    db.append(scenario()[..4].to_vec()).unwrap();
    db.close().unwrap();
    assert_ne!(short, long);
    write_dir_files(&path.join("index"), &long);
    let err = Annals::open(&path).err().unwrap();
    assert!(
        matches!(err, annals::Error::Corruption { seq: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("lost or changed"), "{err}");
}

#[test]
fn rebuild_equals_the_kept_state() {
    let (_d, db) = fresh();
    db.append(scenario()).unwrap();
    let before = snapshot(&db);
    db.rebuild().unwrap();
    assert_eq!(snapshot(&db), before);
}
