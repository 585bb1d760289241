//! User projections: fed in seq order, checkpointed, caught up on open,
//! equal to a replay.

mod common;

use std::collections::BTreeMap;

use annals::{Annals, Change, Durability, Projection};
use common::*;

/// Counts current events per tag, and remembers the last seq seen.
struct TagCounts;

impl Projection for TagCounts {
    type State = BTreeMap<String, i64>;
    fn name(&self) -> &str {
        "tag_counts"
    }
    fn init(&self) -> Self::State {
        BTreeMap::new()
    }
    fn apply(&self, state: &mut Self::State, c: &Change<'_>) {
        for t in c.before.iter().flat_map(|e| &e.tags) {
            *state.entry(t.clone()).or_default() -= 1;
        }
        for t in c.after.iter().flat_map(|e| &e.tags) {
            *state.entry(t.clone()).or_default() += 1;
        }
        state.retain(|_, n| *n != 0);
    }
    fn encode(&self, state: &Self::State) -> Option<Vec<u8>> {
        serde_json::to_vec(state).ok()
    }
    fn decode(&self, bytes: &[u8]) -> Option<Self::State> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Counts how many changes it was fed: shows nothing is fed twice.
struct Fed(&'static str);

impl Projection for Fed {
    type State = Vec<u64>;
    fn name(&self) -> &str {
        self.0
    }
    fn init(&self) -> Self::State {
        Vec::new()
    }
    fn apply(&self, state: &mut Self::State, c: &Change<'_>) {
        state.push(c.seq);
    }
    fn encode(&self, state: &Self::State) -> Option<Vec<u8>> {
        serde_json::to_vec(state).ok()
    }
    fn decode(&self, bytes: &[u8]) -> Option<Self::State> {
        serde_json::from_slice(bytes).ok()
    }
}

fn open(p: &std::path::Path) -> Annals {
    Annals::builder(p)
        .durability(Durability::Buffered)
        .checkpoint_every_entries(3)
        .open()
        .unwrap()
}

#[test]
fn kept_current_and_equal_to_a_replay() {
    let (_d, db) = fresh();
    let events = scenario();
    db.append(events[..4].to_vec()).unwrap();
    let tags = db.register(TagCounts).unwrap();
    db.append(events[4..].to_vec()).unwrap();
    db.retract(events[4].id, "test").unwrap();
    let (seq, state) = tags.state();
    assert_eq!(seq, db.head().seq);
    assert_eq!(state, db.replay(&TagCounts, None).unwrap());
    assert_eq!(state.get("hybrid_threats"), Some(&3));
    assert_eq!(state.get("drones"), Some(&2));
    // As of an earlier seq: a replay of the prefix.
    let early = db.replay(&TagCounts, Some(4)).unwrap();
    assert_eq!(early.get("drones"), Some(&2));
    assert_eq!(early.get("rail"), None);
}

#[test]
fn checkpointed_and_caught_up_on_open_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let events = scenario();
    {
        let db = open(&path);
        let fed = db.register(Fed("fed")).unwrap();
        db.append(events[..6].to_vec()).unwrap();
        assert_eq!(fed.state().1, (1..=6).collect::<Vec<_>>());
        db.close().unwrap();
    }
    {
        // Entries arrive while the projection is not registered.
        let db = open(&path);
        db.append(events[6..].to_vec()).unwrap();
        db.close().unwrap();
    }
    let db = open(&path);
    let fed = db.register(Fed("fed")).unwrap();
    assert_eq!(
        fed.state().1,
        (1..=11).collect::<Vec<_>>(),
        "every seq once, in order"
    );
    db.retract(events[0].id, "x").unwrap();
    assert_eq!(fed.with_state(|seq, s| (seq, s.len())), (12, 12));
}

#[test]
fn a_checkpoint_from_another_history_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = open(&path);
    db.register(Fed("f")).unwrap();
    db.append(scenario()).unwrap();
    db.close().unwrap();
    // Replace the database with another history of the same length.
    std::fs::remove_dir_all(&path).unwrap();
    let db = open(&path);
    let mut evs = scenario();
    evs.reverse();
    db.append(evs).unwrap();
    let f = db.register(Fed("f")).unwrap();
    assert_eq!(f.state().1, (1..=11).collect::<Vec<_>>());
}
