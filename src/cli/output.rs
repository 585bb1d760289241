//! Printing: `table` for people (fits 80 columns), `jsonl` and `json` for
//! programs. The JSON shapes are an API: see `docs/format.md`.

use std::collections::BTreeMap;
use std::io::Write;

use annals::{
    ActorRow, BranchInfo, CountryActor, CountryRow, DatasetRow, DateRow, DiffRow, Record, Version,
};
use serde_json::{json, Value};

/// Output format of every command that prints data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON object per line.
    Jsonl,
    /// One JSON document (an array of rows, or an object).
    Json,
}

const WIDTH: usize = 80;

/// Writes rows as JSON lines or a JSON array.
pub fn print_json(out: &mut dyn Write, format: Format, rows: &[Value]) -> std::io::Result<()> {
    match format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(rows).unwrap_or_default()
        ),
        _ => rows.iter().try_for_each(|r| writeln!(out, "{r}")),
    }
}

/// Writes serializable rows as JSON lines or a JSON array.
pub fn print_rows<T: serde::Serialize>(
    out: &mut dyn Write,
    format: Format,
    rows: &[T],
) -> std::io::Result<()> {
    let v: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or_default())
        .collect();
    print_json(out, format, &v)
}

/// Writes rows as JSON (any format but `table`) or as a table whose cells
/// `cells` gives.
fn rows_or_table<T: serde::Serialize>(
    out: &mut dyn Write,
    format: Format,
    rows: &[T],
    headers: &[&str],
    cells: impl Fn(&T) -> Vec<String>,
) -> std::io::Result<()> {
    if format != Format::Table {
        return print_rows(out, format, rows);
    }
    let table: Vec<Vec<String>> = rows.iter().map(cells).collect();
    print_table(out, headers, &table)
}

/// Writes one object (`head`, `stats`): on one line unless `json`.
pub fn print_object(out: &mut dyn Write, format: Format, v: &Value) -> std::io::Result<()> {
    match format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_default()
        ),
        _ => writeln!(out, "{v}"),
    }
}

/// Writes an aligned table whose last column takes what is left of 80
/// columns, cut with `…`.
pub fn print_table(
    out: &mut dyn Write,
    headers: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let n = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let fixed: usize = widths.iter().take(n.saturating_sub(1)).map(|w| w + 2).sum();
    if let Some(last) = widths.last_mut() {
        *last = (*last).min(WIDTH.saturating_sub(fixed).max(10));
    }
    let line = |cells: Vec<String>| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let cell = cut(cell, *w);
            if i + 1 == n {
                s.push_str(&cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(
        out,
        "{}",
        line(headers.iter().map(|h| h.to_string()).collect())
    )?;
    for row in rows {
        writeln!(out, "{}", line(row.clone()))?;
    }
    if rows.is_empty() {
        writeln!(out, "(no rows)")?;
    }
    Ok(())
}

fn cut(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(w.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// `k=v, k=v` of a count map, largest first.
fn counts(m: &BTreeMap<String, u64>) -> String {
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn span(first: &Option<String>, last: &Option<String>) -> String {
    match (first, last) {
        (Some(f), Some(l)) if f == l => f.clone(),
        (Some(f), Some(l)) => format!("{f}..{l}"),
        _ => String::new(),
    }
}

/// Prints event records.
pub fn records(out: &mut dyn Write, format: Format, records: &[Record]) -> std::io::Result<()> {
    if format != Format::Table {
        let rows: Vec<Value> = records.iter().map(Record::to_json).collect();
        return print_json(out, format, &rows);
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let e = &r.event;
            let what = e.summary.clone().unwrap_or_else(|| {
                e.actors
                    .iter()
                    .map(|a| a.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            let mut seq = r.position.seq.to_string();
            if r.position.corrected_seq.is_some() {
                seq.push('*');
            }
            if r.retracted_seq.is_some() {
                seq.push('x');
            }
            vec![
                seq,
                e.occurred.to_string(),
                e.kind.clone(),
                e.countries.join(","),
                what,
            ]
        })
        .collect();
    print_table(
        out,
        &["SEQ", "OCCURRED", "KIND", "COUNTRIES", "SUMMARY"],
        &rows,
    )
}

/// Prints an event's versions.
pub fn history(out: &mut dyn Write, format: Format, versions: &[Version]) -> std::io::Result<()> {
    if format != Format::Table {
        let rows: Vec<Value> = versions.iter().map(Version::to_json).collect();
        return print_json(out, format, &rows);
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            let what = match (&v.event, &v.reason) {
                (Some(e), _) => format!(
                    "{} {} [{}] {}",
                    e.kind,
                    e.occurred,
                    e.countries.join(","),
                    e.summary.clone().unwrap_or_default()
                ),
                (None, Some(r)) => match v.excised_at {
                    Some(at) => format!("excised {}: {r}", annals::format_micros(at)),
                    None => format!("reason: {r}"),
                },
                _ => String::new(),
            };
            vec![
                v.seq.to_string(),
                annals::format_micros(v.recorded_at)
                    .chars()
                    .take(19)
                    .collect(),
                match &v.origin {
                    Some(o) => format!("{} (merged from {}@{})", v.action, o.branch, o.seq),
                    None => v.action.to_string(),
                },
                what,
            ]
        })
        .collect();
    print_table(out, &["SEQ", "RECORDED_AT", "ACTION", "VERSION"], &rows)
}

/// Prints the by-country view.
pub fn by_country(out: &mut dyn Write, format: Format, rows: &[CountryRow]) -> std::io::Result<()> {
    rows_or_table(
        out,
        format,
        rows,
        &["COUNTRY", "COUNT", "OCCURRED", "BY KIND"],
        |r| {
            vec![
                r.country.clone(),
                r.count.to_string(),
                span(&r.first, &r.last),
                counts(&r.by_kind),
            ]
        },
    )
}

/// Prints a page of a country's actors.
pub fn country_actors(
    out: &mut dyn Write,
    format: Format,
    rows: &[CountryActor],
) -> std::io::Result<()> {
    rows_or_table(out, format, rows, &["ACTOR", "COUNT"], |r| {
        vec![r.actor.clone(), r.count.to_string()]
    })
}

/// Prints the by-actor view.
pub fn by_actor(out: &mut dyn Write, format: Format, rows: &[ActorRow]) -> std::io::Result<()> {
    rows_or_table(
        out,
        format,
        rows,
        &["ACTOR", "COUNT", "COUNTRIES", "BY ROLE"],
        |r| {
            vec![
                r.actor.clone(),
                r.count.to_string(),
                r.countries.join(","),
                counts(&r.by_role),
            ]
        },
    )
}

/// Prints the by-date view.
pub fn by_date(out: &mut dyn Write, format: Format, rows: &[DateRow]) -> std::io::Result<()> {
    rows_or_table(
        out,
        format,
        rows,
        &["BUCKET", "PRECISION", "COUNT", "BY KIND"],
        |r| {
            vec![
                r.bucket.clone(),
                r.precision.name().to_string(),
                r.count.to_string(),
                counts(&r.by_kind),
            ]
        },
    )
}

/// Prints the by-place view.
pub fn by_place(
    out: &mut dyn Write,
    format: Format,
    rows: &[annals::PlaceRow],
) -> std::io::Result<()> {
    rows_or_table(
        out,
        format,
        rows,
        &[
            "AREA",
            "LAT",
            "LON",
            "BUCKET",
            "COUNT",
            "FATALITIES",
            "BY KIND",
            "BY PRECISION",
        ],
        |r| {
            vec![
                r.area.clone(),
                r.lat.map(|x| x.to_string()).unwrap_or_default(),
                r.lon.map(|x| x.to_string()).unwrap_or_default(),
                r.bucket.clone().unwrap_or_else(|| "all".into()),
                r.count.to_string(),
                r.fatalities.map(|f| f.best.to_string()).unwrap_or_default(),
                counts(&r.by_kind),
                counts(&r.by_precision),
            ]
        },
    )
}

/// Prints per-dataset counts: one column per dataset present, then the
/// total.
pub fn by_dataset(out: &mut dyn Write, format: Format, rows: &[DatasetRow]) -> std::io::Result<()> {
    let datasets: std::collections::BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.counts.keys().map(String::as_str))
        .collect();
    let upper: Vec<String> = datasets.iter().map(|d| d.to_uppercase()).collect();
    let mut headers = vec!["BUCKET", "PRECISION"];
    headers.extend(upper.iter().map(String::as_str));
    headers.push("TOTAL");
    rows_or_table(out, format, rows, &headers, |r| {
        let mut cells = vec![r.bucket.clone(), r.precision.to_string()];
        cells.extend(
            datasets
                .iter()
                .map(|d| r.counts.get(*d).copied().unwrap_or(0).to_string()),
        );
        cells.push(r.counts.values().sum::<u64>().to_string());
        cells
    })
}

/// Prints branches.
pub fn branches(out: &mut dyn Write, format: Format, rows: &[BranchInfo]) -> std::io::Result<()> {
    rows_or_table(
        out,
        format,
        rows,
        &["BRANCH", "FROM", "BASE", "HEAD", "OWN", "CREATED"],
        |r| {
            vec![
                r.name.clone(),
                r.parent.clone(),
                r.base_seq.to_string(),
                r.head_seq.to_string(),
                r.entries.to_string(),
                r.created_at.chars().take(19).collect(),
            ]
        },
    )
}

/// Prints the rows of a diff: each side's row (JSON), or in a table each
/// side's count and what else changed.
pub fn diff(out: &mut dyn Write, format: Format, rows: &[DiffRow]) -> std::io::Result<()> {
    if format != Format::Table {
        return print_rows(out, format, rows);
    }
    let count = |v: &Option<Value>| match v {
        Some(v) => v.get("count").map(|c| c.to_string()).unwrap_or_default(),
        None => "-".to_string(),
    };
    let t: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let changed: Vec<String> = match (&r.main, &r.branch) {
                (Some(Value::Object(a)), Some(Value::Object(b))) => a
                    .iter()
                    .filter(|(k, v)| b.get(*k) != Some(*v))
                    .map(|(k, _)| k.clone())
                    .collect(),
                (None, _) => vec!["added".into()],
                _ => vec!["removed".into()],
            };
            vec![
                r.key.clone(),
                count(&r.main),
                count(&r.branch),
                changed.join(", "),
            ]
        })
        .collect();
    print_table(out, &["ROW", "MAIN", "BRANCH", "DIFFERS IN"], &t)
}

/// Prints the events that differ between a branch and its parent.
pub fn event_diff(
    out: &mut dyn Write,
    format: Format,
    rows: &[annals::EventDiff],
) -> std::io::Result<()> {
    if format != Format::Table {
        let rows: Vec<Value> = rows.iter().map(annals::EventDiff::to_json).collect();
        return print_json(out, format, &rows);
    }
    let t: Vec<Vec<String>> = rows
        .iter()
        .map(|d| {
            let shown = d.branch.as_ref().or(d.main.as_ref());
            vec![
                d.kind.name().to_string(),
                d.id.to_string(),
                d.fields.join(","),
                shown
                    .and_then(|r| r.event.summary.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print_table(out, &["DIFF", "ID", "FIELDS", "SUMMARY"], &t)
}

/// Prints the events that changed between two points.
pub fn changes(
    out: &mut dyn Write,
    format: Format,
    rows: &[annals::EventChange],
) -> std::io::Result<()> {
    if format != Format::Table {
        let rows: Vec<Value> = rows.iter().map(annals::EventChange::to_json).collect();
        return print_json(out, format, &rows);
    }
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|c| {
            let shown = c.after.as_ref().or(c.before.as_ref());
            let e = shown.map(|r| &r.event);
            vec![
                c.seq.to_string(),
                c.kind.name().to_string(),
                c.id.to_string(),
                e.map(|e| e.kind.clone()).unwrap_or_default(),
                e.map(|e| e.countries.join(",")).unwrap_or_default(),
            ]
        })
        .collect();
    print_table(out, &["SEQ", "CHANGE", "ID", "KIND", "COUNTRIES"], &rows)
}

/// Prints counts of changed events per kind of change, and per country
/// and actor (of the version after the change, or before a retraction).
pub fn change_summary(
    out: &mut dyn Write,
    format: Format,
    rows: &[annals::EventChange],
) -> std::io::Result<()> {
    use std::collections::BTreeMap;
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    let mut countries: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut actors: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for c in rows {
        let kind = c.kind.name().to_string();
        *total.entry(kind.clone()).or_default() += 1;
        if let Some(r) = c.after.as_ref().or(c.before.as_ref()) {
            for country in &r.event.countries {
                *countries
                    .entry(country.clone())
                    .or_default()
                    .entry(kind.clone())
                    .or_default() += 1;
            }
            for a in &r.event.actors {
                *actors
                    .entry(a.name.clone())
                    .or_default()
                    .entry(kind.clone())
                    .or_default() += 1;
            }
        }
    }
    print_object(
        out,
        format,
        &json!({"changes": total, "by_country": countries, "by_actor": actors}),
    )
}

/// Prints a merge report: a line on what was merged, the changes, and the
/// conflicts with their base, target and branch versions.
pub fn merge(out: &mut dyn Write, format: Format, r: &annals::MergeReport) -> std::io::Result<()> {
    if format != Format::Table {
        return print_object(out, format, &r.to_json());
    }
    let written = r.written.iter().filter(|w| w.new_entry).count();
    writeln!(
        out,
        "{} `{}` into `{}` from base seq {}{}: {} change(s), {} conflict(s){}",
        if r.dry_run { "would merge" } else { "merged" },
        r.branch,
        r.into,
        r.base_seq,
        if r.fast_forward {
            " (fast-forward)"
        } else {
            ""
        },
        r.changes.len(),
        r.conflicts.len(),
        if r.dry_run {
            String::new()
        } else {
            format!(", {written} entries written, head seq {}", r.head.seq)
        },
    )?;
    if !r.changes.is_empty() {
        let rows: Vec<Vec<String>> = r
            .changes
            .iter()
            .map(|c| {
                vec![
                    c.kind.name().to_string(),
                    c.id.to_string(),
                    format!("{}@{}", c.origin.branch, c.origin.seq),
                    if c.resolves_conflict {
                        "branch wins"
                    } else {
                        ""
                    }
                    .to_string(),
                ]
            })
            .collect();
        print_table(out, &["CHANGE", "ID", "FROM", "CONFLICT"], &rows)?;
    }
    if !r.conflicts.is_empty() {
        let version = |rec: &Option<Record>| match rec {
            None => "absent".to_string(),
            Some(rec) if rec.retracted_seq.is_some() => "retracted".to_string(),
            Some(rec) => format!(
                "seq {} {}",
                rec.position.corrected_seq.unwrap_or(rec.position.seq),
                rec.event.summary.clone().unwrap_or_default()
            ),
        };
        let rows: Vec<Vec<String>> = r
            .conflicts
            .iter()
            .map(|c| {
                vec![
                    c.id.to_string(),
                    version(&c.base),
                    version(&c.target),
                    version(&c.branch),
                ]
            })
            .collect();
        writeln!(out, "conflicts:")?;
        print_table(out, &["ID", "BASE", "TARGET", "BRANCH"], &rows)?;
    }
    Ok(())
}
