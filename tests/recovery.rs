//! Reopening: the derived state comes back equal to a rebuild, whether the
//! checkpoint is current, stale, damaged or missing.

mod common;

use annals::{Annals, Durability, Granularity};
use common::*;

fn snapshot(
    db: &Annals,
) -> (
    annals::Head,
    Vec<annals::CountryRow>,
    Vec<annals::ActorRow>,
    Vec<annals::DateRow>,
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
fn a_damaged_or_foreign_checkpoint_is_ignored() {
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
    // A checkpoint of another database (same seq, other hash) is refused.
    let other_dir = tempfile::tempdir().unwrap();
    let other = open(&other_dir.path().join("db"));
    let mut evs = scenario();
    evs.reverse();
    other.append(evs).unwrap();
    other.close().unwrap();
    std::fs::copy(other_dir.path().join("db/state.ckpt"), &ckpt).unwrap();
    assert_eq!(snapshot(&open(&path)), expected);
}

#[test]
fn rebuild_equals_the_kept_state() {
    let (_d, db) = fresh();
    db.append(scenario()).unwrap();
    let before = snapshot(&db);
    db.rebuild().unwrap();
    assert_eq!(snapshot(&db), before);
}
