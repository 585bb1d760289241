//! Publishing into Delta Lake (feature `delta`): runs of whole batches
//! per commit within the budgets, exactly once across re-runs and kill -9,
//! diverged or foreign tables refused, other engines' file rearranging
//! passed over but their changes to annals' rows refused, checkpoints,
//! the seq <-> version map, branch tables holding the branch's own
//! entries. The table is
//! read back here from its log (`_delta_log/*.json`) and its Parquet
//! files, version by version, the way any Delta reader resolves it.
#![cfg(feature = "delta")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use annals::{Annals, AsOf, At, Error, Op, PublishOptions};
use common::gen;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

/// Per Delta version: the app transaction version and the head hash in
/// its commit metadata, and the data files live at that version.
struct Version {
    txn: Option<u64>,
    head_hash: Option<String>,
    files: BTreeSet<String>,
}

/// The table's commit files, `_delta_log/*.json`, oldest first.
fn log_files(table: &Path) -> Vec<std::path::PathBuf> {
    let mut logs: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    logs.sort();
    logs
}

fn versions(table: &Path) -> Vec<Version> {
    let logs = log_files(table);
    let mut files = BTreeSet::new();
    let mut out = Vec::new();
    for log in logs {
        let (mut txn, mut head_hash) = (None, None);
        for line in std::fs::read_to_string(&log).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(add) = v.get("add") {
                files.insert(add["path"].as_str().unwrap().to_string());
            }
            if let Some(rm) = v.get("remove") {
                files.remove(rm["path"].as_str().unwrap());
            }
            if let Some(t) = v.get("txn") {
                txn = t["version"].as_u64();
            }
            if let Some(c) = v.get("commitInfo") {
                head_hash = c["annals.head_hash"].as_str().map(str::to_string);
            }
        }
        out.push(Version {
            txn,
            head_hash,
            files: files.clone(),
        });
    }
    out
}

/// A row's (seq, hash, prev_hash, action, id, version).
type Row = (u64, String, String, String, String, i64);

/// The rows of `files`, in seq order.
fn rows(table: &Path, files: &BTreeSet<String>) -> Vec<Row> {
    let mut out = Vec::new();
    for f in files {
        // Partition values in paths are URL-escaped.
        let path = table.join(f.replace("%3D", "="));
        let file = std::fs::File::open(&path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let b = batch.unwrap();
            let col = |n: &str| b.column(b.schema().index_of(n).unwrap()).clone();
            let version = col("version");
            let version = version
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap();
            let seq = col("seq");
            let seq = seq
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap();
            let text = |n: &str| {
                let c = col(n);
                let s = c
                    .as_any()
                    .downcast_ref::<arrow_array::StringArray>()
                    .unwrap()
                    .clone();
                s
            };
            let (hash, prev, action, id) =
                (text("hash"), text("prev_hash"), text("action"), text("id"));
            for i in 0..b.num_rows() {
                out.push((
                    seq.value(i) as u64,
                    hash.value(i).to_string(),
                    prev.value(i).to_string(),
                    action.value(i).to_string(),
                    id.value(i).to_string(),
                    version.value(i),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Checks that every version of the table holds exactly the entries
/// `from+1..=txn` once each, linked hash to hash, ending at annals' hash
/// at that seq. Returns the last version's seq.
fn check_table(db: &Annals, at: &At, table: &Path, from: u64) -> u64 {
    let mut last = from;
    for (n, v) in versions(table).iter().enumerate() {
        let Some(txn) = v.txn else {
            assert_eq!(
                n, 0,
                "every commit but the table's creation carries the txn"
            );
            continue;
        };
        assert!(txn > last, "version {n} does not move forward");
        let rows = rows(table, &v.files);
        let seqs: Vec<u64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(
            seqs,
            (from + 1..=txn).collect::<Vec<_>>(),
            "version {n}: each seq once"
        );
        for w in rows.windows(2) {
            assert_eq!(w[1].2, w[0].1, "seq {}: linked to its predecessor", w[1].0);
        }
        let ours = db
            .reader(&at.clone().as_of(AsOf::Seq(txn)))
            .unwrap()
            .head()
            .unwrap();
        assert_eq!(v.head_hash.as_deref(), Some(ours.hash_hex().as_str()));
        assert_eq!(
            rows.last().map(|r| r.1.as_str()),
            Some(ours.hash_hex().as_str())
        );
        last = txn;
    }
    last
}

/// A commit per batch: the smallest entry budget.
fn per_batch() -> PublishOptions {
    PublishOptions {
        max_entries: 1,
        ..PublishOptions::default()
    }
}

#[test]
fn batches_share_commits_within_the_budgets() {
    let (dir, db) = common::fresh();
    db.append(common::scenario()).unwrap();
    for b in 0..5u64 {
        db.append(vec![gen::numbered(2 * b), gen::numbered(2 * b + 1)])
            .unwrap();
    }
    db.append(vec![gen::numbered(100)]).unwrap();
    // Defaults: everything in one commit.
    let table = dir.path().join("one");
    let r = db.publish_delta(&table, None).unwrap();
    assert_eq!((r.to_seq, r.commits, r.entries), (22, 1, 22));
    assert_eq!(check_table(&db, &At::head(), &table, 0), 22);
    // Three entries a commit, batches whole: 11 | 2+2 | 2+2 | 2+1.
    let opts = PublishOptions {
        max_entries: 3,
        ..PublishOptions::default()
    };
    let table = dir.path().join("three");
    let r = db.publish_delta_with(&table, None, &opts).unwrap();
    assert_eq!((r.to_seq, r.commits, r.entries), (22, 4, 22));
    let ends: Vec<u64> = versions(&table).iter().filter_map(|v| v.txn).collect();
    assert_eq!(ends, [11, 15, 19, 22]);
    assert_eq!(check_table(&db, &At::head(), &table, 0), 22);
    // Each commit says which seqs it holds: the map both ways.
    let commits = annals::read_commits(&table).unwrap();
    let ranges: Vec<(u64, u64)> = commits.iter().filter_map(|c| c.annals).collect();
    assert_eq!(ranges, [(1, 11), (12, 15), (16, 19), (20, 22)]);
    assert_eq!(annals::delta_version_of(&commits, 1), Some(1));
    assert_eq!(annals::delta_version_of(&commits, 11), Some(1));
    assert_eq!(annals::delta_version_of(&commits, 12), Some(2));
    assert_eq!(annals::delta_version_of(&commits, 22), Some(4));
    assert_eq!(annals::delta_version_of(&commits, 23), None);
    assert_eq!(annals::seq_at_version(&commits, 0), 0);
    assert_eq!(annals::seq_at_version(&commits, 3), 19);
}

#[test]
fn each_batch_is_one_commit_and_a_rerun_continues_where_the_table_ends() {
    let (dir, db) = common::fresh();
    let table = dir.path().join("table");
    db.append(common::scenario()).unwrap();
    let first = db.publish_delta_with(&table, None, &per_batch()).unwrap();
    assert_eq!((first.from_seq, first.to_seq, first.commits), (0, 11, 1));
    // Nothing new: nothing written.
    let again = db.publish_delta_with(&table, None, &per_batch()).unwrap();
    assert_eq!((again.commits, again.version), (0, first.version));
    // Three more batches: three more commits, in order.
    let id = common::scenario()[2].id;
    db.retract(id, "unverified").unwrap();
    db.append(vec![gen::numbered(1), gen::numbered(2)]).unwrap();
    let mut fixed = gen::numbered(1);
    fixed.summary = Some("fixed".into());
    db.correct(fixed).unwrap();
    let next = db.publish_delta_with(&table, None, &per_batch()).unwrap();
    assert_eq!(
        (next.from_seq, next.to_seq, next.commits, next.entries),
        (11, 15, 3, 4)
    );
    assert_eq!(check_table(&db, &At::head(), &table, 0), 15);
    let all = rows(&table, &versions(&table).last().unwrap().files);
    let actions: Vec<(&str, i64)> = all[11..].iter().map(|r| (r.3.as_str(), r.5)).collect();
    assert_eq!(
        actions,
        [
            ("retracted", 2),
            ("created", 1),
            ("created", 1),
            ("corrected", 2)
        ]
    );
    assert_eq!(all[11].4, id.to_string());
}

#[test]
fn a_table_of_another_chain_or_a_diverged_history_is_refused() {
    let (dir, db) = common::fresh();
    let table = dir.path().join("table");
    db.append(common::scenario()).unwrap();
    db.publish_delta(&table, None).unwrap();
    // Another database: another chain.
    let (_d2, other) = common::fresh();
    other.append(vec![gen::numbered(7)]).unwrap();
    let e = other.publish_delta(&table, None).unwrap_err();
    assert!(
        matches!(e, Error::Conflict { .. }) && e.to_string().contains("mirrors chain"),
        "{e}"
    );
    // The same chain, diverged after the table's end: a copy of the
    // database takes other entries than the one that published.
    db.append(vec![gen::numbered(1)]).unwrap();
    db.publish_delta(&table, None).unwrap();
    let path = db.path().to_path_buf();
    db.close().unwrap();
    let copy = dir.path().join("copy");
    common::copy_dir(&path, &copy);
    let db = Annals::open(&path).unwrap();
    db.append(vec![gen::numbered(2)]).unwrap();
    db.publish_delta(&table, None).unwrap();
    let fork = Annals::open(&copy).unwrap();
    fork.append(vec![gen::numbered(3)]).unwrap();
    let e = fork.publish_delta(&table, None).unwrap_err();
    assert!(e.to_string().contains("diverged"), "{e}");
    // The refusal wrote nothing.
    assert_eq!(check_table(&db, &At::head(), &table, 0), 13);
    // An empty database has nothing to publish.
    let (_d3, empty) = common::fresh();
    assert!(empty.publish_delta(&dir.path().join("t3"), None).is_err());
}

#[test]
fn a_branch_table_holds_the_branchs_own_entries() {
    let (dir, db) = common::fresh();
    db.append(common::scenario()).unwrap();
    db.create_branch("what-if", None, None).unwrap();
    db.append(vec![gen::numbered(1)]).unwrap();
    let id = common::scenario()[0].id;
    db.write_branch(
        "what-if",
        vec![
            Op::Retract {
                id,
                reason: "hypothesis".into(),
            },
            Op::Append(gen::numbered(2)),
        ],
        None,
    )
    .unwrap();
    let table = dir.path().join("what-if");
    let r = db.publish_delta(&table, Some("what-if")).unwrap();
    assert_eq!((r.from_seq, r.to_seq, r.entries), (11, 13, 2));
    check_table(&db, &At::head().branch("what-if"), &table, 11);
    // The retraction is the second entry of an event created on main; the
    // branch's own event starts at version 1.
    let own = rows(&table, &versions(&table).last().unwrap().files);
    let got: Vec<(&str, i64)> = own.iter().map(|r| (r.3.as_str(), r.5)).collect();
    assert_eq!(got, [("retracted", 2), ("created", 1)]);
    let log = std::fs::read_to_string(table.join("_delta_log/00000000000000000000.json")).unwrap();
    for p in [
        "\"annals.fork_seq\":\"11\"",
        "\"annals.parent\":\"main\"",
        "\"annals.branch\":\"what-if\"",
    ] {
        assert!(log.contains(p), "{p} in {log}");
    }
    // Main's table is another table: publishing main there is refused.
    assert!(db.publish_delta(&table, None).is_err());
}

/// The table's last transaction version (the seq it covers), waiting up
/// to 30 s for it to reach `seq`.
fn wait_for_seq(table: &Path, seq: u64) -> u64 {
    let started = std::time::Instant::now();
    loop {
        let at = if table.join("_delta_log").exists() {
            versions(table).last().and_then(|v| v.txn).unwrap_or(0)
        } else {
            0
        };
        if at >= seq || started.elapsed() > std::time::Duration::from_secs(30) {
            return at;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn follow_publishes_what_other_processes_append() {
    let dir = tempfile::tempdir().unwrap();
    let (db, table) = (dir.path().join("db"), dir.path().join("table"));
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/src/cli/scenario.jsonl");
    assert!(common::annals(&db, &["init"], None).status.success());
    assert!(common::annals(&db, &["append", scenario], None)
        .status
        .success());
    let mut follower = std::process::Command::new(env!("CARGO_BIN_EXE_annals"))
        .arg("--db")
        .arg(&db)
        .args(["publish", "delta", "--follow", "--to"])
        .arg(&table)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(wait_for_seq(&table, 11), 11);
    // Another process appends while the follower runs: it takes the
    // database between the follower's runs.
    let line = annals::event_to_line(&gen::numbered(1), None);
    let appended = (0..100).any(|_| {
        let o = common::annals(&db, &["append"], Some(line.as_bytes()));
        o.status.success() || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            false
        }
    });
    assert!(appended, "the follower never let the database go");
    assert_eq!(wait_for_seq(&table, 12), 12);
    follower.kill().unwrap();
    follower.wait().unwrap();
    let db = Annals::open(&db).unwrap();
    assert_eq!(check_table(&db, &At::head(), &table, 0), 12);
}

const CHILD_ENV: &str = "ANNALS_DELTA_CHILD_DB";

/// The publishing side of the crash test: runs only inside the child.
#[test]
fn child_publisher() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let db = Annals::open(&path).unwrap();
    println!("opened");
    let table = Path::new(&path).parent().unwrap().join("table");
    // One commit per batch (5 entries each), so that a kill lands
    // between many commits.
    let opts = PublishOptions {
        max_entries: 5,
        ..PublishOptions::default()
    };
    let r = db.publish_delta_with(&table, None, &opts).unwrap();
    println!("published {}", r.to_seq);
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// kill -9 at a random moment of a publish of many batches, then a
/// re-run: the table holds every entry exactly once, in order, linked.
/// `ANNALS_DELTA_KILLS` sets the number of kills.
#[test]
fn a_killed_publish_writes_nothing_twice_and_skips_nothing() {
    let kills: u64 = std::env::var("ANNALS_DELTA_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template");
    {
        let db = Annals::open(&template).unwrap();
        for b in 0..60u64 {
            db.append((0..5).map(|i| gen::numbered(b * 5 + i)).collect())
                .unwrap();
        }
        db.close().unwrap();
    }
    let mut seed = 0x5851_f42d_4c95_7f2du64;
    let mut partial = 0;
    for kill in 0..kills {
        let run = dir.path().join(format!("run{kill}"));
        let path = run.join("db");
        common::copy_dir(&template, &path);
        let mut child = common::spawn_test("child_publisher", CHILD_ENV, &path);
        let _rest = common::wait_for(&mut child, "opened");
        std::thread::sleep(std::time::Duration::from_micros(
            common::xorshift(&mut seed) % 1_500_000,
        ));
        child.kill().unwrap();
        child.wait().unwrap();
        let table = run.join("table");
        if table.join("_delta_log").exists() {
            let v = versions(&table);
            if v.last().and_then(|v| v.txn).unwrap_or(0) < 300 {
                partial += 1;
            }
        }
        let db = Annals::open(&path).unwrap();
        let opts = PublishOptions {
            max_entries: 5,
            ..PublishOptions::default()
        };
        db.publish_delta_with(&table, None, &opts).unwrap();
        assert_eq!(check_table(&db, &At::head(), &table, 0), 300, "kill {kill}");
        let commits = versions(&table).iter().filter(|v| v.txn.is_some()).count();
        assert_eq!(commits, 60, "kill {kill}: one commit per batch, none twice");
    }
    eprintln!(
        "{kills} kills during a publish: {partial} left a partial table, all completed by a re-run"
    );
}

/// Appends a commit as another engine would: `actions` (JSON lines)
/// after a `commitInfo` naming `operation`.
fn foreign_commit(table: &Path, operation: &str, actions: &[Value]) {
    let next = versions(table).len();
    let mut text =
        serde_json::json!({"commitInfo": {"operation": operation, "engineInfo": "test"}})
            .to_string();
    for a in actions {
        text.push('\n');
        text.push_str(&a.to_string());
    }
    std::fs::write(
        table.join(format!("_delta_log/{next:020}.json")),
        text + "\n",
    )
    .unwrap();
}

/// The `add` actions live at the table's last version, as JSON.
fn live_adds(table: &Path) -> Vec<Value> {
    let live = versions(table).pop().unwrap().files;
    let logs = log_files(table);
    let mut out = Vec::new();
    for log in logs {
        for line in std::fs::read_to_string(&log).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(add) = v.get("add") {
                if live.contains(add["path"].as_str().unwrap()) {
                    out.push(add.clone());
                }
            }
        }
    }
    out
}

/// Another engine's OPTIMIZE (files rewritten, `dataChange: false`) is
/// passed over: publishing continues after it. A commit that changed rows
/// of annals' seqs (a DELETE) is refused, without reading the rows.
#[test]
fn another_engines_rearranging_is_passed_over_but_its_changes_are_refused() {
    let (dir, db) = common::fresh();
    let table = dir.path().join("table");
    db.append(common::scenario()).unwrap();
    db.append(vec![gen::numbered(1)]).unwrap();
    db.publish_delta_with(&table, None, &per_batch()).unwrap();
    // "OPTIMIZE": a file rewritten under a new name holding the same rows
    // (here: the same bytes), with no data change.
    let adds = live_adds(&table);
    assert_eq!(adds.len(), 2);
    let first = adds[0]["path"].as_str().unwrap();
    let copy = first.replace(".parquet", "-compacted.parquet");
    std::fs::copy(
        table.join(first.replace("%3D", "=")),
        table.join(copy.replace("%3D", "=")),
    )
    .unwrap();
    let mut add = adds[0].clone();
    add["path"] = serde_json::json!(copy);
    add["dataChange"] = serde_json::json!(false);
    let actions = [
        serde_json::json!({"remove": {"path": first, "dataChange": false,
            "deletionTimestamp": 1}}),
        serde_json::json!({ "add": add }),
    ];
    foreign_commit(&table, "OPTIMIZE", &actions);
    db.append(vec![gen::numbered(2)]).unwrap();
    let r = db.publish_delta_with(&table, None, &per_batch()).unwrap();
    assert_eq!((r.from_seq, r.to_seq, r.commits), (12, 13, 1));
    let commits = annals::read_commits(&table).unwrap();
    assert_eq!(commits[3].operation.as_deref(), Some("OPTIMIZE"));
    assert!(!commits[3].data_change);
    assert_eq!(annals::delta_version_of(&commits, 13), Some(4));

    // A DELETE of annals' rows by another engine: refused, nothing written.
    let victim = live_adds(&table)[0].clone();
    foreign_commit(
        &table,
        "DELETE",
        &[
            serde_json::json!({"remove": {"path": victim["path"], "dataChange": true,
            "deletionTimestamp": 2}}),
        ],
    );
    db.append(vec![gen::numbered(3)]).unwrap();
    let before = versions(&table).len();
    let e = db.publish_delta(&table, None).unwrap_err();
    assert!(
        matches!(e, Error::Conflict { .. }) && e.to_string().contains("DELETE"),
        "{e}"
    );
    assert_eq!(versions(&table).len(), before);
}

/// Checkpoints every `checkpoint_every` versions, and `_last_checkpoint`
/// names the newest, so that a reader replays at most that many commits.
#[test]
fn checkpoints_are_written_as_often_as_asked() {
    let (dir, db) = common::fresh();
    for b in 0..12u64 {
        db.append(vec![gen::numbered(b)]).unwrap();
    }
    let table = dir.path().join("table");
    let opts = PublishOptions {
        max_entries: 1,
        checkpoint_every: 5,
        ..PublishOptions::default()
    };
    let r = db.publish_delta_with(&table, None, &opts).unwrap();
    assert_eq!((r.commits, r.version), (12, 12));
    let mut checkpoints: Vec<String> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".checkpoint"))
        .collect();
    checkpoints.sort();
    assert_eq!(
        checkpoints,
        [
            "00000000000000000004.checkpoint.parquet",
            "00000000000000000009.checkpoint.parquet"
        ]
    );
    let last: Value = serde_json::from_str(
        &std::fs::read_to_string(table.join("_delta_log/_last_checkpoint")).unwrap(),
    )
    .unwrap();
    assert_eq!(last["version"], 9);
    // And the table still reads back whole.
    assert_eq!(check_table(&db, &At::head(), &table, 0), 12);
}
