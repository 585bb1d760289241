//! The command line: its output is an API (formats, exit codes).

mod common;

use common::*;
use serde_json::Value;

fn jsonl(out: &std::process::Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", stderr(out));
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn loaded() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    assert!(annals(&db, &["init"], None).status.success());
    let scenario = include_str!("../src/cli/scenario.jsonl");
    let out = annals(&db, &["append", "-"], Some(scenario.as_bytes()));
    let rows = jsonl(&out);
    assert_eq!(rows.len(), 11);
    assert_eq!(rows[0]["seq"], 1);
    assert!(rows[0]["id"].is_string());
    (dir, db)
}

#[test]
fn init_twice_is_an_error() {
    let (_d, db) = loaded();
    let out = annals(&db, &["init"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"));
}

#[test]
fn append_from_a_file_and_expect_seq() {
    let (dir, db) = loaded();
    let file = dir.path().join("more.jsonl");
    std::fs::write(
        &file,
        "{\"kind\":\"statement\",\"occurred\":\"2025-12-04\"}\n\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = annals(&db, &["append", f, "--expect-seq", "3"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("expected seq 3"), "{}", stderr(&out));
    let rows = jsonl(&annals(&db, &["append", f, "--expect-seq", "11"], None));
    assert_eq!(rows[0]["seq"], 12);
}

#[test]
fn query_filters_combine_and_print_events_in_the_interchange_format() {
    let (_d, db) = loaded();
    let rows = jsonl(&annals(
        &db,
        &[
            "query",
            "--format",
            "jsonl",
            "--kind",
            "airspace_violation",
            "--country",
            "PL",
            "--country",
            "RO",
            "--from",
            "2025",
            "--to",
            "2025",
        ],
        None,
    ));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["seq"], 2);
    assert_eq!(rows[1]["occurred"]["from"], "2025-09");
    assert!(rows[0]["recorded_at"].as_str().unwrap().ends_with('Z'));
    // Each printed line parses back as an event.
    for r in &rows {
        annals::parse_event(&r.to_string()).unwrap();
    }
    let all = jsonl(&annals(&db, &["query", "--format", "jsonl"], None));
    assert_eq!(all.len(), 11);
    let starts: Vec<&str> = all
        .iter()
        .map(|r| {
            r["occurred"]
                .as_str()
                .or(r["occurred"]["from"].as_str())
                .unwrap()
        })
        .collect();
    assert_eq!(starts.first(), Some(&"2025-06"), "{starts:?}");
    assert_eq!(starts.last(), Some(&"2026"), "{starts:?}");
    let actor = jsonl(&annals(
        &db,
        &["query", "--format", "jsonl", "--actor", "  mark RUTTE "],
        None,
    ));
    assert_eq!(actor.len(), 3);
    let limited = jsonl(&annals(
        &db,
        &["query", "--format", "jsonl", "--limit", "2"],
        None,
    ));
    assert_eq!(limited.len(), 2);
}

#[test]
fn views_in_each_format() {
    let (_d, db) = loaded();
    let countries = jsonl(&annals(
        &db,
        &["view", "by-country", "--format", "jsonl"],
        None,
    ));
    let pl = countries.iter().find(|r| r["country"] == "PL").unwrap();
    assert_eq!(pl["count"], 4);
    assert_eq!(pl["by_kind"]["airspace_violation"], 2);
    assert_eq!(pl["first"], "2025-09");
    assert_eq!(pl["last"], "2025-11");
    let actors = jsonl(&annals(
        &db,
        &["view", "by-actor", "--format", "jsonl"],
        None,
    ));
    let russia = actors.iter().find(|r| r["actor"] == "Russia").unwrap();
    assert_eq!(russia["by_role"]["alleged_perpetrator"], 3);
    assert_eq!(russia["countries"], serde_json::json!(["PL", "RO"]));
    let days = jsonl(&annals(
        &db,
        &[
            "view",
            "by-date",
            "--granularity",
            "day",
            "--format",
            "jsonl",
        ],
        None,
    ));
    let sept = days.iter().find(|r| r["bucket"] == "2025-09").unwrap();
    assert_eq!(sept["precision"], "month");
    let json: Value = serde_json::from_str(&stdout(&annals(
        &db,
        &["view", "by-country", "--format", "json"],
        None,
    )))
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), countries.len());
    let table = stdout(&annals(&db, &["view", "by-actor"], None));
    assert!(table.lines().all(|l| l.chars().count() <= 80), "{table}");
    assert!(table.starts_with("ACTOR"));
    let bad = annals(&db, &["view", "by-date", "--granularity", "week"], None);
    assert_eq!(bad.status.code(), Some(1));
    // One row alone, and pages of a country's actors and of the by-actor
    // view, give what the whole views give.
    let run = |args: &[&str]| {
        let mut all = vec!["view"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--format", "jsonl"]);
        jsonl(&annals(&db, &all, None))
    };
    assert_eq!(run(&["by-country", "--country", "PL"]), vec![pl.clone()]);
    assert_eq!(pl["more_actors"], false);
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["by-country", "--country", "PL", "--actors", "--limit", "2"];
        if let Some(a) = &after {
            args.extend_from_slice(&["--after", a]);
        }
        let page = run(&args);
        let Some(last) = page.last() else { break };
        after = last["actor"].as_str().map(str::to_string);
        paged.extend(page.iter().map(|r| r["actor"].clone()));
    }
    assert_eq!(Value::Array(paged), pl["actors"]);
    assert_eq!(
        run(&["by-actor", "--actor", "RUSSIA"]),
        vec![russia.clone()]
    );
    let first_two = run(&["by-actor", "--limit", "2"]);
    assert_eq!(first_two, actors[..2].to_vec());
    let next = run(&[
        "by-actor",
        "--after",
        first_two[1]["actor"].as_str().unwrap(),
        "--limit",
        "1",
    ]);
    assert_eq!(next, actors[2..3].to_vec());
    for misuse in [
        &["view", "by-actor", "--country", "PL"][..],
        &["view", "by-country", "--actors"],
        &["view", "by-country", "--limit", "3"],
        &["view", "by-date", "--actor", "Russia"],
    ] {
        let out = annals(&db, misuse, None);
        assert_eq!(out.status.code(), Some(2), "{misuse:?}: {}", stderr(&out));
    }
}

#[test]
fn correct_retract_get_history() {
    let (dir, db) = loaded();
    let id = "6a1f0c2e-0d5b-5c8e-9b1a-000000000006";
    let file = dir.path().join("fix.json");
    std::fs::write(&file, "{\n \"kind\": \"sabotage\",\n \"occurred\": \"2025-11\",\n \"countries\": [\"PL\", \"UA\"]\n}\n").unwrap();
    let out = jsonl(&annals(
        &db,
        &["correct", id, file.to_str().unwrap(), "--format", "jsonl"],
        None,
    ));
    assert_eq!(out[0]["seq"], 12);
    let got = jsonl(&annals(&db, &["get", id, "--format", "jsonl"], None));
    assert_eq!(got[0]["seq"], 6);
    assert_eq!(got[0]["corrected_seq"], 12);
    assert_eq!(got[0]["countries"], serde_json::json!(["PL", "UA"]));
    let out = jsonl(&annals(
        &db,
        &["retract", id, "--reason", "duplicate", "--format", "jsonl"],
        None,
    ));
    assert_eq!(out[0]["seq"], 13);
    let hist = jsonl(&annals(&db, &["history", id, "--format", "jsonl"], None));
    let actions: Vec<&str> = hist.iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["created", "corrected", "retracted"]);
    assert_eq!(hist[2]["reason"], "duplicate");
    let got = jsonl(&annals(&db, &["get", id, "--format", "jsonl"], None));
    assert_eq!(got[0]["retracted_seq"], 13);
    let q = jsonl(&annals(
        &db,
        &["query", "--kind", "sabotage", "--format", "jsonl"],
        None,
    ));
    assert!(q.is_empty());
    let out = annals(&db, &["retract", id, "--reason", "again"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("retracted"));
    // A correction naming another id is refused.
    std::fs::write(
        &file,
        r#"{"id":"6a1f0c2e-0d5b-5c8e-9b1a-000000000001","kind":"x","occurred":"2025"}"#,
    )
    .unwrap();
    let out = annals(
        &db,
        &[
            "correct",
            "6a1f0c2e-0d5b-5c8e-9b1a-000000000002",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let out = annals(&db, &["get", "not-a-uuid"], None);
    assert_eq!(out.status.code(), Some(1));
    let out = annals(&db, &["get", "00000000-0000-0000-0000-000000000000"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found"));
}

#[test]
fn head_stats_verify_rebuild() {
    let (_d, db) = loaded();
    let head = jsonl(&annals(&db, &["head", "--format", "jsonl"], None));
    assert_eq!(head[0]["seq"], 11);
    assert_eq!(head[0]["hash"].as_str().unwrap().len(), 64);
    let stats = jsonl(&annals(&db, &["stats", "--format", "jsonl"], None));
    assert_eq!(stats[0]["events"], 11);
    assert!(stats[0]["disk_bytes"].as_u64().unwrap() > 0);
    let v = jsonl(&annals(&db, &["verify", "--format", "jsonl"], None));
    assert_eq!(v[0]["ok"], true);
    let r = jsonl(&annals(&db, &["rebuild", "--format", "jsonl"], None));
    assert_eq!(r[0]["seq"], 11);
    let empty = tempfile::tempdir().unwrap();
    let e = db_path(&empty);
    annals(&e, &["init"], None);
    let head = jsonl(&annals(&e, &["head", "--format", "jsonl"], None));
    assert_eq!(head[0]["seq"], 0);
}

#[test]
fn db_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_annals"))
        .arg("init")
        .env("ANNALS_DB", &db)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(db.join("store").exists());
}

#[test]
fn a_second_process_gets_in_use_at_once() {
    use std::io::Write;
    let (_d, db) = loaded();
    let spawn = || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_annals"))
            .arg("--db")
            .arg(&db)
            .args(["append", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"{\"kind\":\"meeting\",\"occurred\":\"2025\"}\n")
            .unwrap();
        (child, stdin)
    };
    let (mut writer, mut stdin) = spawn();
    // Wait until the writer holds the lock (it is still reading its input).
    let lock = db.join("LOCK");
    let start = std::time::Instant::now();
    loop {
        assert!(
            start.elapsed().as_secs() < 30,
            "the writer never took the lock"
        );
        if writer.try_wait().unwrap().is_some() {
            // Our probe raced the writer's open; it got "in use". Again.
            (writer, stdin) = spawn();
            continue;
        }
        let probe = std::fs::File::open(&lock).unwrap();
        if matches!(probe.try_lock(), Err(std::fs::TryLockError::WouldBlock)) {
            break;
        }
        drop(probe);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let t = std::time::Instant::now();
    let out = annals(&db, &["head"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    assert!(
        t.elapsed().as_secs() < 5,
        "in use must be reported at once, not after a wait"
    );
    drop(stdin);
    let out = writer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(jsonl(&annals(&db, &["head", "--format", "jsonl"], None))[0]["seq"] == 12);
}

#[test]
fn demo_runs() {
    let dir = tempfile::tempdir().unwrap();
    let demo = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_annals"))
            .arg("demo")
            .current_dir(dir.path())
            .env_remove("ANNALS_DB")
            .output()
            .unwrap()
    };
    let out = demo();
    assert!(out.status.success(), "{}", stderr(&out));
    // It leaves its database, says how to serve it, and replaces it on
    // the next run.
    let db = dir.path().join("annals-demo.db");
    assert!(jsonl(&annals(&db, &["head", "--format", "jsonl"], None))[0]["seq"] == 14);
    if cfg!(feature = "serve") {
        assert!(stdout(&out).contains("annals serve --db annals-demo.db"));
    }
    let again = demo();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(jsonl(&annals(&db, &["head", "--format", "jsonl"], None))[0]["seq"] == 14);
    // A database that is not the demo's is never replaced.
    let other = dir.path().join("other.db");
    assert!(annals(&other, &["init"], None).status.success());
    let line = br#"{"kind":"k","occurred":"2025"}"#;
    assert!(annals(&other, &["append"], Some(line)).status.success());
    let refused = annals(&other, &["demo", "--out", other.to_str().unwrap()], None);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not a demo database"),
        "{}",
        stderr(&refused)
    );
    let text = stdout(&out);
    for step in [
        "View by country",
        "airspace violations in Poland or Romania",
        "correction",
        "retraction",
        "Verify",
    ] {
        assert!(text.contains(step), "missing {step}");
    }
}

#[test]
fn as_of_and_branches_from_the_command_line() {
    let (_d, db) = loaded();
    let id = "6a1f0c2e-0d5b-5c8e-9b1a-000000000002";
    jsonl(&annals(
        &db,
        &["retract", id, "--reason", "test", "--format", "jsonl"],
        None,
    ));
    // As of seq 11 the event is there; at the head it is retracted.
    let then = jsonl(&annals(
        &db,
        &[
            "query",
            "--kind",
            "airspace_violation",
            "--as-of",
            "11",
            "--format",
            "jsonl",
        ],
        None,
    ));
    assert_eq!(then.len(), 2);
    let now = jsonl(&annals(
        &db,
        &["query", "--kind", "airspace_violation", "--format", "jsonl"],
        None,
    ));
    assert_eq!(now.len(), 1);
    let past = jsonl(&annals(
        &db,
        &[
            "view",
            "by-country",
            "--as-of",
            "2000-01-01T00:00:00Z",
            "--format",
            "jsonl",
        ],
        None,
    ));
    assert!(past.is_empty());
    let hist = jsonl(&annals(
        &db,
        &["history", id, "--as-of", "11", "--format", "jsonl"],
        None,
    ));
    assert_eq!(hist.len(), 1);
    let bad = annals(&db, &["query", "--as-of", "last week"], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("as_of"), "{}", stderr(&bad));

    // A branch at seq 11 sees the event; main's retraction is not on it.
    let created = jsonl(&annals(
        &db,
        &["branch", "create", "w", "--at", "11", "--format", "jsonl"],
        None,
    ));
    assert_eq!(created[0]["base_seq"], 11);
    let on_branch = jsonl(&annals(
        &db,
        &["get", id, "--branch", "w", "--format", "jsonl"],
        None,
    ));
    assert!(on_branch[0].get("retracted_seq").is_none());
    let input =
        b"{\"kind\":\"airspace_violation\",\"occurred\":\"2025-12-10\",\"countries\":[\"LT\"]}\n";
    let w = jsonl(&annals(
        &db,
        &["append", "-", "--branch", "w", "--format", "jsonl"],
        Some(input),
    ));
    assert_eq!(w[0]["seq"], 12, "a branch continues its base's numbering");
    let main_lt = jsonl(&annals(
        &db,
        &["query", "--country", "LT", "--format", "jsonl"],
        None,
    ));
    assert!(main_lt.is_empty(), "main never sees a branch's writes");
    let diff = jsonl(&annals(&db, &["diff", "w", "--format", "jsonl"], None));
    let keys: Vec<&str> = diff.iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["LT"]);
    assert!(diff[0]["main"].is_null());
    let vs_head = jsonl(&annals(
        &db,
        &["diff", "w", "--against", "head", "--format", "jsonl"],
        None,
    ));
    assert!(
        vs_head.len() > 1,
        "against main's head the retraction shows too"
    );
    let list = jsonl(&annals(&db, &["branch", "list", "--format", "jsonl"], None));
    assert_eq!(list[0]["head_seq"], 12);
    let dup = annals(&db, &["branch", "create", "w"], None);
    assert_eq!(dup.status.code(), Some(1));
    let bad = annals(&db, &["branch", "create", "Bad Name"], None);
    assert_eq!(bad.status.code(), Some(1));
    jsonl(&annals(
        &db,
        &["branch", "drop", "w", "--format", "jsonl"],
        None,
    ));
    let missing = annals(&db, &["query", "--branch", "w"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no branch"));
}
