//! Python bindings of annals: the `annals._annals` extension module that
//! the `annals` package re-exports. Results are Arrow streams (the PyCapsule
//! stream protocol), so pandas, Polars, pyarrow and DuckDB read them without
//! a copy through files; small answers (an event, a history, the head) are
//! plain Python objects made from the library's JSON.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use annals::columnar::{self, BATCH_ROWS};
use annals::{
    Against, Annals, AsOf, At, Durability, Entry, Event, ImportFormat, MergeOptions, OnConflict,
    Op, Query, ViewKind,
};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow_schema::{ArrowError, SchemaRef};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyCapsule, PyDict, PyFloat, PyInt, PyList, PyString};
use serde_json::Value;
use uuid::Uuid;

create_exception!(
    annals,
    Error,
    PyException,
    "Base class of every annals error."
);
create_exception!(
    annals,
    InvalidInput,
    Error,
    "Input breaks a rule of the data model; nothing was written."
);
create_exception!(
    annals,
    Conflict,
    Error,
    "A write contradicts the log (an id with other content, a retracted event, ...)."
);
create_exception!(
    annals,
    SeqMismatch,
    Conflict,
    "`expect_seq` did not match the head of the log."
);
create_exception!(
    annals,
    NotFound,
    Error,
    "An event or branch does not exist."
);
create_exception!(
    annals,
    Corruption,
    Error,
    "Stored bytes fail a check (checksum, hash chain, decoder)."
);
create_exception!(
    annals,
    InUse,
    Error,
    "Another process (or handle) has the database open."
);
create_exception!(annals, BadPath, Error, "The path cannot be a database.");
create_exception!(
    annals,
    StorageError,
    Error,
    "An I/O or storage engine error."
);
create_exception!(
    annals,
    Poisoned,
    Error,
    "A previous write failed half-way; reopen before writing."
);
create_exception!(annals, Closed, Error, "The database handle was closed.");

/// The Python exception for a library error, with the library's message.
fn py_err(e: annals::Error) -> PyErr {
    let msg = e.to_string();
    match e {
        annals::Error::Invalid { .. } => InvalidInput::new_err(msg),
        annals::Error::SeqMismatch { .. } => SeqMismatch::new_err(msg),
        annals::Error::Conflict { .. } => Conflict::new_err(msg),
        annals::Error::NotFound { .. } => NotFound::new_err(msg),
        annals::Error::Corruption { .. } | annals::Error::DerivedDamage { .. } => {
            Corruption::new_err(msg)
        }
        annals::Error::InUse { .. } => InUse::new_err(msg),
        annals::Error::BadPath { .. } => BadPath::new_err(msg),
        annals::Error::Io { .. } | annals::Error::Export(_) | annals::Error::Delta { .. } => {
            StorageError::new_err(msg)
        }
        annals::Error::Poisoned(_) => Poisoned::new_err(msg),
        _ => Error::new_err(msg),
    }
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> PyErr {
    InvalidInput::new_err(format!("invalid `{field}`: {reason}"))
}

/// Python object to JSON, naming the path of anything JSON cannot hold.
fn to_json(obj: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(i.into());
        }
        return obj
            .extract::<u64>()
            .map(Value::from)
            .map_err(|_| invalid(path, "integer out of range"));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| invalid(path, "not a finite number"));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = serde_json::Map::new();
        for (k, v) in d.iter() {
            let key: String = k
                .extract()
                .map_err(|_| invalid(path, "dictionary keys must be strings"))?;
            let value = to_json(&v, &format!("{path}.{key}"))?;
            m.insert(key, value);
        }
        return Ok(Value::Object(m));
    }
    if obj.hasattr("isoformat")? {
        return Ok(Value::String(obj.call_method0("isoformat")?.extract()?));
    }
    if let Ok(it) = obj.try_iter() {
        let mut items = Vec::new();
        for (i, v) in it.enumerate() {
            items.push(to_json(&v?, &format!("{path}[{i}]"))?);
        }
        return Ok(Value::Array(items));
    }
    Err(invalid(
        path,
        format!("a {} cannot be stored", obj.get_type().name()?),
    ))
}

/// JSON to a Python object.
fn from_json<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(xs) => {
            let list = PyList::empty(py);
            for x in xs {
                list.append(from_json(py, x)?)?;
            }
            list.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, from_json(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// An event from a dict in the interchange format or its JSON text.
fn event_from(obj: &Bound<'_, PyAny>, at: &str) -> PyResult<Event> {
    let value = match obj.cast::<PyString>() {
        Ok(s) => serde_json::from_str(&s.to_cow()?).map_err(|e| invalid(at, e))?,
        Err(_) => to_json(obj, at)?,
    };
    annals::event_from_value(value).map_err(|e| py_err(e.at(at)))
}

fn parse_id(id: &str) -> PyResult<Uuid> {
    Uuid::parse_str(id.trim()).map_err(|e| invalid("id", format!("`{id}`: {e}")))
}

/// A point in transaction time: a seq (int or digits), an RFC 3339 string
/// or a timezone-aware datetime.
fn as_of_from(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<AsOf>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if obj.is_instance_of::<PyInt>() {
        let seq: u64 = obj
            .extract()
            .map_err(|_| invalid("as_of", "a seq is a non-negative integer"))?;
        return Ok(Some(AsOf::Seq(seq)));
    }
    if obj.hasattr("utcoffset")? {
        if obj.call_method0("utcoffset")?.is_none() {
            return Err(invalid("as_of", "a naive datetime: give it a timezone"));
        }
        let text: String = obj.call_method0("isoformat")?.extract()?;
        return text.parse().map(Some).map_err(py_err);
    }
    let text: String = obj
        .extract()
        .map_err(|_| invalid("as_of", "expected a seq, an RFC 3339 string or a datetime"))?;
    text.parse().map(Some).map_err(py_err)
}

/// One string or a list of them.
fn strings(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Vec<String>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(Vec::new());
    };
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(vec![s.to_cow()?.into_owned()]);
    }
    obj.extract::<Vec<String>>()
        .map_err(|_| invalid(field, "expected a string or a list of strings"))
}

fn occurrence_text(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    match obj.filter(|o| !o.is_none()) {
        None => Ok(None),
        Some(o) if o.hasattr("isoformat")? => Ok(Some(o.call_method0("isoformat")?.extract()?)),
        Some(o) => Ok(Some(o.extract()?)),
    }
}

/// The spatial filter arguments of `query`: `bbox` (`"W,S,E,N"` or four
/// numbers), `near` (`"LAT,LON"` or two numbers) with `radius_km`, `area`
/// (GeoJSON text, or a dict, which is serialised) and `place`.
#[derive(Default)]
struct Where {
    bbox: Option<String>,
    near: Option<String>,
    radius_km: Option<String>,
    area: Option<String>,
    place: Option<String>,
}

/// Numbers given as a string `"a,b,..."` or as a sequence of numbers.
fn numbers_text(obj: Option<&Bound<'_, PyAny>>, field: &str, n: usize) -> PyResult<Option<String>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(s.to_cow()?.into_owned()));
    }
    let v: Vec<f64> = obj
        .extract()
        .map_err(|_| invalid(field, format!("expected a string or {n} numbers")))?;
    if v.len() != n {
        return Err(invalid(
            field,
            format!("expected {n} numbers, got {}", v.len()),
        ));
    }
    Ok(Some(
        v.iter().map(f64::to_string).collect::<Vec<_>>().join(","),
    ))
}

impl Where {
    fn of(
        bbox: Option<&Bound<'_, PyAny>>,
        near: Option<&Bound<'_, PyAny>>,
        radius_km: Option<f64>,
        area: Option<&Bound<'_, PyAny>>,
        place: Option<String>,
    ) -> PyResult<Where> {
        let area = match area.filter(|o| !o.is_none()) {
            None => None,
            Some(a) if a.cast::<PyString>().is_ok() => Some(a.extract::<String>()?),
            Some(a) => Some(
                a.py()
                    .import("json")?
                    .call_method1("dumps", (a,))?
                    .extract::<String>()?,
            ),
        };
        Ok(Where {
            bbox: numbers_text(bbox, "bbox", 4)?,
            near: numbers_text(near, "near", 2)?,
            radius_km: radius_km.map(|r| r.to_string()),
            area,
            place,
        })
    }
}

/// The handle shared by a database and the results made from it, so that
/// closing the database closes them too.
struct Handle {
    db: RwLock<Option<Arc<Annals>>>,
    path: PathBuf,
}

impl Handle {
    fn get(&self) -> PyResult<Arc<Annals>> {
        self.db
            .read()
            .ok()
            .and_then(|g| g.clone())
            .ok_or_else(|| Closed::new_err(format!("database {} is closed", self.path.display())))
    }
}

/// An open annals database. Open one with `annals.open(path)`.
#[pyclass(module = "annals", frozen)]
struct Database {
    handle: Arc<Handle>,
}

fn at(branch: Option<String>, as_of: Option<AsOf>) -> At {
    At { branch, as_of }
}

/// The query of the filter arguments `query` and `sources` share.
#[allow(clippy::too_many_arguments)] // one per filter keyword
fn build_query(
    country: Option<&Bound<'_, PyAny>>,
    actor: Option<&Bound<'_, PyAny>>,
    kind: Option<&Bound<'_, PyAny>>,
    start: Option<&Bound<'_, PyAny>>,
    end: Option<&Bound<'_, PyAny>>,
    within: bool,
    limit: Option<usize>,
    place: Where,
) -> PyResult<Query> {
    let q = annals::Filters {
        countries: strings(country, "country")?,
        actors: strings(actor, "actor")?,
        kinds: strings(kind, "kind")?,
        from: occurrence_text(start)?,
        to: occurrence_text(end)?,
        within,
        bbox: place.bbox,
        near: place.near,
        radius_km: place.radius_km,
        area: place.area,
        place: place.place,
        limit,
    }
    .to_query()
    .map_err(py_err)?;
    q.validate().map_err(py_err)?;
    Ok(q)
}

fn view_kind(name: &str, granularity: Option<&str>, level: &str) -> PyResult<ViewKind> {
    if matches!(name, "by-place" | "by_place") {
        return Ok(ViewKind::ByPlace(
            annals::PlaceLevel::parse(level).map_err(py_err)?,
            annals::place_granularity(granularity.unwrap_or("all")).map_err(py_err)?,
        ));
    }
    let granularity = match ViewKind::is_by_date(name) {
        true => granularity.unwrap_or("month").parse().map_err(py_err)?,
        false => annals::Granularity::Month,
    };
    ViewKind::parse(name, granularity).map_err(py_err)
}

fn json_list<'py>(py: Python<'py>, values: &[Value]) -> PyResult<Bound<'py, PyAny>> {
    let list = PyList::empty(py);
    for v in values {
        list.append(from_json(py, v)?)?;
    }
    Ok(list.into_any())
}

fn written_list<'py>(py: Python<'py>, w: &[annals::Written]) -> PyResult<Bound<'py, PyAny>> {
    let values: Vec<Value> = w.iter().map(annals::Written::to_json).collect();
    json_list(py, &values)
}

#[pymethods]
impl Database {
    /// The database folder.
    #[getter]
    fn path(&self) -> String {
        self.handle.path.display().to_string()
    }

    /// The last entry of main: `{"seq": int, "hash": hex str}`.
    fn head<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let h = self.handle.get()?.head();
        from_json(
            py,
            &serde_json::json!({"seq": h.seq, "hash": annals::hex(&h.hash)}),
        )
    }

    /// Appends events atomically (all or none): dicts in the interchange
    /// format or their JSON text, one or an iterable. With `expect_seq`,
    /// fails with `SeqMismatch` unless the head is there. Returns
    /// `[{"seq", "id", "new"}]`, one per event.
    #[pyo3(signature = (events, expect_seq=None, branch=None))]
    fn append<'py>(
        &self,
        py: Python<'py>,
        events: &Bound<'py, PyAny>,
        expect_seq: Option<u64>,
        branch: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut ops = Vec::new();
        if events.is_instance_of::<PyDict>() || events.is_instance_of::<PyString>() {
            ops.push(Op::Append(event_from(events, "events[0]")?));
        } else {
            for (i, e) in events.try_iter()?.enumerate() {
                ops.push(Op::Append(event_from(&e?, &format!("events[{i}]"))?));
            }
        }
        let db = self.handle.get()?;
        let written = py
            .detach(|| db.write_on(branch.as_deref(), ops, expect_seq))
            .map_err(py_err)?;
        written_list(py, &written)
    }

    /// Appends a complete new version of event `id`; returns its seq.
    #[pyo3(signature = (id, event, branch=None))]
    fn correct(
        &self,
        py: Python<'_>,
        id: &str,
        event: &Bound<'_, PyAny>,
        branch: Option<String>,
    ) -> PyResult<u64> {
        let id = parse_id(id)?;
        let mut value = match event.cast::<PyString>() {
            Ok(s) => serde_json::from_str(&s.to_cow()?).map_err(|e| invalid("event", e))?,
            Err(_) => to_json(event, "event")?,
        };
        if let Value::Object(m) = &mut value {
            match m.get("id").and_then(Value::as_str) {
                Some(given) if Uuid::parse_str(given).ok() != Some(id) => {
                    return Err(invalid(
                        "event.id",
                        format!("`{given}` differs from the id being corrected ({id})"),
                    ))
                }
                _ => {
                    m.insert("id".into(), id.to_string().into());
                }
            }
        }
        let event = annals::event_from_value(value).map_err(|e| py_err(e.at("event")))?;
        self.write_one(py, Op::Correct(event), branch)
    }

    /// Retracts event `id`, giving a reason; returns the retraction's seq.
    #[pyo3(signature = (id, reason, branch=None))]
    fn retract(
        &self,
        py: Python<'_>,
        id: &str,
        reason: String,
        branch: Option<String>,
    ) -> PyResult<u64> {
        let op = Op::Retract {
            id: parse_id(id)?,
            reason,
        };
        self.write_one(py, op, branch)
    }

    /// Imports files (a path or a list) in `format`: `jsonl`, `gdelt`,
    /// `acled`, `acled-deletions`, `ucdp-ged`, `polecat`. Rows are upserts
    /// committed in durable batches. With `retract_missing` (a full
    /// release), events of the dataset the files do not hold are
    /// retracted afterwards. Without `skip_invalid` the first bad row raises
    /// `InvalidInput` naming its line (the rows before it stay
    /// committed); with it, each bad row goes to `on_reject(dict)`.
    /// `progress`: `True` for a tqdm bar (when tqdm is installed) or a
    /// callable given `{"rows", "bytes", "total_bytes"}` after each batch.
    /// Returns the summary (read, appended, corrected, ..., seqs).
    #[pyo3(signature = (paths, format="jsonl", skip_invalid=false, on_reject=None, progress=None, batch_rows=None, retract_missing=false))]
    #[allow(clippy::too_many_arguments)]
    fn import_file<'py>(
        &self,
        py: Python<'py>,
        paths: &Bound<'py, PyAny>,
        format: &str,
        skip_invalid: bool,
        on_reject: Option<Py<PyAny>>,
        progress: Option<Py<PyAny>>,
        batch_rows: Option<usize>,
        retract_missing: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let format = ImportFormat::parse(format).map_err(py_err)?;
        if retract_missing && !format.has_releases() {
            return Err(invalid(
                "retract_missing",
                "only acled, ucdp-ged and polecat files are full releases",
            ));
        }
        let paths: Vec<PathBuf> =
            if paths.is_instance_of::<PyString>() || paths.hasattr("__fspath__")? {
                vec![paths.extract()?]
            } else {
                paths.extract()?
            };
        let progress: Option<Py<PyAny>> = match progress {
            Some(p) if p.bind(py).is_instance_of::<PyBool>() => {
                if p.bind(py).is_truthy()? {
                    tqdm_progress(py)?
                } else {
                    None
                }
            }
            other => other,
        };
        let db = self.handle.get()?;
        // A callback's exception stops the import and is raised as it is.
        let failure: Mutex<Option<PyErr>> = Mutex::new(None);
        let result = py.detach(|| {
            let mut import = db.import(format);
            if let Some(n) = batch_rows {
                import = import.batch_rows(n);
            }
            if skip_invalid {
                import = import.skip_invalid(|r: &annals::Rejection| {
                    let Some(cb) = &on_reject else { return Ok(()) };
                    Python::attach(|py| {
                        let v = serde_json::to_value(r).unwrap_or(Value::Null);
                        from_json(py, &v).and_then(|d| cb.call1(py, (d,)).map(drop))
                    })
                    .map_err(|e| {
                        let msg = e.to_string();
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        annals::Error::Export(format!("on_reject raised {msg}"))
                    })
                });
            }
            if let Some(cb) = &progress {
                import = import.on_progress(|p: &annals::Progress| {
                    let v = serde_json::json!({"rows": p.rows, "bytes": p.bytes, "total_bytes": p.total_bytes});
                    if let Err(e) = Python::attach(|py| {
                        from_json(py, &v).and_then(|d| cb.call1(py, (d,)).map(drop))
                    }) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                    }
                });
            }
            let mut out = paths.iter().try_for_each(|p| import.file(p).map(drop));
            if out.is_ok() && retract_missing {
                out = import.retract_missing().map(drop);
            }
            (out, import.summary())
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        let (out, summary) = result;
        out.map_err(py_err)?;
        from_json(py, &serde_json::to_value(summary).unwrap_or(Value::Null))
    }

    /// Current events matching every given filter (a value or a list of
    /// values per filter, any of which may match), as of `as_of` (a seq,
    /// an RFC 3339 time or an aware datetime) on main or `branch`. `start`
    /// and `end` bound occurrence time (`"2025"`, `"2025-09"`,
    /// `"2025-09-10"`, ...); `within=True` keeps only events certainly
    /// inside. Where: `bbox` (`"W,S,E,N"` or four numbers; west > east
    /// crosses the antimeridian), `near` (`(lat, lon)`) with `radius_km`,
    /// or `area` (GeoJSON polygons, as text or a dict); `place` is
    /// `"point"` (default), `"possible"` or `"certain"` (docs/places.md).
    /// Returns an `Events` result: an Arrow stream, read when consumed,
    /// pinned to the seq the query was made at.
    #[pyo3(signature = (country=None, actor=None, kind=None, start=None, end=None, within=false, limit=None, as_of=None, branch=None, bbox=None, near=None, radius_km=None, area=None, place=None))]
    #[allow(clippy::too_many_arguments)]
    fn query(
        &self,
        country: Option<&Bound<'_, PyAny>>,
        actor: Option<&Bound<'_, PyAny>>,
        kind: Option<&Bound<'_, PyAny>>,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
        within: bool,
        limit: Option<usize>,
        as_of: Option<&Bound<'_, PyAny>>,
        branch: Option<String>,
        bbox: Option<&Bound<'_, PyAny>>,
        near: Option<&Bound<'_, PyAny>>,
        radius_km: Option<f64>,
        area: Option<&Bound<'_, PyAny>>,
        place: Option<String>,
    ) -> PyResult<Events> {
        let place = Where::of(bbox, near, radius_km, area, place)?;
        let q = build_query(country, actor, kind, start, end, within, limit, place)?;
        let branch = branch.filter(|b| b != "main");
        let db = self.handle.get()?;
        // Pinned: consuming the result later reads what was there now.
        let seq = db
            .reader(&at(branch.clone(), as_of_from(as_of)?))
            .map_err(py_err)?
            .seq();
        Ok(Events {
            handle: self.handle.clone(),
            at: at(branch, Some(AsOf::Seq(seq))),
            query: q,
            seq,
        })
    }

    /// A built-in view (`by-country`, `by-actor`, `by-date` at
    /// `granularity` year, month or day (default month), `by-place` at
    /// `granularity` all, month or year (default all) and `level` cell or
    /// admin1) as of `as_of` on main or `branch`: a `View` result, an
    /// Arrow stream of its rows. `country` (by-country) or `actor`
    /// (by-actor) reads that one row alone; `after` and `limit` page the
    /// by-actor view.
    #[pyo3(signature = (name, granularity=None, as_of=None, branch=None, country=None, actor=None, after=None, limit=None, level="cell"))]
    #[allow(clippy::too_many_arguments)]
    fn view(
        &self,
        py: Python<'_>,
        name: &str,
        granularity: Option<&str>,
        as_of: Option<&Bound<'_, PyAny>>,
        branch: Option<String>,
        country: Option<String>,
        actor: Option<String>,
        after: Option<String>,
        limit: Option<usize>,
        level: &str,
    ) -> PyResult<View> {
        let kind = view_kind(name, granularity, level)?;
        match kind {
            ViewKind::ByCountry if actor.is_some() || after.is_some() || limit.is_some() => {
                return Err(InvalidInput::new_err(
                    "by-country takes country= (page its actors with country_actors)",
                ))
            }
            ViewKind::ByActor if country.is_some() => {
                return Err(InvalidInput::new_err(
                    "by-actor takes actor=, after=, limit=",
                ))
            }
            ViewKind::ByDate(_) | ViewKind::ByPlace(..)
                if country.is_some() || actor.is_some() || after.is_some() || limit.is_some() =>
            {
                return Err(InvalidInput::new_err(format!(
                    "{name} takes no row or page arguments"
                )))
            }
            _ => {}
        }
        let at = at(branch.filter(|b| b != "main"), as_of_from(as_of)?);
        let db = self.handle.get()?;
        let (batch, rows) = py
            .detach(|| -> annals::Result<(RecordBatch, Vec<Value>)> {
                let r = db.reader(&at)?;
                Ok(match kind {
                    ViewKind::ByCountry => {
                        let v: Vec<_> = match &country {
                            Some(c) => r.country(c)?.into_iter().collect(),
                            None => r.by_country()?.to_vec(),
                        };
                        (columnar::country_batch(&v)?, row_values(&v))
                    }
                    ViewKind::ByActor => {
                        let v: Vec<_> = match &actor {
                            Some(a) => r.actor(a)?.into_iter().collect(),
                            None if after.is_some() || limit.is_some() => {
                                r.actors_page(after.as_deref(), limit.unwrap_or(usize::MAX))?
                            }
                            None => r.by_actor()?.to_vec(),
                        };
                        (columnar::actor_batch(&v)?, row_values(&v))
                    }
                    ViewKind::ByDate(g) => {
                        let v = r.by_date(g)?;
                        (columnar::date_batch(&v)?, row_values(&v))
                    }
                    ViewKind::ByPlace(level, g) => {
                        let v = r.by_place(level, g)?;
                        (columnar::place_batch(&v)?, row_values(&v))
                    }
                })
            })
            .map_err(py_err)?;
        Ok(View { batch, rows })
    }

    /// The actors of `country` with their counts, by key, a page at a
    /// time: those after actor `after`, at most `limit` (a by-country row
    /// lists the first 50): `[{"actor", "key", "count"}]`.
    #[pyo3(signature = (country, after=None, limit=100, as_of=None, branch=None))]
    fn country_actors<'py>(
        &self,
        py: Python<'py>,
        country: &str,
        after: Option<String>,
        limit: usize,
        as_of: Option<&Bound<'py, PyAny>>,
        branch: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let at = at(branch.filter(|b| b != "main"), as_of_from(as_of)?);
        let db = self.handle.get()?;
        let rows = py
            .detach(|| {
                db.reader(&at)?
                    .country_actors(country, after.as_deref(), limit)
            })
            .map_err(py_err)?;
        json_list(py, &row_values(&rows))
    }

    /// The events matching the filters (as in `query`), counted per
    /// dataset (`attrs.dataset`, or `hand-entered`) per bucket of
    /// occurrence time: `[{"bucket", "precision", "counts": {dataset: n}}]`.
    #[pyo3(signature = (country=None, actor=None, kind=None, start=None, end=None, within=false, granularity="month", as_of=None, branch=None))]
    #[allow(clippy::too_many_arguments)]
    fn sources<'py>(
        &self,
        py: Python<'py>,
        country: Option<&Bound<'py, PyAny>>,
        actor: Option<&Bound<'py, PyAny>>,
        kind: Option<&Bound<'py, PyAny>>,
        start: Option<&Bound<'py, PyAny>>,
        end: Option<&Bound<'py, PyAny>>,
        within: bool,
        granularity: &str,
        as_of: Option<&Bound<'py, PyAny>>,
        branch: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = build_query(
            country,
            actor,
            kind,
            start,
            end,
            within,
            None,
            Where::default(),
        )?;
        let g = granularity.parse().map_err(py_err)?;
        let at = at(branch.filter(|b| b != "main"), as_of_from(as_of)?);
        let db = self.handle.get()?;
        let rows = py
            .detach(|| db.reader(&at)?.by_dataset(&q, g))
            .map_err(py_err)?;
        json_list(py, &row_values(&rows))
    }

    /// The event as of `as_of` (retracted ones included, with
    /// `retracted_seq`), or `None`.
    #[pyo3(signature = (id, as_of=None, branch=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        as_of: Option<&Bound<'py, PyAny>>,
        branch: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = parse_id(id)?;
        let at = at(branch.filter(|b| b != "main"), as_of_from(as_of)?);
        let db = self.handle.get()?;
        let rec = py.detach(|| db.reader(&at)?.get(id)).map_err(py_err)?;
        match rec {
            Some(r) => from_json(py, &r.to_json()),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// Every version of event `id`, oldest first: `[{"seq", "recorded_at",
    /// "action", "event" | "reason"}]`; raises `NotFound` if it never
    /// existed.
    #[pyo3(signature = (id, as_of=None, branch=None))]
    fn history<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        as_of: Option<&Bound<'py, PyAny>>,
        branch: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = parse_id(id)?;
        let at = at(branch.filter(|b| b != "main"), as_of_from(as_of)?);
        let db = self.handle.get()?;
        let versions = py.detach(|| db.reader(&at)?.history(id)).map_err(py_err)?;
        if versions.is_empty() {
            return Err(NotFound::new_err(format!(
                "not found: no event with id {id}"
            )));
        }
        let values: Vec<Value> = versions.iter().map(annals::Version::to_json).collect();
        json_list(py, &values)
    }

    /// The events that differ between `since` and `until` (seqs or
    /// times; `until` defaults to the head): `[{"id", "change", "seq",
    /// "before", "after"}]`.
    #[pyo3(signature = (since, until=None, branch=None))]
    fn changes<'py>(
        &self,
        py: Python<'py>,
        since: &Bound<'py, PyAny>,
        until: Option<&Bound<'py, PyAny>>,
        branch: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let branch = branch.filter(|b| b != "main");
        let since = as_of_from(Some(since))?;
        let until = as_of_from(until)?;
        let db = self.handle.get()?;
        let rows = py
            .detach(|| {
                let since = db.reader(&at(branch.clone(), since))?.seq();
                db.reader(&at(branch, until))?
                    .changes_since(since, &Query::new())
            })
            .map_err(py_err)?;
        let values: Vec<Value> = rows.iter().map(annals::EventChange::to_json).collect();
        json_list(py, &values)
    }

    /// Replays the whole log, checking checksums, the hash chain and that
    /// the kept views equal the replay; returns the verified head. Raises
    /// `Corruption` naming the first damaged seq or file.
    fn verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let db = self.handle.get()?;
        let h = py.detach(|| db.verify()).map_err(py_err)?;
        from_json(
            py,
            &serde_json::json!({"seq": h.seq, "hash": annals::hex(&h.hash)}),
        )
    }

    /// Creates branch `name` from main (or branch `parent`) as of `at`
    /// (default: its head); returns the branch's description.
    #[pyo3(signature = (name, parent=None, at=None))]
    fn create_branch<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        parent: Option<String>,
        at: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let at = as_of_from(at)?;
        let parent = parent.filter(|p| p != "main");
        let db = self.handle.get()?;
        let info = py
            .detach(|| db.create_branch(name, parent.as_deref(), at))
            .map_err(py_err)?;
        from_json(py, &serde_json::to_value(info).unwrap_or(Value::Null))
    }

    /// The branches: `[{"name", "parent", "base_seq", "head_seq",
    /// "entries", "created_at"}]`.
    fn branches<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let values: Vec<Value> = self
            .handle
            .get()?
            .branches()
            .into_iter()
            .map(|b| serde_json::to_value(b).unwrap_or(Value::Null))
            .collect();
        json_list(py, &values)
    }

    /// Drops branch `name` and its entries.
    fn drop_branch(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let db = self.handle.get()?;
        py.detach(|| db.drop_branch(name)).map_err(py_err)
    }

    /// The rows of a view that differ between branch `name` and main (as
    /// of the branch's base, or main's head with `against="head"`):
    /// `[{"key", "main", "branch"}]`. `granularity` and `level` as in
    /// `view`.
    #[pyo3(signature = (name, view="by-country", granularity=None, against="base", level="cell"))]
    fn diff<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        view: &str,
        granularity: Option<&str>,
        against: &str,
        level: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind = view_kind(view, granularity, level)?;
        let against = against_from(against)?;
        let db = self.handle.get()?;
        let rows = py.detach(|| db.diff(name, kind, against)).map_err(py_err)?;
        let values: Vec<Value> = rows
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect();
        json_list(py, &values)
    }

    /// The events that differ between branch `name` and main (as of the
    /// branch's base, or main's head with `against="head"`): `[{"id",
    /// "diff": "added"|"removed"|"changed", "fields", "main", "branch"}]`.
    #[pyo3(signature = (name, against="base"))]
    fn diff_events<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        against: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let against = against_from(against)?;
        let db = self.handle.get()?;
        let rows = py
            .detach(|| db.diff_events(name, against))
            .map_err(py_err)?;
        let values: Vec<Value> = rows.iter().map(annals::EventDiff::to_json).collect();
        json_list(py, &values)
    }

    /// Merges branch `name` into main (or branch `into`): three-way by
    /// event id, one atomic batch. `on_conflict` is `"fail"` (raise
    /// `Conflict`, write nothing), `"branch"` or `"target"`; `dry_run`
    /// reports without writing. Returns the report: `{"branch", "into",
    /// "base_seq", "fast_forward", "dry_run", "changes", "conflicts",
    /// "written", "head"}`.
    #[pyo3(signature = (name, into=None, dry_run=false, on_conflict="fail"))]
    fn merge<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        into: Option<String>,
        dry_run: bool,
        on_conflict: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let on_conflict = match on_conflict {
            "fail" => OnConflict::Fail,
            "branch" => OnConflict::Branch,
            "target" => OnConflict::Target,
            other => {
                return Err(invalid(
                    "on_conflict",
                    format!("`{other}`; expected fail, branch or target"),
                ))
            }
        };
        let opts = MergeOptions {
            into: into.filter(|i| i != "main"),
            dry_run,
            on_conflict,
        };
        let db = self.handle.get()?;
        let report = py.detach(|| db.merge(name, &opts)).map_err(py_err)?;
        from_json(py, &report.to_json())
    }

    /// Main's entries after seq `after`, then each one committed from now
    /// on, in order, exactly once: an iterator of `{"seq", "recorded_at",
    /// "action", "id", "event" | "reason"}`. With `timeout` (seconds), the
    /// iteration ends when nothing arrives for that long.
    #[pyo3(signature = (after=0, timeout=None))]
    fn subscribe(&self, after: u64, timeout: Option<f64>) -> PyResult<Subscription> {
        let timeout = timeout
            .map(|t| Duration::try_from_secs_f64(t).map_err(|e| invalid("timeout", e)))
            .transpose()?;
        self.handle.get()?;
        Ok(Subscription {
            handle: self.handle.clone(),
            state: Mutex::new((after, VecDeque::new())),
            timeout,
        })
    }

    /// Closes the database: flushes what this handle wrote and releases
    /// the lock, so another process may open it. Results made from it
    /// raise `Closed` afterwards. Closing twice is a no-op.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.handle.db.write().ok().and_then(|mut g| g.take());
        let Some(db) = taken else { return Ok(()) };
        // A stream being read still holds the database; it closes when
        // that stream ends.
        match Arc::try_unwrap(db) {
            Ok(db) => py.detach(|| db.close()).map_err(py_err),
            Err(_) => Ok(()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.handle.get().is_ok() {
            "open"
        } else {
            "closed"
        };
        format!("<annals.Database {} ({state})>", self.handle.path.display())
    }
}

impl Database {
    fn write_one(&self, py: Python<'_>, op: Op, branch: Option<String>) -> PyResult<u64> {
        let db = self.handle.get()?;
        let written = py
            .detach(|| db.write_on(branch.as_deref(), vec![op], None))
            .map_err(py_err)?;
        Ok(written.first().map_or(0, |w| w.seq))
    }
}

/// View rows as JSON, as the CLI prints them.
fn row_values<T: serde::Serialize>(rows: &[T]) -> Vec<Value> {
    rows.iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect()
}

/// A tqdm progress callback, or `None` when tqdm is not installed.
fn tqdm_progress(py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
    let Ok(tqdm) = py.import("tqdm.auto") else {
        return Ok(None);
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("unit", "row")?;
    kwargs.set_item("unit_scale", true)?;
    let bar = tqdm.getattr("tqdm")?.call((), Some(&kwargs))?;
    let code = c"def _progress(bar):\n    def update(p):\n        bar.update(p['rows'] - bar.n)\n    return update\n";
    let module = PyModule::from_code(py, code, c"annals_progress.py", c"annals_progress")?;
    Ok(Some(module.getattr("_progress")?.call1((bar,))?.unbind()))
}

/// Batches from a worker thread, for the Arrow C stream.
struct ChannelReader {
    schema: SchemaRef,
    rx: Receiver<Result<RecordBatch, ArrowError>>,
}

impl Iterator for ChannelReader {
    type Item = Result<RecordBatch, ArrowError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

impl RecordBatchReader for ChannelReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Streams the query's events in batches of [`BATCH_ROWS`] from a worker
/// thread; at most two batches wait in the channel, so memory stays
/// bounded whatever the result's size. The worker stops when the stream
/// is dropped.
fn stream_events(db: Arc<Annals>, at: At, query: Query) -> annals::Result<ChannelReader> {
    let schema = columnar::events_schema()?;
    let (tx, rx) = sync_channel(2);
    std::thread::spawn(move || {
        let gone = std::cell::Cell::new(false);
        let run = || -> annals::Result<()> {
            let reader = db.reader(&at)?;
            let mut page = Vec::with_capacity(BATCH_ROWS);
            let send = |page: &mut Vec<annals::Record>| -> annals::Result<()> {
                let batch = columnar::events_batch(page)?;
                page.clear();
                tx.send(Ok(batch)).map_err(|_| {
                    gone.set(true);
                    annals::Error::Export("the stream's reader went away".into())
                })
            };
            reader.for_each_record(&query, &mut |r| {
                page.push(r);
                if page.len() >= BATCH_ROWS {
                    send(&mut page)?;
                }
                Ok(())
            })?;
            if !page.is_empty() {
                send(&mut page)?;
            }
            Ok(())
        };
        if let Err(e) = run() {
            if !gone.get() {
                let _ = tx.send(Err(ArrowError::ExternalError(Box::new(e))));
            }
        }
    });
    Ok(ChannelReader { schema, rx })
}

fn capsule<'py>(
    py: Python<'py>,
    reader: Box<dyn RecordBatchReader + Send>,
) -> PyResult<Bound<'py, PyCapsule>> {
    PyCapsule::new_with_value(py, FFI_ArrowArrayStream::new(reader), c"arrow_array_stream")
}

fn polars_from<'py>(obj: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let polars = obj.py().import("polars")?;
    polars.getattr("DataFrame")?.call1((obj,))
}

fn pyarrow_from<'py>(obj: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    obj.py().import("pyarrow")?.call_method1("table", (obj,))
}

/// The result of `Database.query`: the matching events, pinned to the seq
/// they were asked at, read when consumed. Implements the Arrow PyCapsule
/// stream protocol (`__arrow_c_stream__`): `polars.DataFrame(r)`,
/// `pyarrow.table(r)` and DuckDB read it directly. Columns: those of the
/// Parquet export (docs/import.md).
#[pyclass(module = "annals", frozen)]
struct Events {
    handle: Arc<Handle>,
    at: At,
    query: Query,
    seq: u64,
}

#[pymethods]
impl Events {
    /// The seq (of main or the branch) the result reads as of.
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    /// The Arrow C stream of the events, in batches of 8,192 rows.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // The protocol lets a producer ignore a requested schema.
        let _ = requested_schema;
        let db = self.handle.get()?;
        let reader = stream_events(db, self.at.clone(), self.query.clone()).map_err(py_err)?;
        capsule(py, Box::new(reader))
    }

    /// The events as dicts in the interchange format, with `seq`,
    /// `recorded_at` and `corrected_seq` (what `append` takes back).
    fn to_pylist<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let db = self.handle.get()?;
        let (at, q) = (self.at.clone(), self.query.clone());
        let records = py.detach(|| db.reader(&at)?.query(&q)).map_err(py_err)?;
        let values: Vec<Value> = records.iter().map(annals::Record::to_json).collect();
        json_list(py, &values)
    }

    /// A pyarrow Table (needs pyarrow).
    fn to_arrow<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        pyarrow_from(slf.into_any())
    }

    /// A pandas DataFrame (needs pandas and pyarrow).
    fn to_pandas<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        pyarrow_from(slf.into_any())?.call_method0("to_pandas")
    }

    /// A Polars DataFrame (needs polars).
    fn to_polars<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        polars_from(slf.into_any())
    }

    fn __repr__(&self) -> String {
        format!("<annals.Events as of seq {}>", self.seq)
    }
}

/// The result of `Database.view`: the view's rows, computed when asked
/// for. An Arrow stream like `Events`; maps of counts (`by_kind`, ...) are
/// Arrow maps.
#[pyclass(module = "annals", frozen)]
struct View {
    batch: RecordBatch,
    rows: Vec<Value>,
}

#[pymethods]
impl View {
    /// The Arrow C stream of the rows.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let schema = self.batch.schema();
        let reader = RecordBatchIterator::new(vec![Ok(self.batch.clone())], schema);
        capsule(py, Box::new(reader))
    }

    /// The rows as dicts, as `annals view --format json` prints them.
    fn to_pylist<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_list(py, &self.rows)
    }

    /// A pyarrow Table (needs pyarrow).
    fn to_arrow<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        pyarrow_from(slf.into_any())
    }

    /// A pandas DataFrame (needs pandas and pyarrow).
    fn to_pandas<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        pyarrow_from(slf.into_any())?.call_method0("to_pandas")
    }

    /// A Polars DataFrame (needs polars).
    fn to_polars<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        polars_from(slf.into_any())
    }

    fn __len__(&self) -> usize {
        self.rows.len()
    }
}

/// The iterator of `Database.subscribe`.
#[pyclass(module = "annals", frozen)]
struct Subscription {
    handle: Arc<Handle>,
    /// The last seq handed out, and entries read ahead.
    state: Mutex<(u64, VecDeque<Entry>)>,
    timeout: Option<Duration>,
}

/// How long a wait runs between checks for Ctrl-C.
const WAIT_SLICE: Duration = Duration::from_millis(100);

#[pymethods]
impl Subscription {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| Error::new_err("subscription poisoned by an earlier panic"))?;
        if state.1.is_empty() {
            let db = self.handle.get()?;
            let after = state.0;
            let ahead: Vec<Entry> = py
                .detach(|| {
                    db.entries(after)?
                        .take(1024)
                        .collect::<annals::Result<Vec<_>>>()
                })
                .map_err(py_err)?;
            state.1.extend(ahead);
            if state.1.is_empty() {
                let Some(e) = self.wait(py, &db, after)? else {
                    return Ok(None);
                };
                state.1.push_back(e);
            }
        }
        let Some(e) = state.1.pop_front() else {
            return Ok(None);
        };
        state.0 = e.seq;
        from_json(py, &e.to_json()).map(Some)
    }
}

impl Subscription {
    /// Waits for the entry after `after`, in slices so that Ctrl-C is
    /// seen; `None` on the subscription's time-out.
    fn wait(&self, py: Python<'_>, db: &Arc<Annals>, after: u64) -> PyResult<Option<Entry>> {
        let timeout = self.timeout;
        py.detach(|| {
            let mut sub = db.subscribe(after).map_err(py_err)?;
            let started = Instant::now();
            loop {
                let slice = match timeout {
                    Some(t) => match t.checked_sub(started.elapsed()) {
                        Some(left) if !left.is_zero() => left.min(WAIT_SLICE),
                        _ => return Ok(None),
                    },
                    None => WAIT_SLICE,
                };
                if let Some(next) = sub.next_timeout(slice) {
                    return next.map(Some).map_err(py_err);
                }
                Python::attach(|py| py.check_signals())?;
            }
        })
    }
}

/// Opens (creating if needed) the database in folder `path`.
/// `durability`: `"durable"` (each write returns once on stable storage)
/// or `"buffered"` (sled writes out within about 500 ms). Raises `InUse`
/// when another process has it open.
#[pyfunction]
#[pyo3(signature = (path, durability="durable", create=true))]
fn open(py: Python<'_>, path: PathBuf, durability: &str, create: bool) -> PyResult<Database> {
    let durability = match durability {
        "durable" => Durability::Durable,
        "buffered" => Durability::Buffered,
        other => {
            return Err(invalid(
                "durability",
                format!("`{other}`; expected durable or buffered"),
            ))
        }
    };
    let db = py
        .detach(|| {
            Annals::builder(&path)
                .durability(durability)
                .create(create)
                .open()
        })
        .map_err(py_err)?;
    Ok(Database {
        handle: Arc::new(Handle {
            db: RwLock::new(Some(Arc::new(db))),
            path,
        }),
    })
}

/// Erases event `id`'s payload from every log and file of the database
/// in folder `path` (which no one may have open), for `reason`; the chain
/// still verifies and `history` tells when and why. Returns the excision:
/// `{"id", "at", "reason", "entries": {log: [seq, ...]}}`. Raises
/// `NotFound` for an unknown id, `Conflict` if it was excised already.
#[pyfunction]
fn excise<'py>(
    py: Python<'py>,
    path: PathBuf,
    id: &str,
    reason: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let id = parse_id(id)?;
    let done = py
        .detach(|| Annals::excise(&path, id, reason))
        .map_err(py_err)?;
    from_json(py, &done.to_json())
}

#[pymodule]
fn _annals(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(excise, m)?)?;
    m.add_class::<Database>()?;
    m.add_class::<Events>()?;
    m.add_class::<View>()?;
    m.add_class::<Subscription>()?;
    m.add("Error", py.get_type::<Error>())?;
    m.add("InvalidInput", py.get_type::<InvalidInput>())?;
    m.add("Conflict", py.get_type::<Conflict>())?;
    m.add("SeqMismatch", py.get_type::<SeqMismatch>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("Corruption", py.get_type::<Corruption>())?;
    m.add("InUse", py.get_type::<InUse>())?;
    m.add("BadPath", py.get_type::<BadPath>())?;
    m.add("StorageError", py.get_type::<StorageError>())?;
    m.add("Poisoned", py.get_type::<Poisoned>())?;
    m.add("Closed", py.get_type::<Closed>())?;
    Ok(())
}

/// `against=` of the diffs.
fn against_from(against: &str) -> PyResult<Against> {
    match against {
        "base" => Ok(Against::Base),
        "head" => Ok(Against::Head),
        other => Err(invalid(
            "against",
            format!("`{other}`; expected base or head"),
        )),
    }
}
