//! The first benchmark of annals, on seeded synthetic events shaped like
//! PERFORMANCE.md's workload (Zipf-skewed countries and actors, 300-400
//! bytes each, occurrence times independent of seq).
//!
//! `cargo bench --bench core` runs 100,000 events; `ANNALS_BENCH_EVENTS=1000000`
//! sets the size; `ANNALS_BENCH_QUICK=1` (CI) runs 2,000 so the bench keeps
//! working, with no timing asserted anywhere. Bulk figures (append, rebuild,
//! open, disk, peak memory) are timed directly and printed with their
//! baselines measured in the same run; query and view latencies go through
//! criterion. Peak memory is measured in a child process per backend.

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use annals::{Annals, AsOf, At, Granularity, Query};
use common::{crc32, dir_bytes, peak_rss_kib, Rng, Workload, BATCH};
use criterion::Criterion;

/// The physical limit: length + crc32 + the event's JSON, one fsync a batch.
fn raw_append(dir: &Path, n: usize) -> (Duration, u64) {
    let path = dir.join("raw.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut total = Duration::ZERO;
    for batch in Workload::batches(7, n) {
        let encoded: Vec<Vec<u8>> = batch
            .iter()
            .map(|e| annals::event_to_line(e, None).into_bytes())
            .collect();
        let t = Instant::now();
        for bytes in &encoded {
            f.write_all(&(bytes.len() as u32).to_le_bytes()).unwrap();
            f.write_all(&crc32(bytes).to_le_bytes()).unwrap();
            f.write_all(bytes).unwrap();
        }
        f.flush().unwrap();
        f.get_ref().sync_data().unwrap();
        total += t.elapsed();
    }
    (total, std::fs::metadata(&path).unwrap().len())
}

fn annals_append(path: &Path, n: usize) -> Duration {
    let db = Annals::open(path).unwrap();
    let mut total = Duration::ZERO;
    for batch in Workload::batches(7, n) {
        let t = Instant::now();
        db.append(batch).unwrap();
        total += t.elapsed();
    }
    db.close().unwrap();
    total
}

/// The rejected layout: one sled key per event and one per index entry
/// (country + day, actor + day, day), written as one sled batch and flushed.
fn sled_key_per_index_entry(dir: &Path, n: usize) -> (Duration, u64) {
    let db = sled::Config::default()
        .path(dir.join("layout_b"))
        .open()
        .unwrap();
    let mut seq = 0u64;
    let mut total = Duration::ZERO;
    for batch in Workload::batches(7, n) {
        let t = Instant::now();
        let mut b = sled::Batch::default();
        for e in &batch {
            seq += 1;
            let day = e.occurred.start() / 86_400_000_000;
            b.insert(
                [b"l".as_slice(), &seq.to_be_bytes()].concat(),
                annals::event_to_line(e, None).as_bytes(),
            );
            for c in &e.countries {
                b.insert(
                    [b"c", c.as_bytes(), &day.to_be_bytes(), &seq.to_be_bytes()].concat(),
                    sled::IVec::default(),
                );
            }
            for a in &e.actors {
                b.insert(
                    [
                        b"a",
                        a.key().as_bytes(),
                        &day.to_be_bytes(),
                        &seq.to_be_bytes(),
                    ]
                    .concat(),
                    sled::IVec::default(),
                );
            }
            b.insert(
                [b"d".as_slice(), &day.to_be_bytes(), &seq.to_be_bytes()].concat(),
                sled::IVec::default(),
            );
        }
        db.apply_batch(b).unwrap();
        db.flush().unwrap();
        total += t.elapsed();
    }
    drop(db);
    (total, dir_bytes(&dir.join("layout_b")))
}

/// Re-runs this bench binary to append `n` events in a fresh process and
/// report its peak RSS.
fn child_peak(n: usize, dir: &Path, backend: &str) -> u64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--child",
            backend,
            &n.to_string(),
            dir.join(backend).to_str().unwrap(),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn ev_per_s(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let (backend, n, path) = (
            &args[i + 1],
            args[i + 2].parse().unwrap(),
            Path::new(&args[i + 3]),
        );
        std::fs::create_dir_all(path).unwrap();
        match backend.as_str() {
            "raw" => drop(raw_append(path, n)),
            _ => drop(annals_append(&path.join("db"), n)),
        }
        println!("{}", peak_rss_kib());
        return;
    }
    let quick = common::quick();
    let n = common::env_count("ANNALS_BENCH_EVENTS", if quick { 2_000 } else { 100_000 });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("annals.db");
    println!("annals core bench: {n} events, batches of {BATCH}, durable");

    let (raw_t, raw_bytes) = raw_append(dir.path(), n);
    let annals_t = annals_append(&path, n);
    let layout_n = n.min(100_000);
    let (b_t, b_bytes) = sled_key_per_index_entry(dir.path(), layout_n);
    let raw_rate = ev_per_s(n, raw_t);
    let annals_rate = ev_per_s(n, annals_t);
    println!("append   raw file {:>9.0} ev/s | annals {:>9.0} ev/s ({:.2}x raw) | sled key per index entry {:>8.0} ev/s ({} events)",
        raw_rate, annals_rate, annals_rate / raw_rate, ev_per_s(layout_n, b_t), layout_n);

    let t = Instant::now();
    let db = Annals::open(&path).unwrap();
    let open_t = t.elapsed();
    let disk = db.stats().unwrap().disk_bytes;
    println!("disk     raw {:.0} B/ev | annals {:.0} B/ev ({:.2}x raw) | sled key per index entry {:.0} B/ev",
        raw_bytes as f64 / n as f64, disk as f64 / n as f64, disk as f64 / raw_bytes as f64, b_bytes as f64 / layout_n as f64);
    println!(
        "open     after clean close: {:.1} ms",
        open_t.as_secs_f64() * 1e3
    );

    let t = Instant::now();
    db.rebuild().unwrap();
    let rebuild_t = t.elapsed();
    let t = Instant::now();
    let mut scanned = 0usize;
    let f = std::fs::read(dir.path().join("raw.log")).unwrap();
    let mut at = 0usize;
    while at + 8 <= f.len() {
        let len = u32::from_le_bytes(f[at..at + 4].try_into().unwrap()) as usize;
        let body = &f[at + 8..at + 8 + len];
        black_box(serde_json::from_slice::<serde_json::Value>(body).is_ok());
        at += 8 + len;
        scanned += 1;
    }
    let raw_replay_t = t.elapsed();
    println!(
        "rebuild  annals {:.0} ev/s | raw file read+parse {:.0} ev/s ({:.2}x raw)",
        ev_per_s(n, rebuild_t),
        ev_per_s(scanned, raw_replay_t),
        raw_replay_t.as_secs_f64() / rebuild_t.as_secs_f64()
    );

    let t = Instant::now();
    db.verify().unwrap();
    let verify_t = t.elapsed();
    println!(
        "verify   full check: {:.0} ev/s ({:.2}x the rebuild's rate)",
        ev_per_s(n, verify_t),
        rebuild_t.as_secs_f64() / verify_t.as_secs_f64()
    );

    // Time travel: a view as of a random seq, against the full rebuild.
    let head = db.head().seq;
    let mut rng = Rng(4242);
    let picks = if quick { 5 } else { 21 };
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let as_of: Vec<Duration> = (0..picks)
        .map(|_| {
            let s = 1 + rng.next() % head;
            let t = Instant::now();
            let r = db.reader(&At::head().as_of(AsOf::Seq(s))).unwrap();
            black_box(r.by_country().unwrap().len());
            t.elapsed()
        })
        .collect();
    let as_of = median(as_of);
    println!(
        "as-of    by-country view as of a random seq: median {:.1} ms ({:.1}% of a full rebuild)",
        as_of.as_secs_f64() * 1e3,
        100.0 * as_of.as_secs_f64() / rebuild_t.as_secs_f64()
    );
    let branch_times: Vec<Duration> = (0..picks)
        .map(|i| {
            let s = 1 + rng.next() % head;
            let t = Instant::now();
            db.create_branch(&format!("b{i}"), None, Some(AsOf::Seq(s)))
                .unwrap();
            t.elapsed()
        })
        .collect();
    for i in 0..picks {
        db.drop_branch(&format!("b{i}")).unwrap();
    }
    println!(
        "branch   creation at a random seq: median {:.2} ms",
        median(branch_times).as_secs_f64() * 1e3
    );
    let snap_bytes = dir_bytes(&path.join("snapshots"));
    println!(
        "snapshot view snapshots on disk: {:.0} B/event",
        snap_bytes as f64 / n as f64
    );

    let annals_peak = child_peak(n, dir.path(), "annals");
    let raw_peak = child_peak(n, dir.path(), "raw");
    println!(
        "peak RSS appending {n} events in a fresh process: annals {} MiB | raw file {} MiB",
        annals_peak / 1024,
        raw_peak / 1024
    );

    let mut c = Criterion::default().configure_from_args();
    if quick {
        c = c
            .sample_size(10)
            .measurement_time(Duration::from_millis(200))
            .warm_up_time(Duration::from_millis(50));
    }
    let mut w = Workload::new(99);
    let picks: Vec<(String, String)> = (0..200)
        .map(|_| {
            let cc = w.codes[w.countries.sample(&mut w.rng)].to_string();
            let month = format!("{}-{:02}", 2015 + w.rng.below(10), 1 + w.rng.below(12));
            (cc, month)
        })
        .collect();
    let actors: Vec<String> = (0..200)
        .map(|_| format!("Actor {}", w.actors.sample(&mut w.rng)))
        .collect();
    let mut i = 0;
    c.bench_function("query country+month (full events)", |b| {
        b.iter(|| {
            i = (i + 1) % picks.len();
            let (cc, m) = &picks[i];
            black_box(
                db.query(&Query::new().country(cc).from(m).unwrap().to(m).unwrap())
                    .unwrap()
                    .len(),
            )
        })
    });
    c.bench_function("query actor (full events)", |b| {
        b.iter(|| {
            i = (i + 1) % actors.len();
            black_box(db.query(&Query::new().actor(&actors[i])).unwrap().len())
        })
    });
    c.bench_function("view by-country at head", |b| {
        b.iter(|| black_box(db.by_country().unwrap().len()))
    });
    c.bench_function("view by-date (month) at head", |b| {
        b.iter(|| black_box(db.by_date(Granularity::Month).unwrap().len()))
    });
    c.final_summary();
}
