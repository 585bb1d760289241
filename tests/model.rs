//! Model test: random sequences of appends (new, idempotent and
//! conflicting), corrections, retractions, checkpoints and reopens, run
//! against annals and against a plain in-memory reference that recomputes
//! everything from the list of current events. After every step the three
//! views and a random query must agree, and at the end `verify` passes.
#![allow(clippy::type_complexity)] // the reference model spells its aggregates out

use std::collections::{BTreeMap, BTreeSet, HashMap};

use annals::{
    actor_key, Actor, ActorRow, Annals, CountryRow, DateRow, Durability, Event, Granularity,
    Occurred, Op, PlaceLevel, PlaceRow, Precision, Query, TimePoint,
};
use proptest::prelude::*;
use uuid::Uuid;

const KINDS: &[&str] = &["airspace_violation", "sabotage", "meeting", "statement"];
const COUNTRIES: &[&str] = &["PL", "RO", "BE", "UA", "LT"];
const NAMES: &[&str] = &[
    "Russia",
    " russia",
    "NATO",
    "Mark Rutte",
    "mark rutte ",
    "Poland",
];
const ROLES: &[&str] = &["alleged_perpetrator", "target", "attendee", "host"];
const TIMES: &[&str] = &[
    "2025",
    "2025-09",
    "2025-11",
    "2025-09-10",
    "2025-09-11",
    "2025-12-03",
    "2025-12-03T10:00:00Z",
    "2024-12",
];
const IDS: u128 = 10;
/// Points, two of them on PRIO-GRID cell edges, two in one cell.
const POINTS: &[(f64, f64)] = &[
    (50.45, 30.52),
    (50.0, 30.5),
    (50.2, 30.7),
    (-16.8, -179.9),
    (-0.25, 0.0),
];
const ADMIN1: &[&str] = &["Kyiv", "Lviv", "kyiv"];

/// A place: point, precision, ADMIN1 name, and fatalities as ACLED
/// (one figure) or UCDP (best, low, high) give them.
type PlaceSpec = (
    usize,
    Option<usize>,
    Option<usize>,
    Option<(bool, i64, i64, i64)>,
);

#[derive(Debug, Clone)]
struct Spec {
    kind: usize,
    countries: Vec<usize>,
    actors: Vec<(usize, usize)>,
    from: usize,
    to: Option<usize>,
    place: Option<PlaceSpec>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..KINDS.len(),
        prop::collection::vec(0..COUNTRIES.len(), 0..3),
        prop::collection::vec((0..NAMES.len(), 0..ROLES.len()), 0..3),
        0..TIMES.len(),
        prop::option::of(0..TIMES.len()),
        prop::option::weighted(
            0.7,
            (
                0..POINTS.len(),
                prop::option::of(0..annals::PlacePrecision::ALL.len()),
                prop::option::of(0..ADMIN1.len()),
                prop::option::of((any::<bool>(), 0..50i64, 0..5i64, 0..5i64)),
            ),
        ),
    )
        .prop_map(|(kind, countries, actors, from, to, place)| Spec {
            kind,
            countries,
            actors,
            from,
            to,
            place,
        })
}

fn point(i: usize) -> TimePoint {
    TimePoint::parse(TIMES[i % TIMES.len()]).unwrap()
}

fn build(id: u128, s: &Spec) -> Event {
    let from = point(s.from);
    let occurred = match s.to.map(point) {
        Some(to) if to.start >= from.start => Occurred::range(from, to).unwrap(),
        _ => Occurred::point(from),
    };
    let mut e = Event::new(KINDS[s.kind], occurred);
    e.id = Uuid::from_u128(id + 1);
    e.countries = s
        .countries
        .iter()
        .map(|&c| COUNTRIES[c].to_string())
        .collect();
    e.actors = s
        .actors
        .iter()
        .map(|&(n, r)| Actor::new(NAMES[n], ROLES[r]))
        .collect();
    if let Some((pt, precision, admin1, fatalities)) = s.place {
        let (lat, lon) = POINTS[pt];
        e.location = Some(annals::Location {
            lat: Some(lat),
            lon: Some(lon),
            precision: precision.map(|p| annals::PlacePrecision::ALL[p]),
            admin1: admin1.map(|a| ADMIN1[a].to_string()),
            ..Default::default()
        });
        match fatalities {
            Some((true, f, _, _)) => {
                e.attrs.insert("fatalities".into(), f.into());
            }
            Some((false, best, below, above)) => {
                e.attrs.insert("best".into(), best.into());
                e.attrs.insert("low".into(), (best - below).into());
                e.attrs.insert("high".into(), (best + above).into());
            }
            None => {}
        }
    }
    e.validate().unwrap()
}

#[derive(Debug, Clone)]
enum Step {
    Append(Vec<(u128, Spec)>),
    Reappend(u128),
    Correct(u128, Spec),
    Retract(u128),
    Checkpoint,
    Reopen,
    Query(
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        Option<usize>,
        Option<usize>,
        bool,
    ),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => prop::collection::vec((0..IDS, spec()), 1..4).prop_map(Step::Append),
        1 => (0..IDS).prop_map(Step::Reappend),
        2 => (0..IDS, spec()).prop_map(|(i, s)| Step::Correct(i, s)),
        1 => (0..IDS).prop_map(Step::Retract),
        1 => Just(Step::Checkpoint),
        1 => Just(Step::Reopen),
        3 => (
            prop::collection::vec(0..COUNTRIES.len(), 0..2),
            prop::collection::vec(0..NAMES.len(), 0..2),
            prop::collection::vec(0..KINDS.len(), 0..2),
            prop::option::of(0..TIMES.len()),
            prop::option::of(0..TIMES.len()),
            any::<bool>(),
        )
            .prop_map(|(c, a, k, f, t, w)| Step::Query(c, a, k, f, t, w)),
    ]
}

/// The reference: the list of events with their versions, nothing else.
#[derive(Clone, Default)]
struct Model {
    seq: u64,
    /// id -> (created seq, original, current or None if retracted, corrected seq)
    events: BTreeMap<Uuid, (u64, Event, Option<Event>, Option<u64>)>,
    /// Actor key -> name first seen in the log.
    names: HashMap<String, String>,
}

impl Model {
    fn see(&mut self, e: &Event) {
        for a in &e.actors {
            self.names.entry(a.key()).or_insert_with(|| a.name.clone());
        }
    }

    /// Applies a batch; `None` if annals must reject it (nothing changes).
    fn write(&self, ops: &[Op]) -> Option<Model> {
        let mut m = self.clone();
        for op in ops {
            match op {
                Op::Append(e) => match m.events.get(&e.id) {
                    Some((_, orig, _, _)) if orig == e => {}
                    Some(_) => return None,
                    None => {
                        m.seq += 1;
                        m.see(e);
                        m.events
                            .insert(e.id, (m.seq, e.clone(), Some(e.clone()), None));
                    }
                },
                Op::Correct(e) => {
                    m.seq += 1;
                    let seq = m.seq;
                    match m.events.get_mut(&e.id) {
                        Some((_, _, cur @ Some(_), corrected)) => {
                            *cur = Some(e.clone());
                            *corrected = Some(seq);
                        }
                        _ => return None,
                    }
                    m.see(e);
                }
                Op::Retract { id, .. } => {
                    m.seq += 1;
                    match m.events.get_mut(id) {
                        Some((_, _, cur @ Some(_), _)) => *cur = None,
                        _ => return None,
                    }
                }
            }
        }
        Some(m)
    }

    fn current(&self) -> impl Iterator<Item = (u64, &Event)> {
        self.events
            .values()
            .filter_map(|(seq, _, cur, _)| cur.as_ref().map(|e| (*seq, e)))
    }

    fn name(&self, key: &str) -> String {
        self.names.get(key).cloned().unwrap_or_default()
    }

    fn by_country(&self) -> Vec<CountryRow> {
        let mut rows: BTreeMap<
            String,
            (
                u64,
                BTreeMap<String, u64>,
                BTreeSet<TimePoint>,
                BTreeSet<TimePoint>,
                BTreeSet<String>,
            ),
        > = BTreeMap::new();
        for (_, e) in self.current() {
            for c in &e.countries {
                let r = rows.entry(c.clone()).or_default();
                r.0 += 1;
                *r.1.entry(e.kind.clone()).or_default() += 1;
                r.2.insert(e.occurred.from);
                r.3.insert(e.occurred.to);
                r.4.extend(e.actors.iter().map(Actor::key));
            }
        }
        rows.into_iter()
            .map(|(country, (count, by_kind, firsts, lasts, keys))| {
                let mut actors: Vec<String> = keys.iter().map(|k| self.name(k)).collect();
                actors.sort_by_cached_key(|n| n.to_lowercase());
                let more_actors = actors.len() > annals::ACTORS_IN_ROW;
                actors.truncate(annals::ACTORS_IN_ROW);
                CountryRow {
                    country,
                    count,
                    by_kind,
                    first: firsts.first().map(ToString::to_string),
                    last: lasts.last().map(ToString::to_string),
                    actors,
                    more_actors,
                }
            })
            .collect()
    }

    fn by_actor(&self) -> Vec<ActorRow> {
        type Agg = (
            u64,
            BTreeMap<String, u64>,
            BTreeMap<String, u64>,
            BTreeSet<String>,
            BTreeSet<TimePoint>,
            BTreeSet<TimePoint>,
        );
        let mut rows: BTreeMap<String, Agg> = BTreeMap::new();
        for (_, e) in self.current() {
            let keys: BTreeSet<String> = e.actors.iter().map(Actor::key).collect();
            for k in &keys {
                let r = rows.entry(k.clone()).or_default();
                r.0 += 1;
                *r.1.entry(e.kind.clone()).or_default() += 1;
                r.3.extend(e.countries.iter().cloned());
                r.4.insert(e.occurred.from);
                r.5.insert(e.occurred.to);
            }
            let pairs: BTreeSet<(String, String)> =
                e.actors.iter().map(|a| (a.key(), a.role.clone())).collect();
            for (k, role) in pairs {
                *rows.entry(k).or_default().2.entry(role).or_default() += 1;
            }
        }
        rows.into_iter()
            .map(
                |(key, (count, by_kind, by_role, countries, firsts, lasts))| ActorRow {
                    actor: self.name(&key),
                    count,
                    by_kind,
                    by_role,
                    countries: countries.into_iter().collect(),
                    first: firsts.first().map(ToString::to_string),
                    last: lasts.last().map(ToString::to_string),
                },
            )
            .collect()
    }

    fn by_date(&self, g: Granularity) -> Vec<DateRow> {
        let gp = match g {
            Granularity::Day => Precision::Day,
            Granularity::Month => Precision::Month,
            Granularity::Year => Precision::Year,
        };
        let mut rows: BTreeMap<
            (i64, Precision),
            (u64, BTreeMap<String, u64>, BTreeMap<String, u64>),
        > = BTreeMap::new();
        for (_, e) in self.current() {
            let p = gp.max(e.occurred.precision());
            let r = rows
                .entry((e.occurred.from.truncate(p).start, p))
                .or_default();
            r.0 += 1;
            *r.1.entry(e.kind.clone()).or_default() += 1;
            for c in &e.countries {
                *r.2.entry(c.clone()).or_default() += 1;
            }
        }
        rows.into_iter()
            .map(
                |((start, precision), (count, by_kind, by_country))| DateRow {
                    bucket: TimePoint {
                        start,
                        precision: precision.min(Precision::Year),
                        mark: annals::Mark::NONE,
                    }
                    .to_string(),
                    precision,
                    count,
                    by_kind,
                    by_country,
                },
            )
            .collect()
    }

    /// The by-place view recomputed from the current events: PRIO-GRID
    /// cells worked out here, buckets as the by-date view's.
    fn by_place(&self, level: PlaceLevel, g: Option<Granularity>) -> Vec<PlaceRow> {
        #[derive(Default)]
        struct Agg {
            count: u64,
            by_kind: BTreeMap<String, u64>,
            by_precision: BTreeMap<String, u64>,
            fat: Option<(i64, i64, i64, u64)>,
            first: BTreeSet<TimePoint>,
            last: BTreeSet<TimePoint>,
        }
        // (area sort key, bucket) -> aggregate; the area's sort key is the
        // cell id or the (country, name) pair.
        let mut rows: BTreeMap<((i64, String, String), Option<(i64, Precision)>), Agg> =
            BTreeMap::new();
        for (_, e) in self.current() {
            let Some(l) = &e.location else { continue };
            let area = match level {
                PlaceLevel::Cell => {
                    let (Some(lat), Some(lon)) = (l.lat, l.lon) else {
                        continue;
                    };
                    let row = ((lat + 90.0) / 0.5).floor() as i64;
                    let col = ((lon + 180.0) / 0.5).floor() as i64;
                    (row * 720 + col + 1, String::new(), String::new())
                }
                PlaceLevel::Admin1 => {
                    let Some(a) = &l.admin1 else { continue };
                    let cc = l.country.clone().or(e.countries.first().cloned());
                    (0, cc.unwrap_or_default(), a.clone())
                }
            };
            let bucket = g.map(|g| {
                let gp = if g == Granularity::Year {
                    Precision::Year
                } else {
                    Precision::Month
                };
                let p = gp.max(e.occurred.precision());
                (e.occurred.from.truncate(p).start, p)
            });
            let r = rows.entry((area, bucket)).or_default();
            r.count += 1;
            if g.is_none() {
                *r.by_kind.entry(e.kind.clone()).or_default() += 1;
                let p = l.precision.map_or("unspecified", |p| p.as_str());
                *r.by_precision.entry(p.to_string()).or_default() += 1;
                // To the year.
                let m = |p: TimePoint| p.truncate(p.precision.max(Precision::Year));
                r.first.insert(m(e.occurred.from));
                r.last.insert(m(e.occurred.to));
            }
            let int = |k: &str| e.attrs.get(k).and_then(|v| v.as_i64());
            let f = int("fatalities").map(|f| (f, f, f)).or_else(|| {
                let b = int("best")?;
                Some((b, int("low").unwrap_or(b), int("high").unwrap_or(b)))
            });
            if let Some((best, low, high)) = f {
                let t = r.fat.get_or_insert((0, 0, 0, 0));
                *t = (t.0 + best, t.1 + low, t.2 + high, t.3 + 1);
            }
        }
        rows.into_iter()
            .map(|(((gid, cc, name), bucket), a)| {
                let centre = (level == PlaceLevel::Cell).then(|| {
                    let i = gid - 1;
                    (
                        -90.0 + ((i / 720) as f64 + 0.5) * 0.5,
                        -180.0 + ((i % 720) as f64 + 0.5) * 0.5,
                    )
                });
                PlaceRow {
                    area: match level {
                        PlaceLevel::Cell => format!("G{gid}"),
                        PlaceLevel::Admin1 => format!("{cc}/{name}"),
                    },
                    gid: (level == PlaceLevel::Cell).then_some(gid as u32),
                    lat: centre.map(|c| c.0),
                    lon: centre.map(|c| c.1),
                    country: (level == PlaceLevel::Admin1).then(|| cc.clone()),
                    admin1: (level == PlaceLevel::Admin1).then(|| name.clone()),
                    bucket: bucket.map(|(start, p)| {
                        TimePoint {
                            start,
                            precision: p.min(Precision::Year),
                            mark: annals::Mark::NONE,
                        }
                        .to_string()
                    }),
                    precision: bucket.map(|b| b.1),
                    count: a.count,
                    by_kind: a.by_kind,
                    by_precision: a.by_precision,
                    fatalities: a.fat.map(|(best, low, high, events)| annals::Fatalities {
                        best,
                        low,
                        high,
                        events,
                    }),
                    first: a.first.first().map(ToString::to_string),
                    last: a.last.last().map(ToString::to_string),
                }
            })
            .collect()
    }

    fn query(&self, q: &Query) -> Vec<(u64, Uuid)> {
        let lo = q.from.map_or(i64::MIN, |p| p.start);
        let hi = q.to.map_or(i64::MAX, |p| p.end());
        let mut hits: Vec<(i64, u64, Uuid)> = self
            .current()
            .filter(|(_, e)| {
                q.countries.is_empty() || e.countries.iter().any(|c| q.countries.contains(c))
            })
            .filter(|(_, e)| {
                q.actors.is_empty()
                    || e.actors
                        .iter()
                        .any(|a| q.actors.iter().any(|n| actor_key(n) == a.key()))
            })
            .filter(|(_, e)| q.kinds.is_empty() || q.kinds.contains(&e.kind))
            .filter(|(_, e)| {
                let (s, t) = (e.occurred.start(), e.occurred.end());
                if q.within {
                    lo <= s && t <= hi
                } else {
                    s < hi && lo < t
                }
            })
            .map(|(seq, e)| (e.occurred.start(), seq, e.id))
            .collect();
        hits.sort();
        hits.into_iter().map(|(_, seq, id)| (seq, id)).collect()
    }
}

fn open(dir: &std::path::Path) -> Annals {
    Annals::builder(dir)
        .durability(Durability::Buffered)
        .checkpoint_every_entries(7)
        .view_cells_in_memory(40)
        .open()
        .unwrap()
}

fn check_views(db: &Annals, m: &Model) -> Result<(), TestCaseError> {
    let countries = m.by_country();
    prop_assert_eq!(db.by_country().unwrap().to_vec(), countries.clone());
    let actors = m.by_actor();
    prop_assert_eq!(db.by_actor().unwrap().to_vec(), actors.clone());
    // Single rows, and pages of two or three, give the same rows.
    for row in &countries {
        prop_assert_eq!(db.country(&row.country).unwrap(), Some(row.clone()));
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = db
                .country_actors(&row.country, after.as_deref(), 2)
                .unwrap();
            prop_assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after = Some(last.actor.clone());
            paged.extend(page.into_iter().map(|a| a.actor));
        }
        prop_assert_eq!(&paged, &row.actors);
    }
    prop_assert_eq!(db.country("ZZ").unwrap(), None);
    for row in &actors {
        prop_assert_eq!(
            db.actor(&row.actor.to_uppercase()).unwrap(),
            Some(row.clone())
        );
    }
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = db.actors_page(after.as_deref(), 3).unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.actor.clone());
        paged.extend(page);
    }
    prop_assert_eq!(paged, actors);
    for g in Granularity::ALL {
        prop_assert_eq!(db.by_date(g).unwrap().to_vec(), m.by_date(g));
    }
    for level in [PlaceLevel::Cell, PlaceLevel::Admin1] {
        for g in [None, Some(Granularity::Month), Some(Granularity::Year)] {
            prop_assert_eq!(
                db.by_place(level, g).unwrap().to_vec(),
                m.by_place(level, g),
                "{:?} {:?}",
                level,
                g
            );
        }
    }
    prop_assert_eq!(db.head().seq, m.seq);
    Ok(())
}

fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut db = Some(open(&path));
    let mut model = Model::default();
    for step in steps {
        let ops: Vec<Op> = match &step {
            Step::Append(items) => items
                .iter()
                .map(|(i, s)| Op::Append(build(*i, s)))
                .collect(),
            Step::Reappend(i) => match model.events.get(&Uuid::from_u128(i + 1)) {
                Some((_, orig, _, _)) => vec![Op::Append(orig.clone())],
                None => continue,
            },
            Step::Correct(i, s) => vec![Op::Correct(build(*i, s))],
            Step::Retract(i) => vec![Op::Retract {
                id: Uuid::from_u128(i + 1),
                reason: "test".into(),
            }],
            Step::Checkpoint => {
                db.as_ref().unwrap().checkpoint().unwrap();
                continue;
            }
            Step::Reopen => {
                drop(db.take());
                db = Some(open(&path));
                check_views(db.as_ref().unwrap(), &model)?;
                continue;
            }
            Step::Query(c, a, k, f, t, w) => {
                let mut q = Query::new();
                c.iter().for_each(|&i| q = q.clone().country(COUNTRIES[i]));
                a.iter().for_each(|&i| q = q.clone().actor(NAMES[i]));
                k.iter().for_each(|&i| q = q.clone().kind(KINDS[i]));
                q.from = f.map(point);
                q.to = t.map(point);
                if q.validate().is_err() {
                    continue;
                }
                q.within = *w;
                let got: Vec<(u64, Uuid)> = db
                    .as_ref()
                    .unwrap()
                    .query(&q)
                    .unwrap()
                    .iter()
                    .map(|r| (r.position.seq, r.event.id))
                    .collect();
                prop_assert_eq!(got, model.query(&q), "query {:?}", q);
                continue;
            }
        };
        let d = db.as_ref().unwrap();
        let expected = model.write(&ops);
        let result = d.write(ops, None);
        match (expected, result) {
            (Some(m), Ok(_)) => model = m,
            (None, Err(_)) => {}
            (e, r) => prop_assert!(false, "model accepts: {}, annals: {:?}", e.is_some(), r),
        }
        check_views(d, &model)?;
    }
    let d = db.as_ref().unwrap();
    for (id, (seq, _, cur, corrected)) in &model.events {
        let rec = d.get(*id).unwrap().unwrap();
        prop_assert_eq!(rec.position.seq, *seq);
        prop_assert_eq!(rec.position.corrected_seq, *corrected);
        prop_assert_eq!(rec.retracted_seq.is_some(), cur.is_none());
        if let Some(c) = cur {
            prop_assert_eq!(&rec.event, c);
        }
    }
    prop_assert!(d.verify().is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn annals_agrees_with_the_reference_model(steps in prop::collection::vec(step(), 1..24)) {
        run(steps)?;
    }
}
