//! Branches: list, create, drop and merge.

use annals::{AsOf, Error, MergeOptions, OnConflict};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::http::{
    authorize, blocking, body_bytes, invalid, json_body, ok, serialised, ApiError, Db, Pairs,
    Params, PathText, Reply,
};

pub(super) async fn branches(State(db): State<Db>) -> Reply {
    let rows = blocking(&db, |db| Ok(db.branches())).await?;
    serialised(StatusCode::OK, rows)
}

pub(super) async fn create_branch(State(db): State<Db>, headers: HeaderMap, req: Request) -> Reply {
    authorize(&db, &headers)?;
    let body = json_body(&body_bytes(&db, req).await?)?;
    let field = |name: &str| -> Result<Option<String>, ApiError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // A seq; `756.0` is the integer it looks like (JSON has one
            // number type).
            Some(Value::Number(n)) if name == "at" => Ok(Some(match n.as_u64() {
                Some(seq) => seq.to_string(),
                None => match n.as_f64() {
                    Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9_007_199_254_740_992.0 => {
                        (f as u64).to_string()
                    }
                    _ => n.to_string(),
                },
            })),
            Some(_) => Err(invalid("request body", name, "expected a string").into()),
        }
    };
    let Some(name) = field("name")? else {
        return Err(invalid("request body", "name", "required: the new branch's name").into());
    };
    let from = field("from")?;
    // The body's field is `at` (the CLI's word); the library names it
    // `as_of`, which this body has not.
    let at = field("at")?
        .map(|s| s.parse::<AsOf>())
        .transpose()
        .map_err(|e| ApiError::from(e.at("request body")).with("field", json!("at")))?;
    let info = blocking(&db, move |db| {
        Ok(db.create_branch(&name, from.as_deref(), at)?)
    })
    .await?;
    serialised(StatusCode::CREATED, info)
}

pub(super) async fn drop_branch(
    State(db): State<Db>,
    headers: HeaderMap,
    PathText(name): PathText,
) -> Reply {
    authorize(&db, &headers)?;
    let dropped = name.clone();
    blocking(&db, move |db| Ok(db.drop_branch(&name)?)).await?;
    ok(StatusCode::OK, json!({"dropped": dropped}))
}

pub(super) async fn merge(
    State(db): State<Db>,
    headers: HeaderMap,
    PathText(name): PathText,
    Pairs(p): Pairs,
) -> Reply {
    let p = Params::new(p, &["into", "dry_run", "on_conflict"])?;
    let dry_run = p.flag("dry_run")?;
    // A dry run writes nothing but holds the writer lock while it plans,
    // so it needs the token too, except on a read-only server, where
    // there are no writes to hold up.
    if !dry_run || db.token.is_some() {
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
