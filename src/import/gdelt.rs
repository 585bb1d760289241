//! GDELT event exports: 2.0 (61 columns), 1.0 (58, or 57 for backfile rows
//! without SOURCEURL), tab-separated without a header and never quoted; or
//! the same columns re-saved with a header line and CSV quoting (R's
//! `write.csv`, spreadsheets), read by column name.

use std::collections::HashMap;
use std::io::{BufRead, Cursor, Read};

use chrono::{NaiveDate, NaiveTime};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::codes::{iso_from_cameo, iso_from_fips, kind_of_cameo_root};
use super::input::CrlfToLf;
use super::row::{read_line, Item, Row, Rows};
use crate::error::{Error, Result};
use crate::model::{Actor, Event, Location, PlacePrecision, Source};
use crate::time::{day_point, Occurred, Precision, TimePoint};

/// Namespace of GDELT event ids: UUID v5 of
/// `https://github.com/annals/annals/import/gdelt` in the URL namespace.
pub const GDELT_NAMESPACE: Uuid = Uuid::from_u128(0x2e4a43f7_20b3_5b65_bd6f_5c2b709f0c59);

/// The annals id of GDELT event `global_event_id`.
pub fn gdelt_id(global_event_id: u64) -> Uuid {
    Uuid::new_v5(&GDELT_NAMESPACE, global_event_id.to_string().as_bytes())
}

#[rustfmt::skip]
/// GDELT 1.0's columns (`GDELT_1.0_event_Column_Labels_Header_Row`).
const V1: [&str; 58] = [
    "GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "FractionDate",
    "Actor1Code", "Actor1Name", "Actor1CountryCode", "Actor1KnownGroupCode", "Actor1EthnicCode",
    "Actor1Religion1Code", "Actor1Religion2Code", "Actor1Type1Code", "Actor1Type2Code", "Actor1Type3Code",
    "Actor2Code", "Actor2Name", "Actor2CountryCode", "Actor2KnownGroupCode", "Actor2EthnicCode",
    "Actor2Religion1Code", "Actor2Religion2Code", "Actor2Type1Code", "Actor2Type2Code", "Actor2Type3Code",
    "IsRootEvent", "EventCode", "EventBaseCode", "EventRootCode", "QuadClass", "GoldsteinScale",
    "NumMentions", "NumSources", "NumArticles", "AvgTone",
    "Actor1Geo_Type", "Actor1Geo_FullName", "Actor1Geo_CountryCode", "Actor1Geo_ADM1Code",
    "Actor1Geo_Lat", "Actor1Geo_Long", "Actor1Geo_FeatureID",
    "Actor2Geo_Type", "Actor2Geo_FullName", "Actor2Geo_CountryCode", "Actor2Geo_ADM1Code",
    "Actor2Geo_Lat", "Actor2Geo_Long", "Actor2Geo_FeatureID",
    "ActionGeo_Type", "ActionGeo_FullName", "ActionGeo_CountryCode", "ActionGeo_ADM1Code",
    "ActionGeo_Lat", "ActionGeo_Long", "ActionGeo_FeatureID",
    "DATEADDED", "SOURCEURL",
];

#[rustfmt::skip]
/// GDELT 2.0's columns: 1.0's plus an ADM2Code per geo.
const V2: [&str; 61] = [
    "GLOBALEVENTID", "SQLDATE", "MonthYear", "Year", "FractionDate",
    "Actor1Code", "Actor1Name", "Actor1CountryCode", "Actor1KnownGroupCode", "Actor1EthnicCode",
    "Actor1Religion1Code", "Actor1Religion2Code", "Actor1Type1Code", "Actor1Type2Code", "Actor1Type3Code",
    "Actor2Code", "Actor2Name", "Actor2CountryCode", "Actor2KnownGroupCode", "Actor2EthnicCode",
    "Actor2Religion1Code", "Actor2Religion2Code", "Actor2Type1Code", "Actor2Type2Code", "Actor2Type3Code",
    "IsRootEvent", "EventCode", "EventBaseCode", "EventRootCode", "QuadClass", "GoldsteinScale",
    "NumMentions", "NumSources", "NumArticles", "AvgTone",
    "Actor1Geo_Type", "Actor1Geo_FullName", "Actor1Geo_CountryCode", "Actor1Geo_ADM1Code",
    "Actor1Geo_ADM2Code", "Actor1Geo_Lat", "Actor1Geo_Long", "Actor1Geo_FeatureID",
    "Actor2Geo_Type", "Actor2Geo_FullName", "Actor2Geo_CountryCode", "Actor2Geo_ADM1Code",
    "Actor2Geo_ADM2Code", "Actor2Geo_Lat", "Actor2Geo_Long", "Actor2Geo_FeatureID",
    "ActionGeo_Type", "ActionGeo_FullName", "ActionGeo_CountryCode", "ActionGeo_ADM1Code",
    "ActionGeo_ADM2Code", "ActionGeo_Lat", "ActionGeo_Long", "ActionGeo_FeatureID",
    "DATEADDED", "SOURCEURL",
];

/// Where each column annals reads sits in a row.
struct Layout {
    dataset: &'static str,
    /// By the column's name as GDELT 2.0's header spells it.
    cols: HashMap<&'static str, usize>,
    /// R writes missing values as `NA`.
    na_is_missing: bool,
}

impl Layout {
    /// A layout from column names (matched case-insensitively; unknown
    /// names are ignored).
    fn new(dataset: &'static str, names: &[&str], na_is_missing: bool) -> Layout {
        let cols = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let known = V2.iter().find(|k| k.eq_ignore_ascii_case(n.trim()))?;
                Some((*known, i))
            })
            .collect();
        Layout {
            dataset,
            cols,
            na_is_missing,
        }
    }

    /// Layout of a headerless row, told apart by its number of fields.
    fn raw(fields: usize) -> Option<&'static Layout> {
        use std::sync::OnceLock;
        static LAYOUTS: OnceLock<[Layout; 3]> = OnceLock::new();
        let [v2, v1, v1_backfile] = LAYOUTS.get_or_init(|| {
            [
                Layout::new("gdelt2", &V2, false),
                Layout::new("gdelt1", &V1, false),
                Layout::new("gdelt1", &V1[..57], false),
            ]
        });
        match fields {
            61 => Some(v2),
            58 => Some(v1),
            57 => Some(v1_backfile),
            _ => None,
        }
    }
}

/// A row's fields, read through a layout.
struct Fields<'a> {
    layout: &'a Layout,
    fields: &'a [&'a str],
}

impl Fields<'_> {
    /// The trimmed value of a column; empty if missing.
    fn get(&self, name: &str) -> &str {
        let v = self
            .layout
            .cols
            .get(name)
            .and_then(|&i| self.fields.get(i))
            .map_or("", |v| v.trim());
        if self.layout.na_is_missing && v == "NA" {
            ""
        } else {
            v
        }
    }

    fn opt(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.is_empty())
    }

    fn number(&self, name: &str) -> Result<Option<f64>> {
        super::row::number(name, self.opt(name))
    }

    fn integer(&self, name: &str) -> Result<Option<i64>> {
        self.opt(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| Error::invalid(name, format!("`{v}` is not an integer")))
            })
            .transpose()
    }
}

/// Says where a value lost its form in a spreadsheet, if it looks so.
/// GDELT's geo type: 1 a country, 2 a US state, 3 a US city, 4 a world
/// city, 5 a world state (ADM1); the point is the place's centroid.
pub(crate) fn gdelt_precision(code: &str) -> Option<PlacePrecision> {
    match code.trim() {
        "1" => Some(PlacePrecision::Country),
        "2" | "5" => Some(PlacePrecision::Admin1),
        "3" | "4" => Some(PlacePrecision::Exact),
        _ => None,
    }
}

fn spreadsheet_damage(field: &str, v: &str) -> Error {
    Error::invalid(
        field,
        format!(
            "`{v}` has lost digits: the file went through a spreadsheet, which drops leading \
             zeros and writes long numbers in scientific notation; import the raw GDELT export"
        ),
    )
}

/// A `YYYYMMDD` date and, if `v` has them, `HHMMSS` (UTC).
fn date_parts(v: &str) -> Option<(NaiveDate, Option<NaiveTime>)> {
    if !matches!(v.len(), 8 | 14) || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| v.get(r).and_then(|s| s.parse::<u32>().ok());
    let date = NaiveDate::from_ymd_opt(i32::try_from(n(0..4)?).ok()?, n(4..6)?, n(6..8)?)?;
    let time = match v.len() {
        14 => Some(NaiveTime::from_hms_opt(n(8..10)?, n(10..12)?, n(12..14)?)?),
        _ => None,
    };
    Some((date, time))
}

fn day(field: &str, v: &str) -> Result<TimePoint> {
    match date_parts(v) {
        Some((d, None)) => day_point(d).map_err(|e| e.for_field(field)),
        _ => Err(Error::invalid(
            field,
            format!("`{v}` is not a YYYYMMDD date"),
        )),
    }
}

/// DATEADDED: `YYYYMMDDHHMMSS` (UTC) in 2.0, `YYYYMMDD` in 1.0.
fn date_added(v: &str) -> Result<TimePoint> {
    const F: &str = "DATEADDED";
    if v.contains(['E', 'e', '.']) {
        return Err(spreadsheet_damage(F, v));
    }
    match date_parts(v) {
        Some((d, None)) => day_point(d).map_err(|e| e.for_field(F)),
        Some((d, Some(t))) => Ok(TimePoint::at(
            d.and_time(t).and_utc().timestamp_micros(),
            Precision::Instant,
        )),
        None => Err(Error::invalid(
            F,
            format!("`{v}` is not a YYYYMMDDHHMMSS or YYYYMMDD date"),
        )),
    }
}

/// The CAMEO codes, checked: kept as strings (their leading zeros matter).
fn cameo(f: &Fields) -> Result<(&'static str, String, String, String)> {
    let root = f.get("EventRootCode");
    let code = f.get("EventCode");
    let base = f.get("EventBaseCode");
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if root.len() == 1 && digits(root) {
        return Err(spreadsheet_damage("EventRootCode", root));
    }
    let kind = kind_of_cameo_root(root).ok_or_else(|| {
        Error::invalid(
            "EventRootCode",
            format!("`{root}` is not a CAMEO root code (01 to 20)"),
        )
    })?;
    for (field, v) in [("EventCode", code), ("EventBaseCode", base)] {
        let valid = v.starts_with(root) && (3..=4).contains(&v.len()) && digits(v);
        if !v.is_empty() && !valid {
            if digits(v) && v.len() < 4 && root.starts_with('0') {
                return Err(spreadsheet_damage(field, v));
            }
            return Err(Error::invalid(
                field,
                format!("`{v}` is not a CAMEO code under root `{root}`"),
            ));
        }
    }
    Ok((kind, code.to_string(), base.to_string(), root.to_string()))
}

/// The host of a URL, as the source's name; GDELT 1.0 sometimes gives a
/// publication name instead of a URL.
fn source(url: &str, reported: TimePoint) -> Source {
    match url.split_once("://") {
        Some((_, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            Source {
                name: host.strip_prefix("www.").unwrap_or(host).to_string(),
                url: Some(url.to_string()),
                reported_at: Some(reported),
            }
        }
        None => Source {
            name: url.to_string(),
            url: None,
            reported_at: Some(reported),
        },
    }
}

fn event(f: &Fields) -> Result<Event> {
    let raw_id = f.get("GLOBALEVENTID");
    if raw_id.contains(['E', 'e']) {
        return Err(spreadsheet_damage("GLOBALEVENTID", raw_id));
    }
    let gid: u64 = raw_id.parse().map_err(|_| {
        Error::invalid(
            "GLOBALEVENTID",
            format!("`{raw_id}` is not a GDELT event id"),
        )
    })?;
    let occurred = Occurred::point(day("SQLDATE", f.get("SQLDATE"))?);
    let (kind, code, base, root) = cameo(f)?;
    let added_raw = f.get("DATEADDED");
    let added = date_added(added_raw)?;

    let mut countries = Vec::new();
    let action_fips = f.get("ActionGeo_CountryCode");
    if let Some(iso) = iso_from_fips(action_fips) {
        countries.push(iso.to_string());
    }
    for col in ["Actor1CountryCode", "Actor2CountryCode"] {
        if let Some(iso) = iso_from_cameo(f.get(col)) {
            countries.push(iso.to_string());
        }
    }
    let geo_type = f.get("ActionGeo_Type");
    let location = if geo_type.is_empty() || geo_type == "0" {
        None
    } else {
        Some(Location {
            name: f.opt("ActionGeo_FullName").map(str::to_string),
            country: iso_from_fips(action_fips).map(str::to_string),
            lat: f.number("ActionGeo_Lat")?,
            lon: f.number("ActionGeo_Long")?,
            precision: gdelt_precision(geo_type),
            // A country-level place's ADM1 code is the country's own.
            admin1: f
                .opt("ActionGeo_ADM1Code")
                .filter(|_| geo_type != "1")
                .map(str::to_string),
        })
    };
    let mut actors = Vec::new();
    for (col, role) in [("Actor1Name", "initiator"), ("Actor2Name", "recipient")] {
        if let Some(name) = f.opt(col) {
            actors.push(Actor::new(name, role));
        }
    }
    let sources = f
        .opt("SOURCEURL")
        .map(|u| vec![source(u, added)])
        .unwrap_or_default();

    let mut attrs = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            attrs.insert(k.to_string(), v);
        }
    };
    put("source_id", Value::from(raw_id));
    put("dataset", Value::from(f.layout.dataset));
    put("event_code", Value::from(code));
    put("event_base_code", Value::from(base));
    put("event_root_code", Value::from(root));
    put("quad_class", f.integer("QuadClass")?.into());
    put("goldstein", f.number("GoldsteinScale")?.into());
    put("num_mentions", f.integer("NumMentions")?.into());
    put("num_sources", f.integer("NumSources")?.into());
    put("num_articles", f.integer("NumArticles")?.into());
    put("avg_tone", f.number("AvgTone")?.into());
    put(
        "is_root_event",
        f.integer("IsRootEvent")?.map(|v| v == 1).into(),
    );
    for (k, col) in [
        ("actor1_code", "Actor1Code"),
        ("actor1_country", "Actor1CountryCode"),
        ("actor2_code", "Actor2Code"),
        ("actor2_country", "Actor2CountryCode"),
        ("action_geo_fips", "ActionGeo_CountryCode"),
        ("action_geo_adm1", "ActionGeo_ADM1Code"),
        ("action_geo_feature_id", "ActionGeo_FeatureID"),
    ] {
        put(k, f.opt(col).map(Value::from).unwrap_or(Value::Null));
    }
    put("date_added", Value::from(added_raw));

    Event {
        id: gdelt_id(gid),
        kind: kind.to_string(),
        occurred,
        countries,
        location,
        actors,
        summary: None,
        sources,
        confidence: None,
        tags: Vec::new(),
        attrs,
    }
    .validate()
}

/// The rows of a GDELT file: headerless tab-separated, or (if the first
/// line names GLOBALEVENTID) a delimited file with a header.
pub(crate) fn rows<'r>(r: &'r mut (dyn BufRead + Send)) -> Result<Box<dyn Rows + 'r>> {
    let mut line = 0;
    let Some(first) = read_line(r, &mut line)? else {
        return Ok(Box::new(Raw {
            r,
            line: 0,
            first: None,
        }));
    };
    let text = String::from_utf8_lossy(&first);
    if !text.to_ascii_uppercase().contains("GLOBALEVENTID") {
        return Ok(Box::new(Raw {
            r,
            line: 0,
            first: Some(first),
        }));
    }
    let delimiter = [b'\t', b';', b',']
        .into_iter()
        .max_by_key(|d| first.iter().filter(|b| *b == d).count())
        .unwrap_or(b',');
    let mut header = first.clone();
    header.push(b'\n');
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .from_reader(
            Box::new(CrlfToLf::new(Cursor::new(header).chain(r))) as Box<dyn Read + Send + 'r>
        );
    let names: Vec<String> = csv
        .headers()
        .map_err(|e| Error::invalid("-", format!("unreadable header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let v2 = refs
        .iter()
        .any(|n| n.eq_ignore_ascii_case("ActionGeo_ADM2Code"));
    let layout = Layout::new(if v2 { "gdelt2" } else { "gdelt1" }, &refs, true);
    for required in ["GLOBALEVENTID", "SQLDATE", "EventRootCode", "DATEADDED"] {
        if !layout.cols.contains_key(required) {
            return Err(Error::invalid(
                required,
                "missing from the header; this is not a GDELT event file",
            ));
        }
    }
    Ok(Box::new(Headed {
        csv,
        record: csv::ByteRecord::new(),
        layout,
    }))
}

/// Headerless, tab-separated: split on tabs only, never unquote.
struct Raw<'r> {
    r: &'r mut (dyn BufRead + Send),
    line: u64,
    first: Option<Vec<u8>>,
}

impl Rows for Raw<'_> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        loop {
            let bytes = match self.first.take() {
                Some(b) => {
                    self.line = 1;
                    b
                }
                None => match read_line(self.r, &mut self.line)? {
                    Some(b) => b,
                    None => return Ok(None),
                },
            };
            if bytes.is_empty() {
                continue;
            }
            let (fields, item) = match std::str::from_utf8(&bytes) {
                Ok(text) => {
                    let fields: Vec<&str> = text.split('\t').collect();
                    let item = match Layout::raw(fields.len()) {
                        Some(layout) => event(&Fields {
                            layout,
                            fields: &fields,
                        }),
                        None => Err(Error::invalid(
                            "-",
                            format!(
                                "{} tab-separated fields; GDELT 2.0 rows have 61, 1.0 rows 57 or 58",
                                fields.len()
                            ),
                        )),
                    };
                    let raw = match item {
                        Ok(_) => Vec::new(),
                        Err(_) => fields.iter().map(|f| f.to_string()).collect(),
                    };
                    (raw, item)
                }
                Err(_) => (
                    vec![String::from_utf8_lossy(&bytes).into_owned()],
                    Err(Error::invalid("-", "not UTF-8")),
                ),
            };
            return Ok(Some(Row {
                line: self.line,
                fields,
                item: item.map(|event| Item::Upsert { event, stamp: None }),
                id: None,
            }));
        }
    }
}

/// A delimited file with a header (R export, spreadsheet).
struct Headed<'r> {
    csv: csv::Reader<Box<dyn Read + Send + 'r>>,
    record: csv::ByteRecord,
    layout: Layout,
}

impl Rows for Headed<'_> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        next_csv_row(&mut self.csv, &mut self.record, |fields| {
            event(&Fields {
                layout: &self.layout,
                fields,
            })
            .map(|event| Item::Upsert { event, stamp: None })
        })
    }
}

/// Reads one CSV record into `record` and parses it with `parse`; a
/// record that is not UTF-8 is a bad row, other read errors are fatal.
pub(crate) fn next_csv_row<R: Read>(
    csv: &mut csv::Reader<R>,
    record: &mut csv::ByteRecord,
    parse: impl FnOnce(&[&str]) -> Result<Item>,
) -> Result<Option<Row>> {
    match csv.read_byte_record(record) {
        Ok(false) => Ok(None),
        Ok(true) => {
            let line = record.position().map_or(0, |p| p.line());
            let fields: std::result::Result<Vec<&str>, _> =
                record.iter().map(std::str::from_utf8).collect();
            let item = match &fields {
                Ok(f) => parse(f),
                Err(_) => Err(Error::invalid("-", "not UTF-8")),
            };
            let raw = match item {
                Ok(_) => Vec::new(),
                Err(_) => record
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect(),
            };
            Ok(Some(Row {
                line,
                fields: raw,
                item,
                id: None,
            }))
        }
        Err(e) => Err(Error::invalid("-", format!("unreadable CSV: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_damage() {
        assert!(date_added("20151027220000").is_ok());
        assert!(date_added("20151027").is_ok());
        let e = date_added("2.02E+13").unwrap_err().to_string();
        assert!(e.contains("spreadsheet"), "{e}");
        assert!(date_added("2015102722").is_err());
        assert!(day("SQLDATE", "20150230").is_err());
    }

    #[test]
    fn sources_from_urls_and_names() {
        let t = TimePoint::parse("2019-01-21").unwrap();
        let s = source("https://www.example.com/a/b?c", t);
        assert_eq!(s.name, "example.com");
        let s = source("BBC Monitoring", t);
        assert_eq!((s.name.as_str(), s.url), ("BBC Monitoring", None));
    }

    #[test]
    fn ids_are_stable() {
        assert_eq!(
            gdelt_id(410412347).to_string(),
            Uuid::new_v5(&GDELT_NAMESPACE, b"410412347").to_string()
        );
        assert_eq!(
            GDELT_NAMESPACE,
            Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                b"https://github.com/annals/annals/import/gdelt"
            )
        );
    }
}
