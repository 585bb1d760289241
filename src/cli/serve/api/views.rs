//! Views and checks: `GET /views/by-country` (and by-actor, by-date,
//! by-source), `GET /branches/{name}/diff`, `GET /verify`.

use std::time::{Duration, Instant};

use annals::{Against, ViewKind};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::http::{
    authorize, blocking, known, ok, serialised, unserialisable, ApiError, Db, Pairs, Params,
    PathText, Reply, AT_PARAMS, QUERY_PARAMS,
};
use crate::cli::serve::shared::Checked;

/// The most rows a page of a view holds.
const MAX_PAGE: usize = 10_000;

/// `after` and `limit`, which page the by-actor view and a country's
/// actors: checked, and refused where nothing is paged.
fn page(p: &Params, paged: bool) -> Result<(Option<String>, usize), ApiError> {
    let after = p.one("after")?.map(str::to_string);
    if after.as_deref() == Some("") {
        return Err(ApiError::bad_param("after", "is empty"));
    }
    let limit = p.parse::<usize>("limit")?;
    if !paged {
        for (name, given) in [("after", after.is_some()), ("limit", limit.is_some())] {
            if given {
                return Err(ApiError::bad_param(
                    name,
                    "pages the by-actor view or a country's actors (with actors=true)",
                ));
            }
        }
    }
    match limit {
        Some(n) if !(1..=MAX_PAGE).contains(&n) => Err(ApiError::bad_param(
            "limit",
            format!("`{n}`: expected 1 to {MAX_PAGE}"),
        )),
        _ => Ok((after, limit.unwrap_or(100))),
    }
}

pub(super) async fn by_country(State(db): State<Db>, Pairs(p): Pairs) -> Reply {
    let p = Params::new(
        p,
        &known(&[&AT_PARAMS, &["country", "actors", "after", "limit"]]),
    )?;
    let at = p.at()?;
    let country = p.one("country")?.map(str::to_string);
    if let Some(c) = country.as_deref().filter(|c| !annals::is_country_code(c)) {
        return Err(ApiError::bad_param(
            "country",
            format!("`{c}`: expected an ISO 3166-1 alpha-2 code"),
        ));
    }
    let actors = p.flag("actors")?;
    if actors && country.is_none() {
        return Err(ApiError::bad_param("actors", "needs a country"));
    }
    let (after, limit) = page(&p, actors)?;
    let rows = blocking(&db, move |db| {
        let reader = db.reader(&at)?;
        Ok(match country {
            Some(c) if actors => {
                serde_json::to_value(reader.country_actors(&c, after.as_deref(), limit)?)
            }
            Some(c) => serde_json::to_value(reader.country(&c)?.into_iter().collect::<Vec<_>>()),
            None => serde_json::to_value(&*reader.by_country()?),
        })
    })
    .await?;
    ok(StatusCode::OK, rows.map_err(unserialisable)?)
}

pub(super) async fn by_actor(State(db): State<Db>, Pairs(p): Pairs) -> Reply {
    let p = Params::new(p, &known(&[&AT_PARAMS, &["actor", "after", "limit"]]))?;
    let at = p.at()?;
    let actor = p.one("actor")?.map(str::to_string);
    if actor.as_deref().is_some_and(|a| a.trim().is_empty()) {
        return Err(ApiError::bad_param("actor", "is blank"));
    }
    let paged = p.one("after")?.is_some() || p.one("limit")?.is_some();
    let (after, limit) = page(&p, actor.is_none())?;
    let rows = blocking(&db, move |db| {
        let reader = db.reader(&at)?;
        Ok(match actor {
            Some(a) => serde_json::to_value(reader.actor(&a)?.into_iter().collect::<Vec<_>>()),
            None if paged => serde_json::to_value(reader.actors_page(after.as_deref(), limit)?),
            None => serde_json::to_value(&*reader.by_actor()?),
        })
    })
    .await?;
    ok(StatusCode::OK, rows.map_err(unserialisable)?)
}

pub(super) async fn by_date(State(db): State<Db>, Pairs(p): Pairs) -> Reply {
    let p = Params::new(p, &known(&[&AT_PARAMS, &["granularity"]]))?;
    let (at, g) = (p.at()?, p.granularity()?);
    let rows = blocking(&db, move |db| {
        Ok(serde_json::to_value(&*db.reader(&at)?.by_date(g)?))
    })
    .await?;
    ok(StatusCode::OK, rows.map_err(unserialisable)?)
}

pub(super) async fn by_place(State(db): State<Db>, Pairs(p): Pairs) -> Reply {
    let p = Params::new(p, &known(&[&AT_PARAMS, &["granularity", "level"]]))?;
    let at = p.at()?;
    let g = annals::place_granularity(p.one("granularity")?.unwrap_or("all"))?;
    let level = annals::PlaceLevel::parse(p.one("level")?.unwrap_or("cell"))?;
    let rows = blocking(&db, move |db| {
        Ok(serde_json::to_value(&*db.reader(&at)?.by_place(level, g)?))
    })
    .await?;
    ok(StatusCode::OK, rows.map_err(unserialisable)?)
}

pub(super) async fn by_source(State(db): State<Db>, Pairs(p): Pairs) -> Reply {
    let p = Params::new(p, &known(&[&AT_PARAMS, &QUERY_PARAMS, &["granularity"]]))?;
    let (at, q, g) = (p.at()?, p.query()?, p.granularity()?);
    let rows = blocking(&db, move |db| {
        Ok(serde_json::to_value(db.reader(&at)?.by_dataset(&q, g)?))
    })
    .await?;
    ok(StatusCode::OK, rows.map_err(unserialisable)?)
}

pub(super) async fn diff(State(db): State<Db>, PathText(name): PathText, Pairs(p): Pairs) -> Reply {
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
    let events = p.flag("events")?;
    let view = p.one("view")?.unwrap_or("by-country");
    // A granularity is checked wherever given; only by-date uses it.
    let granularity = p.granularity()?;
    // Checked even for a diff of events, which does not use it: a
    // misspelt view is an error wherever it is given.
    let kind = ViewKind::parse(view, granularity).map_err(|e| e.at("query"))?;
    if events {
        let rows = blocking(&db, move |db| Ok(db.diff_events(&name, against)?)).await?;
        let rows: Vec<Value> = rows.iter().map(annals::EventDiff::to_json).collect();
        return ok(StatusCode::OK, json!(rows));
    }
    let rows = blocking(&db, move |db| Ok(db.diff(&name, kind, against)?)).await?;
    serialised(StatusCode::OK, rows)
}

/// A verify holds the writer lock for its whole run, so: it needs the
/// token (a read-only server has no writes to stall), one runs at a time
/// (others wait for it and share its answer), an answer for the current
/// head is given again rather than recomputed, and a new run starts no
/// sooner than four times the last one's length after it ended, so that
/// writes have the lock at least four fifths of the time.
pub(super) async fn verify(State(db): State<Db>, headers: HeaderMap) -> Reply {
    if db.token.is_some() {
        authorize(&db, &headers)?;
    }
    let mut last = db.verify.lock().await;
    let head = db.db.head().seq;
    if let Some(c) = last.as_ref() {
        if c.head == head {
            return answer(c);
        }
        // A run too short to hold up a write is not rationed.
        let rest = match c.took < Duration::from_millis(20) {
            true => Duration::ZERO,
            false => c.took.saturating_mul(4),
        };
        let since = c.ended.elapsed();
        if since < rest {
            let wait = (rest - since).as_secs() + 1;
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                format!(
                    "a verify ran {} ms ago and took {} ms; the next may start in {wait} s",
                    since.as_millis(),
                    c.took.as_millis()
                ),
            )
            .header(header::RETRY_AFTER, wait.to_string()));
        }
    }
    let started = Instant::now();
    let r = blocking(&db, |db| Ok(db.verify_from(1))).await?;
    let (status, body, head) = match r {
        Ok(r) => (200, r.to_json(), r.seq),
        Err(e) if e.is_damage() => (503, e.damage_json(), head),
        Err(e) => return Err(e.into()),
    };
    let checked = Checked {
        head,
        status,
        body,
        took: started.elapsed().max(Duration::from_millis(1)),
        ended: Instant::now(),
    };
    let reply = answer(&checked);
    *last = Some(checked);
    reply
}

fn answer(c: &Checked) -> Reply {
    let status = StatusCode::from_u16(c.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ok(status, c.body.clone())
}
