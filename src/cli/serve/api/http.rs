//! The plumbing every route shares: the error response and its status
//! per error kind, the blocking pool, query parameters checked against
//! what a route knows, the token, bodies, streamed responses.

use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use annals::{Annals, AsOf, At, Error, Granularity};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::cli::serve::shared::{same_token, Shared, CLIENT_TIMEOUT};

pub(super) type Db = Arc<Shared>;

/// An error response: the status, and `{"error": message, "kind": ...}`
/// with the library's message and what else a client can act on.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) body: Value,
    /// Headers the status calls for (`WWW-Authenticate`, `Retry-After`).
    headers: Vec<(header::HeaderName, String)>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({"error": message.into(), "kind": kind}),
            headers: Vec::new(),
        }
    }

    pub(super) fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> ApiError {
        self.headers.push((name, value.into()));
        self
    }

    /// A 503 for a budget that is spent: try again in `seconds`.
    pub(super) fn busy(message: impl Into<String>, seconds: u64) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
            .header(header::RETRY_AFTER, seconds.to_string())
    }

    pub(super) fn with(mut self, key: &str, value: Value) -> ApiError {
        if let Value::Object(m) = &mut self.body {
            m.insert(key.into(), value);
        }
        self
    }

    pub(super) fn bad_param(name: &str, reason: impl std::fmt::Display) -> ApiError {
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
        let mut resp = (self.status, Json(self.body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = header::HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}

/// A path segment, as a String, whose rejection (invalid UTF-8 after
/// percent-decoding, say) is a JSON error like every other.
pub(super) struct PathText(pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(s)) => Ok(PathText(s)),
            Err(e) => Err(invalid("path", "-", e.body_text()).into()),
        }
    }
}

/// The query string as pairs, whose rejection is a JSON error.
pub(super) struct Pairs(pub(super) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Pairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(p)) => Ok(Pairs(p)),
            Err(e) => Err(invalid("query", "-", e.body_text()).into()),
        }
    }
}

pub(super) type Reply = Result<Response, ApiError>;

pub(super) fn ok(status: StatusCode, v: Value) -> Reply {
    Ok((status, Json(v)).into_response())
}

/// Runs a library call on the blocking pool: annals' calls wait on disk.
pub(super) async fn blocking<T: Send + 'static>(
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

pub(super) fn unserialisable(e: serde_json::Error) -> ApiError {
    Error::Internal(format!("serialising the answer: {e}")).into()
}

/// A 200 with rows the library gives as `Serialize` values.
pub(super) fn serialised<T: serde::Serialize>(status: StatusCode, v: T) -> Reply {
    ok(status, serde_json::to_value(v).map_err(unserialisable)?)
}

/// A request's query string, checked against the names a route knows, so
/// that a misspelt filter is an error rather than silently ignored.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn new(pairs: Vec<(String, String)>, known: &[&str]) -> Result<Params, ApiError> {
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Err(ApiError::bad_param(
                k,
                format!("unknown parameter (this route takes: {})", known.join(", ")),
            ));
        }
        Ok(Params(pairs))
    }

    pub(super) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub(super) fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut it = self.0.iter().filter(|(k, _)| k == name);
        let first = it.next().map(|(_, v)| v.as_str());
        if it.next().is_some() {
            return Err(ApiError::bad_param(name, "given more than once"));
        }
        Ok(first)
    }

    pub(super) fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError>
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

    pub(super) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.one(name)? {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(ApiError::bad_param(
                name,
                format!("`{v}`: expected true or false"),
            )),
        }
    }

    pub(super) fn at(&self) -> Result<At, ApiError> {
        Ok(At {
            branch: self.one("branch")?.map(str::to_string),
            as_of: self
                .one("as_of")?
                .map(str::parse::<AsOf>)
                .transpose()
                .map_err(|e| ApiError::from(e.at("query")))?,
        })
    }

    pub(super) fn query(&self) -> Result<annals::Query, ApiError> {
        Ok(self.filters()?.to_query().map_err(|e| e.at("query"))?)
    }

    /// A list of plain decimal numbers (`-12.5`: no exponent, sign or
    /// leading zero), the form the spec's patterns for `bbox` and `near`
    /// state, so that the server takes exactly what the spec promises.
    fn coords(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(v) = self.one(name)? else {
            return Ok(None);
        };
        let plain = |n: &str| {
            let n = n.strip_prefix('-').unwrap_or(n);
            let (int, frac) = n.split_once('.').unwrap_or((n, "0"));
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            digits(int) && int.len() <= 3 && (int == "0" || !int.starts_with('0')) && digits(frac)
        };
        if !v.split(',').all(plain) {
            return Err(ApiError::bad_param(
                name,
                format!("`{v}`: expected comma-separated decimal degrees like 36.23,-12.5"),
            ));
        }
        Ok(Some(v.to_string()))
    }

    fn filters(&self) -> Result<annals::Filters, ApiError> {
        Ok(annals::Filters {
            countries: self.all("country"),
            actors: self.all("actor"),
            kinds: self.all("kind"),
            from: self.one("from")?.map(str::to_string),
            to: self.one("to")?.map(str::to_string),
            within: self.flag("within")?,
            bbox: self.coords("bbox")?,
            near: self.coords("near")?,
            radius_km: self.one("radius_km")?.map(str::to_string),
            area: None,
            place: self.one("place")?.map(str::to_string),
            limit: None,
        })
    }

    /// The query's filters with an area given as GeoJSON text (a POST's
    /// body).
    pub(super) fn query_in(&self, area: String) -> Result<annals::Query, ApiError> {
        if self.one("bbox")?.is_some() || self.one("near")?.is_some() {
            return Err(ApiError::bad_param(
                "bbox",
                "the body already gives the area: leave out bbox and near",
            ));
        }
        let mut filters = self.filters()?;
        filters.area = Some(area);
        Ok(filters.to_query().map_err(|e| e.at("body"))?)
    }

    pub(super) fn granularity(&self) -> Result<Granularity, ApiError> {
        Ok(self.one("granularity")?.unwrap_or("month").parse()?)
    }
}

pub(super) const AT_PARAMS: [&str; 2] = ["branch", "as_of"];

pub(super) const QUERY_PARAMS: [&str; 10] = [
    "country",
    "actor",
    "kind",
    "from",
    "to",
    "within",
    "bbox",
    "near",
    "radius_km",
    "place",
];

pub(super) fn known<'a>(groups: &[&[&'a str]]) -> Vec<&'a str> {
    groups.iter().flat_map(|g| g.iter().copied()).collect()
}

pub(super) fn invalid(at: &str, field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        at: at.into(),
        field: field.into(),
        reason: reason.into(),
    }
}

pub(super) fn parse_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s)
        .map_err(|e| invalid("path", "id", format!("`{s}` is not a UUID: {e}")).into())
}

/// Writes need the bearer token; a read-only server refuses them all.
pub(super) fn authorize(db: &Db, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &db.token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this server is read-only (started with --read-only)",
        ));
    };
    // The scheme is case-insensitive (RFC 9110, 11.1).
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token);
    match given {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this needs an `Authorization: Bearer TOKEN` header",
        )
        .header(header::WWW_AUTHENTICATE, "Bearer realm=\"annals\"")),
        Some(t) if same_token(t.trim().as_bytes(), expected) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the bearer token is not this server's",
        )),
    }
}

/// Reads a request body within the size limit and the client time-out.
/// A declared length over the limit is refused before a byte is read (so
/// a client that asked `Expect: 100-continue` is not told to send it).
pub(super) async fn body_bytes(db: &Db, req: Request) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > db.max_body_bytes as u64) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "request body too large: {n} bytes; the limit is {} bytes",
                db.max_body_bytes
            ),
        ));
    }
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

pub(super) fn json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::Invalid {
            at: format!("request body line {}", e.line()),
            field: "-".into(),
            reason: format!("malformed JSON at column {}: {e}", e.column()),
        }
        .into()
    })
}

/// A tokio channel as a stream, for streamed bodies.
pub(super) struct Channel<T>(pub(super) mpsc::Receiver<T>);

impl<T> Stream for Channel<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
