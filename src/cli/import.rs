//! `import` and `export`: files, a progress bar on a terminal, the rejects
//! file and the summary. The work is the library's ([`Annals::import`],
//! [`Annals::export`]).

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use annals::{Annals, Error, ImportFormat, Rejection};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::common::{CliError, Ctx};

/// The arguments of `annals import`.
#[derive(clap::Args)]
pub struct Args {
    /// The files; `-` for standard input.
    #[arg(required = true)]
    files: Vec<String>,
    /// Skip invalid rows instead of stopping at the first one.
    #[arg(long)]
    skip_invalid: bool,
    /// With --skip-invalid: write rejected rows, with line and reason,
    /// to this JSON Lines file (default: standard error).
    #[arg(long, requires = "skip_invalid")]
    rejects: Option<std::path::PathBuf>,
    /// Rows per committed batch.
    #[arg(long, default_value_t = annals::DEFAULT_BATCH_ROWS)]
    batch: usize,
    /// The files are a full release (ACLED, UCDP GED, POLECAT):
    /// afterwards, retract every event of the dataset they do not hold.
    #[arg(long)]
    retract_missing: bool,
}

/// Runs `annals import`: checks the flags, opens the database, imports.
pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> Result<u8, CliError> {
    let name = ctx.format_name();
    let fmt = ImportFormat::parse(name).map_err(|_| {
        CliError::Usage(
            "import needs --format jsonl, gdelt, acled, acled-deletions, ucdp-ged or polecat"
                .into(),
        )
    })?;
    if args.retract_missing && !fmt.has_releases() {
        return Err(CliError::Usage(format!(
            "--retract-missing: only acled, ucdp-ged and polecat files are full releases, not {name}"
        )));
    }
    let db = ctx.open()?;
    let rejects = match (args.skip_invalid, args.rejects) {
        (false, _) => None,
        (true, Some(path)) => Some(Rejects::file(&path)?),
        (true, None) => Some(Rejects::stderr()),
    };
    let opts = Options {
        batch: args.batch,
        retract_missing: args.retract_missing,
    };
    import(&db, fmt, &args.files, rejects, opts, out)?;
    db.close()?;
    Ok(0)
}

/// Where rejected rows go: a JSON Lines file, or standard error.
struct Rejects {
    out: Box<dyn Write>,
    path: String,
}

impl Rejects {
    /// Rejected rows written to `path` (created or truncated).
    fn file(path: &Path) -> Result<Rejects, Error> {
        let f = File::create(path).map_err(|e| Error::Io {
            path: path.into(),
            source: e,
        })?;
        Ok(Rejects {
            out: Box::new(BufWriter::new(f)),
            path: path.display().to_string(),
        })
    }

    /// Rejected rows written to standard error.
    fn stderr() -> Rejects {
        Rejects {
            out: Box::new(std::io::stderr()),
            path: "stderr".into(),
        }
    }

    fn write(&mut self, r: &Rejection) -> Result<(), Error> {
        let line = serde_json::to_string(r).unwrap_or_default();
        writeln!(self.out, "{line}").map_err(|e| Error::Io {
            path: self.path.clone().into(),
            source: e,
        })
    }
}

/// A progress bar on standard error when it is a terminal; nothing
/// otherwise (logs and pipes stay clean).
fn progress_bar(file: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let total = std::fs::metadata(file).map(|m| m.len()).ok();
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner(),
    };
    bar.set_prefix(file.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// How `import` runs.
pub struct Options {
    /// Rows per committed batch.
    pub batch: usize,
    /// After the files, retract the dataset's events they do not hold.
    pub retract_missing: bool,
}

/// Imports each file in turn, printing one summary line per file (and,
/// with `retract_missing`, one for the retractions).
fn import(
    db: &Annals,
    format: ImportFormat,
    files: &[String],
    rejects: Option<Rejects>,
    opts: Options,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut rejects = rejects;
    let started = Instant::now();
    let mut import = db.import(format).batch_rows(opts.batch);
    if let Some(r) = rejects.as_mut() {
        import = import.skip_invalid(move |row| r.write(row));
    }
    // The bar is replaced per file while the import holds the callback.
    let bar_cell = std::cell::RefCell::new(None::<ProgressBar>);
    let mut import = import.on_progress(|p| {
        if let Some(b) = bar_cell.borrow().as_ref() {
            b.set_position(p.bytes);
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!(
                "{} rows, {:.0} rows/s",
                p.rows,
                p.rows as f64 / secs
            ));
        }
    });
    for file in files {
        *bar_cell.borrow_mut() = if file == "-" {
            None
        } else {
            progress_bar(file)
        };
        let t = Instant::now();
        let result = if file == "-" {
            import.reader("stdin", std::io::BufReader::new(std::io::stdin()))
        } else {
            import.file(file)
        };
        if let Some(b) = bar_cell.borrow_mut().take() {
            b.finish_and_clear();
        }
        match result {
            Ok(s) => {
                let secs = t.elapsed().as_secs_f64();
                let mut v = serde_json::to_value(s).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("file".into(), json!(file));
                    o.insert("seconds".into(), json!((secs * 1000.0).round() / 1000.0));
                    o.insert(
                        "rows_per_second".into(),
                        json!((s.read as f64 / secs.max(1e-6)).round()),
                    );
                }
                writeln!(out, "{v}")?;
            }
            Err(e) => {
                let s = serde_json::to_value(import.summary()).unwrap_or_default();
                eprintln!(
                    "annals: import stopped at {file}; everything before the failing row is \
                     committed ({s}); re-run after fixing it: rows already in are unchanged"
                );
                return Err(e.into());
            }
        }
    }
    if opts.retract_missing {
        let s = import.retract_missing()?;
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("file".into(), json!("(retract-missing)"));
        }
        writeln!(out, "{v}")?;
    }
    // A rejects file that cannot be completed is an error, not a silent
    // loss at drop.
    drop(import);
    if let Some(r) = rejects.as_mut() {
        r.out.flush().map_err(|e| Error::Io {
            path: r.path.clone().into(),
            source: e,
        })?;
    }
    Ok(())
}
