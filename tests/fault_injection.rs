//! Fault injection behind the storage seam: a store that fails its Nth call
//! (N = 1, 2, ... until the workload completes), once or persistently, and
//! either before doing the work or after it (a write that lands but reports
//! failure). Every failure must reach the caller as an error (never a
//! panic), a failed write must stop further writes until reopen, and after
//! reopening without faults the promises hold: every acknowledged write is
//! there (P1), the log is a clean prefix with an intact chain (P2), and
//! every view equals a replay (P4, via `verify`).

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use annals::{Annals, Durability, Error, Op, Result};
use common::hooked::{self, Gate, Hook};

#[derive(Clone, Copy, Debug)]
struct Mode {
    persistent: bool,
    after: bool,
}

/// Fails the `fail_at`th storage call (and every later one if persistent).
struct Faulty {
    calls: AtomicU64,
    fail_at: u64,
    mode: Mode,
}

impl Hook for Faulty {
    fn gate(&self, _call: &str) -> Gate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let hit = n == self.fail_at || (self.mode.persistent && n > self.fail_at);
        match (hit, self.mode.after) {
            (false, _) => Gate::Go,
            (true, false) => Gate::Fail,
            (true, true) => Gate::FailAfterEffect,
        }
    }
}

/// What the workload saw acknowledged.
#[derive(Default)]
struct Acked {
    events: Vec<uuid::Uuid>,
    max_seq: u64,
    branch: bool,
}

/// Runs the workload against a faulty store; returns what was acknowledged
/// and whether the whole workload completed.
fn workload(path: &std::path::Path, fail_at: u64, mode: Mode) -> (Acked, bool) {
    let opened = Annals::builder(path)
        .durability(Durability::Durable)
        .checkpoint_every_entries(5)
        .snapshot_every_entries(4)
        .wrap_storage(hooked::wrap(Faulty {
            calls: AtomicU64::new(0),
            fail_at,
            mode,
        }))
        .open();
    let mut acked = Acked::default();
    let db = match opened {
        Ok(db) => db,
        Err(_) => return (acked, false),
    };
    let events = common::scenario();
    let mut failed = false;
    let mut note = |r: Result<Vec<annals::Written>>, ids: &[uuid::Uuid], acked: &mut Acked| match r
    {
        Ok(w) => {
            acked.events.extend_from_slice(ids);
            acked.max_seq = acked
                .max_seq
                .max(w.iter().map(|w| w.seq).max().unwrap_or(0));
            true
        }
        Err(e) => {
            assert!(
                !matches!(e, Error::Invalid { .. }),
                "a fault must not look like bad input: {e}"
            );
            failed = true;
            false
        }
    };
    for chunk in events.chunks(4) {
        let ids: Vec<_> = chunk.iter().map(|e| e.id).collect();
        note(db.append(chunk.to_vec()), &ids, &mut acked);
    }
    let mut fixed = events[5].clone();
    fixed.countries.push("UA".into());
    note(db.write(vec![Op::Correct(fixed)], None), &[], &mut acked);
    note(
        db.write(
            vec![Op::Retract {
                id: events[1].id,
                reason: "x".into(),
            }],
            None,
        ),
        &[],
        &mut acked,
    );
    if db.create_branch("w", None, None).is_ok() {
        let r = db.write_branch(
            "w",
            vec![Op::Retract {
                id: events[2].id,
                reason: "y".into(),
            }],
            None,
        );
        acked.branch = r.is_ok();
    } else {
        failed = true;
    }
    let closed = db.close().is_ok();
    (acked, !failed && closed)
}

fn check_after_reopen(path: &std::path::Path, acked: &Acked, what: &str) {
    let db = Annals::open(path).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    assert!(
        db.head().seq >= acked.max_seq,
        "{what}: acknowledged seq {} lost",
        acked.max_seq
    );
    for id in &acked.events {
        assert!(
            db.get(*id).unwrap().is_some(),
            "{what}: acknowledged event {id} lost"
        );
    }
    db.verify()
        .unwrap_or_else(|e| panic!("{what}: verify failed: {e}"));
    if acked.branch {
        assert!(
            db.branches().iter().any(|b| b.name == "w"),
            "{what}: acknowledged branch write lost"
        );
    }
}

#[test]
fn every_storage_call_failing_in_turn() {
    let modes = [
        Mode {
            persistent: false,
            after: false,
        },
        Mode {
            persistent: true,
            after: false,
        },
        Mode {
            persistent: false,
            after: true,
        },
        Mode {
            persistent: true,
            after: true,
        },
    ];
    let mut sites = 0;
    for mode in modes {
        for n in 1.. {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db");
            let what = format!("{mode:?}, fault at call {n}");
            let outcome = catch_unwind(AssertUnwindSafe(|| workload(&path, n, mode)));
            let (acked, completed) = outcome.unwrap_or_else(|_| panic!("{what}: panicked"));
            check_after_reopen(&path, &acked, &what);
            sites += 1;
            if completed {
                break;
            }
            assert!(n < 2_000, "{what}: the workload never completes");
        }
    }
    eprintln!("{sites} fault sites x modes exercised, 0 wrong outcomes");
}

#[test]
fn a_failed_flush_stops_writes_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    Annals::open(&path).unwrap().close().unwrap();
    // The first sync fails after it took effect: the first append's batch
    // lands but is reported failed.
    struct FailFirstSync(AtomicU64);
    impl Hook for FailFirstSync {
        fn gate(&self, call: &str) -> Gate {
            if call == "sync" && self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                Gate::FailAfterEffect
            } else {
                Gate::Go
            }
        }
    }
    let db = Annals::builder(&path)
        .wrap_storage(hooked::wrap(FailFirstSync(AtomicU64::new(0))))
        .open()
        .unwrap();
    let events = common::scenario();
    assert!(
        db.append(events[..2].to_vec()).is_err(),
        "the append whose fsync failed reports it"
    );
    let again = db.append(events[2..4].to_vec()).unwrap_err();
    assert!(matches!(again, Error::Poisoned(_)), "{again}");
    assert!(matches!(db.create_branch("x", None, None), Ok(_) | Err(_)));
    drop(db);
    let db = Annals::open(&path).unwrap();
    // The first batch landed (its fsync failed after writing): present,
    // whole, and the database is writable again.
    assert!(db.head().seq == 0 || db.head().seq == 2);
    db.append(events[2..4].to_vec()).unwrap();
    db.verify().unwrap();
}
