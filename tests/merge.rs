//! Merging branches: the result equals a reference three-way merge by
//! event id under each conflict policy, conflicts are exactly the events
//! changed differently on both sides, a dry run writes nothing, merged
//! entries carry and verify their origin, re-merging brings only what is
//! new, and bad requests change nothing.

mod common;

use std::collections::BTreeSet;

use annals::{
    Annals, AsOf, At, ChangeKind, Durability, Error, Event, MergeOptions, OnConflict, Op, Query,
};
use common::gen;
use proptest::prelude::*;
use uuid::Uuid;

/// An event's state as the merge rules compare it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
enum S {
    Absent,
    Live(Event),
    Retracted,
}

fn state(db: &Annals, at: &At, id: Uuid) -> S {
    match db.reader(at).unwrap().get(id).unwrap() {
        None => S::Absent,
        Some(r) if r.retracted_seq.is_some() => S::Retracted,
        Some(r) => S::Live(r.event),
    }
}

fn ids() -> impl Iterator<Item = Uuid> {
    (1..=8u128).map(Uuid::from_u128)
}

/// What the reference merge expects of one event: its state afterwards,
/// whether it conflicts, and whether the policy cannot apply it.
fn reference(b: &S, t: &S, s: &S, policy: OnConflict) -> (S, bool, bool) {
    let bring = |to: &S| match (t, to) {
        (S::Absent, S::Retracted) => S::Absent,
        _ => to.clone(),
    };
    if s == b || s == t {
        return (t.clone(), false, false);
    }
    if t == b {
        return (bring(s), false, false);
    }
    match policy {
        OnConflict::Fail | OnConflict::Target => (t.clone(), true, false),
        OnConflict::Branch => {
            let impossible = *t == S::Retracted;
            (bring(s), true, impossible)
        }
    }
}

fn open(dir: &tempfile::TempDir) -> Annals {
    Annals::builder(dir.path().join("db"))
        .durability(Durability::Buffered)
        .checkpoint_every_entries(7)
        .open()
        .unwrap()
}

fn policy(n: u8) -> OnConflict {
    [OnConflict::Fail, OnConflict::Branch, OnConflict::Target][usize::from(n % 3)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn merge_equals_the_reference_three_way_merge(
        base in gen::batches(5),
        on_main in prop::collection::vec(prop::collection::vec(gen::op(), 1..3), 0..8),
        on_branch in prop::collection::vec(prop::collection::vec(gen::op(), 1..3), 1..8),
        p in 0u8..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        for batch in base {
            let _ = db.write(batch, None);
        }
        let base_seq = db.head().seq;
        db.create_branch("b", None, None).unwrap();
        for batch in on_main {
            let _ = db.write(batch, None);
        }
        for batch in on_branch {
            let _ = db.write_branch("b", batch, None);
        }
        let policy = policy(p);
        let (main, branch, at_base) = (At::head(), At::head().branch("b"), At::head().as_of(AsOf::Seq(base_seq)));
        let mut expected = Vec::new();
        let mut conflicts = BTreeSet::new();
        let mut impossible = false;
        for id in ids() {
            let (b, t, s) = (state(&db, &at_base, id), state(&db, &main, id), state(&db, &branch, id));
            // A fast-forward replays the branch, so the target ends in the
            // branch's state, events created and retracted there included.
            let (after, conflict, cannot) = if db.head().seq == base_seq {
                (s, false, false)
            } else {
                reference(&b, &t, &s, policy)
            };
            if conflict {
                conflicts.insert(id);
            }
            impossible |= cannot;
            expected.push((id, after));
        }
        let head = db.head();
        let opts = MergeOptions { on_conflict: policy, ..MergeOptions::default() };

        let plan = db.merge("b", &MergeOptions { dry_run: true, ..opts.clone() });
        prop_assert_eq!(db.head(), head, "a dry run writes nothing");
        if impossible {
            prop_assert!(matches!(plan, Err(Error::Conflict { .. })), "{:?}", plan);
        } else {
            let plan = plan.unwrap();
            prop_assert_eq!(plan.base_seq, base_seq);
            prop_assert_eq!(plan.fast_forward, head.seq == base_seq);
            let found: BTreeSet<Uuid> = plan.conflicts.iter().map(|c| c.id).collect();
            prop_assert_eq!(&found, &conflicts);
        }

        let merged = db.merge("b", &opts);
        if impossible || (policy == OnConflict::Fail && !conflicts.is_empty()) {
            prop_assert!(matches!(merged, Err(Error::Conflict { .. })), "{:?}", merged);
            prop_assert_eq!(db.head(), head, "a refused merge writes nothing");
            return Ok(());
        }
        let report = merged.unwrap();
        prop_assert_eq!(report.head, db.head());
        for (id, want) in &expected {
            prop_assert_eq!(&state(&db, &main, *id), want, "event {}", id);
        }
        let mut last_change = std::collections::BTreeMap::new();
        for c in &report.changes {
            last_change.insert(c.id, &c.origin);
        }
        for (id, origin) in last_change {
            let last = db.history(id).unwrap().pop().unwrap();
            prop_assert_eq!(last.origin.as_ref(), Some(origin));
        }
        db.verify().unwrap();
        // Everything the branch had is now on main: merging again changes
        // nothing (under Target, the kept conflicts stay conflicts).
        let again = db.merge("b", &MergeOptions { on_conflict: OnConflict::Target, ..opts });
        let again = again.unwrap();
        prop_assert!(again.changes.is_empty(), "{:?}", again.changes);
        if policy == OnConflict::Branch {
            prop_assert!(again.conflicts.is_empty());
        }
    }
}

fn summary(mut e: Event, text: &str) -> Event {
    e.summary = Some(text.into());
    e
}

#[test]
fn fast_forward_replays_every_entry_with_its_origin() {
    let (_d, db) = common::fresh();
    let events = common::scenario();
    db.append(events[..3].to_vec()).unwrap();
    db.create_branch("what-if", None, None).unwrap();
    db.write_branch(
        "what-if",
        vec![
            Op::Append(events[3].clone()),
            Op::Correct(summary(events[0].clone(), "revised")),
        ],
        None,
    )
    .unwrap();
    db.write_branch(
        "what-if",
        vec![Op::Retract {
            id: events[1].id,
            reason: "not confirmed".into(),
        }],
        None,
    )
    .unwrap();
    let branch_head = db
        .reader(&At::head().branch("what-if"))
        .unwrap()
        .head()
        .unwrap();
    let report = db.merge("what-if", &MergeOptions::default()).unwrap();
    assert!(report.fast_forward);
    assert_eq!(report.base_seq, 3);
    let kinds: Vec<ChangeKind> = report.changes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::Created,
            ChangeKind::Corrected,
            ChangeKind::Retracted
        ]
    );
    // Same seqs as on the branch, one entry per branch entry.
    assert_eq!(db.head().seq, branch_head.seq);
    let origins: Vec<u64> = report.changes.iter().map(|c| c.origin.seq).collect();
    assert_eq!(origins, [4, 5, 6]);
    let retracted = db.history(events[1].id).unwrap().pop().unwrap();
    assert_eq!(retracted.to_json()["merged_from"]["branch"], "what-if");
    assert_eq!(retracted.to_json()["merged_from"]["seq"], 6);
    assert_eq!(
        db.get(events[0].id)
            .unwrap()
            .unwrap()
            .event
            .summary
            .as_deref(),
        Some("revised")
    );
    db.verify().unwrap();
    // The branch stays readable.
    assert_eq!(
        db.reader(&At::head().branch("what-if"))
            .unwrap()
            .head()
            .unwrap(),
        branch_head
    );
}

#[test]
fn three_way_merge_conflicts_and_policies() {
    let (_d, db) = common::fresh();
    let ev = common::scenario();
    db.append(ev[..4].to_vec()).unwrap();
    db.create_branch("b", None, None).unwrap();
    // Main moves on: a new event, and a correction of event 0.
    db.write(
        vec![
            Op::Append(ev[4].clone()),
            Op::Correct(summary(ev[0].clone(), "main says")),
        ],
        None,
    )
    .unwrap();
    // The branch: a new event, a correction of event 0 (conflict), of
    // event 1 (clean), a retraction of event 2 (clean).
    db.write_branch(
        "b",
        vec![
            Op::Append(ev[5].clone()),
            Op::Correct(summary(ev[0].clone(), "branch says")),
            Op::Correct(summary(ev[1].clone(), "branch fix")),
            Op::Retract {
                id: ev[2].id,
                reason: "hoax".into(),
            },
        ],
        None,
    )
    .unwrap();
    let head = db.head();
    let err = db.merge("b", &MergeOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("1 event(s) changed on both sides"), "{msg}");
    assert!(msg.contains(&ev[0].id.to_string()), "{msg}");
    assert_eq!(db.head(), head);

    let plan = db
        .merge(
            "b",
            &MergeOptions {
                dry_run: true,
                ..MergeOptions::default()
            },
        )
        .unwrap();
    assert!(!plan.fast_forward);
    assert_eq!(plan.conflicts.len(), 1);
    let c = &plan.conflicts[0];
    assert_eq!(c.id, ev[0].id);
    assert_eq!(c.base.as_ref().unwrap().event.summary, ev[0].summary);
    assert_eq!(
        c.target.as_ref().unwrap().event.summary.as_deref(),
        Some("main says")
    );
    assert_eq!(
        c.branch.as_ref().unwrap().event.summary.as_deref(),
        Some("branch says")
    );
    assert_eq!(plan.changes.len(), 3);
    assert_eq!(plan.to_json()["conflicts"][0]["id"], ev[0].id.to_string());
    assert_eq!(db.head(), head);

    let report = db
        .merge(
            "b",
            &MergeOptions {
                on_conflict: OnConflict::Target,
                ..MergeOptions::default()
            },
        )
        .unwrap();
    assert_eq!(report.changes.len(), 3);
    assert_eq!(
        db.head().seq,
        head.seq + 3,
        "one atomic batch of three entries"
    );
    let get = |id| db.get(id).unwrap().unwrap();
    assert_eq!(get(ev[0].id).event.summary.as_deref(), Some("main says"));
    assert_eq!(get(ev[1].id).event.summary.as_deref(), Some("branch fix"));
    assert!(get(ev[2].id).retracted_seq.is_some());
    assert_eq!(get(ev[5].id).event, ev[5]);
    let retraction = db.history(ev[2].id).unwrap().pop().unwrap();
    assert_eq!(retraction.to_json()["reason"], "hoax");

    // The branch settles the remaining conflict.
    let report = db
        .merge(
            "b",
            &MergeOptions {
                on_conflict: OnConflict::Branch,
                ..MergeOptions::default()
            },
        )
        .unwrap();
    assert_eq!(report.changes.len(), 1);
    assert!(report.changes[0].resolves_conflict);
    assert_eq!(get(ev[0].id).event.summary.as_deref(), Some("branch says"));

    // Later branch work merges cleanly: the base for merged events moved.
    db.write_branch(
        "b",
        vec![Op::Correct(summary(ev[1].clone(), "second fix"))],
        None,
    )
    .unwrap();
    let report = db.merge("b", &MergeOptions::default()).unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!(get(ev[1].id).event.summary.as_deref(), Some("second fix"));
    db.verify().unwrap();
}

#[test]
fn a_retraction_on_the_target_is_final() {
    let (_d, db) = common::fresh();
    let ev = common::scenario();
    db.append(ev[..2].to_vec()).unwrap();
    db.create_branch("b", None, None).unwrap();
    db.retract(ev[0].id, "withdrawn").unwrap();
    db.write_branch(
        "b",
        vec![Op::Correct(summary(ev[0].clone(), "branch"))],
        None,
    )
    .unwrap();
    let head = db.head();
    let branch_wins = MergeOptions {
        on_conflict: OnConflict::Branch,
        ..MergeOptions::default()
    };
    let err = db.merge("b", &branch_wins).unwrap_err().to_string();
    assert!(err.contains("a retraction is final"), "{err}");
    assert_eq!(db.head(), head);
    let kept = MergeOptions {
        on_conflict: OnConflict::Target,
        ..MergeOptions::default()
    };
    let report = db.merge("b", &kept).unwrap();
    assert_eq!((report.conflicts.len(), report.changes.len()), (1, 0));
    assert_eq!(db.head(), head);
}

#[test]
fn merge_into_another_branch() {
    let (_d, db) = common::fresh();
    let ev = common::scenario();
    db.append(ev[..2].to_vec()).unwrap();
    db.create_branch("a", None, None).unwrap();
    db.write_branch("a", vec![Op::Append(ev[2].clone())], None)
        .unwrap();
    db.append(vec![ev[3].clone()]).unwrap();
    db.create_branch("b", None, None).unwrap();
    db.write_branch("b", vec![Op::Append(ev[4].clone())], None)
        .unwrap();
    // b forked from main at 3 (after event 3), a at 2: merging b into a
    // brings main's event 3 too, since a's history does not have it.
    let report = db
        .merge(
            "b",
            &MergeOptions {
                into: Some("a".into()),
                ..MergeOptions::default()
            },
        )
        .unwrap();
    assert_eq!(report.base_seq, 2);
    assert_eq!(report.into, "a");
    let on_a: BTreeSet<Uuid> = db
        .reader(&At::head().branch("a"))
        .unwrap()
        .query(&Query::new())
        .unwrap()
        .into_iter()
        .map(|r| r.event.id)
        .collect();
    let want: BTreeSet<Uuid> = ev[..5].iter().map(|e| e.id).collect();
    assert_eq!(on_a, want);
    assert_eq!(db.head().seq, 3, "main is untouched");
    db.verify().unwrap();
}

#[test]
fn bad_requests_change_nothing() {
    let (_d, db) = common::fresh();
    let ev = common::scenario();
    db.append(ev[..2].to_vec()).unwrap();
    db.create_branch("b", None, None).unwrap();
    let head = db.head();
    let err = |branch: &str, into: Option<&str>| {
        db.merge(
            branch,
            &MergeOptions {
                into: into.map(String::from),
                ..MergeOptions::default()
            },
        )
        .unwrap_err()
        .to_string()
    };
    assert!(err("nope", None).contains("no branch named `nope`"));
    assert!(err("b", Some("nope")).contains("no branch named `nope`"));
    assert!(err("b", Some("b")).contains("into itself"));
    assert!(err("main", None).contains("main cannot be merged"));
    assert_eq!(db.head(), head);
    // Merging a branch with nothing of its own writes nothing.
    let report = db.merge("b", &MergeOptions::default()).unwrap();
    assert!(report.changes.is_empty() && report.written.is_empty());
    assert_eq!(db.head(), head);
}

#[test]
fn origins_survive_reopening_and_dropping_the_branch() {
    let dir = tempfile::tempdir().unwrap();
    let ev = common::scenario();
    {
        let db = open(&dir);
        db.append(ev[..2].to_vec()).unwrap();
        db.create_branch("b", None, None).unwrap();
        db.write_branch("b", vec![Op::Append(ev[2].clone())], None)
            .unwrap();
        db.merge("b", &MergeOptions::default()).unwrap();
    }
    let db = open(&dir);
    let v = db.history(ev[2].id).unwrap().pop().unwrap();
    let origin = v.origin.clone().unwrap();
    assert_eq!((origin.branch.as_str(), origin.seq), ("b", 3));
    db.verify().unwrap();
    // Once the branch is gone the origin stays recorded (and covered by
    // the chain) but can no longer be compared with the branch.
    db.drop_branch("b").unwrap();
    assert_eq!(
        db.history(ev[2].id).unwrap().pop().unwrap().origin,
        Some(origin)
    );
    db.verify().unwrap();
}

#[test]
fn cli_merge_lists_conflicts_and_writes_nothing_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::db_path(&dir);
    let ev = common::scenario();
    {
        let db = Annals::open(&path).unwrap();
        db.append(ev[..3].to_vec()).unwrap();
        db.create_branch("no-attribution", None, None).unwrap();
        db.correct(summary(ev[0].clone(), "main")).unwrap();
        db.write_branch(
            "no-attribution",
            vec![
                Op::Correct(summary(ev[0].clone(), "branch")),
                Op::Append(ev[3].clone()),
            ],
            None,
        )
        .unwrap();
        db.close().unwrap();
    }
    let run = |args: &[&str]| common::annals(&path, args, None);
    let head = || common::stdout(&run(&["head"]));
    let before = head();

    let out = run(&["merge", "no-attribution", "--dry-run"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(
        text.starts_with("would merge `no-attribution` into `main` from base seq 3"),
        "{text}"
    );
    assert!(
        text.contains("conflicts:") && text.contains(&ev[0].id.to_string()),
        "{text}"
    );

    let out = run(&["merge", "no-attribution"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stdout(&out).contains("conflicts:"));
    assert!(
        common::stderr(&out).contains("changed on both sides"),
        "{}",
        common::stderr(&out)
    );
    assert_eq!(head(), before);

    let out = run(&[
        "--format",
        "json",
        "merge",
        "no-attribution",
        "--on-conflict",
        "branch",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(report["changes"].as_array().unwrap().len(), 2);
    assert_eq!(report["written"], 2);

    let out = run(&["history", &ev[0].id.to_string()]);
    assert!(
        common::stdout(&out).contains("(merged from no-attribution@4)"),
        "{}",
        common::stdout(&out)
    );
    let out = run(&["merge", "no-attribution", "--into", "no-attribution"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stderr(&out).contains("into itself"));
    assert!(run(&["verify"]).status.success());
}

const CHILD_ENV: &str = "ANNALS_MERGE_CHILD_DB";

/// The merging side of the crash test: runs only inside the child process.
#[test]
fn child_merger() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = Annals::open(&path).unwrap();
    println!("opened");
    let opts = MergeOptions {
        on_conflict: OnConflict::Branch,
        ..MergeOptions::default()
    };
    let report = db.merge("b", &opts).unwrap();
    println!("merged {}", report.head.seq);
    std::thread::sleep(std::time::Duration::from_secs(60));
}

fn numbered(n: u64, summary: &str) -> Event {
    let mut e = gen::numbered(n);
    e.summary = Some(format!("{summary} {n}"));
    e
}

/// kill -9 during a merge of a branch of a few thousand entries into a
/// main that moved: afterwards the merge is either wholly there or not at
/// all, and `verify` passes. `ANNALS_MERGE_KILLS` sets the number of kills.
#[test]
fn a_killed_merge_is_all_or_nothing() {
    let kills: u64 = std::env::var("ANNALS_MERGE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template");
    let (base_head, merged_head) = {
        let db = Annals::open(&template).unwrap();
        db.append((0..500).map(|n| numbered(n, "main")).collect())
            .unwrap();
        db.create_branch("b", None, None).unwrap();
        db.write(
            (0..50)
                .map(|n| Op::Correct(numbered(n, "main fix")))
                .collect(),
            None,
        )
        .unwrap();
        let mut ops: Vec<Op> = (500..3000)
            .map(|n| Op::Append(numbered(n, "branch")))
            .collect();
        ops.extend((0..100).map(|n| Op::Correct(numbered(n, "branch fix"))));
        db.write_branch("b", ops, None).unwrap();
        let plan = db
            .merge(
                "b",
                &MergeOptions {
                    dry_run: true,
                    on_conflict: OnConflict::Branch,
                    ..MergeOptions::default()
                },
            )
            .unwrap();
        assert_eq!(plan.conflicts.len(), 50);
        let head = db.head().seq;
        db.close().unwrap();
        (head, head + plan.changes.len() as u64)
    };
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let (mut whole, mut none) = (0, 0);
    for kill in 0..kills {
        let path = dir.path().join(format!("db{kill}"));
        common::copy_dir(&template, &path);
        let mut child = common::spawn_test("child_merger", CHILD_ENV, &path);
        let lines = common::wait_for(&mut child, "opened");
        let wait = common::xorshift(&mut seed) % 150_000;
        std::thread::sleep(std::time::Duration::from_micros(wait));
        child.kill().unwrap();
        child.wait().unwrap();
        let acked = lines.map_while(Result::ok).any(|l| l.contains("merged"));
        let db = Annals::open(&path).unwrap();
        let head = db.head().seq;
        if head == merged_head {
            whole += 1;
            let e = db.get(Uuid::from_u128(1000 + 2999)).unwrap().unwrap();
            assert_eq!(e.event.summary.as_deref(), Some("branch 2999"));
        } else {
            assert!(!acked, "kill {kill}: an acknowledged merge was lost");
            assert_eq!(
                head, base_head,
                "kill {kill}: a partial merge (head {head})"
            );
            none += 1;
        }
        db.verify().unwrap();
    }
    eprintln!("{kills} kills during a merge: {whole} merged whole, {none} not at all");
}

#[test]
fn a_merge_while_main_is_written_to_sees_one_state() {
    let (_d, db) = common::fresh();
    db.append((0..200).map(|n| numbered(n, "main")).collect())
        .unwrap();
    db.create_branch("b", None, None).unwrap();
    db.write_branch(
        "b",
        (200..1200)
            .map(|n| Op::Append(numbered(n, "branch")))
            .collect(),
        None,
    )
    .unwrap();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for n in 1200..1300 {
                db.append(vec![numbered(n, "writer")]).unwrap();
            }
        });
        let report = db.merge("b", &MergeOptions::default()).unwrap();
        assert_eq!(report.changes.len(), 1000);
        writer.join().unwrap();
    });
    assert_eq!(db.head().seq, 200 + 1000 + 100);
    for n in [200u64, 1199, 1299] {
        assert!(db
            .get(Uuid::from_u128(u128::from(n) + 1000))
            .unwrap()
            .is_some());
    }
    db.verify().unwrap();
}
