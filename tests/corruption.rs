//! Corruption sweep: flip a bit, change a byte, zero 512 bytes or truncate
//! a file at a random place in a closed database folder, then open, read
//! everything and verify in a child process. Each trial is detected (a
//! clear error), benign (every answer unchanged), silent (an answer
//! changed with no error) or a crash (panic, abort, hang). Silent and crash
//! must be 0. `ANNALS_CORRUPTION_TRIALS` sets the number of trials
//! (default 200); the long run in docs/durability.md used thousands.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use annals::{Annals, At, Durability, Event, Granularity, Occurred, Op, Query};
use common::copy_dir;

const CHILD_ENV: &str = "ANNALS_CORRUPTION_CHILD_DB";

/// Everything a user could read, hashed.
fn digest(path: &str) -> annals::Result<String> {
    let db = Annals::builder(path).create(false).open()?;
    db.verify()?;
    let mut text = String::new();
    let head = db.head();
    text.push_str(&format!("{} {}\n", head.seq, head.hash_hex()));
    for branch in [None, Some("w")] {
        let r = db.reader(&At {
            branch: branch.map(str::to_string),
            as_of: None,
        })?;
        text.push_str(&serde_json::to_string(&r.by_country()?).unwrap_or_default());
        text.push_str(&serde_json::to_string(&r.by_actor()?).unwrap_or_default());
        text.push_str(&serde_json::to_string(&r.by_date(Granularity::Day)?).unwrap_or_default());
        for rec in r.query(&Query::new())? {
            text.push_str(&annals::event_to_line(&rec.event, Some(rec.position)));
        }
    }
    let past = db.reader(&At::head().as_of(annals::AsOf::Seq(head.seq / 2)))?;
    text.push_str(&serde_json::to_string(&past.by_country()?).unwrap_or_default());
    for b in db.branches() {
        text.push_str(&format!("{} {} {}\n", b.name, b.base_seq, b.head_seq));
    }
    Ok(blake3::hash(text.as_bytes()).to_hex().to_string())
}

/// The reader side: runs only inside the child process.
#[test]
fn child_reader() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    match digest(&path) {
        Ok(d) => println!("RESULT OK {d}"),
        Err(e) => println!("RESULT ERR {e}"),
    }
}

fn build(path: &Path) {
    let db = Annals::builder(path)
        .durability(Durability::Buffered)
        .snapshot_every_entries(40)
        .checkpoint_every_entries(60)
        .open()
        .unwrap();
    db.append(common::scenario()).unwrap();
    let mut ids = Vec::new();
    for batch in 0..10 {
        let events: Vec<Event> = (0..15)
            .map(|i| {
                Event::new(
                    "airspace_violation",
                    Occurred::parse(&format!("2025-{:02}", (batch + i) % 12 + 1)).unwrap(),
                )
                .with_countries([["PL", "RO", "LT"][i % 3]])
                .with_actor(format!("actor {}", i % 5), "alleged_perpetrator")
                .with_summary(format!("batch {batch} event {i} {}", "text ".repeat(20)))
            })
            .collect();
        ids.extend(events.iter().map(|e| e.id));
        db.append(events).unwrap();
    }
    db.retract(ids[3], "test").unwrap();
    let mut fixed = db.get(ids[7]).unwrap().unwrap().event;
    fixed.countries.push("UA".into());
    db.correct(fixed).unwrap();
    db.create_branch("w", None, Some(annals::AsOf::Seq(100)))
        .unwrap();
    db.write_branch(
        "w",
        vec![Op::Retract {
            id: ids[10],
            reason: "what if".into(),
        }],
        None,
    )
    .unwrap();
    db.close().unwrap();
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if e.file_name() != "LOCK" {
            out.push(p);
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Applies one mutation; returns a description.
fn corrupt(path: &Path, kind: u64, rng: &mut Rng) -> String {
    let mut bytes = std::fs::read(path).unwrap();
    let len = bytes.len() as u64;
    let at = rng.below(len.max(1)) as usize;
    let what = match kind {
        0 if len > 0 => {
            let bit = rng.below(8);
            bytes[at] ^= 1 << bit;
            format!("flip bit {bit} at {at}")
        }
        1 if len > 0 => {
            let v = (rng.below(255) + 1) as u8;
            bytes[at] ^= v;
            format!("change byte at {at}")
        }
        2 if len > 0 => {
            let end = (at + 512).min(bytes.len());
            bytes[at..end].iter_mut().for_each(|b| *b = 0);
            format!("zero {at}..{end}")
        }
        _ => {
            bytes.truncate(at);
            format!("truncate at {at}")
        }
    };
    std::fs::write(path, bytes).unwrap();
    what
}

enum Outcome {
    /// A clear error.
    Detected,
    /// Read without error; the digest of every answer.
    Read(String),
    /// Panic, abort or hang.
    Crash(String),
}

fn run_child(db: &Path) -> Outcome {
    let mut child = common::spawn_test("child_reader", CHILD_ENV, db);
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let result = text.lines().find_map(|l| {
                l.find("RESULT ")
                    .map(|i| l[i + "RESULT ".len()..].to_string())
            });
            return match (status.success(), result) {
                (true, Some(r)) if r.starts_with("ERR ") => Outcome::Detected,
                (true, Some(r)) => Outcome::Read(r),
                (_, r) => Outcome::Crash(format!("status {status}, {r:?}")),
            };
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return Outcome::Crash("hung for 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn corruption_sweep() {
    let trials: u64 = std::env::var("ANNALS_CORRUPTION_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("original");
    build(&original);
    let expected = match run_child(&original) {
        Outcome::Read(r) => r,
        Outcome::Detected => panic!("the undamaged database reported an error"),
        Outcome::Crash(why) => panic!("the undamaged database crashed the reader: {why}"),
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut detected, mut benign) = (0u64, 0u64);
    let mut bad: Vec<String> = Vec::new();
    for t in 0..trials {
        let trial = work.path().join(format!("t{t}"));
        copy_dir(&original, &trial);
        let mut all = Vec::new();
        files(&trial, &mut all);
        all.sort();
        let file = all[rng.below(all.len() as u64) as usize].clone();
        let what = corrupt(&file, t % 4, &mut rng);
        let name = file.strip_prefix(&trial).unwrap().display().to_string();
        match run_child(&trial) {
            Outcome::Detected => detected += 1,
            Outcome::Read(r) if r == expected => benign += 1,
            Outcome::Read(_) => bad.push(format!("SILENT: {name}: {what}")),
            Outcome::Crash(why) => bad.push(format!("CRASH: {name}: {what}: {why}")),
        }
        std::fs::remove_dir_all(&trial).unwrap();
    }
    eprintln!(
        "corruption sweep: {trials} trials = {detected} detected + {benign} benign + {} silent/crash",
        bad.len()
    );
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
