//! What every view is built from: the change one entry makes to one
//! event, the trait of user projections, and the counters and extents
//! the built-in views keep.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::intern::{Name, Names};
use crate::log::Entry;
use crate::model::Event;
use crate::time::{Micros, Occurred, TimePoint};

/// What one log entry did to one event, as fed to projections.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    /// The entry's seq.
    pub seq: u64,
    /// The entry's transaction time.
    pub recorded_at: Micros,
    /// The event concerned.
    pub id: Uuid,
    /// The event's current version before this entry (none if it is new).
    pub before: Option<&'a Event>,
    /// Its current version after this entry (none if retracted).
    pub after: Option<&'a Event>,
    /// The entry itself (for a retraction's reason, say).
    pub entry: &'a Entry,
}

/// A user-defined view. annals feeds it every change in seq order, keeps
/// its checkpoint (if it can encode its state), catches it up on open and
/// rebuilds it on demand.
///
/// A projection must be a pure fold: the same changes in the same order
/// must give the same state, so that a view kept current equals a replay.
pub trait Projection: Send + Sync + 'static {
    /// The state the projection folds into.
    type State: Clone + Send + Sync + 'static;

    /// A stable name, unique in the database; it keys the checkpoint.
    fn name(&self) -> &str;

    /// The state before any entry.
    fn init(&self) -> Self::State;

    /// Folds one change into the state.
    fn apply(&self, state: &mut Self::State, change: &Change<'_>);

    /// Encodes the state for a checkpoint; `None` (the default) means the
    /// projection is rebuilt from the log each time it is registered.
    fn encode(&self, _state: &Self::State) -> Option<Vec<u8>> {
        None
    }

    /// Decodes a checkpoint written by [`Projection::encode`]; `None` if
    /// the bytes are not understood (the projection is then rebuilt).
    fn decode(&self, _bytes: &[u8]) -> Option<Self::State> {
        None
    }
}

/// Adds `delta` to a counter, dropping it at zero so that a view after a
/// retraction equals one that never saw the event. Counters are `u64`,
/// or `u32` where there are many of them.
pub(crate) fn bump<K: Ord, V: Copy + Into<i128> + TryFrom<i128>>(
    map: &mut BTreeMap<K, V>,
    key: K,
    delta: i64,
) {
    use std::collections::btree_map::Entry as Slot;
    match map.entry(key) {
        Slot::Occupied(mut slot) => {
            let new = (*slot.get()).into() + i128::from(delta);
            if new <= 0 {
                slot.remove();
            } else if let Ok(v) = V::try_from(new) {
                // (Past the counter's range it stays at its last value.)
                *slot.get_mut() = v;
            }
        }
        Slot::Vacant(slot) => {
            if let (true, Ok(v)) = (delta > 0, V::try_from(i128::from(delta))) {
                slot.insert(v);
            }
        }
    }
}

/// Smallest and largest of a multiset of time points, kept under removal.
/// A point is packed into one `i64` (start × 8 + precision code, which
/// keeps the order of (start, precision)) and counted in a `u32`: these
/// multisets are most of the views' memory (one entry per distinct day
/// an actor or a country was active), so each entry is kept small.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Extent {
    firsts: BTreeMap<i64, u32>,
    lasts: BTreeMap<i64, u32>,
}

/// Valid starts (years 1-9999) are within ±2^58 µs, so the packing never
/// overflows; anything else saturates (and would only misorder itself).
pub(crate) fn pack(p: TimePoint) -> i64 {
    p.start
        .saturating_mul(8)
        .saturating_add(i64::from(p.precision.code()))
}

pub(crate) fn unpack(k: i64) -> Option<TimePoint> {
    let code = u8::try_from(k.rem_euclid(8)).ok()?;
    TimePoint::from_parts(k.div_euclid(8), crate::time::Precision::from_code(code)?)
}

impl Extent {
    pub(crate) fn bump(&mut self, occurred: &Occurred, delta: i64) {
        bump(&mut self.firsts, pack(occurred.from), delta);
        bump(&mut self.lasts, pack(occurred.to), delta);
    }

    /// The earliest `from` point, as text at its own precision.
    pub(crate) fn first(&self) -> Option<String> {
        self.firsts
            .keys()
            .next()
            .and_then(|k| unpack(*k))
            .map(|p| p.to_string())
    }

    /// The latest `to` point, as text at its own precision.
    pub(crate) fn last(&self) -> Option<String> {
        self.lasts
            .keys()
            .next_back()
            .and_then(|k| unpack(*k))
            .map(|p| p.to_string())
    }
}

/// Turns a count map keyed by interned names into one keyed by strings.
pub(crate) fn named(names: &Names, m: &BTreeMap<Name, u64>) -> BTreeMap<String, u64> {
    m.iter()
        .map(|(k, v)| (names.name(*k).to_string(), *v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_points_keep_their_order_and_round_trip() {
        let points: Vec<TimePoint> = [
            "0001",
            "0001-01-01",
            "1969-12-31",
            "1970",
            "1970-01",
            "1970-01-01",
            "1970-01-01T00:00:00.000001Z",
            "2025-09",
            "2025-09-01",
            "2025-09-10",
            "9999-12-31",
        ]
        .iter()
        .map(|s| TimePoint::parse(s).unwrap())
        .collect();
        for a in &points {
            assert_eq!(unpack(pack(*a)), Some(*a));
            for b in &points {
                assert_eq!(a.cmp(b), pack(*a).cmp(&pack(*b)), "{a} {b}");
            }
        }
    }
}
