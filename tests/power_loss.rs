//! Power loss, simulated (ALICE-style, OSDI 2014): a writer runs under
//! `strace`, which records every file system call it makes on the
//! database folder with the bytes written; from that trace, for many cut
//! points, we build the folders a power loss could leave and open each
//! with annals.
//!
//! The persistence model is the strict POSIX one: a write reaches the
//! disk only once its file is fsynced (or fdatasynced) after it; a file's
//! creation, a rename, a mkdir or an unlink only once the folder holding
//! it is fsynced; `sync_file_range` persists nothing (it flushes neither
//! metadata nor the disk cache). Anything not yet forced may be kept or
//! dropped, in any combination; the states tried at each cut are:
//!
//! - `all`: every call before the cut kept (what a process crash leaves);
//! - `synced`: only what an fsync had forced; every other call dropped;
//! - `drop-one`: every call kept except one unforced one, earlier than
//!   others that are kept (ALICE's reordering);
//! - `torn`: as `all`, but the last write cut to a prefix of its page.
//!
//! Each state must open (or report damage with `Error::Corruption`, never
//! panic), verify (the chain, and every view against a replay of the log),
//! hold every batch acknowledged before the cut, whole, and no part of a
//! batch that is not wholly there, with exactly the events the workload
//! wrote up to that batch.
//!
//! `ANNALS_POWER_LOSS_STATES` sets how many states are tried (default 200,
//! CI's run; the long run in `docs/durability.md` used 3,000). Skipped,
//! with a message, where `strace` is not installed (`.ci/run` installs it).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;

use annals::{Annals, At, Durability, Error, Event, Op};
use common::gen::numbered;

const CHILD: &str = "ANNALS_POWER_LOSS_CHILD";
const ACKS: &str = "ANNALS_POWER_LOSS_ACKS";
/// Set for the writer of the buffered run.
const BUFFERED: &str = "ANNALS_POWER_LOSS_BUFFERED";
const BRANCH: &str = "what-if";
/// The inode of the folder the database is created in.
const ROOT_INODE: usize = 0;

// ---- the workload ----

/// Rounds of the workload (`ANNALS_POWER_LOSS_ROUNDS`, default 1); each
/// round repeats the steps with new ids and a new branch.
fn rounds() -> u64 {
    std::env::var("ANNALS_POWER_LOSS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// One step of the workload: a durable batch (or a checkpoint, or a
/// branch created), acknowledged once it returns.
type Step = Box<dyn Fn(&Annals)>;

fn steps() -> Vec<Step> {
    (0..rounds()).flat_map(round).collect()
}

fn round(r: u64) -> Vec<Step> {
    let n = move |i: u64| numbered(r * 1_000 + i);
    let sized = move |i: u64, bytes: usize| {
        let mut e = n(i);
        e.summary = Some(format!("{i} {}", "x".repeat(bytes)));
        e
    };
    // Batches of several chunks (a chunk holds about 64 KiB), and frames
    // that fill segment pages unevenly.
    let big = move |i: u64| sized(i, 12_000);
    let huge = move |i: u64| sized(i, 15_000);
    let branch = format!("{BRANCH}-{r}");
    let on_branch = branch.clone();
    vec![
        // The log's first batch spans several chunks.
        Box::new(move |db: &Annals| {
            db.append((0..5).map(huge).collect()).unwrap();
        }),
        Box::new(move |db: &Annals| {
            db.append((5..8).map(n).collect()).unwrap();
        }),
        Box::new(move |db: &Annals| {
            let mut e = n(1);
            e.summary = Some("corrected".into());
            db.write(vec![Op::Correct(e)], None).unwrap();
        }),
        Box::new(move |db: &Annals| {
            let id = n(2).id;
            db.write(
                vec![Op::Retract {
                    id,
                    reason: "test".into(),
                }],
                None,
            )
            .unwrap();
        }),
        Box::new(|db: &Annals| db.checkpoint().unwrap()),
        Box::new(move |db: &Annals| {
            db.create_branch(&branch, None, None).unwrap();
        }),
        Box::new(move |db: &Annals| {
            let mut e = n(3);
            e.summary = Some("on the branch".into());
            // The branch's first batch spans several chunks too.
            let mut ops: Vec<Op> = (500..505).map(|i| Op::Append(huge(i))).collect();
            ops.push(Op::Correct(e));
            db.write_branch(&on_branch, ops, None).unwrap();
        }),
        Box::new(move |db: &Annals| {
            db.append((8..60).map(big).collect()).unwrap();
        }),
        Box::new(|db: &Annals| db.checkpoint().unwrap()),
        Box::new(move |db: &Annals| {
            db.append(vec![n(60)]).unwrap();
        }),
        Box::new(move |db: &Annals| {
            db.append((61..90).map(big).collect()).unwrap();
        }),
        // An import (one batch of new events), then a re-import of the
        // file with two rows changed: corrections, the rest skipped.
        Box::new(move |db: &Annals| import(db, (200..220).map(n).collect())),
        Box::new(move |db: &Annals| {
            let mut events: Vec<Event> = (200..220).map(n).collect();
            for e in events.iter_mut().take(2) {
                e.summary = Some("revised in the next release".into());
            }
            import(db, events)
        }),
    ]
}

fn import(db: &Annals, events: Vec<Event>) {
    let lines: String = events
        .iter()
        .map(|e| annals::event_to_line(e, None) + "\n")
        .collect();
    db.import(annals::ImportFormat::Jsonl)
        .reader("release.jsonl", lines.as_bytes())
        .unwrap();
}

fn open_for_workload(path: &Path) -> Annals {
    let mode = match std::env::var_os(BUFFERED) {
        Some(_) => Durability::Buffered,
        None => Durability::Durable,
    };
    Annals::builder(path)
        .durability(mode)
        .snapshot_every_entries(40)
        .open()
        .unwrap()
}

/// The writer, run by the test below under strace: each step, then a
/// line in the acknowledgements file (a separate file, so the trace shows
/// where each acknowledgement falls among the database's calls).
#[test]
fn power_loss_writer() {
    let (Some(db), Some(acks)) = (std::env::var_os(CHILD), std::env::var_os(ACKS)) else {
        return;
    };
    let mut acks = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(acks)
        .unwrap();
    let db = open_for_workload(Path::new(&db));
    let buffered = std::env::var_os(BUFFERED).is_some();
    for (i, step) in steps().iter().enumerate() {
        step(&db);
        acks.write_all(format!("ACK {i}\n").as_bytes()).unwrap();
        // Buffered: idle now and then, past the flusher's window, so that
        // its syncs fall between steps as well as at the next write.
        if buffered && i % 3 == 2 {
            std::thread::sleep(std::time::Duration::from_millis(700));
        }
    }
    db.close().unwrap();
}

/// What the database holds after each step: main's head seq and events,
/// and each branch's events.
struct Expected {
    seq: u64,
    main: BTreeMap<uuid::Uuid, Event>,
    branch: BTreeMap<String, BTreeMap<uuid::Uuid, Event>>,
}

fn snapshot_of(db: &Annals) -> Expected {
    let branch = db
        .branches()
        .iter()
        .map(|b| {
            (
                b.name.clone(),
                common::events_at(db, &At::head().branch(&b.name)),
            )
        })
        .collect();
    Expected {
        seq: db.head().seq,
        main: common::events_at(db, &At::head()),
        branch,
    }
}

/// The expected contents after 0, 1, ... steps, from the same workload
/// run without a tracer.
fn expected() -> Vec<Expected> {
    let dir = tempfile::tempdir().unwrap();
    let db = open_for_workload(&dir.path().join("db"));
    let mut out = vec![snapshot_of(&db)];
    for step in steps() {
        step(&db);
        out.push(snapshot_of(&db));
    }
    db.close().unwrap();
    out
}

// ---- the trace ----

/// One call that changes what a power loss could leave.
#[derive(Debug, Clone)]
enum Call {
    /// A name appears for an inode (a file created, a folder made).
    Link {
        path: PathBuf,
        inode: usize,
        dir: bool,
    },
    /// A name moves.
    Rename { from: PathBuf, to: PathBuf },
    /// A name goes.
    Unlink { path: PathBuf },
    /// Bytes written into an inode at an offset.
    Write {
        inode: usize,
        offset: u64,
        data: Vec<u8>,
    },
    /// An inode's length set.
    Truncate { inode: usize, len: u64 },
    /// An fsync of a file (its data) or of a folder (its names).
    Sync { inode: usize },
    /// The writer acknowledged a step.
    Ack,
}

/// The file system as the process sees it (the page cache), to resolve
/// what each traced call does: which inode a path names, file lengths,
/// descriptors' positions.
#[derive(Default)]
struct Live {
    names: HashMap<PathBuf, usize>,
    dirs: BTreeSet<usize>,
    sizes: HashMap<usize, u64>,
    data: HashMap<usize, Vec<u8>>,
    /// Descriptor -> (position, opened with O_APPEND).
    fds: HashMap<i64, (u64, bool)>,
    next: usize,
}

impl Live {
    /// A new inode, and the call that names it.
    fn create(&mut self, path: PathBuf, dir: bool) -> (usize, Call) {
        let inode = self.next;
        self.next += 1;
        (inode, Call::Link { path, inode, dir })
    }

    fn inode(&mut self, path: &Path) -> Option<usize> {
        self.names.get(path).copied()
    }

    fn apply(&mut self, call: &Call) {
        match call {
            Call::Link { path, inode, dir } => {
                self.names.insert(path.clone(), *inode);
                if *dir {
                    self.dirs.insert(*inode);
                }
            }
            Call::Rename { from, to } => {
                let moved: Vec<(PathBuf, usize)> = self
                    .names
                    .iter()
                    .filter(|(p, _)| p.starts_with(from))
                    .map(|(p, i)| (p.clone(), *i))
                    .collect();
                for (p, _) in &moved {
                    self.names.remove(p);
                }
                for (p, i) in moved {
                    let rest = p.strip_prefix(from).unwrap_or(Path::new(""));
                    self.names.insert(to.join(rest), i);
                }
            }
            Call::Unlink { path } => {
                self.names.remove(path);
            }
            Call::Write {
                inode,
                offset,
                data,
            } => {
                let buf = self.data.entry(*inode).or_default();
                let end = *offset as usize + data.len();
                if buf.len() < end {
                    buf.resize(end, 0);
                }
                buf[*offset as usize..end].copy_from_slice(data);
                let size = self.sizes.entry(*inode).or_default();
                *size = (*size).max(end as u64);
            }
            Call::Truncate { inode, len } => {
                self.data
                    .entry(*inode)
                    .or_default()
                    .resize(*len as usize, 0);
                self.sizes.insert(*inode, *len);
            }
            Call::Sync { .. } | Call::Ack => {}
        }
    }
}

/// Decodes strace's `-xx` escapes (`\x2f`) and the few named ones.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'x' if i + 3 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 4;
                    continue;
                }
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'"' => out.push(b'"'),
                c => out.push(c),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Splits a call's arguments at top-level commas.
fn split_args(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quoted, mut esc) =
        (Vec::new(), String::new(), 0, false, false);
    for c in s.chars() {
        if quoted {
            cur.push(c);
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                cur.push(c);
            }
            '(' | '[' | '{' | '<' => {
                depth += 1;
                cur.push(c);
            }
            ')' | ']' | '}' | '>' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The bytes of a quoted argument; a `...` after it means strace cut it.
fn quoted(arg: &str) -> Vec<u8> {
    let a = arg.trim();
    assert!(!a.ends_with("..."), "strace cut a string: raise -s");
    let inner = a.trim_start_matches(|c| c != '"');
    let inner = inner
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(inner);
    unescape(inner)
}

/// The path strace decorates a descriptor with (`3</tmp/x/db>`), and the
/// descriptor.
fn fd_path(arg: &str) -> (i64, Option<PathBuf>) {
    let fd = arg
        .split('<')
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or(-100);
    let path = arg
        .find('<')
        .map(|i| &arg[i + 1..arg.len() - 1])
        .map(|p| PathBuf::from(String::from_utf8_lossy(&unescape(p)).into_owned()));
    (fd, path)
}

fn path_arg(dirfd: Option<&str>, arg: &str) -> PathBuf {
    let p = PathBuf::from(String::from_utf8_lossy(&quoted(arg)).into_owned());
    if p.is_absolute() {
        return p;
    }
    match dirfd.map(fd_path) {
        Some((_, Some(dir))) => dir.join(p),
        _ => p,
    }
}

/// Joins strace's `<unfinished ...>` / `<... resumed>` halves and yields
/// `(name, args, return value)` in the order calls completed.
fn calls_of(trace: &str) -> Vec<(String, Vec<String>, String)> {
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let full = if let Some(start) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid.to_string(), start.to_string());
            continue;
        } else if rest.starts_with("<... ") {
            let Some(start) = pending.remove(pid) else {
                continue;
            };
            let Some(i) = rest.find("resumed>") else {
                continue;
            };
            format!("{start}{}", &rest[i + "resumed>".len()..])
        } else {
            rest.to_string()
        };
        // strace pads `) = ret` to a column: `)        = 0`.
        let Some(open) = full.find('(') else { continue };
        let Some(eq) = full.rfind(" = ") else {
            continue;
        };
        let Some(call) = full[..eq].trim_end().strip_suffix(')') else {
            continue;
        };
        let name = full[..open].to_string();
        let ret = full[eq + 3..].trim().to_string();
        out.push((name, split_args(&call[open + 1..]), ret));
    }
    out
}

/// The trace as calls on the database folder's inodes, plus the
/// acknowledgements.
fn parse(trace: &str, root: &Path, acks: &Path) -> Vec<Call> {
    let mut live = Live::default();
    // The root folder exists, durably, before the writer starts.
    live.names.insert(root.to_path_buf(), ROOT_INODE);
    live.dirs.insert(ROOT_INODE);
    live.next = ROOT_INODE + 1;
    let mut calls = Vec::new();
    let mine = |p: &Path| p.starts_with(root);
    fn push(live: &mut Live, calls: &mut Vec<Call>, c: Call) {
        live.apply(&c);
        calls.push(c);
    }
    for (name, args, ret) in calls_of(trace) {
        let ok = !ret.starts_with('-');
        if !ok {
            continue;
        }
        let retval: i64 = ret
            .split(['<', ' '])
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or(-1);
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
        match name.as_str() {
            "openat" | "open" => {
                let (dirfd, p, flags) = if name == "openat" {
                    (Some(arg(0)), arg(1), arg(2))
                } else {
                    (None, arg(0), arg(1))
                };
                let path = path_arg(dirfd, p);
                if path == acks {
                    live.fds.insert(retval, (0, true));
                    continue;
                }
                if !mine(&path) {
                    continue;
                }
                let existing = live.inode(&path);
                let inode = match existing {
                    Some(i) => i,
                    None if flags.contains("O_CREAT") => {
                        let (i, link) = live.create(path.clone(), false);
                        push(&mut live, &mut calls, link);
                        i
                    }
                    None => continue,
                };
                if flags.contains("O_TRUNC") && existing.is_some() {
                    push(&mut live, &mut calls, Call::Truncate { inode, len: 0 });
                }
                live.fds.insert(retval, (0, flags.contains("O_APPEND")));
            }
            "mkdir" | "mkdirat" => {
                let path = if name == "mkdir" {
                    path_arg(None, arg(0))
                } else {
                    path_arg(Some(arg(0)), arg(1))
                };
                if mine(&path) {
                    let (_, link) = live.create(path, true);
                    push(&mut live, &mut calls, link);
                }
            }
            "rename" | "renameat" | "renameat2" => {
                let (from, to) = if name == "rename" {
                    (path_arg(None, arg(0)), path_arg(None, arg(1)))
                } else {
                    (
                        path_arg(Some(arg(0)), arg(1)),
                        path_arg(Some(arg(2)), arg(3)),
                    )
                };
                if mine(&from) || mine(&to) {
                    push(&mut live, &mut calls, Call::Rename { from, to });
                }
            }
            "unlink" | "unlinkat" | "rmdir" => {
                let path = if name == "unlinkat" {
                    path_arg(Some(arg(0)), arg(1))
                } else {
                    path_arg(None, arg(0))
                };
                if mine(&path) {
                    push(&mut live, &mut calls, Call::Unlink { path });
                }
            }
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" => {
                let (fd, path) = fd_path(arg(0));
                let Some(path) = path else { continue };
                let data: Vec<u8> = if name.ends_with('v') || name.ends_with("v2") {
                    // [{iov_base="...", iov_len=N}, ...]
                    split_args(arg(1).trim_start_matches('[').trim_end_matches(']'))
                        .iter()
                        .flat_map(|iov| {
                            let base = iov.split("iov_base=").nth(1).unwrap_or("");
                            let base = base.rsplit_once(", iov_len=").map_or(base, |(b, _)| b);
                            quoted(base)
                        })
                        .collect()
                } else {
                    quoted(arg(1))
                };
                let n = (retval.max(0) as usize).min(data.len());
                if path == acks {
                    if data.starts_with(b"ACK ") {
                        calls.push(Call::Ack);
                    }
                    continue;
                }
                if !mine(&path) {
                    continue;
                }
                let Some(inode) = live.inode(&path) else {
                    continue;
                };
                let positional = name.starts_with('p');
                let offset = if positional {
                    arg(3).parse().unwrap_or(0)
                } else {
                    let (pos, append) = live.fds.get(&fd).copied().unwrap_or((0, false));
                    if append {
                        live.sizes.get(&inode).copied().unwrap_or(0)
                    } else {
                        pos
                    }
                };
                if !positional {
                    live.fds.insert(
                        fd,
                        (offset + n as u64, live.fds.get(&fd).is_some_and(|f| f.1)),
                    );
                }
                push(
                    &mut live,
                    &mut calls,
                    Call::Write {
                        inode,
                        offset,
                        data: data[..n].to_vec(),
                    },
                );
            }
            "lseek" => {
                let (fd, _) = fd_path(arg(0));
                if let Some(f) = live.fds.get_mut(&fd) {
                    f.0 = retval.max(0) as u64;
                }
            }
            "ftruncate" | "truncate" => {
                let inode = if name == "ftruncate" {
                    fd_path(arg(0)).1.and_then(|p| live.inode(&p))
                } else {
                    live.inode(&path_arg(None, arg(0)))
                };
                if let Some(inode) = inode {
                    push(
                        &mut live,
                        &mut calls,
                        Call::Truncate {
                            inode,
                            len: arg(1).parse().unwrap_or(0),
                        },
                    );
                }
            }
            "fallocate" => {
                let Some(inode) = fd_path(arg(0)).1.and_then(|p| live.inode(&p)) else {
                    continue;
                };
                if arg(1) == "0" {
                    let end =
                        arg(2).parse::<u64>().unwrap_or(0) + arg(3).parse::<u64>().unwrap_or(0);
                    if end > live.sizes.get(&inode).copied().unwrap_or(0) {
                        push(&mut live, &mut calls, Call::Truncate { inode, len: end });
                    }
                }
            }
            "copy_file_range" => {
                let (in_fd, in_path) = fd_path(arg(0));
                let (out_fd, out_path) = fd_path(arg(2));
                let (Some(ip), Some(op)) = (in_path, out_path) else {
                    continue;
                };
                let (Some(src), Some(dst)) = (live.inode(&ip), live.inode(&op)) else {
                    continue;
                };
                let off = |a: &str, fd: i64, live: &Live| {
                    a.trim_matches(|c| c == '[' || c == ']')
                        .parse::<u64>()
                        .ok()
                        .unwrap_or_else(|| live.fds.get(&fd).map_or(0, |f| f.0))
                };
                let (ioff, ooff) = (off(arg(1), in_fd, &live), off(arg(3), out_fd, &live));
                let n = retval.max(0) as usize;
                let bytes = live.data.get(&src).cloned().unwrap_or_default();
                let s = (ioff as usize).min(bytes.len());
                let data = bytes[s..(s + n).min(bytes.len())].to_vec();
                if arg(1) == "NULL" {
                    if let Some(f) = live.fds.get_mut(&in_fd) {
                        f.0 += n as u64;
                    }
                }
                if arg(3) == "NULL" {
                    if let Some(f) = live.fds.get_mut(&out_fd) {
                        f.0 += n as u64;
                    }
                }
                if mine(&op) {
                    push(
                        &mut live,
                        &mut calls,
                        Call::Write {
                            inode: dst,
                            offset: ooff,
                            data,
                        },
                    );
                }
            }
            "fsync" | "fdatasync" => {
                if let Some(inode) = fd_path(arg(0)).1.and_then(|p| live.inode(&p)) {
                    push(&mut live, &mut calls, Call::Sync { inode });
                }
            }
            _ => {}
        }
    }
    calls
}

// ---- crash states ----

/// Whether each call before `cut` had been forced to disk by then.
fn forced(calls: &[Call], cut: usize, root: &Path) -> Vec<bool> {
    // Names: the folder holding a name is the inode to sync. Resolved
    // against the names as the calls left them, in order.
    let mut live = Live::default();
    live.names.insert(root.to_path_buf(), ROOT_INODE);
    let mut parent_of: Vec<Vec<usize>> = vec![Vec::new(); cut];
    let mut target: Vec<Option<usize>> = vec![None; cut];
    for (i, c) in calls[..cut].iter().enumerate() {
        let parent = |live: &Live, p: &Path| p.parent().and_then(|d| live.names.get(d).copied());
        match c {
            Call::Link { path, .. } | Call::Unlink { path } => {
                parent_of[i] = parent(&live, path).into_iter().collect();
            }
            Call::Rename { from, to } => {
                parent_of[i] = [parent(&live, from), parent(&live, to)]
                    .into_iter()
                    .flatten()
                    .collect();
            }
            Call::Write { inode, .. } | Call::Truncate { inode, .. } => target[i] = Some(*inode),
            Call::Sync { .. } | Call::Ack => {}
        }
        live.apply(c);
    }
    let mut out = vec![false; cut];
    // Walk back: a call is forced if a later sync (before the cut) covers it.
    let mut synced: BTreeSet<usize> = BTreeSet::new();
    for i in (0..cut).rev() {
        match &calls[i] {
            Call::Sync { inode } => {
                synced.insert(*inode);
                out[i] = true;
            }
            Call::Ack => out[i] = true,
            _ => {
                out[i] = match target[i] {
                    Some(inode) => synced.contains(&inode),
                    None => {
                        !parent_of[i].is_empty() && parent_of[i].iter().all(|p| synced.contains(p))
                    }
                };
            }
        }
    }
    out
}

/// Writes the folder a chosen subset of calls leaves, under `to`.
fn materialize(
    calls: &[Call],
    keep: &[bool],
    torn: Option<(usize, usize)>,
    root: &Path,
    to: &Path,
) {
    let mut live = Live::default();
    live.names.insert(root.to_path_buf(), usize::MAX);
    live.dirs.insert(usize::MAX);
    for (i, c) in calls.iter().enumerate().take(keep.len()) {
        if !keep[i] {
            continue;
        }
        match (c, torn) {
            (
                Call::Write {
                    inode,
                    offset,
                    data,
                },
                Some((t, len)),
            ) if t == i => live.apply(&Call::Write {
                inode: *inode,
                offset: *offset,
                data: data[..len].to_vec(),
            }),
            // A name under a folder that is not there is not reachable.
            (Call::Link { path, .. }, _)
                if !path.parent().is_some_and(|p| live.names.contains_key(p)) => {}
            (Call::Rename { from, .. }, _) if !live.names.contains_key(from) => {}
            _ => live.apply(c),
        }
    }
    let mut paths: Vec<(&PathBuf, &usize)> = live.names.iter().collect();
    paths.sort();
    for (p, inode) in paths {
        let Ok(rel) = p.strip_prefix(root) else {
            continue;
        };
        // Reachable only if every folder above it is there.
        if p.ancestors()
            .skip(1)
            .take_while(|a| a.starts_with(root))
            .any(|a| !live.names.contains_key(a))
        {
            continue;
        }
        let target = to.join(rel);
        if live.dirs.contains(inode) {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            let mut bytes = live.data.get(inode).cloned().unwrap_or_default();
            bytes.resize(live.sizes.get(inode).copied().unwrap_or(0) as usize, 0);
            if let Some(d) = target.parent() {
                std::fs::create_dir_all(d).unwrap();
            }
            std::fs::write(&target, bytes).unwrap();
        }
    }
}

/// A call in a line, for failure messages.
fn describe(c: &Call) -> String {
    match c {
        Call::Write {
            inode,
            offset,
            data,
        } => format!("write to inode {inode} at {offset} (+{})", data.len()),
        other => format!("{other:?}"),
    }
}

/// A crash state: its kind, which calls before the cut are kept (the
/// cut is the vector's length), and a torn write (call, bytes kept).
type State = (&'static str, Vec<bool>, Option<(usize, usize)>);

/// The states a power loss could leave at each cut of the trace.
fn all_states(calls: &[Call], root: &Path) -> Vec<State> {
    let mut out = Vec::new();
    for cut in 1..=calls.len() {
        let f = forced(calls, cut, root);
        out.push(("all", vec![true; cut], None));
        if f.iter().any(|k| !k) {
            out.push(("synced", f.clone(), None));
        }
        // Each unforced call dropped while every later one is kept.
        for j in (0..cut).filter(|&i| !f[i]) {
            let mut keep = vec![true; cut];
            keep[j] = false;
            out.push(("drop-one", keep, None));
        }
        // The last write torn: only a prefix of its last 4 KiB page, or
        // half of it, reached the disk.
        if let Call::Write { data, .. } = &calls[cut - 1] {
            if data.len() > 1 {
                let page_start = (data.len() - 1) / 4096 * 4096;
                let in_page = page_start + (data.len() - page_start) / 3;
                for len in [in_page.max(1), data.len() / 2] {
                    out.push((
                        "torn",
                        vec![true; cut],
                        Some((cut - 1, len.clamp(1, data.len() - 1))),
                    ));
                }
            }
        }
    }
    out
}

#[derive(Default, Debug)]
struct Tally {
    tried: usize,
    clean: usize,
    damage: usize,
    empty: usize,
    lost: usize,
    /// Buffered: states holding fewer steps than were acknowledged (as
    /// promised; counted, not failed).
    behind: usize,
    partial: usize,
    wrong: usize,
    crashed: usize,
    failures: Vec<String>,
}

/// Opens one state and checks it against the workload: once a batch was
/// acknowledged, every state must open and verify, and (`durable`) hold
/// every acknowledged batch; buffered, it may hold fewer, never part of
/// one.
fn check(
    db: &Path,
    acked: usize,
    expected: &[Expected],
    tally: &mut Tally,
    what: &str,
    durable: bool,
) {
    tally.tried += 1;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<Option<usize>, Error> {
        if !Annals::exists(db) {
            return Ok(None);
        }
        let d = Annals::builder(db).create(false).open()?;
        d.verify()?;
        let now = snapshot_of(&d);
        // Steps that change no content (a checkpoint) leave states that
        // look alike: the latest one that matches counts.
        let same = |e: &Expected| e.seq == now.seq && e.main == now.main && e.branch == now.branch;
        let result = match expected.iter().rposition(same) {
            Some(s) => Ok(Some(s)),
            None if !expected.iter().any(|e| e.seq == now.seq) => Ok(Some(usize::MAX)),
            None => Ok(Some(usize::MAX - 1)),
        };
        d.close()?;
        result
    }));
    let fail = |kind: &str, t: &mut Tally| t.failures.push(format!("{what}: {kind}"));
    match outcome {
        Err(_) => {
            tally.crashed += 1;
            fail("panic", tally);
        }
        Ok(Err(Error::Corruption { seq, reason })) => {
            tally.damage += 1;
            if acked > 0 {
                fail(
                    &format!("damage reported at seq {seq}: {reason:.300}"),
                    tally,
                );
            }
        }
        Ok(Err(e)) => {
            // No database, or one that did not get as far as its store.
            if acked > 0 {
                tally.lost += 1;
                fail(&format!("open failed: {e}"), tally);
            } else {
                tally.empty += 1;
            }
        }
        Ok(Ok(None)) => {
            if acked > 0 {
                tally.lost += 1;
                fail("the database folder is gone", tally);
            } else {
                tally.empty += 1;
            }
        }
        Ok(Ok(Some(usize::MAX))) => {
            tally.partial += 1;
            fail("the head is not at a batch boundary", tally);
        }
        Ok(Ok(Some(s))) if s == usize::MAX - 1 => {
            tally.wrong += 1;
            fail("the events are not what the workload wrote", tally);
        }
        Ok(Ok(Some(s))) if s < acked && durable => {
            tally.lost += 1;
            fail(
                &format!("holds {s} steps, {acked} were acknowledged"),
                tally,
            );
        }
        Ok(Ok(Some(s))) => {
            tally.clean += 1;
            if s < acked {
                tally.behind += 1;
            }
        }
    }
}

fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn power_loss_states() {
    power_loss(false);
}

/// The same in buffered mode: batches not yet synced may be lost, never
/// part of one, and every state opens and verifies.
#[test]
fn power_loss_states_buffered() {
    power_loss(true);
}

fn power_loss(buffered: bool) {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    if !strace_available() {
        eprintln!("power_loss_states: skipped, strace is not installed (apt install strace)");
        return;
    }
    let budget: usize = std::env::var("ANNALS_POWER_LOSS_STATES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let db = root.join("db");
    let acks = dir.path().join("acks");
    let trace_path = dir.path().join("trace");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-y", "-xx", "-s", "67108864", "-o"])
        .arg(&trace_path)
        .args([
            "-e",
            "trace=open,openat,write,pwrite64,writev,pwritev,pwritev2,ftruncate,truncate,fallocate,\
             rename,renameat,renameat2,unlink,unlinkat,rmdir,mkdir,mkdirat,fsync,fdatasync,\
             sync_file_range,copy_file_range,lseek",
        ])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "power_loss_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD, &db)
        .env(ACKS, &acks)
        .envs(buffered.then_some((BUFFERED, "1")))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the traced writer failed");
    let trace = std::fs::read_to_string(&trace_path).unwrap();
    let calls = parse(&trace, &root, &acks);
    let expected = expected();
    let n_acks = calls.iter().filter(|c| matches!(c, Call::Ack)).count();
    assert_eq!(
        n_acks,
        expected.len() - 1,
        "every step acknowledged in the trace"
    );
    // sled panics on some damaged files (annals turns those into
    // `Error::Corruption`); the states below are meant to be damaged, so
    // the default hook's backtraces would only bury the summary.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // The untouched end state is the workload's.
    let end = tempfile::tempdir().unwrap();
    let mut tally = Tally::default();
    materialize(&calls, &vec![true; calls.len()], None, &root, end.path());
    check(
        &end.path().join("db"),
        n_acks,
        &expected,
        &mut tally,
        "end",
        true,
    );
    if let Some(keep) = std::env::var_os("ANNALS_POWER_LOSS_KEEP") {
        common::copy_dir(end.path(), &Path::new(&keep).join("model"));
        common::copy_dir(&root, &Path::new(&keep).join("real"));
        std::fs::copy(&trace_path, Path::new(&keep).join("trace")).unwrap();
        let listing: Vec<String> = calls
            .iter()
            .map(|c| match c {
                Call::Write {
                    inode,
                    offset,
                    data,
                } => format!("write {inode} @{offset} +{}", data.len()),
                other => format!("{other:?}"),
            })
            .collect();
        std::fs::write(Path::new(&keep).join("calls"), listing.join("\n")).unwrap();
    }
    assert_eq!(
        tally.clean, 1,
        "the traced run's own end state: {:?}",
        tally.failures
    );

    // Every state of every cut, then `budget` of them spread evenly over
    // that list (all of them if it is shorter).
    let states = all_states(&calls, &root);
    let stride = (states.len() as f64 / budget.max(1) as f64).max(1.0);
    let scratch = tempfile::tempdir().unwrap();
    let mut tally = Tally::default();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut k = 0.0;
    while (k as usize) < states.len() && tally.tried < budget {
        let (kind, keep, torn) = &states[k as usize];
        k += stride;
        let to = scratch.path().join(format!("s{}", tally.tried));
        materialize(&calls, keep, *torn, &root, &to);
        let acked = calls[..keep.len()]
            .iter()
            .filter(|c| matches!(c, Call::Ack))
            .count();
        let dropped: Vec<String> = keep
            .iter()
            .enumerate()
            .filter(|(_, k)| !**k)
            .map(|(i, _)| describe(&calls[i]))
            .collect();
        let what = match dropped.as_slice() {
            [one] => format!(
                "cut {}/{} ({kind}, {acked} acknowledged, dropped {one})",
                keep.len(),
                calls.len()
            ),
            _ => format!(
                "cut {}/{} ({kind}, {acked} acknowledged)",
                keep.len(),
                calls.len()
            ),
        };
        check(
            &to.join("db"),
            acked,
            &expected,
            &mut tally,
            &what,
            !buffered,
        );
        *by_kind.entry(kind).or_default() += 1;
        let _ = std::fs::remove_dir_all(&to);
    }
    let syncs = calls
        .iter()
        .filter(|c| matches!(c, Call::Sync { .. }))
        .count();
    let mode = if buffered { "buffered" } else { "durable" };
    println!(
        "power loss ({mode}): {} calls traced ({syncs} fsyncs, {n_acks} acknowledgements); {} states tried {by_kind:?}: \
         {} opened clean, {} empty (nothing acknowledged yet), {} damage reported (before any acknowledgement), \
         {} acknowledged lost, {} behind the acknowledgements (buffered), \
         {} partial batches, {} wrong contents, {} panics (of {} possible states)",
        calls.len(),
        tally.tried,
        tally.clean,
        tally.empty,
        tally.damage,
        tally.lost,
        tally.behind,
        tally.partial,
        tally.wrong,
        tally.crashed,
        states.len()
    );
    std::panic::set_hook(hook);
    for f in tally.failures.iter().take(20) {
        println!("  {f}");
    }
    assert!(
        tally.failures.is_empty(),
        "{} of {} states failed",
        tally.failures.len(),
        tally.tried
    );
}

/// The persistence model itself, on calls written by hand: a write needs
/// its file's fsync, a new name its folder's.
#[test]
fn the_model_keeps_only_what_was_forced() {
    let root = Path::new("/r");
    let file = PathBuf::from("/r/f");
    let write = Call::Write {
        inode: 1,
        offset: 0,
        data: b"abc".to_vec(),
    };
    let link = Call::Link {
        path: file.clone(),
        inode: 1,
        dir: false,
    };
    let calls = vec![
        link.clone(),
        write.clone(),
        Call::Sync { inode: 1 },
        Call::Ack,
        Call::Write {
            inode: 1,
            offset: 3,
            data: b"def".to_vec(),
        },
        Call::Sync { inode: ROOT_INODE },
    ];
    // Before the folder's sync the name is not forced, the bytes are.
    assert_eq!(forced(&calls, 5, root), [false, true, true, true, false]);
    // After it, the name is too; the second write never was.
    assert_eq!(
        forced(&calls, 6, root),
        [true, true, true, true, false, true]
    );
    let dir = tempfile::tempdir().unwrap();
    let f = forced(&calls, 6, root);
    materialize(&calls, &f, None, root, dir.path());
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"abc");
    // Torn: a prefix of the last write.
    let torn = tempfile::tempdir().unwrap();
    materialize(&calls, &[true; 5], Some((4, 1)), root, torn.path());
    assert_eq!(std::fs::read(torn.path().join("f")).unwrap(), b"abcd");
    // A name never synced: the file is not there at all.
    let gone = tempfile::tempdir().unwrap();
    materialize(&calls, &forced(&calls, 5, root), None, root, gone.path());
    assert!(!gone.path().join("f").exists());
    // Every kind of state is offered, and each keeps all that was forced
    // by its cut.
    let states = all_states(&calls, root);
    for kind in ["all", "synced", "drop-one", "torn"] {
        assert!(states.iter().any(|s| s.0 == kind), "{kind}");
    }
    for (_, keep, _) in &states {
        let f = forced(&calls, keep.len(), root);
        assert!(keep.iter().zip(&f).all(|(k, f)| *k || !*f));
    }
}

#[test]
fn strace_lines_parse() {
    let trace = "10 openat(AT_FDCWD</r>, \"\\x2f\\x72\\x2f\\x66\", O_WRONLY|O_CREAT|O_CLOEXEC, 0666) = 3</r/f>\n\
                 11 pwrite64(3<\\x2f\\x72\\x2f\\x66>, \"\\x61\\x62\", 2, 5 <unfinished ...>\n\
                 10 fsync(3</r/f>)        = 0\n\
                 11 <... pwrite64 resumed>)           = 2\n\
                 10 rename(\"\\x2f\\x72\\x2f\\x66\", \"\\x2f\\x72\\x2f\\x67\") = 0\n";
    let calls = parse(trace, Path::new("/r"), Path::new("/acks"));
    let kinds: Vec<String> = calls.iter().map(describe).collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(matches!(&calls[0], Call::Link { path, .. } if path == Path::new("/r/f")));
    assert!(matches!(&calls[1], Call::Sync { .. }));
    assert!(matches!(&calls[2], Call::Write { offset: 5, data, .. } if data == b"ab"));
    assert!(matches!(&calls[3], Call::Rename { to, .. } if to == Path::new("/r/g")));
}
