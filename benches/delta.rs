//! Publishing into Delta Lake (feature `delta`): events per second from a
//! database of `ANNALS_BENCH_EVENTS` synthetic events (default 1,000,000;
//! `ANNALS_BENCH_QUICK=1` runs 2,000) written in batches of 1,000 (the
//! import's batch size, so one Delta commit per 1,000 entries), beside the
//! Parquet export of the same events in the same run (what a one-off
//! snapshot costs), and the table's size beside the database's. A re-run
//! that finds nothing new is timed too (what `--follow` pays per wake-up).
//! With `ANNALS_DELTA_KEEP=DIR` the database and the table are left in
//! `DIR` for `benches/python/delta_query.py`. No timing is asserted.
//!
//!     cargo bench --features delta --bench delta

use std::time::Instant;

mod common;

use annals::{Annals, At, Durability, ExportFormat, Query};
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
    println!(
        "size     table {table_mib:.1} MiB | database {db_mib:.1} MiB ({:.2}x) | Parquet export {parquet_mib:.1} MiB",
        table_mib / db_mib
    );
    db.close().unwrap();
}
