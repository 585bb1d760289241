//! The commands that check or maintain a database: `head`, `prove`,
//! `verify`, `stats` and `rebuild`.

use std::io::Write;

use serde_json::json;

use super::common::{damage, CliError, Ctx};
use super::output;

/// The commands of this family, flattened into the top level.
#[derive(clap::Subcommand)]
pub enum Command {
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

/// Runs one command of the family; exit code 3 when damage is found.
pub fn run(cmd: Command, ctx: &Ctx, out: &mut dyn Write) -> Result<u8, CliError> {
    let format = ctx.output()?;
    let db = match ctx.open() {
        Ok(db) => db,
        // A database too damaged to open is what `verify` is for.
        Err(e) if e.is_damage() && matches!(cmd, Command::Verify { .. }) => {
            return damage(out, format, e)
        }
        Err(e) => return Err(e.into()),
    };
    match cmd {
        Command::Rebuild => {
            db.rebuild()?;
            let head = db.head();
            output::print_object(out, format, &json!({"rebuilt": true, "seq": head.seq}))?;
        }
        Command::Head => {
            let head = db.head();
            let row = json!({"seq": head.seq, "hash": head.hash_hex()});
            output::print_object(out, format, &row)?;
        }
        Command::Prove {
            seq,
            anchor_seq,
            anchor_hash,
        } => {
            let hash = annals::parse_hash(&anchor_hash).map_err(|e| e.at("arguments"))?;
            let anchor = annals::Head {
                seq: anchor_seq,
                hash,
                recorded_at: 0,
            };
            return match db.prove(seq, anchor) {
                Ok(h) => {
                    let row = json!({"ok": true, "seq": seq, "hash": annals::hex(&h)});
                    output::print_object(out, format, &row)?;
                    Ok(0)
                }
                Err(e) if e.is_damage() => damage(out, format, e),
                Err(e) => Err(e.into()),
            };
        }
        Command::Stats => {
            let stats = serde_json::to_value(db.stats()?).unwrap_or_default();
            output::print_object(out, format, &stats)?;
        }
        Command::Verify { from } => {
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
