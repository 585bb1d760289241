//! Replay and live subscriptions: a subscriber started at any seq sees
//! every later entry exactly once, in order, across the catch-up/live
//! boundary, while writers keep committing.

mod common;

use std::time::Duration;

use annals::Op;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_later_entry_exactly_once_in_order(before in 0usize..6, after in 1usize..6, start in 0u64..=100) {
        let (_d, db) = common::fresh();
        let batch = |i: usize| -> Vec<Op> {
            (0..3).map(|j| Op::Append(common::ev(&format!(
                r#"{{"kind":"statement","occurred":"2025-12-03","summary":"{i}-{j}"}}"#
            )))).collect()
        };
        for i in 0..before {
            db.write(batch(i), None).unwrap();
        }
        let from = db.head().seq * start / 100;
        let total = (before + after) as u64 * 3;
        let seen = std::thread::scope(|s| {
            let mut sub = db.subscribe(from).unwrap();
            let writer = s.spawn(|| {
                for i in 0..after {
                    db.write(batch(100 + i), None).unwrap();
                }
            });
            let mut seen = Vec::new();
            while (seen.len() as u64) < total - from {
                match sub.next_timeout(Duration::from_secs(10)) {
                    Some(e) => seen.push(e.unwrap().seq),
                    None => break,
                }
            }
            writer.join().unwrap();
            assert!(sub.next_timeout(Duration::from_millis(20)).is_none(), "an entry came twice");
            seen
        });
        prop_assert_eq!(seen, (from + 1..=total).collect::<Vec<_>>());
    }
}

#[test]
fn a_user_projection_as_of_a_seq_and_on_a_branch() {
    use annals::{AsOf, At, Change, Projection};
    struct Count;
    impl Projection for Count {
        type State = i64;
        fn name(&self) -> &str {
            "count"
        }
        fn init(&self) -> i64 {
            0
        }
        fn apply(&self, s: &mut i64, c: &Change<'_>) {
            *s += i64::from(c.after.is_some()) - i64::from(c.before.is_some());
        }
    }
    let (_d, db) = common::fresh();
    let events = common::scenario();
    db.append(events.clone()).unwrap();
    db.create_branch("w", None, Some(AsOf::Seq(5))).unwrap();
    db.write_branch(
        "w",
        vec![Op::Retract {
            id: events[0].id,
            reason: "x".into(),
        }],
        None,
    )
    .unwrap();
    assert_eq!(db.replay_at(&Count, &At::head()).unwrap(), 11);
    assert_eq!(
        db.replay_at(&Count, &At::head().as_of(AsOf::Seq(4)))
            .unwrap(),
        4
    );
    assert_eq!(db.replay_at(&Count, &At::head().branch("w")).unwrap(), 4);
    let entries: Vec<u64> = db
        .entries_on(Some("w"), 3)
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(entries, [4, 5, 6]);
}
