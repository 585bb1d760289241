//! Many readers and writers at once: readers never see part of a batch, no
//! acknowledged append is lost, `expect_seq` conflicts are reported.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use annals::{Error, Event, Occurred, Op, Query};

const BATCH: usize = 5;

fn batch(writer: usize, n: usize) -> Vec<Op> {
    (0..BATCH)
        .map(|i| {
            Op::Append(
                Event::new("statement", Occurred::parse("2025-12-03").unwrap())
                    .with_countries(["BE"])
                    .with_summary(format!("writer {writer} batch {n} item {i}")),
            )
        })
        .collect()
}

#[test]
fn readers_see_whole_batches_and_writers_lose_nothing() {
    let (_d, db) = common::fresh();
    let stop = AtomicBool::new(false);
    let (acked, conflicts) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let mut checks = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let n = db.query(&Query::new().country("BE")).unwrap().len();
                        assert!(n.is_multiple_of(BATCH), "a reader saw part of a batch");
                        let rows = db.by_country().unwrap();
                        assert!(rows
                            .iter()
                            .all(|r| (r.count as usize).is_multiple_of(BATCH)));
                        checks += 1;
                    }
                    checks
                })
            })
            .collect();
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let db = &db;
                s.spawn(move || {
                    let (mut acked, mut conflicts) = (0usize, 0usize);
                    for n in 0..10 {
                        loop {
                            let head = db.head().seq;
                            match db.write(batch(w, n), Some(head)) {
                                Ok(written) => {
                                    assert_eq!(written.len(), BATCH);
                                    acked += BATCH;
                                    break;
                                }
                                Err(Error::SeqMismatch { .. }) => conflicts += 1,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    (acked, conflicts)
                })
            })
            .collect();
        let totals = writers
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        totals
    });
    assert_eq!(acked, 8 * 10 * BATCH);
    assert_eq!(db.head().seq as usize, acked);
    assert_eq!(db.query(&Query::new()).unwrap().len(), acked);
    eprintln!("{conflicts} expect_seq conflicts reported and retried by the callers");
    db.verify().unwrap();
}
