//! Publishing the log as a Delta Lake table (cargo feature `delta`), so
//! that Spark, Trino, DuckDB, Polars and Daft read what annals knows,
//! exactly once: runs of whole annals batches become Delta commits (up to
//! an entry and a byte budget each), in order, each carrying an
//! application transaction `annals:<chain>` whose version is the last seq
//! it covers. A re-run, a crash mid-publish or a second publisher
//! continues exactly where the table ends: Delta refuses a commit whose
//! transaction version another commit wrote since the publisher read the
//! table, and before each run annals' own last commit is found and its
//! hash checked against annals' hash at that seq; commits of other
//! engines that only rearrange files (OPTIMIZE, compaction) are passed
//! over. Files are synced before the commit that names them, and the
//! commit after it. See `docs/scale-out.md`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deltalake_core::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake_core::arrow::datatypes::{DataType as ArrowType, Field, Schema, TimeUnit};
use deltalake_core::arrow::record_batch::RecordBatch;
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, StructType, Transaction};
use deltalake_core::parquet::basic::Compression;
use deltalake_core::parquet::file::properties::WriterProperties;
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
/// Commit metadata keys: the head (seq, hash) the commit ends at, and
/// the first seq it holds.
const HEAD_SEQ: &str = "annals.head_seq";
const HEAD_HASH: &str = "annals.head_hash";
const FIRST_SEQ: &str = "annals.first_seq";

/// Rows per Parquet row group: bounds what a writer holds before it
/// encodes (the default, a million rows, held ~1 GiB of Arrow arrays).
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// How publishing groups annals batches into Delta commits. Readers of a
/// table pay per commit (the log they replay) and per file (what they
/// list and open), so a commit covers a run of whole batches up to these
/// budgets; a batch larger than both is one commit of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOptions {
    /// Most entries one commit covers (default 4,000,000).
    pub max_entries: u64,
    /// Most bytes of Parquet one commit writes, as the writer counts them
    /// while it buffers (default 128 MiB): also what publishing holds in
    /// memory.
    pub max_bytes: u64,
    /// A Delta checkpoint every this many versions of the table (default
    /// 10; 0 for none), so that readers never replay a long log.
    pub checkpoint_every: u64,
    /// For [`crate::Annals::follow_delta`]: how long new entries may wait
    /// for more before they are published (default 5 s), so that a trickle
    /// of small batches becomes few commits.
    pub latency: Duration,
}

impl Default for PublishOptions {
    fn default() -> PublishOptions {
        PublishOptions {
            max_entries: 4_000_000,
            max_bytes: 128 * 1024 * 1024,
            checkpoint_every: 10,
            latency: Duration::from_secs(5),
        }
    }
}

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
    /// Delta commits written by this run (runs of whole annals batches,
    /// within [`PublishOptions`]' budgets).
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
pub(crate) fn publish(
    engine: &Engine,
    dir: &Path,
    branch: Option<&str>,
    opts: &PublishOptions,
) -> Result<PublishReport> {
    Delta(engine, opts).publish(dir, branch)
}

/// Publishes, then keeps publishing as batches land; see
/// [`crate::Annals::follow_delta`].
pub(crate) fn follow(
    engine: &Engine,
    dir: &Path,
    branch: Option<&str>,
    opts: &PublishOptions,
    on_publish: &mut dyn FnMut(&PublishReport) -> bool,
) -> Result<()> {
    Delta(engine, opts).follow(dir, branch, on_publish)
}

/// Publishing from one open database.
struct Delta<'a>(&'a Engine, &'a PublishOptions);

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
            // Wait for something new, then up to `latency` more, so that
            // batches landing close together share a commit.
            let arrived = match branch {
                None => {
                    let mut sub = crate::subscribe::subscribe(self.0, report.to_seq)?;
                    match sub.next_timeout(Duration::from_secs(1)) {
                        Some(Err(e)) => return Err(e),
                        Some(Ok(_)) => true,
                        None => false,
                    }
                }
                Some(b) => {
                    std::thread::sleep(Duration::from_secs(1));
                    self.0.branch(b)?.head().seq > report.to_seq
                }
            };
            if arrived {
                std::thread::sleep(self.1.latency.saturating_sub(Duration::from_secs(1)));
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
                self.check_table_head(&full, &at, seq, dir)?;
                seq
            }
        };
        // Only what is acknowledged: the head now, not the log's end (a
        // batch being written, whose sync may yet fail, is past it).
        let head = self.0.reader(&at)?.head()?.seq;
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
        let mut run = Run::new(&table, &err)?;
        let mut batch: Vec<(Entry, Hash, Hash, i64)> = Vec::new();
        let mut entries = crate::subscribe::chained_entries(self.0, branch, from)?
            .take_while(|e| e.as_ref().map_or(true, |(e, _)| e.seq <= head))
            .peekable();
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
            if !ends_batch {
                continue;
            }
            run.add(&batch).await.map_err(&err)?;
            batch.clear();
            let full_run = run.entries >= self.1.max_entries
                || run.writer.buffer_len() as u64 >= self.1.max_bytes;
            if full_run || entries.peek().is_none() {
                self.commit_run(&mut table, &app, &mut run, &full, &mut report)
                    .await?;
                run = Run::new(&table, &err)?;
            }
        }
        Ok(report)
    }

    /// Commits what `run` holds: its files synced first, then the commit,
    /// then the commit's log entry synced; a checkpoint when due.
    async fn commit_run(
        &self,
        table: &mut DeltaTable,
        app: &str,
        run: &mut Run,
        full: &Path,
        report: &mut PublishReport,
    ) -> Result<()> {
        let err = delta_err(full);
        let Some((first, last, hash)) = run.span else {
            return Ok(());
        };
        let adds = run.writer.flush().await.map_err(&err)?;
        sync_files(full, &adds)?;
        let version = commit(table, app, adds, (first, last), &hash)
            .await
            .map_err(&err)?;
        sync_log(full, version)?;
        let every = self.1.checkpoint_every as i64;
        if every > 0 && (version + 1) % every == 0 {
            deltalake_core::checkpoints::create_checkpoint(table, None)
                .await
                .map_err(&err)?;
            sync_checkpoint(full, version)?;
        }
        report.version = version;
        report.commits += 1;
        report.entries += run.entries;
        report.to_seq = last;
        Ok(())
    }

    /// Finds annals' own last commit (the one whose metadata says it ends
    /// at `seq`), checks that its hash is annals' hash there, and that no
    /// later commit (another engine's) changed rows of annals' seqs; see
    /// [`check_later_commits`].
    fn check_table_head(&self, full: &Path, at: &At, seq: u64, dir: &Path) -> Result<()> {
        let commits = commits_back_to(full, seq)?;
        let Some(own) = commits
            .iter()
            .rev()
            .find(|c| c.annals.is_some_and(|(_, last)| last == seq))
        else {
            return Err(Error::Conflict {
                at: dir.display().to_string(),
                reason: format!(
                    "the table's transaction says it covers seq {seq}, but no commit of annals \
                     ends there (its log was rewritten or cleaned up)"
                ),
            });
        };
        let ours = self.0.reader(&at.clone().as_of(AsOf::Seq(seq)))?.head()?;
        if ours.seq != seq || own.head_hash.as_deref() != Some(hex(&ours.hash).as_str()) {
            return Err(Error::Conflict {
                at: dir.display().to_string(),
                reason: format!(
                    "the table ends at seq {seq} with hash {}, but this database's entry {seq} is {}: \
                     the table was published from a diverged history",
                    own.head_hash.as_deref().unwrap_or("(none)"),
                    if ours.seq == seq { hex(&ours.hash) } else { "missing".into() }
                ),
            });
        }
        check_later_commits(&commits, own.version, seq, dir)
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
        // Checkpoints are annals' to write (`PublishOptions`); another
        // engine committing to the table checkpoints as often.
        .with_configuration_property(TableProperty::CheckpointInterval, Some("10"))
        .with_raise_if_key_not_exists(false)
        .await
}

/// A commit being gathered: the writer holding its rows, how many
/// entries, and the (first seq, last seq, last hash) it covers.
struct Run {
    writer: RecordBatchWriter,
    entries: u64,
    span: Option<(u64, u64, Hash)>,
}

impl Run {
    fn new(
        table: &DeltaTable,
        err: &impl Fn(deltalake_core::DeltaTableError) -> Error,
    ) -> Result<Run> {
        // Snappy, as deltalake's own writer defaults to (the builder's
        // default is no compression: files 5x larger).
        let props = WriterProperties::builder()
            .set_max_row_group_size(ROW_GROUP_ROWS)
            .set_compression(Compression::SNAPPY)
            .build();
        Ok(Run {
            writer: RecordBatchWriter::for_table(table)
                .map_err(err)?
                .with_writer_properties(props),
            entries: 0,
            span: None,
        })
    }

    /// One whole annals batch's rows.
    async fn add(
        &mut self,
        batch: &[(Entry, Hash, Hash, i64)],
    ) -> std::result::Result<(), deltalake_core::DeltaTableError> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        let rows =
            rows(batch).map_err(|e| deltalake_core::DeltaTableError::Generic(e.to_string()))?;
        self.writer.write(rows).await?;
        self.entries += batch.len() as u64;
        let start = self.span.map_or(first.0.seq, |s| s.0);
        self.span = Some((start, last.0.seq, last.1));
        Ok(())
    }
}

/// One Delta commit of a run's files, with the transaction version (the
/// last seq it covers) and its seq range and head hash in its metadata.
async fn commit(
    table: &mut DeltaTable,
    app: &str,
    adds: Vec<Add>,
    (first, last): (u64, u64),
    hash: &Hash,
) -> std::result::Result<i64, deltalake_core::DeltaTableError> {
    let adds: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    let mut meta = HashMap::new();
    meta.insert(FIRST_SEQ.to_string(), json!(first));
    meta.insert(HEAD_SEQ.to_string(), json!(last));
    meta.insert(HEAD_HASH.to_string(), json!(hex(hash)));
    // Checkpoints are written by `commit_run` as `PublishOptions` says,
    // and expired logs are never cleaned up: history is the table's point.
    let props = CommitProperties::default()
        .with_application_transaction(Transaction::new(app, last as i64))
        .with_metadata(meta)
        .with_create_checkpoint(false)
        .with_cleanup_expired_logs(Some(false));
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
    // again before the next run.
    table.state = Some(done.snapshot());
    Ok(done.version())
}

/// A file's path on disk from an `add` path (relative, partition values
/// URL-escaped).
fn local_path(table: &Path, path: &str) -> PathBuf {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    table.join(String::from_utf8_lossy(&out).as_ref())
}

fn sync_path(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// The run's Parquet files and their folders, durable before the commit
/// that names them (object_store's local file system does not sync).
fn sync_files(table: &Path, adds: &[Add]) -> Result<()> {
    let mut dirs = std::collections::BTreeSet::new();
    for add in adds {
        let path = local_path(table, &add.path);
        sync_path(&path)?;
        if let Some(d) = path.parent() {
            dirs.insert(d.to_path_buf());
        }
    }
    for d in dirs {
        sync_path(&d)?;
    }
    sync_path(table)
}

/// The commit's log entry and `_delta_log`, durable once the commit is
/// reported done.
fn sync_log(table: &Path, version: i64) -> Result<()> {
    let log = table.join("_delta_log");
    sync_path(&log.join(format!("{version:020}.json")))?;
    sync_path(&log)
}

/// A checkpoint's files (single-part or multi-part) and `_last_checkpoint`.
fn sync_checkpoint(table: &Path, version: i64) -> Result<()> {
    let log = table.join("_delta_log");
    let prefix = format!("{version:020}.checkpoint");
    for e in std::fs::read_dir(&log).map_err(|e| Error::io(&log, e))? {
        let path = e.map_err(|e| Error::io(&log, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.starts_with(&prefix)) {
            sync_path(&path)?;
        }
    }
    let last = log.join("_last_checkpoint");
    if last.exists() {
        sync_path(&last)?;
    }
    sync_path(&log)
}

/// One commit of the table's log as annals reads it: its version, the
/// seq range of an annals commit, the head hash it names, its operation,
/// and whether it changed rows that annals wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaCommit {
    /// The Delta version.
    pub version: i64,
    /// For a commit annals wrote: the first and last seq it holds.
    pub annals: Option<(u64, u64)>,
    /// For a commit annals wrote: the hash of its last entry (hex).
    pub head_hash: Option<String>,
    /// The operation its `commitInfo` names (`WRITE`, `OPTIMIZE`, ...).
    pub operation: Option<String>,
    /// Whether it added or removed rows (`dataChange` on any action):
    /// false for a commit that only rearranges files.
    pub data_change: bool,
    /// For a data-changing commit of another writer: whether a file it
    /// added or removed may hold rows of annals' seqs (its statistics say
    /// so, or it has none).
    pub touches_seqs: bool,
}

/// Every commit in the table's `_delta_log`, oldest first, from its JSON
/// entries (annals never cleans them up; a table whose early entries
/// another engine removed lists what is left).
pub fn read_commits(table: &Path) -> Result<Vec<DeltaCommit>> {
    commit_files(table)?
        .into_iter()
        .map(|(version, path)| read_commit(table, version, &path))
        .collect()
}

/// The commits from the newest back to (and with) annals' own commit that
/// ends at `seq`, oldest first; all of them if there is none. What a
/// publish run checks, without reading the older part of a long log.
fn commits_back_to(table: &Path, seq: u64) -> Result<Vec<DeltaCommit>> {
    let mut out = Vec::new();
    for (version, path) in commit_files(table)?.into_iter().rev() {
        let c = read_commit(table, version, &path)?;
        let own = c.annals.is_some_and(|(_, last)| last == seq);
        out.push(c);
        if own {
            break;
        }
    }
    out.reverse();
    Ok(out)
}

/// The table's commit files, `_delta_log/NNN.json`, by version.
fn commit_files(table: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let log = table.join("_delta_log");
    let mut files: Vec<(i64, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(&log).map_err(|e| Error::io(&log, e))? {
        let path = e.map_err(|e| Error::io(&log, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let version = name
            .as_deref()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<i64>().ok());
        if let Some(v) = version {
            files.push((v, path));
        }
    }
    files.sort();
    Ok(files)
}

/// One commit file, as annals reads it.
fn read_commit(table: &Path, version: i64, path: &Path) -> Result<DeltaCommit> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut c = DeltaCommit {
        version,
        annals: None,
        head_hash: None,
        operation: None,
        data_change: false,
        touches_seqs: false,
    };
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).map_err(|e| Error::Delta {
            table: table.to_path_buf(),
            reason: format!("{} line {}: {e}", path.display(), i + 1),
        })?;
        if let Some(info) = v.get("commitInfo") {
            c.operation = info
                .get("operation")
                .and_then(Value::as_str)
                .map(str::to_string);
            let first = info.get(FIRST_SEQ).and_then(Value::as_u64);
            let last = info.get(HEAD_SEQ).and_then(Value::as_u64);
            if let Some(last) = last {
                c.annals = Some((first.unwrap_or(last), last));
            }
            c.head_hash = info
                .get(HEAD_HASH)
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        for kind in ["add", "remove"] {
            let Some(action) = v.get(kind) else { continue };
            if action.get("dataChange").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            c.data_change = true;
            c.touches_seqs |= may_hold_seqs(action);
        }
    }
    Ok(c)
}

/// Whether a file an action names may hold rows with a seq: its
/// statistics say its `seq` column is not all null, or it has none.
fn may_hold_seqs(action: &Value) -> bool {
    let Some(stats) = action
        .get("stats")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return true;
    };
    let rows = stats.get("numRecords").and_then(Value::as_i64);
    let nulls = stats.pointer("/nullCount/seq").and_then(Value::as_i64);
    match (rows, nulls) {
        (Some(r), Some(n)) => n < r,
        _ => true,
    }
}

/// The table may be published onto after annals' own commit `own` (which
/// ends at `seq`) only if every later commit left annals' rows as they
/// were: one that only rearranged files (OPTIMIZE, compaction, Z-order:
/// no action with `dataChange`) is fine, and so is another writer's that
/// added rows without a seq; one that removed or added rows of annals'
/// seqs is refused. Read from the commits' metadata and the files'
/// statistics, not the rows.
fn check_later_commits(commits: &[DeltaCommit], own: i64, seq: u64, dir: &Path) -> Result<()> {
    let changed = commits
        .iter()
        .filter(|c| c.version > own && c.annals.is_none())
        .find(|c| c.data_change && c.touches_seqs);
    match changed {
        None => Ok(()),
        Some(c) => Err(Error::Conflict {
            at: dir.display().to_string(),
            reason: format!(
                "version {} ({}) changed rows of annals' seqs after annals' last commit \
                 (version {own}, seq {seq}): annals will not publish onto rows it cannot \
                 vouch for; republish into a new table",
                c.version,
                c.operation.as_deref().unwrap_or("an unnamed operation")
            ),
        }),
    }
}

/// The first Delta version whose rows include annals' entry `seq`, from
/// the commits' metadata; `None` if the table does not hold it yet.
pub fn delta_version_of(commits: &[DeltaCommit], seq: u64) -> Option<i64> {
    commits
        .iter()
        .find(|c| c.annals.is_some_and(|(_, last)| last >= seq))
        .map(|c| c.version)
}

/// The last annals seq that Delta version `version` holds (0 if none).
pub fn seq_at_version(commits: &[DeltaCommit], version: i64) -> u64 {
    commits
        .iter()
        .filter(|c| c.version <= version)
        .filter_map(|c| c.annals.map(|(_, last)| last))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_paths_are_unescaped_to_files() {
        let t = Path::new("/t");
        assert_eq!(
            local_path(t, "recorded_month=2025-09/part-1.parquet"),
            t.join("recorded_month=2025-09/part-1.parquet")
        );
        assert_eq!(
            local_path(t, "recorded_month%3D2025-09/a%C3%A9%2.parquet"),
            t.join("recorded_month=2025-09/aé%2.parquet")
        );
    }

    #[test]
    fn only_changes_to_rows_with_a_seq_are_refused() {
        let stats = |nulls: i64| {
            json!({"stats": format!(
            "{{\"numRecords\":10,\"nullCount\":{{\"seq\":{nulls}}}}}")})
        };
        assert!(may_hold_seqs(&stats(0)));
        assert!(may_hold_seqs(&stats(9)));
        assert!(!may_hold_seqs(&stats(10)));
        assert!(may_hold_seqs(&json!({"path": "no-stats.parquet"})));
        let commit = |version, annals, data_change, touches_seqs| DeltaCommit {
            version,
            annals,
            head_hash: None,
            operation: Some("X".into()),
            data_change,
            touches_seqs,
        };
        let dir = Path::new("/t");
        let own = commit(1, Some((1, 5)), true, true);
        let optimize = commit(2, None, false, false);
        let foreign_rows = commit(3, None, true, false);
        let delete = commit(4, None, true, true);
        let ok = [own.clone(), optimize.clone(), foreign_rows.clone()];
        assert!(check_later_commits(&ok, 1, 5, dir).is_ok());
        let bad = [own, optimize, foreign_rows, delete];
        let e = check_later_commits(&bad, 1, 5, dir).unwrap_err();
        assert!(e.to_string().contains("version 4"), "{e}");
        // A change before annals' own last commit is annals' business.
        assert!(check_later_commits(&bad, 4, 5, dir).is_ok());
    }
}
