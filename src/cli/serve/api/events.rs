//! Reading events: `GET /head`, `GET /events` (paged, or streamed as
//! JSON Lines), `GET /events/{id}` and its history.

use std::convert::Infallible;

use annals::{AsOf, At, Error};

use crate::cli::serve::shared::SEND_TIMEOUT;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::http::{
    blocking, body_bytes, known, ok, parse_id, ApiError, Channel, Db, Pairs, Params, PathText,
    Reply, AT_PARAMS, QUERY_PARAMS,
};

/// Events per page of `GET /events` unless `limit` says otherwise, and the
/// most a page may hold.
pub(super) const PAGE: usize = 100;
pub(super) const MAX_PAGE: usize = 10_000;

pub(super) async fn head(State(db): State<Db>, Pairs(p): Pairs) -> Reply {
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
/// reads the same state, how many events came before, and a fingerprint
/// of the filters and branch it was made for, so that a cursor used with
/// other filters is refused rather than skipping events silently.
pub(super) fn cursor_of(s: &str) -> Result<(u64, usize, u64), ApiError> {
    let bad = || ApiError::bad_param("cursor", format!("`{s}` is not a cursor this server gave"));
    let mut parts = s.split('.');
    let (Some(seq), Some(skip), Some(print), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok((
        seq.parse().map_err(|_| bad())?,
        skip.parse().map_err(|_| bad())?,
        u64::from_str_radix(print, 16).map_err(|_| bad())?,
    ))
}

/// The filters and branch of a page request, as a number: FNV-1a over
/// the sorted name=value pairs (order and repetition of the same filters
/// do not change which events match).
pub(super) fn fingerprint(p: &Params, body: &[u8]) -> u64 {
    let mut pairs: Vec<(&str, String)> = QUERY_PARAMS
        .iter()
        .chain(["branch"].iter())
        .flat_map(|&k| p.all(k).into_iter().map(move |v| (k, v)))
        .collect();
    pairs.sort();
    pairs.dedup();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in &pairs {
        for b in k.bytes().chain([0]).chain(v.bytes()).chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    for b in body {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(super) async fn list_events(
    State(db): State<Db>,
    headers: HeaderMap,
    Pairs(p): Pairs,
) -> Reply {
    let p = Params::new(
        p,
        &known(&[&QUERY_PARAMS, &AT_PARAMS, &["limit", "cursor"]]),
    )?;
    let query = p.query()?;
    events_page(db, &headers, &p, query, &[]).await
}

/// `POST /events/area`: `GET /events` for the events placed in the area
/// the body gives as GeoJSON (a Polygon, MultiPolygon, Feature or
/// FeatureCollection), with the same filters, pages and streams.
pub(super) async fn events_in_area(
    State(db): State<Db>,
    headers: HeaderMap,
    Pairs(p): Pairs,
    req: Request,
) -> Reply {
    let p = Params::new(
        p,
        &known(&[&QUERY_PARAMS, &AT_PARAMS, &["limit", "cursor"]]),
    )?;
    let body = body_bytes(&db, req).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_param("body", "the GeoJSON is not UTF-8"))?;
    let query = p.query_in(text.to_string())?;
    events_page(db, &headers, &p, query, &body).await
}

/// A page (or a stream) of the events `query` matches; `body` is what
/// besides the parameters chose them, for the cursor's fingerprint.
async fn events_page(
    db: Db,
    headers: &HeaderMap,
    p: &Params,
    query: annals::Query,
    body: &[u8],
) -> Reply {
    let mut at = p.at()?;
    let limit: Option<usize> = p.parse("limit")?;
    if wants_ndjson(headers) {
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
    let print = fingerprint(p, body);
    let skip = match p.one("cursor")? {
        Some(c) => {
            let (seq, skip, given) = cursor_of(c)?;
            if given != print {
                return Err(ApiError::bad_param(
                    "cursor",
                    "the cursor was given for other filters or another branch: \
                     repeat the first page's filters, or start without a cursor",
                ));
            }
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
    let next = more.then(|| format!("{seq}.{}.{print:016x}", skip + size));
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

/// Whether `Accept` prefers JSON Lines to JSON: by q-value (RFC 9110,
/// 12.5.1), JSON Lines only when named; a tie goes to JSON Lines, which
/// the client named on purpose.
pub(super) fn wants_ndjson(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (mut ndjson, mut json) = (0.0f32, 0.0f32);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match range.as_str() {
            "application/x-ndjson" => ndjson = ndjson.max(q),
            "application/json" | "application/*" | "*/*" => json = json.max(q),
            _ => {}
        }
    }
    ndjson > 0.0 && ndjson >= json
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
    let Ok(permit) = db.exports.clone().try_acquire_owned() else {
        return Err(ApiError::busy(
            "every export slot is taken (`annals serve --max-exports`); try again shortly",
            5,
        ));
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // A client that stops reading is dropped after SEND_TIMEOUT, so
        // that it holds this thread and its export slot no longer.
        let send = |line: String| {
            let sent = handle.block_on(tokio::time::timeout(
                SEND_TIMEOUT,
                tx.send(Ok(Bytes::from(line))),
            ));
            match sent {
                Ok(Ok(())) => Ok(()),
                _ => Err(Error::Io {
                    path: "response".into(),
                    source: std::io::ErrorKind::BrokenPipe.into(),
                }),
            }
        };
        let run = || -> Result<(), Error> {
            let reader = db.db.reader(&at)?;
            reader.for_each_record(&query, &mut |r| {
                let mut line = r.to_json().to_string();
                line.push('\n');
                send(line)
            })
        };
        if let Err(e) = run() {
            let _ = send(format!("{}\n", json!({"error": e.to_string()})));
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
    PathText(id): PathText,
    Pairs(p): Pairs,
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
    PathText(id): PathText,
    Pairs(p): Pairs,
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
        assert_eq!(cursor_of("14.300.00ff").ok(), Some((14, 300, 255)));
        for bad in ["", "14", "x.1", "1.x", "1.2", "1.2.x", "1.2.3.4"] {
            assert!(cursor_of(bad).is_err(), "{bad}");
        }
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        let pairs = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::new(
            pairs,
            &known(&[&QUERY_PARAMS, &AT_PARAMS, &["limit", "cursor"]]),
        )
        .unwrap()
    }

    #[test]
    fn a_fingerprint_is_the_filters_not_their_order_or_the_page() {
        let a = fingerprint(
            &params(&[("country", "PL"), ("country", "RO"), ("limit", "5")]),
            b"",
        );
        let b = fingerprint(
            &params(&[("country", "RO"), ("country", "PL"), ("cursor", "x")]),
            b"",
        );
        assert_eq!(a, b);
        let area = br#"{"type":"Polygon","coordinates":[]}"#;
        assert_ne!(
            a,
            fingerprint(&params(&[("country", "PL"), ("country", "RO")]), area)
        );
        for other in [
            vec![("country", "PL")],
            vec![("country", "PL"), ("country", "RO"), ("branch", "b")],
            vec![("country", "PLRO")],
            vec![("actor", "PL"), ("country", "RO")],
        ] {
            assert_ne!(a, fingerprint(&params(&other), b""), "{other:?}");
        }
    }

    #[test]
    fn accept_is_read_with_its_q_values() {
        let wants = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, accept.parse().unwrap());
            wants_ndjson(&h)
        };
        assert!(wants("application/x-ndjson"));
        assert!(wants("application/x-ndjson, application/json"));
        assert!(wants("application/json;q=0.5, application/x-ndjson"));
        assert!(wants("application/x-ndjson;q=0.9, */*;q=0.1"));
        assert!(!wants("application/x-ndjson;q=0.5, application/json"));
        assert!(!wants("application/x-ndjson;q=0"));
        assert!(!wants("*/*"));
        assert!(!wants("text/html"));
        assert!(!wants(""));
    }
}
