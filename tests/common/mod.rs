//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use annals::{Annals, Durability, Event};

/// The demo database (`annals demo`) in a temporary folder, and a token
/// file beside it holding `token`, for `annals serve --token-file`.
pub fn demo_with_token(token: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let out = annals(&db, &["demo", "--out", db.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    (dir, db, file)
}

/// A fresh database in a temporary folder (kept alive by the returned guard).
pub fn fresh() -> (tempfile::TempDir, Annals) {
    let dir = tempfile::tempdir().unwrap();
    let db = Annals::builder(dir.path().join("db"))
        .durability(Durability::Buffered)
        .open()
        .unwrap();
    (dir, db)
}

/// Parses one interchange line.
pub fn ev(line: &str) -> Event {
    annals::parse_event(line).unwrap()
}

/// The demo scenario of the CLI, as events.
pub fn scenario() -> Vec<Event> {
    include_str!("../../src/cli/scenario.jsonl")
        .lines()
        .map(ev)
        .collect()
}

/// The current events read at `at`, by id.
pub fn events_at(db: &Annals, at: &annals::At) -> std::collections::BTreeMap<uuid::Uuid, Event> {
    db.reader(at)
        .unwrap()
        .query(&annals::Query::new())
        .unwrap()
        .into_iter()
        .map(|r| (r.event.id, r.event))
        .collect()
}

/// One xorshift step: a seeded pseudo-random number for kill timings.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Runs the CLI with a database path and optional stdin.
pub fn annals(db: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_annals"));
    cmd.arg("--db").arg(db).args(args).env_remove("ANNALS_DB");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

/// Standard output as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path inside a temp dir.
pub fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("db")
}

/// Random batches of operations over a small pool of ids, for properties.
pub mod http;

pub mod gen {
    use annals::{Actor, Event, Occurred, Op, TimePoint};
    use proptest::prelude::*;
    use uuid::Uuid;

    const KINDS: &[&str] = &["airspace_violation", "sabotage", "meeting"];
    const COUNTRIES: &[&str] = &["PL", "RO", "LT", "UA"];
    const NAMES: &[&str] = &["Russia", "NATO", "Mark Rutte"];
    const TIMES: &[&str] = &["2025", "2025-09", "2025-11", "2025-09-10", "2025-12-03"];

    /// An event with id number `id` built from small choices.
    pub fn event(
        id: u8,
        kind: usize,
        countries: &[usize],
        actor: Option<usize>,
        time: usize,
    ) -> Event {
        let mut e = Event::new(
            KINDS[kind % KINDS.len()],
            Occurred::point(TimePoint::parse(TIMES[time % TIMES.len()]).unwrap()),
        );
        e.id = Uuid::from_u128(u128::from(id) + 1);
        e.countries = countries
            .iter()
            .map(|&c| COUNTRIES[c % COUNTRIES.len()].to_string())
            .collect();
        e.actors = actor
            .map(|a| Actor::new(NAMES[a % NAMES.len()], "alleged_perpetrator"))
            .into_iter()
            .collect();
        e.validate().unwrap()
    }

    /// Event number `n` of a long run (ids from 1000, so clear of the
    /// small ids of [`event`]), its choices cycling through the lists.
    pub fn numbered(n: u64) -> Event {
        let mut e = event(
            (n % 200) as u8,
            n as usize,
            &[n as usize],
            Some(n as usize),
            n as usize,
        );
        e.id = Uuid::from_u128(u128::from(n) + 1000);
        e
    }

    /// One operation.
    pub fn op() -> impl Strategy<Value = Op> {
        let ev = (
            0u8..8,
            0usize..3,
            prop::collection::vec(0usize..4, 0..3),
            prop::option::of(0usize..3),
            0usize..5,
        )
            .prop_map(|(id, k, c, a, t)| event(id, k, &c, a, t));
        prop_oneof![
            4 => ev.clone().prop_map(Op::Append),
            2 => ev.prop_map(Op::Correct),
            1 => (0u128..8).prop_map(|i| Op::Retract { id: Uuid::from_u128(i + 1), reason: "test".into() }),
        ]
    }

    /// Batches of operations.
    pub fn batches(max: usize) -> impl Strategy<Value = Vec<Vec<Op>>> {
        prop::collection::vec(prop::collection::vec(op(), 1..4), 1..max)
    }

    /// The operation that an entry records.
    pub fn op_of(entry: &annals::Entry) -> Op {
        match &entry.body {
            annals::Body::Event(e) => Op::Append(e.clone()),
            annals::Body::Correction(e) => Op::Correct(e.clone()),
            annals::Body::Retraction { id, reason } => Op::Retract {
                id: *id,
                reason: reason.clone(),
            },
            other => panic!("no operation writes a {} entry", other.action()),
        }
    }
}

/// A storage wrapper for tests: delegates every call to the real store,
/// letting a [`Hook`] fail calls, act after them, or alter the chunks read.
pub mod hooked {
    use std::sync::Arc;

    use annals::{Bytes, ChunkIter, Error, Result, Storage};

    /// What to do with one storage call.
    pub enum Gate {
        /// Run it.
        Go,
        /// Fail it without running it.
        Fail,
        /// Run it, then report failure (the effect happened).
        FailAfterEffect,
        /// Fail it as the storage engine reports damage it found
        /// (`Error::Corruption` at no known seq).
        Damaged,
    }

    /// What a test changes about the storage.
    pub trait Hook: Send + Sync + 'static {
        /// Decides the fate of the call named `call` (`"sync"`, ...).
        fn gate(&self, _call: &str) -> Gate {
            Gate::Go
        }
        /// Runs after a call that succeeded.
        fn after(&self, _call: &str) {}
        /// Alters a chunk as it is read.
        fn read(&self, chunk: (u64, Bytes)) -> (u64, Bytes) {
            chunk
        }
    }

    /// The wrapper.
    pub struct Hooked<H: Hook> {
        pub inner: Arc<dyn Storage>,
        pub hook: H,
    }

    /// A `wrap_storage` argument that installs `hook`.
    pub fn wrap<H: Hook>(hook: H) -> impl FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage> {
        move |inner| Arc::new(Hooked { inner, hook }) as Arc<dyn Storage>
    }

    impl<H: Hook> Hooked<H> {
        fn run<T>(&self, call: &str, op: impl FnOnce() -> Result<T>) -> Result<T> {
            let fault = || {
                Err(Error::Io {
                    path: call.into(),
                    source: std::io::Error::other("injected fault"),
                })
            };
            match self.hook.gate(call) {
                Gate::Go => {
                    let r = op()?;
                    self.hook.after(call);
                    Ok(r)
                }
                Gate::Fail => fault(),
                Gate::FailAfterEffect => {
                    let _ = op();
                    fault()
                }
                Gate::Damaged => Err(Error::Corruption {
                    seq: 0,
                    reason: format!("injected damage in {call}"),
                }),
            }
        }
    }

    impl<H: Hook> Storage for Hooked<H> {
        fn write_chunks(&self, log: &str, chunks: &[(u64, Vec<u8>)]) -> Result<()> {
            self.run("write_chunks", || self.inner.write_chunks(log, chunks))
        }
        fn sync(&self) -> Result<()> {
            self.run("sync", || self.inner.sync())
        }
        fn chunk_at(&self, log: &str, seq: u64) -> Result<Option<(u64, Bytes)>> {
            self.run("chunk_at", || self.inner.chunk_at(log, seq))
                .map(|c| c.map(|c| self.hook.read(c)))
        }
        fn scan_chunks(&self, log: &str, from: u64) -> ChunkIter<'_> {
            match self.run("scan_chunks", || Ok(())) {
                Ok(()) => Box::new(
                    self.inner
                        .scan_chunks(log, from)
                        .map(move |r| r.map(|c| self.hook.read(c))),
                ),
                Err(e) => Box::new(std::iter::once(Err(e))),
            }
        }
        fn last_chunk(&self, log: &str) -> Result<Option<(u64, Bytes)>> {
            self.run("last_chunk", || self.inner.last_chunk(log))
                .map(|c| c.map(|c| self.hook.read(c)))
        }
        fn drop_log(&self, log: &str) -> Result<()> {
            self.run("drop_log", || self.inner.drop_log(log))
        }
        fn log_names(&self) -> Result<Vec<String>> {
            self.run("log_names", || self.inner.log_names())
        }
        fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
            self.run("put_meta", || self.inner.put_meta(key, value))
        }
        fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
            self.run("get_meta", || self.inner.get_meta(key))
        }
        fn remove_meta(&self, key: &str) -> Result<()> {
            self.run("remove_meta", || self.inner.remove_meta(key))
        }
        fn scan_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
            self.run("scan_meta", || self.inner.scan_meta(prefix))
        }
        fn disk_bytes(&self) -> u64 {
            self.inner.disk_bytes()
        }
    }
}

/// Copies a database folder (without its lock file).
/// This test binary's test `test`, run alone in a child process with the
/// environment variable `env` set to `db` (crash tests kill it); its
/// standard output is piped, its standard error dropped.
pub fn spawn_test(test: &str, env: &str, db: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, db)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Reads `child`'s output up to a line containing `ready` (panicking if
/// it ends first) and returns the rest of it.
pub fn wait_for(child: &mut Child, ready: &str) -> Lines<BufReader<ChildStdout>> {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains(ready)),
        "the child ended before printing {ready:?}"
    );
    lines
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "LOCK" {
            // A file can vanish mid-copy (a checkpoint's temporary file).
            let _ = std::fs::copy(e.path(), target);
        }
    }
}

/// Every file of a folder (not recursive), by name.
pub fn read_dir_files(dir: &Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Replaces a folder's files by `files`.
pub fn write_dir_files(dir: &Path, files: &[(std::ffi::OsString, Vec<u8>)]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
