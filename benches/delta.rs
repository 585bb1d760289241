//! Publishing into Delta Lake (feature `delta`): events per second from a
//! database of `ANNALS_BENCH_EVENTS` synthetic events (default 1,000,000;
//! `ANNALS_BENCH_QUICK=1` runs 2,000) written in batches of 1,000 (the
//! import's batch size), published at default settings (runs of batches
//! per commit), beside the Parquet export of the same events in the same
//! run (what a one-off snapshot costs); the table's commits, files and
//! their average size, checkpoints, and the table's size beside the
//! database's. A re-run that finds nothing new is timed too, and the lag
//! of `follow_delta` at its default latency: batches appended every
//! 0.5 s, each timed until a publish covers it (p50/p99).
//! With `ANNALS_DELTA_KEEP=DIR` the database and the table are left in
//! `DIR` for `benches/python/delta_query.py`. No timing is asserted.
//!
//!     cargo bench --features delta --bench delta

use std::time::Instant;

mod common;

use annals::{Annals, At, Durability, ExportFormat, PublishOptions, Query};
use common::Workload;

fn main() {
    let n = common::env_count(
        "ANNALS_BENCH_EVENTS",
        if common::quick() { 2_000 } else { 1_000_000 },
    );
    let temp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("ANNALS_DELTA_KEEP").map(std::path::PathBuf::from);
    let root = keep.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let db = Annals::builder(root.join("db"))
        .durability(Durability::Buffered)
        .open()
        .unwrap();
    for batch in Workload::batches(11, n) {
        db.append(batch).unwrap();
    }
    db.checkpoint().unwrap();
    let entries = db.head().seq;
    println!("annals delta bench: {n} events, {entries} entries");

    let table = root.join("table");
    let t = Instant::now();
    let report = db.publish_delta(&table, None).unwrap();
    let publish = t.elapsed().as_secs_f64();
    assert_eq!(report.to_seq, entries);
    let t = Instant::now();
    let again = db.publish_delta(&table, None).unwrap();
    let rerun = t.elapsed().as_secs_f64();
    assert_eq!(again.commits, 0);

    let parquet = root.join("events.parquet");
    let t = Instant::now();
    let file = std::fs::File::create(&parquet).unwrap();
    db.export(&At::head(), &Query::new(), ExportFormat::Parquet, file)
        .unwrap();
    let export = t.elapsed().as_secs_f64();

    let (table_mib, db_mib, parquet_mib) = (
        common::dir_bytes(&table) as f64 / 1048576.0,
        common::dir_bytes(&root.join("db")) as f64 / 1048576.0,
        std::fs::metadata(&parquet).unwrap().len() as f64 / 1048576.0,
    );
    println!(
        "publish  {} entries in {} commits: {:.2} s, {:.0} entries/s | Parquet export of the {} events {:.2} s, {:.0} events/s ({:.1}x the publish's time)",
        report.entries,
        report.commits,
        publish,
        report.entries as f64 / publish,
        n,
        export,
        n as f64 / export,
        publish / export
    );
    println!("re-run   nothing new: {:.0} ms", rerun * 1e3);
    let mut files: Vec<u64> = Vec::new();
    let mut checkpoints = 0;
    for e in walk(&table) {
        let name = e
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.contains(".checkpoint") {
            checkpoints += 1;
        } else if name.ends_with(".parquet") {
            files.push(std::fs::metadata(&e).unwrap().len());
        }
    }
    let avg = files.iter().sum::<u64>() as f64 / files.len().max(1) as f64 / 1048576.0;
    println!(
        "table    {} commits, {} data files of {avg:.1} MiB on average (largest {:.1} MiB), {checkpoints} checkpoint files",
        report.commits,
        files.len(),
        files.iter().max().copied().unwrap_or(0) as f64 / 1048576.0
    );
    println!(
        "size     table {table_mib:.1} MiB | database {db_mib:.1} MiB ({:.2}x) | Parquet export {parquet_mib:.1} MiB",
        table_mib / db_mib
    );
    db.close().unwrap();
    // On a database of its own, so that the kept one still matches its
    // table and export (benches/python/delta_query.py compares them).
    let followed = Annals::builder(temp.path().join("follow-db"))
        .durability(Durability::Buffered)
        .open()
        .unwrap();
    followed
        .append(Workload::batches(12, 1_000).next().unwrap())
        .unwrap();
    let batches = if common::quick() { 3 } else { 20 };
    follow_lag(&followed, &temp.path().join("followed"), batches);
    followed.close().unwrap();
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `follow_delta` at its default latency in a thread; `batches` batches of
/// 100 events appended 0.5 s apart; each batch's lag from its append to
/// the end of the first publish that covers it.
fn follow_lag(db: &Annals, table: &std::path::Path, batches: usize) {
    use std::sync::Mutex;
    let opts = PublishOptions::default();
    db.publish_delta(table, None).unwrap();
    let published: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut appended: Vec<(u64, Instant)> = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            db.follow_delta(table, None, &opts, &mut |r| {
                published.lock().unwrap().push((r.to_seq, Instant::now()));
                !stop.load(std::sync::atomic::Ordering::SeqCst)
            })
            .unwrap();
        });
        let mut w = Workload::new(99);
        for _ in 0..batches {
            let batch: Vec<_> = (0..100).map(|_| w.event()).collect();
            let w = db.append(batch).unwrap();
            appended.push((w.last().unwrap().seq, Instant::now()));
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let last = appended.last().unwrap().0;
        while published.lock().unwrap().last().map_or(0, |p| p.0) < last {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // One more batch wakes the follower so that it sees `stop`.
        db.append(vec![w.event()]).unwrap();
    });
    let published = published.into_inner().unwrap();
    let mut lags: Vec<f64> = appended
        .iter()
        .filter_map(|(seq, t)| {
            published
                .iter()
                .find(|(p, _)| p >= seq)
                .map(|(_, at)| at.duration_since(*t).as_secs_f64())
        })
        .collect();
    lags.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
    let commits = published.iter().filter(|(s, _)| *s > 0).count();
    println!(
        "follow   {} batches 0.5 s apart at latency {:?}: lag p50 {:.2} s, p99 {:.2} s, {} publish runs",
        appended.len(),
        opts.latency,
        pick(0.5),
        pick(0.99),
        commits
    );
}
