//! verify and prove: damage anywhere in the log is reported with the first
//! bad seq; an anchored head proves earlier entries unchanged.

mod common;

use annals::{Annals, At, Bytes, Durability, Error, Head, Op};
use common::hooked::{self, Hook};

/// Reads of the chunk holding `seq` come back with one bit flipped at
/// `offset`: bit rot, as a reader sees it.
struct Rot {
    seq: u64,
    offset: usize,
}

impl Hook for Rot {
    fn read(&self, (first, bytes): (u64, Bytes)) -> (u64, Bytes) {
        if first != self.seq {
            return (first, bytes);
        }
        let mut v = bytes.to_vec();
        let i = self.offset % v.len();
        v[i] ^= 0x10;
        (first, Bytes::new(v))
    }
}

/// A database with one entry per chunk, a branch, and its anchored head.
fn build(path: &std::path::Path) -> Head {
    let db = Annals::builder(path)
        .durability(Durability::Buffered)
        .snapshot_every_entries(4)
        .open()
        .unwrap();
    for e in common::scenario() {
        db.append(vec![e]).unwrap();
    }
    db.create_branch("w", None, Some(annals::AsOf::Seq(6)))
        .unwrap();
    db.write_branch(
        "w",
        vec![Op::Retract {
            id: common::scenario()[0].id,
            reason: "x".into(),
        }],
        None,
    )
    .unwrap();
    let head = db.head();
    db.close().unwrap();
    head
}

#[test]
fn a_clean_database_verifies_fully_and_incrementally() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    build(&path);
    let db = Annals::open(&path).unwrap();
    let r = db.verify_from(1).unwrap();
    assert_eq!((r.seq, r.entries, r.events, r.branches), (11, 11, 11, 1));
    let r = db.verify_from(9).unwrap();
    assert_eq!(r.entries, 3);
}

#[test]
fn damage_in_the_log_is_reported_at_its_seq() {
    for seq in [1u64, 4, 7, 10] {
        for offset in [0usize, 5, 40, 80, 200] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db");
            build(&path);
            let opened = Annals::builder(&path)
                .wrap_storage(hooked::wrap(Rot { seq, offset }))
                .open();
            // Damage the open itself reads (the branch's own entry at 7) is
            // reported there.
            let db = match opened {
                Ok(db) => db,
                Err(Error::Corruption { seq: at, .. }) => {
                    assert_eq!(at, seq);
                    continue;
                }
                Err(e) => panic!("seq {seq} offset {offset}: {e}"),
            };
            match db.verify() {
                Err(Error::Corruption { seq: at, reason }) => {
                    assert_eq!(at, seq, "offset {offset}: {reason}")
                }
                other => panic!("seq {seq} offset {offset}: damage not reported: {other:?}"),
            }
            // Reads of the damaged entry fail too, never return changed data.
            let read = db.reader(&At::head()).unwrap().query(&annals::Query::new());
            assert!(read.is_err() || !read.unwrap().is_empty());
        }
    }
}

#[test]
fn an_anchored_head_proves_earlier_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let anchor = build(&path);
    let db = Annals::open(&path).unwrap();
    for seq in 1..=anchor.seq {
        db.prove(seq, anchor).unwrap();
    }
    let mut forged = anchor;
    forged.hash[0] ^= 1;
    assert!(matches!(db.prove(3, forged), Err(Error::Corruption { .. })));
    assert!(db.prove(0, anchor).is_err());
    assert!(db.prove(12, anchor).is_err());
    drop(db);
    let db = Annals::builder(&path)
        .wrap_storage(hooked::wrap(Rot {
            seq: 5,
            offset: 100,
        }))
        .open()
        .unwrap();
    assert!(matches!(
        db.prove(2, anchor),
        Err(Error::Corruption { seq: 5, .. })
    ));
}

#[test]
fn verify_exits_3_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    build(&path);
    let ok = common::annals(&path, &["verify", "--format", "jsonl"], None);
    assert_eq!(ok.status.code(), Some(0), "{}", common::stderr(&ok));
    let head: serde_json::Value = serde_json::from_str(&common::stdout(&common::annals(
        &path,
        &["head", "--format", "jsonl"],
        None,
    )))
    .unwrap();
    let proved = common::annals(
        &path,
        &[
            "prove",
            "2",
            "--anchor-seq",
            "11",
            "--anchor-hash",
            head["hash"].as_str().unwrap(),
            "--format",
            "jsonl",
        ],
        None,
    );
    assert_eq!(proved.status.code(), Some(0), "{}", common::stderr(&proved));
    let bad = common::annals(
        &path,
        &[
            "prove",
            "2",
            "--anchor-seq",
            "11",
            "--anchor-hash",
            &"0".repeat(64),
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(3));
    // Lose the log's tail under an intact index manifest: damage, exit 3.
    let index = common::read_dir_files(&path.join("index"));
    std::fs::remove_dir_all(&path).unwrap();
    let db = Annals::open(&path).unwrap();
    db.append(common::scenario()[..3].to_vec()).unwrap();
    db.close().unwrap();
    common::write_dir_files(&path.join("index"), &index);
    let out = common::annals(&path, &["verify", "--format", "jsonl"], None);
    assert_eq!(out.status.code(), Some(3), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("\"ok\":false"));
}
