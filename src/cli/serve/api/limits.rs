//! What every request passes before its route: the `Host` check (against
//! DNS rebinding), `Origin` on writes, request-line and header sizes as
//! JSON errors, and the security headers every answer carries.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::http::{ApiError, Db};

/// The longest request target (path and query) answered; longer ones get
/// a JSON 414. (hyper's own limit, far above, answers with a bare 414.)
pub(crate) const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header fields answered; more get a JSON 431.
pub(crate) const MAX_HEADERS: usize = 100;
/// The most header bytes answered; more get a JSON 431.
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The page loads nothing from elsewhere and runs only its own inline
/// script and style; nothing may frame it.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(super) async fn limits(State(db): State<Db>, req: Request, next: Next) -> Response {
    let mut resp = match check(&db, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    resp
}

fn check(db: &Db, req: &Request) -> Result<(), ApiError> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "too_large",
            format!("the request target is {target} bytes; the limit is {MAX_URI_BYTES}"),
        ));
    }
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too_large",
            format!(
                "{} header fields, {bytes} bytes; the limits are {MAX_HEADERS} and \
                 {MAX_HEADER_BYTES}",
                headers.len()
            ),
        ));
    }
    let host = headers.get(header::HOST).map(|v| v.to_str().unwrap_or(""));
    if let Some(host) = host {
        if !db.hosts.allows(host) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "`Host: {host}` does not name this server (IP addresses and localhost \
                     do; `annals serve --allow-host NAME` adds a name)"
                ),
            )
            .with("field", json!("Host")));
        }
    }
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    if let (false, Some(origin)) = (reads.contains(req.method()), headers.get(header::ORIGIN)) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'));
        let same = authority.is_some_and(|a| Some(a) == host);
        let listed = authority.is_some_and(|a| db.hosts.allows(a) && !is_literal_or_local(a));
        if !same && !listed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("a write from `Origin: {origin}`, a page not served here, is refused"),
            )
            .with("field", json!("Origin")));
        }
    }
    Ok(())
}

/// Whether an authority is an IP literal or localhost: allowed as a
/// `Host`, but as an `Origin` only when it is this very server.
fn is_literal_or_local(authority: &str) -> bool {
    crate::cli::serve::shared::Hosts(Vec::new()).allows(authority)
}
