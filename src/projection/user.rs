//! User projections registered with a database: fed every committed change,
//! checkpointed, caught up on registration, replayed on demand.

use std::sync::{Arc, RwLock};

use crate::db::{lock, read, write, Annals};
use crate::error::{Error, Result};
use crate::log::Head;
use crate::projection::{Change, Projection};
use crate::read::{At, Line, Reader};
use crate::state::State;
use crate::store::Storage;

/// A user projection kept current by the database; see
/// [`Annals::register`].
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
    /// Whether the kept state encodes like a replay (`None` if the
    /// projection does not encode its state).
    fn matches_replay(&self, db: &Annals) -> Result<Option<bool>>;
}

pub(crate) struct Fed<P: Projection> {
    projection: P,
    state: Arc<RwLock<(u64, P::State)>>,
}

impl<P: Projection> Feed for Fed<P> {
    fn name(&self) -> &str {
        self.projection.name()
    }

    fn matches_replay(&self, db: &Annals) -> Result<Option<bool>> {
        let (seq, kept) = {
            let guard = read(&self.state);
            (guard.0, self.projection.encode(&guard.1))
        };
        let Some(kept) = kept else {
            return Ok(None);
        };
        let replayed = db.replay(&self.projection, Some(seq))?;
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

fn projection_key(name: &str) -> String {
    format!("projection/{name}")
}

fn checkpoint_bytes(head: Head, state: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(40 + state.len());
    v.extend_from_slice(&head.seq.to_be_bytes());
    v.extend_from_slice(&head.hash);
    v.extend_from_slice(state);
    v
}

impl Annals {
    /// Calls `f` with the change made by every entry after seq `after`, up
    /// to `upto` (the head if `None`). Each change's `before` comes from the
    /// index's version lists, so no scratch state is needed.
    fn changes(&self, after: u64, upto: Option<u64>, mut f: impl FnMut(&Change<'_>)) -> Result<()> {
        let head = self.head().seq;
        let upto = upto.unwrap_or(head).min(head);
        if after >= upto {
            return Ok(());
        }
        // The state is locked per lookup, not for the whole replay, so that
        // a long replay never holds up readers or writers.
        let reader = Reader::at(self, Line::Main, upto);
        for item in self.log.entries_after(self.log.head_at(after)?) {
            let (entry, _) = item?;
            if entry.seq > upto {
                break;
            }
            let before = reader.main_before(&entry)?;
            f(&Change {
                seq: entry.seq,
                recorded_at: entry.recorded_at,
                id: entry.body.id(),
                before: before.as_ref(),
                after: entry.body.event(),
                entry: &entry,
            });
        }
        Ok(())
    }

    /// Folds the log from scratch through a projection, up to seq `upto`
    /// (the head if `None`), without registering it.
    pub fn replay<P: Projection>(&self, projection: &P, upto: Option<u64>) -> Result<P::State> {
        let mut acc = projection.init();
        self.changes(0, upto, |c| projection.apply(&mut acc, c))?;
        Ok(acc)
    }

    /// Folds a log (main or a branch, up to an as-of point) from scratch
    /// through a projection, without registering it.
    pub fn replay_at<P: Projection>(&self, projection: &P, at: &At) -> Result<P::State> {
        let reader = Reader::new(self, at)?;
        let log = match &at.branch {
            None => Arc::clone(&self.log),
            Some(b) => Arc::clone(&self.branch(b)?.log),
        };
        let mut acc = projection.init();
        let mut scratch = State::default();
        scratch.catch_up(&log, Some(reader.seq()), |entry, before| {
            projection.apply(
                &mut acc,
                &Change {
                    seq: entry.seq,
                    recorded_at: entry.recorded_at,
                    id: entry.body.id(),
                    before,
                    after: entry.body.event(),
                    entry,
                },
            );
        })?;
        Ok(acc)
    }

    /// Registers a user projection: loads its checkpoint (if it keeps one
    /// and it matches the log), catches it up to the head, and from then on
    /// feeds it every committed change.
    pub fn register<P: Projection>(&self, projection: P) -> Result<Registered<P>> {
        // Holding the writer lock: no batch commits between catch-up and
        // the first feed, so no change is missed or applied twice.
        let _writer = lock(&self.writer);
        let mut start: (u64, P::State) = (0, projection.init());
        if let Some(bytes) = self
            .log
            .store()
            .get_meta(&projection_key(projection.name()))?
        {
            if let (Some(seq_b), Some(hash_b), Some(body)) =
                (bytes.get(..8), bytes.get(8..40), bytes.get(40..))
            {
                let mut sb = [0u8; 8];
                sb.copy_from_slice(seq_b);
                let seq = u64::from_be_bytes(sb);
                let matches =
                    seq <= self.head().seq && self.log.head_at(seq).is_ok_and(|h| h.hash == hash_b);
                if let (true, Some(s)) = (matches, projection.decode(body)) {
                    start = (seq, s);
                }
            }
        }
        let (mut seq, mut acc) = start;
        self.changes(seq, None, |c| {
            projection.apply(&mut acc, c);
            seq = c.seq;
        })?;
        let shared = Arc::new(RwLock::new((seq, acc)));
        let fed = Fed {
            projection,
            state: Arc::clone(&shared),
        };
        fed.checkpoint(self.head(), self.log.store())?;
        lock(&self.feeds).push(Box::new(fed));
        Ok(Registered { state: shared })
    }

    /// Checks that each persisted user projection equals a replay; returns
    /// how many were checked.
    pub(crate) fn verify_projections(&self) -> Result<u64> {
        let feeds = lock(&self.feeds);
        let mut n = 0;
        for f in feeds.iter() {
            if let Some(ok) = f.matches_replay(self)? {
                if !ok {
                    return Err(Error::corruption(
                        0,
                        format!("projection `{}` differs from a replay of the log", f.name()),
                    ));
                }
                n += 1;
            }
        }
        Ok(n)
    }
}
