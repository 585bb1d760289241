//! The commands that write events: `init`, `append`, `correct`,
//! `retract` and `excise`. Input is read and checked whole before
//! anything is written.

use std::io::{BufRead, Read, Write};

use annals::{Annals, Error, Event, Op};
use serde_json::json;

use super::common::{parse_id, CliError, Ctx};
use super::output::{self, Format};

/// The commands of this family, flattened into the top level.
#[derive(clap::Subcommand)]
pub enum Command {
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
}

/// Runs one command of the family.
pub fn run(cmd: Command, ctx: &Ctx, out: &mut dyn Write) -> Result<u8, CliError> {
    let format = ctx.output()?;
    match cmd {
        Command::Init => {
            if Annals::exists(&ctx.db) {
                return Err(Error::BadPath {
                    path: ctx.db.clone(),
                    reason: "a database already exists here".into(),
                }
                .into());
            }
            Annals::open(&ctx.db)?.close()?;
            writeln!(out, "created {}", ctx.db.display())?;
        }
        Command::Append {
            file,
            expect_seq,
            branch,
        } => {
            let db = ctx.open()?;
            let ops = read_events(&file)?.into_iter().map(Op::Append).collect();
            let written = db.write_on(branch.as_deref(), ops, expect_seq)?;
            let rows: Vec<_> = written.iter().map(annals::Written::to_json).collect();
            // One row per event: a table of a batch is its JSON Lines.
            let fmt = if format == Format::Table {
                Format::Jsonl
            } else {
                format
            };
            output::print_json(out, fmt, &rows)?;
            db.close()?;
        }
        Command::Correct { id, file, branch } => {
            let db = ctx.open()?;
            let id = parse_id(&id)?;
            let event = read_one_event(&file, id)?;
            let written = db.write_on(branch.as_deref(), vec![Op::Correct(event)], None)?;
            print_one(out, format, &written)?;
            db.close()?;
        }
        Command::Retract { id, reason, branch } => {
            let db = ctx.open()?;
            let id = parse_id(&id)?;
            let written = db.write_on(branch.as_deref(), vec![Op::Retract { id, reason }], None)?;
            print_one(out, format, &written)?;
            db.close()?;
        }
        Command::Excise {
            id,
            reason,
            abandon,
        } => {
            if abandon {
                let id = Annals::abandon_excision(&ctx.db)?;
                let id = id.map(|id| id.to_string());
                output::print_object(out, format, &json!({"abandoned": id}))?;
                return Ok(0);
            }
            let id = parse_id(id.as_deref().unwrap_or_default())?;
            let done = Annals::excise(&ctx.db, id, reason.as_deref().unwrap_or_default())?;
            output::print_object(out, format, &done.to_json())?;
        }
    }
    Ok(0)
}

/// Prints the one entry a correction or retraction wrote.
fn print_one(
    out: &mut dyn Write,
    format: Format,
    written: &[annals::Written],
) -> Result<(), CliError> {
    let row = written
        .first()
        .map(annals::Written::to_json)
        .unwrap_or_default();
    output::print_object(out, format, &row)?;
    Ok(())
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
fn read_one_event(file: &str, id: uuid::Uuid) -> Result<Event, Error> {
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
