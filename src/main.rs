//! `annals`: the command line over the annals library. A thin layer: it
//! parses arguments, reads input files and prints; the library does the
//! rest. Each family of commands lives in its own `cli/` module; this
//! file only dispatches.

mod cli;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::common::{CliError, Ctx, FormatArg};

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
    Demo(cli::demo::Args),
    /// Serve the database over HTTP: a JSON API, a live feed (Server-Sent
    /// Events) and a timeline page at `/` (docs/http.md).
    #[cfg(feature = "serve")]
    Serve(cli::serve::Options),
    #[command(flatten)]
    Write(cli::write::Command),
    /// Import files (plain, .gz, or a .zip of one file) in batches:
    /// new events are appended, changed ones corrected, identical ones
    /// skipped, so a re-run or an updated export adds only what changed.
    Import(cli::import::Args),
    #[command(flatten)]
    Read(Box<cli::read::Command>),
    /// Publish the log into a table format other engines read.
    #[command(subcommand)]
    Publish(cli::publish::Command),
    #[command(flatten)]
    Branch(cli::branch::Command),
    #[command(flatten)]
    Check(cli::check::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let ctx = Ctx {
        db: cli.db,
        format: cli.format,
    };
    let code = match cli.command {
        Command::Demo(args) => cli::demo::run(args, &ctx, &mut out),
        #[cfg(feature = "serve")]
        Command::Serve(opts) => cli::serve::run(opts, &ctx, &mut out),
        Command::Write(cmd) => cli::write::run(cmd, &ctx, &mut out),
        Command::Import(args) => cli::import::run(args, &ctx, &mut out),
        Command::Read(cmd) => cli::read::run(*cmd, &ctx, &mut out),
        Command::Publish(cmd) => cli::publish::run(cmd, &ctx, &mut out),
        Command::Branch(cmd) => cli::branch::run(cmd, &ctx, &mut out),
        Command::Check(cmd) => cli::check::run(cmd, &ctx, &mut out),
    };
    match code {
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
