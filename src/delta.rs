//! Publishing the log as a Delta Lake table (cargo feature `delta`), so
//! that Spark, Trino, DuckDB, Polars and Daft read what annals knows,
//! exactly once: each annals batch becomes one Delta commit, in order,
//! carrying an application transaction `annals:<chain>` whose version is
//! the last seq it covers. A re-run, a crash mid-publish or a second
//! publisher continues exactly where the table ends: Delta refuses a
//! commit whose transaction version another commit wrote since the
//! publisher read the table, and before each run the table's last hash is
//! checked against annals' hash at that seq. See `docs/scale-out.md`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake_core::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake_core::arrow::datatypes::{DataType as ArrowType, Field, Schema, TimeUnit};
use deltalake_core::arrow::record_batch::RecordBatch;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, StructType, Transaction};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::writer::{DeltaWriter, RecordBatchWriter};
use deltalake_core::{DeltaOps, DeltaTable, TableProperty};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::engine::Engine;
use crate::entry::{hex, Body, Entry, Hash};
use crate::error::{Error, Result};
use crate::json::event_to_value;
use crate::read::{AsOf, At};
use crate::time::{Precision, TimePoint};

/// The partition column: the UTC month of the entry's transaction time
/// (`2025-09`). Every entry of a batch shares it, so each commit writes one
/// Parquet file, appends only touch the newest partition, and "what did
/// we know at T" prunes by partition; occurrence filters prune by the
/// files' statistics on `occurred_start`/`occurred_end`. Partitioning by
/// occurrence month instead wrote one file per month a batch touches:
/// measured, the table grew to 1.9x the database and publishing was
/// 18x slower than a Parquet export (docs/scale-out.md).
pub const PARTITION_COLUMN: &str = "recorded_month";

/// Table property naming the chain the table mirrors.
const CHAIN_PROPERTY: &str = "annals.chain";
/// Table property naming the branch (`main` for main).
const BRANCH_PROPERTY: &str = "annals.branch";
/// Commit metadata keys: the head (seq, hash) the commit ends at.
const HEAD_SEQ: &str = "annals.head_seq";
const HEAD_HASH: &str = "annals.head_hash";

/// What [`crate::Annals::publish_delta`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    /// The table's folder.
    pub table: PathBuf,
    /// The seq the table covered before this run (the branch's base for a
    /// new branch table, 0 for a new main table).
    pub from_seq: u64,
    /// The seq it covers now.
    pub to_seq: u64,
    /// Delta commits written by this run (one per annals batch).
    pub commits: u64,
    /// Entries (rows) written by this run.
    pub entries: u64,
    /// The table's Delta version now.
    pub version: i64,
}

impl PublishReport {
    /// `{table, from_seq, to_seq, commits, entries, version}`.
    pub fn to_json(&self) -> Value {
        json!({
            "table": self.table.display().to_string(),
            "from_seq": self.from_seq,
            "to_seq": self.to_seq,
            "commits": self.commits,
            "entries": self.entries,
            "version": self.version,
        })
    }
}

fn delta_err(at: &Path) -> impl Fn(deltalake_core::DeltaTableError) -> Error + '_ {
    move |e| Error::Delta {
        table: at.to_path_buf(),
        reason: e.to_string(),
    }
}

fn arrow_err(e: deltalake_core::arrow::error::ArrowError) -> Error {
    Error::internal(format!("building Delta rows: {e}"))
}

/// The rows' columns: position and chain, the entry's action, the event's
/// version and fields (nested ones as JSON text), the partition last.
fn schema() -> Arc<Schema> {
    let ts = || ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let text = |n: &str, null: bool| Field::new(n, ArrowType::Utf8, null);
    let list = |n: &str| {
        Field::new(
            n,
            ArrowType::List(Arc::new(Field::new("element", ArrowType::Utf8, true))),
            true,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("seq", ArrowType::Int64, false),
        text("hash", false),
        text("prev_hash", false),
        Field::new("recorded_at", ts(), false),
        text("action", false),
        text("id", false),
        Field::new("version", ArrowType::Int64, false),
        text("kind", true),
        text("occurred", true),
        Field::new("occurred_start", ts(), true),
        Field::new("occurred_end", ts(), true),
        text("occurred_precision", true),
        list("countries"),
        text("location_name", true),
        text("location_country", true),
        Field::new("location_lat", ArrowType::Float64, true),
        Field::new("location_lon", ArrowType::Float64, true),
        text("actors", true),
        text("summary", true),
        text("sources", true),
        Field::new("confidence", ArrowType::Float64, true),
        list("tags"),
        text("attrs", true),
        text("reason", true),
        text("merged_from", true),
        text(PARTITION_COLUMN, true),
    ]))
}

/// One row per entry: (entry, its hash, the previous hash, the event's
/// version number).
fn rows(entries: &[(Entry, Hash, Hash, i64)]) -> Result<RecordBatch> {
    let ts = || TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let (mut seq, mut version) = (Int64Builder::new(), Int64Builder::new());
    let (mut hash, mut prev, mut action, mut id) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut recorded, mut start, mut end) = (ts(), ts(), ts());
    let mut text: Vec<StringBuilder> = (0..12).map(|_| StringBuilder::new()).collect();
    let (mut lat, mut lon, mut confidence) = (
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    let element = Arc::new(Field::new("element", ArrowType::Utf8, true));
    let (mut countries, mut tags) = (
        ListBuilder::new(StringBuilder::new()).with_field(element.clone()),
        ListBuilder::new(StringBuilder::new()).with_field(element),
    );
    for (e, h, p, v) in entries {
        seq.append_value(e.seq as i64);
        hash.append_value(hex(h));
        prev.append_value(hex(p));
        recorded.append_value(e.recorded_at);
        action.append_value(e.body.action());
        id.append_value(e.body.id().to_string());
        version.append_value(*v);
        let event = e.body.event();
        let value = event.map(|ev| event_to_value(ev, None));
        let field = |k: &str| {
            value
                .as_ref()
                .and_then(|v| v.get(k))
                .filter(|x| !x.is_null())
        };
        let as_text = |x: &Value| match x {
            Value::String(s) => s.clone(),
            Value::Object(o) => format!(
                "{}/{}",
                o.get("from").and_then(Value::as_str).unwrap_or(""),
                o.get("to").and_then(Value::as_str).unwrap_or("")
            ),
            other => other.to_string(),
        };
        let reason = match &e.body {
            Body::Retraction { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        let loc = event.and_then(|ev| ev.location.as_ref());
        let cells: [Option<String>; 12] = [
            event.map(|ev| ev.kind.clone()),
            field("occurred").map(as_text),
            event.map(|ev| ev.occurred.precision().name().to_string()),
            loc.and_then(|l| l.name.clone()),
            loc.and_then(|l| l.country.clone()),
            field("actors").map(Value::to_string),
            event.and_then(|ev| ev.summary.clone()),
            field("sources").map(Value::to_string),
            field("attrs").map(Value::to_string),
            reason,
            e.origin.as_ref().map(|o| {
                json!({"branch": o.branch, "seq": o.seq, "hash": hex(&o.hash)}).to_string()
            }),
            Some(
                TimePoint::at(e.recorded_at, Precision::Instant)
                    .truncate(Precision::Month)
                    .to_string(),
            ),
        ];
        for (b, c) in text.iter_mut().zip(cells) {
            b.append_option(c);
        }
        start.append_option(event.map(|ev| ev.occurred.start()));
        end.append_option(event.map(|ev| ev.occurred.end()));
        lat.append_option(loc.and_then(|l| l.lat));
        lon.append_option(loc.and_then(|l| l.lon));
        confidence.append_option(event.and_then(|ev| ev.confidence));
        match event {
            Some(ev) => {
                for c in &ev.countries {
                    countries.values().append_value(c);
                }
                countries.append(true);
                for t in &ev.tags {
                    tags.values().append_value(t);
                }
                tags.append(true);
            }
            None => {
                countries.append(false);
                tags.append(false);
            }
        }
    }
    let mut t = text
        .into_iter()
        .map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let mut next = || {
        t.next()
            .ok_or_else(|| Error::internal("Delta rows: column count"))
    };
    let (kind, occurred, precision, loc_name, loc_country, actors, summary, sources, attrs) = (
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
    );
    let (reason, merged, month) = (next()?, next()?, next()?);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(seq.finish()),
        Arc::new(hash.finish()),
        Arc::new(prev.finish()),
        Arc::new(recorded.finish()),
        Arc::new(action.finish()),
        Arc::new(id.finish()),
        Arc::new(version.finish()),
        kind,
        occurred,
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        precision,
        Arc::new(countries.finish()),
        loc_name,
        loc_country,
        Arc::new(lat.finish()),
        Arc::new(lon.finish()),
        actors,
        summary,
        sources,
        Arc::new(confidence.finish()),
        Arc::new(tags.finish()),
        attrs,
        reason,
        merged,
        month,
    ];
    RecordBatch::try_new(schema(), columns).map_err(arrow_err)
}

/// The chain's identity: the hash of its first entry, which every branch
/// shares and no other chain has.
fn chain_id(db: &Engine) -> Result<String> {
    let first = db.reader(&At::head().as_of(AsOf::Seq(1)))?.head()?;
    if first.seq != 1 {
        return Err(Error::invalid(
            "publish",
            "the database is empty: nothing to publish",
        ));
    }
    Ok(hex(&first.hash)[..32].to_string())
}

/// Publishes main (or `branch`'s own entries) into the Delta table at
/// `dir`; see [`crate::Annals::publish_delta`].
pub(crate) fn publish(engine: &Engine, dir: &Path, branch: Option<&str>) -> Result<PublishReport> {
    Delta(engine).publish(dir, branch)
}

/// Publishes, then keeps publishing as batches land; see
/// [`crate::Annals::follow_delta`].
pub(crate) fn follow(
    engine: &Engine,
    dir: &Path,
    branch: Option<&str>,
    on_publish: &mut dyn FnMut(&PublishReport) -> bool,
) -> Result<()> {
    Delta(engine).follow(dir, branch, on_publish)
}

/// Publishing from one open database.
struct Delta<'a>(&'a Engine);

impl Delta<'_> {
    /// Publishes main (or `branch`'s own entries) into the Delta table at
    /// `dir`, creating it if needed, from where the table ends to the head:
    /// one commit per annals batch. Refuses a table of another chain or
    /// branch, or one whose last hash is not annals' hash at that seq.
    fn publish(&self, dir: &Path, branch: Option<&str>) -> Result<PublishReport> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| Error::io(dir, e))?;
        rt.block_on(self.publish_async(dir, branch))
    }

    /// Publishes as [`crate::Annals::publish_delta`] does, then keeps publishing
    /// as new batches land (main through the live subscription, a branch
    /// by looking at its head every second), calling `on_publish` after
    /// every run; stops when it returns false. For a program that writes
    /// and publishes in one process (the database has one writer process;
    /// the CLI's `--follow` opens it for each run instead). A stop at any
    /// moment, even a kill, is safe: the next run continues where the
    /// table ends.
    fn follow(
        &self,
        dir: &Path,
        branch: Option<&str>,
        on_publish: &mut dyn FnMut(&PublishReport) -> bool,
    ) -> Result<()> {
        loop {
            let report = self.publish(dir, branch)?;
            if !on_publish(&report) {
                return Ok(());
            }
            match branch {
                None => {
                    let mut sub = crate::subscribe::subscribe(self.0, report.to_seq)?;
                    if let Some(Err(e)) = sub.next_timeout(std::time::Duration::from_secs(1)) {
                        return Err(e);
                    }
                }
                Some(_) => std::thread::sleep(std::time::Duration::from_secs(1)),
            }
        }
    }

    async fn publish_async(&self, dir: &Path, branch: Option<&str>) -> Result<PublishReport> {
        let chain = chain_id(self.0)?;
        let branch_name = branch.unwrap_or("main");
        let app = match branch {
            None => format!("annals:{chain}"),
            Some(b) => format!("annals:{chain}/{b}"),
        };
        let at = match branch {
            None => At::head(),
            Some(b) => At::head().branch(b),
        };
        let base = match branch {
            None => 0,
            Some(b) => self.0.branch(b)?.meta.base.seq,
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let full = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        let uri = full.to_string_lossy().to_string();
        let err = delta_err(dir);
        let mut table = match deltalake_core::open_table(&uri).await {
            Ok(t) => t,
            Err(_) if !full.join("_delta_log").exists() => {
                create(&uri, &chain, branch_name, branch, self.0, base)
                    .await
                    .map_err(&err)?
            }
            Err(e) => return Err(err(e)),
        };
        let conf = table
            .snapshot()
            .map_err(&err)?
            .metadata()
            .configuration()
            .clone();
        let (t_chain, t_branch) = (conf.get(CHAIN_PROPERTY), conf.get(BRANCH_PROPERTY));
        if t_chain != Some(&chain) || t_branch.map(String::as_str) != Some(branch_name) {
            return Err(Error::Conflict {
                at: dir.display().to_string(),
                reason: format!(
                    "the table mirrors chain {} branch {}, not this database's {chain} {branch_name}",
                    t_chain.map_or("(none)", String::as_str),
                    t_branch.map_or("(none)", String::as_str)
                ),
            });
        }
        let covered = table
            .snapshot()
            .map_err(&err)?
            .transaction_version(table.log_store().as_ref(), &app)
            .await
            .map_err(&err)?;
        let from = match covered {
            None => base,
            Some(seq) => {
                let seq = u64::try_from(seq).unwrap_or(0);
                self.check_table_head(&table, &at, seq, dir).await?;
                seq
            }
        };
        let mut report = PublishReport {
            table: full.clone(),
            from_seq: from,
            to_seq: from,
            commits: 0,
            entries: 0,
            version: table.version().unwrap_or(0),
        };
        let mut prev = self
            .0
            .reader(&at.clone().as_of(AsOf::Seq(from)))?
            .head()?
            .hash;
        let mut batch: Vec<(Entry, Hash, Hash, i64)> = Vec::new();
        let mut entries = crate::subscribe::chained_entries(self.0, branch, from)?.peekable();
        while let Some(next) = entries.next() {
            let (entry, hash) = next?;
            let version = self.version_of(branch, entry.body.id(), entry.seq)?;
            let row = (entry, hash, prev, version);
            prev = hash;
            batch.push(row);
            // Entries of one annals batch share their transaction time.
            let ends_batch = match entries.peek() {
                Some(Ok((n, _))) => n.recorded_at != batch[0].0.recorded_at,
                _ => true,
            };
            if ends_batch {
                let last = batch.last().map(|(e, h, _, _)| (e.seq, *h));
                if let Some((seq, h)) = last {
                    report.version = commit(&mut table, &app, &batch, seq, &h)
                        .await
                        .map_err(&err)?;
                    report.commits += 1;
                    report.entries += batch.len() as u64;
                    report.to_seq = seq;
                }
                batch.clear();
            }
        }
        Ok(report)
    }

    /// The table ends at `seq` with the hash in its last commit: it must
    /// be annals' hash there, or the table belongs to a diverged history.
    async fn check_table_head(
        &self,
        table: &DeltaTable,
        at: &At,
        seq: u64,
        dir: &Path,
    ) -> Result<()> {
        let info = table.history(Some(1)).await.map_err(delta_err(dir))?;
        let theirs = info
            .first()
            .and_then(|c| c.info.get(HEAD_HASH))
            .and_then(Value::as_str)
            .map(str::to_string);
        let ours = self.0.reader(&at.clone().as_of(AsOf::Seq(seq)))?.head()?;
        if ours.seq != seq || theirs.as_deref() != Some(hex(&ours.hash).as_str()) {
            return Err(Error::Conflict {
                at: dir.display().to_string(),
                reason: format!(
                    "the table ends at seq {seq} with hash {}, but this database's entry {seq} is {}: \
                     the table was published from a diverged history",
                    theirs.as_deref().unwrap_or("(none)"),
                    if ours.seq == seq { hex(&ours.hash) } else { "missing".into() }
                ),
            });
        }
        Ok(())
    }

    /// The number of entry `seq` among event `id`'s entries on the line
    /// (1 for its creation): from the index on main, plus a branch's own
    /// entries (and its parents') up to `seq`.
    fn version_of(&self, branch: Option<&str>, id: Uuid, seq: u64) -> Result<i64> {
        let branch = branch.map(|b| self.0.branch(b)).transpose()?;
        let mut count = 0usize;
        for step in crate::merge::lineage_upto(self.0, branch, seq)? {
            count += match &step.branch {
                Some(b) => b.own_versions(id, step.upto).len(),
                None => {
                    let state = self.0.main().state();
                    match state.index.lookup(&id)? {
                        Some((n, _)) => state
                            .index
                            .versions(n)?
                            .iter()
                            .filter(|s| **s <= step.upto)
                            .count(),
                        None => 0,
                    }
                }
            };
        }
        Ok(count as i64)
    }
}

async fn create(
    uri: &str,
    chain: &str,
    branch_name: &str,
    branch: Option<&str>,
    db: &Engine,
    base: u64,
) -> std::result::Result<DeltaTable, deltalake_core::DeltaTableError> {
    let kernel: StructType = schema().as_ref().try_into_kernel()?;
    let mut conf: Vec<(String, Option<String>)> = vec![
        (CHAIN_PROPERTY.into(), Some(chain.into())),
        (BRANCH_PROPERTY.into(), Some(branch_name.into())),
    ];
    if let Some(b) = branch {
        let info = db.branches().into_iter().find(|i| i.name == b);
        conf.push(("annals.fork_seq".into(), Some(base.to_string())));
        conf.push((
            "annals.parent".into(),
            Some(info.map_or("main".into(), |i| i.parent)),
        ));
    }
    DeltaOps::try_from_uri(uri)
        .await?
        .create()
        .with_columns(kernel.fields().cloned())
        .with_partition_columns(vec![PARTITION_COLUMN])
        .with_configuration(conf)
        // History is the point of the table: keep the log and removed
        // files ~100 years unless the operator decides otherwise.
        .with_configuration_property(
            TableProperty::LogRetentionDuration,
            Some("interval 36500 days"),
        )
        .with_configuration_property(
            TableProperty::DeletedFileRetentionDuration,
            Some("interval 36500 days"),
        )
        .with_raise_if_key_not_exists(false)
        .await
}

/// One Delta commit of one batch's rows, with the transaction version
/// `seq` and the head hash in its metadata.
async fn commit(
    table: &mut DeltaTable,
    app: &str,
    batch: &[(Entry, Hash, Hash, i64)],
    seq: u64,
    hash: &Hash,
) -> std::result::Result<i64, deltalake_core::DeltaTableError> {
    let rows = rows(batch).map_err(|e| deltalake_core::DeltaTableError::Generic(e.to_string()))?;
    let mut writer = RecordBatchWriter::for_table(table)?;
    writer.write(rows).await?;
    let adds: Vec<Action> = writer.flush().await?.into_iter().map(Action::Add).collect();
    let mut meta = HashMap::new();
    meta.insert(HEAD_SEQ.to_string(), json!(seq));
    meta.insert(HEAD_HASH.to_string(), json!(hex(hash)));
    let props = CommitProperties::default()
        .with_application_transaction(Transaction::new(app, seq as i64))
        .with_metadata(meta);
    let op = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: Some(vec![PARTITION_COLUMN.into()]),
        predicate: None,
    };
    let done = CommitBuilder::from(props)
        .with_actions(adds)
        .build(Some(table.snapshot()?), table.log_store(), op)
        .await?;
    // The commit returns the table's new state: no need to read the log
    // again before the next batch.
    table.state = Some(done.snapshot());
    Ok(done.version())
}
