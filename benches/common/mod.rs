//! Shared by the benches: the seeded synthetic workload of
//! PERFORMANCE.md (Zipf-skewed countries and actors, 100-400 byte texts,
//! occurrence times independent of seq), crc32, sizes and peak memory.
#![allow(dead_code)]

use std::path::Path;

pub mod sqlite;

use annals::{Event, Occurred, TimePoint};

pub const BATCH: usize = 1_000;
pub const KINDS: usize = 20;
pub const COUNTRIES: usize = 60;
pub const ACTORS: usize = 5_000;

/// xorshift64*: seeded, dependency-free, good enough for workloads.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(s = 1) over ranks 0..n, by inverse CDF.
pub struct Zipf(Vec<f64>);
impl Zipf {
    pub fn new(n: usize) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / k as f64;
                acc
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= acc);
        Zipf(cdf)
    }
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

pub struct Workload {
    pub rng: Rng,
    pub countries: Zipf,
    pub actors: Zipf,
    pub codes: Vec<&'static str>,
    /// A long tail of actors (0: none): half the events also name one of
    /// this many actors, drawn uniformly, as GDELT and ACLED name
    /// hundreds of thousands of distinct actors.
    pub tail: usize,
}

const WORDS: &[&str] = &[
    "drones",
    "airspace",
    "violation",
    "reported",
    "officials",
    "border",
    "sabotage",
    "rail",
    "ministers",
    "meeting",
    "statement",
    "alleged",
    "confirmed",
    "military",
    "sources",
    "region",
];

impl Workload {
    pub fn new(seed: u64) -> Workload {
        Workload {
            rng: Rng(seed | 1),
            countries: Zipf::new(COUNTRIES),
            actors: Zipf::new(ACTORS),
            codes: annals::COUNTRY_CODES
                .iter()
                .step_by(4)
                .take(COUNTRIES)
                .copied()
                .collect(),
            tail: 0,
        }
    }

    /// The same, with a long tail of `tail` actors.
    pub fn with_tail(seed: u64, tail: usize) -> Workload {
        Workload {
            tail,
            ..Workload::new(seed)
        }
    }

    pub fn event(&mut self) -> Event {
        let r = &mut self.rng;
        let day = r.below(3_650) as i64;
        let start =
            TimePoint::parse("2015-01-01").map(|p| p.start).unwrap_or(0) + day * 86_400_000_000;
        let point = TimePoint::parse(&annals::format_micros(start)[..10])
            .unwrap_or_else(|_| TimePoint::parse("2020").unwrap());
        let occurred = if r.below(10) == 0 {
            Occurred::point(point.truncate(annals::Precision::Month))
        } else {
            Occurred::point(point)
        };
        let mut e = Event::new(format!("kind_{}", r.below(KINDS)), occurred);
        for _ in 0..1 + r.below(3) {
            let c = self.codes[self.countries.sample(r)];
            if !e.countries.iter().any(|x| x == c) {
                e.countries.push(c.to_string());
            }
        }
        for _ in 0..1 + r.below(4) {
            let a = self.actors.sample(r);
            e.actors.push(annals::Actor::new(
                format!("Actor {a}"),
                if r.below(2) == 0 {
                    "perpetrator"
                } else {
                    "target"
                },
            ));
        }
        if self.tail > 0 && r.below(2) == 0 {
            let a = r.below(self.tail);
            e.actors
                .push(annals::Actor::new(format!("Tail actor {a}"), "source"));
        }
        let len = 100 + r.below(300);
        let mut text = String::with_capacity(len + 10);
        while text.len() < len {
            text.push_str(WORDS[r.below(WORDS.len())]);
            text.push(' ');
        }
        e.summary = Some(text.trim_end().to_string());
        e
    }

    pub fn batches(seed: u64, n: usize) -> impl Iterator<Item = Vec<Event>> {
        let mut w = Workload::new(seed);
        let mut left = n;
        std::iter::from_fn(move || {
            (left > 0).then(|| {
                let k = left.min(BATCH);
                left -= k;
                (0..k).map(|_| w.event()).collect()
            })
        })
    }
}

pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (!(crc & 1)).wrapping_add(1));
        }
    }
    !crc
}

/// Bytes of the files under `p`, a file with several names (a view run
/// hard-linked into a snapshot) counted once, as `du` does.
pub fn dir_bytes(p: &Path) -> u64 {
    fn walk(p: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        let m = e.metadata().unwrap();
                        if m.is_dir() {
                            walk(&e.path(), seen)
                        } else if seen.insert((m.dev(), m.ino())) {
                            m.len()
                        } else {
                            0
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(p, &mut Default::default())
}

pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Whether CI asked for the quick, small run (`ANNALS_BENCH_QUICK`).
pub fn quick() -> bool {
    std::env::var("ANNALS_BENCH_QUICK").is_ok()
}

/// A count from the environment, else `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
