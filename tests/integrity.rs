//! verify and prove: damage anywhere in the log is reported with the first
//! bad seq; an anchored head proves earlier entries unchanged.

mod common;

use std::sync::Arc;

use annals::{Annals, At, Bytes, ChunkIter, Durability, Error, Head, Op, Result, Storage};

/// A store whose reads of the chunk holding `seq` come back with one bit
/// flipped at `offset`: bit rot, as a reader sees it.
struct Rot {
    inner: Arc<dyn Storage>,
    seq: u64,
    offset: usize,
}

impl Rot {
    fn rot(&self, c: Option<(u64, Bytes)>) -> Option<(u64, Bytes)> {
        c.map(|(first, bytes)| {
            if first == self.seq {
                let mut v = bytes.to_vec();
                let i = self.offset % v.len();
                v[i] ^= 0x10;
                (first, Bytes::new(v))
            } else {
                (first, bytes)
            }
        })
    }
}

impl Storage for Rot {
    fn write_chunks(&self, l: &str, c: &[(u64, Vec<u8>)]) -> Result<()> {
        self.inner.write_chunks(l, c)
    }
    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }
    fn chunk_at(&self, l: &str, s: u64) -> Result<Option<(u64, Bytes)>> {
        self.inner.chunk_at(l, s).map(|c| self.rot(c))
    }
    fn scan_chunks(&self, l: &str, f: u64) -> ChunkIter<'_> {
        Box::new(
            self.inner
                .scan_chunks(l, f)
                .map(move |r| r.map(|c| self.rot(Some(c)).unwrap())),
        )
    }
    fn last_chunk(&self, l: &str) -> Result<Option<(u64, Bytes)>> {
        self.inner.last_chunk(l).map(|c| self.rot(c))
    }
    fn drop_log(&self, l: &str) -> Result<()> {
        self.inner.drop_log(l)
    }
    fn put_meta(&self, k: &str, v: &[u8]) -> Result<()> {
        self.inner.put_meta(k, v)
    }
    fn get_meta(&self, k: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get_meta(k)
    }
    fn remove_meta(&self, k: &str) -> Result<()> {
        self.inner.remove_meta(k)
    }
    fn scan_meta(&self, p: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.scan_meta(p)
    }
    fn disk_bytes(&self) -> u64 {
        self.inner.disk_bytes()
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
                .wrap_storage(move |inner| Arc::new(Rot { inner, seq, offset }) as Arc<dyn Storage>)
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
        .wrap_storage(|inner| {
            Arc::new(Rot {
                inner,
                seq: 5,
                offset: 100,
            }) as Arc<dyn Storage>
        })
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
    // Lose the log's tail under an intact checkpoint: damage, exit 3.
    let ckpt = std::fs::read(path.join("state.ckpt")).unwrap();
    std::fs::remove_dir_all(&path).unwrap();
    let db = Annals::open(&path).unwrap();
    db.append(common::scenario()[..3].to_vec()).unwrap();
    db.close().unwrap();
    std::fs::write(path.join("state.ckpt"), ckpt).unwrap();
    let out = common::annals(&path, &["verify", "--format", "jsonl"], None);
    assert_eq!(out.status.code(), Some(3), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("\"ok\":false"));
}
