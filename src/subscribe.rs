//! Replay and live subscriptions: iterate the log from any seq, and follow
//! main's entries as they are committed.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::Result;
use crate::log::{Entry, EntryIter, Hash};

/// Every entry of main after seq `after`, then every entry committed from
/// now on; see [`crate::Annals::subscribe`].
pub(crate) fn subscribe(engine: &Engine, after: u64) -> Result<Subscription<'_>> {
    // Under the writer lock no batch commits between reading the head
    // and registering, so the backlog ends where the live feed starts.
    let _writer = engine.lock_writer_any();
    let main = engine.main();
    let head = main.head();
    let rx = main.followers().subscribe();
    let log = main.log();
    let backlog = log.entries_after(log.head_at(after.min(head.seq))?);
    Ok(Subscription {
        backlog: Some(backlog),
        upto: head.seq,
        rx,
    })
}

/// Main's or a branch's entries with their chain hashes; see
/// [`crate::Annals::chained_entries`].
pub(crate) fn chained_entries<'a>(
    engine: &'a Engine,
    branch: Option<&str>,
    after: u64,
) -> Result<EntryIter<'a>> {
    match branch {
        None => {
            let log = engine.log();
            let head = log.head_at(after.min(engine.main().head().seq))?;
            Ok(log.entries_after(head))
        }
        Some(name) => {
            let b = engine.branch(name)?;
            let from = after.max(b.meta.base.seq).min(b.head().seq);
            let own: Vec<Result<(Entry, Hash)>> =
                b.log.entries_after(b.log.head_at(from)?).collect();
            Ok(Box::new(own.into_iter()))
        }
    }
}

/// The entries of main or a branch after `after`; see
/// [`crate::Annals::entries_on`].
pub(crate) fn entries_on<'a>(
    engine: &'a Engine,
    branch: Option<&str>,
    after: u64,
) -> Result<Box<dyn Iterator<Item = Result<Entry>> + 'a>> {
    let mut own: Vec<Entry> = Vec::new();
    let mut main_upto = u64::MAX;
    let mut next = branch.map(|b| engine.branch(b)).transpose()?;
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
            .map(|p| engine.branch(p))
            .transpose()?;
    }
    let main_part: Box<dyn Iterator<Item = Result<Entry>> + 'a> = if after < main_upto {
        let log = engine.log();
        let head = log.head_at(after.min(engine.main().head().seq))?;
        Box::new(
            log.entries_after(head)
                .map(|r| r.map(|(e, _)| e))
                .take_while(move |r| r.as_ref().map_or(true, |e| e.seq <= main_upto)),
        )
    } else {
        Box::new(std::iter::empty())
    };
    Ok(Box::new(main_part.chain(own.into_iter().map(Ok))))
}

/// Main's entries after a seq, then each one committed from then on; see
/// [`crate::Annals::subscribe`].
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
