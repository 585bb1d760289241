//! The engine: what one open database holds (main, its branches, the
//! writer lock, the folder's lock), wired at open. Writes go through
//! [`Engine::commit`], which picks main or a branch as the target once;
//! reads through a [`Reader`].

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, MutexGuard};

use uuid::Uuid;

use crate::entry::Origin;
use crate::error::{Error, Result};
use crate::excise::Plan;
use crate::folder::{lock_dir, upgrade_derived, INDEX_DIR, LOCK_FILE, SNAPSHOT_DIR, STORE_DIR};
use crate::line::branch::{self, open_branch, Branch, BranchInfo, BranchMeta, Branches};
use crate::line::main::{Cadence, Main};
use crate::line::Lines;
use crate::log::Log;
use crate::projection::Part;
use crate::read::{AsOf, At, Reader};
use crate::record::{check_batch, check_expected, Durability, Op, Stats, Written};
use crate::store::{Storage, Store};
use crate::time::now_micros;
use crate::write::{commit, BranchTarget};
use crate::writer::{Writer, WriterLock};

/// A function that wraps the storage engine (see
/// [`crate::Builder::wrap_storage`]).
pub(crate) type StorageWrapper = Box<dyn FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage>>;

/// How to open a database (from [`crate::Builder`]).
pub(crate) struct Options {
    pub(crate) path: PathBuf,
    pub(crate) wrap: Option<StorageWrapper>,
    pub(crate) durability: Durability,
    pub(crate) cache_capacity_bytes: u64,
    pub(crate) cadence: Cadence,
    pub(crate) create: bool,
}

/// One open database.
pub(crate) struct Engine {
    dir: PathBuf,
    main: Main,
    branches: Branches,
    writer: WriterLock,
    durability: Durability,
    /// Held (flock) for as long as the database is open.
    lock: File,
}

impl Engine {
    /// Opens (or creates) the database in `o.path`: takes its lock,
    /// finishes an interrupted excision, opens the store, the derived
    /// state and the branches.
    pub(crate) fn open(o: Options) -> Result<Engine> {
        let dir = o.path;
        match fs::metadata(&dir) {
            Ok(m) if !m.is_dir() => {
                return Err(Error::BadPath {
                    path: dir,
                    reason: "is a file, not a database folder".into(),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !o.create {
                    return Err(Error::BadPath {
                        path: dir,
                        reason: "no database here (create one with `annals init`)".into(),
                    });
                }
                fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let lock = lock_dir(&dir)?;
        crate::excise::resume(&dir)?;
        let created = !dir.join(STORE_DIR).exists();
        let store = Store::open(&dir.join(STORE_DIR), o.cache_capacity_bytes)?;
        let mut store: Arc<dyn Storage> = Arc::new(store);
        if let Some(wrap) = o.wrap {
            store = wrap(store);
        }
        let log = Arc::new(Log::main(store));
        upgrade_derived(&dir)?;
        let main = Main::open(
            Arc::clone(&log),
            &dir.join(INDEX_DIR),
            &dir.join(SNAPSHOT_DIR),
            o.cadence,
        )?;
        if created {
            // The names of `LOCK`, `store/` and `index/`, and the folder's
            // own in its parent, reach the disk only with these syncs.
            crate::sync::sync_dir(&dir.join(LOCK_FILE))?;
            crate::sync::sync_dir(&dir)?;
        }
        let branches = Branches::open(&log)?;
        Ok(Engine {
            dir,
            main,
            branches,
            writer: WriterLock::default(),
            durability: o.durability,
            lock,
        })
    }

    /// The database folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Main.
    pub(crate) fn main(&self) -> &Main {
        &self.main
    }

    /// Main's log.
    pub(crate) fn log(&self) -> &Arc<Log> {
        self.main.log()
    }

    /// Main and the branches, for readers.
    pub(crate) fn lines(&self) -> Lines<'_> {
        Lines {
            main: &self.main,
            branches: &self.branches,
        }
    }

    /// An open branch by name.
    pub(crate) fn branch(&self, name: &str) -> Result<Arc<Branch>> {
        self.branches.get(name)
    }

    /// A reader of main or a branch, at its head or as of a point.
    pub(crate) fn reader(&self, at: &At) -> Result<Reader<'_>> {
        Reader::new(self.lines(), at)
    }

    /// A reader of main at its head.
    pub(crate) fn head_reader(&self) -> Reader<'_> {
        Reader::at(self.lines(), crate::line::Line::Main, self.main.head().seq)
    }

    /// The writer lock, refused while a failed write poisons it.
    pub(crate) fn lock_writer(&self) -> Result<MutexGuard<'_, Writer>> {
        self.writer.lock()
    }

    /// The writer lock even when poisoned: for work that must not race a
    /// commit but appends nothing (verify, subscribe, register).
    pub(crate) fn lock_writer_any(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock_any()
    }

    /// Writes a batch to main (`None`) or to a branch, atomically; with
    /// `expect_seq`, only if the head is at that seq.
    pub(crate) fn write(
        &self,
        branch: Option<&str>,
        ops: Vec<Op>,
        expect_seq: Option<u64>,
    ) -> Result<Vec<Written>> {
        check_batch(&ops)?;
        let branch = branch.map(|name| self.branch(name)).transpose()?;
        let mut writer = self.lock_writer()?;
        let head = match &branch {
            None => self.main.head(),
            Some(b) => b.head(),
        };
        check_expected(head, expect_seq)?;
        self.commit(&mut writer, branch.as_deref(), ops, false, &[])
    }

    /// Like [`Engine::write`] on main, with the operations decided by
    /// `decide` under the writer lock, from the state they will apply to:
    /// nothing can change between the decision and the write (importers'
    /// upserts). `validated`: every event of the ops has passed
    /// [`crate::Event::validate`] already.
    pub(crate) fn write_with<T>(
        &self,
        expect_seq: Option<u64>,
        validated: bool,
        decide: impl FnOnce(&Main) -> Result<(Vec<Op>, T)>,
    ) -> Result<(Vec<Written>, T)> {
        let mut writer = self.lock_writer()?;
        check_expected(self.main.head(), expect_seq)?;
        let (ops, decided) = decide(&self.main)?;
        check_batch(&ops)?;
        let written = self.commit(&mut writer, None, ops, validated, &[])?;
        Ok((written, decided))
    }

    /// Commits a batch to main (`None`) or a branch under the writer lock:
    /// the one place that picks the target.
    pub(crate) fn commit(
        &self,
        writer: &mut Writer,
        branch: Option<&Branch>,
        ops: Vec<Op>,
        validated: bool,
        origins: &[Option<Origin>],
    ) -> Result<Vec<Written>> {
        match branch {
            None => commit(writer, &self.main, self.durability, ops, validated, origins),
            Some(b) => {
                let reader = self.reader(&At::head().branch(&b.meta.name))?;
                let target = BranchTarget::new(b, reader, &self.main);
                commit(writer, &target, self.durability, ops, validated, origins)
            }
        }
    }

    /// Creates branch `name` from main (or from branch `from`) as of `at`
    /// (default: the head). Costs one metadata write.
    pub(crate) fn create_branch(
        &self,
        name: &str,
        from: Option<&str>,
        at: Option<AsOf>,
    ) -> Result<BranchInfo> {
        branch::check_branch_name(name)?;
        let _writer = self.lock_writer()?;
        if self.branches.contains(name) {
            return Err(Error::Conflict {
                at: String::new(),
                reason: format!("a branch named `{name}` exists"),
            });
        }
        let parent_at = At {
            branch: from.filter(|p| *p != "main").map(str::to_string),
            as_of: at,
        };
        let parent_log = match &parent_at.branch {
            None => Arc::clone(self.log()),
            Some(p) => Arc::clone(&self.branch(p)?.log),
        };
        let base_seq = self.reader(&parent_at)?.seq();
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
        let store = self.log().store();
        store.drop_log(name)?;
        branch::put_meta(store, &meta)?;
        let log = Arc::new(Log::branch(parent_log, base, name));
        let b = Arc::new(open_branch(meta, log, Vec::new(), base));
        let info = branch::branch_info(&b);
        self.branches.insert(b);
        Ok(info)
    }

    /// Every branch, by name.
    pub(crate) fn branches(&self) -> Vec<BranchInfo> {
        self.branches
            .all()
            .values()
            .map(|b| branch::branch_info(b))
            .collect()
    }

    /// Every open branch.
    pub(crate) fn open_branches(&self) -> Vec<Arc<Branch>> {
        self.branches.all().values().cloned().collect()
    }

    /// Drops a branch and frees its space. Refused while another branch
    /// starts from it.
    pub(crate) fn drop_branch(&self, name: &str) -> Result<()> {
        let _writer = self.lock_writer()?;
        self.branch(name)?;
        let children: Vec<String> = self
            .branches
            .all()
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
        let store = self.log().store();
        branch::remove(store, name)?;
        self.branches.remove(name);
        branch::unmark(store, name)
    }

    /// Sizes and counts. Counting reads every event's metadata.
    pub(crate) fn stats(&self) -> Result<Stats> {
        let state = self.main.state();
        let events = state.index.len() as u64;
        let (current, corrected) = state.index.counts()?;
        Ok(Stats {
            entries: state.head.seq,
            events,
            current: current as u64,
            corrected: corrected as u64,
            retracted: events - current as u64,
            countries: crate::projection::count_rows(
                &state.layered(&[Part::Country])?,
                Part::Country,
            )?,
            actors: crate::projection::count_rows(&state.layered(&[Part::Actor])?, Part::Actor)?,
            disk_bytes: self.log().store().disk_bytes() + self.main.derived_bytes(),
        })
    }

    /// Rebuilds main's derived state from the log.
    pub(crate) fn rebuild(&self) -> Result<()> {
        let writer = self.lock_writer_any();
        self.main.rebuild(&writer)
    }

    /// Writes a checkpoint of main's derived state now.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let writer = self.lock_writer_any();
        self.main.checkpoint(&writer)
    }

    /// Syncs and checkpoints if anything was written; reports errors.
    pub(crate) fn close(&self) -> Result<()> {
        let mut writer = self.lock_writer_any();
        if writer.dirty {
            self.log().store().sync()?;
            self.main.checkpoint(&writer)?;
            writer.dirty = false;
        }
        Ok(())
    }

    /// Another descriptor of the held database lock, which keeps it held
    /// after this engine is dropped.
    pub(crate) fn lock_handle(&self) -> Result<File> {
        self.lock
            .try_clone()
            .map_err(|e| Error::io(self.dir.join(LOCK_FILE), e))
    }

    /// The plan of an excision of event `id` for a reason already checked
    /// (`excise::check_reason`): the event must exist on main or a branch
    /// and not be excised already.
    pub(crate) fn plan_excision(&self, id: Uuid, reason: &str) -> Result<Plan> {
        let at = || format!("event {id}");
        if let Some(done) = crate::excise::record(self.log().store(), id)? {
            return Err(Error::Conflict {
                at: at(),
                reason: format!("already excised at {}", crate::time::format_micros(done.at)),
            });
        }
        let main: Vec<u64> = {
            let state = self.main.state();
            match state.index.lookup(&id)? {
                Some((n, _)) => state.index.versions(n)?,
                None => Vec::new(),
            }
        };
        let on_branch = self
            .branches
            .all()
            .values()
            .any(|b| !b.own_versions(id, u64::MAX).is_empty());
        if main.is_empty() && !on_branch {
            return Err(Error::NotFound {
                at: at(),
                what: "no event with this id on main or any branch".into(),
            });
        }
        Ok(Plan {
            id,
            at: now_micros(),
            reason: reason.to_string(),
            main,
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
