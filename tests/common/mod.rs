//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use annals::{Annals, Durability, Event};

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
