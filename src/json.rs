//! The JSON Lines interchange format: parsing input events and printing
//! events (with their log positions) back out.

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Actor, Event, Location, PlacePrecision, Source};
use crate::time::{format_micros, Micros, Occurred, TimePoint};

/// Longest accepted input line, in bytes.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

const EVENT_FIELDS: &[&str] = &[
    "id",
    "kind",
    "occurred",
    "countries",
    "location",
    "actors",
    "summary",
    "sources",
    "confidence",
    "tags",
    "attrs",
];
/// Output-only fields, accepted and ignored on input so that exported
/// JSON Lines can be imported as they are.
const OUTPUT_FIELDS: &[&str] = &["seq", "recorded_at", "corrected_seq"];

/// Parses one JSON Lines line into a validated event. A missing `id` gets a
/// fresh v7 UUID. Errors name the field; the caller adds the line.
pub fn parse_event(line: &str) -> Result<Event> {
    if line.len() > MAX_LINE_BYTES {
        return Err(Error::invalid(
            "-",
            format!(
                "line is {} bytes; the limit is {MAX_LINE_BYTES}",
                line.len()
            ),
        ));
    }
    let value: Value = serde_json::from_str(line).map_err(|e| {
        Error::invalid("-", format!("malformed JSON at column {}: {e}", e.column()))
    })?;
    event_from_value(value)
}

/// Converts a JSON value into a validated event.
pub fn event_from_value(value: Value) -> Result<Event> {
    let Value::Object(mut obj) = value else {
        return Err(Error::invalid("-", "expected a JSON object"));
    };
    for key in obj.keys() {
        if !EVENT_FIELDS.contains(&key.as_str()) && !OUTPUT_FIELDS.contains(&key.as_str()) {
            return Err(Error::invalid(
                key.as_str(),
                format!("unknown field; expected one of {}", EVENT_FIELDS.join(", ")),
            ));
        }
    }
    let id = match take(&mut obj, "id") {
        None => Uuid::now_v7(),
        Some(v) => {
            let s = as_str("id", &v)?;
            Uuid::parse_str(s)
                .map_err(|e| Error::invalid("id", format!("`{s}` is not a UUID ({e})")))?
        }
    };
    let kind = match take(&mut obj, "kind") {
        Some(v) => as_str("kind", &v)?.to_string(),
        None => return Err(Error::invalid("kind", "missing (it is required)")),
    };
    let occurred = match take(&mut obj, "occurred") {
        Some(v) => parse_occurred(&v)?,
        None => return Err(Error::invalid("occurred", "missing (it is required)")),
    };
    let countries = string_list(&mut obj, "countries")?;
    let location = take(&mut obj, "location")
        .map(|v| parse_location(&v))
        .transpose()?;
    let actors = items(&mut obj, "actors")?
        .iter()
        .enumerate()
        .map(|(i, v)| parse_actor(&format!("actors[{i}]"), v))
        .collect::<Result<Vec<_>>>()?;
    let summary = take(&mut obj, "summary")
        .map(|v| as_str("summary", &v).map(str::to_string))
        .transpose()?;
    let sources = items(&mut obj, "sources")?
        .iter()
        .enumerate()
        .map(|(i, v)| parse_source(&format!("sources[{i}]"), v))
        .collect::<Result<Vec<_>>>()?;
    let confidence = take(&mut obj, "confidence")
        .map(|v| {
            v.as_f64()
                .ok_or_else(|| Error::invalid("confidence", "expected a number"))
        })
        .transpose()?;
    let tags = string_list(&mut obj, "tags")?;
    let attrs = match take(&mut obj, "attrs") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Error::invalid("attrs", "expected a JSON object")),
    };
    Event {
        id,
        kind,
        occurred,
        countries,
        location,
        actors,
        summary,
        sources,
        confidence,
        tags,
        attrs,
    }
    .validate()
}

/// Removes a field, treating `null` as absent.
fn take(obj: &mut Map<String, Value>, key: &str) -> Option<Value> {
    obj.remove(key).filter(|v| !v.is_null())
}

fn as_str<'a>(field: &str, v: &'a Value) -> Result<&'a str> {
    v.as_str()
        .ok_or_else(|| Error::invalid(field, format!("expected a string, found {}", type_name(v))))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn items(obj: &mut Map<String, Value>, field: &str) -> Result<Vec<Value>> {
    match take(obj, field) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(Error::invalid(
            field,
            format!("expected an array, found {}", type_name(&v)),
        )),
    }
}

fn string_list(obj: &mut Map<String, Value>, field: &str) -> Result<Vec<String>> {
    items(obj, field)?
        .iter()
        .enumerate()
        .map(|(i, v)| as_str(&format!("{field}[{i}]"), v).map(str::to_string))
        .collect()
}

fn object<'a>(field: &str, v: &'a Value, allowed: &[&str]) -> Result<&'a Map<String, Value>> {
    let Value::Object(m) = v else {
        return Err(Error::invalid(
            field,
            format!("expected an object, found {}", type_name(v)),
        ));
    };
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Error::invalid(
            format!("{field}.{k}"),
            format!("unknown field; expected one of {}", allowed.join(", ")),
        ));
    }
    Ok(m)
}

fn opt_str(m: &Map<String, Value>, field: &str, key: &str) -> Result<Option<String>> {
    match m.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => as_str(&format!("{field}.{key}"), v).map(|s| Some(s.to_string())),
    }
}

fn point(field: &str, v: &Value) -> Result<TimePoint> {
    TimePoint::parse(as_str(field, v)?).map_err(|e| e.for_field(field))
}

/// Parses `occurred`: an EDTF string (a date or an interval) or
/// `{"from": .., "to": ..}`, each end a date, `..` (open) or empty
/// (unknown).
pub fn parse_occurred(v: &Value) -> Result<Occurred> {
    match v {
        Value::String(s) => Occurred::parse(s),
        Value::Object(_) => {
            let m = object("occurred", v, &["from", "to"])?;
            let get = |k: &str| {
                m.get(k)
                    .ok_or_else(|| Error::invalid(format!("occurred.{k}"), "missing"))
                    .and_then(|x| as_str(&format!("occurred.{k}"), x))
            };
            Occurred::parse_range(get("from")?, get("to")?)
        }
        other => Err(Error::invalid(
            "occurred",
            format!(
                "expected a time string or {{\"from\", \"to\"}}, found {}",
                type_name(other)
            ),
        )),
    }
}

fn parse_location(v: &Value) -> Result<Location> {
    let m = object(
        "location",
        v,
        &["name", "country", "lat", "lon", "precision", "admin1"],
    )?;
    let coord = |k: &str| -> Result<Option<f64>> {
        match m.get(k).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(x) => x
                .as_f64()
                .map(Some)
                .ok_or_else(|| Error::invalid(format!("location.{k}"), "expected a number")),
        }
    };
    Ok(Location {
        name: opt_str(m, "location", "name")?,
        country: opt_str(m, "location", "country")?,
        lat: coord("lat")?,
        lon: coord("lon")?,
        precision: opt_str(m, "location", "precision")?
            .map(|p| {
                PlacePrecision::parse(&p).ok_or_else(|| {
                    Error::invalid(
                        "location.precision",
                        format!(
                            "`{p}` is not a place precision (exact, near, admin2, admin1, country)"
                        ),
                    )
                })
            })
            .transpose()?,
        admin1: opt_str(m, "location", "admin1")?,
    })
}

fn parse_actor(field: &str, v: &Value) -> Result<Actor> {
    let m = object(field, v, &["name", "role"])?;
    let name = opt_str(m, field, "name")?
        .ok_or_else(|| Error::invalid(format!("{field}.name"), "missing"))?;
    let role = opt_str(m, field, "role")?
        .ok_or_else(|| Error::invalid(format!("{field}.role"), "missing"))?;
    Ok(Actor { name, role })
}

fn parse_source(field: &str, v: &Value) -> Result<Source> {
    let m = object(field, v, &["name", "url", "reported_at"])?;
    let name = opt_str(m, field, "name")?
        .ok_or_else(|| Error::invalid(format!("{field}.name"), "missing"))?;
    let reported_at = match m.get("reported_at").filter(|v| !v.is_null()) {
        None => None,
        Some(x) => Some(point(&format!("{field}.reported_at"), x)?),
    };
    Ok(Source {
        name,
        url: opt_str(m, field, "url")?,
        reported_at,
    })
}

/// Where an event sits in the log, printed beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Seq of the entry that created the event.
    pub seq: u64,
    /// Transaction time of that entry.
    pub recorded_at: Micros,
    /// Seq of the latest correction, if the event was corrected.
    pub corrected_seq: Option<u64>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OccurredJson {
    Point(String),
    Range { from: String, to: String },
}

#[derive(Serialize)]
struct ActorJson<'a> {
    name: &'a str,
    role: &'a str,
}

#[derive(Serialize)]
struct LocationJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    precision: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin1: Option<&'a str>,
}

#[derive(Serialize)]
struct SourceJson<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reported_at: Option<String>,
}

#[derive(Serialize)]
struct EventJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    corrected_seq: Option<u64>,
    id: String,
    kind: &'a str,
    occurred: OccurredJson,
    countries: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<LocationJson<'a>>,
    actors: Vec<ActorJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<&'a str>,
    sources: Vec<SourceJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<f64>,
    tags: &'a [String],
    attrs: &'a Map<String, Value>,
}

/// The interchange JSON of an event, with its log position if given.
pub fn event_to_value(e: &Event, pos: Option<Position>) -> Value {
    let occurred = if e.occurred.is_point() {
        OccurredJson::Point(e.occurred.from.to_string())
    } else {
        OccurredJson::Range {
            from: e.occurred.from.to_string(),
            to: e.occurred.to.to_string(),
        }
    };
    let json = EventJson {
        seq: pos.map(|p| p.seq),
        recorded_at: pos.map(|p| format_micros(p.recorded_at)),
        corrected_seq: pos.and_then(|p| p.corrected_seq),
        id: e.id.hyphenated().to_string(),
        kind: &e.kind,
        occurred,
        countries: &e.countries,
        location: e.location.as_ref().map(|l| LocationJson {
            name: l.name.as_deref(),
            country: l.country.as_deref(),
            lat: l.lat,
            lon: l.lon,
            precision: l.precision.map(PlacePrecision::as_str),
            admin1: l.admin1.as_deref(),
        }),
        actors: e
            .actors
            .iter()
            .map(|a| ActorJson {
                name: &a.name,
                role: &a.role,
            })
            .collect(),
        summary: e.summary.as_deref(),
        sources: e
            .sources
            .iter()
            .map(|s| SourceJson {
                name: &s.name,
                url: s.url.as_deref(),
                reported_at: s.reported_at.map(|t| t.to_string()),
            })
            .collect(),
        confidence: e.confidence,
        tags: &e.tags,
        attrs: &e.attrs,
    };
    // Serializing plain structs of strings and finite numbers cannot fail.
    serde_json::to_value(json).unwrap_or(Value::Null)
}

/// One line of JSON Lines for an event.
pub fn event_to_line(e: &Event, pos: Option<Position>) -> String {
    event_to_value(e, pos).to_string()
}

/// Reads every event of a JSON Lines input, validating each; `name` names
/// the input in errors. Blank lines are skipped; a bad line (malformed,
/// invalid, longer than [`MAX_LINE_BYTES`], not UTF-8) fails the whole
/// read with its line number, so that nothing is written from a bad file.
pub fn read_events(input: &mut dyn std::io::BufRead, name: &str) -> Result<Vec<Event>> {
    use std::io::{BufRead, Read};
    let mut events = Vec::new();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = input
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(name, e))?;
        if n == 0 {
            return Ok(events);
        }
        line_no += 1;
        let at = || format!("{name} line {line_no}");
        if buf.len() > MAX_LINE_BYTES {
            return Err(
                Error::invalid("-", format!("line is longer than {MAX_LINE_BYTES} bytes")).at(at()),
            );
        }
        let text = std::str::from_utf8(&buf).map_err(|e| {
            Error::invalid("-", format!("not valid UTF-8 (byte {})", e.valid_up_to())).at(at())
        })?;
        if text.trim().is_empty() {
            continue;
        }
        events.push(parse_event(text).map_err(|e| e.at(at()))?);
    }
}

/// The new version of event `id` from a JSON object: its `id` may be left
/// out, but if given must be `id`. `at` names the input in errors. What
/// `annals correct` and `PUT /events/{id}` read.
pub fn correction_event(mut value: serde_json::Value, id: Uuid, at: &str) -> Result<Event> {
    if let serde_json::Value::Object(m) = &mut value {
        match m.get("id").and_then(|v| v.as_str()) {
            Some(given) if Uuid::parse_str(given).ok() != Some(id) => {
                return Err(Error::Invalid {
                    at: at.into(),
                    field: "id".into(),
                    reason: format!("`{given}` differs from the id being corrected ({id})"),
                })
            }
            _ => {
                m.insert("id".into(), Value::String(id.to_string()));
            }
        }
    }
    event_from_value(value).map_err(|e| e.at(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"id":"0193a3c4-0000-7000-8000-000000000001","kind":"airspace_violation","occurred":{"from":"2025-09-09","to":"2025-09-10"},"countries":["PL"],"location":{"name":"Lublin","country":"PL","lat":51.25,"lon":22.57},"actors":[{"name":"Russia","role":"alleged_perpetrator"}],"summary":"Drones entered Polish airspace.","sources":[{"name":"Reuters","url":"https://example.org/a","reported_at":"2025-09-10"}],"confidence":0.9,"tags":["drones"],"attrs":{"n":19,"nested":{"a":[1,2.5,"x",null]}}}"#;

    #[test]
    fn round_trips_through_the_interchange_format() {
        let e = parse_event(LINE).unwrap();
        let printed = event_to_line(&e, None);
        assert_eq!(parse_event(&printed).unwrap(), e);
        assert_eq!(printed, LINE);
    }

    #[test]
    fn output_fields_are_accepted_on_input() {
        let e = parse_event(LINE).unwrap();
        let pos = Position {
            seq: 7,
            recorded_at: 0,
            corrected_seq: Some(9),
        };
        let printed = event_to_line(&e, Some(pos));
        assert!(printed.starts_with(
            r#"{"seq":7,"recorded_at":"1970-01-01T00:00:00.000000Z","corrected_seq":9,"#
        ));
        assert_eq!(parse_event(&printed).unwrap(), e);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"kind":"x","occurred":"2025","color":"red"}"#, "color"),
            (r#"{"occurred":"2025"}"#, "kind"),
            (r#"{"kind":"x"}"#, "occurred"),
            (r#"{"kind":"x","occurred":"2025-13"}"#, "occurred"),
            (
                r#"{"kind":"x","occurred":{"from":"2025-10","to":"2025-09"}}"#,
                "occurred",
            ),
            (
                r#"{"kind":"x","occurred":"2025","countries":["PL",3]}"#,
                "countries[1]",
            ),
            (
                r#"{"kind":"x","occurred":"2025","actors":[{"name":"a"}]}"#,
                "actors[0].role",
            ),
            (
                r#"{"kind":"x","occurred":"2025","location":{"lon":200}}"#,
                "location.lon",
            ),
            (
                r#"{"kind":"x","occurred":"2025","sources":[{"name":"a","reported_at":"x"}]}"#,
                "sources[0].reported_at",
            ),
            (r#"{"kind":"x","occurred":"2025","id":"nope"}"#, "id"),
            (r#"{"kind":"x","occurred":"2025""#, "-"),
            (r#"[1]"#, "-"),
        ];
        for (line, field) in cases {
            match parse_event(line) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_id_gets_a_v7() {
        let e = parse_event(r#"{"kind":"meeting","occurred":"2025-12-03"}"#).unwrap();
        assert_eq!(e.id.get_version_num(), 7);
    }
}
