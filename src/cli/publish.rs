//! `annals publish delta`: the log into a Delta Lake table, exactly once.

use std::io::Write;
use std::path::PathBuf;

use super::common::{CliError, Ctx};

/// `annals publish ...`.
#[derive(clap::Subcommand)]
pub enum Command {
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

/// Runs `publish delta`: one summary line per run that wrote something.
/// With `--follow`, the database is opened for each run and closed
/// between runs (once a second), so that imports and appends from other
/// processes can take it in between: annals has one writer process at a
/// time.
#[cfg(feature = "delta")]
pub fn run(cmd: Command, ctx: &Ctx, out: &mut dyn Write) -> Result<u8, CliError> {
    use annals::Error;

    let format = ctx.output()?;
    let Command::Delta { to, branch, follow } = cmd;
    let run = |out: &mut dyn Write, quiet: bool| -> Result<(), CliError> {
        let db = ctx.open()?;
        let report = db.publish_delta(&to, branch.as_deref())?;
        db.close()?;
        if !quiet || report.commits > 0 {
            super::output::print_object(out, format, &report.to_json())?;
            out.flush()?;
        }
        Ok(())
    };
    if !follow {
        run(out, false)?;
        return Ok(0);
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

/// Without the `delta` feature: says how to get it.
#[cfg(not(feature = "delta"))]
pub fn run(_cmd: Command, _ctx: &Ctx, _out: &mut dyn Write) -> Result<u8, CliError> {
    Err(CliError::Usage(
        "publish delta needs annals built with the `delta` feature: cargo install --features delta (or cargo run --features delta -- ...)".into(),
    ))
}
