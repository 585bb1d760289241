//! `GET /subscribe`: the live feed as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::mpsc;

use super::http::{ApiError, Channel, Db, Params};

/// Server-Sent Events: main's entries after `after` (or the
/// `Last-Event-ID` a reconnecting client sends, which wins), then each one
/// as it commits. The SSE id is the seq, so a client that reconnects
/// resumes with no gap and no repeat.
pub(super) async fn subscribe(
    State(db): State<Db>,
    headers: HeaderMap,
    Query(p): Query<Vec<(String, String)>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
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
    let after = match resume {
        Some(seq) => seq,
        None => p.parse::<u64>("after")?.unwrap_or(0),
    };
    let head = db.db.head().seq;
    if after > head {
        return Err(ApiError::bad_param(
            "after",
            format!("seq {after} is past the head ({head})"),
        ));
    }
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(256);
    tokio::task::spawn_blocking(move || {
        let mut feed = match db.db.subscribe(after) {
            Ok(f) => f,
            Err(e) => {
                let _ =
                    tx.blocking_send(Ok(SseEvent::default().event("error").data(e.to_string())));
                return;
            }
        };
        // Wake now and then to notice a client that has gone.
        while !tx.is_closed() {
            match feed.next_timeout(Duration::from_secs(1)) {
                None => continue,
                Some(Ok(entry)) => {
                    let ev = SseEvent::default()
                        .id(entry.seq.to_string())
                        .event(entry.body.action())
                        .data(entry.to_json().to_string());
                    if tx.blocking_send(Ok(ev)).is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    let ev = SseEvent::default().event("error").data(e.to_string());
                    let _ = tx.blocking_send(Ok(ev));
                    return;
                }
            }
        }
    });
    Ok(Sse::new(Channel(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
