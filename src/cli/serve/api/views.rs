//! Views and checks: `GET /views/{view}`, `GET /branches/{name}/diff`,
//! `GET /verify`.

use annals::{Against, Granularity, ViewKind};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{json, Value};

use super::http::{
    blocking, known, ok, serialised, unserialisable, ApiError, Db, Params, Reply, AT_PARAMS,
    QUERY_PARAMS,
};

pub(super) async fn view(
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

pub(super) async fn diff(
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

pub(super) async fn verify(State(db): State<Db>) -> Reply {
    let r = blocking(&db, |db| Ok(db.verify_from(1))).await?;
    match r {
        Ok(r) => ok(StatusCode::OK, r.to_json()),
        Err(e) if e.is_damage() => ok(StatusCode::SERVICE_UNAVAILABLE, e.damage_json()),
        Err(e) => Err(e.into()),
    }
}
