//! `annals publish delta`: the log into a Delta Lake table, exactly once.

use std::io::Write;
use std::path::PathBuf;

use super::common::{CliError, Ctx};

/// `annals publish ...`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Publish main (or a branch's own entries) as a Delta Lake table,
    /// in commits of whole batches, exactly once (needs the `delta`
    /// feature).
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
        /// Most entries one commit covers.
        #[arg(long, default_value_t = 4_000_000)]
        max_entries: u64,
        /// Most MiB of Parquet one commit writes (and publishing holds).
        #[arg(long, default_value_t = 128)]
        max_mib: u64,
        /// A Delta checkpoint every this many table versions (0: none).
        #[arg(long, default_value_t = 10)]
        checkpoint_every: u64,
        /// With --follow: seconds between runs, so that new batches wait
        /// at most this long (plus the run) and close ones share a commit.
        #[arg(long, default_value_t = 5)]
        latency_secs: u64,
        /// Print the Delta version that first holds this seq (or the last
        /// entry recorded by this RFC 3339 time) instead of publishing.
        #[arg(long, value_name = "SEQ|TIME", conflicts_with = "follow")]
        version_of: Option<String>,
    },
}

/// Runs `publish delta`: one summary line per run that wrote something.
/// With `--follow`, the database is opened for each run and closed
/// between runs (every `--latency-secs`), so that imports and appends from
/// other processes can take it in between: annals has one writer process
/// at a time.
#[cfg(feature = "delta")]
pub fn run(cmd: Command, ctx: &Ctx, out: &mut dyn Write) -> Result<u8, CliError> {
    use annals::{AsOf, At, Error, PublishOptions};

    let format = ctx.output()?;
    let Command::Delta {
        to,
        branch,
        follow,
        max_entries,
        max_mib,
        checkpoint_every,
        latency_secs,
        version_of,
    } = cmd;
    let opts = PublishOptions {
        max_entries: max_entries.max(1),
        max_bytes: max_mib.max(1).saturating_mul(1024 * 1024),
        checkpoint_every,
        latency: std::time::Duration::from_secs(latency_secs.max(1)),
    };
    if let Some(point) = version_of {
        let seq = match point.parse::<AsOf>()? {
            AsOf::Seq(seq) => seq,
            at @ AsOf::Time(_) => {
                let db = ctx.open()?;
                let mut where_ = At::head().as_of(at);
                where_.branch = branch.clone();
                let seq = db.reader(&where_)?.head()?.seq;
                db.close()?;
                seq
            }
        };
        let commits = annals::read_commits(&to)?;
        let answer = serde_json::json!({
            "seq": seq,
            "version": annals::delta_version_of(&commits, seq),
        });
        super::output::print_object(out, format, &answer)?;
        return Ok(0);
    }
    let run = |out: &mut dyn Write, quiet: bool| -> Result<(), CliError> {
        let db = ctx.open()?;
        let report = db.publish_delta_with(&to, branch.as_deref(), &opts)?;
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
        std::thread::sleep(opts.latency);
    }
}

/// Without the `delta` feature: says how to get it.
#[cfg(not(feature = "delta"))]
pub fn run(_cmd: Command, _ctx: &Ctx, _out: &mut dyn Write) -> Result<u8, CliError> {
    Err(CliError::Usage(
        "publish delta needs annals built with the `delta` feature: cargo install --features delta (or cargo run --features delta -- ...)".into(),
    ))
}
