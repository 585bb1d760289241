//! Merging a branch into main or another branch: three-way by event id
//! against the point where their histories part, written as one atomic
//! batch on the target whose entries record where each change came from.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::engine::Engine;
use crate::entry::{hex, Body, Entry, Hash, Head, Origin};
use crate::error::{Error, Result};
use crate::line::branch::Branch;
use crate::line::Line;
use crate::model::Event;
use crate::read::{ChangeKind, Reader};
use crate::record::{check_batch, Op, Record, Written};

/// What a merge does with an event changed on both sides since the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Write nothing and report the conflicts (the default).
    #[default]
    Fail,
    /// The branch's version wins.
    Branch,
    /// The target's version stays.
    Target,
}

/// How to merge; see [`crate::Annals::merge`].
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// The branch to merge into; `None` for main.
    pub into: Option<String>,
    /// Work out and report the merge without writing anything.
    pub dry_run: bool,
    /// What to do with conflicts.
    pub on_conflict: OnConflict,
}

/// One change a merge applies (or, in a dry run, would apply) to the target.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeChange {
    /// The event.
    pub id: Uuid,
    /// What the change does to it on the target.
    pub kind: ChangeKind,
    /// The branch entry the change comes from.
    pub origin: Origin,
    /// Whether this change settles a conflict in the branch's favour.
    pub resolves_conflict: bool,
}

/// An event changed differently on both sides since the base.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeConflict {
    /// The event.
    pub id: Uuid,
    /// Its record at the base (none if created on both sides since).
    pub base: Option<Record>,
    /// Its record on the target.
    pub target: Option<Record>,
    /// Its record on the branch.
    pub branch: Option<Record>,
}

/// What [`crate::Annals::merge`] did, or in a dry run would do.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeReport {
    /// The branch merged.
    pub branch: String,
    /// The target (`main` or a branch name).
    pub into: String,
    /// The seq where the two histories part.
    pub base_seq: u64,
    /// Whether the target had not moved since the base, so that the
    /// branch's entries were replayed one by one.
    pub fast_forward: bool,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// The changes applied, in the order of the branch entries they come from.
    pub changes: Vec<MergeChange>,
    /// Events changed on both sides. With [`OnConflict::Branch`] each has
    /// a change among `changes`; with [`OnConflict::Target`] none has.
    pub conflicts: Vec<MergeConflict>,
    /// The outcome of each operation written (empty in a dry run).
    pub written: Vec<Written>,
    /// The target's head afterwards.
    pub head: Head,
}

impl MergeReport {
    /// The report as JSON: what `annals merge` prints.
    pub fn to_json(&self) -> Value {
        let record = |r: &Option<Record>| r.as_ref().map(Record::to_json);
        serde_json::json!({
            "branch": self.branch,
            "into": self.into,
            "base_seq": self.base_seq,
            "fast_forward": self.fast_forward,
            "dry_run": self.dry_run,
            "changes": self.changes.iter().map(|c| serde_json::json!({
                "id": c.id.to_string(),
                "change": c.kind,
                "merged_from": c.origin.to_json(),
                "resolves_conflict": c.resolves_conflict,
            })).collect::<Vec<_>>(),
            "conflicts": self.conflicts.iter().map(|c| serde_json::json!({
                "id": c.id.to_string(),
                "base": record(&c.base),
                "target": record(&c.target),
                "branch": record(&c.branch),
            })).collect::<Vec<_>>(),
            "written": self.written.iter().filter(|w| w.new_entry).count(),
            "head": {"seq": self.head.seq, "hash": hex(&self.head.hash)},
        })
    }
}

/// An event's state at one point, as a merge compares it: retracted
/// events are equal whatever their last version or reason.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State<'a> {
    Absent,
    Live(&'a Event),
    Retracted,
}

fn state_of(record: &Option<Record>) -> State<'_> {
    match record {
        None => State::Absent,
        Some(r) if r.retracted_seq.is_some() => State::Retracted,
        Some(r) => State::Live(&r.event),
    }
}

/// A line of history (main, or a branch) with the seq up to which it is
/// seen from the line it was reached from.
pub(crate) struct Step {
    pub(crate) branch: Option<Arc<Branch>>,
    pub(crate) upto: u64,
}

impl Step {
    fn name(&self) -> &str {
        self.branch
            .as_ref()
            .map_or("main", |b| b.meta.name.as_str())
    }

    fn line(&self) -> Line {
        line_of(&self.branch)
    }
}

/// The line of a branch, or main's for `None`.
fn line_of(branch: &Option<Arc<Branch>>) -> Line {
    match branch {
        None => Line::Main,
        Some(b) => Line::Branch(Arc::clone(b)),
    }
}

/// The lines `branch` reads through, from itself back to main.
fn lineage(db: &Engine, branch: Option<Arc<Branch>>) -> Result<Vec<Step>> {
    let upto = branch
        .as_ref()
        .map_or_else(|| db.main().head().seq, |b| b.head().seq);
    lineage_upto(db, branch, upto)
}

/// The lines `branch` reads through as of its seq `upto`, from itself back
/// to main, each with the last seq it contributes.
pub(crate) fn lineage_upto(
    db: &Engine,
    branch: Option<Arc<Branch>>,
    mut upto: u64,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut next = branch;
    while let Some(b) = next {
        let parent = match &b.meta.parent {
            Some(p) => Some(db.branch(p)?),
            None => None,
        };
        let base = b.meta.base.seq;
        steps.push(Step {
            branch: Some(b),
            upto,
        });
        upto = upto.min(base);
        next = parent;
    }
    steps.push(Step { branch: None, upto });
    Ok(steps)
}

/// The operation that brings the target from `target` to `source`, with
/// the kind of change it is; `None` if nothing needs writing.
/// A retraction's reason as merged. Retractions written before blank
/// reasons were refused may have none; the merge must still carry them.
fn carried(reason: String, branch: &str) -> String {
    match reason.trim().is_empty() {
        true => format!("retracted on branch `{branch}` (no reason given)"),
        false => reason,
    }
}

fn op_for(
    id: Uuid,
    target: &State<'_>,
    source: &State<'_>,
    reason: &str,
    into: &str,
) -> Result<Option<(Op, ChangeKind)>> {
    Ok(match (target, source) {
        (_, State::Absent) => None,
        (State::Absent, State::Live(e)) => Some((Op::Append((*e).clone()), ChangeKind::Created)),
        (State::Live(_), State::Live(e)) => {
            Some((Op::Correct((*e).clone()), ChangeKind::Corrected))
        }
        (State::Live(_), State::Retracted) => Some((
            Op::Retract {
                id,
                reason: reason.to_string(),
            },
            ChangeKind::Retracted,
        )),
        // Created and retracted on the branch: there is nothing to bring.
        (State::Absent, State::Retracted) | (State::Retracted, State::Retracted) => None,
        (State::Retracted, State::Live(_)) => {
            return Err(Error::Conflict {
                at: format!("event {id}"),
                reason: format!(
                    "retracted on `{into}`, changed on the branch; a retraction is final, \
                     so the branch's version cannot be applied (use --on-conflict target)"
                ),
            })
        }
    })
}

/// Merges branch `branch` into main or into `opts.into`.
///
/// Three-way by event id against the base, the last seq the two share:
/// an event the branch changed since the base is brought over if the
/// target has not changed it since (created events are appended,
/// corrections and retractions applied); an event both changed, to
/// different states, is a conflict, settled by `opts.on_conflict`.
/// An event both changed to the same state is not a conflict. If the
/// target's version of an event came from an earlier merge of this
/// branch, and the branch held that version at the merged seq, the
/// base for that event moves there, so merging again only brings what
/// changed since. When the target has not moved since the base, the
/// branch's entries are replayed one by one (a fast-forward).
///
/// All changes are one atomic batch on the target; each entry records
/// the branch, seq and hash of the branch entry it applies
/// ([`crate::Version::origin`]), which `verify` checks. The branch is
/// left as it was. With [`OnConflict::Fail`] and conflicts, nothing is
/// written and the error lists them; [`MergeOptions::dry_run`] returns
/// the same report without writing.
pub(crate) fn merge(engine: &Engine, branch: &str, opts: &MergeOptions) -> Result<MergeReport> {
    if branch == "main" {
        return Err(Error::invalid(
            "branch",
            "main cannot be merged; merge a branch into main",
        ));
    }
    let into = opts.into.as_deref().unwrap_or("main");
    if into == branch {
        return Err(Error::invalid(
            "into",
            format!("cannot merge branch `{branch}` into itself"),
        ));
    }
    // The whole merge, from finding the branches on, sees one state of
    // both lines: no write or drop can come between.
    let mut writer = engine.lock_writer()?;
    let source = engine.branch(branch)?;
    let target = match into {
        "main" => None,
        name => Some(engine.branch(name)?),
    };
    let plan = plan(engine, &source, target.clone(), into, opts.on_conflict)?;
    let mut report = MergeReport {
        branch: branch.to_string(),
        into: into.to_string(),
        base_seq: plan.base_seq,
        fast_forward: plan.fast_forward,
        dry_run: opts.dry_run,
        changes: plan.changes,
        conflicts: plan.conflicts,
        written: Vec::new(),
        head: plan.target_head,
    };
    if opts.dry_run {
        return Ok(report);
    }
    if opts.on_conflict == OnConflict::Fail && !report.conflicts.is_empty() {
        let ids: Vec<String> = report
            .conflicts
            .iter()
            .take(5)
            .map(|c| c.id.to_string())
            .collect();
        return Err(Error::Conflict {
            at: format!("merging `{branch}` into `{into}`"),
            reason: format!(
                "{} event(s) changed on both sides since seq {} ({}{}); nothing was \
                 written; see --dry-run, or choose --on-conflict branch|target",
                report.conflicts.len(),
                report.base_seq,
                ids.join(", "),
                if report.conflicts.len() > ids.len() {
                    ", ..."
                } else {
                    ""
                },
            ),
        });
    }
    if plan.ops.is_empty() {
        return Ok(report);
    }
    check_batch(&plan.ops)?;
    report.written = engine.commit(
        &mut writer,
        target.as_deref(),
        plan.ops,
        false,
        &plan.origins,
    )?;
    report.head = match &target {
        None => engine.main().head(),
        Some(t) => t.head(),
    };
    Ok(report)
}

fn plan(
    engine: &Engine,
    source: &Arc<Branch>,
    target: Option<Arc<Branch>>,
    into: &str,
    on_conflict: OnConflict,
) -> Result<Plan> {
    let src_steps = lineage(engine, Some(Arc::clone(source)))?;
    let tgt_steps = lineage(engine, target.clone())?;
    let target_head = target
        .as_ref()
        .map_or_else(|| engine.main().head(), |t| t.head());
    let (common, base_seq) = src_steps
        .iter()
        .find_map(|s| {
            tgt_steps
                .iter()
                .find(|t| t.name() == s.name())
                .map(|t| (s, s.upto.min(t.upto)))
        })
        .ok_or_else(|| Error::internal("branches share no history"))?;
    let src_name = source.meta.name.clone();
    let origin = |seq: u64, hash: Hash| Origin {
        branch: src_name.clone(),
        seq,
        hash,
    };

    // The branch's side: its entries after the base, in order.
    let log = &source.log;
    let mut entries: Vec<(Entry, Hash)> = Vec::new();
    for item in log.entries_after(log.head_at(base_seq)?) {
        entries.push(item?);
    }
    let fast_forward = target_head.seq == base_seq;
    let mut plan = Plan {
        base_seq,
        fast_forward,
        target_head,
        ops: Vec::new(),
        origins: Vec::new(),
        changes: Vec::new(),
        conflicts: Vec::new(),
    };
    if fast_forward {
        for (entry, hash) in entries {
            let id = entry.body.id();
            let (op, kind) = match entry.body {
                Body::Event(e) => (Op::Append(e), ChangeKind::Created),
                Body::Correction(e) => (Op::Correct(e), ChangeKind::Corrected),
                Body::Retraction { id, reason } => (
                    Op::Retract {
                        id,
                        reason: carried(reason, &src_name),
                    },
                    ChangeKind::Retracted,
                ),
                // Excised on every line alike: nothing to carry over.
                Body::Excised { .. } => continue,
            };
            plan.push(id, op, kind, origin(entry.seq, hash), false);
        }
        return Ok(plan);
    }

    // The last branch entry per event, in branch order.
    let mut last: HashMap<Uuid, usize> = HashMap::new();
    for (i, (entry, _)) in entries.iter().enumerate() {
        last.insert(entry.body.id(), i);
    }
    let mut touched: Vec<(usize, Uuid)> = last.into_iter().map(|(id, i)| (i, id)).collect();
    touched.sort_unstable();

    let base = Reader::at(engine.lines(), common.line(), base_seq);
    let src = Reader::at(
        engine.lines(),
        Line::Branch(Arc::clone(source)),
        source.head().seq,
    );
    let tgt = Reader::at(engine.lines(), line_of(&target), target_head.seq);
    for (i, id) in touched {
        let Some((entry, hash)) = entries.get(i) else {
            continue;
        };
        let src_rec = src.get(id)?;
        let tgt_rec = tgt.get(id)?;
        let (s, t) = (state_of(&src_rec), state_of(&tgt_rec));
        let mut base_rec = base.get(id)?;
        // Only an event the target changed since the base can have
        // a base moved by an earlier merge.
        if state_of(&base_rec) != t {
            if let Some(merged) = merged_state(engine, &tgt, id, source, &t)? {
                base_rec = merged;
            }
        }
        let b = state_of(&base_rec);
        if s == b || s == t {
            continue;
        }
        let reason = match &entry.body {
            Body::Retraction { reason, .. } => carried(reason.clone(), &src_name),
            _ => format!("retracted on branch `{src_name}`"),
        };
        let conflict = t != b;
        let apply = if !conflict || on_conflict == OnConflict::Branch {
            op_for(id, &t, &s, &reason, into)?
        } else {
            None
        };
        if conflict {
            plan.conflicts.push(MergeConflict {
                id,
                base: base_rec,
                target: tgt_rec,
                branch: src_rec,
            });
        }
        if let Some((op, kind)) = apply {
            plan.push(id, op, kind, origin(entry.seq, *hash), conflict);
        }
    }
    Ok(plan)
}

/// If the target's current version of `id` was written by a merge of
/// `source` whose branch entry is still on it, and the branch held the
/// same state then, that state as of the merged seq: the base the
/// next merge compares against.
fn merged_state(
    engine: &Engine,
    tgt: &Reader<'_>,
    id: Uuid,
    source: &Arc<Branch>,
    t: &State<'_>,
) -> Result<Option<Option<Record>>> {
    let Some(o) = tgt.history(id)?.pop().and_then(|v| v.origin) else {
        return Ok(None);
    };
    if o.branch != source.meta.name
        || o.seq > source.head().seq
        || source.log.head_at(o.seq)?.hash != o.hash
    {
        return Ok(None);
    }
    let then = Reader::at(engine.lines(), Line::Branch(Arc::clone(source)), o.seq).get(id)?;
    Ok((state_of(&then) == *t).then_some(then))
}

/// A worked-out merge.
struct Plan {
    base_seq: u64,
    fast_forward: bool,
    target_head: Head,
    ops: Vec<Op>,
    origins: Vec<Option<Origin>>,
    changes: Vec<MergeChange>,
    conflicts: Vec<MergeConflict>,
}

impl Plan {
    fn push(&mut self, id: Uuid, op: Op, kind: ChangeKind, origin: Origin, resolves: bool) {
        self.ops.push(op);
        self.origins.push(Some(origin.clone()));
        self.changes.push(MergeChange {
            id,
            kind,
            origin,
            resolves_conflict: resolves,
        });
    }
}
