//! Excision: an event's payload leaves every byte of the database folder,
//! the chain still verifies, reads behave as if the event were retracted,
//! and an interrupted excision is finished on the next open.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use annals::{Annals, AsOf, At, Change, Error, Event, Granularity, Op, Projection};
use common::*;
use uuid::Uuid;

const SECRETS: [&str; 6] = [
    "Jan Kowalski-Zqx",
    "zqx-street-17",
    "https://zqx.example/witness",
    "zqx_tag",
    "zqx-attr-value",
    "Branch-only Zqx",
];

fn secret_event(id: Uuid) -> Event {
    ev(&format!(
        r#"{{"id":"{id}","kind":"arrest","occurred":"2025-09-14","countries":["PL"],
            "location":{{"name":"{}","country":"PL"}},
            "actors":[{{"name":"{}","role":"detainee"}}],
            "summary":"{} was detained","sources":[{{"name":"tip","url":"{}"}}],
            "tags":["{}"],"attrs":{{"note":"{}"}}}}"#,
        SECRETS[1], SECRETS[0], SECRETS[0], SECRETS[2], SECRETS[3], SECRETS[4]
    ))
}

/// Remembers every tag it saw, so its checkpoint holds the secret tag.
struct Tags;

impl Projection for Tags {
    type State = BTreeMap<String, i64>;
    fn name(&self) -> &str {
        "tags"
    }
    fn init(&self) -> Self::State {
        BTreeMap::new()
    }
    fn apply(&self, state: &mut Self::State, c: &Change<'_>) {
        for t in c.after.iter().flat_map(|e| &e.tags) {
            *state.entry(t.clone()).or_default() += 1;
        }
    }
    fn encode(&self, state: &Self::State) -> Option<Vec<u8>> {
        serde_json::to_vec(state).ok()
    }
    fn decode(&self, bytes: &[u8]) -> Option<Self::State> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Every file under `dir`, recursively, by path.
fn all_files(dir: &Path) -> BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.insert(path, bytes);
            }
        }
    }
    files
}

/// No file under `dir` contains any of `needles`.
fn assert_no_bytes(dir: &Path, needles: &[&str]) {
    let files = all_files(dir);
    assert!(files.len() > 3, "scanned only {} files", files.len());
    for (path, bytes) in files {
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "{n:?} is still in {}",
                path.display()
            );
        }
    }
}

/// Builds, at `path`, a database in which the secret event was created,
/// corrected on main and on a branch that also has a secret event of its
/// own, read into every derived file and checkpointed; and at `reference`
/// the same history with both events retracted instead. Returns the
/// secret id and the branch-only one.
fn build(path: &Path, reference: &Path) -> (Uuid, Uuid) {
    let id = Uuid::from_u128(0x5ec7e7);
    let branch_only = Uuid::from_u128(0x5ec7e8);
    for (p, excising) in [(path, true), (reference, false)] {
        let db = Annals::builder(p)
            .snapshot_every_entries(4)
            .checkpoint_every_entries(8)
            .open()
            .unwrap();
        let projection = db.register(Tags).unwrap();
        db.append(scenario()).unwrap();
        db.append(vec![secret_event(id)]).unwrap();
        db.create_branch("what-if", None, None).unwrap();
        let mut fixed = secret_event(id);
        fixed.summary = Some(format!("{} was released", SECRETS[0]));
        db.correct(fixed.clone()).unwrap();
        let more = scenario()
            .into_iter()
            .take(3)
            .zip(1u128..)
            .map(|(mut e, n)| {
                e.id = Uuid::from_u128(n);
                e
            });
        db.append(more.collect()).unwrap();
        let mut on_branch = fixed.clone();
        on_branch.countries = vec!["RO".into()];
        let mut own = secret_event(branch_only);
        own.actors[0].name = SECRETS[5].into();
        db.write_branch(
            "what-if",
            vec![Op::Correct(on_branch), Op::Append(own)],
            None,
        )
        .unwrap();
        // Reads that fill the derived files: views at the head and as of
        // a past seq, a query, the branch's views.
        db.by_actor().unwrap();
        db.by_date(Granularity::Month).unwrap();
        let past = At::head().as_of(AsOf::Seq(db.head().seq - 2));
        db.reader(&past).unwrap().by_actor().unwrap();
        db.reader(&At::head().branch("what-if"))
            .unwrap()
            .by_actor()
            .unwrap();
        if !excising {
            db.retract(id, "reference").unwrap();
            let retract = |id| Op::Retract {
                id,
                reason: "reference".into(),
            };
            db.write_branch("what-if", vec![retract(id), retract(branch_only)], None)
                .unwrap();
        }
        assert_eq!(projection.state().1.get("zqx_tag"), Some(&2));
        db.checkpoint().unwrap();
        db.close().unwrap();
    }
    (id, branch_only)
}

#[test]
fn an_excised_payload_is_gone_from_every_byte_and_the_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (path, reference) = (dir.path().join("db"), dir.path().join("ref"));
    let (id, branch_only) = build(&path, &reference);
    let head_before = Annals::open(&path).unwrap().head();

    let done = Annals::excise(&path, id, "erasure request #12").unwrap();
    assert_eq!(done.id, id);
    assert_eq!(done.entries.get("main").map(Vec::len), Some(2));
    assert_eq!(done.entries.get("what-if").map(Vec::len), Some(1));
    let other = Annals::excise(&path, branch_only, "erasure request #13").unwrap();
    assert_eq!(other.entries.keys().collect::<Vec<_>>(), ["what-if"]);
    assert_no_bytes(&path, &SECRETS);

    let db = Annals::open(&path).unwrap();
    let projection = db.register(Tags).unwrap();
    // The head, hash included, is what it was: nothing was appended.
    assert_eq!(db.head(), head_before);
    let report = db.verify_from(1).unwrap();
    assert_eq!(report.branches, 1);
    assert_eq!(db.get(id).unwrap(), None);
    let history = db.history(id).unwrap();
    assert_eq!(history.len(), 2);
    for v in &history {
        assert_eq!((v.action, v.event.is_none()), ("excised", true));
        assert_eq!(v.reason.as_deref(), Some("erasure request #12"));
        assert_eq!(v.excised_at, Some(done.at));
    }
    assert_eq!(db.excision(id).unwrap(), Some(done));
    let branch = db.reader(&At::head().branch("what-if")).unwrap();
    assert_eq!(branch.get(id).unwrap(), None);
    assert_eq!(branch.get(branch_only).unwrap(), None);
    assert_eq!(branch.history(id).unwrap().len(), 2);
    assert_eq!(projection.state().1.get("zqx_tag"), None);

    // Views and queries equal those of the same history with the events
    // retracted instead, on main and on the branch; and in the past, where
    // the reference still has the event, they lack it.
    let refdb = Annals::open(&reference).unwrap();
    let past = At::head().as_of(AsOf::Seq(head_before.seq - 2));
    let before = events_at(&refdb, &past);
    let mut after = events_at(&db, &past);
    assert!(before.contains_key(&id));
    after.insert(id, before[&id].clone());
    assert_eq!(after, before);
    let pl = |db: &Annals| {
        let rows = db.reader(&past).unwrap().by_country().unwrap();
        rows.iter().find(|r| r.country == "PL").map(|r| r.count)
    };
    assert_eq!(pl(&db).map(|n| n + 1), pl(&refdb));
    for at in [At::head(), At::head().branch("what-if")] {
        let (a, b) = (db.reader(&at).unwrap(), refdb.reader(&at).unwrap());
        assert_eq!(a.by_country().unwrap(), b.by_country().unwrap(), "{at:?}");
        assert_eq!(a.by_actor().unwrap(), b.by_actor().unwrap(), "{at:?}");
        assert_eq!(
            a.by_date(Granularity::Day).unwrap(),
            b.by_date(Granularity::Day).unwrap()
        );
        assert_eq!(events_at(&db, &at), events_at(&refdb, &at), "{at:?}");
    }

    // The id cannot come back, on main or on a branch.
    let again = db.append(vec![secret_event(id)]).unwrap_err();
    assert!(matches!(again, Error::Conflict { .. }), "{again}");
    let again = db
        .write_branch("what-if", vec![Op::Append(secret_event(id))], None)
        .unwrap_err();
    assert!(again.to_string().contains("excised"), "{again}");
    // A branch reader holds the branch's log, hence the store, open.
    drop((projection, branch));
    db.close().unwrap();
    let twice = Annals::excise(&path, id, "again").unwrap_err();
    assert!(twice.to_string().contains("already excised"), "{twice}");
}

#[test]
fn bad_excisions_change_nothing() {
    let (dir, db) = fresh();
    db.append(scenario()).unwrap();
    let id = db.query(&annals::Query::new()).unwrap()[0].event.id;
    let path = db.path().to_path_buf();
    let (head, record) = (db.head(), db.get(id).unwrap());
    db.close().unwrap();
    let unchanged = |path: &Path| {
        let db = Annals::open(path).unwrap();
        assert_eq!((db.head(), db.get(id).unwrap()), (head, record.clone()));
        db.verify().unwrap();
        assert!(!path.join("EXCISING").exists());
    };
    let unknown = Annals::excise(&path, Uuid::from_u128(7), "gone").unwrap_err();
    assert!(matches!(unknown, Error::NotFound { .. }), "{unknown}");
    let empty = Annals::excise(&path, id, "  ").unwrap_err();
    assert!(matches!(empty, Error::Invalid { .. }), "{empty}");
    let nowhere = Annals::excise(dir.path().join("nothing"), id, "gone").unwrap_err();
    assert!(matches!(nowhere, Error::BadPath { .. }), "{nowhere}");
    unchanged(&path);
    // In use elsewhere: refused.
    let open = Annals::open(&path).unwrap();
    let busy = Annals::excise(&path, id, "gone").unwrap_err();
    assert!(matches!(busy, Error::InUse { .. }), "{busy}");
    assert!(open.get(id).unwrap().is_some());
}

#[test]
fn the_cli_excises_and_history_tells() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    let id = Uuid::from_u128(0x5ec7e7);
    let line = annals::event_to_line(&secret_event(id), None);
    assert!(annals(&db, &["init"], None).status.success());
    assert!(annals(&db, &["append"], Some(line.as_bytes()))
        .status
        .success());
    let id = id.to_string();
    let out = annals(
        &db,
        &[
            "--format",
            "jsonl",
            "excise",
            &id,
            "--reason",
            "court order",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["entries"]["main"], serde_json::json!([1]));
    let out = annals(&db, &["get", &id], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("excised"), "{}", stderr(&out));
    assert!(stderr(&out).contains("court order"), "{}", stderr(&out));
    let out = annals(&db, &["--format", "jsonl", "history", &id], None);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["action"], "excised");
    assert_eq!(v["reason"], "court order");
    assert!(v["excised_at"].is_string());
    let out = annals(&db, &["history", &id], None);
    assert!(stdout(&out).contains("excised"), "{}", stdout(&out));
    let out = annals(&db, &["verify"], None);
    assert!(out.status.success(), "{}", stdout(&out));
    let out = annals(&db, &["excise", &id, "--reason", "again"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_no_bytes(&db, &SECRETS[..5]);
}

const CHILD_ENV: &str = "ANNALS_EXCISE_CHILD_DB";

/// The excising side of the crash test: runs only inside the child process.
#[test]
fn child_exciser() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    println!("started");
    let done = Annals::excise(&path, Uuid::from_u128(0x5ec7e7), "crash test").unwrap();
    println!("excised {}", done.at);
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// kill -9 at a random moment of an excision: the next open either finds
/// the event untouched or finishes the excision, so that no byte of the
/// payload is left; `verify` passes either way, and an acknowledged
/// excision is never undone. `ANNALS_EXCISE_KILLS` sets the number of kills.
#[test]
fn a_killed_excision_is_finished_or_never_begun() {
    let kills: u64 = std::env::var("ANNALS_EXCISE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let id = Uuid::from_u128(0x5ec7e7);
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template");
    {
        let db = Annals::builder(&template)
            .checkpoint_every_entries(500)
            .open()
            .unwrap();
        let many = (0..2000u64).map(|n| {
            let mut e = gen::event((n % 200) as u8, n as usize, &[n as usize], None, n as usize);
            e.id = Uuid::from_u128(u128::from(n) + 1000);
            e
        });
        db.append(many.collect()).unwrap();
        db.append(vec![secret_event(id)]).unwrap();
        db.create_branch("what-if", None, None).unwrap();
        let mut fixed = secret_event(id);
        fixed.summary = Some(format!("{} was released", SECRETS[0]));
        db.correct(fixed.clone()).unwrap();
        db.write_branch("what-if", vec![Op::Correct(fixed)], None)
            .unwrap();
        db.close().unwrap();
    }
    // How long one excision takes here, so that the kills land inside it.
    let timed = dir.path().join("timed");
    copy_dir(&template, &timed);
    let started = std::time::Instant::now();
    Annals::excise(&timed, id, "timing").unwrap();
    let window = started.elapsed().as_micros() as u64 * 3 / 2 + 1;

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut finished, mut untouched) = (0, 0);
    for kill in 0..kills {
        let path = dir.path().join(format!("db{kill}"));
        copy_dir(&template, &path);
        let mut child = common::spawn_test("child_exciser", CHILD_ENV, &path);
        let lines = common::wait_for(&mut child, "started");
        std::thread::sleep(std::time::Duration::from_micros(
            xorshift(&mut seed) % window,
        ));
        child.kill().unwrap();
        child.wait().unwrap();
        let acked = lines.map_while(Result::ok).any(|l| l.contains("excised"));
        let db = Annals::open(&path).unwrap();
        db.verify().unwrap();
        let excised = db.excision(id).unwrap().is_some();
        if excised {
            assert_eq!(db.get(id).unwrap(), None);
            db.close().unwrap();
            assert_no_bytes(&path, &SECRETS[..5]);
            finished += 1;
        } else {
            assert!(!acked, "kill {kill}: an acknowledged excision was undone");
            let e = db.get(id).unwrap().map(|r| r.event.summary);
            assert_eq!(e, Some(Some(format!("{} was released", SECRETS[0]))));
            untouched += 1;
            db.close().unwrap();
        }
    }
    eprintln!(
        "{kills} kills during an excision: {finished} finished on open, {untouched} untouched"
    );
}

/// Every version of the victim carries a unique marker, so that its bytes
/// can be looked for afterwards.
fn marked(ops: &[Vec<Op>], victim: Uuid, n: &mut usize) -> Vec<Vec<Op>> {
    ops.iter()
        .map(|batch| {
            batch
                .iter()
                .map(|op| match op {
                    Op::Append(e) | Op::Correct(e) if e.id == victim => {
                        let mut e = e.clone();
                        *n += 1;
                        e.summary = Some(format!("zqx-victim-version-{n}"));
                        match op {
                            Op::Append(_) => Op::Append(e),
                            _ => Op::Correct(e),
                        }
                    }
                    other => other.clone(),
                })
                .collect()
        })
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Over random histories on main and a branch: after excising one
    /// event, `verify` passes, no byte of any of its versions is left, and
    /// main's and the branch's views and events equal those of the same
    /// history with the event retracted instead.
    #[test]
    fn excision_equals_retraction_and_leaves_no_byte(
        main_ops in gen::batches(6),
        branch_ops in gen::batches(4),
        later in gen::batches(3),
        victim in 0u128..8,
    ) {
        let victim = Uuid::from_u128(victim + 1);
        let mut n = 0;
        let (main_ops, branch_ops, later) = (
            marked(&main_ops, victim, &mut n),
            marked(&branch_ops, victim, &mut n),
            marked(&later, victim, &mut n),
        );
        let dir = tempfile::tempdir().unwrap();
        let (path, reference) = (dir.path().join("db"), dir.path().join("ref"));
        for p in [&path, &reference] {
            let db = Annals::builder(p).checkpoint_every_entries(5).snapshot_every_entries(3).open().unwrap();
            // A batch that is refused (a correction of an unknown event)
            // changes nothing; both databases see the same refusals.
            for b in &main_ops {
                let _ = db.write(b.clone(), None);
            }
            db.create_branch("b", None, None).unwrap();
            for b in &branch_ops {
                let _ = db.write_branch("b", b.clone(), None);
            }
            for b in &later {
                let _ = db.write(b.clone(), None);
            }
            db.checkpoint().unwrap();
            db.close().unwrap();
        }
        let known = {
            let db = Annals::open(&reference).unwrap();
            let lines = [At::head(), At::head().branch("b")];
            let mut known = false;
            for at in &lines {
                let r = db.reader(at).unwrap();
                if let Some(rec) = r.get(victim).unwrap() {
                    known = true;
                    if rec.retracted_seq.is_none() {
                        let op = vec![Op::Retract { id: victim, reason: "reference".into() }];
                        match at.branch.as_deref() {
                            Some(b) => { db.write_branch(b, op, None).unwrap(); }
                            None => { db.write(op, None).unwrap(); }
                        }
                    }
                }
            }
            db.close().unwrap();
            known
        };
        let done = Annals::excise(&path, victim, "property");
        if !known {
            proptest::prop_assert!(matches!(done, Err(Error::NotFound { .. })), "{:?}", done);
            return Ok(());
        }
        done.unwrap();
        if n > 0 {
            assert_no_bytes(&path, &["zqx-victim"]);
        }
        let (db, refdb) = (Annals::open(&path).unwrap(), Annals::open(&reference).unwrap());
        db.verify().unwrap();
        for at in [At::head(), At::head().branch("b")] {
            let (a, b) = (db.reader(&at).unwrap(), refdb.reader(&at).unwrap());
            proptest::prop_assert_eq!(a.by_country().unwrap(), b.by_country().unwrap());
            proptest::prop_assert_eq!(a.by_actor().unwrap(), b.by_actor().unwrap());
            proptest::prop_assert_eq!(a.by_date(Granularity::Month).unwrap(), b.by_date(Granularity::Month).unwrap());
            proptest::prop_assert_eq!(a.get(victim).unwrap(), None);
            drop((a, b));
            proptest::prop_assert_eq!(events_at(&db, &at), events_at(&refdb, &at));
        }
    }
}
