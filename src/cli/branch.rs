//! The what-if commands: `branch create|list|drop`, `diff` and `merge`.

use std::io::Write;

use annals::{Against, AsOf, Error, MergeOptions, OnConflict};
use serde_json::json;

use super::common::{CliError, Ctx, ViewName};
use super::output;

/// The commands of this family, flattened into the top level.
#[derive(clap::Subcommand)]
pub enum Command {
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
        /// Bucket size when comparing the by-date view (default month) or
        /// the by-place view (all, month or year; default all).
        #[arg(long)]
        granularity: Option<String>,
        /// The by-place view's areas: cell (PRIO-GRID) or admin1.
        #[arg(long, default_value = "cell")]
        level: String,
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
}

/// `annals branch ...`.
#[derive(clap::Subcommand)]
pub enum BranchCommand {
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
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnConflictArg {
    Fail,
    Branch,
    Target,
}

/// `--against` of `diff`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum AgainstArg {
    Base,
    Head,
}

/// Runs one command of the family.
pub fn run(cmd: Command, ctx: &Ctx, out: &mut dyn Write) -> Result<u8, CliError> {
    let format = ctx.output()?;
    let db = ctx.open()?;
    match cmd {
        Command::Branch(cmd) => {
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
            level,
            against,
            events,
        } => {
            let against = match against {
                AgainstArg::Base => Against::Base,
                AgainstArg::Head => Against::Head,
            };
            if events {
                output::event_diff(out, format, &db.diff_events(&branch, against)?)?;
            } else {
                let kind = view.kind(granularity.as_deref(), &level)?;
                output::diff(out, format, &db.diff(&branch, kind, against)?)?;
            }
        }
        Command::Merge {
            branch,
            into,
            dry_run,
            on_conflict,
        } => {
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
                    let dry = MergeOptions {
                        dry_run: true,
                        ..opts
                    };
                    output::merge(out, format, &db.merge(&branch, &dry)?)?;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
            db.close()?;
        }
    }
    Ok(0)
}
