//! What-if branches: a branch starts from main (or another branch) at a
//! seq, continues its seq numbering, and holds its own entries in a log of
//! its own. Nothing is copied at creation: entries up to the base are read
//! from the parent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{
    check_batch, check_expected, lock, read, write, Annals, Op, Pending, Prepared, Where, Writer,
    Written,
};
use crate::entry::Origin;
use crate::error::{Error, Result};
use crate::intern::Names;
use crate::log::{Entry, Head, Log};
use crate::projection::Views;
use crate::read::{
    diff_rows, event_diff, keyed_rows, Against, AsOf, At, DiffRow, EventDiff, Reader, ViewKind,
};
use crate::time::{format_micros, now_micros, Micros};

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

/// Built-in views with the string table they refer to.
pub(crate) type NamedViews = Arc<(Names, Views)>;

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

impl Annals {
    /// Creates branch `name` from main (or from branch `from`) as of `at`
    /// (default: the head). Costs one metadata write, whatever the log's
    /// length.
    pub fn create_branch(
        &self,
        name: &str,
        from: Option<&str>,
        at: Option<AsOf>,
    ) -> Result<BranchInfo> {
        check_branch_name(name)?;
        let _writer = self.lock_writer()?;
        if read(&self.branches).contains_key(name) {
            return Err(Error::Conflict {
                at: String::new(),
                reason: format!("a branch named `{name}` exists"),
            });
        }
        let parent_log = match from {
            None | Some("main") => Arc::clone(&self.log),
            Some(p) => Arc::clone(&self.branch(p)?.log),
        };
        let parent_at = At {
            branch: from.filter(|p| *p != "main").map(str::to_string),
            as_of: at,
        };
        let base_seq = Reader::new(self, &parent_at)?.seq();
        let base = parent_log.head_at(base_seq)?;
        let meta = BranchMeta {
            name: name.to_string(),
            parent: parent_at.branch,
            base,
            created_at: now_micros(),
            durable_head: base,
        };
        // A branch of this name dropped by a crash midway may have left
        // its log behind: its entries must not become the new branch's.
        self.log.store().drop_log(name)?;
        self.put_branch_meta(&meta)?;
        let log = Arc::new(Log::branch(parent_log, base, name));
        let branch = Arc::new(open_branch(meta, log, Vec::new(), base));
        let info = branch_info(&branch);
        write(&self.branches).insert(name.to_string(), branch);
        Ok(info)
    }

    /// Every branch, by name.
    pub fn branches(&self) -> Vec<BranchInfo> {
        read(&self.branches)
            .values()
            .map(|b| branch_info(b))
            .collect()
    }

    /// Drops a branch and frees its space. Refused while another branch
    /// starts from it.
    pub fn drop_branch(&self, name: &str) -> Result<()> {
        let _writer = self.lock_writer()?;
        self.branch(name)?;
        let children: Vec<String> = read(&self.branches)
            .values()
            .filter(|b| b.meta.parent.as_deref() == Some(name))
            .map(|b| b.meta.name.clone())
            .collect();
        if !children.is_empty() {
            return Err(Error::Conflict {
                at: String::new(),
                reason: format!(
                    "branch `{name}` has branches of its own ({}); drop them first",
                    children.join(", ")
                ),
            });
        }
        // The drop is announced (durably) before the record goes, so that
        // a drop stopped midway (an error, a crash) is finished on open:
        // a log without a record and without this mark is not dropped,
        // since the record may have been lost rather than removed.
        let store = self.log.store();
        let mark = format!("{DROPPING_KEY}{name}");
        store.put_meta(&mark, b"")?;
        store.sync()?;
        store.remove_meta(&format!("{BRANCH_KEY}{name}"))?;
        store.drop_log(name)?;
        store.sync()?;
        write(&self.branches).remove(name);
        // Durable with the next sync; a mark that outlives its drop only
        // makes the next open drop a log that is gone already.
        store.remove_meta(&mark)?;
        Ok(())
    }

    /// The rows of a view that differ between branch `name` (at its head)
    /// and its parent, as of the branch's base or at the parent's head. An
    /// empty diff means the views are equal.
    pub fn diff(&self, name: &str, view: ViewKind, against: Against) -> Result<Vec<DiffRow>> {
        let branch = self.branch(name)?;
        let parent = At {
            branch: branch.meta.parent.clone(),
            as_of: match against {
                Against::Base => Some(AsOf::Seq(branch.meta.base.seq)),
                Against::Head => None,
            },
        };
        let main = keyed_rows(&Reader::new(self, &parent)?, view)?;
        let mine = keyed_rows(&Reader::new(self, &At::head().branch(name))?, view)?;
        Ok(diff_rows(main, mine))
    }

    /// The events whose current state differs between branch `name` (at
    /// its head) and its parent as of the branch's base or at the
    /// parent's head, in id order: added, removed, or changed with the
    /// fields that differ. Reads only the events either side changed
    /// since the base. An empty list means the two hold the same events.
    pub fn diff_events(&self, name: &str, against: Against) -> Result<Vec<EventDiff>> {
        let branch = self.branch(name)?;
        let base = branch.meta.base.seq;
        let parent = Reader::new(
            self,
            &At {
                branch: branch.meta.parent.clone(),
                as_of: match against {
                    Against::Base => Some(AsOf::Seq(base)),
                    Against::Head => None,
                },
            },
        )?;
        let mine = Reader::new(self, &At::head().branch(name))?;
        let mut ids = branch.touched(mine.seq());
        if parent.seq() > base {
            let since = parent.changes_since(base, &crate::query::Query::new())?;
            ids.extend(since.into_iter().map(|c| c.id));
            ids.sort_unstable();
            ids.dedup();
        }
        let mut out = Vec::new();
        for id in ids {
            if let Some(d) = event_diff(id, parent.get(id)?, mine.get(id)?) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Writes a batch to main (`None` or `Some("main")`) or to a branch:
    /// [`Annals::write`] or [`Annals::write_branch`].
    pub fn write_on(
        &self,
        branch: Option<&str>,
        ops: Vec<Op>,
        expect_seq: Option<u64>,
    ) -> Result<Vec<Written>> {
        match branch {
            None | Some("main") => self.write(ops, expect_seq),
            Some(name) => self.write_branch(name, ops, expect_seq),
        }
    }

    /// Writes a batch to branch `name`; see [`Annals::write`]. Main never
    /// sees it.
    pub fn write_branch(
        &self,
        name: &str,
        ops: Vec<Op>,
        expect_seq: Option<u64>,
    ) -> Result<Vec<Written>> {
        check_batch(&ops)?;
        let branch = self.branch(name)?;
        let mut writer = self.lock_writer()?;
        check_expected(branch.head(), expect_seq)?;
        self.commit_branch(&mut writer, &branch, ops, &[])
    }

    /// Prepares and appends a batch to a branch under the writer lock;
    /// `origins` (by op; may be empty) marks merged entries.
    pub(crate) fn commit_branch(
        &self,
        writer: &mut Writer,
        branch: &Branch,
        ops: Vec<Op>,
        origins: &[Option<Origin>],
    ) -> Result<Vec<Written>> {
        let name = &branch.meta.name;
        let head = branch.head();
        let own = read(&branch.entries).len();
        if own + ops.len() > MAX_BRANCH_ENTRIES {
            return Err(Error::invalid(
                "branch",
                format!("branch `{name}` would exceed {MAX_BRANCH_ENTRIES} entries of its own"),
            ));
        }
        let reader = Reader::new(self, &At::head().branch(name))?;
        let Prepared {
            entries, written, ..
        } = self.prepare(&branch.log, head, ops, false, origins, |id| {
            Ok(reader.get(id)?.map(|r| Pending {
                created: r.position.seq,
                original: Where::Log(r.position.seq),
                current: r.retracted_seq.is_none().then_some(Where::Log(
                    r.position.corrected_seq.unwrap_or(r.position.seq),
                )),
            }))
        })?;
        if entries.is_empty() {
            return Ok(written);
        }
        let new_head = self.append_locked(writer, &branch.log, head, &entries)?;
        write(&branch.entries).extend(entries);
        *write(&branch.head) = new_head;
        *lock(&branch.views) = None;
        // Record the head, so that a branch log found shorter on open is
        // reported as damage rather than read as a shorter history. The
        // batch is committed already: a failure here must not report it
        // as failed (a retry would apply it twice); it stops further
        // writes instead, since the storage is failing.
        let meta = BranchMeta {
            durable_head: new_head,
            ..branch.meta.clone()
        };
        if let Err(e) = self.put_branch_meta(&meta) {
            writer.poisoned = Some(format!("recording branch `{name}`'s head: {e}"));
        }
        Ok(written)
    }

    fn put_branch_meta(&self, meta: &BranchMeta) -> Result<()> {
        let bytes = bincode::serde::encode_to_vec(meta, bincode::config::standard())
            .map_err(|e| Error::Storage(format!("encoding branch metadata: {e}")))?;
        let store = self.log.store();
        store.put_meta(&format!("{BRANCH_KEY}{}", meta.name), &bytes)?;
        store.sync()
    }

    /// Checks each branch: its base is in its parent's chain with the same
    /// hash, and its own entries re-read from storage are intact and the
    /// ones held in memory. Returns how many were checked.
    pub(crate) fn verify_branches(&self) -> Result<u64> {
        let branches: Vec<Arc<Branch>> = read(&self.branches).values().cloned().collect();
        for b in &branches {
            let base = b.log.base();
            if b.log.head_at(base.seq)? != base {
                return Err(Error::corruption(
                    base.seq,
                    format!(
                        "branch `{}` starts from an entry its parent does not have",
                        b.meta.name
                    ),
                ));
            }
            let stored: Vec<Entry> = b
                .log
                .entries_after(base)
                .map(|r| r.map(|(e, _)| e))
                .collect::<Result<_>>()?;
            if stored != *read(&b.entries) {
                return Err(Error::corruption(
                    base.seq + 1,
                    format!(
                        "branch `{}`: stored entries differ from the open branch",
                        b.meta.name
                    ),
                ));
            }
            for entry in &stored {
                crate::merge::check_origin(self, entry)?;
                crate::integrity::check_excised(self, entry)?;
            }
        }
        Ok(branches.len() as u64)
    }
}

fn open_branch(meta: BranchMeta, log: Arc<Log>, entries: Vec<Entry>, head: Head) -> Branch {
    Branch {
        meta,
        log,
        entries: RwLock::new(entries),
        head: RwLock::new(head),
        views: Mutex::new(None),
    }
}

fn branch_info(b: &Branch) -> BranchInfo {
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
            // The record's head was durable (written with the branch's
            // last acknowledged batch); a torn batch after it goes.
            log.drop_torn_tail(meta.durable_head.seq)?;
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
