//! The commands that read: `get`, `history`, `query`, `sources`, `view`,
//! `changes` and `export`, each at a branch and a point in transaction
//! time.

use std::io::Write;
use std::path::PathBuf;

use annals::{AsOf, At, Error, Granularity};
use serde_json::json;

use super::common::{
    build_query, parse_id, write_file, AtArgs, CliError, Ctx, QueryArgs, ViewName,
};
use super::output::{self, Format};

/// The commands of this family, flattened into the top level.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Print an event's current state.
    Get {
        /// The event's id.
        id: String,
        #[command(flatten)]
        at: AtArgs,
    },
    /// Print every version of an event.
    History {
        /// The event's id.
        id: String,
        #[command(flatten)]
        at: AtArgs,
    },
    /// List current events, ordered by occurrence start then seq.
    Query {
        #[command(flatten)]
        filters: QueryArgs,
        #[command(flatten)]
        at: AtArgs,
    },
    /// Count the matching events per dataset (GDELT, ACLED, UCDP GED,
    /// POLECAT, hand-entered) side by side, per bucket of occurrence time.
    Sources {
        #[command(flatten)]
        filters: QueryArgs,
        /// Bucket size: day, month or year.
        #[arg(long, default_value = "month")]
        granularity: String,
        #[command(flatten)]
        at: AtArgs,
    },
    /// Print a view.
    View {
        /// Which view.
        #[arg(value_enum)]
        view: ViewName,
        /// Bucket size of the by-date view (day, month, year; default
        /// month) or the by-place view (all, month, year; default all).
        #[arg(long)]
        granularity: Option<String>,
        /// by-place: count by PRIO-GRID cell (`cell`, 0.5 degrees) or by
        /// the ADMIN1 unit sources name (`admin1`).
        #[arg(long, default_value = "cell")]
        level: String,
        /// by-country: only this country's row (read alone, however large
        /// the view).
        #[arg(long, value_name = "CC")]
        country: Option<String>,
        /// by-country --country CC: list all of the country's actors with
        /// their counts (a row lists the first 50), a page at a time with
        /// --after and --limit.
        #[arg(long)]
        actors: bool,
        /// by-actor: only this actor's row.
        #[arg(long, value_name = "NAME")]
        actor: Option<String>,
        /// Paging (by-actor rows, a country's actors): start after this
        /// actor (the last one of the previous page).
        #[arg(long, value_name = "NAME")]
        after: Option<String>,
        /// Paging: at most this many rows.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[command(flatten)]
        at: AtArgs,
    },
    /// List the events that differ between two points of the log (created,
    /// corrected, retracted), each with its version before and after
    Changes {
        /// The earlier point: a seq, or an RFC 3339 time (the last entry
        /// recorded by then).
        #[arg(long)]
        since: String,
        /// The later point (default: the head).
        #[arg(long)]
        until: Option<String>,
        /// Read this branch instead of main.
        #[arg(long)]
        branch: Option<String>,
        /// Print counts per kind of change, country and actor instead of rows.
        #[arg(long)]
        summary: bool,
        /// Write the changes to this file instead (with --format jsonl,
        /// csv or parquet; replaced whole, only once complete).
        #[arg(long, conflicts_with = "summary")]
        out: Option<PathBuf>,
        #[command(flatten)]
        filters: QueryArgs,
    },
    /// Export the current events matching the filters to a file.
    Export {
        /// The file to write (replaced whole, only once complete).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        filters: QueryArgs,
        #[command(flatten)]
        at: AtArgs,
    },
}

/// Runs one command of the family.
pub fn run(cmd: Command, ctx: &Ctx, out: &mut dyn Write) -> Result<u8, CliError> {
    match cmd {
        Command::Export {
            out: path,
            filters,
            at,
        } => {
            let fmt = export_format(ctx, "export")?;
            let db = ctx.open()?;
            let (at, query) = (at.at()?, build_query(filters)?);
            let n = write_file(&path, |f| db.export(&at, &query, fmt, f))?;
            let summary = json!({"out": path.display().to_string(), "format": ctx.format_name(), "events": n});
            output::print_object(out, Format::Jsonl, &summary)?;
        }
        Command::Changes {
            since,
            until,
            branch,
            summary,
            out: path,
            filters,
        } => {
            let file_format = path
                .as_ref()
                .map(|_| export_format(ctx, "changes --out"))
                .transpose()?;
            let format = match file_format {
                Some(_) => Format::Jsonl,
                None => ctx.output()?,
            };
            let db = ctx.open()?;
            let since = db
                .reader(&At {
                    branch: branch.clone(),
                    as_of: Some(since.parse::<AsOf>().map_err(|e| e.at("--since"))?),
                })?
                .seq();
            let until = until
                .as_deref()
                .map(str::parse::<AsOf>)
                .transpose()
                .map_err(|e| e.at("--until"))?;
            let at = At {
                branch,
                as_of: until,
            };
            let query = build_query(filters)?;
            if let (Some(path), Some(fmt)) = (path, file_format) {
                let n = write_file(&path, |f| db.export_changes(&at, since, &query, fmt, f))?;
                let summary = json!({"out": path.display().to_string(), "format": ctx.format_name(), "changes": n});
                output::print_object(out, format, &summary)?;
                return Ok(0);
            }
            let rows = db.reader(&at)?.changes_since(since, &query)?;
            if summary {
                output::change_summary(out, format, &rows)?;
            } else {
                output::changes(out, format, &rows)?;
            }
        }
        Command::Get { id, at } => {
            let (format, db) = (ctx.output()?, ctx.open()?);
            let id = parse_id(&id)?;
            match db.reader(&at.at()?)?.get(id)? {
                Some(r) => output::records(out, format, &[r])?,
                None => return Err(db.not_found(id)?.into()),
            }
        }
        Command::History { id, at } => {
            let (format, db) = (ctx.output()?, ctx.open()?);
            let id = parse_id(&id)?;
            let versions = db.reader(&at.at()?)?.history(id)?;
            if versions.is_empty() {
                return Err(Error::no_event(id).into());
            }
            output::history(out, format, &versions)?;
        }
        Command::Query { filters, at } => {
            let (format, db) = (ctx.output()?, ctx.open()?);
            let records = db.reader(&at.at()?)?.query(&build_query(filters)?)?;
            output::records(out, format, &records)?;
        }
        Command::Sources {
            filters,
            granularity,
            at,
        } => {
            let (format, db) = (ctx.output()?, ctx.open()?);
            let g: Granularity = granularity.parse()?;
            let reader = db.reader(&at.at()?)?;
            output::by_dataset(out, format, &reader.by_dataset(&build_query(filters)?, g)?)?;
        }
        Command::View {
            view,
            granularity,
            level,
            country,
            actors,
            actor,
            after,
            limit,
            at,
        } => {
            let (format, db) = (ctx.output()?, ctx.open()?);
            let usage = |what: &str| Err(CliError::Usage(format!("view: {what}")));
            match (view, &country, actors, &actor) {
                (ViewName::ByCountry | ViewName::ByDate | ViewName::ByPlace, _, _, Some(_)) => {
                    return usage("--actor goes with by-actor");
                }
                (ViewName::ByActor | ViewName::ByDate | ViewName::ByPlace, Some(_), _, _) => {
                    return usage("--country goes with by-country");
                }
                (_, None, true, _) => return usage("--actors needs --country CC"),
                _ => {}
            }
            let paged = view == ViewName::ByActor && actor.is_none() || actors;
            if !paged && (after.is_some() || limit.is_some()) {
                return usage("--after and --limit page the by-actor view or a country's --actors");
            }
            let reader = db.reader(&at.at()?)?;
            let limit = limit.unwrap_or(usize::MAX);
            match view {
                ViewName::ByCountry => match &country {
                    Some(c) if actors => output::country_actors(
                        out,
                        format,
                        &reader.country_actors(c, after.as_deref(), limit)?,
                    )?,
                    Some(c) => {
                        let row: Vec<_> = reader.country(c)?.into_iter().collect();
                        output::by_country(out, format, &row)?
                    }
                    None => output::by_country(out, format, &reader.by_country()?)?,
                },
                ViewName::ByActor => match &actor {
                    Some(a) => {
                        let row: Vec<_> = reader.actor(a)?.into_iter().collect();
                        output::by_actor(out, format, &row)?
                    }
                    None if after.is_some() || limit != usize::MAX => output::by_actor(
                        out,
                        format,
                        &reader.actors_page(after.as_deref(), limit)?,
                    )?,
                    None => output::by_actor(out, format, &reader.by_actor()?)?,
                },
                ViewName::ByDate => {
                    let g: Granularity = granularity.as_deref().unwrap_or("month").parse()?;
                    output::by_date(out, format, &reader.by_date(g)?)?
                }
                ViewName::ByPlace => match view.kind(granularity.as_deref(), &level)? {
                    annals::ViewKind::ByPlace(level, g) => {
                        output::by_place(out, format, &reader.by_place(level, g)?)?
                    }
                    _ => return usage("by-place"),
                },
            }
        }
    }
    Ok(0)
}

/// The file format of `export` or `changes --out`, from `--format`.
fn export_format(ctx: &Ctx, command: &str) -> Result<annals::ExportFormat, CliError> {
    annals::ExportFormat::parse(ctx.format_name()).map_err(|_| {
        CliError::Usage(format!(
            "{command} needs --format jsonl, csv, parquet or geoparquet"
        ))
    })
}
