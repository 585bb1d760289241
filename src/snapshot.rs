//! View snapshots: the built-in views written to `snapshots/SEQ.views`
//! every `snapshot_every_entries` entries, so that a view as of any seq
//! replays at most that many entries. A cache of the log: checked against
//! the log's chain before use, skipped when damaged.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::db::{lock, read, Annals, Writer};
use crate::error::{Error, Result};
use crate::intern::Names;
use crate::log::Head;
use crate::projection::Views;
use crate::state::save_checkpoint;

/// Most view snapshots kept on disk.
const MAX_SNAPSHOTS: usize = 20;

/// Folder of the snapshot files, in the database folder.
pub(crate) const SNAPSHOT_DIR: &str = "snapshots";

impl Annals {
    /// The view snapshot at the greatest seq at or before `seq` that
    /// matches the log, or empty views at seq 0.
    pub(crate) fn snapshot_at_or_before(&self, seq: u64) -> Result<(Head, Views)> {
        let candidates: Vec<(u64, PathBuf)> = lock(&self.snapshots)
            .range(..=seq)
            .rev()
            .map(|(s, p)| (*s, p.clone()))
            .collect();
        Ok(self
            .first_valid_snapshot(candidates)
            .unwrap_or((Head::default(), Views::default())))
    }

    /// The seqs of the nearest folds around `seq`: the greatest snapshot at
    /// or before it (0 if none) and the least snapshot after it (or the
    /// head).
    pub(crate) fn snapshot_seqs_around(&self, seq: u64) -> (u64, u64) {
        let snaps = lock(&self.snapshots);
        let earlier = snaps.range(..=seq).next_back().map_or(0, |(s, _)| *s);
        let head = self.head().seq;
        let later = snaps
            .range(seq + 1..)
            .next()
            .map_or(head, |(s, _)| (*s).min(head));
        (earlier, later)
    }

    /// The views at the least valid snapshot after `seq`, or at the head.
    /// With the string table to fold with: taken together with the head's
    /// views, since entries committed in between may have added names.
    pub(crate) fn views_at_or_after(&self, seq: u64) -> Result<(Head, Views, Names)> {
        let candidates: Vec<(u64, PathBuf)> = lock(&self.snapshots)
            .range(seq + 1..)
            .map(|(s, p)| (*s, p.clone()))
            .collect();
        if let Some((head, views)) = self.first_valid_snapshot(candidates) {
            return Ok((head, views, read(&self.state).names.clone()));
        }
        let state = read(&self.state);
        Ok((state.head, state.views.to_views()?, state.names.clone()))
    }

    /// The first of the candidate snapshot files that is intact and
    /// matches the log (a damaged or foreign one is skipped).
    fn first_valid_snapshot(&self, candidates: Vec<(u64, PathBuf)>) -> Option<(Head, Views)> {
        candidates.into_iter().find_map(|(s, path)| {
            let (head, views) = crate::state::load_checkpoint::<(Head, Views)>(&path)?;
            (head.seq == s && self.log.head_at(s).is_ok_and(|h| h == head)).then_some((head, views))
        })
    }

    pub(crate) fn snapshot_locked(&self, _writer: &Writer) -> Result<()> {
        let dir = self.dir.join(SNAPSHOT_DIR);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let (head, path) = {
            let state = read(&self.state);
            let path = dir.join(format!("{:020}.views", state.head.seq));
            save_checkpoint(&path, &(state.head, state.views.borrowed()?), true)?;
            (state.head, path)
        };
        let mut snaps = lock(&self.snapshots);
        snaps.insert(head.seq, path);
        // Thin out: past MAX_SNAPSHOTS, every other one goes (the newest
        // stays), so disk stays bounded while the snapshots stay spread
        // over the whole log: an as-of view replays about head / (2 *
        // MAX_SNAPSHOTS) entries on average, a few percent of a rebuild.
        if snaps.len() > MAX_SNAPSHOTS {
            let drop: Vec<u64> = snaps.keys().rev().skip(1).step_by(2).copied().collect();
            for seq in drop {
                if let Some(p) = snaps.remove(&seq) {
                    let _ = fs::remove_file(p);
                }
            }
        }
        Ok(())
    }
}

/// The view snapshot files in `dir`, by seq.
pub(crate) fn list_snapshots(dir: &Path) -> BTreeMap<u64, PathBuf> {
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
