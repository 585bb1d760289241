//! View snapshots: the built-in views written to `snapshots/SEQ.views`
//! every `snapshot_every_entries` entries, so that a view as of any seq
//! replays at most that many entries. A cache of the log: checked against
//! the log's chain before use, skipped when damaged.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::log::{Head, Log};
use crate::projection::Views;
use crate::state::{load_checkpoint, save_checkpoint, State};
use crate::sync::lock;

/// Most view snapshots kept on disk.
const MAX_SNAPSHOTS: usize = 20;

/// The snapshot files of one database, by seq.
pub(crate) struct Snapshots {
    dir: PathBuf,
    files: Mutex<BTreeMap<u64, PathBuf>>,
}

impl Snapshots {
    /// The snapshots in folder `dir` (none if it does not exist).
    pub(crate) fn open(dir: &Path) -> Snapshots {
        Snapshots {
            dir: dir.to_path_buf(),
            files: Mutex::new(list_snapshots(dir)),
        }
    }

    /// The view snapshot at the greatest seq at or before `seq` that
    /// matches `log`, or empty views at seq 0.
    pub(crate) fn at_or_before(&self, log: &Log, seq: u64) -> (Head, Views) {
        let candidates: Vec<(u64, PathBuf)> = lock(&self.files)
            .range(..=seq)
            .rev()
            .map(|(s, p)| (*s, p.clone()))
            .collect();
        first_valid(log, candidates).unwrap_or((Head::default(), Views::default()))
    }

    /// The least snapshot after `seq` that matches `log`, if any.
    pub(crate) fn after(&self, log: &Log, seq: u64) -> Option<(Head, Views)> {
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

    /// Writes a snapshot of the views of `state`. Called by the writer.
    pub(crate) fn save(&self, state: &State) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.dir.join(format!("{:020}.views", state.head.seq));
        save_checkpoint(&path, &(state.head, state.views.borrowed()?), true)?;
        let mut files = lock(&self.files);
        files.insert(state.head.seq, path);
        // Thin out: past MAX_SNAPSHOTS, every other one goes (the newest
        // stays), so disk stays bounded while the snapshots stay spread
        // over the whole log: an as-of view replays about head / (2 *
        // MAX_SNAPSHOTS) entries on average, a few percent of a rebuild.
        if files.len() > MAX_SNAPSHOTS {
            let drop: Vec<u64> = files.keys().rev().skip(1).step_by(2).copied().collect();
            for seq in drop {
                if let Some(p) = files.remove(&seq) {
                    let _ = fs::remove_file(p);
                }
            }
        }
        Ok(())
    }
}

/// The first of the candidate snapshot files that is intact and matches
/// the log (a damaged or foreign one is skipped).
fn first_valid(log: &Log, candidates: Vec<(u64, PathBuf)>) -> Option<(Head, Views)> {
    candidates.into_iter().find_map(|(s, path)| {
        let (head, views) = load_checkpoint::<(Head, Views)>(&path)?;
        (head.seq == s && log.head_at(s).is_ok_and(|h| h == head)).then_some((head, views))
    })
}

/// The view snapshot files in `dir`, by seq.
fn list_snapshots(dir: &Path) -> BTreeMap<u64, PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let seq = name.strip_suffix(".views")?.parse().ok()?;
            Some((seq, e.path()))
        })
        .collect()
}
