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

/// A process killed while sled wrote a snapshot leaves its temporary
/// file (empty here, as the kill -9 excision test found it); sled would
/// read it as its latest snapshot and refuse to open.
#[test]
fn an_unfinished_sled_snapshot_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = open(&path);
    db.append(scenario()).unwrap();
    let before = snapshot(&db);
    db.close().unwrap();
    let leftover = path.join("store").join("snap.FFFFFFFFFFFFFFF0.generating");
    std::fs::write(&leftover, b"").unwrap();
    let db = open(&path);
    assert_eq!(snapshot(&db), before);
    db.verify().unwrap();
    assert!(!leftover.exists());
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
    // Damage in any file of the derived state: in the manifest or a
    // segment's or run's footer it is detected at open and the state is
    // rebuilt from the log; inside a segment's blocks, a view run's blocks
    // or the string table (read only when needed, so that opening stays
    // constant-time) the read that meets it and `verify` report it,
    // naming the file, and `rebuild` repairs it. Never a wrong answer.
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
                    e.contains("index segment")
                        || e.contains("view run")
                        || e.contains("string table"),
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

/// A crash in the middle of a flush: the log holds every entry, and the
/// index folder holds the previous manifest with any subset of the files
/// the flush had written (new segments, merged segments, views, a
/// temporary file, torn or whole) before the new manifest replaced it.
/// Every such state opens to the same views and queries, and verifies.
#[test]
fn a_crash_during_a_flush_leaves_a_state_that_opens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let events = scenario();
    let db = Annals::builder(&path)
        .durability(Durability::Buffered)
        .checkpoint_every_entries(3)
        .open()
        .unwrap();
    db.append(events[..4].to_vec()).unwrap();
    db.append(events[4..6].to_vec()).unwrap();
    let before_flush = read_dir_files(&path.join("index"));
    // This batch passes the flush interval: a segment, a merge, views.
    db.append(events[6..].to_vec()).unwrap();
    db.retract(events[1].id, "test").unwrap();
    let expected = snapshot(&db);
    let query = db.query(&annals::Query::new()).unwrap();
    db.close().unwrap();
    let after_flush = read_dir_files(&path.join("index"));
    let new_files: Vec<_> = after_flush
        .iter()
        .filter(|(n, _)| n != "MANIFEST" && !before_flush.iter().any(|(m, _)| m == n))
        .collect();
    assert!(new_files.len() >= 2, "the flush wrote too little to test");
    let store = dir.path().join("store-copy");
    copy_dir(&path.join("store"), &store);
    for mask in 0u32..(1 << new_files.len()) {
        for torn in [false, true] {
            let mut files = before_flush.clone();
            for (i, (name, bytes)) in new_files.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    let cut = if torn { bytes.len() / 2 } else { bytes.len() };
                    files.push((name.clone(), bytes[..cut].to_vec()));
                }
            }
            files.push(("leftover.tmp".into(), b"partial".to_vec()));
            write_dir_files(&path.join("index"), &files);
            let _ = std::fs::remove_dir_all(path.join("store"));
            copy_dir(&store, &path.join("store"));
            let db = open(&path);
            assert_eq!(snapshot(&db), expected, "mask {mask} torn {torn}");
            assert_eq!(db.query(&annals::Query::new()).unwrap(), query);
            db.verify().unwrap();
        }
    }
}
