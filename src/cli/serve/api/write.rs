//! Writes: `POST /events`, `/events/{id}/correct` and `/retract`; each
//! needs the token and is one atomic batch.

use annals::{Event, Op};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::http::{
    authorize, blocking, body_bytes, invalid, json_body, ok, parse_id, ApiError, Db, Pairs, Params,
    PathText, Reply,
};

/// Events from a body: a JSON array of events, one event object, or
/// JSON Lines (`Content-Type: application/x-ndjson`).
pub(super) fn events_of(headers: &HeaderMap, bytes: &[u8]) -> Result<Vec<Event>, ApiError> {
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"));
    if ndjson {
        let mut input = bytes;
        return Ok(annals::read_events(&mut input, "request body")?);
    }
    let values = match json_body(bytes)? {
        Value::Array(items) => items,
        one @ Value::Object(_) => vec![one],
        _ => {
            return Err(invalid(
                "request body",
                "-",
                "expected an event object or an array of them",
            )
            .into())
        }
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            annals::event_from_value(v)
                .map_err(|e| e.at(format!("request body event {}", i + 1)).into())
        })
        .collect()
}

pub(super) fn written_json(written: &[annals::Written]) -> Value {
    let rows: Vec<Value> = written.iter().map(annals::Written::to_json).collect();
    json!({"written": rows})
}

/// A write's checks and parameters: the token, then `branch` and
/// `expect_seq`.
pub(super) fn write_params(
    db: &Db,
    headers: &HeaderMap,
    p: Vec<(String, String)>,
) -> Result<(Option<String>, Option<u64>), ApiError> {
    authorize(db, headers)?;
    let p = Params::new(p, &["branch", "expect_seq"])?;
    Ok((p.one("branch")?.map(str::to_string), p.parse("expect_seq")?))
}

pub(super) async fn write_ops(
    db: &Db,
    branch: Option<String>,
    ops: Vec<Op>,
    expect_seq: Option<u64>,
) -> Reply {
    let written = blocking(db, move |db| {
        Ok(db.write_on(branch.as_deref(), ops, expect_seq)?)
    })
    .await?;
    ok(StatusCode::CREATED, written_json(&written))
}

pub(super) async fn append(
    State(db): State<Db>,
    headers: HeaderMap,
    Pairs(p): Pairs,
    req: Request,
) -> Reply {
    let (branch, expect_seq) = write_params(&db, &headers, p)?;
    let events = events_of(&headers, &body_bytes(&db, req).await?)?;
    write_ops(
        &db,
        branch,
        events.into_iter().map(Op::Append).collect(),
        expect_seq,
    )
    .await
}

pub(super) async fn correct(
    State(db): State<Db>,
    headers: HeaderMap,
    PathText(id): PathText,
    Pairs(p): Pairs,
    req: Request,
) -> Reply {
    write_one(db, headers, &id, p, req, |id, body| {
        let event = annals::correction_event(body, id, "request body")?;
        Ok(Op::Correct(event))
    })
    .await
}

pub(super) async fn retract(
    State(db): State<Db>,
    headers: HeaderMap,
    PathText(id): PathText,
    Pairs(p): Pairs,
    req: Request,
) -> Reply {
    write_one(db, headers, &id, p, req, |id, body| {
        let Some(reason) = body.get("reason").and_then(Value::as_str) else {
            return Err(invalid(
                "request body",
                "reason",
                "required: why the event is retracted",
            )
            .into());
        };
        Ok(Op::Retract {
            id,
            reason: reason.to_string(),
        })
    })
    .await
}

/// A write of one operation on the event in the path, made from the
/// request's JSON body.
pub(super) async fn write_one(
    db: Db,
    headers: HeaderMap,
    id: &str,
    p: Vec<(String, String)>,
    req: Request,
    op: impl FnOnce(Uuid, Value) -> Result<Op, ApiError>,
) -> Reply {
    let (branch, expect_seq) = write_params(&db, &headers, p)?;
    let id = parse_id(id)?;
    let body = json_body(&body_bytes(&db, req).await?)?;
    write_ops(&db, branch, vec![op(id, body)?], expect_seq).await
}
