//! The comparison: annals against the physical limit (a raw append-only
//! file, length + crc32 per record, one fsync per batch) and against what
//! users would pick instead (SQLite through rusqlite, bundled, WAL,
//! synchronous=NORMAL, indexes on country + day, actor + day and day), on
//! the same workload, each backend in its own process (for peak memory),
//! run alternately, medians printed with annals' ratio to both.
//!
//!     cargo bench --bench compare                                  # 100,000 synthetic events
//!     ANNALS_BENCH_EVENTS=1000000 cargo bench --bench compare       # the targets' scale
//!     ANNALS_BENCH_WORKLOAD=gdelt cargo bench --bench compare       # real GDELT rows (../shared/data)
//!     ANNALS_BENCH_QUICK=1 cargo bench --bench compare              # CI: 2,000 events, one run
//!
//! No timing is asserted anywhere; the figures are for `docs/performance.md`.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use annals::{Annals, AsOf, At, Event, ImportFormat, Query};
use common::sqlite::{month_days, Sqlite};
use common::{crc32, dir_bytes, peak_rss_kib, Rng, Workload, BATCH};

const BACKENDS: [&str; 3] = ["raw", "sqlite", "annals"];
/// Single-event durable appends measured per backend.
const SINGLES: usize = 500;

/// One backend's figures, printed by its child process as `name value`
/// lines.
type Figures = BTreeMap<String, f64>;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The workload as JSON Lines, written once and streamed by every child.
fn write_workload(path: &Path, n: usize, kind: &str) {
    let mut f = BufWriter::new(File::create(path).unwrap());
    if kind == "gdelt" {
        // Real GDELT 2.0 rows, mapped by annals' importer, repeated with
        // fresh ids up to n.
        let root =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/external/gdelt/v2_raw");
        let dir = tempfile::tempdir().unwrap();
        let db = Annals::open(dir.path().join("db")).unwrap();
        for file in [
            "20151027220000.export.CSV",
            "20180326044500.export.CSV",
            "20191024143000.export.CSV",
        ] {
            db.import(ImportFormat::Gdelt)
                .file(root.join(file))
                .unwrap();
        }
        let events: Vec<Event> = db
            .query(&Query::new())
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect();
        for i in 0..n {
            let mut e = events[i % events.len()].clone();
            e.id = uuid::Uuid::from_u128(i as u128 + 1);
            writeln!(f, "{}", annals::event_to_line(&e, None)).unwrap();
        }
    } else {
        for batch in Workload::batches(7, n) {
            for e in batch {
                writeln!(f, "{}", annals::event_to_line(&e, None)).unwrap();
            }
        }
    }
    f.flush().unwrap();
}

/// The workload's events in batches, parsed outside any timing.
fn batches(path: &Path) -> impl Iterator<Item = Vec<Event>> {
    let mut lines = BufReader::new(File::open(path).unwrap()).lines();
    std::iter::from_fn(move || {
        let batch: Vec<Event> = lines
            .by_ref()
            .take(BATCH)
            .map(|l| annals::parse_event(&l.unwrap()).unwrap())
            .collect();
        (!batch.is_empty()).then_some(batch)
    })
}

/// Query picks, written by the parent beside the workload (so that no
/// child holds the workload in memory): `country month actor` lines drawn
/// from the workload's own events, so that every pick has answers.
fn write_picks(work: &Path, k: usize) {
    let events: Vec<Event> = batches(work).flatten().collect();
    let mut rng = Rng(99);
    let mut out = BufWriter::new(File::create(work.with_extension("picks")).unwrap());
    let mut written = 0;
    while written < k {
        let e = &events[rng.below(events.len())];
        if let (Some(c), Some(a)) = (e.countries.first(), e.actors.first()) {
            let month = &annals::format_micros(e.occurred.start())[..7];
            writeln!(out, "{c}\t{month}\t{}", a.name).unwrap();
            written += 1;
        }
    }
    out.flush().unwrap();
}

fn picks(work: &Path) -> (Vec<(String, String)>, Vec<String>) {
    let text = std::fs::read_to_string(work.with_extension("picks")).unwrap();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((
                (f.next()?.to_string(), f.next()?.to_string()),
                f.next()?.to_string(),
            ))
        })
        .unzip()
}

trait Backend {
    fn append(&mut self, batch: &[Event]);
    fn close(self: Box<Self>);
}

// ---------------------------------------------------------------- raw file

struct Raw {
    f: BufWriter<File>,
}

impl Raw {
    fn open(dir: &Path) -> Raw {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("raw.log"))
            .unwrap();
        Raw {
            f: BufWriter::new(f),
        }
    }

    /// Reads every record, checking its crc; `f` gets the records' bytes.
    fn scan(dir: &Path, mut f: impl FnMut(&[u8]) -> bool) -> usize {
        let mut r = BufReader::with_capacity(1 << 20, File::open(dir.join("raw.log")).unwrap());
        let mut head = [0u8; 8];
        let mut buf = Vec::new();
        let mut n = 0;
        while r.read_exact(&mut head).is_ok() {
            let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
            buf.resize(len, 0);
            if r.read_exact(&mut buf).is_err()
                || crc32(&buf) != u32::from_le_bytes(head[4..].try_into().unwrap())
            {
                break;
            }
            n += 1;
            if !f(&buf) {
                break;
            }
        }
        n
    }

    /// Full events matching a query: a full scan, as the raw file has no index.
    fn query(dir: &Path, q: &Query) -> usize {
        let mut hits = 0;
        Raw::scan(dir, |b| {
            let e = annals::parse_event(std::str::from_utf8(b).unwrap()).unwrap();
            hits += usize::from(q.matches(&e));
            true
        });
        hits
    }

    /// Events per country among the first `upto` records.
    fn view(dir: &Path, upto: usize) -> usize {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut seen = 0;
        Raw::scan(dir, |b| {
            let e = annals::parse_event(std::str::from_utf8(b).unwrap()).unwrap();
            for c in e.countries {
                *counts.entry(c).or_default() += 1;
            }
            seen += 1;
            seen < upto
        });
        counts.len()
    }
}

impl Backend for Raw {
    fn append(&mut self, batch: &[Event]) {
        for e in batch {
            let bytes = annals::event_to_line(e, None);
            self.f
                .write_all(&(bytes.len() as u32).to_le_bytes())
                .unwrap();
            self.f
                .write_all(&crc32(bytes.as_bytes()).to_le_bytes())
                .unwrap();
            self.f.write_all(bytes.as_bytes()).unwrap();
        }
        self.f.flush().unwrap();
        self.f.get_ref().sync_data().unwrap();
    }
    fn close(self: Box<Self>) {}
}

// ------------------------------------------------------------------ SQLite

impl Backend for Sqlite {
    fn append(&mut self, batch: &[Event]) {
        Sqlite::append(self, batch);
    }
    fn close(self: Box<Self>) {}
}

// ------------------------------------------------------------------ annals

struct AnnalsBackend(Annals);

impl Backend for AnnalsBackend {
    fn append(&mut self, batch: &[Event]) {
        self.0.append(batch.to_vec()).unwrap();
    }
    fn close(self: Box<Self>) {
        self.0.close().unwrap();
    }
}

fn open(backend: &str, dir: &Path) -> Box<dyn Backend> {
    match backend {
        "raw" => Box::new(Raw::open(dir)),
        "sqlite" => Box::new(Sqlite::open(dir)),
        _ => Box::new(AnnalsBackend(Annals::open(dir.join("annals.db")).unwrap())),
    }
}

fn disk(backend: &str, dir: &Path) -> u64 {
    match backend {
        "raw" => std::fs::metadata(dir.join("raw.log"))
            .map(|m| m.len())
            .unwrap_or(0),
        "sqlite" => ["sqlite.db", "sqlite.db-wal"]
            .iter()
            .map(|f| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0))
            .sum(),
        _ => dir_bytes(&dir.join("annals.db")),
    }
}

/// Opens a backend and makes it ready to answer (the raw file must scan
/// to find its valid end; SQLite replays its WAL on first use).
fn open_ready(backend: &str, dir: &Path) -> Duration {
    let t = Instant::now();
    match backend {
        "raw" => drop(Raw::scan(dir, |_| true)),
        "sqlite" => drop(Sqlite::open(dir)),
        _ => drop(Annals::open(dir.join("annals.db")).unwrap()),
    }
    t.elapsed()
}

/// The child: every figure of one backend, in a fresh process.
fn child(backend: &str, n: usize, work: &Path, dir: &Path, quick: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let mut out = Figures::new();
    let mut b = open(backend, dir);
    let mut t_append = Duration::ZERO;
    let mut singles = Vec::new();
    for batch in batches(work) {
        if singles.len() < SINGLES.min(n / 4) {
            // The first events go one at a time, each durable on its own.
            for e in batch {
                let t = Instant::now();
                b.append(std::slice::from_ref(&e));
                singles.push(t.elapsed());
            }
            continue;
        }
        let t = Instant::now();
        b.append(&batch);
        t_append += t.elapsed();
    }
    let batched = n - singles.len();
    out.insert(
        "append_ev_s".into(),
        batched as f64 / t_append.as_secs_f64(),
    );
    let single_total: Duration = singles.iter().sum();
    out.insert(
        "single_ev_s".into(),
        singles.len() as f64 / single_total.as_secs_f64(),
    );
    b.close();
    out.insert("disk_b_ev".into(), disk(backend, dir) as f64 / n as f64);
    out.insert("open_clean_ms".into(), ms(open_ready(backend, dir)));

    let (cm, actors) = picks(work);
    // A full scan per query: the raw file gets a few picks only.
    let k = if backend == "raw" {
        3.min(cm.len())
    } else {
        cm.len()
    };
    let mut rng = Rng(4242);
    let mut country = Vec::new();
    let mut actor = Vec::new();
    let mut view_head = Vec::new();
    let mut view_as_of = Vec::new();
    let rebuild;
    let verify;
    match backend {
        "raw" => {
            for i in 0..k {
                let (c, m) = &cm[i];
                let q = Query::new().country(c).from(m).unwrap().to(m).unwrap();
                let t = Instant::now();
                std::hint::black_box(Raw::query(dir, &q));
                country.push(t.elapsed());
                let t = Instant::now();
                std::hint::black_box(Raw::query(dir, &Query::new().actor(&actors[i])));
                actor.push(t.elapsed());
                let t = Instant::now();
                std::hint::black_box(Raw::view(dir, usize::MAX));
                view_head.push(t.elapsed());
                let s = 1 + rng.below(n);
                let t = Instant::now();
                std::hint::black_box(Raw::view(dir, s));
                view_as_of.push(t.elapsed());
            }
            let t = Instant::now();
            Raw::scan(dir, |b| {
                annals::parse_event(std::str::from_utf8(b).unwrap()).is_ok()
            });
            rebuild = t.elapsed();
            let t = Instant::now();
            Raw::scan(dir, |_| true);
            verify = t.elapsed();
        }
        "sqlite" => {
            let s = Sqlite::open(dir);
            for i in 0..k {
                let (c, m) = &cm[i];
                let (d0, d1) = month_days(m);
                let t = Instant::now();
                std::hint::black_box(s.events(
                    "SELECT e.body FROM by_country c JOIN events e ON e.seq = c.seq WHERE c.country = ?1 AND c.day BETWEEN ?2 AND ?3",
                    rusqlite::params![c, d0, d1],
                ));
                country.push(t.elapsed());
                let t = Instant::now();
                std::hint::black_box(s.events(
                    "SELECT e.body FROM by_actor a JOIN events e ON e.seq = a.seq WHERE a.actor = ?1",
                    rusqlite::params![annals::actor_key(&actors[i])],
                ));
                actor.push(t.elapsed());
            }
            // The by-country view's counts, first and last day: the part of
            // annals' row SQL gets from one GROUP BY.
            let view_sql = "SELECT country, count(*), min(day), max(day) FROM by_country WHERE seq <= ?1 GROUP BY country";
            for _ in 0..k.min(if quick { 5 } else { 21 }) {
                let t = Instant::now();
                let mut st = s.conn.prepare_cached(view_sql).unwrap();
                std::hint::black_box(
                    st.query_map([i64::MAX], |r| r.get::<_, String>(0))
                        .unwrap()
                        .count(),
                );
                view_head.push(t.elapsed());
                let seq = 1 + rng.below(n) as i64;
                let t = Instant::now();
                std::hint::black_box(
                    st.query_map([seq], |r| r.get::<_, String>(0))
                        .unwrap()
                        .count(),
                );
                view_as_of.push(t.elapsed());
            }
            let t = Instant::now();
            std::hint::black_box(s.events("SELECT body FROM events ORDER BY seq", []));
            rebuild = t.elapsed();
            let t = Instant::now();
            let ok: String = s
                .conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ok, "ok");
            verify = t.elapsed();
        }
        _ => {
            let db = Annals::open(dir.join("annals.db")).unwrap();
            for i in 0..k {
                let (c, m) = &cm[i];
                let q = Query::new().country(c).from(m).unwrap().to(m).unwrap();
                let t = Instant::now();
                std::hint::black_box(db.query(&q).unwrap().len());
                country.push(t.elapsed());
                let t = Instant::now();
                std::hint::black_box(db.query(&Query::new().actor(&actors[i])).unwrap().len());
                actor.push(t.elapsed());
            }
            // The first read after opening builds the rows; later reads at
            // the same head share them.
            let t = Instant::now();
            std::hint::black_box(db.by_country().unwrap().len());
            out.insert("view_head_cold_ms".into(), ms(t.elapsed()));
            for _ in 0..k.min(if quick { 5 } else { 21 }) {
                let t = Instant::now();
                std::hint::black_box(db.by_country().unwrap().len());
                view_head.push(t.elapsed());
                let seq = 1 + rng.below(n) as u64;
                let t = Instant::now();
                let r = db.reader(&At::head().as_of(AsOf::Seq(seq))).unwrap();
                std::hint::black_box(r.by_country().unwrap().len());
                view_as_of.push(t.elapsed());
            }
            let t = Instant::now();
            db.rebuild().unwrap();
            rebuild = t.elapsed();
            let t = Instant::now();
            db.verify().unwrap();
            verify = t.elapsed();
            db.close().unwrap();
        }
    }
    out.insert("country_p50_ms".into(), ms(pct(&mut country, 0.5)));
    out.insert("country_p99_ms".into(), ms(pct(&mut country, 0.99)));
    out.insert("actor_p50_ms".into(), ms(pct(&mut actor, 0.5)));
    out.insert("actor_p99_ms".into(), ms(pct(&mut actor, 0.99)));
    out.insert("view_head_ms".into(), ms(pct(&mut view_head, 0.5)));
    if !out.contains_key("view_head_cold_ms") {
        // The baselines have no cache: every read is a first read.
        out.insert("view_head_cold_ms".into(), ms(pct(&mut view_head, 0.5)));
    }
    out.insert("view_as_of_ms".into(), ms(pct(&mut view_as_of, 0.5)));
    out.insert("rebuild_ev_s".into(), n as f64 / rebuild.as_secs_f64());
    out.insert("verify_ev_s".into(), n as f64 / verify.as_secs_f64());
    out.insert(
        "open_after_kill_ms".into(),
        ms(open_after_kill(backend, work, dir)),
    );
    // Last, so that it covers everything above.
    out.insert("peak_rss_mib".into(), peak_rss_kib() as f64 / 1024.0);
    for (k, v) in out {
        println!("{k} {v}");
    }
}

/// Starts a writer on the backend's database, kills it (SIGKILL) in the
/// middle of appending, and times the next open.
fn open_after_kill(backend: &str, work: &Path, dir: &Path) -> Duration {
    let mut w = Command::new(std::env::current_exe().unwrap())
        .args([
            "--writer",
            backend,
            work.to_str().unwrap(),
            dir.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(w.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        lines.next();
    }
    w.kill().unwrap();
    w.wait().unwrap();
    open_ready(backend, dir)
}

/// The writer killed by `open_after_kill`: appends batches (fresh ids),
/// printing a line after each.
fn writer(backend: &str, work: &Path, dir: &Path) {
    let mut b = open(backend, dir);
    let mut next = 1u128 << 100;
    loop {
        for mut batch in batches(work) {
            for e in &mut batch {
                next += 1;
                e.id = uuid::Uuid::from_u128(next);
            }
            b.append(&batch);
            println!("batch");
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let quick = common::quick();
        child(
            &args[i + 1],
            args[i + 2].parse().unwrap(),
            Path::new(&args[i + 3]),
            Path::new(&args[i + 4]),
            quick,
        );
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--writer") {
        writer(
            &args[i + 1],
            Path::new(&args[i + 2]),
            Path::new(&args[i + 3]),
        );
        return;
    }
    let quick = common::quick();
    let n = common::env_count("ANNALS_BENCH_EVENTS", if quick { 2_000 } else { 100_000 });
    let kind = std::env::var("ANNALS_BENCH_WORKLOAD").unwrap_or_else(|_| "synthetic".into());
    let runs = common::env_count("ANNALS_BENCH_RUNS", if quick { 1 } else { 2 });
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("workload.jsonl");
    write_workload(&work, n, &kind);
    write_picks(&work, if quick { 20 } else { 200 });
    println!("annals compare: {n} {kind} events, batches of {BATCH}, {runs} run(s) per backend, alternating; medians");
    let mut all: BTreeMap<&str, Vec<Figures>> = BTreeMap::new();
    for run in 0..runs {
        for backend in BACKENDS {
            let out = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--child",
                    backend,
                    &n.to_string(),
                    work.to_str().unwrap(),
                    dir.path()
                        .join(format!("{backend}-{run}"))
                        .to_str()
                        .unwrap(),
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{backend}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let figures: Figures = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect();
            all.entry(backend).or_default().push(figures);
            let _ = std::fs::remove_dir_all(dir.path().join(format!("{backend}-{run}")));
        }
    }
    let median = |backend: &str, key: &str| {
        let mut v: Vec<f64> = all[backend]
            .iter()
            .filter_map(|f| f.get(key).copied())
            .collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // (figure, unit, higher is better)
    let rows = [
        ("append_ev_s", "ev/s, durable batches of 1,000", true),
        ("single_ev_s", "ev/s, single-event durable appends", true),
        (
            "country_p50_ms",
            "ms, country-month query p50 (full events)",
            false,
        ),
        ("country_p99_ms", "ms, country-month query p99", false),
        ("actor_p50_ms", "ms, actor query p50 (full events)", false),
        ("actor_p99_ms", "ms, actor query p99", false),
        (
            "view_head_ms",
            "ms, by-country view at the head (repeated reads)",
            false,
        ),
        (
            "view_head_cold_ms",
            "ms, by-country view at the head, first read after open",
            false,
        ),
        (
            "view_as_of_ms",
            "ms, by-country view as of a random seq",
            false,
        ),
        ("rebuild_ev_s", "ev/s, full rebuild / replay", true),
        ("verify_ev_s", "ev/s, verify / integrity check", true),
        ("disk_b_ev", "bytes per event on disk", false),
        ("peak_rss_mib", "MiB peak RSS (own process)", false),
        ("open_clean_ms", "ms, open after a clean shutdown", false),
        ("open_after_kill_ms", "ms, open after a kill", false),
    ];
    println!("| figure | raw file | SQLite | annals | annals / raw | annals / SQLite |");
    println!("|---|---|---|---|---|---|");
    for (key, unit, higher) in rows {
        let (r, s, a) = (
            median("raw", key),
            median("sqlite", key),
            median("annals", key),
        );
        // Ratios read "how many times the baseline annals achieves": for
        // times and sizes the baseline divided by annals.
        let ratio = |base: f64| if higher { a / base } else { base / a };
        println!(
            "| {unit} | {r:.3} | {s:.3} | {a:.3} | {:.2}x | {:.2}x |",
            ratio(r),
            ratio(s)
        );
    }
    let rebuild = n as f64 / median("annals", "rebuild_ev_s") * 1e3;
    println!(
        "annals view as of a random seq = {:.1}% of a full rebuild ({:.0} ms)",
        100.0 * median("annals", "view_as_of_ms") / rebuild,
        rebuild
    );
}
