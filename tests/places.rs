//! Spatial queries: a model test (random events at random places and
//! precisions, corrected, retracted, flushed into index segments, read as
//! of earlier seqs and on a branch, must give what a plain filter over the
//! current events gives), and the semantics of precision on fixed cases.

mod common;

use std::collections::BTreeMap;

use annals::{
    Annals, Area, AsOf, At, Durability, Event, Location, Occurred, Op, PlaceMatch, PlacePrecision,
    Query,
};
use proptest::prelude::*;
use uuid::Uuid;

/// Places cluster around a few towns, some across the antimeridian.
const TOWNS: &[(f64, f64)] = &[
    (50.45, 30.52),  // Kyiv
    (49.99, 36.23),  // Kharkiv
    (52.23, 21.01),  // Warsaw
    (-17.7, 178.4),  // Fiji, east of the antimeridian's west side
    (-16.5, -179.9), // Taveuni, west of it
    (64.0, -21.9),   // Reykjavik
];

#[derive(Debug, Clone)]
struct Place {
    town: usize,
    dlat: f64,
    dlon: f64,
    precision: Option<usize>,
    /// Only a latitude: no point.
    partial: bool,
}

fn place() -> impl Strategy<Value = Option<Place>> {
    prop::option::weighted(
        0.85,
        (
            0..TOWNS.len(),
            -1.5f64..1.5,
            -1.5f64..1.5,
            prop::option::of(0..PlacePrecision::ALL.len()),
            prop::bool::weighted(0.05),
        )
            .prop_map(|(town, dlat, dlon, precision, partial)| Place {
                town,
                dlat,
                dlon,
                precision,
                partial,
            }),
    )
}

fn location(p: &Option<Place>) -> Option<Location> {
    let p = p.as_ref()?;
    let (lat, lon) = TOWNS[p.town];
    let mut lon = lon + p.dlon;
    if lon > 180.0 {
        lon -= 360.0;
    } else if lon < -180.0 {
        lon += 360.0;
    }
    Some(Location {
        name: Some(format!("town {}", p.town)),
        lat: Some(lat + p.dlat),
        lon: (!p.partial).then_some(lon),
        precision: p.precision.map(|i| PlacePrecision::ALL[i]),
        ..Default::default()
    })
}

#[derive(Debug, Clone)]
enum Step {
    Put(u128, Option<Place>, bool),
    Retract(u128),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..12u128, place(), any::<bool>()).prop_map(|(i, p, k)| Step::Put(i, p, k)),
        1 => (0..12u128).prop_map(Step::Retract),
        1 => Just(Step::Reopen),
    ]
}

fn area() -> impl Strategy<Value = Area> {
    prop_oneof![
        (
            0..TOWNS.len(),
            -2.0f64..2.0,
            -2.0f64..2.0,
            0.01f64..3.0,
            0.01f64..3.0
        )
            .prop_map(|(t, dy, dx, h, w)| {
                let (lat, lon) = TOWNS[t];
                let wrap = |x: f64| {
                    if x > 180.0 {
                        x - 360.0
                    } else if x < -180.0 {
                        x + 360.0
                    } else {
                        x
                    }
                };
                Area::BBox {
                    west: wrap(lon + dx - w),
                    south: (lat + dy - h).max(-90.0),
                    east: wrap(lon + dx + w),
                    north: (lat + dy + h).min(90.0),
                }
            }),
        (0..TOWNS.len(), -1.0f64..1.0, -1.0f64..1.0, 1.0f64..400.0).prop_map(|(t, dy, dx, r)| {
            let (lat, lon) = TOWNS[t];
            Area::Near {
                lat: lat + dy,
                lon: (lon + dx).clamp(-180.0, 180.0),
                radius_km: r,
            }
        }),
        (0..3usize, 0.2f64..2.0).prop_map(|(t, s)| {
            // A triangle with a square hole, around a town.
            let (lat, lon) = TOWNS[t];
            Area::Polygons(vec![vec![
                vec![
                    [lon - s, lat - s],
                    [lon + s, lat - s],
                    [lon, lat + s],
                    [lon - s, lat - s],
                ],
                vec![
                    [lon - s / 4.0, lat - s / 4.0],
                    [lon + s / 4.0, lat - s / 4.0],
                    [lon + s / 4.0, lat],
                    [lon - s / 4.0, lat],
                    [lon - s / 4.0, lat - s / 4.0],
                ],
            ]])
        }),
    ]
}

fn how() -> impl Strategy<Value = PlaceMatch> {
    prop_oneof![
        Just(PlaceMatch::Point),
        Just(PlaceMatch::Possible),
        Just(PlaceMatch::Certain)
    ]
}

fn event(i: u128, p: &Option<Place>, kind: bool) -> Event {
    let mut e = Event::new(
        if kind { "shelling" } else { "protest" },
        Occurred::parse("2025-09").unwrap(),
    );
    e.id = Uuid::from_u128(i + 1);
    e.location = location(p);
    e
}

/// What a plain filter over the current events gives, by id.
fn expected(events: &BTreeMap<Uuid, Event>, area: &Area, how: PlaceMatch, kind: bool) -> Vec<Uuid> {
    events
        .values()
        .filter(|e| !kind || e.kind == "shelling")
        .filter(|e| {
            e.location.as_ref().is_some_and(|l| match (l.lat, l.lon) {
                (Some(lat), Some(lon)) => {
                    area.admits(how, lat, lon, l.precision.unwrap_or(PlacePrecision::Exact))
                }
                _ => false,
            })
        })
        .map(|e| e.id)
        .collect()
}

fn ids(db: &Annals, at: &At, q: &Query) -> Vec<Uuid> {
    let mut v: Vec<Uuid> = db
        .reader(at)
        .unwrap()
        .query(q)
        .unwrap()
        .into_iter()
        .map(|r| r.event.id)
        .collect();
    v.sort();
    v
}

fn open(dir: &std::path::Path) -> Annals {
    Annals::builder(dir)
        .durability(Durability::Buffered)
        .checkpoint_every_entries(5)
        .open()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Index-driven spatial queries give what a filter over the events
    /// gives: at the head (tail and segments), as of an earlier seq, and
    /// on a branch that changed some places.
    #[test]
    fn spatial_queries_equal_a_filter(
        steps in prop::collection::vec(step(), 1..40),
        branch_steps in prop::collection::vec(step(), 0..8),
        areas in prop::collection::vec((area(), how(), any::<bool>()), 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = open(dir.path());
        let mut now: BTreeMap<Uuid, Event> = BTreeMap::new();
        let mut past: Vec<(u64, BTreeMap<Uuid, Event>)> = Vec::new();
        let apply = |db: &Annals, branch: Option<&str>, s: &Step, now: &mut BTreeMap<Uuid, Event>| {
            let op = match s {
                Step::Put(i, p, k) => {
                    let e = event(*i, p, *k);
                    if now.contains_key(&e.id) { Op::Correct(e) } else { Op::Append(e) }
                }
                Step::Retract(i) => {
                    let id = Uuid::from_u128(i + 1);
                    if !now.contains_key(&id) { return; }
                    Op::Retract { id, reason: "test".into() }
                }
                Step::Reopen => return,
            };
            let r = match branch {
                None => db.write(vec![op.clone()], None),
                Some(b) => db.write_branch(b, vec![op.clone()], None),
            };
            if r.is_ok() {
                match op {
                    Op::Append(e) | Op::Correct(e) => { now.insert(e.id, e); }
                    Op::Retract { id, .. } => { now.remove(&id); }
                }
            }
        };
        for s in &steps {
            if let Step::Reopen = s {
                drop(db);
                db = open(dir.path());
                continue;
            }
            apply(&db, None, s, &mut now);
            past.push((db.head().seq, now.clone()));
        }
        db.create_branch("b", None, None).unwrap();
        let mut on_branch = now.clone();
        for s in &branch_steps {
            apply(&db, Some("b"), s, &mut on_branch);
        }
        let main = At::default();
        let branch = At { branch: Some("b".into()), as_of: None };
        for (area, how, kind) in &areas {
            let mut q = Query::new().area(area.clone()).place(*how);
            if *kind {
                q = q.kind("shelling");
            }
            prop_assert_eq!(ids(&db, &main, &q), expected(&now, area, *how, *kind), "head {:?}", q);
            prop_assert_eq!(ids(&db, &branch, &q), expected(&on_branch, area, *how, *kind), "branch {:?}", q);
            if let Some((seq, then)) = past.get(past.len() / 2) {
                let at = At { branch: None, as_of: Some(AsOf::Seq(*seq)) };
                prop_assert_eq!(ids(&db, &at, &q), expected(then, area, *how, *kind), "as of {}", seq);
            }
        }
        prop_assert!(db.verify().is_ok());
    }
}

fn at(db: &Annals, lat: f64, lon: f64, p: Option<PlacePrecision>, name: &str) -> Uuid {
    let mut e = Event::new("shelling", Occurred::parse("2025-09-10").unwrap());
    e.summary = Some(name.into());
    e.location = Some(Location {
        lat: Some(lat),
        lon: Some(lon),
        precision: p,
        ..Default::default()
    });
    db.append(vec![e]).unwrap()[0].id
}

#[test]
fn precision_decides_what_a_small_area_returns() {
    let (_dir, db) = common::fresh();
    let street = at(&db, 49.99, 36.23, Some(PlacePrecision::Exact), "street");
    let town = at(
        &db,
        50.03,
        36.25,
        Some(PlacePrecision::Near),
        "near Kharkiv",
    );
    let oblast = at(
        &db,
        49.9,
        36.5,
        Some(PlacePrecision::Admin1),
        "Kharkiv oblast",
    );
    let country = at(&db, 49.0, 32.0, Some(PlacePrecision::Country), "Ukraine");
    let unknown = at(&db, 49.98, 36.22, None, "no precision given");
    let found = |q: Query| -> Vec<Uuid> {
        let mut v: Vec<Uuid> = db
            .query(&q)
            .unwrap()
            .into_iter()
            .map(|r| r.event.id)
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };
    // 10 km around Kharkiv: the street, and a place given without a
    // precision (taken as exact); the town-level place is 5 km out but
    // near (10 km) is no coarser than the area.
    let q = Query::new().near(49.99, 36.23, 10.0).unwrap();
    assert_eq!(found(q.clone()), sorted(vec![street, town, unknown]));
    // Certainly inside: its 10 km disc must lie within: not the town.
    assert_eq!(
        found(q.clone().place(PlaceMatch::Certain)),
        sorted(vec![street, unknown])
    );
    // Possibly inside: the oblast's 250 km disc and the country's 1,000 km
    // disc meet the circle.
    assert_eq!(
        found(q.place(PlaceMatch::Possible)),
        sorted(vec![street, town, oblast, country, unknown])
    );
    // A box over all of Ukraine returns the oblast by default, not the
    // country's centroid (coarser than the box).
    let q = Query::new().bbox("22,44,40,52.5").unwrap();
    assert_eq!(found(q), sorted(vec![street, town, oblast, unknown]));
    // Combined with other filters.
    let q = Query::new().bbox("22,44,40,52.5").unwrap().kind("protest");
    assert!(found(q).is_empty());
}

#[test]
fn bad_areas_are_refused_with_the_field() {
    let (_dir, db) = common::fresh();
    for (bad, field) in [
        (Query::new().near(91.0, 0.0, 5.0), "near.lat"),
        (Query::new().near(0.0, 0.0, 0.0), "radius_km"),
        (Query::new().bbox("10,5,20,1"), "bbox"),
        (Query::new().bbox("1,2,3"), "bbox"),
    ] {
        let err = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(field), "{err}");
    }
    let f = annals::Filters {
        near: Some("50,30".into()),
        ..Default::default()
    };
    assert!(f.to_query().unwrap_err().to_string().contains("radius_km"));
    let f = annals::Filters {
        place: Some("possible".into()),
        ..Default::default()
    };
    assert!(f.to_query().unwrap_err().to_string().contains("place"));
    let q = Query::new().area(Area::BBox {
        west: 0.0,
        south: 10.0,
        east: 1.0,
        north: 0.0,
    });
    assert!(db.query(&q).is_err());
}

/// The CLI's `--bbox`, `--near/--radius`, `--area FILE` and `--place`,
/// and HTTP's `bbox`, `near`/`radius_km`, `place` and `POST /events/area`,
/// give the library's answers; bad areas are usage errors or 400s.
#[test]
fn cli_and_http_share_the_spatial_words() {
    use common::http::{get, request, Server};
    let dir = tempfile::tempdir().unwrap();
    let db = common::db_path(&dir);
    assert!(common::annals(&db, &["init"], None).status.success());
    let lines = [
        r#"{"kind":"shelling","occurred":"2025-09-10","location":{"name":"Kharkiv","lat":49.99,"lon":36.23,"precision":"exact"}}"#,
        r#"{"kind":"shelling","occurred":"2025-09-11","location":{"name":"Ukraine","lat":49.0,"lon":32.0,"precision":"country"}}"#,
        r#"{"kind":"storm","occurred":"2025-09-12","location":{"name":"Taveuni","lat":-16.8,"lon":-179.9}}"#,
        r#"{"kind":"storm","occurred":"2025-09-12","summary":"no place"}"#,
    ];
    let o = common::annals(&db, &["append"], Some(lines.join("\n").as_bytes()));
    assert!(o.status.success(), "{}", common::stderr(&o));
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["query", "--format", "jsonl"];
        a.extend_from_slice(args);
        let o = common::annals(&db, &a, None);
        assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
        common::stdout(&o)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["location"]["name"].as_str().unwrap_or("").to_string()
            })
            .collect()
    };
    assert_eq!(names(&["--near", "50,36.2", "--radius", "20"]), ["Kharkiv"]);
    assert_eq!(
        names(&["--near", "50,36.2", "--radius", "20", "--place", "possible"]),
        ["Kharkiv", "Ukraine"]
    );
    assert_eq!(names(&["--bbox", "170,-20,-170,-10"]), ["Taveuni"]);
    assert_eq!(
        names(&["--bbox", "20,40,40,55", "--kind", "storm"]),
        Vec::<String>::new()
    );
    let area = dir.path().join("area.geojson");
    std::fs::write(
        &area,
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[35,49],[37,49],[37,51],[35,51],[35,49]]]}}]}"#,
    )
    .unwrap();
    assert_eq!(names(&["--area", area.to_str().unwrap()]), ["Kharkiv"]);
    for bad in [
        &["query", "--bbox", "1,2,3"][..],
        &["query", "--near", "50,36"],
        &["query", "--near", "95,36", "--radius", "5"],
        &["query", "--area", "/nonexistent.geojson"],
        &["query", "--place", "certain"],
    ] {
        let o = common::annals(&db, bad, None);
        assert!(!o.status.success(), "{bad:?}");
        assert!(!common::stderr(&o).is_empty());
    }

    let view = |args: &[&str]| -> usize {
        let mut a = vec!["view", "by-place", "--format", "jsonl"];
        a.extend_from_slice(args);
        let o = common::annals(&db, &a, None);
        assert!(o.status.success(), "{args:?}: {}", common::stderr(&o));
        common::stdout(&o).lines().count()
    };
    assert_eq!(view(&[]), 3);
    assert_eq!(view(&["--granularity", "month"]), 3);
    assert_eq!(view(&["--level", "admin1"]), 0);
    for bad in [
        &["view", "by-place", "--granularity", "day"][..],
        &["view", "by-place", "--level", "county"],
        &["view", "by-place", "--country", "UA"],
    ] {
        assert!(!common::annals(&db, bad, None).status.success(), "{bad:?}");
    }

    let server = Server::start(&db, &["--read-only"]);
    let rows = get(server.addr, "/views/by-place").json();
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    assert!(rows[0]["gid"].is_u64() && rows[0]["lat"].is_f64());
    assert_eq!(
        get(server.addr, "/views/by-place?granularity=day").status,
        400
    );
    let count = |r: common::http::Response| -> usize {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["events"].as_array().unwrap().len()
    };
    assert_eq!(
        count(get(server.addr, "/events?near=50,36.2&radius_km=20")),
        1
    );
    assert_eq!(
        count(get(
            server.addr,
            "/events?near=50,36.2&radius_km=20&place=possible"
        )),
        2
    );
    assert_eq!(count(get(server.addr, "/events?bbox=170,-20,-170,-10")), 1);
    let polygon = r#"{"type":"Polygon","coordinates":[[[35,49],[37,49],[37,51],[35,51],[35,49]]]}"#;
    let post = |path: &str, body: &str| {
        request(
            server.addr,
            "POST",
            path,
            &[("Content-Type", "application/geo+json")],
            body.as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(count(post("/events/area", polygon)), 1);
    assert_eq!(count(post("/events/area?kind=storm", polygon)), 0);
    for (path, body) in [
        ("/events?bbox=1,2", ""),
        ("/events?near=50,36", ""),
        ("/events?radius_km=5", ""),
        ("/events?place=possible", ""),
    ] {
        let r = get(server.addr, &format!("{path}{body}"));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
    for (path, body) in [
        ("/events/area", "{"),
        ("/events/area", r#"{"type":"Point","coordinates":[0,0]}"#),
        ("/events/area?bbox=0,0,1,1", polygon),
    ] {
        let r = post(path, body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text());
    }
    server.stop();
}

/// The by-place view as of an earlier seq is what it was then; a branch
/// has its own, and the diff names the cells that differ.
#[test]
fn the_view_by_place_travels_in_time_and_branches() {
    use annals::{Against, Granularity, PlaceLevel, ViewKind};
    let dir = tempfile::tempdir().unwrap();
    let db = Annals::builder(dir.path().join("db"))
        .checkpoint_every_entries(3)
        .snapshot_every_entries(2)
        .open()
        .unwrap();
    let ev = |lat: f64, lon: f64, fatalities: i64| {
        let mut e = Event::new("shelling", Occurred::parse("2025-09-10").unwrap());
        e.location = Some(Location {
            lat: Some(lat),
            lon: Some(lon),
            admin1: Some("Kharkiv".into()),
            country: Some("UA".into()),
            precision: Some(PlacePrecision::Near),
            ..Default::default()
        });
        e.attrs.insert("fatalities".into(), fatalities.into());
        e
    };
    let first = db
        .append(vec![ev(49.99, 36.23, 3), ev(50.45, 30.52, 1)])
        .unwrap();
    let then = db.head().seq;
    let cells_then = db.by_place(PlaceLevel::Cell, None).unwrap().to_vec();
    assert_eq!(cells_then.len(), 2);
    let kharkiv = cells_then
        .iter()
        .find(|r| r.gid == Some(annals::prio_grid(49.99, 36.23)))
        .unwrap();
    assert_eq!((kharkiv.count, kharkiv.fatalities.unwrap().best), (1, 3));
    assert_eq!(kharkiv.by_precision.get("near"), Some(&1));
    // Move one event, retract the other, add more.
    let mut moved = ev(48.0, 37.8, 5);
    moved.id = first[0].id;
    db.correct(moved).unwrap();
    db.retract(first[1].id, "duplicate").unwrap();
    db.append(vec![ev(48.01, 37.81, 2)]).unwrap();
    let now = db.by_place(PlaceLevel::Cell, None).unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!((now[0].count, now[0].fatalities.unwrap().best), (2, 7));
    let past = db
        .reader(&At {
            branch: None,
            as_of: Some(AsOf::Seq(then)),
        })
        .unwrap()
        .by_place(PlaceLevel::Cell, None)
        .unwrap();
    assert_eq!(past.to_vec(), cells_then);
    let admin1 = db
        .by_place(PlaceLevel::Admin1, Some(Granularity::Month))
        .unwrap();
    assert_eq!(admin1.len(), 1);
    assert_eq!(
        (
            admin1[0].area.as_str(),
            admin1[0].bucket.as_deref(),
            admin1[0].count
        ),
        ("UA/Kharkiv", Some("2025-09"), 2)
    );
    // A branch that adds an event in Kyiv.
    db.create_branch("what-if", None, None).unwrap();
    db.write_branch("what-if", vec![Op::Append(ev(50.45, 30.52, 0))], None)
        .unwrap();
    let b = db
        .reader(&At {
            branch: Some("what-if".into()),
            as_of: None,
        })
        .unwrap()
        .by_place(PlaceLevel::Cell, None)
        .unwrap();
    assert_eq!(b.len(), 2);
    let diff = db
        .diff(
            "what-if",
            ViewKind::ByPlace(PlaceLevel::Cell, None),
            Against::Base,
        )
        .unwrap();
    assert_eq!(diff.len(), 1);
    assert_eq!(diff[0].key, format!("G{}", annals::prio_grid(50.45, 30.52)));
    assert!(diff[0].main.is_none() && diff[0].branch.is_some());
    assert!(db.verify().is_ok());
}
