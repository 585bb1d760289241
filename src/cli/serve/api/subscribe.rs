//! `GET /subscribe`: the live feed as Server-Sent Events.
//!
//! A feed holds no thread while it waits: it waits on the server's head
//! watch (one thread moves it on for every feed) and reads the log on the
//! blocking pool only when there is something new, a bounded batch at a
//! time. Feeds have their own budget (`--max-feeds`, per client
//! `--max-feeds-per-client`) and leave the connection slots to ordinary
//! requests.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;
use tokio::sync::mpsc;

use super::http::{ApiError, Channel, Db, Pairs, Params};
use crate::cli::serve::conns::Conn;
use crate::cli::serve::shared::SEND_TIMEOUT;

/// Entries read from the log per trip to the blocking pool.
const BATCH: usize = 256;

/// Server-Sent Events: main's entries after `after` (or the
/// `Last-Event-ID` a reconnecting client sends, which wins), then each one
/// as it commits. The SSE id is the seq, so a client that reconnects
/// resumes with no gap and no repeat.
pub(super) async fn subscribe(
    State(db): State<Db>,
    Extension(conn): Extension<Arc<Conn>>,
    headers: HeaderMap,
    Pairs(p): Pairs,
) -> Result<Response, ApiError> {
    let p = Params::new(p, &["after"])?;
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "invalid `Last-Event-ID`: expected a seq this feed sent",
                    )
                    .with("field", json!("Last-Event-ID"))
                })
        })
        .transpose()?;
    let after = p.parse::<u64>("after")?.unwrap_or(0);
    let (field, after) = match resume {
        Some(seq) => ("Last-Event-ID", seq),
        None => ("after", after),
    };
    // Well-formed but ahead of this database (a feed of another one, or
    // of a backup restored since): the state conflicts, not the syntax.
    let head = db.db.head().seq;
    if after > head {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("seq {after} is past the head ({head})"),
        )
        .with("field", json!(field)));
    }
    let Some(permit) = db.feeds.admit(conn.peer) else {
        return Err(ApiError::busy(
            format!(
                "too many live feeds are open ({} in all, {} per client: `annals serve \
                 --max-feeds`, `--max-feeds-per-client`); try again later",
                db.feeds.max, db.feeds.per_client
            ),
            10,
        ));
    };
    conn.become_feed();
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
    tokio::spawn(async move {
        let _permit = permit;
        feed(db, after, tx).await;
    });
    let mut resp = Sse::new(Channel(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    // The connection left the slots for good: it ends with the feed.
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(resp)
}

type Sender = mpsc::Sender<Result<SseEvent, Infallible>>;

/// Sends entries after `after` until the client goes, stops reading for
/// `SEND_TIMEOUT`, or the server stops.
async fn feed(db: Db, mut last: u64, tx: Sender) {
    let mut head = db.head.subscribe();
    loop {
        let upto = tokio::select! {
            _ = tx.closed() => return,
            h = head.wait_for(|&h| h > last) => match h {
                Ok(h) => *h,
                Err(_) => return,
            },
        };
        let reader = db.clone();
        let from = last;
        let batch = tokio::task::spawn_blocking(move || {
            reader
                .db
                .entries(from)?
                .take_while(|e| e.as_ref().map_or(true, |e| e.seq <= upto))
                .take(BATCH)
                .collect::<Result<Vec<_>, annals::Error>>()
        })
        .await;
        let entries = match batch {
            Ok(Ok(entries)) => entries,
            Ok(Err(e)) => return send_error(&tx, e.to_string()).await,
            Err(e) => return send_error(&tx, format!("the feed's read failed: {e}")).await,
        };
        if entries.is_empty() {
            // The watch ran ahead of what the log shows: not expected,
            // but a feed must not spin on it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        for entry in entries {
            last = entry.seq;
            let ev = SseEvent::default()
                .id(entry.seq.to_string())
                .event(entry.body.action())
                .data(entry.to_json().to_string());
            if !matches!(
                tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok(ev))).await,
                Ok(Ok(()))
            ) {
                return;
            }
        }
    }
}

async fn send_error(tx: &Sender, message: String) {
    let ev = SseEvent::default().event("error").data(message);
    let _ = tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok(ev))).await;
}
