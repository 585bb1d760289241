//! A crash at every storage write and sync, deterministically. A store
//! wrapper copies the whole database folder right after each write and each
//! sync: each copy is the files as the operating system holds them at that
//! moment, which is what a process killed right then leaves behind
//! (including whatever sled's background threads had half written). This
//! complements the random kills of `crash.rs`; it is not power loss, since
//! the copy reads the page cache, not the disk.
//!
//! Every copy must open and satisfy the promises: the log is a prefix of
//! the final log with an intact chain and no partial batch (P2), in durable
//! mode every batch acknowledged before the copy is in it (P1), and views
//! equal a replay (P4, via verify).

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use annals::{Annals, Durability, Event, Occurred, Op};
use common::copy_dir;
use common::hooked::{self, Hook};

struct ImageAtEachCall {
    db: PathBuf,
    images: PathBuf,
    taken: Arc<AtomicU64>,
    /// The highest seq acknowledged to the writer so far.
    acked: Arc<AtomicU64>,
    /// (image number, seq acknowledged when it was taken)
    log: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl Hook for ImageAtEachCall {
    /// After a write (before any sync) and after a sync: copies the folder
    /// as the OS holds it now.
    fn after(&self, call: &str) {
        if call != "write_chunks" && call != "sync" {
            return;
        }
        let acked = self.acked.load(Ordering::SeqCst);
        let n = self.taken.fetch_add(1, Ordering::SeqCst);
        copy_dir(&self.db, &self.images.join(n.to_string()));
        self.log.lock().unwrap().push((n, acked));
    }
}

const BATCH: usize = 7;

fn batch(b: usize) -> Vec<Op> {
    (0..BATCH)
        .map(|i| {
            Op::Append(
                Event::new(
                    "airspace_violation",
                    Occurred::parse(&format!("2025-{:02}", (b + i) % 12 + 1)).unwrap(),
                )
                .with_countries([["PL", "RO", "LT"][(b + i) % 3]])
                .with_actor(format!("actor {}", i % 4), "alleged_perpetrator")
                .with_summary(format!("batch {b} item {i}")),
            )
        })
        .collect()
}

fn run(durability: Durability) {
    let work = tempfile::tempdir().unwrap();
    let db_path = work.path().join("db");
    let images = work.path().join("images");
    let taken = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (t, a, l, d, i) = (
        Arc::clone(&taken),
        Arc::clone(&acked),
        Arc::clone(&log),
        db_path.clone(),
        images.clone(),
    );
    let db = Annals::builder(&db_path)
        .durability(durability)
        .checkpoint_every_entries(20)
        .snapshot_every_entries(15)
        .wrap_storage(hooked::wrap(ImageAtEachCall {
            db: d,
            images: i,
            taken: t,
            acked: a,
            log: l,
        }))
        .open()
        .unwrap();
    for b in 0..30 {
        let written = db.write(batch(b), None).unwrap();
        acked.store(
            written.iter().map(|w| w.seq).max().unwrap(),
            Ordering::SeqCst,
        );
        if b % 10 == 9 {
            db.rebuild().unwrap();
        }
    }
    let final_head = db.head();
    let final_hashes: Vec<annals::Head> = (1..=final_head.seq)
        .map(|s| {
            db.reader(&annals::At::head().as_of(annals::AsOf::Seq(s)))
                .unwrap()
                .head()
                .unwrap()
        })
        .collect();
    db.close().unwrap();

    let images_taken = log.lock().unwrap().clone();
    assert!(
        images_taken.len() >= 5,
        "too few syncs to test: {}",
        images_taken.len()
    );
    let count = images_taken.len();
    for (n, acked) in images_taken {
        let copy = work.path().join(format!("open{n}"));
        copy_dir(&images.join(n.to_string()), &copy);
        let db = Annals::open(&copy).unwrap_or_else(|e| panic!("image {n}: does not open: {e}"));
        let head = db.head();
        // P2: a prefix of the final log, chain intact, no partial batch.
        assert!(
            head.seq <= final_head.seq,
            "image {n}: longer than the final log"
        );
        if head.seq > 0 {
            assert_eq!(
                head,
                final_hashes[head.seq as usize - 1],
                "image {n}: not a prefix"
            );
        }
        assert!(
            head.seq.is_multiple_of(BATCH as u64),
            "image {n}: partial batch (head {})",
            head.seq
        );
        // P1: what was acknowledged before this point survived it. Only
        // durable mode promises that: in buffered mode sled keeps recent
        // writes in the process's memory until its flusher writes them out.
        if durability == Durability::Durable {
            assert!(
                head.seq >= acked,
                "image {n}: acknowledged seq {acked} lost (head {})",
                head.seq
            );
        }
        // P4 and the rest of verify.
        db.verify().unwrap_or_else(|e| panic!("image {n}: {e}"));
    }
    eprintln!(
        "{durability:?}: {count} crash points (after each write and sync): all open, \
         hold a clean prefix with no partial batch and verify"
    );
}

#[test]
fn durable_mode_every_write_and_sync() {
    run(Durability::Durable);
}

#[test]
fn buffered_mode_every_write_and_sync() {
    run(Durability::Buffered);
}
