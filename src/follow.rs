//! Who hears main's committed batches: registered user projections
//! (feeds) and live subscribers.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::log::{Entry, Head};
use crate::model::Event;
use crate::projection::{Change, Changes, Feed};
use crate::store::Storage;
use crate::sync::lock;

/// The feeds and subscribers of main.
#[derive(Default)]
pub(crate) struct Followers {
    feeds: Mutex<Vec<Box<dyn Feed>>>,
    subscribers: Mutex<Vec<Sender<Entry>>>,
}

impl Followers {
    /// Tells every follower about committed entries, each with the version
    /// it replaced. A subscriber that went away is dropped.
    pub(crate) fn notify(&self, entries: &[Entry], befores: &[Option<Event>]) {
        {
            let feeds = lock(&self.feeds);
            if !feeds.is_empty() {
                for (entry, before) in entries.iter().zip(befores) {
                    let change = Change {
                        seq: entry.seq,
                        recorded_at: entry.recorded_at,
                        id: entry.body.id(),
                        before: before.as_ref(),
                        after: entry.body.event(),
                        entry,
                    };
                    for f in feeds.iter() {
                        f.feed(&change);
                    }
                }
            }
        }
        lock(&self.subscribers).retain(|tx| entries.iter().all(|e| tx.send(e.clone()).is_ok()));
    }

    /// Checkpoints every feed that keeps its state, at `head`.
    pub(crate) fn checkpoint(&self, head: Head, store: &dyn Storage) -> Result<()> {
        for f in lock(&self.feeds).iter() {
            f.checkpoint(head, store)?;
        }
        Ok(())
    }

    /// Adds a feed. The caller holds the writer lock and has caught the
    /// feed up to the head.
    pub(crate) fn add_feed(&self, feed: Box<dyn Feed>) {
        lock(&self.feeds).push(feed);
    }

    /// A new subscriber's end of the channel. The caller holds the writer
    /// lock, so that nothing commits between its backlog and this.
    pub(crate) fn subscribe(&self) -> Receiver<Entry> {
        let (tx, rx) = std::sync::mpsc::channel();
        lock(&self.subscribers).push(tx);
        rx
    }

    /// Checks that each feed that encodes its state equals a replay of
    /// `changes`; returns how many were checked.
    pub(crate) fn verify(&self, changes: Changes<'_>) -> Result<u64> {
        let feeds = lock(&self.feeds);
        let mut n = 0;
        for f in feeds.iter() {
            if let Some(ok) = f.matches_replay(changes)? {
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
