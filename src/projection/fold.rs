//! What every view is built from: the change one entry makes to one
//! event, the trait of user projections, and the packing of time points
//! into the built-in views' keys.

use uuid::Uuid;

use crate::log::Entry;
use crate::model::Event;
use crate::time::{Granularity, Micros, Occurred, Precision, TimePoint};

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

/// A bucket of the by-date view: its first microsecond and its precision.
pub(crate) type Bucket = (Micros, Precision);

/// The bucket of an occurrence at a granularity.
pub(crate) fn bucket(occurred: &Occurred, g: Granularity) -> Bucket {
    let precision = g.precision().max(occurred.precision());
    (occurred.from.truncate(precision).start, precision)
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
