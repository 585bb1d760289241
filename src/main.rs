//! `annals`: the command line over the annals library. A thin layer: it
//! parses arguments, reads input files and prints; the library does the rest.

mod cli;

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use annals::{
    Against, Annals, AsOf, At, Error, Event, Granularity, MergeOptions, OnConflict, Op, ViewKind,
};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use uuid::Uuid;

use cli::common::{build_query, CliError, QueryArgs};
use cli::output::{self, Format};

/// An embeddable, event-sourced timeline database.
#[derive(Parser)]
#[command(name = "annals", version, about)]
struct Cli {
    /// The database folder.
    #[arg(long, global = true, env = "ANNALS_DB", default_value = "annals.db")]
    db: PathBuf,
    /// Output format of commands that print data (table, jsonl, json); for
    /// `import` the input's format (jsonl, gdelt, acled, acled-deletions,
    /// ucdp-ged, polecat);
    /// for `export` the file's (jsonl, csv, parquet).
    #[arg(long, global = true, value_enum)]
    format: Option<FormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Walk through views, time and corrections on the demo scenario,
    /// leaving the demo database behind (replaced on each run) to explore
    /// or serve.
    Demo {
        /// Where to leave the demo database.
        #[arg(long, default_value = "annals-demo.db")]
        out: PathBuf,
    },
    /// Serve the database over HTTP: a JSON API, a live feed (Server-Sent
    /// Events) and a timeline page at `/` (docs/http.md).
    #[cfg(feature = "serve")]
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: std::net::SocketAddr,
        /// File whose first line is the bearer token that writes need.
        #[arg(long, conflicts_with = "read_only")]
        token_file: Option<PathBuf>,
        /// Refuse every write.
        #[arg(long)]
        read_only: bool,
        /// Largest request body accepted, in bytes.
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        max_body_bytes: usize,
        /// Connections served at once; more wait to be accepted.
        #[arg(long, default_value_t = 256)]
        max_connections: usize,
    },
    /// Create a database.
    Init,
    /// Append JSON Lines events atomically (all or nothing).
    Append {
        /// File of JSON Lines, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// Fail unless the log's head is at this seq.
        #[arg(long)]
        expect_seq: Option<u64>,
        /// Append to this branch instead of main.
        #[arg(long)]
        branch: Option<String>,
    },
    /// Import files (plain, .gz, or a .zip of one file) in batches:
    /// new events are appended, changed ones corrected, identical ones
    /// skipped, so a re-run or an updated export adds only what changed.
    Import {
        /// The files; `-` for standard input.
        #[arg(required = true)]
        files: Vec<String>,
        /// Skip invalid rows instead of stopping at the first one.
        #[arg(long)]
        skip_invalid: bool,
        /// With --skip-invalid: write rejected rows, with line and reason,
        /// to this JSON Lines file (default: standard error).
        #[arg(long, requires = "skip_invalid")]
        rejects: Option<PathBuf>,
        /// Rows per committed batch.
        #[arg(long, default_value_t = annals::DEFAULT_BATCH_ROWS)]
        batch: usize,
        /// The files are a full release (ACLED, UCDP GED, POLECAT):
        /// afterwards, retract every event of the dataset they do not hold.
        #[arg(long)]
        retract_missing: bool,
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
    /// Append a complete new version of an event.
    Correct {
        /// The event's id.
        id: String,
        /// File holding the new version as one JSON object, or `-`.
        #[arg(default_value = "-")]
        file: String,
        /// Correct on this branch instead of main.
        #[arg(long)]
        branch: Option<String>,
    },
    /// Retract an event.
    Retract {
        /// The event's id.
        id: String,
        /// Why the event is retracted.
        #[arg(long)]
        reason: String,
        /// Retract on this branch instead of main.
        #[arg(long)]
        branch: Option<String>,
    },
    /// Erase an event's payload from the whole database (every version,
    /// branch, view and file), keeping the chain verifiable. Needs the
    /// database to itself.
    Excise {
        /// The event's id.
        #[arg(required_unless_present = "abandon")]
        id: Option<String>,
        /// Why (kept in the database and shown by `history`).
        #[arg(long, required_unless_present = "abandon")]
        reason: Option<String>,
        /// Give up an interrupted excision that cannot finish, returning
        /// the database to its state before it (the event is not excised).
        #[arg(long, conflicts_with_all = ["id", "reason"])]
        abandon: bool,
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
    /// Publish the log into a table format other engines read.
    #[command(subcommand)]
    Publish(PublishCommand),
    /// Print a view.
    View {
        /// Which view.
        #[arg(value_enum)]
        view: ViewName,
        /// Bucket size of the by-date view.
        #[arg(long, default_value = "month")]
        granularity: String,
        #[command(flatten)]
        at: AtArgs,
    },
    /// Create, list or drop what-if branches.
    #[command(subcommand)]
    Branch(BranchCommand),
    /// Print the rows of a view that differ between a branch and main.
    Diff {
        /// The branch.
        branch: String,
        /// Which view to compare.
        #[arg(long, value_enum, default_value = "by-country")]
        view: ViewName,
        /// Bucket size when comparing the by-date view.
        #[arg(long, default_value = "month")]
        granularity: String,
        /// Compare with main as of the branch's base, or at main's head.
        #[arg(long, value_enum, default_value = "base")]
        against: AgainstArg,
        /// List the events that differ (added, removed, changed fields)
        /// instead of view rows.
        #[arg(long)]
        events: bool,
    },
    /// Merge a branch into main (or another branch): three-way by event
    /// id against the branch's base, one atomic batch on the target.
    /// Conflicts (events changed on both sides) are listed and, by
    /// default, nothing is written.
    Merge {
        /// The branch to merge.
        branch: String,
        /// The branch to merge into (default: main).
        #[arg(long)]
        into: Option<String>,
        /// Print what the merge would do, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Refuse on conflicts, or let the branch's or the target's version win.
        #[arg(long, value_enum, default_value = "fail")]
        on_conflict: OnConflictArg,
    },
    /// Rebuild the index and views from the log.
    Rebuild,
    /// Print the seq and chain hash of the last entry.
    Head,
    /// Prove that an entry is unchanged since a head was anchored.
    Prove {
        /// The entry's seq.
        seq: u64,
        /// The anchored head's seq.
        #[arg(long)]
        anchor_seq: u64,
        /// The anchored head's hash (hex, as printed by `head`).
        #[arg(long)]
        anchor_hash: String,
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
    /// Print sizes and counts.
    Stats,
    /// Check the log and compare every view with a replay; exit 3 on damage.
    Verify {
        /// Check the log and index from this seq on (views from the last
        /// snapshot before it): an incremental check.
        #[arg(long, default_value = "1")]
        from: u64,
    },
}

#[derive(Subcommand)]
enum BranchCommand {
    /// Create a branch; it costs nothing proportional to the log.
    Create {
        /// The branch's name (a-z, 0-9, `-`, `_`, `.`).
        name: String,
        /// Branch as of this seq or RFC 3339 time (default: the head).
        #[arg(long)]
        at: Option<String>,
        /// Branch from this branch instead of main.
        #[arg(long)]
        from: Option<String>,
    },
    /// List branches.
    List,
    /// Drop a branch and free its space.
    Drop {
        /// The branch's name.
        name: String,
    },
}

/// `--on-conflict` of `merge`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnConflictArg {
    Fail,
    Branch,
    Target,
}

/// Every value of `--format`; which ones apply depends on the command.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    Table,
    Jsonl,
    Json,
    Gdelt,
    Acled,
    AcledDeletions,
    UcdpGed,
    Polecat,
    Csv,
    Parquet,
}

impl FormatArg {
    fn name(self) -> &'static str {
        match self {
            FormatArg::Table => "table",
            FormatArg::Jsonl => "jsonl",
            FormatArg::Json => "json",
            FormatArg::Gdelt => "gdelt",
            FormatArg::Acled => "acled",
            FormatArg::AcledDeletions => "acled-deletions",
            FormatArg::UcdpGed => "ucdp-ged",
            FormatArg::Polecat => "polecat",
            FormatArg::Csv => "csv",
            FormatArg::Parquet => "parquet",
        }
    }

    /// The output format of a command that prints data.
    fn output(f: Option<FormatArg>) -> Result<Format, CliError> {
        match f {
            None | Some(FormatArg::Table) => Ok(Format::Table),
            Some(FormatArg::Jsonl) => Ok(Format::Jsonl),
            Some(FormatArg::Json) => Ok(Format::Json),
            Some(other) => Err(CliError::Usage(format!(
                "--format {} applies to import or export; output formats are table, jsonl, json",
                other.name()
            ))),
        }
    }
}

#[derive(Subcommand)]
enum PublishCommand {
    /// Publish main (or a branch's own entries) as a Delta Lake table,
    /// one commit per batch, exactly once (needs the `delta` feature).
    Delta {
        /// The table's folder (created if needed).
        #[arg(long)]
        to: PathBuf,
        /// Publish this branch's own entries instead of main.
        #[arg(long)]
        branch: Option<String>,
        /// Keep publishing as new batches land, until interrupted.
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AgainstArg {
    Base,
    Head,
}

/// Where to read: a branch, and a point in transaction time.
#[derive(clap::Args)]
struct AtArgs {
    /// Read this branch instead of main.
    #[arg(long)]
    branch: Option<String>,
    /// Read as of this seq or RFC 3339 time (what was known then).
    #[arg(long)]
    as_of: Option<String>,
}

impl AtArgs {
    fn at(&self) -> Result<At, Error> {
        Ok(At {
            branch: self.branch.clone(),
            as_of: self.as_of.as_deref().map(str::parse::<AsOf>).transpose()?,
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
#[allow(clippy::enum_variant_names)] // the names are the CLI's words
enum ViewName {
    ByCountry,
    ByActor,
    ByDate,
}

/// Exit code when `verify` finds damage.
const EXIT_DAMAGE: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run(cli, &mut out) {
        Ok(code) => ExitCode::from(code),
        // A reader that stops reading (`annals query | head`) is not an error.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(0),
        Err(CliError::Usage(e)) => {
            eprintln!("annals: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            let _ = out.flush();
            eprintln!("annals: {e}");
            ExitCode::from(1)
        }
    }
}

fn open(db: &Path) -> Result<Annals, Error> {
    Annals::builder(db).create(false).open()
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<u8, CliError> {
    let format = match &cli.command {
        Command::Import { .. } | Command::Export { .. } | Command::Changes { out: Some(_), .. } => {
            Format::Jsonl
        }
        _ => FormatArg::output(cli.format)?,
    };
    match cli.command {
        Command::Import {
            files,
            skip_invalid,
            rejects,
            batch,
            retract_missing,
        } => {
            let name = cli.format.map_or("", FormatArg::name);
            let fmt = annals::ImportFormat::parse(name).map_err(|_| {
                CliError::Usage(
                    "import needs --format jsonl, gdelt, acled, acled-deletions, ucdp-ged or polecat"
                        .into(),
                )
            })?;
            if retract_missing && !fmt.has_releases() {
                return Err(CliError::Usage(format!(
                    "--retract-missing: only acled, ucdp-ged and polecat files are full releases, not {name}"
                )));
            }
            let db = open(&cli.db)?;
            let rejects = match (skip_invalid, rejects) {
                (false, _) => None,
                (true, Some(path)) => Some(cli::import::Rejects::file(&path)?),
                (true, None) => Some(cli::import::Rejects::stderr()),
            };
            let opts = cli::import::Options {
                batch,
                retract_missing,
            };
            cli::import::run(&db, fmt, &files, rejects, opts, out)?;
            db.close()?;
        }
        Command::Export {
            out: path,
            filters,
            at,
        } => {
            let name = cli.format.map_or("", FormatArg::name);
            let fmt = annals::ExportFormat::parse(name).map_err(|_| {
                CliError::Usage("export needs --format jsonl, csv or parquet".into())
            })?;
            let db = open(&cli.db)?;
            let (at, query) = (at.at()?, build_query(filters)?);
            let n = cli::import::write_file(&path, |f| db.export(&at, &query, fmt, f))?;
            output::print_object(
                out,
                Format::Jsonl,
                &json!({"out": path.display().to_string(), "format": name, "events": n}),
            )?;
        }
        Command::Demo { out: path } => cli::demo::run(out, format, &path)?,
        #[cfg(feature = "serve")]
        Command::Serve {
            listen,
            token_file,
            read_only,
            max_body_bytes,
            max_connections,
        } => {
            let opts = cli::serve::Options {
                listen,
                token_file,
                read_only,
                max_body_bytes,
                max_connections,
            };
            cli::serve::run(open(&cli.db)?, opts, out)?;
        }
        Command::Init => {
            if Annals::exists(&cli.db) {
                return Err(Error::BadPath {
                    path: cli.db,
                    reason: "a database already exists here".into(),
                }
                .into());
            }
            Annals::open(&cli.db)?.close()?;
            writeln!(out, "created {}", cli.db.display())?;
        }
        Command::Append {
            file,
            expect_seq,
            branch,
        } => {
            let db = open(&cli.db)?;
            let ops = read_events(&file)?.into_iter().map(Op::Append).collect();
            let written = db.write_on(branch.as_deref(), ops, expect_seq)?;
            let rows: Vec<_> = written
                .iter()
                .map(|w| json!({"seq": w.seq, "id": w.id.to_string()}))
                .collect();
            let fmt = if format == Format::Table {
                Format::Jsonl
            } else {
                format
            };
            output::print_json(out, fmt, &rows)?;
            db.close()?;
        }
        Command::Get { id, at } => {
            let db = open(&cli.db)?;
            let id = parse_id(&id)?;
            match db.reader(&at.at()?)?.get(id)? {
                Some(r) => output::records(out, format, &[r])?,
                None => match db.excision(id)? {
                    Some(x) => {
                        return Err(Error::NotFound {
                            at: format!("event {id}"),
                            what: format!(
                                "the event was excised at {}: {}",
                                annals::format_micros(x.at),
                                x.reason
                            ),
                        }
                        .into())
                    }
                    None => return Err(Error::no_event(id).into()),
                },
            }
        }
        Command::History { id, at } => {
            let db = open(&cli.db)?;
            let id = parse_id(&id)?;
            let versions = db.reader(&at.at()?)?.history(id)?;
            if versions.is_empty() {
                return Err(Error::no_event(id).into());
            }
            output::history(out, format, &versions)?;
        }
        Command::Correct { id, file, branch } => {
            let db = open(&cli.db)?;
            let id = parse_id(&id)?;
            let event = read_one_event(&file, id)?;
            let seq = first_seq(db.write_on(branch.as_deref(), vec![Op::Correct(event)], None)?);
            output::print_object(out, format, &json!({"seq": seq, "id": id.to_string()}))?;
            db.close()?;
        }
        Command::Retract { id, reason, branch } => {
            let db = open(&cli.db)?;
            let id = parse_id(&id)?;
            let op = Op::Retract { id, reason };
            let seq = first_seq(db.write_on(branch.as_deref(), vec![op], None)?);
            output::print_object(out, format, &json!({"seq": seq, "id": id.to_string()}))?;
            db.close()?;
        }
        Command::Excise {
            id,
            reason,
            abandon,
        } => {
            if abandon {
                let id = Annals::abandon_excision(&cli.db)?;
                let id = id.map(|id| id.to_string());
                output::print_object(out, format, &json!({"abandoned": id}))?;
                return Ok(0);
            }
            let id = parse_id(id.as_deref().unwrap_or_default())?;
            let done = Annals::excise(&cli.db, id, reason.as_deref().unwrap_or_default())?;
            output::print_object(out, format, &done.to_json())?;
        }
        Command::Query { filters, at } => {
            let db = open(&cli.db)?;
            let records = db.reader(&at.at()?)?.query(&build_query(filters)?)?;
            output::records(out, format, &records)?;
        }
        Command::Changes {
            since,
            until,
            branch,
            summary,
            out: path,
            filters,
        } => {
            let db = open(&cli.db)?;
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
            if let Some(path) = path {
                let name = cli.format.map_or("", FormatArg::name);
                let fmt = annals::ExportFormat::parse(name).map_err(|_| {
                    CliError::Usage("changes --out needs --format jsonl, csv or parquet".into())
                })?;
                let n = cli::import::write_file(&path, |f| {
                    db.export_changes(&at, since, &query, fmt, f)
                })?;
                output::print_object(
                    out,
                    Format::Jsonl,
                    &json!({"out": path.display().to_string(), "format": name, "changes": n}),
                )?;
                return Ok(0);
            }
            let rows = db.reader(&at)?.changes_since(since, &query)?;
            if summary {
                output::change_summary(out, format, &rows)?;
            } else {
                output::changes(out, format, &rows)?;
            }
        }
        Command::Sources {
            filters,
            granularity,
            at,
        } => {
            let db = open(&cli.db)?;
            let g: Granularity = granularity.parse()?;
            let rows = db
                .reader(&at.at()?)?
                .by_dataset(&build_query(filters)?, g)?;
            output::by_dataset(out, format, &rows)?;
        }
        Command::Publish(PublishCommand::Delta { to, branch, follow }) => {
            publish_delta(&cli.db, &to, branch.as_deref(), follow, format, out)?;
        }
        Command::View {
            view,
            granularity,
            at,
        } => {
            let db = open(&cli.db)?;
            let reader = db.reader(&at.at()?)?;
            match view {
                ViewName::ByCountry => output::by_country(out, format, &reader.by_country()?)?,
                ViewName::ByActor => output::by_actor(out, format, &reader.by_actor()?)?,
                ViewName::ByDate => {
                    let g: Granularity = granularity.parse()?;
                    output::by_date(out, format, &reader.by_date(g)?)?
                }
            }
        }
        Command::Branch(cmd) => {
            let db = open(&cli.db)?;
            match cmd {
                BranchCommand::Create { name, at, from } => {
                    let at = at.as_deref().map(str::parse::<AsOf>).transpose()?;
                    let info = db.create_branch(&name, from.as_deref(), at)?;
                    output::branches(out, format, &[info])?;
                }
                BranchCommand::List => output::branches(out, format, &db.branches())?,
                BranchCommand::Drop { name } => {
                    db.drop_branch(&name)?;
                    output::print_object(out, format, &json!({"dropped": name}))?;
                }
            }
            db.close()?;
        }
        Command::Diff {
            branch,
            view,
            granularity,
            against,
            events,
        } => {
            let db = open(&cli.db)?;
            let against = match against {
                AgainstArg::Base => Against::Base,
                AgainstArg::Head => Against::Head,
            };
            if events {
                output::event_diff(out, format, &db.diff_events(&branch, against)?)?;
                return Ok(0);
            }
            let kind = match view {
                ViewName::ByCountry => ViewKind::ByCountry,
                ViewName::ByActor => ViewKind::ByActor,
                ViewName::ByDate => ViewKind::ByDate(granularity.parse()?),
            };
            output::diff(out, format, &db.diff(&branch, kind, against)?)?;
        }
        Command::Merge {
            branch,
            into,
            dry_run,
            on_conflict,
        } => {
            let db = open(&cli.db)?;
            let on_conflict = match on_conflict {
                OnConflictArg::Fail => OnConflict::Fail,
                OnConflictArg::Branch => OnConflict::Branch,
                OnConflictArg::Target => OnConflict::Target,
            };
            let opts = MergeOptions {
                into,
                dry_run,
                on_conflict,
            };
            match db.merge(&branch, &opts) {
                Ok(report) => output::merge(out, format, &report)?,
                Err(e @ Error::Conflict { .. }) if on_conflict == OnConflict::Fail => {
                    // Show what conflicts, in the dry run's form, then fail.
                    let plan = db.merge(
                        &branch,
                        &MergeOptions {
                            dry_run: true,
                            ..opts
                        },
                    )?;
                    output::merge(out, format, &plan)?;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
            db.close()?;
        }
        Command::Rebuild => {
            let db = open(&cli.db)?;
            db.rebuild()?;
            let head = db.head();
            output::print_object(out, format, &json!({"rebuilt": true, "seq": head.seq}))?;
        }
        Command::Head => {
            let db = open(&cli.db)?;
            let head = db.head();
            output::print_object(
                out,
                format,
                &json!({"seq": head.seq, "hash": head.hash_hex()}),
            )?;
        }
        Command::Prove {
            seq,
            anchor_seq,
            anchor_hash,
        } => {
            let db = open(&cli.db)?;
            let hash = annals::parse_hash(&anchor_hash).map_err(|e| e.at("arguments"))?;
            let anchor = annals::Head {
                seq: anchor_seq,
                hash,
                recorded_at: 0,
            };
            return match db.prove(seq, anchor) {
                Ok(h) => {
                    output::print_object(
                        out,
                        format,
                        &json!({"ok": true, "seq": seq, "hash": annals::hex(&h)}),
                    )?;
                    Ok(0)
                }
                Err(e) if e.is_damage() => damage(out, format, e),
                Err(e) => Err(e.into()),
            };
        }
        Command::Stats => {
            let db = open(&cli.db)?;
            let stats = serde_json::to_value(db.stats()?).unwrap_or_default();
            output::print_object(out, format, &stats)?;
        }
        Command::Verify { from } => {
            let db = match open(&cli.db) {
                Ok(db) => db,
                Err(e) if e.is_damage() => return damage(out, format, e),
                Err(e) => return Err(e.into()),
            };
            return match db.verify_from(from) {
                Ok(r) => {
                    output::print_object(out, format, &r.to_json())?;
                    Ok(0)
                }
                Err(e) if e.is_damage() => damage(out, format, e),
                Err(e) => Err(e.into()),
            };
        }
    }
    Ok(0)
}

/// Reports damage found by `verify` or `prove`: the result object on
/// stdout, the message on stderr, exit code 3.
fn damage(out: &mut dyn Write, format: Format, e: Error) -> Result<u8, CliError> {
    output::print_object(out, format, &e.damage_json())?;
    match &e {
        Error::Corruption { seq, reason } => {
            eprintln!("annals: damage found at seq {seq}: {reason}")
        }
        other => eprintln!("annals: damage found: {other}"),
    }
    Ok(EXIT_DAMAGE)
}

/// Writes a batch to main or to a branch.
fn first_seq(written: Vec<annals::Written>) -> u64 {
    written.first().map_or(0, |w| w.seq)
}

fn parse_id(s: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(s.trim()).map_err(|e| Error::Invalid {
        at: "arguments".into(),
        field: "id".into(),
        reason: format!("`{s}` is not a UUID ({e})"),
    })
}

/// The name used in error messages for an input file.
fn input_name(file: &str) -> String {
    if file == "-" {
        "stdin".into()
    } else {
        file.to_string()
    }
}

fn open_input(file: &str) -> Result<Box<dyn BufRead>, Error> {
    if file == "-" {
        return Ok(Box::new(std::io::BufReader::new(std::io::stdin())));
    }
    let f = std::fs::File::open(file).map_err(|e| Error::Io {
        path: file.into(),
        source: e,
    })?;
    Ok(Box::new(std::io::BufReader::new(f)))
}

/// Reads and validates every line of a JSON Lines input before anything is
/// written: a bad line fails the whole batch.
fn read_events(file: &str) -> Result<Vec<Event>, Error> {
    annals::read_events(&mut *open_input(file)?, &input_name(file))
}

/// Reads one event (a JSON object, possibly over several lines) for
/// `correct`; its id, if given, must be `id`.
fn read_one_event(file: &str, id: Uuid) -> Result<Event, Error> {
    let name = input_name(file);
    let mut bytes = Vec::new();
    open_input(file)?
        .take(annals::MAX_LINE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Io {
            path: name.clone().into(),
            source: e,
        })?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Invalid {
        at: name.clone(),
        field: "-".into(),
        reason: format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Invalid {
        at: format!("{name} line {}", e.line()),
        field: "-".into(),
        reason: format!("malformed JSON at column {}: {e}", e.column()),
    })?;
    annals::correction_event(value, id, &name)
}

/// `publish delta`: one summary line per run that wrote something. With
/// `--follow`, the database is opened for each run and closed between
/// runs (once a second), so that imports and appends from other processes
/// can take it in between: annals has one writer process at a time.
#[cfg(feature = "delta")]
fn publish_delta(
    db: &Path,
    to: &Path,
    branch: Option<&str>,
    follow: bool,
    format: Format,
    out: &mut dyn std::io::Write,
) -> Result<(), CliError> {
    let run = |out: &mut dyn std::io::Write, quiet: bool| -> Result<(), CliError> {
        let db = open(db)?;
        let report = db.publish_delta(to, branch)?;
        db.close()?;
        if !quiet || report.commits > 0 {
            output::print_object(out, format, &report.to_json())?;
            out.flush()?;
        }
        Ok(())
    };
    if !follow {
        return run(out, false);
    }
    loop {
        match run(out, true) {
            // Another process is writing: publish what it wrote next time.
            Err(CliError::Annals(Error::InUse { .. })) => {}
            other => other?,
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[cfg(not(feature = "delta"))]
fn publish_delta(
    _db: &Path,
    _to: &Path,
    _branch: Option<&str>,
    _follow: bool,
    _format: Format,
    _out: &mut dyn std::io::Write,
) -> Result<(), CliError> {
    Err(CliError::Usage(
        "publish delta needs annals built with the `delta` feature: cargo install --features delta (or cargo run --features delta -- ...)".into(),
    ))
}
