//! What-if branches: a branch created at S answers like main as of S;
//! writes on a branch never change main; a branch with writes answers like
//! a fresh database replaying main's 1..=S and then the branch's entries;
//! `diff` is empty exactly when the views are equal; dropping a branch
//! leaves main unchanged; branches survive reopen.

mod common;

use annals::{Against, Annals, AsOf, At, Durability, Error, Granularity, Op, Query, ViewKind};
use common::gen;
use proptest::prelude::*;

type Answers = (
    std::sync::Arc<[annals::CountryRow]>,
    std::sync::Arc<[annals::ActorRow]>,
    std::sync::Arc<[annals::DateRow]>,
    Vec<(u64, annals::Event)>,
);

fn answers(r: &annals::Reader<'_>) -> Answers {
    (
        r.by_country().unwrap(),
        r.by_actor().unwrap(),
        r.by_date(Granularity::Day).unwrap(),
        r.query(&Query::new())
            .unwrap()
            .into_iter()
            .map(|x| (x.position.seq, x.event))
            .collect(),
    )
}

fn open(path: &std::path::Path) -> Annals {
    Annals::builder(path)
        .durability(Durability::Buffered)
        .snapshot_every_entries(4)
        .open()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn branches_are_isolated_what_ifs(main_ops in gen::batches(8), branch_ops in gen::batches(5), cut in 0u64..=100) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let db = open(&path);
        for b in &main_ops {
            let _ = db.write(b.clone(), None);
        }
        let s = db.head().seq * cut / 100;
        let main_before = answers(&db.reader(&At::head()).unwrap());
        let main_at_s = answers(&db.reader(&At::head().as_of(AsOf::Seq(s))).unwrap());

        db.create_branch("what-if", None, Some(AsOf::Seq(s))).unwrap();
        let fresh_branch = answers(&db.reader(&At::head().branch("what-if")).unwrap());
        prop_assert_eq!(&fresh_branch, &main_at_s);
        prop_assert!(db.diff("what-if", ViewKind::ByCountry, Against::Base).unwrap().is_empty());

        for b in &branch_ops {
            let _ = db.write_branch("what-if", b.clone(), None);
        }
        prop_assert_eq!(&answers(&db.reader(&At::head()).unwrap()), &main_before, "main changed");

        // The branch equals a fresh database fed main's prefix, then the branch's own entries.
        let reference_dir = tempfile::tempdir().unwrap();
        let reference = open(&reference_dir.path().join("db"));
        let prefix: Vec<Op> = db.entries(0).unwrap().map(Result::unwrap).take(s as usize).map(|e| gen::op_of(&e)).collect();
        if !prefix.is_empty() {
            reference.write(prefix, None).unwrap();
        }
        let branch_reader = db.reader(&At::head().branch("what-if")).unwrap();
        let own: Vec<Op> = db.entries_on(Some("what-if"), s).unwrap().map(|e| gen::op_of(&e.unwrap())).collect();
        if !own.is_empty() {
            reference.write(own, None).unwrap();
        }
        let branch_now = answers(&branch_reader);
        prop_assert_eq!(&branch_now, &answers(&reference.reader(&At::head()).unwrap()));

        // diff is empty exactly when the views are equal.
        let diff_empty = db.diff("what-if", ViewKind::ByCountry, Against::Base).unwrap().is_empty();
        prop_assert_eq!(diff_empty, branch_now.0 == main_at_s.0);

        // Branches survive reopen; dropping one leaves main as it was.
        drop(branch_reader);
        drop(db);
        let db = open(&path);
        prop_assert_eq!(&answers(&db.reader(&At::head().branch("what-if")).unwrap()), &branch_now);
        db.drop_branch("what-if").unwrap();
        prop_assert_eq!(&answers(&db.reader(&At::head()).unwrap()), &main_before);
        prop_assert!(db.branches().is_empty());
        db.verify().unwrap();
    }
}

#[test]
fn the_demo_what_if() {
    let (_d, db) = common::fresh();
    let events = common::scenario();
    db.append(events.clone()).unwrap();
    db.create_branch("no-attribution", None, None).unwrap();
    let sabotage = events[5].clone();
    let mut unattributed = sabotage.clone();
    unattributed.actors.clear();
    let lithuania = common::ev(
        r#"{"kind":"airspace_violation","occurred":"2025-12-10","countries":["LT"],"actors":[{"name":"Russia","role":"alleged_perpetrator"}],"confidence":0.5,"tags":["hypothetical"]}"#,
    );
    let written = db
        .write_branch(
            "no-attribution",
            vec![Op::Correct(unattributed), Op::Append(lithuania.clone())],
            Some(11),
        )
        .unwrap();
    assert_eq!(written.iter().map(|w| w.seq).collect::<Vec<_>>(), [12, 13]);
    // Main is untouched.
    assert_eq!(db.head().seq, 11);
    assert!(db.get(lithuania.id).unwrap().is_none());
    let branch = db.reader(&At::head().branch("no-attribution")).unwrap();
    assert!(branch.get(lithuania.id).unwrap().is_some());
    let diff = db
        .diff("no-attribution", ViewKind::ByActor, Against::Base)
        .unwrap();
    let russia = diff.iter().find(|d| d.key == "Russia").unwrap();
    assert_eq!(russia.main.as_ref().unwrap()["count"], 3);
    assert_eq!(
        russia.branch.as_ref().unwrap()["count"],
        3,
        "one attribution removed, one hypothetical added"
    );
    assert_eq!(
        russia.branch.as_ref().unwrap()["countries"],
        serde_json::json!(["LT", "PL", "RO"])
    );
    let by_country = db
        .diff("no-attribution", ViewKind::ByCountry, Against::Base)
        .unwrap();
    // PL keeps its count and Russia (named by other PL events): only LT differs.
    assert_eq!(
        by_country
            .iter()
            .map(|d| d.key.as_str())
            .collect::<Vec<_>>(),
        ["LT"]
    );
    assert!(by_country[0].main.is_none());
    // History on the branch continues main's.
    let h = branch.history(sabotage.id).unwrap();
    assert_eq!(h.iter().map(|v| v.seq).collect::<Vec<_>>(), [6, 12]);
    // Main moves on; the branch does not see it.
    db.append(vec![common::ev(
        r#"{"kind":"statement","occurred":"2025-12-11","countries":["BE"]}"#,
    )])
    .unwrap();
    assert_eq!(
        db.reader(&At::head().branch("no-attribution"))
            .unwrap()
            .query(&Query::new().country("BE"))
            .unwrap()
            .len(),
        4
    );
    assert!(!db
        .diff("no-attribution", ViewKind::ByCountry, Against::Head)
        .unwrap()
        .is_empty());
}

#[test]
fn a_branch_of_a_branch() {
    let (_d, db) = common::fresh();
    let events = common::scenario();
    db.append(events.clone()).unwrap();
    db.create_branch("a", None, Some(AsOf::Seq(8))).unwrap();
    db.write_branch(
        "a",
        vec![Op::Retract {
            id: events[0].id,
            reason: "what if".into(),
        }],
        None,
    )
    .unwrap();
    db.create_branch("b", Some("a"), None).unwrap();
    db.write_branch(
        "b",
        vec![Op::Retract {
            id: events[1].id,
            reason: "and this".into(),
        }],
        None,
    )
    .unwrap();
    let b = db.reader(&At::head().branch("b")).unwrap();
    assert_eq!(b.seq(), 10);
    assert_eq!(b.query(&Query::new()).unwrap().len(), 6);
    assert!(b.get(events[0].id).unwrap().unwrap().retracted_seq == Some(9));
    let a = db.reader(&At::head().branch("a")).unwrap();
    assert_eq!(a.query(&Query::new()).unwrap().len(), 7);
    assert!(matches!(db.drop_branch("a"), Err(Error::Conflict { .. })));
    db.drop_branch("b").unwrap();
    db.drop_branch("a").unwrap();
}

#[test]
fn bad_branch_names_and_references() {
    let (_d, db) = common::fresh();
    db.append(common::scenario()).unwrap();
    for bad in ["", "main", "What If", "a/b"] {
        assert!(
            matches!(
                db.create_branch(bad, None, None),
                Err(Error::Invalid { .. })
            ),
            "{bad}"
        );
    }
    db.create_branch("x", None, None).unwrap();
    assert!(matches!(
        db.create_branch("x", None, None),
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        db.create_branch("y", Some("nope"), None),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        db.drop_branch("nope"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        db.reader(&At::head().branch("nope")),
        Err(Error::NotFound { .. })
    ));
    let e = common::ev(r#"{"kind":"meeting","occurred":"2025"}"#);
    assert!(matches!(
        db.write_branch("x", vec![Op::Append(e)], Some(3)),
        Err(Error::SeqMismatch { .. })
    ));
    assert!(matches!(
        db.write_branch(
            "x",
            vec![Op::Retract {
                id: uuid::Uuid::from_u128(77),
                reason: "x".into()
            }],
            None
        ),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(db.branches()[0].head_seq, 11);
}

#[test]
fn creating_a_branch_copies_nothing() {
    let (_d, db) = common::fresh();
    for chunk in common::scenario().chunks(2) {
        db.append(chunk.to_vec()).unwrap();
    }
    let before = db.stats().unwrap().disk_bytes;
    db.create_branch("cheap", None, Some(AsOf::Seq(3))).unwrap();
    let info = &db.branches()[0];
    assert_eq!((info.base_seq, info.head_seq, info.entries), (3, 3, 0));
    // No log entry was copied: the store grows by at most sled's metadata.
    assert!(db.stats().unwrap().disk_bytes < before + 64 * 1024);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// `diff --events`: applying the differences to the parent's events
    /// gives exactly the branch's events.
    #[test]
    fn event_diff_turns_the_parents_events_into_the_branchs(
        base in gen::batches(5),
        on_main in prop::collection::vec(prop::collection::vec(gen::op(), 1..3), 0..5),
        on_branch in prop::collection::vec(prop::collection::vec(gen::op(), 1..3), 0..6),
        head in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Annals::builder(dir.path().join("db"))
            .durability(Durability::Buffered)
            .open()
            .unwrap();
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
        let (against, parent) = if head {
            (Against::Head, At::head())
        } else {
            (Against::Base, At::head().as_of(AsOf::Seq(base_seq)))
        };
        let mut events = common::events_at(&db, &parent);
        for d in db.diff_events("b", against).unwrap() {
            match d.kind {
                annals::EventDiffKind::Added => {
                    prop_assert!(d.main.is_none());
                    prop_assert!(events.insert(d.id, d.branch.unwrap().event).is_none());
                }
                annals::EventDiffKind::Removed => {
                    prop_assert!(d.branch.is_none());
                    prop_assert!(events.remove(&d.id).is_some());
                }
                annals::EventDiffKind::Changed => {
                    prop_assert!(!d.fields.is_empty());
                    let old = events.insert(d.id, d.branch.unwrap().event);
                    prop_assert_eq!(old, Some(d.main.unwrap().event));
                }
            }
        }
        prop_assert_eq!(events, common::events_at(&db, &At::head().branch("b")));
    }
}

#[test]
fn diff_events_names_the_fields_that_differ() {
    let (dir, db) = common::fresh();
    let ev = common::scenario();
    db.append(ev[..3].to_vec()).unwrap();
    db.create_branch("b", None, None).unwrap();
    let mut fixed = ev[0].clone();
    fixed.summary = Some("unattributed".into());
    fixed.actors.clear();
    db.write_branch(
        "b",
        vec![
            Op::Correct(fixed),
            Op::Append(ev[3].clone()),
            Op::Retract {
                id: ev[1].id,
                reason: "hoax".into(),
            },
        ],
        None,
    )
    .unwrap();
    let diffs = db.diff_events("b", Against::Base).unwrap();
    let got: Vec<(uuid::Uuid, annals::EventDiffKind, Vec<String>)> = diffs
        .iter()
        .map(|d| (d.id, d.kind, d.fields.clone()))
        .collect();
    let mut want = vec![
        (
            ev[0].id,
            annals::EventDiffKind::Changed,
            vec!["actors".to_string(), "summary".to_string()],
        ),
        (ev[1].id, annals::EventDiffKind::Removed, vec![]),
        (ev[3].id, annals::EventDiffKind::Added, vec![]),
    ];
    want.sort_by_key(|w| w.0);
    assert_eq!(got, want);
    assert!(db
        .diff_events("nope", Against::Base)
        .unwrap_err()
        .to_string()
        .contains("no branch"));
    db.close().unwrap();
    let out = common::annals(&dir.path().join("db"), &["diff", "b", "--events"], None);
    let text = common::stdout(&out);
    assert!(
        text.contains("changed") && text.contains("actors,summary"),
        "{text}"
    );
}
