//! `annals serve` over loopback: every route against the CLI's answer,
//! every error status, auth, paging, streaming, and the live feed resumed
//! with `Last-Event-ID` (no gap, no repeat).

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use common::http::{get, request, Response, Server, Sse};
use common::{annals, stdout};
use serde_json::{json, Value};

const TOKEN: &str = "0123456789abcdef-test-token";

/// The demo database, and a token file beside it.
fn demo() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    common::demo_with_token(TOKEN)
}

fn cli_json(db: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let out = annals(db, &all, None);
    assert!(out.status.success(), "{args:?}: {}", common::stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: &Value) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    request(addr, "POST", path, &headers, body.to_string().as_bytes()).unwrap()
}

fn status_kind(r: &Response) -> (u16, String) {
    (
        r.status,
        r.json()["kind"].as_str().unwrap_or("").to_string(),
    )
}

/// Strips what only pages carry, to compare with the CLI's records.
fn without_span(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.remove("span");
    }
    v
}

/// A page's events as the CLI prints them.
fn records(page: &Value) -> Value {
    Value::Array(
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .cloned()
            .map(without_span)
            .collect(),
    )
}

#[test]
fn reads_mirror_the_cli() {
    let (_dir, db, _) = demo();
    let expected_head = cli_json(&db, &["head"]);
    let expected_pl = cli_json(&db, &["query", "--country", "PL"]);
    let expected_then = cli_json(&db, &["query", "--country", "PL", "--as-of", "3"]);
    let expected_view = cli_json(&db, &["view", "by-country", "--as-of", "5"]);
    let expected_months = cli_json(&db, &["view", "by-date", "--granularity", "month"]);
    let expected_branches = cli_json(&db, &["branch", "list"]);
    let expected_diff = cli_json(&db, &["diff", "no-attribution", "--view", "by-country"]);
    let expected_history = cli_json(&db, &["history", "6a1f0c2e-0d5b-5c8e-9b1a-000000000006"]);
    let all = cli_json(&db, &["query"]);
    let expected_lines = stdout(&annals(
        &db,
        &["--format", "jsonl", "query", "--country", "PL"],
        None,
    ));
    let server = Server::start(&db, &["--read-only"]);
    let addr = server.addr;

    let head = get(addr, "/head").json();
    assert_eq!(head["seq"], expected_head["seq"]);
    assert_eq!(head["hash"], expected_head["hash"]);
    assert_eq!(get(addr, "/head?as_of=3").json()["seq"], 3);

    let page = get(addr, "/events?country=PL").json();
    assert_eq!(records(&page), expected_pl);
    assert!(page["next"].is_null());
    let then = get(addr, "/events?country=PL&as_of=3").json();
    assert_eq!(records(&then), expected_then);

    // Spans: a month-precision event covers its month.
    let sept = &page["events"][0]["span"];
    assert_eq!(sept["precision"], "month");
    assert_eq!(
        sept["end_ms"].as_i64().unwrap() - sept["start_ms"].as_i64().unwrap(),
        30 * 86_400_000
    );

    // Pages of 3 walk the whole result once, in order, as of the first page.
    let mut walked = Vec::new();
    let mut next = Some(String::new());
    let mut first_seq = None;
    while let Some(cursor) = next {
        let path = if cursor.is_empty() {
            "/events?limit=3".to_string()
        } else {
            format!("/events?limit=3&cursor={cursor}")
        };
        let p = get(addr, &path).json();
        assert!(p["events"].as_array().unwrap().len() <= 3);
        first_seq.get_or_insert(p["seq"].clone());
        assert_eq!(
            &p["seq"],
            first_seq.as_ref().unwrap(),
            "every page reads one state"
        );
        walked.extend(
            p["events"]
                .as_array()
                .unwrap()
                .iter()
                .cloned()
                .map(without_span),
        );
        next = p["next"].as_str().map(str::to_string);
    }
    assert_eq!(Value::Array(walked), all);

    // A stream is the CLI's JSON Lines, line for line.
    let stream = request(
        addr,
        "GET",
        "/events?country=PL",
        &[("Accept", "application/x-ndjson")],
        b"",
    )
    .unwrap();
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(stream.text(), expected_lines);
    let capped = request(
        addr,
        "GET",
        "/events?limit=2",
        &[("Accept", "application/x-ndjson")],
        b"",
    )
    .unwrap();
    assert_eq!(capped.text().lines().count(), 2);

    let id = "6a1f0c2e-0d5b-5c8e-9b1a-000000000006";
    let one = get(addr, &format!("/events/{id}")).json();
    assert_eq!(
        one["countries"],
        json!(["PL", "UA"]),
        "the corrected version"
    );
    let before = get(addr, &format!("/events/{id}?as_of=11")).json();
    assert_eq!(before["countries"], json!(["PL"]));
    assert_eq!(
        get(addr, &format!("/events/{id}/history")).json(),
        expected_history
    );

    assert_eq!(get(addr, "/views/by-country?as_of=5").json(), expected_view);
    assert_eq!(
        get(addr, "/views/by-date?granularity=month").json(),
        expected_months
    );
    assert!(
        get(addr, "/views/by-actor")
            .json()
            .as_array()
            .unwrap()
            .len()
            > 3
    );
    // One row alone, a page of a country's actors, a page of actors.
    let countries = get(addr, "/views/by-country").json();
    let pl = countries
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["country"] == "PL")
        .unwrap()
        .clone();
    assert_eq!(
        get(addr, "/views/by-country?country=PL").json(),
        json!([pl])
    );
    assert_eq!(get(addr, "/views/by-country?country=AQ").json(), json!([]));
    let page = get(addr, "/views/by-country?country=PL&actors=true&limit=1").json();
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["actor"], pl["actors"][0]);
    let actors = get(addr, "/views/by-actor").json();
    let first = &actors[0]["actor"];
    assert_eq!(
        get(
            addr,
            &format!(
                "/views/by-actor?actor={}",
                first.as_str().unwrap().replace(' ', "%20")
            )
        )
        .json(),
        json!([actors[0]])
    );
    assert_eq!(
        get(addr, "/views/by-actor?limit=2").json(),
        json!(actors.as_array().unwrap()[..2])
    );
    for bad in [
        "/views/by-country?country=ZZ",
        "/views/by-country?actors=true",
        "/views/by-country?limit=2",
        "/views/by-country?country=PL&actors=true&limit=0",
        "/views/by-actor?actor=%20",
        "/views/by-actor?after=",
    ] {
        assert_eq!(get(addr, bad).status, 400, "{bad}");
    }
    let sources = get(addr, "/views/by-source?country=PL&granularity=month").json();
    assert!(sources
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["bucket"] == "2025-09"));
    assert_eq!(get(addr, "/branches").json(), expected_branches);
    assert_eq!(
        get(addr, "/branches/no-attribution/diff?view=by-country").json(),
        expected_diff
    );
    let ev_diff = get(addr, "/branches/no-attribution/diff?events=true").json();
    assert_eq!(ev_diff.as_array().unwrap().len(), 2, "{ev_diff}");
    let branch_events = get(addr, "/events?branch=no-attribution&country=LT").json();
    assert_eq!(branch_events["events"].as_array().unwrap().len(), 1);

    // A read-only server has no writes for `verify` to hold up: no token.
    let verify = get(addr, "/verify");
    assert_eq!(verify.status, 200);
    assert_eq!(verify.json()["ok"], true);

    // The page and the API description come from the binary.
    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.text().contains("annals timeline"));
    let html = page.text();
    for outside in ["src=\"http", "href=\"http", "<link", "@import", "url(http"] {
        assert!(
            !html.contains(outside),
            "the page loads nothing from elsewhere ({outside})"
        );
    }
    let spec = get(addr, "/openapi.json").json();
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "/head",
        "/events",
        "/events/{id}",
        "/events/{id}/history",
        "/events/{id}/correct",
        "/events/{id}/retract",
        "/views/by-country",
        "/views/by-actor",
        "/views/by-date",
        "/views/by-source",
        "/branches",
        "/branches/{name}",
        "/branches/{name}/diff",
        "/branches/{name}/merge",
        "/verify",
        "/subscribe",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} is not described");
    }
    assert!(server.stop().success());
}

#[test]
fn bad_requests_name_what_was_wrong() {
    let (_dir, db, token) = demo();
    let server = Server::start(
        &db,
        &[
            "--token-file",
            token.to_str().unwrap(),
            "--max-body-bytes",
            "4096",
        ],
    );
    let addr = server.addr;
    let check = |r: Response, status: u16, kind: &str, needle: &str| {
        let (s, k) = status_kind(&r);
        let body = r.json();
        assert_eq!((s, k.as_str()), (status, kind), "{body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{body} lacks {needle:?}"
        );
        body
    };

    let b = check(get(addr, "/events?contry=PL"), 400, "invalid", "contry");
    assert_eq!(b["field"], "contry");
    let b = check(get(addr, "/events?from=2025-13"), 400, "invalid", "from");
    assert_eq!(b["field"], "from");
    check(
        get(addr, "/events?as_of=yesterday"),
        400,
        "invalid",
        "as_of",
    );
    check(get(addr, "/events?limit=0"), 400, "invalid", "limit");
    check(
        get(addr, "/events?cursor=nonsense"),
        400,
        "invalid",
        "cursor",
    );
    check(get(addr, "/events?within=maybe"), 400, "invalid", "within");
    check(
        get(addr, "/events/not-a-uuid"),
        400,
        "invalid",
        "not-a-uuid",
    );
    check(
        get(addr, "/subscribe?after=999"),
        409,
        "conflict",
        "past the head",
    );
    check(
        get(addr, "/events/6a1f0c2e-0d5b-5c8e-9b1a-00000000ffff"),
        404,
        "not_found",
        "6a1f0c2e",
    );
    check(
        get(addr, "/events/6a1f0c2e-0d5b-5c8e-9b1a-00000000ffff/history"),
        404,
        "not_found",
        "6a1f0c2e",
    );
    check(get(addr, "/events?branch=nope"), 404, "not_found", "nope");
    check(get(addr, "/views/by-planet"), 404, "not_found", "by-planet");
    check(get(addr, "/nowhere"), 404, "not_found", "/nowhere");
    let r = request(addr, "DELETE", "/events", &[], b"").unwrap();
    check(r, 405, "method_not_allowed", "DELETE");
    check(get(addr, "/branches/nope/diff"), 404, "not_found", "nope");

    let event = json!({"kind": "test", "occurred": "2025-09", "countries": ["PL"]});
    // Auth: none, wrong, right.
    check(
        post(addr, "/events", None, &event),
        401,
        "unauthorized",
        "Bearer",
    );
    check(
        post(
            addr,
            "/events",
            Some("0123456789abcdef-wrong-token"),
            &event,
        ),
        403,
        "forbidden",
        "token",
    );
    let head = get(addr, "/head").json()["seq"].as_u64().unwrap();
    // Bad input changes nothing.
    let bad = json!([event, {"kind": "test", "occurred": "someday"}]);
    let b = check(
        post(addr, "/events", Some(TOKEN), &bad),
        400,
        "invalid",
        "event 2",
    );
    assert_eq!(b["field"], "occurred");
    check(
        post(addr, "/events", Some(TOKEN), &json!("text")),
        400,
        "invalid",
        "request body",
    );
    let r = request(
        addr,
        "POST",
        "/events",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        b"{oops",
    )
    .unwrap();
    check(r, 400, "invalid", "malformed JSON");
    let big = json!({"kind": "test", "occurred": "2025", "summary": "x".repeat(5000)});
    check(
        post(addr, "/events", Some(TOKEN), &big),
        413,
        "too_large",
        "too large",
    );
    let stale = format!("/events?expect_seq={}", head + 7);
    let b = check(
        post(addr, &stale, Some(TOKEN), &event),
        409,
        "seq_mismatch",
        "head moved",
    );
    assert_eq!(b["actual"], head);
    assert_eq!(
        get(addr, "/head").json()["seq"],
        head,
        "nothing was written"
    );

    // Writes that work, then a conflict: the same id with other content.
    let w = post(
        addr,
        &format!("/events?expect_seq={head}"),
        Some(TOKEN),
        &json!([event]),
    );
    assert_eq!(w.status, 201, "{}", w.text());
    let written = w.json()["written"].clone();
    assert_eq!(written[0]["seq"], head + 1);
    let id = written[0]["id"].as_str().unwrap().to_string();
    let mut other = event.clone();
    other["id"] = json!(id);
    other["kind"] = json!("other");
    check(
        post(addr, "/events", Some(TOKEN), &other),
        409,
        "conflict",
        &id,
    );
    let corrected = post(addr, &format!("/events/{id}/correct"), Some(TOKEN), &other);
    assert_eq!(corrected.status, 201, "{}", corrected.text());
    let mut wrong_id = other.clone();
    wrong_id["id"] = json!("6a1f0c2e-0d5b-5c8e-9b1a-000000000001");
    check(
        post(
            addr,
            &format!("/events/{id}/correct"),
            Some(TOKEN),
            &wrong_id,
        ),
        400,
        "invalid",
        "differs",
    );
    check(
        post(
            addr,
            &format!("/events/{id}/retract"),
            Some(TOKEN),
            &json!({}),
        ),
        400,
        "invalid",
        "reason",
    );
    let retracted = post(
        addr,
        &format!("/events/{id}/retract"),
        Some(TOKEN),
        &json!({"reason": "test"}),
    );
    assert_eq!(retracted.status, 201);
    check(
        post(addr, &format!("/events/{id}/correct"), Some(TOKEN), &other),
        409,
        "conflict",
        "retract",
    );
    let history = get(addr, &format!("/events/{id}/history")).json();
    let actions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["created", "corrected", "retracted"]);

    // JSON Lines bodies, and branches over HTTP.
    let lines = format!(
        "{}\n{}\n",
        json!({"kind": "a", "occurred": "2025"}),
        json!({"kind": "b", "occurred": "2025"})
    );
    let auth = format!("Bearer {TOKEN}");
    let r = request(
        addr,
        "POST",
        "/events",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-ndjson"),
        ],
        lines.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["written"].as_array().unwrap().len(), 2);
    let created = post(
        addr,
        "/branches",
        Some(TOKEN),
        &json!({"name": "what-if", "at": 3}),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["base_seq"], 3);
    check(
        post(addr, "/branches", Some(TOKEN), &json!({"name": "what-if"})),
        409,
        "conflict",
        "what-if",
    );
    check(
        post(
            addr,
            "/branches",
            Some(TOKEN),
            &json!({"name": "bad name!"}),
        ),
        400,
        "invalid",
        "name",
    );
    let on_branch = post(
        addr,
        "/events?branch=what-if",
        Some(TOKEN),
        &json!({"kind": "c", "occurred": "2025"}),
    );
    assert_eq!(on_branch.status, 201);
    // A dry run plans under the writer lock: it needs the token too.
    let anonymous = post(
        addr,
        "/branches/what-if/merge?dry_run=true",
        None,
        &json!({}),
    );
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    let plan = post(
        addr,
        "/branches/what-if/merge?dry_run=true",
        Some(TOKEN),
        &json!({}),
    );
    assert_eq!(plan.status, 200, "{}", plan.text());
    let merged = post(addr, "/branches/what-if/merge", Some(TOKEN), &json!({}));
    assert_eq!(merged.status, 200, "{}", merged.text());
    let r = request(
        addr,
        "DELETE",
        "/branches/what-if",
        &[("Authorization", &auth)],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    check(
        request(
            addr,
            "DELETE",
            "/branches/what-if",
            &[("Authorization", &auth)],
            b"",
        )
        .unwrap(),
        404,
        "not_found",
        "what-if",
    );
    assert!(server.stop().success());

    // After a clean stop, the CLI sees every acknowledged write and a
    // sound database.
    let verify = annals(&db, &["verify"], None);
    assert!(verify.status.success(), "{}", common::stderr(&verify));
    assert_eq!(cli_json(&db, &["head"])["seq"], head + 6);
}

#[test]
fn read_only_refuses_writes_and_serve_needs_a_choice() {
    let (_dir, db, token) = demo();
    let server = Server::start(&db, &["--read-only"]);
    let r = post(
        server.addr,
        "/events",
        Some(TOKEN),
        &json!({"kind": "a", "occurred": "2025"}),
    );
    assert_eq!(status_kind(&r), (403, "read_only".to_string()));
    let r = post(server.addr, "/branches", Some(TOKEN), &json!({"name": "x"}));
    assert_eq!(r.status, 403);
    drop(server);

    let out = annals(&db, &["serve", "--listen", "127.0.0.1:0"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("--token-file"),
        "{}",
        common::stderr(&out)
    );
    std::fs::write(&token, "short\n").unwrap();
    let out = annals(
        &db,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            token.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::stderr(&out).contains("16 characters"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn the_feed_resumes_without_gap_or_repeat() {
    let (_dir, db, token) = demo();
    let server = Server::start(&db, &["--token-file", token.to_str().unwrap()]);
    let addr = server.addr;
    let head = get(addr, "/head").json()["seq"].as_u64().unwrap();

    // The backlog after seq 10, then live entries as they commit.
    let mut feed = Sse::open(addr, "/subscribe?after=10", &[]);
    assert_eq!(feed.status, 200);
    let mut seen = Vec::new();
    for _ in 11..=head {
        let ev = feed.next().unwrap();
        seen.push(ev.id.clone().unwrap().parse::<u64>().unwrap());
    }
    assert_eq!(seen, (11..=head).collect::<Vec<_>>());
    let w = post(
        addr,
        "/events",
        Some(TOKEN),
        &json!([{"kind": "a", "occurred": "2025"}, {"kind": "b", "occurred": "2025"}]),
    );
    assert_eq!(w.status, 201);
    let live = feed.next().unwrap();
    assert_eq!(live.id.as_deref(), Some((head + 1).to_string().as_str()));
    assert_eq!(live.event.as_deref(), Some("created"));
    let data: Value = serde_json::from_str(&live.data).unwrap();
    assert_eq!(data["event"]["kind"], "a");
    assert_eq!(feed.next().unwrap().id, Some((head + 2).to_string()));
    drop(feed);

    // The client went away after head+2; more entries land; it comes back
    // with Last-Event-ID (which wins over `after`) and gets exactly the rest.
    for kind in ["c", "d", "e"] {
        assert_eq!(
            post(
                addr,
                "/events",
                Some(TOKEN),
                &json!({"kind": kind, "occurred": "2025"})
            )
            .status,
            201
        );
    }
    let last = (head + 2).to_string();
    let mut again = Sse::open(addr, "/subscribe?after=0", &[("Last-Event-ID", &last)]);
    let ids: Vec<String> = (0..3).map(|_| again.next().unwrap().id.unwrap()).collect();
    assert_eq!(
        ids,
        [
            (head + 3).to_string(),
            (head + 4).to_string(),
            (head + 5).to_string()
        ]
    );
    let r = request(addr, "GET", "/subscribe", &[("Last-Event-ID", "x")], b"").unwrap();
    assert_eq!(status_kind(&r), (400, "invalid".to_string()));
    drop(again);
    assert!(server.stop().success());
}

/// Sixteen clients read and write at once for a moment; every write the
/// server acknowledged is in the log afterwards, exactly once. (The timed
/// version is `cargo bench --bench serve`.)
#[test]
fn concurrent_clients_lose_no_acknowledged_write() {
    let (_dir, db, token) = demo();
    let server = Server::start(&db, &["--token-file", token.to_str().unwrap()]);
    let addr = server.addr;
    let acked: Vec<BTreeSet<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|c| {
                s.spawn(move || {
                    let mut mine = BTreeSet::new();
                    for i in 0..15 {
                        if (c + i) % 3 == 0 {
                            let e = json!({"kind": "load", "occurred": "2025-09", "countries": ["PL"],
                                "summary": format!("client {c} write {i}")});
                            let r = post(addr, "/events", Some(TOKEN), &e);
                            assert_eq!(r.status, 201, "{}", r.text());
                            mine.insert(r.json()["written"][0]["id"].as_str().unwrap().to_string());
                        } else {
                            let r = get(addr, "/events?country=PL&limit=50");
                            assert_eq!(r.status, 200);
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(server.stop().success());
    let want: BTreeSet<String> = acked.into_iter().flatten().collect();
    let got: BTreeSet<String> = cli_json(&db, &["query", "--kind", "load"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    assert!(annals(&db, &["verify"], None).status.success());
}

/// Damage found while serving is a 503 that names it, for `verify` and
/// for a read that meets it.
#[test]
fn damage_is_a_503() {
    let (_dir, db, _) = demo();
    let segment = std::fs::read_dir(db.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    let server = Server::start(&db, &["--read-only"]);
    let verify = get(server.addr, "/verify");
    assert_eq!(verify.status, 503);
    let body = verify.json();
    assert_eq!(body["ok"], false);
    assert!(
        body["error"].as_str().unwrap().contains("damaged"),
        "{body}"
    );
    let read = get(server.addr, "/events?country=PL");
    // A damaged index segment is a derived file, not the log (#27).
    assert_eq!(status_kind(&read), (503, "derived_damage".to_string()));
    assert!(read.json()["error"]
        .as_str()
        .unwrap()
        .contains("annals rebuild"));
    assert!(server.stop().success());
}

/// Clients that send half a request and stall hold their own slot, not
/// the server: with 2 of 3 slots stalled, others are still served.
#[test]
fn stalled_clients_do_not_stall_others() {
    use std::io::Write;
    let (_dir, db, _) = demo();
    let server = Server::start(&db, &["--read-only", "--max-connections", "3"]);
    let stalled: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(server.addr).unwrap();
            s.write_all(b"GET /head HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        assert_eq!(get(server.addr, "/head").status, 200);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
    drop(stalled);
    assert!(server.stop().success());
}
