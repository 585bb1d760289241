//! History operations at scale: merging a what-if branch of 10,000
//! entries into a main of 100,000 events that moved on, a fast-forward
//! merge of the same size, `diff --events` over the branch, and the
//! changes feed over the whole log; then the excision of one event.
//!
//! Each figure is printed beside a baseline measured in the same run: a
//! merge beside writing the same operations as one plain batch (what the
//! merge must at least do), the changes feed beside reading the same
//! entries through `entries` (what it must at least read), the excision
//! beside a rebuild of the derived state from the log (which it includes).
//! `ANNALS_BENCH_EVENTS` and `ANNALS_BENCH_BRANCH` set the sizes;
//! `ANNALS_BENCH_QUICK=1` (CI) runs 2,000 and 500. No timing is asserted.

use std::hint::black_box;
use std::time::{Duration, Instant};

mod common;

use annals::{Against, Annals, Durability, MergeOptions, OnConflict, Op, Query};
use common::{Rng, Workload};

fn main() {
    let quick = common::quick();
    let n = common::env_count("ANNALS_BENCH_EVENTS", if quick { 2_000 } else { 100_000 });
    let k = common::env_count("ANNALS_BENCH_BRANCH", if quick { 500 } else { 10_000 });
    let dir = tempfile::tempdir().unwrap();
    let db = Annals::builder(dir.path().join("db"))
        .durability(Durability::Buffered)
        .open()
        .unwrap();
    let mut ids = Vec::with_capacity(n);
    for batch in Workload::batches(7, n) {
        ids.extend(batch.iter().map(|e| e.id));
        db.append(batch).unwrap();
    }
    println!("annals history bench: {n} events, branches of {k} entries");
    let mut w = Workload::new(99);
    let mut rng = Rng(12345);
    // A branch's edits: four fifths corrections of random events, the
    // rest new events.
    let edits = |rng: &mut Rng, w: &mut Workload| -> Vec<Op> {
        (0..k)
            .map(|i| {
                if i % 5 == 4 {
                    Op::Append(w.event())
                } else {
                    let mut e = w.event();
                    e.id = ids[rng.below(ids.len())];
                    Op::Correct(e)
                }
            })
            .collect()
    };

    // Fast-forward: main has not moved since the branch point.
    db.create_branch("ff", None, None).unwrap();
    for chunk in edits(&mut rng, &mut w).chunks(1_000) {
        db.write_branch("ff", chunk.to_vec(), None).unwrap();
    }
    let t = Instant::now();
    let ff = db.merge("ff", &MergeOptions::default()).unwrap();
    let ff_t = t.elapsed();
    assert!(ff.fast_forward);

    // Three-way: the branch edits, then main moves on (a tenth as much).
    db.create_branch("what-if", None, None).unwrap();
    for chunk in edits(&mut rng, &mut w).chunks(1_000) {
        db.write_branch("what-if", chunk.to_vec(), None).unwrap();
    }
    let moved: Vec<Op> = (0..k / 10)
        .map(|_| {
            let mut e = w.event();
            e.id = ids[rng.below(ids.len())];
            Op::Correct(e)
        })
        .collect();
    db.write(moved, None).unwrap();
    let t = Instant::now();
    let diff = db.diff_events("what-if", Against::Head).unwrap();
    let diff_t = t.elapsed();
    let opts = MergeOptions {
        on_conflict: OnConflict::Target,
        ..MergeOptions::default()
    };
    let t = Instant::now();
    let plan = db
        .merge(
            "what-if",
            &MergeOptions {
                dry_run: true,
                ..opts.clone()
            },
        )
        .unwrap();
    let plan_t = t.elapsed();
    let t = Instant::now();
    let merged = db.merge("what-if", &opts).unwrap();
    let merge_t = t.elapsed();
    assert!(!merged.fast_forward);
    assert_eq!(plan.changes, merged.changes, "the dry run plans the merge");

    // Baseline: the same number of corrections written as one plain batch.
    let plain: Vec<Op> = (0..merged.changes.len())
        .map(|_| {
            let mut e = w.event();
            e.id = ids[rng.below(ids.len())];
            Op::Correct(e)
        })
        .collect();
    let t = Instant::now();
    db.write(plain, None).unwrap();
    let plain_t = t.elapsed();

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "merge    fast-forward of {} entries: {:.0} ms",
        ff.changes.len(),
        ms(ff_t)
    );
    println!(
        "merge    three-way, {} changes, {} conflicts: plan (dry run) {:.0} ms, merge {:.0} ms | \
         plain batch of as many corrections {:.0} ms ({:.1}x)",
        merged.changes.len(),
        merged.conflicts.len(),
        ms(plan_t),
        ms(merge_t),
        ms(plain_t),
        merge_t.as_secs_f64() / plain_t.as_secs_f64()
    );
    println!(
        "diff     --events --against head: {} events differ, {:.0} ms",
        diff.len(),
        ms(diff_t)
    );

    // The changes feed over the whole log against reading it once.
    let head = db.head().seq;
    let t = Instant::now();
    let changes = db
        .reader(&annals::At::head())
        .unwrap()
        .changes_since(0, &Query::new())
        .unwrap();
    let changes_t = t.elapsed();
    let t = Instant::now();
    let read = db.entries(0).unwrap().map(Result::unwrap).count();
    let read_t = t.elapsed();
    black_box(read);
    println!(
        "changes  since seq 0 over {head} entries: {} events, {:.0} ms | reading the entries {:.0} ms ({:.1}x)",
        changes.len(),
        ms(changes_t),
        ms(read_t),
        changes_t.as_secs_f64() / read_t.as_secs_f64()
    );
    let since = head.saturating_sub(k as u64);
    let t = Instant::now();
    let recent = db
        .reader(&annals::At::head())
        .unwrap()
        .changes_since(since, &Query::new())
        .unwrap();
    println!(
        "changes  over the last {} entries: {} events, {:.0} ms",
        head - since,
        recent.len(),
        ms(t.elapsed())
    );

    // Excision of one event: every log (main, both branches) is scanned,
    // the store copied, then the derived state rebuilt.
    let path = db.path().to_path_buf();
    db.close().unwrap();
    let size = common::dir_bytes(&path);
    let t = Instant::now();
    let excision = Annals::excise(&path, ids[0], "bench").unwrap();
    let excise_t = t.elapsed();
    let t = Instant::now();
    for derived in ["index", "snapshots"] {
        let _ = std::fs::remove_dir_all(path.join(derived));
    }
    Annals::open(&path).unwrap().close().unwrap();
    let rebuild_t = t.elapsed();
    println!(
        "excise   one event ({} entries in {} logs) from {head} entries, {:.0} MiB: {:.0} ms | \
         rebuilding the derived state alone {:.0} ms ({:.1}x)",
        excision.entries.values().map(Vec::len).sum::<usize>(),
        excision.entries.len(),
        size as f64 / (1 << 20) as f64,
        ms(excise_t),
        ms(rebuild_t),
        excise_t.as_secs_f64() / rebuild_t.as_secs_f64()
    );
}
