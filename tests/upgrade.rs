//! Databases written by earlier on-disk formats open with this one:
//! version 1 entries and a whole-state checkpoint (before December 2026),
//! and the log kept in sled trees (before segment files). The log is
//! moved into segment files once, checked end to end, the derived state
//! is rebuilt, and new entries chain onto the old ones.

mod common;

use std::io::Read;
use std::path::Path;

use annals::{Annals, At, Query};
use uuid::Uuid;

/// A committed fixture, unpacked into `to` (sled's data file is stored
/// gzipped: it is mostly preallocated zeros).
fn unpack_fixture(name: &str, to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::create_dir_all(to.join("store")).unwrap();
    if from.join("state.ckpt").exists() {
        std::fs::copy(from.join("state.ckpt"), to.join("state.ckpt")).unwrap();
    }
    for e in std::fs::read_dir(from.join("store")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if let Some(plain) = name.strip_suffix(".gz") {
            let mut bytes = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(e.path()).unwrap())
                .read_to_end(&mut bytes)
                .unwrap();
            std::fs::write(to.join("store").join(plain), bytes).unwrap();
        } else {
            std::fs::copy(e.path(), to.join("store").join(name)).unwrap();
        }
    }
}

fn unpack(to: &Path) {
    unpack_fixture("format-v1", to);
}

fn id(n: u32) -> Uuid {
    format!("6a1f0c2e-0d5b-5c8e-9b1a-{n:012}").parse().unwrap()
}

#[test]
fn a_version_1_database_opens_upgrades_and_keeps_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    unpack(&path);
    let db = Annals::open(&path).unwrap();
    // As the old release printed it: 13 entries and this head.
    let head = db.head();
    assert_eq!(head.seq, 13);
    assert_eq!(
        head.hash_hex(),
        "a7e2e9ccf489df4808d5591ac7954056c3af75e283605ecb09cea0b8938a59b2"
    );
    assert!(!path.join("state.ckpt").exists());
    db.verify().unwrap();
    // The correction, the retraction and the branch survive.
    let corrected = db.get(id(3)).unwrap().unwrap();
    assert_eq!(corrected.event.summary.as_deref(), Some("corrected in v1"));
    assert_eq!(corrected.position.corrected_seq, Some(12));
    assert_eq!(db.get(id(4)).unwrap().unwrap().retracted_seq, Some(13));
    assert_eq!(db.history(id(3)).unwrap().len(), 2);
    let main = db.query(&Query::new()).unwrap().len();
    assert_eq!(main, 10);
    let branch = db.reader(&At::head().branch("what-if")).unwrap();
    assert_eq!(branch.query(&Query::new()).unwrap().len(), 9);
    drop(branch);
    // New entries are written in the current format and chain on.
    let mut e = common::scenario()[0].clone();
    e.id = Uuid::from_u128(77);
    db.append(vec![e]).unwrap();
    db.close().unwrap();
    let db = Annals::open(&path).unwrap();
    assert_eq!(db.head().seq, 14);
    db.verify().unwrap();
    db.prove(2, db.head()).unwrap();
}

/// The segment files of main, as (name, bytes).
fn main_segments(db: &Path) -> Vec<(String, u64)> {
    let dir = db.join("store/log/main");
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let len = e.metadata().unwrap().len();
            (e.file_name().into_string().unwrap(), len)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_database_with_its_log_in_sled_moves_it_into_segment_files_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    unpack_fixture("format-v2-sled", &path);
    let db = Annals::open(&path).unwrap();
    // As the old release printed it.
    let head = db.head();
    assert_eq!(head.seq, 14);
    assert_eq!(
        head.hash_hex(),
        "b4b7bf53995527ca28188a353408b82a03298bbe1a584784014aa0d2465fbdd7"
    );
    db.verify().unwrap();
    assert_eq!(db.query(&Query::new()).unwrap().len(), 11);
    let branch = db.reader(&At::head().branch("no-attribution")).unwrap();
    assert_eq!(branch.seq(), 16);
    drop(branch);
    assert!(!main_segments(&path).is_empty());
    assert!(path.join("store/log/branches/no-attribution").is_dir());
    assert!(!path.join("store/log.new").exists());
    let mut e = common::scenario()[0].clone();
    e.id = Uuid::from_u128(78);
    db.append(vec![e]).unwrap();
    db.close().unwrap();
    // Opened again: nothing is converted twice, the new entry is there.
    let before = main_segments(&path);
    let db = Annals::open(&path).unwrap();
    assert_eq!(db.head().seq, 15);
    db.verify().unwrap();
    db.close().unwrap();
    assert_eq!(main_segments(&path), before);
}

#[test]
fn an_upgrade_cut_short_before_its_switch_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    unpack_fixture("format-v2-sled", &path);
    // What a crash while the segment files were being built leaves: a
    // partial `log.new/` (here, a torn segment), the trees still in sled.
    let partial = path.join("store/log.new/main");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("00000000000000000001.log"), b"ANNALSEG torn").unwrap();
    let db = Annals::open(&path).unwrap();
    assert_eq!(db.head().seq, 14);
    db.verify().unwrap();
    assert!(!path.join("store/log.new").exists());
}
