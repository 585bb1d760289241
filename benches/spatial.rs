//! Spatial queries at scale: synthetic events (the compare bench's
//! generator) placed around cities (Zipf-skewed, most within some 20 km
//! of a centre), a share given only as a settlement, ADMIN2, ADMIN1 or
//! country centroid, some without a place. Side by side in one run:
//!
//! - ingest with places against the same events whose places have only a
//!   name (no point: no place list, no by-place cells), in chunks, the
//!   order alternating per chunk: the cost of the spatial index and the
//!   by-place view;
//! - a bounding-box query and a 50 km radius query, p50 and p99 over the
//!   same picks, in annals (fresh process, full events returned) and in
//!   SQLite's R*Tree module (bundled SQLite: `rtree(id, minx, maxx, miny,
//!   maxy, +lat, +lon, +prec_km)` joined to the events' JSON; the box
//!   pre-filter, then the exact test; the same precision rule as annals'
//!   default, so both return the same events, checked);
//! - the by-place view at the head in a fresh process.
//!
//! Run with:
//!
//!     cargo bench --bench spatial                              # 10M events
//!     ANNALS_SPATIAL_N=1000000 cargo bench --bench spatial     # fewer
//!     ANNALS_SPATIAL_SQLITE=0 cargo bench --bench spatial      # annals only
//!     ANNALS_BENCH_QUICK=1 cargo bench --bench spatial         # CI: 20k
//!
//! No timing is asserted; the figures are for `docs/performance.md`.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use annals::{Annals, Area, Event, ImportFormat, Location, PlacePrecision, Query};
use common::{peak_rss_kib, Rng, Workload, Zipf};

type Figures = BTreeMap<String, f64>;

const PICKS: usize = 200;
const CITIES: usize = 400;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

/// Where the synthetic events happen: cities, each with its ADMIN2 and
/// ADMIN1 centroids nearby and its country's centroid.
struct Places {
    rng: Rng,
    cities: Vec<(f64, f64)>,
    weight: Zipf,
}

impl Places {
    fn new(seed: u64) -> Places {
        let mut rng = Rng(seed | 1);
        let cities = (0..CITIES)
            .map(|_| (-40.0 + 100.0 * rng.unit(), -120.0 + 270.0 * rng.unit()))
            .collect();
        Places {
            rng,
            cities,
            weight: Zipf::new(CITIES),
        }
    }

    /// A city's centroids: (ADMIN2, ADMIN1, country).
    fn centroids(&self, c: usize) -> [(f64, f64); 3] {
        let (lat, lon) = self.cities[c];
        let shift = |k: usize, d: f64| {
            let a = (c * 7 + k) as f64;
            (lat + d * a.sin(), lon + d * a.cos())
        };
        [shift(1, 0.2), shift(2, 0.8), shift(3, 3.0)]
    }

    fn place(&mut self) -> Option<Location> {
        if self.rng.below(20) == 0 {
            return None;
        }
        let c = self.weight.sample(&mut self.rng);
        let (lat, lon) = self.cities[c];
        let [adm2, adm1, country] = self.centroids(c);
        let r = &mut self.rng;
        let jitter = |r: &mut Rng, d: f64| (r.unit() + r.unit() + r.unit() - 1.5) * d;
        let (p, (lat, lon)) = match r.below(100) {
            0..=59 => (
                PlacePrecision::Exact,
                (lat + jitter(r, 0.3), lon + jitter(r, 0.4)),
            ),
            60..=74 => (
                PlacePrecision::Near,
                (lat + jitter(r, 0.02), lon + jitter(r, 0.02)),
            ),
            75..=79 => (PlacePrecision::Admin2, adm2),
            80..=91 => (PlacePrecision::Admin1, adm1),
            _ => (PlacePrecision::Country, country),
        };
        Some(Location {
            name: Some(format!("city {c}")),
            lat: Some(lat.clamp(-90.0, 90.0)),
            lon: Some(lon.clamp(-180.0, 180.0)),
            precision: Some(p),
            ..Default::default()
        })
    }

    /// A box around a busy city, 0.1 to 1 degree from its centre to each
    /// side, and a point near a city for the radius query.
    fn picks(&mut self) -> Pick {
        let r = &mut self.rng;
        let c = self.weight.sample(r);
        let (lat, lon) = self.cities[c];
        let (h, w) = (0.1 + 0.9 * r.unit(), 0.1 + 0.9 * r.unit());
        let (dy, dx) = ((r.unit() - 0.5) * 0.5, (r.unit() - 0.5) * 0.5);
        let c2 = self.weight.sample(r);
        let (lat2, lon2) = self.cities[c2];
        (
            (lon + dx - w, lat + dy - h, lon + dx + w, lat + dy + h),
            (lat2 + (r.unit() - 0.5) * 0.2, lon2 + (r.unit() - 0.5) * 0.2),
        )
    }
}

/// A box (west, south, east, north) and a point (lat, lon).
type Pick = ((f64, f64, f64, f64), (f64, f64));

fn read_picks(work: &Path) -> Vec<Pick> {
    std::fs::read_to_string(work.join("picks"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            ((v[0], v[1], v[2], v[3]), (v[4], v[5]))
        })
        .collect()
}

const RADIUS_KM: f64 = 50.0;

fn report(out: &Figures) {
    for (k, v) in out {
        println!("{k} {v}");
    }
}

/// Times every pick's two queries: p50 and p99 of each, and the hits.
fn time_picks(
    work: &Path,
    mut bbox: impl FnMut((f64, f64, f64, f64)) -> usize,
    mut near: impl FnMut((f64, f64)) -> usize,
) -> Figures {
    let (mut b, mut n) = (Vec::new(), Vec::new());
    let (mut bhits, mut nhits) = (0usize, 0usize);
    for (bx, pt) in read_picks(work) {
        let t = Instant::now();
        bhits += bbox(bx);
        b.push(ms(t.elapsed()));
        let t = Instant::now();
        nhits += near(pt);
        n.push(ms(t.elapsed()));
    }
    let mut out = Figures::new();
    out.insert("bbox_p50".into(), pct(&mut b, 0.5));
    out.insert("bbox_p99".into(), pct(&mut b, 0.99));
    out.insert("near_p50".into(), pct(&mut n, 0.5));
    out.insert("near_p99".into(), pct(&mut n, 0.99));
    out.insert("bbox_hits".into(), bhits as f64);
    out.insert("near_hits".into(), nhits as f64);
    out
}

fn sqlite_open(work: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(work.join("sqlite.db")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE IF NOT EXISTS events(seq INTEGER PRIMARY KEY, body TEXT);
         CREATE VIRTUAL TABLE IF NOT EXISTS places USING rtree(id, minx, maxx, miny, maxy, +lat, +lon, +prec_km);",
    )
    .unwrap();
    conn
}

fn child(what: &str, work: &Path) {
    let mut out = Figures::new();
    match what {
        "import-places" | "import-bare" => {
            let (db, file) = if what == "import-places" {
                ("places.db", "places.jsonl")
            } else {
                ("bare.db", "bare.jsonl")
            };
            let t = Instant::now();
            let db = Annals::open(work.join(db)).unwrap();
            let s = db
                .import(ImportFormat::Jsonl)
                .file(work.join(file))
                .unwrap();
            db.close().unwrap();
            out.insert("secs".into(), t.elapsed().as_secs_f64());
            out.insert("appended".into(), s.appended as f64);
        }
        "queries" => {
            let t = Instant::now();
            let db = Annals::open(work.join("places.db")).unwrap();
            out.insert("open_ms".into(), ms(t.elapsed()));
            let run = |q: Query| {
                let mut sink = std::io::sink();
                let rows = db.query(&q).unwrap();
                for r in &rows {
                    writeln!(sink, "{}", r.to_json()).unwrap();
                }
                rows.len()
            };
            out.extend(time_picks(
                work,
                |(w, s, e, n)| run(Query::new().bbox(&format!("{w},{s},{e},{n}")).unwrap()),
                |(lat, lon)| run(Query::new().near(lat, lon, RADIUS_KM).unwrap()),
            ));
        }
        "view" => {
            let t = Instant::now();
            let db = Annals::open(work.join("places.db")).unwrap();
            let rows = db.by_place(annals::PlaceLevel::Cell, None).unwrap();
            out.insert("ms".into(), ms(t.elapsed()));
            out.insert("rows".into(), rows.len() as f64);
        }
        "sqlite-import" => {
            let mut conn = sqlite_open(work);
            let mut seq: i64 = conn
                .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))
                .unwrap();
            let t = Instant::now();
            let mut lines =
                std::io::BufReader::new(File::open(work.join("places.jsonl")).unwrap()).lines();
            loop {
                let batch: Vec<String> = lines
                    .by_ref()
                    .take(common::BATCH)
                    .map(|l| l.unwrap())
                    .collect();
                if batch.is_empty() {
                    break;
                }
                let tx = conn.transaction().unwrap();
                {
                    let mut ev = tx
                        .prepare_cached("INSERT INTO events VALUES (?1, ?2)")
                        .unwrap();
                    let mut pl = tx
                        .prepare_cached(
                            "INSERT INTO places VALUES (?1, ?2, ?2, ?3, ?3, ?3, ?2, ?4)",
                        )
                        .unwrap();
                    for line in &batch {
                        let e = annals::parse_event(line).unwrap();
                        seq += 1;
                        ev.execute(rusqlite::params![seq, line]).unwrap();
                        if let Some((lat, lon, p)) = point(&e) {
                            pl.execute(rusqlite::params![seq, lon, lat, p.radius_km()])
                                .unwrap();
                        }
                    }
                }
                tx.commit().unwrap();
            }
            out.insert("secs".into(), t.elapsed().as_secs_f64());
        }
        "sqlite-queries" => {
            let conn = sqlite_open(work);
            let rows = |sql: &str, params: &[f64], keep: &dyn Fn(f64, f64) -> bool| -> usize {
                let mut st = conn.prepare_cached(sql).unwrap();
                let it = st
                    .query_map(rusqlite::params_from_iter(params), |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, f64>(1)?,
                            r.get::<_, f64>(2)?,
                        ))
                    })
                    .unwrap();
                it.map(Result::unwrap)
                    .filter(|(_, lat, lon)| keep(*lat, *lon))
                    .filter(|(body, _, _)| annals::parse_event(body).is_ok())
                    .count()
            };
            // Overlap with the box (R*Tree coordinates are 32-bit, rounded
            // outwards), then the exact test on the stored point.
            const SQL: &str =
                "SELECT e.body, p.lat, p.lon FROM places p JOIN events e ON e.seq = p.id \
                 WHERE p.maxx >= ?1 AND p.minx <= ?3 AND p.maxy >= ?2 AND p.miny <= ?4 \
                 AND p.lon BETWEEN ?1 AND ?3 AND p.lat BETWEEN ?2 AND ?4 AND p.prec_km <= ?5";
            out = time_picks(
                work,
                |(w, s, e, n)| {
                    let scale = Area::BBox {
                        west: w,
                        south: s,
                        east: e,
                        north: n,
                    }
                    .scale_km();
                    rows(SQL, &[w, s, e, n, scale], &|_, _| true)
                },
                |(lat, lon)| {
                    let dlat = RADIUS_KM / 111.195;
                    let dlon = dlat / (lat.abs() + dlat).min(89.0).to_radians().cos();
                    rows(
                        SQL,
                        &[lon - dlon, lat - dlat, lon + dlon, lat + dlat, RADIUS_KM],
                        &|la, lo| annals::distance_km(lat, lon, la, lo) <= RADIUS_KM,
                    )
                },
            );
        }
        other => panic!("unknown child {other}"),
    }
    out.insert("rss_mib".into(), peak_rss_kib() as f64 / 1024.0);
    report(&out);
}

fn point(e: &Event) -> Option<(f64, f64, PlacePrecision)> {
    let l = e.location.as_ref()?;
    Some((l.lat?, l.lon?, l.precision.unwrap_or(PlacePrecision::Exact)))
}

fn run(what: &str, work: &Path) -> Figures {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", what, work.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    let quick = common::quick();
    let n = common::env_count("ANNALS_SPATIAL_N", if quick { 20_000 } else { 10_000_000 });
    let chunk = common::env_count("ANNALS_SPATIAL_CHUNK", 1_000_000)
        .min(n)
        .max(1);
    let sqlite = std::env::var("ANNALS_SPATIAL_SQLITE").map_or(true, |v| v != "0");
    let tmp = tempfile::tempdir().unwrap();
    let work = std::env::var("ANNALS_SPATIAL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    std::fs::create_dir_all(&work).unwrap();
    println!(
        "annals spatial: {n} events in chunks of {chunk}, {CITIES} cities; {PICKS} boxes and \
         {PICKS} {RADIUS_KM} km discs; fresh processes"
    );
    let mut gen = Workload::new(11);
    let mut places = Places::new(12);
    let (mut with, mut without, mut sql_secs) = (0.0, 0.0, 0.0);
    let mut done = 0;
    let mut round = 0;
    while done < n {
        let k = chunk.min(n - done);
        {
            let mut a = BufWriter::new(File::create(work.join("places.jsonl")).unwrap());
            let mut b = BufWriter::new(File::create(work.join("bare.jsonl")).unwrap());
            for _ in 0..k {
                let mut e = gen.event();
                e.location = places.place();
                writeln!(a, "{}", annals::event_to_line(&e, None)).unwrap();
                if let Some(l) = &mut e.location {
                    (l.lat, l.lon, l.precision) = (None, None, None);
                }
                writeln!(b, "{}", annals::event_to_line(&e, None)).unwrap();
            }
        }
        // Alternate which goes first, so that neither always meets a
        // warmer or busier machine.
        let order = if round % 2 == 0 {
            ["import-places", "import-bare"]
        } else {
            ["import-bare", "import-places"]
        };
        for what in order {
            let f = run(what, &work);
            if what == "import-places" {
                with += f["secs"];
            } else {
                without += f["secs"];
            }
        }
        if sqlite {
            sql_secs += run("sqlite-import", &work)["secs"];
        }
        done += k;
        round += 1;
        println!(
            "  {done}: ingest with places {:.0} ev/s, without {:.0} ev/s",
            done as f64 / with,
            done as f64 / without
        );
    }
    if std::env::var("ANNALS_SPATIAL_DIR").is_err() {
        let _ = std::fs::remove_file(work.join("places.jsonl"));
        let _ = std::fs::remove_file(work.join("bare.jsonl"));
    }
    {
        let mut f = BufWriter::new(File::create(work.join("picks")).unwrap());
        for _ in 0..PICKS {
            let ((w, s, e, nn), (lat, lon)) = places.picks();
            writeln!(f, "{w},{s},{e},{nn},{lat},{lon}").unwrap();
        }
    }
    let a = run("queries", &work);
    let mut views: Vec<f64> = (0..5).map(|_| run("view", &work)["ms"]).collect();
    let view_rows = run("view", &work)["rows"];
    println!("| events | ingest with / without places ev/s | slowdown | bbox p50 / p99 ms | 50 km p50 / p99 ms | hits bbox / 50 km | by-place view ms (fresh process, median of 5; rows) | SQLite R*Tree ingest ev/s | SQLite bbox p50 / p99 ms | SQLite 50 km p50 / p99 ms | SQLite hits |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let s = if sqlite {
        Some(run("sqlite-queries", &work))
    } else {
        None
    };
    let f = |x: f64| format!("{x:.2}");
    println!(
        "| {n} | {:.0} / {:.0} | {:.1}% | {} / {} | {} / {} | {} / {} | {} ({view_rows}) | {} | {} | {} | {} |",
        n as f64 / with,
        n as f64 / without,
        (with / without - 1.0) * 100.0,
        f(a["bbox_p50"]),
        f(a["bbox_p99"]),
        f(a["near_p50"]),
        f(a["near_p99"]),
        a["bbox_hits"],
        a["near_hits"],
        f(pct(&mut views, 0.5)),
        s.as_ref()
            .map_or("-".into(), |_| format!("{:.0}", n as f64 / sql_secs)),
        s.as_ref()
            .map_or("-".into(), |s| format!("{} / {}", f(s["bbox_p50"]), f(s["bbox_p99"]))),
        s.as_ref()
            .map_or("-".into(), |s| format!("{} / {}", f(s["near_p50"]), f(s["near_p99"]))),
        s.as_ref()
            .map_or("-".into(), |s| format!("{} / {}", s["bbox_hits"], s["near_hits"])),
    );
    if let Some(s) = &s {
        // Both answer the same question. annals tests the point it keeps
        // (to 7.5 cm), SQLite the given one: a point within centimetres
        // of an edge may differ, about one in millions; more is a bug.
        let off = (a["bbox_hits"] - s["bbox_hits"]).abs() + (a["near_hits"] - s["near_hits"]).abs();
        println!(
            "annals and SQLite differ by {off} of {} hits",
            s["bbox_hits"] + s["near_hits"]
        );
        assert!(
            off <= 1.0 + (s["bbox_hits"] + s["near_hits"]) * 1e-5,
            "annals and SQLite disagree"
        );
    }
}
