//! The routes of `annals serve`: a JSON API that mirrors the library
//! (docs/http.md), the live feed as Server-Sent Events, and the page.

use std::convert::Infallible;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use annals::{
    Against, Annals, AsOf, At, Error, Event, Granularity, MergeOptions, OnConflict, Op, ViewKind,
};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::shared::{same_token, Shared, CLIENT_TIMEOUT};

type Db = Arc<Shared>;

/// Events per page of `GET /events` unless `limit` says otherwise, and the
/// most a page may hold.
const PAGE: usize = 100;
const MAX_PAGE: usize = 10_000;

/// The timeline page and its OpenAPI description, built into the binary.
const PAGE_HTML: &str = include_str!("page.html");
const OPENAPI: &str = include_str!("openapi.json");

pub(crate) fn router(db: Db) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/openapi.json", get(openapi))
        .route("/head", get(head))
        .route("/events", get(list_events).post(append))
        .route("/events/{id}", get(get_event))
        .route("/events/{id}/history", get(history))
        .route("/events/{id}/correct", post(correct))
        .route("/events/{id}/retract", post(retract))
        .route("/views/{view}", get(view))
        .route("/branches", get(branches).post(create_branch))
        .route("/branches/{name}", axum::routing::delete(drop_branch))
        .route("/branches/{name}/diff", get(diff))
        .route("/branches/{name}/merge", post(merge))
        .route("/verify", get(verify))
        .route("/subscribe", get(subscribe))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .with_state(db)
}

// ---- errors ----

/// An error response: the status, and `{"error": message, "kind": ...}`
/// with the library's message and what else a client can act on.
pub(crate) struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({"error": message.into(), "kind": kind}),
        }
    }

    fn with(mut self, key: &str, value: Value) -> ApiError {
        if let Value::Object(m) = &mut self.body {
            m.insert(key.into(), value);
        }
        self
    }

    fn bad_param(name: &str, reason: impl std::fmt::Display) -> ApiError {
        invalid("query", name, reason.to_string()).into()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let message = e.to_string();
        match e {
            Error::Invalid { field, .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
                    .with("field", json!(field))
            }
            Error::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            Error::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            Error::SeqMismatch { expected, actual } => {
                ApiError::new(StatusCode::CONFLICT, "seq_mismatch", message)
                    .with("expected", json!(expected))
                    .with("actual", json!(actual))
            }
            Error::Corruption { seq, .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "corruption", message)
                    .with("seq", json!(seq))
            }
            Error::DerivedDamage { ref file, .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "derived_damage", message)
                    .with("file", json!(file.display().to_string()))
            }
            Error::Poisoned(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "poisoned", message)
            }
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

type Reply = Result<Response, ApiError>;

fn ok(status: StatusCode, v: Value) -> Reply {
    Ok((status, Json(v)).into_response())
}

/// Runs a library call on the blocking pool: annals' calls wait on disk.
async fn blocking<T: Send + 'static>(
    db: &Db,
    f: impl FnOnce(&Annals) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db.db))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the request's task failed: {e}"),
            )
        })?
}

// ---- parameters ----

/// A request's query string, checked against the names a route knows, so
/// that a misspelt filter is an error rather than silently ignored.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(pairs: Vec<(String, String)>, known: &[&str]) -> Result<Params, ApiError> {
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(ApiError::bad_param(
                k,
                format!("unknown parameter (this route takes: {})", known.join(", ")),
            ));
        }
        Ok(Params(pairs))
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut it = self.0.iter().filter(|(k, _)| k == name);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(ApiError::bad_param(name, "given more than once"));
        }
        Ok(first)
    }

    fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        self.one(name)?
            .map(|v| {
                v.parse()
                    .map_err(|e| ApiError::bad_param(name, format!("`{v}`: {e}")))
            })
            .transpose()
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.one(name)? {
            None | Some("false") | Some("0") => Ok(false),
            Some("") | Some("true") | Some("1") => Ok(true),
            Some(v) => Err(ApiError::bad_param(
                name,
                format!("`{v}`: expected true or false"),
            )),
        }
    }

    fn at(&self) -> Result<At, ApiError> {
        Ok(At {
            branch: self.one("branch")?.map(str::to_string),
            as_of: self
                .one("as_of")?
                .map(str::parse::<AsOf>)
                .transpose()
                .map_err(|e| ApiError::from(e.at("query")))?,
        })
    }

    fn query(&self) -> Result<annals::Query, ApiError> {
        let filters = annals::Filters {
            countries: self.all("country"),
            actors: self.all("actor"),
            kinds: self.all("kind"),
            from: self.one("from")?.map(str::to_string),
            to: self.one("to")?.map(str::to_string),
            within: self.flag("within")?,
            limit: None,
        };
        Ok(filters.to_query().map_err(|e| e.at("query"))?)
    }

    fn granularity(&self) -> Result<Granularity, ApiError> {
        Ok(self.one("granularity")?.unwrap_or("month").parse()?)
    }
}

const AT_PARAMS: [&str; 2] = ["branch", "as_of"];
const QUERY_PARAMS: [&str; 6] = ["country", "actor", "kind", "from", "to", "within"];

fn known<'a>(groups: &[&[&'a str]]) -> Vec<&'a str> {
    groups.iter().flat_map(|g| g.iter().copied()).collect()
}

fn invalid(at: &str, field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        at: at.into(),
        field: field.into(),
        reason: reason.into(),
    }
}

fn parse_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s)
        .map_err(|e| invalid("path", "id", format!("`{s}` is not a UUID: {e}")).into())
}

/// Writes need the bearer token; a read-only server refuses them all.
fn authorize(db: &Db, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &db.token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this server is read-only (started with --read-only)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "writes need an `Authorization: Bearer TOKEN` header",
        )),
        Some(t) if same_token(t.trim().as_bytes(), expected) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the bearer token is not this server's",
        )),
    }
}

/// Reads a request body within the size limit and the client time-out.
async fn body_bytes(db: &Db, req: Request) -> Result<Bytes, ApiError> {
    let read = axum::body::to_bytes(req.into_body(), db.max_body_bytes);
    match tokio::time::timeout(CLIENT_TIMEOUT, read).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the request body did not arrive in time",
        )),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "request body too large (the limit is {} bytes) or cut off: {e}",
                db.max_body_bytes
            ),
        )),
    }
}

fn json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::Invalid {
            at: format!("request body line {}", e.line()),
            field: "-".into(),
            reason: format!("malformed JSON at column {}: {e}", e.column()),
        }
        .into()
    })
}

// ---- reads ----

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        PAGE_HTML,
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {} {} (see /openapi.json)",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn wrong_method(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not a method of {} (see /openapi.json)",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn head(State(db): State<Db>, Query(p): Query<Vec<(String, String)>>) -> Reply {
    let p = Params::new(p, &AT_PARAMS)?;
    let at = p.at()?;
    let h = blocking(&db, move |db| Ok(db.reader(&at)?.head()?)).await?;
    ok(
        StatusCode::OK,
        json!({"seq": h.seq, "hash": h.hash_hex(), "recorded_at": micros(h.recorded_at)}),
    )
}

fn micros(m: annals::Micros) -> Value {
    if m == 0 {
        Value::Null
    } else {
        json!(annals::format_micros(m))
    }
}

/// A page cursor: the seq the first page read as of, so that every page
/// reads the same state, and how many events came before.
fn cursor_of(s: &str) -> Result<(u64, usize), ApiError> {
    let bad = || ApiError::bad_param("cursor", format!("`{s}` is not a cursor this server gave"));
    let (seq, skip) = s.split_once('.').ok_or_else(bad)?;
    Ok((
        seq.parse().map_err(|_| bad())?,
        skip.parse().map_err(|_| bad())?,
    ))
}

async fn list_events(
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
fn record_with_span(r: &annals::Record) -> Value {
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

fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"))
}

/// Streams every match as JSON Lines, read a slice at a time on a blocking
/// thread: memory holds what the client has not taken yet, at most a
/// channel's worth. A failure mid-stream ends it with an `{"error": ...}`
/// line, since the status has gone out.
async fn stream_events(db: Db, at: At, query: annals::Query) -> Reply {
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

/// A tokio channel as a stream, for streamed bodies.
struct Channel<T>(mpsc::Receiver<T>);

impl<T> Stream for Channel<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

async fn get_event(
    State(db): State<Db>,
    Path(id): Path<String>,
    Query(p): Query<Vec<(String, String)>>,
) -> Reply {
    let p = Params::new(p, &AT_PARAMS)?;
    let (id, at) = (parse_id(&id)?, p.at()?);
    let record = blocking(&db, move |db| match db.reader(&at)?.get(id)? {
        Some(r) => Ok(r),
        None => Err(match db.excision(id)? {
            Some(x) => Error::NotFound {
                at: format!("event {id}"),
                what: format!(
                    "the event was excised at {}: {}",
                    annals::format_micros(x.at),
                    x.reason
                ),
            },
            None => Error::no_event(id),
        }
        .into()),
    })
    .await?;
    ok(StatusCode::OK, record.to_json())
}

async fn history(
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

async fn view(
    State(db): State<Db>,
    Path(name): Path<String>,
    Query(p): Query<Vec<(String, String)>>,
) -> Reply {
    let rows = match name.as_str() {
        "by-country" | "by-actor" => {
            let p = Params::new(p, &AT_PARAMS)?;
            let at = p.at()?;
            blocking(&db, move |db| {
                let r = db.reader(&at)?;
                Ok(if name == "by-country" {
                    serde_json::to_value(&*r.by_country()?)
                } else {
                    serde_json::to_value(&*r.by_actor()?)
                })
            })
            .await?
        }
        "by-date" => {
            let p = Params::new(p, &known(&[&AT_PARAMS, &["granularity"]]))?;
            let (at, g) = (p.at()?, p.granularity()?);
            blocking(&db, move |db| {
                Ok(serde_json::to_value(&*db.reader(&at)?.by_date(g)?))
            })
            .await?
        }
        "by-source" => {
            let p = Params::new(p, &known(&[&AT_PARAMS, &QUERY_PARAMS, &["granularity"]]))?;
            let (at, q, g) = (p.at()?, p.query()?, p.granularity()?);
            blocking(&db, move |db| {
                Ok(serde_json::to_value(db.reader(&at)?.by_dataset(&q, g)?))
            })
            .await?
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no view `{other}` (by-country, by-actor, by-date, by-source)"),
            ))
        }
    };
    ok(StatusCode::OK, rows.map_err(unserialisable)?)
}

fn unserialisable(e: serde_json::Error) -> ApiError {
    Error::Internal(format!("serialising the answer: {e}")).into()
}

/// A 200 with rows the library gives as `Serialize` values.
fn serialised<T: serde::Serialize>(status: StatusCode, v: T) -> Reply {
    ok(status, serde_json::to_value(v).map_err(unserialisable)?)
}

async fn branches(State(db): State<Db>) -> Reply {
    let rows = blocking(&db, |db| Ok(db.branches())).await?;
    serialised(StatusCode::OK, rows)
}

async fn diff(
    State(db): State<Db>,
    Path(name): Path<String>,
    Query(p): Query<Vec<(String, String)>>,
) -> Reply {
    let p = Params::new(p, &["view", "granularity", "against", "events"])?;
    let against = match p.one("against")?.unwrap_or("base") {
        "base" => Against::Base,
        "head" => Against::Head,
        v => {
            return Err(ApiError::bad_param(
                "against",
                format!("`{v}`: expected base or head"),
            ))
        }
    };
    if p.flag("events")? {
        let rows = blocking(&db, move |db| Ok(db.diff_events(&name, against)?)).await?;
        let rows: Vec<Value> = rows.iter().map(annals::EventDiff::to_json).collect();
        return ok(StatusCode::OK, json!(rows));
    }
    let view = p.one("view")?.unwrap_or("by-country");
    let granularity = match ViewKind::is_by_date(view) {
        true => p.granularity()?,
        false => Granularity::Month,
    };
    let kind = ViewKind::parse(view, granularity).map_err(|e| e.at("query"))?;
    let rows = blocking(&db, move |db| Ok(db.diff(&name, kind, against)?)).await?;
    serialised(StatusCode::OK, rows)
}

async fn verify(State(db): State<Db>) -> Reply {
    let r = blocking(&db, |db| Ok(db.verify_from(1))).await?;
    match r {
        Ok(r) => ok(StatusCode::OK, r.to_json()),
        Err(e) if e.is_damage() => ok(StatusCode::SERVICE_UNAVAILABLE, e.damage_json()),
        Err(e) => Err(e.into()),
    }
}

// ---- writes ----

/// Events from a body: a JSON array of events, one event object, or
/// JSON Lines (`Content-Type: application/x-ndjson`).
fn events_of(headers: &HeaderMap, bytes: &[u8]) -> Result<Vec<Event>, ApiError> {
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

fn written_json(written: &[annals::Written]) -> Value {
    let rows: Vec<Value> = written
        .iter()
        .map(|w| json!({"seq": w.seq, "id": w.id.to_string()}))
        .collect();
    json!({"written": rows})
}

/// A write's checks and parameters: the token, then `branch` and
/// `expect_seq`.
fn write_params(
    db: &Db,
    headers: &HeaderMap,
    p: Vec<(String, String)>,
) -> Result<(Option<String>, Option<u64>), ApiError> {
    authorize(db, headers)?;
    let p = Params::new(p, &["branch", "expect_seq"])?;
    Ok((p.one("branch")?.map(str::to_string), p.parse("expect_seq")?))
}

async fn write_ops(
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

async fn append(
    State(db): State<Db>,
    headers: HeaderMap,
    Query(p): Query<Vec<(String, String)>>,
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

async fn correct(
    State(db): State<Db>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Vec<(String, String)>>,
    req: Request,
) -> Reply {
    write_one(db, headers, &id, p, req, |id, body| {
        let event = annals::correction_event(body, id, "request body")?;
        Ok(Op::Correct(event))
    })
    .await
}

async fn retract(
    State(db): State<Db>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Vec<(String, String)>>,
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
async fn write_one(
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

async fn create_branch(State(db): State<Db>, headers: HeaderMap, req: Request) -> Reply {
    authorize(&db, &headers)?;
    let body = json_body(&body_bytes(&db, req).await?)?;
    let field = |name: &str| -> Result<Option<String>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if name == "at" => Ok(Some(n.to_string())),
            Some(_) => Err(invalid("request body", name, "expected a string").into()),
        }
    };
    let Some(name) = field("name")? else {
        return Err(invalid("request body", "name", "required: the new branch's name").into());
    };
    let from = field("from")?;
    let at = field("at")?
        .map(|s| s.parse::<AsOf>())
        .transpose()
        .map_err(|e| ApiError::from(e.at("request body")))?;
    let info = blocking(&db, move |db| {
        Ok(db.create_branch(&name, from.as_deref(), at)?)
    })
    .await?;
    serialised(StatusCode::CREATED, info)
}

async fn drop_branch(State(db): State<Db>, headers: HeaderMap, Path(name): Path<String>) -> Reply {
    authorize(&db, &headers)?;
    let dropped = name.clone();
    blocking(&db, move |db| Ok(db.drop_branch(&name)?)).await?;
    ok(StatusCode::OK, json!({"dropped": dropped}))
}

async fn merge(
    State(db): State<Db>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(p): Query<Vec<(String, String)>>,
) -> Reply {
    let p = Params::new(p, &["into", "dry_run", "on_conflict"])?;
    let dry_run = p.flag("dry_run")?;
    if !dry_run {
        authorize(&db, &headers)?;
    }
    let on_conflict = match p.one("on_conflict")?.unwrap_or("fail") {
        "fail" => OnConflict::Fail,
        "branch" => OnConflict::Branch,
        "target" => OnConflict::Target,
        v => {
            return Err(ApiError::bad_param(
                "on_conflict",
                format!("`{v}`: expected fail, branch or target"),
            ))
        }
    };
    let opts = MergeOptions {
        into: p.one("into")?.map(str::to_string),
        dry_run,
        on_conflict,
    };
    let report = blocking(&db, move |db| match db.merge(&name, &opts) {
        Ok(r) => Ok(Ok(r)),
        // Say what conflicts, in the dry run's form, with the refusal.
        Err(e @ Error::Conflict { .. }) => {
            let plan = db.merge(
                &name,
                &MergeOptions {
                    dry_run: true,
                    ..opts
                },
            )?;
            Ok(Err((e, plan)))
        }
        Err(e) => Err(e.into()),
    })
    .await?;
    match report {
        Ok(r) => ok(StatusCode::OK, r.to_json()),
        Err((e, plan)) => Err(ApiError::from(e).with("plan", plan.to_json())),
    }
}

// ---- live feed ----

/// Server-Sent Events: main's entries after `after` (or the
/// `Last-Event-ID` a reconnecting client sends, which wins), then each one
/// as it commits. The SSE id is the seq, so a client that reconnects
/// resumes with no gap and no repeat.
async fn subscribe(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The operations `router` serves, read from its source: (path,
    /// method) for each `.route(PATH, get(..).post(..))`.
    fn routed() -> std::collections::BTreeSet<(String, String)> {
        let source = include_str!("api.rs");
        let body = source
            .split("pub(crate) fn router(")
            .nth(1)
            .and_then(|r| r.split(".fallback(").next())
            .unwrap_or_default();
        let mut ops = std::collections::BTreeSet::new();
        for route in body.split(".route(\"").skip(1) {
            let (path, rest) = route.split_once('"').unwrap_or_default();
            let call = rest.split(")\n").next().unwrap_or_default();
            for method in ["get", "post", "put", "delete", "patch"] {
                if call.contains(&format!("{method}(")) {
                    ops.insert((path.to_string(), method.to_string()));
                }
            }
        }
        ops
    }

    #[test]
    fn the_router_and_the_spec_list_the_same_operations() {
        let spec: Value = serde_json::from_str(OPENAPI).unwrap();
        let mut documented = std::collections::BTreeSet::new();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((path.clone(), method.clone()));
            }
        }
        let served = routed();
        assert!(served.len() >= 15, "the route reader found {served:?}");
        assert_eq!(served, documented, "router (left) vs openapi.json (right)");
    }

    #[test]
    fn each_library_error_has_its_status() {
        let cases = [
            (invalid("query", "from", "bad"), 400, "invalid"),
            (
                Error::NotFound {
                    at: String::new(),
                    what: "x".into(),
                },
                404,
                "not_found",
            ),
            (
                Error::Conflict {
                    at: String::new(),
                    reason: "x".into(),
                },
                409,
                "conflict",
            ),
            (
                Error::SeqMismatch {
                    expected: 1,
                    actual: 2,
                },
                409,
                "seq_mismatch",
            ),
            (
                Error::Corruption {
                    seq: 7,
                    reason: "bad checksum".into(),
                },
                503,
                "corruption",
            ),
            (Error::Poisoned("disk full".into()), 503, "poisoned"),
            (Error::Internal("bug".into()), 500, "internal"),
        ];
        for (e, status, kind) in cases {
            let message = e.to_string();
            let a = ApiError::from(e);
            assert_eq!(a.status.as_u16(), status, "{message}");
            assert_eq!(a.body["kind"], kind);
            assert_eq!(a.body["error"], message);
        }
        let a = ApiError::from(Error::Corruption {
            seq: 7,
            reason: "x".into(),
        });
        assert_eq!(a.body["seq"], 7);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(cursor_of("14.300").ok(), Some((14, 300)));
        for bad in ["", "14", "x.1", "1.x", "1.2.3"] {
            assert!(cursor_of(bad).is_err(), "{bad}");
        }
    }
}
