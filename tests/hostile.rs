//! Hostile input: arbitrary and mutated bytes never make a parser or a
//! decoder panic, damaged stored bytes are always rejected, and every size
//! limit holds exactly at its boundary.

mod common;

use annals::fuzz;
use proptest::prelude::*;

fn stored() -> Vec<u8> {
    let events = common::scenario();
    fuzz::encode_event(5, &events[7]).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400), seq in 0u64..10) {
        let _ = fuzz::decode_entry(seq, &bytes);
        let _ = fuzz::decode_chunk(seq, &bytes);
    }

    #[test]
    fn damaged_entries_are_always_rejected(flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4)) {
        let mut bytes = stored();
        for (i, bit) in &flips {
            let at = i.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        // Flips can cancel out; otherwise the entry must be rejected.
        prop_assert_eq!(fuzz::decode_entry(5, &bytes), bytes == stored());
    }

    #[test]
    fn damaged_chunks_never_decode_silently(cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let events = common::scenario();
        let entries: Vec<Vec<u8>> = events.iter().enumerate()
            .map(|(i, e)| fuzz::encode_event(1 + i as u64, e).unwrap()).collect();
        let (first, chunk) = fuzz::pack(1, entries).remove(0);
        prop_assert!(fuzz::decode_chunk(first, &chunk));
        let mut damaged = chunk.clone();
        let at = flip.index(damaged.len());
        damaged[at] ^= 1 << bit;
        prop_assert!(!fuzz::decode_chunk(first, &damaged));
        let short = &chunk[..cut.index(chunk.len())];
        prop_assert!(!fuzz::decode_chunk(first, short));
    }

    #[test]
    fn json_that_is_almost_an_event_never_panics(
        key in prop::sample::select(vec!["kind", "occurred", "countries", "actors", "location", "sources", "confidence", "attrs", "tags", "id", "summary"]),
        value in prop_oneof![
            Just("null".to_string()), Just("[]".to_string()), Just("{}".to_string()), Just("1e400".to_string()),
            Just("-0".to_string()), Just("\"\"".to_string()), Just("[[[[[[]]]]]]".to_string()),
            ".{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            any::<f64>().prop_map(|f| f.to_string()),
        ],
    ) {
        let mut obj = serde_json::json!({"kind": "meeting", "occurred": "2025"});
        let line = format!("{{\"{key}\": {value}, \"kind\": \"meeting\", \"occurred\": \"2025\"}}");
        let _ = annals::parse_event(&line);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&value) {
            obj[key] = v;
            let _ = annals::event_from_value(obj);
        }
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        "{{\"kind\":\"x\",\"occurred\":\"2025\",\"attrs\":{{\"a\":{}{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(annals::parse_event(&deep).is_err());
}

#[test]
fn the_line_limit_holds_at_its_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::db_path(&dir);
    common::annals(&db, &["init"], None);
    let pad = |n: usize| {
        let base = r#"{"kind":"meeting","occurred":"2025","attrs":{"pad":""}}"#;
        let fill = n - base.len();
        format!(
            r#"{{"kind":"meeting","occurred":"2025","attrs":{{"pad":"{}"}}}}"#,
            "x".repeat(fill)
        )
    };
    // Over the line limit: refused with the line number.
    let long = format!("{}\n", pad(annals::MAX_LINE_BYTES + 10));
    let out = common::annals(&db, &["append", "-"], Some(long.as_bytes()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::stderr(&out).contains("line 1"),
        "{}",
        common::stderr(&out)
    );
    // attrs is limited far below the line limit, and holds at its own boundary.
    let attrs_max = {
        let base = r#"{"pad":""}"#.len();
        "x".repeat(annals::MAX_ATTRS_BYTES - base)
    };
    let ok = format!(r#"{{"kind":"meeting","occurred":"2025","attrs":{{"pad":"{attrs_max}"}}}}"#);
    annals::parse_event(&ok).unwrap();
    let over =
        format!(r#"{{"kind":"meeting","occurred":"2025","attrs":{{"pad":"{attrs_max}x"}}}}"#);
    assert!(annals::parse_event(&over).is_err());
}

#[test]
fn the_batch_limit_holds_at_its_boundary() {
    let (_d, db) = common::fresh();
    let make = |n: usize| -> Vec<annals::Event> {
        (0..n)
            .map(|_| annals::Event::new("statement", annals::Occurred::parse("2025").unwrap()))
            .collect()
    };
    let err = db.append(make(annals::MAX_BATCH_ENTRIES + 1)).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    assert_eq!(db.head().seq, 0);
    db.append(make(annals::MAX_BATCH_ENTRIES)).unwrap();
    assert_eq!(db.head().seq, annals::MAX_BATCH_ENTRIES as u64);
}

#[test]
fn kind_and_name_limits_hold_at_their_boundaries() {
    let kind = |n: usize| format!(r#"{{"kind":"{}","occurred":"2025"}}"#, "k".repeat(n));
    annals::parse_event(&kind(annals::MAX_KIND_BYTES)).unwrap();
    assert!(annals::parse_event(&kind(annals::MAX_KIND_BYTES + 1)).is_err());
    let actor = |n: usize| {
        format!(
            r#"{{"kind":"k","occurred":"2025","actors":[{{"name":"{}","role":"host"}}]}}"#,
            "a".repeat(n)
        )
    };
    annals::parse_event(&actor(annals::MAX_NAME_BYTES)).unwrap();
    assert!(annals::parse_event(&actor(annals::MAX_NAME_BYTES + 1)).is_err());
    let (_d, db) = common::fresh();
    let e = common::ev(r#"{"kind":"k","occurred":"2025"}"#);
    db.append(vec![e.clone()]).unwrap();
    assert!(db
        .retract(e.id, &"r".repeat(annals::MAX_REASON_BYTES + 1))
        .is_err());
    db.retract(e.id, &"r".repeat(annals::MAX_REASON_BYTES))
        .unwrap();
}
