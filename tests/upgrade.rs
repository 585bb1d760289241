//! A database written by the previous on-disk format (annals before
//! December 2026: version 1 entries, a whole-state checkpoint) opens with
//! this one: the log is read as it is, the derived state is rebuilt, and
//! new entries (version 2) chain onto the old ones.

mod common;

use std::io::Read;
use std::path::Path;

use annals::{Annals, At, Query};
use uuid::Uuid;

/// The committed fixture, unpacked into `to` (sled's data file is stored
/// gzipped: it is mostly preallocated zeros).
fn unpack(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1");
    std::fs::create_dir_all(to.join("store")).unwrap();
    std::fs::copy(from.join("state.ckpt"), to.join("state.ckpt")).unwrap();
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
