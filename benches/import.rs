//! Import throughput: GDELT and ACLED rows into annals (durable batches,
//! every view kept current) side by side with loading the same rows into
//! SQLite (rusqlite, bundled) with indexes on country, actor and day, in
//! the same run; and annals' peak memory importing in a fresh process.
//!
//! The input is real: the GDELT 2.0 and ACLED files of `../shared/data`
//! when present, else the slices in `tests/fixtures`; their rows are
//! repeated with fresh ids up to `ANNALS_IMPORT_ROWS` (default 100,000;
//! `ANNALS_BENCH_QUICK=1` runs 2,000 so CI keeps the bench working; no
//! timing is asserted anywhere).
//!
//!     cargo bench --bench import
//!     ANNALS_IMPORT_ROWS=1000000 cargo bench --bench import

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use annals::{Annals, ImportFormat};
use common::peak_rss_kib;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real GDELT 2.0 rows available here (tab-separated lines).
fn gdelt_rows() -> (Vec<String>, &'static str) {
    let shared = root().join("../shared/data/external/gdelt/v2_raw");
    let files: Vec<PathBuf> = [
        "20151027220000.export.CSV",
        "20180326044500.export.CSV",
        "20191024143000.export.CSV",
    ]
    .iter()
    .map(|f| shared.join(f))
    .filter(|p| p.exists())
    .collect();
    let (files, origin) = if files.is_empty() {
        (
            vec![root().join("tests/fixtures/gdelt/v2_20191024143000.slice.CSV")],
            "tests/fixtures slice",
        )
    } else {
        (files, "../shared/data GDELT 2.0 raw files")
    };
    let rows = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    (rows, origin)
}

/// The real ACLED rows available here (the 2022 acledR file), with header.
fn acled_rows() -> (String, Vec<csv::StringRecord>, &'static str) {
    let shared =
        root().join("../shared/data/external/acled/acledR_acled_old_deletion_dummy_2022H1.csv");
    let (path, origin) = if shared.exists() {
        (shared, "../shared/data acledR 2022 file")
    } else {
        (
            root().join("tests/fixtures/acled/acled_2022_schema.updated.csv"),
            "tests/fixtures hand-written rows",
        )
    };
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().collect::<Vec<_>>().join(",");
    let rows = r.records().map(Result::unwrap).collect();
    (header, rows, origin)
}

/// Writes `n` GDELT rows, cycling the real ones with fresh GLOBALEVENTIDs.
fn write_gdelt(path: &Path, rows: &[String], n: usize) {
    let mut f = BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let row = &rows[i % rows.len()];
        let rest = row.split_once('\t').map_or("", |(_, r)| r);
        writeln!(f, "{}\t{rest}", 1_000_000_000 + i).unwrap();
    }
    f.flush().unwrap();
}

/// Writes `n` ACLED rows, cycling the real ones with fresh event ids.
fn write_acled(path: &Path, header: &str, rows: &[csv::StringRecord], n: usize) {
    let mut w = csv::Writer::from_path(path).unwrap();
    let names: Vec<&str> = header.split(',').collect();
    w.write_record(&names).unwrap();
    let id_col = names.iter().position(|c| *c == "event_id_cnty").unwrap();
    for i in 0..n {
        let row = &rows[i % rows.len()];
        let fields: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == id_col {
                    format!("BEN{i}")
                } else {
                    v.to_string()
                }
            })
            .collect();
        w.write_record(&fields).unwrap();
    }
    w.flush().unwrap();
}

/// SQLite with the three indexes (country + day, actor + day, day), rows
/// committed 1,000 per transaction like annals' batches.
struct Sqlite {
    conn: rusqlite::Connection,
}

impl Sqlite {
    fn open(path: &Path, synchronous: &str) -> Sqlite {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous};
             CREATE TABLE events(id TEXT PRIMARY KEY, day INTEGER, kind TEXT, body TEXT);
             CREATE TABLE by_country(country TEXT, day INTEGER, event TEXT);
             CREATE TABLE by_actor(actor TEXT, day INTEGER, event TEXT);
             CREATE INDEX country_day ON by_country(country, day);
             CREATE INDEX actor_day ON by_actor(actor, day);
             CREATE INDEX day ON events(day);"
        ))
        .unwrap();
        Sqlite { conn }
    }

    /// Loads rows already split into (id, day, kind, countries, actors, body).
    fn load(&mut self, rows: impl Iterator<Item = Row>) {
        let mut batch = Vec::with_capacity(1000);
        for r in rows {
            batch.push(r);
            if batch.len() == 1000 {
                self.commit(&mut batch);
            }
        }
        self.commit(&mut batch);
    }

    fn commit(&mut self, batch: &mut Vec<Row>) {
        let tx = self.conn.transaction().unwrap();
        {
            let mut ev = tx
                .prepare_cached("INSERT OR REPLACE INTO events VALUES (?1, ?2, ?3, ?4)")
                .unwrap();
            let mut c = tx
                .prepare_cached("INSERT INTO by_country VALUES (?1, ?2, ?3)")
                .unwrap();
            let mut a = tx
                .prepare_cached("INSERT INTO by_actor VALUES (?1, ?2, ?3)")
                .unwrap();
            for r in batch.iter() {
                ev.execute(rusqlite::params![r.id, r.day, r.kind, r.body])
                    .unwrap();
                for cc in &r.countries {
                    c.execute(rusqlite::params![cc, r.day, r.id]).unwrap();
                }
                for name in &r.actors {
                    a.execute(rusqlite::params![name, r.day, r.id]).unwrap();
                }
            }
        }
        tx.commit().unwrap();
        batch.clear();
    }
}

struct Row {
    id: String,
    day: i64,
    kind: String,
    countries: Vec<String>,
    actors: Vec<String>,
    body: String,
}

/// What a SQLite user would do with a GDELT file: split on tabs, keep the
/// indexed columns and the whole row.
fn gdelt_sqlite_rows(path: &Path) -> impl Iterator<Item = Row> {
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    f.lines().map(|l| {
        let line = l.unwrap();
        let c: Vec<&str> = line.split('\t').collect();
        Row {
            id: c[0].to_string(),
            day: c[1].parse().unwrap_or(0),
            kind: c[28].to_string(),
            countries: [c[53], c[7], c[17]]
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string())
                .collect(),
            actors: [c[6], c[16]]
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.to_lowercase())
                .collect(),
            body: line.clone(),
        }
    })
}

fn acled_sqlite_rows(path: &Path) -> impl Iterator<Item = Row> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let col = move |n: &str| h.iter().position(|c| c == n).unwrap();
    let (id, date, sub, country) = (
        col("event_id_cnty"),
        col("event_date"),
        col("sub_event_type"),
        col("country"),
    );
    let actor_cols = [
        col("actor1"),
        col("assoc_actor_1"),
        col("actor2"),
        col("assoc_actor_2"),
    ];
    r.into_records().map(move |rec| {
        let rec = rec.unwrap();
        Row {
            id: rec[id].to_string(),
            day: rec[date].replace('-', "").parse().unwrap_or(0),
            kind: rec[sub].to_string(),
            countries: vec![rec[country].to_string()],
            actors: actor_cols
                .iter()
                .flat_map(|&c| {
                    rec[c]
                        .split(';')
                        .map(|s| s.trim().to_lowercase())
                        .collect::<Vec<_>>()
                })
                .filter(|s| !s.is_empty())
                .collect(),
            body: rec.iter().collect::<Vec<_>>().join(","),
        }
    })
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn annals_import(db: &Path, format: ImportFormat, file: &Path) -> Duration {
    let db = Annals::open(db).unwrap();
    let t = Instant::now();
    let s = db.import(format).file(file).unwrap();
    let d = t.elapsed();
    assert_eq!(s.rejected, 0);
    db.close().unwrap();
    d
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        // A fresh process: import one file, print peak RSS in KiB.
        let (db, file) = (Path::new(&args[i + 1]), Path::new(&args[i + 2]));
        annals_import(db, ImportFormat::Gdelt, file);
        println!("{}", peak_rss_kib());
        return;
    }
    let quick = common::quick();
    let n = common::env_count("ANNALS_IMPORT_ROWS", if quick { 2_000 } else { 100_000 });
    let dir = tempfile::tempdir().unwrap();
    let (grows, gorigin) = gdelt_rows();
    let (aheader, arows, aorigin) = acled_rows();
    let gfile = dir.path().join("gdelt.export.CSV");
    let afile = dir.path().join("acled.csv");
    write_gdelt(&gfile, &grows, n);
    let an = n.min(if quick { n } else { 100_000 });
    write_acled(&afile, &aheader, &arows, an);
    println!("annals import bench: {n} GDELT rows ({} real rows from {gorigin}), {an} ACLED rows ({} real rows from {aorigin})", grows.len(), arows.len());

    // Alternate the backends, twice, and report the medians per backend.
    let runs = if quick { 1 } else { 2 };
    for (name, format, file, rows) in [
        ("GDELT", ImportFormat::Gdelt, &gfile, n),
        ("ACLED", ImportFormat::Acled, &afile, an),
    ] {
        let mut a = Vec::new();
        let mut s_normal = Vec::new();
        let mut s_full = Vec::new();
        for run in 0..runs {
            let db = dir.path().join(format!("{name}-annals-{run}"));
            a.push(annals_import(&db, format, file));
            for (sync, out) in [("NORMAL", &mut s_normal), ("FULL", &mut s_full)] {
                let p = dir.path().join(format!("{name}-sqlite-{sync}-{run}.db"));
                let t = Instant::now();
                let mut s = Sqlite::open(&p, sync);
                match format {
                    ImportFormat::Gdelt => s.load(gdelt_sqlite_rows(file)),
                    _ => s.load(acled_sqlite_rows(file)),
                }
                drop(s);
                out.push(t.elapsed());
            }
        }
        let med = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (a, sn, sf) = (med(a), med(s_normal), med(s_full));
        println!(
            "{name:5} annals {:>8.0} rows/s | SQLite WAL synchronous=NORMAL {:>8.0} rows/s (annals {:.2}x) | synchronous=FULL {:>8.0} rows/s (annals {:.2}x)",
            rate(rows, a),
            rate(rows, sn),
            sn.as_secs_f64() / a.as_secs_f64(),
            rate(rows, sf),
            sf.as_secs_f64() / a.as_secs_f64(),
        );
    }

    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--child",
            dir.path().join("rss").to_str().unwrap(),
            gfile.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let kib: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    println!(
        "peak RSS importing {n} GDELT rows in a fresh process: {} MiB",
        kib / 1024
    );
}
