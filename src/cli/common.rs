//! What the command line and the HTTP server share: the CLI's error type
//! and the query filters as arguments.

use annals::{Error, Filters, Query};

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
    /// At most this many events.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// The query the filters describe.
pub fn build_query(q: QueryArgs) -> Result<Query, Error> {
    Filters {
        countries: q.countries,
        actors: q.actors,
        kinds: q.kinds,
        from: q.from,
        to: q.to,
        within: q.within,
        limit: q.limit,
    }
    .to_query()
}
