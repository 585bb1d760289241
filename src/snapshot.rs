//! View snapshots: the built-in views as of a seq, kept every
//! `snapshot_every_entries` entries so that a view as of any seq starts
//! from the nearest one and folds at most that many entries.
//!
//! A snapshot is a folder `snapshots/SEQ/` holding the runs the views
//! were made of at that seq (hard links to the head's runs, so a
//! snapshot costs no disk until merging replaces those runs), the cells
//! changed since them as one more run, and a small file naming them. A
//! cache of the log: checked against the log's chain before use, skipped
//! when damaged.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::log::{Head, Log};
use crate::projection::{Layered, Part};
use crate::runfile::{self, Run};
use crate::state::{load_checkpoint, save_checkpoint, State};
use crate::sync::{lock, sync_dir};

/// Most view snapshots kept on disk.
const MAX_SNAPSHOTS: usize = 20;
/// The file naming a snapshot's runs, in its folder.
const SNAP_FILE: &str = "SNAP";

/// The snapshot folders of one database, by seq.
pub(crate) struct Snapshots {
    dir: PathBuf,
    files: Mutex<BTreeMap<u64, PathBuf>>,
}

impl Snapshots {
    /// The snapshots in folder `dir` (none if it does not exist). Files of
    /// the earlier layout (one whole copy of the views per file) go.
    pub(crate) fn open(dir: &Path) -> Snapshots {
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".views") || name.ends_with(".tmp") {
                    let _ = remove(&e.path());
                }
            }
        }
        Snapshots {
            dir: dir.to_path_buf(),
            files: Mutex::new(list_snapshots(dir)),
        }
    }

    /// The views at the greatest valid snapshot at or before `seq`, or
    /// empty views at seq 0.
    pub(crate) fn at_or_before(&self, log: &Log, seq: u64) -> (Head, Layered) {
        let candidates: Vec<(u64, PathBuf)> = lock(&self.files)
            .range(..=seq)
            .rev()
            .map(|(s, p)| (*s, p.clone()))
            .collect();
        first_valid(log, candidates).unwrap_or((Head::default(), Layered::default()))
    }

    /// The views at the least valid snapshot after `seq`, if any.
    pub(crate) fn after(&self, log: &Log, seq: u64) -> Option<(Head, Layered)> {
        let candidates: Vec<(u64, PathBuf)> = lock(&self.files)
            .range(seq + 1..)
            .map(|(s, p)| (*s, p.clone()))
            .collect();
        first_valid(log, candidates)
    }

    /// The seqs of the nearest folds around `seq`: the greatest snapshot at
    /// or before it (0 if none) and the least snapshot after it (or
    /// `head`).
    pub(crate) fn seqs_around(&self, seq: u64, head: u64) -> (u64, u64) {
        let files = lock(&self.files);
        let earlier = files.range(..=seq).next_back().map_or(0, |(s, _)| *s);
        let later = files
            .range(seq + 1..)
            .next()
            .map_or(head, |(s, _)| (*s).min(head));
        (earlier, later)
    }

    /// The seq of the latest snapshot, if any.
    pub(crate) fn latest(&self) -> Option<u64> {
        lock(&self.files).keys().next_back().copied()
    }

    /// Removes every snapshot (a rebuild starts them again).
    pub(crate) fn clear(&self) -> Result<()> {
        let mut files = lock(&self.files);
        for (_, p) in std::mem::take(&mut *files) {
            match remove(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&p, e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Takes a snapshot of the views of `state`. Called by the writer.
    pub(crate) fn save(&self, state: &State) -> Result<()> {
        let seq = state.head.seq;
        let folder = self.dir.join(format!("{seq:020}"));
        let tmp = self.dir.join(format!("{seq:020}.tmp"));
        let _ = remove(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut names = Vec::new();
        for run in state.views.runs() {
            let name = run
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let to = tmp.join(&name);
            if fs::hard_link(run.path(), &to).is_err() {
                fs::copy(run.path(), &to).map_err(|e| Error::io(&to, e))?;
            }
            names.push(name);
        }
        let all = Part::ALL;
        if let Some(delta) = state.layered(&all)?.mems.first() {
            runfile::write_run(&tmp.join("delta.run"), delta.iter().cloned())?;
            names.push("delta.run".to_string());
        }
        save_checkpoint(
            &tmp.join(SNAP_FILE),
            &(state.head, names, crate::state::INDEX_FORMAT),
            false,
        )?;
        let _ = remove(&folder);
        fs::rename(&tmp, &folder).map_err(|e| Error::io(&folder, e))?;
        sync_dir(&folder)?;
        let mut files = lock(&self.files);
        files.insert(seq, folder);
        // Thin out: past MAX_SNAPSHOTS, every other one goes (the newest
        // stays), so disk stays bounded while the snapshots stay spread
        // over the whole log: an as-of view folds about head / (2 *
        // MAX_SNAPSHOTS) entries on average, a few percent of a rebuild.
        if files.len() > MAX_SNAPSHOTS {
            let drop: Vec<u64> = files.keys().rev().skip(1).step_by(2).copied().collect();
            for seq in drop {
                if let Some(p) = files.remove(&seq) {
                    let _ = remove(&p);
                }
            }
        }
        Ok(())
    }
}

fn remove(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// The first of the candidate snapshots that is intact and matches the
/// log (a damaged or foreign one is skipped).
fn first_valid(log: &Log, candidates: Vec<(u64, PathBuf)>) -> Option<(Head, Layered)> {
    candidates.into_iter().find_map(|(s, folder)| {
        let (head, names, format) =
            load_checkpoint::<(Head, Vec<String>, u32)>(&folder.join(SNAP_FILE))?;
        if head.seq != s
            || log.head_at(s).ok() != Some(head)
            || format != crate::state::INDEX_FORMAT
        {
            return None;
        }
        let runs = names
            .iter()
            .map(|n| Run::open(&folder.join(n)).map(Arc::new))
            .collect::<Result<Vec<_>>>()
            .ok()?;
        Some((
            head,
            Layered {
                runs,
                mems: Vec::new(),
            },
        ))
    })
}

/// The snapshot folders in `dir`, by seq.
fn list_snapshots(dir: &Path) -> BTreeMap<u64, PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let seq = name.parse().ok()?;
            e.path().is_dir().then(|| (seq, e.path()))
        })
        .collect()
}
