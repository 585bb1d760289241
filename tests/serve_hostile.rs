//! `annals serve` against clients that do not play fair (#28): live feeds
//! beyond their budget, connections that send nothing, anonymous
//! `verify`, DNS rebinding, a cursor moved to other filters, and the
//! small refusals that must be JSON with the right status and field. The
//! timed version, with hundreds of such clients, is `cargo bench --bench
//! serve` (its adversarial part).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::http::{get, request, Response, Server, Sse};
use serde_json::{json, Value};

const TOKEN: &str = "0123456789abcdef-hostile-token";

fn demo() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    common::demo_with_token(TOKEN)
}

fn with_token(db: &std::path::Path, token: &std::path::Path, more: &[&str]) -> Server {
    let mut args = vec!["--token-file", token.to_str().unwrap()];
    args.extend_from_slice(more);
    Server::start(db, &args)
}

fn auth() -> String {
    format!("Bearer {TOKEN}")
}

fn post_json(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &Value) -> Response {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    request(addr, "POST", path, &all, body.to_string().as_bytes()).unwrap()
}

/// Asserts a JSON error: status, kind, and the field when given.
fn refused(r: &Response, status: u16, kind: &str, field: Option<&str>) -> Value {
    let body: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| panic!("{status}: not JSON: {:?}", r.text()));
    assert_eq!(r.status, status, "{body}");
    assert_eq!(body["kind"], kind, "{body}");
    if let Some(f) = field {
        assert_eq!(body["field"], f, "{body}");
    }
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    body
}

/// Raw bytes to the server; what came back before it closed or `wait`
/// passed.
fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Item 1: feeds have their own budget, per client too, and leave the
/// connection slots to ordinary requests.
#[test]
fn feeds_have_a_budget_of_their_own() {
    let (_dir, db, token) = demo();
    let server = with_token(
        &db,
        &token,
        &[
            "--max-connections",
            "2",
            "--max-feeds",
            "10",
            "--max-feeds-per-client",
            "3",
        ],
    );
    let addr = server.addr;
    let feeds: Vec<Sse> = (0..3).map(|_| Sse::open(addr, "/subscribe", &[])).collect();
    assert!(feeds.iter().all(|f| f.status == 200));
    // Three feeds on two slots, and ordinary requests still answered.
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(get(addr, "/head").status, 200);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let over = get(addr, "/subscribe");
    refused(&over, 503, "busy", None);
    assert!(over.header("retry-after").is_some());
    // A closed feed gives its place back.
    drop(feeds);
    let started = Instant::now();
    loop {
        let mut f = Sse::open(addr, "/subscribe?after=0", &[]);
        if f.status == 200 {
            assert_eq!(f.next().unwrap().id.as_deref(), Some("1"));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no place freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.stop().success());
}

/// Item 2: more silent or half-sent connections than there are slots do
/// not keep an ordinary request waiting: the idle ones are shed.
#[test]
fn connections_that_send_nothing_are_shed() {
    let (_dir, db, _) = demo();
    let server = Server::start(&db, &["--read-only", "--max-connections", "4"]);
    let addr = server.addr;
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|i| {
            let mut s = TcpStream::connect(addr).unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET /head HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    .unwrap();
            }
            s
        })
        .collect();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(get(addr, "/head").status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // The slow ones keep trickling.
        for s in &mut slow {
            let _ = s.write_all(b"X-Slow: 1\r\n");
        }
    }
    drop(slow);
    assert!(server.stop().success());
}

/// Item 3: `verify` needs the token where there is one (it holds the
/// writer lock), and its refusal says how to authenticate.
#[test]
fn verify_needs_the_token() {
    let (_dir, db, token) = demo();
    let server = with_token(&db, &token, &[]);
    let addr = server.addr;
    let anon = get(addr, "/verify");
    refused(&anon, 401, "unauthorized", None);
    assert!(anon
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    let head = request(addr, "HEAD", "/verify", &[], b"").unwrap();
    assert_eq!(head.status, 401);
    // The scheme is case-insensitive.
    let lower = format!("bearer {TOKEN}");
    let ok = request(addr, "GET", "/verify", &[("Authorization", &lower)], b"").unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["ok"], true);
    // Asked again at the same head: the same answer.
    let again = request(addr, "GET", "/verify", &[("Authorization", &auth())], b"").unwrap();
    assert_eq!(again.json(), ok.json());
    // A dry-run merge plans under the writer lock too.
    let dry = request(
        addr,
        "POST",
        "/branches/no-attribution/merge?dry_run=true",
        &[],
        b"",
    )
    .unwrap();
    refused(&dry, 401, "unauthorized", None);
    assert!(server.stop().success());
}

/// Item 4: a `Host` that is not this server's (DNS rebinding) is refused;
/// so is a write from a page served elsewhere.
#[test]
fn host_and_origin_are_checked() {
    let (_dir, db, token) = demo();
    let server = with_token(&db, &token, &["--allow-host", "annals.test"]);
    let addr = server.addr;
    let with_host = |host: &str| {
        let req = format!("GET /head HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        raw(addr, req.as_bytes(), Duration::from_secs(5))
    };
    for good in [
        format!("{addr}"),
        format!("localhost:{}", addr.port()),
        "annals.test".to_string(),
    ] {
        let r = with_host(&good);
        assert!(r.starts_with("HTTP/1.1 200"), "{good}: {r}");
    }
    let evil = with_host("rebind.evil.example:7070");
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    assert!(evil.contains("\"field\":\"Host\""), "{evil}");

    let event = json!({"kind": "test", "occurred": "2025"});
    let a = auth();
    let from_elsewhere = post_json(
        addr,
        "/events",
        &[("Authorization", &a), ("Origin", "http://evil.example")],
        &event,
    );
    refused(&from_elsewhere, 403, "forbidden", Some("Origin"));
    let own = format!("http://{addr}");
    let from_page = post_json(
        addr,
        "/events",
        &[("Authorization", &a), ("Origin", &own)],
        &event,
    );
    assert_eq!(from_page.status, 201, "{}", from_page.text());

    // Security headers on the page and on JSON.
    let page = get(addr, "/");
    assert!(page
        .header("content-security-policy")
        .is_some_and(|v| v.contains("frame-ancestors 'none'")));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        get(addr, "/head").header("x-content-type-options"),
        Some("nosniff")
    );
    assert!(server.stop().success());
}

/// Item 5: a cursor belongs to the filters it was made with.
#[test]
fn a_cursor_is_tied_to_its_filters() {
    let (_dir, db, _) = demo();
    let server = Server::start(&db, &["--read-only"]);
    let addr = server.addr;
    let first = get(addr, "/events?country=PL&limit=1").json();
    let next = first["next"].as_str().unwrap().to_string();
    let same = get(addr, &format!("/events?country=PL&limit=1&cursor={next}"));
    assert_eq!(same.status, 200);
    assert_ne!(same.json()["events"][0], first["events"][0]);
    // The page size may change; the filters may not.
    let bigger = get(addr, &format!("/events?limit=5&country=PL&cursor={next}"));
    assert_eq!(bigger.status, 200);
    for other in [
        "country=BE",
        "country=PL&kind=x",
        "",
        "country=PL&branch=no-attribution",
    ] {
        let r = get(addr, &format!("/events?{other}&limit=1&cursor={next}"));
        refused(&r, 400, "invalid", Some("cursor"));
    }
    assert!(server.stop().success());
}

/// Item 6: the small refusals.
#[test]
fn small_refusals_are_json_with_the_right_field() {
    let (_dir, db, token) = demo();
    let server = with_token(&db, &token, &["--max-body-bytes", "4096"]);
    let addr = server.addr;
    let a = auth();

    refused(
        &get(addr, "/branches/no-attribution/diff?events=true&view=nope"),
        400,
        "invalid",
        Some("view"),
    );
    // Checked though a diff of events does not use them.
    refused(
        &get(
            addr,
            "/branches/no-attribution/diff?events=true&granularity=week",
        ),
        400,
        "invalid",
        Some("granularity"),
    );
    let id = "6a1f0c2e-0d5b-5c8e-9b1a-000000000006";
    for reason in ["", "   "] {
        let r = post_json(
            addr,
            &format!("/events/{id}/retract"),
            &[("Authorization", &a)],
            &json!({ "reason": reason }),
        );
        refused(&r, 400, "invalid", Some("reason"));
    }
    refused(
        &get(addr, "/events?within="),
        400,
        "invalid",
        Some("within"),
    );
    let dry = request(
        addr,
        "POST",
        "/branches/no-attribution/merge?dry_run=",
        &[("Authorization", &a)],
        b"",
    )
    .unwrap();
    refused(&dry, 400, "invalid", Some("dry_run"));
    let at = post_json(
        addr,
        "/branches",
        &[("Authorization", &a)],
        &json!({"name": "b2", "at": "yesterday"}),
    );
    refused(&at, 400, "invalid", Some("at"));

    // Accept with q-values: JSON Lines only when preferred.
    let lines = request(
        addr,
        "GET",
        "/events?country=PL",
        &[("Accept", "application/json;q=0.5, application/x-ndjson")],
        b"",
    )
    .unwrap();
    assert_eq!(lines.header("content-type"), Some("application/x-ndjson"));
    let page = request(
        addr,
        "GET",
        "/events?country=PL",
        &[("Accept", "application/x-ndjson;q=0.1, application/json")],
        b"",
    )
    .unwrap();
    assert!(page.json()["events"].is_array());

    // A declared body over the limit: 413 at once, and no `100 Continue`.
    let started = Instant::now();
    let req = format!(
        "POST /events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {a}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\
         Expect: 100-continue\r\n\r\n"
    );
    let answer = raw(addr, req.as_bytes(), Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("\"kind\":\"too_large\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Paths that are not UTF-8, targets and headers over the limits: JSON.
    refused(&get(addr, "/events/%FF%FE"), 400, "invalid", None);
    let long = format!("/events?country={}", "A".repeat(9000));
    refused(&get(addr, &long), 414, "too_large", None);
    let many: Vec<(String, String)> = (0..150)
        .map(|i| (format!("X-Extra-{i}"), "1".to_string()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    refused(
        &request(addr, "GET", "/head", &many, b"").unwrap(),
        431,
        "too_large",
        None,
    );
    assert!(server.stop().success());
}

/// Item 6: a server others can reach says so when it starts.
#[test]
fn a_server_others_can_reach_says_so() {
    let (_dir, db, _) = demo();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_annals"))
        .arg("--db")
        .arg(&db)
        .args(["serve", "--read-only", "--listen", "0.0.0.0:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    out.read_line(&mut first).unwrap();
    out.read_line(&mut second).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.contains("serving"), "{first}");
    assert!(
        second.contains("warning") && second.contains("not a loopback address"),
        "{second}"
    );
}
