//! The routes of `annals serve`: a JSON API that mirrors the library
//! (docs/http.md), the live feed as Server-Sent Events, and the page.
//!
//! One file per resource; `http` holds what they share.

mod branches;
mod events;
mod http;
mod limits;
mod subscribe;
mod views;
mod write;

pub(crate) use limits::MAX_HEADERS;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use branches::{branches, create_branch, drop_branch, merge};
use events::{events_in_area, get_event, head, history, list_events};
use http::{ApiError, Db};
use subscribe::subscribe;
use views::{by_actor, by_country, by_date, by_place, by_source, diff, verify};
use write::{append, correct, retract};

/// The timeline page and its OpenAPI description, built into the binary.
const PAGE_HTML: &str = include_str!("../page.html");
/// Natural Earth's country shapes for the page's map (`../map/README.md`).
const WORLD_MAP: &str = include_str!("../map/countries-110m.json");
const OPENAPI: &str = include_str!("../openapi.json");

/// Every route, and the JSON answers for unknown paths and methods.
pub(crate) fn router(db: Db) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/openapi.json", get(openapi))
        .route("/map/countries-110m.json", get(world_map))
        .route("/head", get(head))
        .route("/events", get(list_events).post(append))
        .route("/events/area", post(events_in_area))
        .route("/events/{id}", get(get_event))
        .route("/events/{id}/history", get(history))
        .route("/events/{id}/correct", post(correct))
        .route("/events/{id}/retract", post(retract))
        .route("/views/by-country", get(by_country))
        .route("/views/by-actor", get(by_actor))
        .route("/views/by-date", get(by_date))
        .route("/views/by-place", get(by_place))
        .route("/views/by-source", get(by_source))
        .route("/branches", get(branches).post(create_branch))
        .route("/branches/{name}", axum::routing::delete(drop_branch))
        .route("/branches/{name}/diff", get(diff))
        .route("/branches/{name}/merge", post(merge))
        .route("/verify", get(verify))
        .route("/subscribe", get(subscribe))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            db.clone(),
            limits::limits,
        ))
        .with_state(db)
}

async fn page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        PAGE_HTML,
    )
        .into_response()
}

async fn world_map() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        WORLD_MAP,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The operations `router` serves, read from its source: (path,
    /// method) for each `.route(PATH, get(..).post(..))`.
    fn routed() -> std::collections::BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
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
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
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
}
