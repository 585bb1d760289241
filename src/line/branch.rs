//! What-if branches: a branch starts from main (or another branch) at a
//! seq, continues its seq numbering, and holds its own entries in a log of
//! its own. Nothing is copied at creation: entries up to the base are read
//! from the parent. Here: an open branch, its record, and the registry of
//! a database's branches.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::log::{Entry, Head, Log};
use crate::projection::Layered;
use crate::store::Storage;
use crate::sync::{lock, read, write};
use crate::time::{format_micros, Micros};
use crate::writer::Writer;

/// Metadata key prefix of branch records.
const BRANCH_KEY: &str = "branch/";
/// Metadata key prefix of the branches being dropped (see `drop_branch`).
const DROPPING_KEY: &str = "dropping/";

/// Most entries a branch may hold. Branch entries are kept in memory:
/// branches are for hypothetical edits, not bulk data.
pub const MAX_BRANCH_ENTRIES: usize = 100_000;

/// Longest branch name, in bytes.
pub const MAX_BRANCH_NAME_BYTES: usize = 64;

/// What is stored about a branch (metadata key `branch/NAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BranchMeta {
    pub name: String,
    /// The parent branch; `None` for main.
    pub parent: Option<String>,
    /// The parent's head at the branch point.
    pub base: Head,
    /// When the branch was created.
    pub created_at: Micros,
    /// The branch's head as of its last acknowledged write: its own log
    /// may be longer (a crash between the two writes), never shorter.
    pub durable_head: Head,
}

/// A branch as listed by [`crate::Annals::branches`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BranchInfo {
    /// The branch's name.
    pub name: String,
    /// The branch it starts from (`main` for main).
    pub parent: String,
    /// The seq of the parent it starts after.
    pub base_seq: u64,
    /// Its own head seq (equal to `base_seq` until it is written to).
    pub head_seq: u64,
    /// Entries of its own.
    pub entries: u64,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// Built-in views as layers (the parent's, then the branch's changes).
pub(crate) type NamedViews = Arc<Layered>;

/// An open branch.
pub(crate) struct Branch {
    pub meta: BranchMeta,
    pub log: Arc<Log>,
    /// The branch's own entries, in seq order.
    pub entries: RwLock<Vec<Entry>>,
    /// Its head (the base until written to).
    pub head: RwLock<Head>,
    /// Views at a seq of the branch (its head when computed), computed on
    /// first use.
    pub views: Mutex<Option<(u64, NamedViews)>>,
}

impl Branch {
    /// The branch's own entries up to `seq` that concern event `id`.
    pub(crate) fn own_versions(&self, id: Uuid, seq: u64) -> Vec<Entry> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .take_while(|e| e.seq <= seq)
            .filter(|e| e.body.id() == id)
            .cloned()
            .collect()
    }

    /// Ids of events the branch's own entries up to `seq` touch.
    pub(crate) fn touched(&self, seq: u64) -> Vec<Uuid> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<Uuid> = entries
            .iter()
            .take_while(|e| e.seq <= seq)
            .map(|e| e.body.id())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The branch's own entries up to `seq`.
    pub(crate) fn entries_upto(&self, seq: u64) -> Vec<Entry> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .take_while(|e| e.seq <= seq)
            .cloned()
            .collect()
    }

    pub(crate) fn head(&self) -> Head {
        *self.head.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Branch {
    /// Brings the branch up to a batch appended to its log, and records
    /// its new head, so that a branch log found shorter on open is
    /// reported as damage rather than read as a shorter history. The batch
    /// is committed already: a failure to record must not report it as
    /// failed (a retry would apply it twice); it stops further writes
    /// instead, since the storage is failing.
    pub(crate) fn committed(&self, writer: &mut Writer, new_head: Head, entries: &[Entry]) {
        write(&self.entries).extend_from_slice(entries);
        *write(&self.head) = new_head;
        *lock(&self.views) = None;
        let meta = BranchMeta {
            durable_head: new_head,
            ..self.meta.clone()
        };
        if let Err(e) = put_meta(self.log.store(), &meta) {
            writer.poison(format!("recording branch `{}`'s head: {e}", self.meta.name));
        }
    }

    /// Whether the branch's own entries in memory are exactly `entries`.
    pub(crate) fn holds(&self, entries: &[Entry]) -> bool {
        *read(&self.entries) == entries
    }

    /// How many entries of its own the branch holds.
    pub(crate) fn len(&self) -> usize {
        read(&self.entries).len()
    }
}

/// Writes a branch's record, durably.
pub(crate) fn put_meta(store: &dyn Storage, meta: &BranchMeta) -> Result<()> {
    let bytes = bincode::serde::encode_to_vec(meta, bincode::config::standard())
        .map_err(|e| Error::internal(format!("encoding branch metadata: {e}")))?;
    store.put_meta(&format!("{BRANCH_KEY}{}", meta.name), &bytes)?;
    store.sync()
}

/// Removes a branch's record and log. The drop is announced (durably)
/// before the record goes, so that a drop stopped midway (an error, a
/// crash) is finished on open: a log without a record and without this
/// mark is not dropped, since the record may have been lost rather than
/// removed.
pub(crate) fn remove(store: &dyn Storage, name: &str) -> Result<()> {
    let mark = format!("{DROPPING_KEY}{name}");
    store.put_meta(&mark, b"")?;
    store.sync()?;
    store.remove_meta(&format!("{BRANCH_KEY}{name}"))?;
    store.drop_log(name)?;
    store.sync()
}

/// Removes the mark of a finished drop. Durable with the next sync; a
/// mark that outlives its drop only makes the next open drop a log that
/// is gone already.
pub(crate) fn unmark(store: &dyn Storage, name: &str) -> Result<()> {
    store.remove_meta(&format!("{DROPPING_KEY}{name}"))
}

/// A database's open branches, by name.
#[derive(Default)]
pub(crate) struct Branches(RwLock<BTreeMap<String, Arc<Branch>>>);

impl Branches {
    /// Opens every branch recorded in `main`'s store (see
    /// [`load_branches`]).
    pub(crate) fn open(main: &Arc<Log>) -> Result<Branches> {
        Ok(Branches(RwLock::new(load_branches(main)?)))
    }

    /// An open branch by name.
    pub(crate) fn get(&self, name: &str) -> Result<Arc<Branch>> {
        read(&self.0)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                at: String::new(),
                what: format!("no branch named `{name}`"),
            })
    }

    /// Whether a branch of this name is open.
    pub(crate) fn contains(&self, name: &str) -> bool {
        read(&self.0).contains_key(name)
    }

    /// Every open branch, by name.
    pub(crate) fn all(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Branch>>> {
        read(&self.0)
    }

    /// Adds a branch just created. The caller holds the writer lock.
    pub(crate) fn insert(&self, branch: Arc<Branch>) {
        write(&self.0).insert(branch.meta.name.clone(), branch);
    }

    /// Forgets a branch just dropped. The caller holds the writer lock.
    pub(crate) fn remove(&self, name: &str) {
        write(&self.0).remove(name);
    }
}

pub(crate) fn open_branch(
    meta: BranchMeta,
    log: Arc<Log>,
    entries: Vec<Entry>,
    head: Head,
) -> Branch {
    Branch {
        meta,
        log,
        entries: RwLock::new(entries),
        head: RwLock::new(head),
        views: Mutex::new(None),
    }
}

pub(crate) fn branch_info(b: &Branch) -> BranchInfo {
    BranchInfo {
        name: b.meta.name.clone(),
        parent: b.meta.parent.clone().unwrap_or_else(|| "main".into()),
        base_seq: b.meta.base.seq,
        head_seq: b.head().seq,
        entries: read(&b.entries).len() as u64,
        created_at: format_micros(b.meta.created_at),
    }
}

/// Opens every branch recorded in the metadata, parents first, checking
/// that each base is part of its parent's chain and reading each branch's
/// own entries (checked) into memory.
pub(crate) fn load_branches(main: &Arc<Log>) -> Result<BTreeMap<String, Arc<Branch>>> {
    let mut metas: Vec<BranchMeta> = Vec::new();
    for (key, bytes) in main.store().scan_meta(BRANCH_KEY)? {
        let (meta, _): (BranchMeta, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                .map_err(|e| Error::corruption(0, format!("branch metadata `{key}`: {e}")))?;
        metas.push(meta);
    }
    // Finish the drops a failure or a crash interrupted: a dropping mark
    // with no record left means the drop went past the point of no
    // return; a mark beside its record, that it never got there.
    let store = main.store();
    let marks = store.scan_meta(DROPPING_KEY)?;
    for (key, _) in &marks {
        let name = key.get(DROPPING_KEY.len()..).unwrap_or_default();
        if !metas.iter().any(|m| m.name == name) {
            store.drop_log(name)?;
        }
        store.remove_meta(key)?;
    }
    if !marks.is_empty() {
        store.sync()?;
    }
    let mut open: BTreeMap<String, Arc<Branch>> = BTreeMap::new();
    while !metas.is_empty() {
        let before = metas.len();
        let mut rest = Vec::new();
        for meta in metas {
            let parent_log = match &meta.parent {
                None => Arc::clone(main),
                Some(p) => match open.get(p) {
                    Some(b) => Arc::clone(&b.log),
                    None => {
                        rest.push(meta);
                        continue;
                    }
                },
            };
            let base = parent_log.head_at(meta.base.seq)?;
            if base != meta.base {
                return Err(Error::corruption(
                    meta.base.seq,
                    format!(
                        "branch `{}` starts from an entry its parent does not have",
                        meta.name
                    ),
                ));
            }
            let log = Arc::new(Log::branch(parent_log, meta.base, &meta.name));
            let mut entries = Vec::new();
            let mut head = meta.base;
            for item in log.entries_after(meta.base) {
                let (entry, hash) = item?;
                head = Head {
                    seq: entry.seq,
                    hash,
                    recorded_at: entry.recorded_at,
                };
                entries.push(entry);
            }
            if head.seq < meta.durable_head.seq
                || (head.seq == meta.durable_head.seq && head != meta.durable_head)
            {
                return Err(Error::corruption(
                    (head.seq + 1).min(meta.durable_head.seq),
                    format!(
                        "branch `{}` ends at seq {} but was written up to seq {}; entries were lost or changed",
                        meta.name, head.seq, meta.durable_head.seq
                    ),
                ));
            }
            let name = meta.name.clone();
            open.insert(name, Arc::new(open_branch(meta, log, entries, head)));
        }
        if rest.len() == before {
            let names: Vec<String> = rest.iter().map(|m| m.name.clone()).collect();
            return Err(Error::corruption(
                0,
                format!("branches whose parent is missing: {}", names.join(", ")),
            ));
        }
        metas = rest;
    }
    Ok(open)
}

/// Checks a branch name: 1 to 64 bytes of lowercase letters, digits, `-`,
/// `_` and `.`, starting with a letter or digit; `main` is reserved.
pub fn check_branch_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_BRANCH_NAME_BYTES
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(Error::invalid(
            "branch",
            format!(
                "`{name}` is not a valid branch name (1-{MAX_BRANCH_NAME_BYTES} of a-z, 0-9, \
                 `-`, `_`, `.`, starting with a letter or digit)"
            ),
        ));
    }
    if name == "main" {
        return Err(Error::invalid(
            "branch",
            "`main` is the main log, not a branch",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names() {
        for ok in ["what-if", "no_attribution", "v2.1", "7"] {
            assert!(check_branch_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "main", "What-If", "-x", "a/b", "a b", &"x".repeat(65)] {
            assert!(check_branch_name(bad).is_err(), "{bad}");
        }
    }
}
