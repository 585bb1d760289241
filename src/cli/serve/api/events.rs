//! Reading events: `GET /head`, `GET /events` (paged, or streamed as
//! JSON Lines), `GET /events/{id}` and its history.

use std::convert::Infallible;

use annals::{AsOf, At, Error};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::http::{
    blocking, known, ok, parse_id, ApiError, Channel, Db, Params, Reply, AT_PARAMS, QUERY_PARAMS,
};

/// Events per page of `GET /events` unless `limit` says otherwise, and the
/// most a page may hold.
pub(super) const PAGE: usize = 100;
pub(super) const MAX_PAGE: usize = 10_000;

pub(super) async fn head(State(db): State<Db>, Query(p): Query<Vec<(String, String)>>) -> Reply {
    let p = Params::new(p, &AT_PARAMS)?;
    let at = p.at()?;
    let h = blocking(&db, move |db| Ok(db.reader(&at)?.head()?)).await?;
    ok(
        StatusCode::OK,
        json!({"seq": h.seq, "hash": h.hash_hex(), "recorded_at": micros(h.recorded_at)}),
    )
}

pub(super) fn micros(m: annals::Micros) -> Value {
    if m == 0 {
        Value::Null
    } else {
        json!(annals::format_micros(m))
    }
}

/// A page cursor: the seq the first page read as of, so that every page
/// reads the same state, and how many events came before.
pub(super) fn cursor_of(s: &str) -> Result<(u64, usize), ApiError> {
    let bad = || ApiError::bad_param("cursor", format!("`{s}` is not a cursor this server gave"));
    let (seq, skip) = s.split_once('.').ok_or_else(bad)?;
    Ok((
        seq.parse().map_err(|_| bad())?,
        skip.parse().map_err(|_| bad())?,
    ))
}

pub(super) async fn list_events(
    State(db): State<Db>,
    headers: HeaderMap,
    Query(p): Query<Vec<(String, String)>>,
) -> Reply {
    let p = Params::new(
        p,
        &known(&[&QUERY_PARAMS, &AT_PARAMS, &["limit", "cursor"]]),
    )?;
    let query = p.query()?;
    let mut at = p.at()?;
    let limit: Option<usize> = p.parse("limit")?;
    if wants_ndjson(&headers) {
        if p.one("cursor")?.is_some() {
            return Err(ApiError::bad_param("cursor", "a stream has no pages"));
        }
        let query = match limit {
            Some(n) => query.limit(n),
            None => query,
        };
        return stream_events(db, at, query).await;
    }
    let size = limit.unwrap_or(PAGE);
    if size == 0 || size > MAX_PAGE {
        return Err(ApiError::bad_param(
            "limit",
            format!("a page holds 1 to {MAX_PAGE} events"),
        ));
    }
    let skip = match p.one("cursor")? {
        Some(c) => {
            let (seq, skip) = cursor_of(c)?;
            if at.as_of.is_some() {
                return Err(ApiError::bad_param(
                    "as_of",
                    "the cursor already fixes the as-of seq",
                ));
            }
            at.as_of = Some(AsOf::Seq(seq));
            skip
        }
        None => 0,
    };
    let (seq, records) = blocking(&db, move |db| {
        let reader = db.reader(&at)?;
        let records = reader.query(&query.limit(skip.saturating_add(size + 1)))?;
        Ok((reader.seq(), records))
    })
    .await?;
    let more = records.len() > skip + size;
    let events: Vec<Value> = records
        .iter()
        .skip(skip)
        .take(size)
        .map(record_with_span)
        .collect();
    let next = more.then(|| format!("{seq}.{}", skip + size));
    ok(
        StatusCode::OK,
        json!({"seq": seq, "events": events, "next": next}),
    )
}

/// A record as `GET /events` pages hold it: the interchange form plus
/// `span`, the occurrence interval worked out (milliseconds since the
/// epoch, end exclusive), so that a client draws it without parsing EDTF.
pub(super) fn record_with_span(r: &annals::Record) -> Value {
    let o = &r.event.occurred;
    let mut v = r.to_json();
    if let Value::Object(m) = &mut v {
        let span = json!({
            "start_ms": o.start().div_euclid(1000),
            "end_ms": o.end().div_euclid(1000),
            "precision": o.precision().name(),
            "approximate": o.from.mark.approximate || o.to.mark.approximate,
            "uncertain": o.from.mark.uncertain || o.to.mark.uncertain,
        });
        m.insert("span".into(), span);
    }
    v
}

pub(super) fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"))
}

/// Streams every match as JSON Lines, read a slice at a time on a blocking
/// thread: memory holds what the client has not taken yet, at most a
/// channel's worth. A failure mid-stream ends it with an `{"error": ...}`
/// line, since the status has gone out.
pub(super) async fn stream_events(db: Db, at: At, query: annals::Query) -> Reply {
    let (check_at, check_q) = (at.clone(), query.clone());
    blocking(&db, move |db| {
        check_q.validate()?;
        db.reader(&check_at)?;
        Ok(())
    })
    .await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::task::spawn_blocking(move || {
        let run = || -> Result<(), Error> {
            let reader = db.db.reader(&at)?;
            reader.for_each_record(&query, &mut |r| {
                let mut line = r.to_json().to_string();
                line.push('\n');
                tx.blocking_send(Ok(Bytes::from(line)))
                    .map_err(|_| Error::Io {
                        path: "response".into(),
                        source: std::io::ErrorKind::BrokenPipe.into(),
                    })
            })
        };
        if let Err(e) = run() {
            let line = format!("{}\n", json!({"error": e.to_string()}));
            let _ = tx.blocking_send(Ok(Bytes::from(line)));
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(Channel(rx)),
    )
        .into_response())
}

pub(super) async fn get_event(
    State(db): State<Db>,
    Path(id): Path<String>,
    Query(p): Query<Vec<(String, String)>>,
) -> Reply {
    let p = Params::new(p, &AT_PARAMS)?;
    let (id, at) = (parse_id(&id)?, p.at()?);
    let record = blocking(&db, move |db| match db.reader(&at)?.get(id)? {
        Some(r) => Ok(r),
        None => Err(db.not_found(id)?.into()),
    })
    .await?;
    ok(StatusCode::OK, record.to_json())
}

pub(super) async fn history(
    State(db): State<Db>,
    Path(id): Path<String>,
    Query(p): Query<Vec<(String, String)>>,
) -> Reply {
    let p = Params::new(p, &AT_PARAMS)?;
    let (id, at) = (parse_id(&id)?, p.at()?);
    let versions = blocking(&db, move |db| {
        let v = db.reader(&at)?.history(id)?;
        if v.is_empty() {
            return Err(Error::no_event(id).into());
        }
        Ok(v)
    })
    .await?;
    let rows: Vec<Value> = versions.iter().map(annals::Version::to_json).collect();
    ok(StatusCode::OK, json!(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(cursor_of("14.300").ok(), Some((14, 300)));
        for bad in ["", "14", "x.1", "1.x", "1.2.3"] {
            assert!(cursor_of(bad).is_err(), "{bad}");
        }
    }
}
