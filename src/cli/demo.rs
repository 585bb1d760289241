//! `annals demo`: the scenario of the product brief (public facts from a
//! news report of 3 December 2025), walked through step by step in a
//! database left behind to explore or serve.

use std::io::Write;
use std::path::{Path, PathBuf};

use annals::{Against, Annals, AsOf, At, Error, Granularity, Op, Query, ViewKind};
use uuid::Uuid;

use super::common::{CliError, Ctx};
use super::output;

/// The scenario, one event per line, with fixed ids so runs compare.
pub const SCENARIO: &str = include_str!("scenario.jsonl");

const SABOTAGE: &str = "6a1f0c2e-0d5b-5c8e-9b1a-000000000006";

/// The first lines of the scenario were reported by 1 October 2025.
const KNOWN_BY_OCTOBER: usize = 3;

const BRANCH: &str = "no-attribution";

/// A hypothetical event for the what-if branch.
const HYPOTHETICAL: &str = r#"{"kind":"airspace_violation","occurred":"2025-12-10","countries":["LT"],"actors":[{"name":"Russia","role":"alleged_perpetrator"}],"summary":"Hypothetical: a drone incursion into Lithuania next week.","confidence":0.3,"tags":["hypothetical"]}"#;

/// An unverified report, appended and then retracted to show retractions.
const UNVERIFIED: &str = r#"{"id":"6a1f0c2e-0d5b-5c8e-9b1a-000000000099","kind":"airspace_violation","occurred":"2025-12-02","countries":["LT"],"actors":[{"name":"Russia","role":"alleged_perpetrator"}],"summary":"Illustrative unverified report: a drone over Lithuania, seen on social media.","confidence":0.2}"#;

fn step(out: &mut dyn Write, title: &str) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "## {title}")?;
    Ok(())
}

fn id(s: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(s).map_err(|e| Error::Internal(format!("demo id: {e}")))
}

/// A new demo database at `path`. What is there already is replaced only
/// if it is an earlier run's (its first entry is the scenario's) or empty.
fn fresh(path: &Path) -> Result<Annals, Error> {
    if path.exists() {
        let first = SCENARIO
            .lines()
            .next()
            .map(annals::parse_event)
            .transpose()?
            .map(|e| e.id);
        let earlier = Annals::exists(path) && {
            let db = Annals::builder(path).create(false).open()?;
            let found = match db.entries(0)?.next() {
                Some(Ok(e)) => Some(e.body.id()),
                _ => None,
            };
            db.close()?;
            // An empty one is a run stopped before its first batch.
            found.is_none() || found == first
        };
        if !earlier {
            return Err(Error::BadPath {
                path: path.into(),
                reason: "exists and is not a demo database; give the demo another --out".into(),
            });
        }
        std::fs::remove_dir_all(path).map_err(|e| Error::Io {
            path: path.into(),
            source: e,
        })?;
    }
    Annals::open(path)
}

/// The arguments of `annals demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Where to leave the demo database.
    #[arg(long, default_value = "annals-demo.db")]
    out: PathBuf,
}

/// Runs the demo, printing each step to `out`, and leaves its database at
/// `--out`.
pub fn run(args: Args, ctx: &Ctx, out: &mut dyn Write) -> Result<u8, CliError> {
    let (format, path) = (ctx.output()?, args.out.as_path());
    let db = fresh(path)?;

    step(out, "1. Load the scenario in the order the reports came in")?;
    let mut events = SCENARIO
        .lines()
        .enumerate()
        .map(|(i, l)| annals::parse_event(l).map_err(|e| e.at(format!("scenario line {}", i + 1))))
        .collect::<Result<Vec<_>, _>>()?;
    let later = events.split_off(KNOWN_BY_OCTOBER);
    let early = db.append(events)?;
    writeln!(
        out,
        "batch 1, reports known by 1 October 2025: seq 1..={}",
        early.len()
    )?;
    let rest = db.append(later)?;
    let head = db.head();
    writeln!(
        out,
        "batch 2, later reports: {} events; head seq {} hash {}",
        rest.len(),
        head.seq,
        head.hash_hex()
    )?;

    step(out, "2. View by country")?;
    output::by_country(out, format, &db.by_country()?)?;
    step(out, "3. View by actor")?;
    output::by_actor(out, format, &db.by_actor()?)?;
    step(
        out,
        "4. View by date, by month (coarser events stay in their year)",
    )?;
    output::by_date(out, format, &db.by_date(Granularity::Month)?)?;

    step(
        out,
        "5. Query: airspace violations in Poland or Romania in 2025",
    )?;
    writeln!(
        out,
        "$ annals query --kind airspace_violation --country PL --country RO --from 2025 --to 2025"
    )?;
    let q = Query::new()
        .kind("airspace_violation")
        .country("PL")
        .country("RO")
        .from("2025")?
        .to("2025")?;
    output::records(out, format, &db.query(&q)?)?;

    step(
        out,
        "6. Fuzzy time: what may have happened 10-12 September, and what certainly did",
    )?;
    let sept = Query::new().from("2025-09-10")?.to("2025-09-12")?;
    writeln!(
        out,
        "$ annals query --from 2025-09-10 --to 2025-09-12        (overlaps)"
    )?;
    output::records(out, format, &db.query(&sept)?)?;
    writeln!(
        out,
        "$ annals query --from 2025-09-10 --to 2025-09-12 --within"
    )?;
    output::records(out, format, &db.query(&sept.within())?)?;

    step(out, "7. Time travel: what did we know on 1 October 2025?")?;
    writeln!(
        out,
        "(entries are recorded now, so the seq of the last report known then stands in for the date;\n \
         on a live database `--as-of 2025-10-01T00:00:00Z` asks the same by time)"
    )?;
    writeln!(out, "$ annals view by-country --as-of {KNOWN_BY_OCTOBER}")?;
    let then = db.reader(&At::head().as_of(AsOf::Seq(KNOWN_BY_OCTOBER as u64)))?;
    output::by_country(out, format, &then.by_country()?)?;
    writeln!(
        out,
        "$ annals query --country PL --as-of {KNOWN_BY_OCTOBER}"
    )?;
    output::records(out, format, &then.query(&Query::new().country("PL"))?)?;

    step(out, "8. A correction: the rail line concerns Ukraine too")?;
    let sabotage = id(SABOTAGE)?;
    if let Some(rec) = db.get(sabotage)? {
        let mut corrected = rec.event;
        corrected.countries.push("UA".into());
        let seq = db.correct(corrected)?;
        writeln!(out, "correction appended at seq {seq}")?;
    }

    step(
        out,
        "9. A retraction: an unverified report comes in, then is withdrawn",
    )?;
    let report = annals::parse_event(UNVERIFIED)?;
    let report_id = report.id;
    let w = db.append(vec![report])?;
    writeln!(
        out,
        "report appended at seq {}",
        w.first().map_or(0, |w| w.seq)
    )?;
    let seq = db.retract(report_id, "unverified: no official confirmation")?;
    writeln!(out, "retraction appended at seq {seq}")?;

    step(
        out,
        "10. History of the sabotage event and of the retracted report",
    )?;
    output::history(out, format, &db.history(sabotage)?)?;
    output::history(out, format, &db.history(report_id)?)?;

    step(
        out,
        "11. By country now: UA gained the sabotage, LT never counted",
    )?;
    output::by_country(out, format, &db.by_country()?)?;

    step(
        out,
        "12. What if: the sabotage was not attributed, and drones crossed into Lithuania?",
    )?;
    writeln!(out, "$ annals branch create {BRANCH}")?;
    db.create_branch(BRANCH, None, None)?;
    if let Some(rec) = db.get(sabotage)? {
        let mut unattributed = rec.event;
        unattributed
            .actors
            .retain(|a| a.role != "alleged_perpetrator");
        let hypothetical = annals::parse_event(HYPOTHETICAL)?;
        let ops = vec![Op::Correct(unattributed), Op::Append(hypothetical)];
        let w = db.write_branch(BRANCH, ops, None)?;
        let seqs: Vec<String> = w.iter().map(|w| w.seq.to_string()).collect();
        writeln!(
            out,
            "on the branch: attribution withdrawn, hypothetical incursion added (seq {})",
            seqs.join(", ")
        )?;
    }
    writeln!(out, "main is unchanged: head seq {}", db.head().seq)?;
    writeln!(out, "$ annals diff {BRANCH} --view by-actor")?;
    output::diff(
        out,
        format,
        &db.diff(BRANCH, ViewKind::ByActor, Against::Base)?,
    )?;
    writeln!(out, "$ annals diff {BRANCH} --view by-country")?;
    output::diff(
        out,
        format,
        &db.diff(BRANCH, ViewKind::ByCountry, Against::Base)?,
    )?;

    step(
        out,
        "13. Verify: the log's chain and every view against a replay",
    )?;
    let head = db.verify()?;
    writeln!(
        out,
        "ok: {} entries, head hash {}",
        head.seq,
        head.hash_hex()
    )?;
    db.close()?;

    step(out, "14. Explore it")?;
    let shown = path.display();
    writeln!(
        out,
        "the demo database is at {shown}; query it with --db {shown}"
    )?;
    if cfg!(feature = "serve") {
        writeln!(
            out,
            "see its timeline in a browser: annals serve --db {shown} --read-only\n\
             (from a checkout: cargo run --release -- serve --db {shown} --read-only),\n\
             then open http://127.0.0.1:7070/"
        )?;
    }
    Ok(0)
}
