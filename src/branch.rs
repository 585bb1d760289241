//! What-if branches: a branch starts from main (or another branch) at a
//! seq, continues its seq numbering, and holds its own entries in a log of
//! its own. Nothing is copied at creation: entries up to the base are read
//! from the parent.

use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::intern::Names;
use crate::log::{Entry, Head, Log};
use crate::projection::Views;
use crate::time::Micros;

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

/// An open branch.
pub(crate) struct Branch {
    pub meta: BranchMeta,
    pub log: Arc<Log>,
    /// The branch's own entries, in seq order.
    pub entries: RwLock<Vec<Entry>>,
    /// Its head (the base until written to).
    pub head: RwLock<Head>,
    /// Views at the branch's head, computed on first use.
    pub views: Mutex<Option<Arc<(Names, Views)>>>,
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
