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
        db.by_country(),
        db.by_actor(),
        db.by_date(Granularity::Day),
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
    let stale = std::fs::read(path.join("state.ckpt")).unwrap();
    db.append(events[5..].to_vec()).unwrap();
    db.retract(events[0].id, "test").unwrap();
    let expected = snapshot(&db);
    db.close().unwrap();
    // As if the process died after the later batches but before any
    // newer checkpoint reached the disk.
    std::fs::write(path.join("state.ckpt"), stale).unwrap();
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
    let ckpt = path.join("state.ckpt");
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&ckpt, &bytes).unwrap();
    assert_eq!(snapshot(&open(&path)), expected);
    std::fs::write(&ckpt, b"garbage").unwrap();
    assert_eq!(snapshot(&open(&path)), expected);
    std::fs::remove_file(&ckpt).unwrap();
    assert_eq!(snapshot(&open(&path)), expected);
    // An intact checkpoint of another history (same seq, other hash) means
    // the log is not the one it was written for: reported, not ignored.
    let other_dir = tempfile::tempdir().unwrap();
    let other = open(&other_dir.path().join("db"));
    let mut evs = scenario();
    evs.reverse();
    other.append(evs).unwrap();
    other.close().unwrap();
    std::fs::copy(other_dir.path().join("db/state.ckpt"), &ckpt).unwrap();
    let err = Annals::builder(&path).open().err().unwrap();
    assert!(matches!(err, annals::Error::Corruption { .. }), "{err}");
    std::fs::remove_file(&ckpt).unwrap();
    assert_eq!(snapshot(&open(&path)), expected);
}

#[test]
fn a_log_shorter_than_its_checkpoint_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = open(&path);
    db.append(scenario()[..4].to_vec()).unwrap();
    db.close().unwrap();
    let short = std::fs::read(path.join("state.ckpt")).unwrap();
    let db = open(&path);
    db.append(scenario()[4..].to_vec()).unwrap();
    db.close().unwrap();
    let long = std::fs::read(path.join("state.ckpt")).unwrap();
    // Put the short database back under the long one's checkpoint: as if
    // the storage lost the last batch.
    std::fs::remove_dir_all(&path).unwrap();
    let db = open(&path);
    db.append(scenario()[..4].to_vec()).unwrap();
    db.close().unwrap();
    assert_ne!(short, long);
    std::fs::write(path.join("state.ckpt"), long).unwrap();
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
