//! Scaling: one database grown in steps (by default to 1M, 3M and 10M
//! synthetic events, the compare bench's generator), and after each step,
//! each figure in a fresh process: open + head, peak RSS of read-only
//! commands, country + month and actor queries (p50, p99), the by-country
//! view at the head, the busiest country and month (the largest result a
//! country + month query gives: cost per returned event and peak RSS),
//! the step's ingest rate and peak RSS, disk per event.
//! SQLite gets the same events and answers the same queries.
//!
//!     cargo bench --bench scale                                    # 1M, 3M, 10M (about an hour, most of it SQLite)
//!     ANNALS_SCALE_STEPS=100000,300000 cargo bench --bench scale   # other steps
//!     ANNALS_SCALE_SQLITE=0 cargo bench --bench scale              # annals only
//!     ANNALS_BENCH_QUICK=1 cargo bench --bench scale               # CI: 20k, 50k
//!
//! Children are this executable with `--child`, so that each figure's
//! memory is its own. No timing is asserted; the figures are for
//! `docs/performance.md`.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use annals::{Annals, ImportFormat, Query};
use common::sqlite::{month_days, Sqlite};
use common::{dir_bytes, peak_rss_kib, Rng, Workload};

type Figures = BTreeMap<String, f64>;

/// Query picks per step.
const PICKS: usize = 200;
/// Runs of each open/view child (median taken).
const RUNS: usize = 5;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn report(out: &Figures) {
    for (k, v) in out {
        println!("{k} {v}");
    }
}

/// `country month actor` lines, one per pick.
fn read_picks(work: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(work.join("picks"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((
                f.next()?.to_string(),
                f.next()?.to_string(),
                f.next()?.to_string(),
            ))
        })
        .collect()
}

/// Times both queries of every pick: p50 and p99 of each, and the rows.
fn time_picks(
    work: &Path,
    mut country_month: impl FnMut(&str, &str) -> usize,
    mut actor: impl FnMut(&str) -> usize,
) -> Figures {
    let (mut country, mut actors, mut hits) = (Vec::new(), Vec::new(), 0usize);
    for (c, m, a) in read_picks(work) {
        let t = Instant::now();
        hits += country_month(&c, &m);
        country.push(ms(t.elapsed()));
        let t = Instant::now();
        hits += actor(&a);
        actors.push(ms(t.elapsed()));
    }
    let mut out = Figures::new();
    out.insert("country_p50".into(), pct(&mut country, 0.5));
    out.insert("country_p99".into(), pct(&mut country, 0.99));
    out.insert("actor_p50".into(), pct(&mut actors, 0.5));
    out.insert("actor_p99".into(), pct(&mut actors, 0.99));
    out.insert("hits".into(), hits as f64);
    out
}

fn child(what: &str, work: &Path) {
    let db_path = work.join("annals.db");
    let mut out = Figures::new();
    match what {
        "import" => {
            let t = Instant::now();
            let db = Annals::open(&db_path).unwrap();
            let s = db
                .import(ImportFormat::Jsonl)
                .file(work.join("step.jsonl"))
                .unwrap();
            db.close().unwrap();
            out.insert("secs".into(), t.elapsed().as_secs_f64());
            out.insert("appended".into(), s.appended as f64);
        }
        "open" => {
            let t = Instant::now();
            let db = Annals::open(&db_path).unwrap();
            std::hint::black_box(db.head());
            out.insert("ms".into(), ms(t.elapsed()));
        }
        "view" => {
            let t = Instant::now();
            let db = Annals::open(&db_path).unwrap();
            let rows = db.by_country().unwrap();
            out.insert("ms".into(), ms(t.elapsed()));
            out.insert("rows".into(), rows.len() as f64);
        }
        "row" => {
            // One country's row and one actor's row, read alone in a
            // fresh process (the open is timed apart).
            let pick = read_picks(work).into_iter().next().unwrap();
            let t = Instant::now();
            let db = Annals::open(&db_path).unwrap();
            out.insert("open_ms".into(), ms(t.elapsed()));
            let t = Instant::now();
            let row = db.country(&pick.0).unwrap();
            out.insert("country_ms".into(), ms(t.elapsed()));
            let t = Instant::now();
            let actor = db.actor(&pick.2).unwrap();
            out.insert("actor_ms".into(), ms(t.elapsed()));
            out.insert(
                "found".into(),
                (row.is_some() as u8 + actor.is_some() as u8) as f64,
            );
        }
        "asof" => {
            // The by-country view as of a random seq, in a fresh process.
            let db = Annals::open(&db_path).unwrap();
            let head = db.head().seq;
            let seq = 1 + Rng(std::process::id() as u64 | 1).below(head as usize) as u64;
            let t = Instant::now();
            let at = annals::At {
                branch: None,
                as_of: Some(annals::AsOf::Seq(seq)),
            };
            let rows = db.reader(&at).unwrap().by_country().unwrap();
            out.insert("ms".into(), ms(t.elapsed()));
            out.insert("rows".into(), rows.len() as f64);
        }
        "rebuild" => {
            let db = Annals::open(&db_path).unwrap();
            let t = Instant::now();
            db.rebuild().unwrap();
            out.insert("secs".into(), t.elapsed().as_secs_f64());
        }
        "queries" => {
            let db = Annals::open(&db_path).unwrap();
            out = time_picks(
                work,
                |c, m| {
                    let q = Query::new().country(c).from(m).unwrap().to(m).unwrap();
                    db.query(&q).unwrap().len()
                },
                |a| db.query(&Query::new().actor(a)).unwrap().len(),
            );
        }
        "busiest" => {
            // The busiest country and month of the database (written by the
            // parent): every event printed as the CLI prints it.
            let pick = std::fs::read_to_string(work.join("busiest")).unwrap();
            let (c, m) = pick.trim().split_once('\t').unwrap();
            let t = Instant::now();
            let db = Annals::open(&db_path).unwrap();
            let q = Query::new().country(c).from(m).unwrap().to(m).unwrap();
            let rows = db.query(&q).unwrap();
            let mut sink = std::io::sink();
            for r in &rows {
                writeln!(sink, "{}", r.to_json()).unwrap();
            }
            let took = t.elapsed();
            out.insert("ms".into(), ms(took));
            out.insert("rows".into(), rows.len() as f64);
            out.insert(
                "us_per_row".into(),
                took.as_secs_f64() * 1e6 / rows.len().max(1) as f64,
            );
        }
        "sqlite-import" => {
            let mut s = Sqlite::open(work);
            let t = Instant::now();
            let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
                File::open(work.join("step.jsonl")).unwrap(),
            ));
            loop {
                let batch: Vec<annals::Event> = lines
                    .by_ref()
                    .take(common::BATCH)
                    .map(|l| annals::parse_event(&l.unwrap()).unwrap())
                    .collect();
                if batch.is_empty() {
                    break;
                }
                s.append(&batch);
            }
            out.insert("secs".into(), t.elapsed().as_secs_f64());
        }
        "sqlite-queries" => {
            let s = Sqlite::open(work);
            out = time_picks(
                work,
                |c, m| {
                    let (d0, d1) = month_days(m);
                    s.events(
                        "SELECT e.body FROM by_country c JOIN events e ON e.seq = c.seq \
                         WHERE c.country = ?1 AND c.day BETWEEN ?2 AND ?3",
                        rusqlite::params![c, d0, d1],
                    )
                },
                |a| {
                    s.events(
                        "SELECT e.body FROM by_actor a JOIN events e ON e.seq = a.seq WHERE a.actor = ?1",
                        rusqlite::params![annals::actor_key(a)],
                    )
                },
            );
        }
        "writer" => {
            // Appends fresh events (durable batches) until killed, printing
            // how many it has written after each batch.
            let db = Annals::open(&db_path).unwrap();
            let mut w = Workload::new(99);
            let mut written = 0usize;
            loop {
                let batch: Vec<annals::Event> = (0..common::BATCH).map(|_| w.event()).collect();
                db.append(batch).unwrap();
                written += common::BATCH;
                println!("{written}");
            }
        }
        other => panic!("unknown child {other}"),
    }
    out.insert("rss_mib".into(), peak_rss_kib() as f64 / 1024.0);
    report(&out);
}

/// Runs a child and parses its `name value` lines.
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

/// The median of a figure over several runs of a child.
fn median_of(what: &str, work: &Path, runs: usize, key: &str) -> (f64, f64) {
    let figs: Vec<Figures> = (0..runs).map(|_| run(what, work)).collect();
    let mut v: Vec<f64> = figs.iter().map(|f| f[key]).collect();
    let mut rss: Vec<f64> = figs.iter().map(|f| f["rss_mib"]).collect();
    (pct(&mut v, 0.5), pct(&mut rss, 0.5))
}

/// Wall time of the release CLI's `head` (process start included).
fn cli_head_ms(db: &Path, runs: usize) -> f64 {
    let bin = env!("CARGO_BIN_EXE_annals");
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new(bin)
                .args(["--db", db.to_str().unwrap(), "head"])
                .output()
                .unwrap();
            assert!(out.status.success());
            ms(t.elapsed())
        })
        .collect();
    pct(&mut v, 0.5)
}

/// Kills a writer after it acknowledged `entries` entries, then times
/// opens (each replays the tail since the last flush).
fn open_after_kill(work: &Path, entries: usize, runs: usize) -> (f64, f64) {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--child", "writer", work.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(out).lines() {
        if line.unwrap().parse::<usize>().unwrap() >= entries {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    median_of("open", work, runs, "ms")
}

/// One database grown in steps: its generator, folder and running
/// counts.
struct Grown {
    name: &'static str,
    gen: Workload,
    work: PathBuf,
    json_bytes: u64,
    months: std::collections::HashMap<(String, String), usize>,
    busiest: Vec<String>,
}

/// Bytes of the log, and of the derived state (index, views and
/// snapshots; the views' runs alone).
fn disk_split(db: &Path) -> (u64, u64, u64) {
    let runs: u64 = std::fs::read_dir(db.join("index"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".run"))
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    let store = dir_bytes(&db.join("store"));
    (store, dir_bytes(db) - store, runs)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    let quick = common::quick();
    let steps: Vec<usize> = std::env::var("ANNALS_SCALE_STEPS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if quick {
                vec![20_000, 50_000]
            } else {
                vec![1_000_000, 3_000_000, 10_000_000]
            }
        });
    let sqlite = std::env::var("ANNALS_SCALE_SQLITE").map_or(true, |v| v != "0");
    // The long tail of actors (0: only the plain workload).
    let tail = common::env_count("ANNALS_SCALE_TAIL", if quick { 3_000 } else { 300_000 });
    let rebuild = std::env::var("ANNALS_SCALE_REBUILD").map_or(!quick, |v| v != "0");
    let runs = if quick { 1 } else { RUNS };
    let tmp = tempfile::tempdir().unwrap();
    let root: PathBuf = std::env::var("ANNALS_SCALE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    let mut grown = vec![Grown {
        name: "plain",
        gen: Workload::new(7),
        work: root.join("plain"),
        json_bytes: 0,
        months: Default::default(),
        busiest: Vec::new(),
    }];
    if tail > 0 {
        grown.push(Grown {
            name: "tail",
            gen: Workload::with_tail(7, tail),
            work: root.join("tail"),
            json_bytes: 0,
            months: Default::default(),
            busiest: Vec::new(),
        });
    }
    for g in &grown {
        std::fs::create_dir_all(&g.work).unwrap();
    }
    println!(
        "annals scale: steps {steps:?}, synthetic events in batches of {} \
         (import reads JSON Lines), figures per step in fresh processes; \
         `tail`: half the events also name one of {tail} actors drawn uniformly",
        annals::DEFAULT_BATCH_ROWS
    );
    println!(
        "| events | workload | ingest ev/s (step) | import peak RSS MiB | open+head ms (lib) | `annals head` ms (CLI) | RSS read-only MiB (open / view / queries) | country+month p50/p99 ms | actor p50/p99 ms | by-country view ms (fresh process) | one country / one actor row ms | by-country as of a random seq ms | disk B/event | views+snapshots vs log | JSON B/event | SQLite country+month p50/p99 ms | SQLite actor p50/p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rng = Rng(4242);
    let mut done = 0usize;
    for &target in &steps {
        let n = target.saturating_sub(done);
        // Side by side: each workload's step, one after the other.
        for g in &mut grown {
            let work = g.work.clone();
            let mut picks: Vec<String> = Vec::new();
            {
                let mut f = BufWriter::new(File::create(work.join("step.jsonl")).unwrap());
                for _ in 0..n {
                    let e = g.gen.event();
                    let line = annals::event_to_line(&e, None);
                    g.json_bytes += line.len() as u64 + 1;
                    writeln!(f, "{line}").unwrap();
                    let month = annals::format_micros(e.occurred.start())[..7].to_string();
                    for c in &e.countries {
                        *g.months.entry((c.clone(), month.clone())).or_default() += 1;
                    }
                    // About PICKS of the step's events, drawn uniformly.
                    if rng.below(n) < PICKS {
                        // Country and month from a real event (Zipf-weighted,
                        // like the data); the actor uniform over all actors, as
                        // in PERFORMANCE.md's peers (~110 rows at 1M events).
                        if let Some(c) = e.countries.first() {
                            let month = &annals::format_micros(e.occurred.start())[..7];
                            let actor = rng.below(common::ACTORS);
                            picks.push(format!("{c}\t{month}\tActor {actor}"));
                        }
                    }
                }
                f.flush().unwrap();
            }
            let picks: String = picks.iter().map(|s| format!("{s}\n")).collect();
            std::fs::write(work.join("picks"), picks).unwrap();
            let import = run("import", &work);
            let rate = n as f64 / import["secs"];
            let (open_ms, open_rss) = median_of("open", &work, runs, "ms");
            let cli = cli_head_ms(&work.join("annals.db"), runs);
            let (view_ms, view_rss) = median_of("view", &work, runs, "ms");
            let (country_row_ms, _) = median_of("row", &work, runs, "country_ms");
            let (actor_row_ms, _) = median_of("row", &work, runs, "actor_ms");
            let (asof_ms, _) = median_of("asof", &work, runs, "ms");
            let q = run("queries", &work);
            let busiest = g.months.iter().max_by_key(|(k, n)| (**n, (*k).clone()));
            if let Some(((c, m), _)) = busiest {
                std::fs::write(work.join("busiest"), format!("{c}\t{m}\n")).unwrap();
            }
            let b: Vec<Figures> = (0..runs.max(3)).map(|_| run("busiest", &work)).collect();
            let mut b_us: Vec<f64> = b.iter().skip(1).map(|f| f["us_per_row"]).collect();
            let mut b_rss: Vec<f64> = b.iter().map(|f| f["rss_mib"]).collect();
            g.busiest.push(format!(
                "{} busiest country+month at {target}: {:.0} events; first run {:.1} µs/event, then median {:.1} µs/event; peak RSS median {:.0} MiB",
                g.name,
                b[0]["rows"],
                b[0]["us_per_row"],
                pct(&mut b_us, 0.5),
                pct(&mut b_rss, 0.5)
            ));
            let db_dir = work.join("annals.db");
            let disk = dir_bytes(&db_dir) as f64 / target as f64;
            let (log_bytes, derived, runs_bytes) = disk_split(&db_dir);
            let index_only =
                derived.saturating_sub(runs_bytes + dir_bytes(&db_dir.join("snapshots")));
            let views_share = (derived - index_only) as f64 / log_bytes.max(1) as f64;
            let sql = if sqlite {
                run("sqlite-import", &work);
                let s = run("sqlite-queries", &work);
                format!(
                    "{:.2} / {:.2} | {:.2} / {:.2}",
                    s["country_p50"], s["country_p99"], s["actor_p50"], s["actor_p99"]
                )
            } else {
                "– | –".to_string()
            };
            std::fs::remove_file(work.join("step.jsonl")).unwrap();
            println!(
                "| {target} | {} | {rate:.0} | {:.0} | {open_ms:.1} | {cli:.1} | {open_rss:.0} / {view_rss:.0} / {:.0} | {:.2} / {:.2} | {:.2} / {:.2} | {view_ms:.1} | {country_row_ms:.2} / {actor_row_ms:.2} | {asof_ms:.0} | {disk:.0} | {:.1}% ({:.0} MB of {:.0} MB) | {:.0} | {sql} |",
                g.name,
                import["rss_mib"],
                q["rss_mib"],
                q["country_p50"],
                q["country_p99"],
                q["actor_p50"],
                q["actor_p99"],
                views_share * 100.0,
                (derived - index_only) as f64 / 1e6,
                log_bytes as f64 / 1e6,
                g.json_bytes as f64 / target as f64,
            );
        }
        done = target;
    }
    println!();
    for g in &grown {
        for l in &g.busiest {
            println!("{l}");
        }
    }
    for g in &grown {
        if rebuild {
            // The yardstick of as-of views: a rebuild of all derived state.
            let r = run("rebuild", &g.work);
            println!("{}: full rebuild {:.1} s", g.name, r["secs"]);
        }
    }
    // Last: a writer killed (SIGKILL) half a flush interval after its
    // last flush, then opens that replay that tail.
    let tail_entries = if quick { 2_000 } else { 50_000 };
    let (ms, rss) = open_after_kill(&grown[0].work, tail_entries, runs);
    println!(
        "\nopen after kill -9 with {tail_entries} entries since the last flush: {ms:.1} ms (median of {runs}), peak RSS {rss:.0} MiB"
    );
}
