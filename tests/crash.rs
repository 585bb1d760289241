//! Crash test: a child process appends batches (durable), corrections and
//! rebuilds of the views,
//! reporting each acknowledged seq; the parent kills it with SIGKILL at a
//! random moment, reopens and checks that every acknowledged entry is
//! there, no partial batch is visible, the views equal a rebuild and
//! `verify` passes. `ANNALS_CRASH_KILLS` sets the number of kills
//! (default 100; the long run in docs/durability.md used thousands).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use annals::{Annals, Event, Granularity, Occurred, Op};

const CHILD_ENV: &str = "ANNALS_CRASH_CHILD_DB";
const BATCH: usize = 25;

fn event(n: u64) -> Event {
    let countries = ["PL", "RO", "LT", "BE", "UA"];
    let mut e = Event::new(
        "airspace_violation",
        Occurred::parse(&format!("2025-{:02}", n % 12 + 1)).unwrap(),
    )
    .with_countries([countries[(n % 5) as usize]])
    .with_actor(format!("actor {}", n % 7), "alleged_perpetrator")
    .with_summary(format!("event {n}"));
    e.id = uuid::Uuid::from_u128(u128::from(n) + 1);
    e
}

/// The writer side: runs only inside the child process.
#[test]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = Annals::open(&path).unwrap();
    let stdout = std::io::stdout();
    let mut n = db.head().seq;
    loop {
        let mut ops: Vec<Op> = (0..BATCH as u64)
            .map(|i| Op::Append(event(n + i)))
            .collect();
        // Every batch also corrects an earlier event, so crashes land on
        // corrections too.
        if let Some(rec) = db.query(&annals::Query::new().limit(1)).unwrap().first() {
            let mut fixed = rec.event.clone();
            fixed.tags = vec![format!("fix{n}")];
            ops.push(Op::Correct(fixed));
        }
        let written = db.write(ops, None).unwrap();
        let last = written.iter().map(|w| w.seq).max().unwrap();
        n += BATCH as u64;
        writeln!(stdout.lock(), "acked {last}").unwrap();
        // Kills also land in view rebuilds and checkpoints.
        if (n / BATCH as u64).is_multiple_of(4) {
            db.rebuild().unwrap();
        }
    }
}

#[test]
fn kill_the_writer_at_random_moments() {
    let kills: usize = std::env::var("ANNALS_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut acked_max = 0u64;
    let mut acked_total = 0u64;
    let mut recovery = Vec::with_capacity(kills);
    for kill in 0..kills {
        // A fresh database every 100 kills keeps each check (verify and a
        // rebuild, linear in the log) bounded in a long run.
        let path = dir.path().join(format!("db{}", kill / 100));
        if kill % 100 == 0 {
            acked_max = 0;
        }
        let mut child = common::spawn_test("child_writer", CHILD_ENV, &path);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The test harness may print its own words before ours.
                if let Some(seq) = line
                    .split("acked ")
                    .nth(1)
                    .and_then(|s| s.trim().parse::<u64>().ok())
                {
                    let _ = tx.send(seq);
                }
            }
        });
        // Let it acknowledge at least one batch, then kill at a random
        // moment. A writer that dies by itself would test nothing.
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(seq) => acked_max = acked_max.max(seq),
            Err(_) => panic!("kill {kill}: the writer acknowledged nothing (it died or hung)"),
        }
        std::thread::sleep(Duration::from_micros(common::xorshift(&mut seed) % 40_000));
        child.kill().unwrap();
        child.wait().unwrap();
        while let Ok(seq) = rx.try_recv() {
            acked_max = acked_max.max(seq);
        }
        if kill % 100 == 99 || kill + 1 == kills {
            acked_total += acked_max;
        }
        let t = std::time::Instant::now();
        let db = Annals::open(&path).unwrap();
        recovery.push(t.elapsed());
        let head = db.head().seq;
        if std::env::var("ANNALS_CRASH_TRACE").is_ok() {
            eprintln!("kill {kill}: head {head}, acknowledged {acked_max}");
        }
        assert!(
            head >= acked_max,
            "kill {kill}: acknowledged seq {acked_max} lost (head {head})"
        );
        // Each batch is BATCH appends plus one correction (the first has
        // no correction): no partial batch means the head is on a boundary.
        let per = BATCH as u64 + 1;
        assert!(
            head == BATCH as u64 || (head + 1).is_multiple_of(per),
            "kill {kill}: partial batch, head {head}"
        );
        let kept = (
            db.by_country().unwrap(),
            db.by_actor().unwrap(),
            db.by_date(Granularity::Month).unwrap(),
        );
        db.verify().unwrap();
        db.rebuild().unwrap();
        assert_eq!(
            kept,
            (
                db.by_country().unwrap(),
                db.by_actor().unwrap(),
                db.by_date(Granularity::Month).unwrap()
            )
        );
    }
    assert!(acked_total > 0);
    recovery.sort();
    let pct = |p: usize| recovery[(recovery.len() - 1) * p / 100].as_secs_f64() * 1e3;
    eprintln!(
        "{kills}/{kills} kills survived; 0 acknowledged entries lost; 0 prefix violations; \
         {acked_total} entries acknowledged in all; recovery (open) p50 {:.1} ms, p99 {:.1} ms",
        pct(50),
        pct(99)
    );
}
