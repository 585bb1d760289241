//! Replay and live subscriptions: iterate the log from any seq, and follow
//! main's entries as they are committed.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::db::{lock, read, Annals};
use crate::error::Result;
use crate::log::{Entry, EntryIter, Hash};

impl Annals {
    /// Every entry of main after seq `after`, then every entry committed
    /// from now on, each exactly once and in order (no polling: the live
    /// part waits on a channel).
    pub fn subscribe(&self, after: u64) -> Result<Subscription<'_>> {
        // Under the writer lock no batch commits between reading the head
        // and registering, so the backlog ends where the live feed starts.
        let _writer = lock(&self.writer);
        let head = read(&self.state).head;
        let (tx, rx) = std::sync::mpsc::channel();
        lock(&self.subscribers).push(tx);
        let backlog = self
            .log
            .entries_after(self.log.head_at(after.min(head.seq))?);
        Ok(Subscription {
            backlog: Some(backlog),
            upto: head.seq,
            rx,
        })
    }

    /// Every entry of main after seq `after`, in order, checked (checksum,
    /// chain, gapless seq). Entries appended while iterating may or may not
    /// be included; [`Annals::subscribe`] guarantees them.
    pub fn entries(&self, after: u64) -> Result<impl Iterator<Item = Result<Entry>> + '_> {
        self.entries_on(None, after)
    }

    /// Entries with their chain hashes, for mirrors that must prove where
    /// they stand: main's entries after `after`, or a branch's own entries
    /// after `after` (and after its base), each checked against its
    /// predecessor. A branch's entries are read whole (branches are held
    /// in memory anyway); main's are streamed.
    pub fn chained_entries(&self, branch: Option<&str>, after: u64) -> Result<EntryIter<'_>> {
        match branch {
            None => {
                let head = self.log.head_at(after.min(self.head().seq))?;
                Ok(self.log.entries_after(head))
            }
            Some(name) => {
                let b = self.branch(name)?;
                let from = after.max(b.meta.base.seq).min(b.head().seq);
                let own: Vec<Result<(Entry, Hash)>> =
                    b.log.entries_after(b.log.head_at(from)?).collect();
                Ok(Box::new(own.into_iter()))
            }
        }
    }

    /// Like [`Annals::entries`], on main (`None`) or a branch, whose
    /// entries up to its base are its parent's. Main's part is streamed
    /// from the log; a branch's own entries come from memory.
    pub fn entries_on(
        &self,
        branch: Option<&str>,
        after: u64,
    ) -> Result<Box<dyn Iterator<Item = Result<Entry>> + '_>> {
        let mut own: Vec<Entry> = Vec::new();
        let mut main_upto = u64::MAX;
        let mut next = branch.map(|b| self.branch(b)).transpose()?;
        while let Some(b) = next {
            let mut segment: Vec<Entry> = b
                .entries_upto(main_upto)
                .into_iter()
                .filter(|e| e.seq > after)
                .collect();
            segment.append(&mut own);
            own = segment;
            main_upto = b.meta.base.seq;
            next = b
                .meta
                .parent
                .as_deref()
                .map(|p| self.branch(p))
                .transpose()?;
        }
        let main_part: Box<dyn Iterator<Item = Result<Entry>> + '_> = if after < main_upto {
            let head = self.log.head_at(after.min(self.head().seq))?;
            Box::new(
                self.log
                    .entries_after(head)
                    .map(|r| r.map(|(e, _)| e))
                    .take_while(move |r| r.as_ref().map_or(true, |e| e.seq <= main_upto)),
            )
        } else {
            Box::new(std::iter::empty())
        };
        Ok(Box::new(main_part.chain(own.into_iter().map(Ok))))
    }
}

/// Main's entries after a seq, then each one committed from then on; see
/// [`Annals::subscribe`].
pub struct Subscription<'a> {
    backlog: Option<EntryIter<'a>>,
    /// The head when the subscription started: the backlog ends there and
    /// the live feed starts after it.
    upto: u64,
    rx: Receiver<Entry>,
}

impl Subscription<'_> {
    /// The next entry, waiting at most `timeout` for a live one; `None` on
    /// time-out or once the database is closed.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Entry>> {
        if let Some(item) = self.next_in_backlog() {
            return Some(item);
        }
        self.rx.recv_timeout(timeout).ok().map(Ok)
    }

    fn next_in_backlog(&mut self) -> Option<Result<Entry>> {
        let backlog = self.backlog.as_mut()?;
        match backlog.next() {
            Some(Ok((e, _))) if e.seq <= self.upto => Some(Ok(e)),
            Some(Err(e)) => {
                self.backlog = None;
                Some(Err(e))
            }
            _ => {
                self.backlog = None;
                None
            }
        }
    }
}

impl Iterator for Subscription<'_> {
    type Item = Result<Entry>;

    /// The next entry, waiting for one to be committed if need be.
    fn next(&mut self) -> Option<Result<Entry>> {
        if let Some(item) = self.next_in_backlog() {
            return Some(item);
        }
        self.rx.recv().ok().map(Ok)
    }
}
