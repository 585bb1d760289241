//! User projections registered with a database: the kept state, and the
//! type-erased feed the writer calls with every committed change.
//! Registration and replays are in `crate::replay`.

use std::sync::{Arc, RwLock};

use crate::error::Result;
use crate::log::Head;
use crate::projection::fold::{Change, Projection};
use crate::store::Storage;
use crate::sync::{read, write};

/// A user projection kept current by the database; see
/// [`crate::Annals::register`].
pub struct Registered<P: Projection> {
    state: Arc<RwLock<(u64, P::State)>>,
}

impl<P: Projection> Registered<P> {
    /// A copy of the projection's state, and the seq it is current to.
    pub fn state(&self) -> (u64, P::State) {
        read(&self.state).clone()
    }

    /// Runs `f` on the state without copying it.
    pub fn with_state<T>(&self, f: impl FnOnce(u64, &P::State) -> T) -> T {
        let guard = read(&self.state);
        f(guard.0, &guard.1)
    }
}

/// Type-erased registered projection, fed by the writer.
pub(crate) trait Feed: Send + Sync {
    fn name(&self) -> &str;
    fn feed(&self, change: &Change<'_>);
    fn checkpoint(&self, head: Head, store: &dyn Storage) -> Result<()>;
    /// Whether the kept state encodes like a replay of `changes` up to
    /// the seq it is current to (`None` if the projection does not encode
    /// its state).
    fn matches_replay(&self, changes: Changes<'_>) -> Result<Option<bool>>;
}

/// Calls the callback with the change made by every entry of main up to
/// a seq (a replay from scratch).
pub(crate) type Changes<'a> = &'a dyn Fn(u64, &mut dyn FnMut(&Change<'_>)) -> Result<()>;

/// A registered projection with the state it keeps.
pub(crate) struct Fed<P: Projection> {
    projection: P,
    state: Arc<RwLock<(u64, P::State)>>,
}

impl<P: Projection> Feed for Fed<P> {
    fn name(&self) -> &str {
        self.projection.name()
    }

    fn matches_replay(&self, changes: Changes<'_>) -> Result<Option<bool>> {
        let (seq, kept) = {
            let guard = read(&self.state);
            (guard.0, self.projection.encode(&guard.1))
        };
        let Some(kept) = kept else {
            return Ok(None);
        };
        let mut replayed = self.projection.init();
        changes(seq, &mut |c| self.projection.apply(&mut replayed, c))?;
        Ok(Some(self.projection.encode(&replayed) == Some(kept)))
    }

    fn feed(&self, change: &Change<'_>) {
        let mut guard = write(&self.state);
        self.projection.apply(&mut guard.1, change);
        guard.0 = change.seq;
    }

    fn checkpoint(&self, head: Head, store: &dyn Storage) -> Result<()> {
        let guard = read(&self.state);
        if let Some(bytes) = self.projection.encode(&guard.1) {
            store.put_meta(
                &projection_key(self.projection.name()),
                &checkpoint_bytes(head, &bytes),
            )?;
        }
        Ok(())
    }
}

/// The metadata key of a projection's checkpoint.
pub(crate) fn projection_key(name: &str) -> String {
    format!("projection/{name}")
}

fn checkpoint_bytes(head: Head, state: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(40 + state.len());
    v.extend_from_slice(&head.seq.to_be_bytes());
    v.extend_from_slice(&head.hash);
    v.extend_from_slice(state);
    v
}

impl<P: Projection> Fed<P> {
    /// A projection whose state is `state`, current to `seq`, and the
    /// caller's handle on that state.
    pub(crate) fn new(projection: P, seq: u64, state: P::State) -> (Fed<P>, Registered<P>) {
        let shared = Arc::new(RwLock::new((seq, state)));
        let registered = Registered {
            state: Arc::clone(&shared),
        };
        (
            Fed {
                projection,
                state: shared,
            },
            registered,
        )
    }
}

/// A checkpoint's seq, chain hash and encoded state; `None` if too short.
pub(crate) fn parse_checkpoint(bytes: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    let (seq, rest) = bytes.split_first_chunk::<8>()?;
    let hash = rest.get(..32)?;
    Some((u64::from_be_bytes(*seq), hash, rest.get(32..)?))
}
