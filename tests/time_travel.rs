//! As-of reads: a reader as of seq S answers exactly like a fresh database
//! into which entries 1..=S were replayed (as-of == prefix), for every
//! query, `get` and all three views; and as of a time means the last entry
//! recorded at or before it.

mod common;

use annals::{AsOf, At, Granularity, Op, Query};
use common::gen;
use proptest::prelude::*;

/// Everything a reader answers, for comparison.
type Answers = (
    std::sync::Arc<[annals::CountryRow]>,
    std::sync::Arc<[annals::ActorRow]>,
    Vec<std::sync::Arc<[annals::DateRow]>>,
    Vec<(u64, uuid::Uuid)>,
    Vec<(u64, uuid::Uuid)>,
);

fn answers(r: &annals::Reader<'_>) -> Answers {
    let dates = Granularity::ALL
        .iter()
        .map(|g| r.by_date(*g).unwrap())
        .collect();
    let all: Vec<(u64, uuid::Uuid)> = r
        .query(&Query::new())
        .unwrap()
        .iter()
        .map(|x| (x.position.seq, x.event.id))
        .collect();
    let content: Vec<annals::Event> = r
        .query(&Query::new())
        .unwrap()
        .into_iter()
        .map(|x| x.event)
        .collect();
    assert_eq!(content.len(), all.len());
    let pl: Vec<(u64, uuid::Uuid)> = r
        .query(
            &Query::new()
                .country("PL")
                .from("2025-09")
                .unwrap()
                .to("2025-11")
                .unwrap(),
        )
        .unwrap()
        .iter()
        .map(|x| (x.position.seq, x.event.id))
        .collect();
    (
        r.by_country().unwrap(),
        r.by_actor().unwrap(),
        dates,
        all,
        pl,
    )
}

fn build(batches: &[Vec<Op>], snapshot_every: u64) -> (tempfile::TempDir, annals::Annals) {
    let dir = tempfile::tempdir().unwrap();
    let db = annals::Annals::builder(dir.path().join("db"))
        .durability(annals::Durability::Buffered)
        .snapshot_every_entries(snapshot_every)
        .open()
        .unwrap();
    for b in batches {
        let _ = db.write(b.clone(), None);
    }
    (dir, db)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn as_of_equals_a_replay_of_the_prefix(batches in gen::batches(12), cut in 0u64..=100, every in 1u64..6) {
        let (_d, db) = build(&batches, every);
        let head = db.head().seq;
        let s = head * cut / 100;
        let entries: Vec<annals::Entry> = db.entries(0).unwrap().map(Result::unwrap).collect();
        let (_d2, prefix) = build(&[], 1000);
        let ops: Vec<Op> = entries.iter().take(s as usize).map(gen::op_of).collect();
        if !ops.is_empty() {
            prefix.write(ops, None).unwrap();
        }
        let r = db.reader(&At::head().as_of(AsOf::Seq(s))).unwrap();
        prop_assert_eq!(r.seq(), s);
        let expected = answers(&prefix.reader(&At::head()).unwrap());
        prop_assert_eq!(answers(&r), expected);
        for e in entries.iter().take(s as usize) {
            let id = e.body.id();
            let got = r.get(id).unwrap().map(|x| (x.event, x.retracted_seq.is_some()));
            let want = prefix.get(id).unwrap().map(|x| (x.event, x.retracted_seq.is_some()));
            prop_assert_eq!(got, want);
            prop_assert_eq!(r.history(id).unwrap().len(), prefix.history(id).unwrap().len());
        }
    }
}

#[test]
fn as_of_a_time_is_the_last_entry_recorded_by_then() {
    let (_d, db) = common::fresh();
    let events = common::scenario();
    db.append(events[..3].to_vec()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let between = annals::parse_rfc3339(&chrono_now()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    db.append(events[3..].to_vec()).unwrap();
    let r = db.reader(&At::head().as_of(AsOf::Time(between))).unwrap();
    assert_eq!(r.seq(), 3);
    assert_eq!(r.query(&Query::new()).unwrap().len(), 3);
    // Before the first entry: empty, not an error. In the future: the head.
    let r = db
        .reader(&At::head().as_of("2000-01-01T00:00:00Z".parse().unwrap()))
        .unwrap();
    assert_eq!(r.seq(), 0);
    assert!(r.by_country().unwrap().is_empty());
    let r = db
        .reader(&At::head().as_of("2999-01-01T00:00:00Z".parse().unwrap()))
        .unwrap();
    assert_eq!(r.seq(), 11);
    let r = db.reader(&At::head().as_of(AsOf::Seq(999))).unwrap();
    assert_eq!(r.seq(), 11);
    assert!("yesterday".parse::<AsOf>().is_err());
}

fn chrono_now() -> String {
    annals::format_micros(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64,
    )
}

#[test]
fn what_did_we_know_before_a_correction_and_a_retraction() {
    let (_d, db) = common::fresh();
    let events = common::scenario();
    db.append(events.clone()).unwrap();
    let sabotage = events[5].clone();
    let mut fixed = sabotage.clone();
    fixed.countries.push("UA".into());
    db.correct(fixed.clone()).unwrap();
    db.retract(events[1].id, "duplicate").unwrap();
    let before = db.reader(&At::head().as_of(AsOf::Seq(11))).unwrap();
    assert_eq!(before.get(sabotage.id).unwrap().unwrap().event, sabotage);
    assert!(before
        .get(events[1].id)
        .unwrap()
        .unwrap()
        .retracted_seq
        .is_none());
    assert_eq!(before.history(sabotage.id).unwrap().len(), 1);
    let now = db.reader(&At::head()).unwrap();
    assert_eq!(now.get(sabotage.id).unwrap().unwrap().event, fixed);
    assert_eq!(
        now.get(events[1].id).unwrap().unwrap().retracted_seq,
        Some(13)
    );
    assert_eq!(now.history(sabotage.id).unwrap().len(), 2);
    let ua = |r: &annals::Reader<'_>| {
        r.by_country()
            .unwrap()
            .iter()
            .find(|c| c.country == "UA")
            .map(|c| c.count)
    };
    assert_eq!(ua(&before), Some(2));
    assert_eq!(ua(&now), Some(3));
    assert!(before.get(uuid::Uuid::from_u128(5)).unwrap().is_none());
    let early = db.reader(&At::head().as_of(AsOf::Seq(2))).unwrap();
    assert!(early.get(sabotage.id).unwrap().is_none());
}

#[test]
fn snapshots_survive_reopen_and_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let open = || {
        annals::Annals::builder(&path)
            .durability(annals::Durability::Buffered)
            .snapshot_every_entries(3)
            .open()
            .unwrap()
    };
    let db = open();
    for e in common::scenario() {
        db.append(vec![e]).unwrap();
    }
    let expected = db
        .reader(&At::head().as_of(AsOf::Seq(7)))
        .unwrap()
        .by_country()
        .unwrap();
    db.close().unwrap();
    let snaps: Vec<_> = std::fs::read_dir(path.join("snapshots"))
        .unwrap()
        .flatten()
        .collect();
    assert!(snaps.len() >= 3);
    // A snapshot is a folder of runs; every file of each is overwritten:
    // the snapshots are skipped and the view is folded from the log.
    let files = |s: &std::fs::DirEntry| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(s.path())
            .unwrap()
            .flatten()
            .map(|f| f.path())
            .collect()
    };
    let kept: Vec<(std::path::PathBuf, Vec<u8>)> = snaps
        .iter()
        .flat_map(files)
        .map(|f| (f.clone(), std::fs::read(&f).unwrap()))
        .collect();
    for (f, _) in &kept {
        std::fs::write(f, b"damaged").unwrap();
    }
    let db = open();
    let as_of_7 = |db: &annals::Annals| {
        db.reader(&At::head().as_of(AsOf::Seq(7)))
            .unwrap()
            .by_country()
    };
    assert_eq!(as_of_7(&db).unwrap(), expected);
    db.close().unwrap();
    // Damage inside a run's block is met only when read: the read that
    // meets it says so (never a wrong answer), and a rebuild repairs it.
    for (f, bytes) in &kept {
        std::fs::write(f, bytes).unwrap();
    }
    for (f, bytes) in kept
        .iter()
        .filter(|(f, _)| f.extension().is_some_and(|x| x == "run"))
    {
        let mut b = bytes.clone();
        b[0] ^= 0x40;
        std::fs::write(f, &b).unwrap();
    }
    let db = open();
    match as_of_7(&db) {
        Ok(rows) => assert_eq!(rows, expected),
        Err(e) => {
            assert!(e.to_string().contains("view run"), "{e}");
            db.rebuild().unwrap();
            assert_eq!(as_of_7(&db).unwrap(), expected);
        }
    }
}
