//! User projections over the log: replayed on demand, or registered to be
//! fed every committed change (kept state in `projection::user`, fed by
//! `follow`).

use crate::engine::Engine;
use crate::error::Result;
use crate::line::Line;
use crate::projection::{
    parse_checkpoint, projection_key, Change, Fed, Feed, Projection, Registered,
};
use crate::read::{At, Reader};
use crate::state::State;

/// Calls `f` with the change made by every entry of main after seq
/// `after`, up to `upto` (the head if `None`). Each change's `before`
/// comes from the index's version lists, so no scratch state is needed.
fn changes(
    engine: &Engine,
    after: u64,
    upto: Option<u64>,
    f: &mut dyn FnMut(&Change<'_>),
) -> Result<()> {
    let head = engine.main().head().seq;
    let upto = upto.unwrap_or(head).min(head);
    if after >= upto {
        return Ok(());
    }
    // The state is locked per lookup, not for the whole replay, so that
    // a long replay never holds up readers or writers.
    let reader = Reader::at(engine.lines(), Line::Main, upto);
    let log = engine.log();
    for item in log.entries_after(log.head_at(after)?) {
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

/// Folds main from scratch through a projection; see
/// [`crate::Annals::replay`].
pub(crate) fn replay<P: Projection>(
    engine: &Engine,
    projection: &P,
    upto: Option<u64>,
) -> Result<P::State> {
    let mut acc = projection.init();
    changes(engine, 0, upto, &mut |c| projection.apply(&mut acc, c))?;
    Ok(acc)
}

/// Folds main or a branch, up to an as-of point, through a projection;
/// see [`crate::Annals::replay_at`].
pub(crate) fn replay_at<P: Projection>(
    engine: &Engine,
    projection: &P,
    at: &At,
) -> Result<P::State> {
    let reader = engine.reader(at)?;
    let log = match &at.branch {
        None => std::sync::Arc::clone(engine.log()),
        Some(b) => std::sync::Arc::clone(&engine.branch(b)?.log),
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

/// Registers a user projection; see [`crate::Annals::register`].
pub(crate) fn register<P: Projection>(engine: &Engine, projection: P) -> Result<Registered<P>> {
    // Holding the writer lock: no batch commits between catch-up and
    // the first feed, so no change is missed or applied twice.
    let _writer = engine.lock_writer_any();
    let log = engine.log();
    let head = engine.main().head();
    let mut start: (u64, P::State) = (0, projection.init());
    if let Some(bytes) = log.store().get_meta(&projection_key(projection.name()))? {
        if let Some((seq, hash, body)) = parse_checkpoint(&bytes) {
            let matches = seq <= head.seq && log.head_at(seq).is_ok_and(|h| h.hash == hash);
            if let (true, Some(s)) = (matches, projection.decode(body)) {
                start = (seq, s);
            }
        }
    }
    let (mut seq, mut acc) = start;
    changes(engine, seq, None, &mut |c| {
        projection.apply(&mut acc, c);
        seq = c.seq;
    })?;
    let (fed, registered) = Fed::new(projection, seq, acc);
    fed.checkpoint(head, log.store())?;
    engine.main().followers().add_feed(Box::new(fed));
    Ok(registered)
}

/// Checks that each persisted user projection equals a replay; returns
/// how many were checked.
pub(crate) fn verify_projections(engine: &Engine) -> Result<u64> {
    engine
        .main()
        .followers()
        .verify(&|upto, f| changes(engine, 0, Some(upto), f))
}
