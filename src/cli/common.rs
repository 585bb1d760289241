//! What every command shares: the CLI's error type, the global flags,
//! the query filters and the point to read at as arguments, ids and the
//! damage exit code. The HTTP server shares the error type and filters.

use std::io::Write;
use std::path::PathBuf;

use annals::{Annals, AsOf, At, Error, Filters, Query, ViewKind};
use uuid::Uuid;

use super::output::{self, Format};

/// Errors of the CLI: the library's, and output failures.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The library's error.
    #[error(transparent)]
    Annals(#[from] Error),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    /// The arguments do not make sense together.
    #[error("{0}")]
    Usage(String),
}

/// The query filters, as the CLI's flags.
#[derive(clap::Args)]
pub struct QueryArgs {
    /// Events concerning this country (repeat for any of several).
    #[arg(long = "country")]
    pub countries: Vec<String>,
    /// Events naming this actor in any role (repeatable).
    #[arg(long = "actor")]
    pub actors: Vec<String>,
    /// Events of this kind (repeatable).
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Start of the occurrence range: 2025, 2025-09, 2025-09-10 or RFC 3339.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the occurrence range, inclusive at its precision.
    #[arg(long)]
    pub to: Option<String>,
    /// Only events certainly inside the range (not merely overlapping it).
    #[arg(long)]
    pub within: bool,
    /// Events placed in this box: W,S,E,N in degrees (W > E crosses the
    /// antimeridian).
    #[arg(long, value_name = "W,S,E,N", allow_hyphen_values = true)]
    pub bbox: Option<String>,
    /// Events placed within --radius km of this point.
    #[arg(
        long,
        value_name = "LAT,LON",
        allow_hyphen_values = true,
        requires = "radius"
    )]
    pub near: Option<String>,
    /// The radius around --near, in km.
    #[arg(long, value_name = "KM", requires = "near")]
    pub radius: Option<String>,
    /// Events placed inside the polygons of this GeoJSON file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["bbox", "near"])]
    pub area: Option<PathBuf>,
    /// How a place must relate to the area: point (its point inside, and
    /// no coarser than the area; the default), possible or certain.
    #[arg(long, value_name = "HOW")]
    pub place: Option<String>,
    /// At most this many events.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// The query the filters describe.
pub fn build_query(q: QueryArgs) -> Result<Query, Error> {
    let area = match &q.area {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| Error::Invalid {
            at: "--area".into(),
            field: "area".into(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?),
        None => None,
    };
    Filters {
        countries: q.countries,
        actors: q.actors,
        kinds: q.kinds,
        from: q.from,
        to: q.to,
        within: q.within,
        bbox: q.bbox,
        near: q.near,
        radius_km: q.radius,
        area,
        place: q.place,
        limit: q.limit,
    }
    .to_query()
}

/// What every command gets besides its own arguments: the global flags.
pub struct Ctx {
    /// The database folder (`--db`).
    pub db: PathBuf,
    /// `--format`, whose meaning depends on the command.
    pub format: Option<FormatArg>,
}

impl Ctx {
    /// Opens the existing database.
    pub fn open(&self) -> Result<Annals, Error> {
        Annals::builder(&self.db).create(false).open()
    }

    /// The output format of a command that prints data; checked before
    /// the command does anything, so that a bad flag changes nothing.
    pub fn output(&self) -> Result<Format, CliError> {
        match self.format {
            None | Some(FormatArg::Table) => Ok(Format::Table),
            Some(FormatArg::Jsonl) => Ok(Format::Jsonl),
            Some(FormatArg::Json) => Ok(Format::Json),
            Some(other) => Err(CliError::Usage(format!(
                "--format {} applies to import or export; output formats are table, jsonl, json",
                other.name()
            ))),
        }
    }

    /// `--format`'s name, or "" when absent: a file format for import,
    /// export and `changes --out`.
    pub fn format_name(&self) -> &'static str {
        self.format.map_or("", FormatArg::name)
    }
}

/// Every value of `--format`; which ones apply depends on the command.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
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
    Geoparquet,
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
            FormatArg::Geoparquet => "geoparquet",
        }
    }
}

/// Where to read: a branch, and a point in transaction time.
#[derive(clap::Args)]
pub struct AtArgs {
    /// Read this branch instead of main.
    #[arg(long)]
    pub branch: Option<String>,
    /// Read as of this seq or RFC 3339 time (what was known then).
    #[arg(long)]
    pub as_of: Option<String>,
}

impl AtArgs {
    /// The library's [`At`].
    pub fn at(&self) -> Result<At, Error> {
        Ok(At {
            branch: self.branch.clone(),
            as_of: self.as_of.as_deref().map(str::parse::<AsOf>).transpose()?,
        })
    }
}

/// The built-in views, as the CLI names them.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[allow(clippy::enum_variant_names)] // the names are the CLI's words
pub enum ViewName {
    ByCountry,
    ByActor,
    ByDate,
    ByPlace,
}

impl ViewName {
    /// The library's [`ViewKind`]; `granularity` applies to by-date
    /// (default month) and by-place (default all), `level` to by-place.
    pub fn kind(self, granularity: Option<&str>, level: &str) -> Result<ViewKind, Error> {
        Ok(match self {
            ViewName::ByCountry => ViewKind::ByCountry,
            ViewName::ByActor => ViewKind::ByActor,
            ViewName::ByDate => ViewKind::ByDate(granularity.unwrap_or("month").parse()?),
            ViewName::ByPlace => ViewKind::ByPlace(
                annals::PlaceLevel::parse(level)?,
                annals::place_granularity(granularity.unwrap_or("all"))?,
            ),
        })
    }
}

/// An event id given as an argument.
pub fn parse_id(s: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(s.trim()).map_err(|e| Error::Invalid {
        at: "arguments".into(),
        field: "id".into(),
        reason: format!("`{s}` is not a UUID ({e})"),
    })
}

/// Exit code when `verify` or `prove` finds damage.
pub const EXIT_DAMAGE: u8 = 3;

/// Reports damage found by `verify` or `prove`: the result object on
/// stdout, the message on stderr, exit code 3.
pub fn damage(out: &mut dyn Write, format: Format, e: Error) -> Result<u8, CliError> {
    output::print_object(out, format, &e.damage_json())?;
    match &e {
        Error::Corruption { seq, reason } => {
            eprintln!("annals: damage found at seq {seq}: {reason}")
        }
        other => eprintln!("annals: damage found: {other}"),
    }
    Ok(EXIT_DAMAGE)
}

/// Writes a file whole or not at all: `write` fills a temporary file
/// beside `path`, which then replaces it once synced.
pub fn write_file(
    path: &std::path::Path,
    write: impl FnOnce(&std::fs::File) -> Result<u64, Error>,
) -> Result<u64, Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let io = |e: std::io::Error| Error::Io {
        path: path.into(),
        source: e,
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    let n = write(tmp.as_file())?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(n)
}
