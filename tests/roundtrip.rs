//! Round trips: any valid event printed in the interchange format parses
//! back to itself, and any event stored and read back is unchanged.

mod common;

use annals::{Actor, Event, Location, Occurred, Source, TimePoint};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn time_point() -> impl Strategy<Value = TimePoint> {
    (
        1i32..9999,
        1u32..=12,
        1u32..=28,
        0u8..4,
        0i64..86_400_000_000,
        prop::sample::select(vec!["", "", "~", "?", "%"]),
    )
        .prop_map(|(y, m, d, p, us, qualifier)| {
            let text = match p {
                0 => format!("{y:04}"),
                1 => format!("{y:04}-{m:02}"),
                2 => format!("{y:04}-{m:02}-{d:02}"),
                _ => {
                    let (s, frac) = (us / 1_000_000, us % 1_000_000);
                    format!(
                        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
                        s / 3600,
                        s / 60 % 60,
                        s % 60
                    )
                }
            };
            TimePoint::parse(&format!("{text}{qualifier}")).unwrap()
        })
}

/// A point, an interval, or an interval with an open (`..`) or unknown
/// (empty) end: every EDTF form annals stores.
fn occurred() -> impl Strategy<Value = Occurred> {
    (time_point(), prop::option::of(time_point()), 0u8..8).prop_map(|(a, b, end)| match (b, end) {
        (_, 0) => Occurred::parse_range("..", &a.to_string()).unwrap(),
        (_, 1) => Occurred::parse_range(&a.to_string(), "").unwrap(),
        (Some(b), _) if b.start >= a.start => Occurred::range(a, b).unwrap_or(Occurred::point(a)),
        (Some(b), _) if a.start >= b.start => Occurred::range(b, a).unwrap_or(Occurred::point(a)),
        _ => Occurred::point(a),
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = Event> {
    let codes = prop::sample::select(annals::COUNTRY_CODES.to_vec());
    (
        "[a-z][a-z0-9]{0,6}(_[a-z0-9]{1,5}){0,2}",
        occurred(),
        prop::collection::vec(codes.clone(), 0..4),
        prop::option::of((
            prop::option::of(".{0,20}"),
            prop::option::of(codes),
            prop::option::of(-90.0f64..=90.0),
            prop::option::of(-180.0f64..=180.0),
            prop::option::of(prop::sample::select(annals::PlacePrecision::ALL.to_vec())),
            prop::option::of(".{0,20}"),
        )),
        prop::collection::vec(("[^\\s]( ?[^\\s]){0,15}", "[a-z]{1,10}"), 0..4),
        prop::option::of(".{1,60}"),
        prop::collection::vec(
            (
                ".{0,12}",
                prop::option::of("https://[a-z]{1,10}\\.org/.{0,10}"),
                prop::option::of(time_point()),
            ),
            0..3,
        ),
        (
            prop::option::of(0.0f64..=1.0),
            prop::collection::vec(".{1,10}", 0..3),
            prop::collection::btree_map("[a-z]{1,6}", json_value(), 0..4),
        ),
    )
        .prop_map(
            |(
                kind,
                occurred,
                countries,
                loc,
                actors,
                summary,
                sources,
                (confidence, tags, attrs),
            )| {
                let mut e = Event::new(kind, occurred);
                e.countries = countries.into_iter().map(str::to_string).collect();
                e.location = loc.map(|(name, country, lat, lon, precision, admin1)| Location {
                    name,
                    country: country.map(str::to_string),
                    lat,
                    lon,
                    precision,
                    admin1,
                });
                e.actors = actors.into_iter().map(|(n, r)| Actor::new(n, r)).collect();
                e.summary = summary;
                e.sources = sources
                    .into_iter()
                    .map(|(name, url, reported_at)| Source {
                        name,
                        url,
                        reported_at,
                    })
                    .collect();
                e.confidence = confidence;
                e.tags = tags;
                e.attrs = attrs.into_iter().collect::<Map<String, Value>>();
                e
            },
        )
        .prop_filter_map("valid events only", |e| e.validate().ok())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn interchange_json_round_trips(e in event()) {
        let line = annals::event_to_line(&e, None);
        prop_assert_eq!(annals::parse_event(&line).unwrap(), e.clone());
        let pos = annals::Position { seq: 3, recorded_at: 1_764_756_000_000_000, corrected_seq: Some(5) };
        prop_assert_eq!(annals::parse_event(&annals::event_to_line(&e, Some(pos))).unwrap(), e);
    }

    #[test]
    fn stored_events_read_back_unchanged(events in prop::collection::vec(event(), 1..6)) {
        let (_d, db) = common::fresh();
        let mut unique = Vec::new();
        for e in events {
            if !unique.iter().any(|u: &Event| u.id == e.id) {
                unique.push(e);
            }
        }
        db.append(unique.clone()).unwrap();
        for e in &unique {
            prop_assert_eq!(&db.get(e.id).unwrap().unwrap().event, e);
        }
        let entries: Vec<_> = db.entries(0).unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(entries.len(), unique.len());
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_input(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = annals::parse_event(&text);
        let _ = TimePoint::parse(&text);
    }
}
