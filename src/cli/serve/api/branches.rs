//! Branches: list, create, drop and merge.

use annals::{AsOf, Error, MergeOptions, OnConflict};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::http::{
    authorize, blocking, body_bytes, invalid, json_body, ok, serialised, ApiError, Db, Params,
    Reply,
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

pub(super) async fn drop_branch(
    State(db): State<Db>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Reply {
    authorize(&db, &headers)?;
    let dropped = name.clone();
    blocking(&db, move |db| Ok(db.drop_branch(&name)?)).await?;
    ok(StatusCode::OK, json!({"dropped": dropped}))
}

pub(super) async fn merge(
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
