//! Embedding annals the way an analytic tool would: open a database, append
//! reports as they arrive, keep a custom projection current, and query.
//!
//! `cargo run --example embed`

use std::collections::BTreeMap;

use annals::{Annals, Change, Event, Occurred, Projection, Query};

/// A custom view: for each country, the mean confidence of the current
/// events that concern it (events without a confidence are skipped).
struct MeanConfidence;

impl Projection for MeanConfidence {
    /// country -> (sum of confidences, number of events)
    type State = BTreeMap<String, (f64, u32)>;

    fn name(&self) -> &str {
        "mean_confidence"
    }

    fn init(&self) -> Self::State {
        BTreeMap::new()
    }

    fn apply(&self, state: &mut Self::State, change: &Change<'_>) {
        // Remove the previous version's contribution, add the new one's:
        // corrections and retractions need nothing more.
        for (event, sign) in [(change.before, -1.0), (change.after, 1.0)] {
            let Some(e) = event else { continue };
            let Some(c) = e.confidence else { continue };
            for country in &e.countries {
                let slot = state.entry(country.clone()).or_insert((0.0, 0));
                slot.0 += sign * c;
                slot.1 = if sign > 0.0 {
                    slot.1 + 1
                } else {
                    slot.1.saturating_sub(1)
                };
                if slot.1 == 0 {
                    state.remove(country);
                }
            }
        }
    }

    fn encode(&self, state: &Self::State) -> Option<Vec<u8>> {
        serde_json::to_vec(state).ok()
    }

    fn decode(&self, bytes: &[u8]) -> Option<Self::State> {
        serde_json::from_slice(bytes).ok()
    }
}

fn main() -> annals::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| annals::Error::Io {
        path: "tempdir".into(),
        source: e,
    })?;
    let db = Annals::open(dir.path().join("monitor.db"))?;
    let confidence = db.register(MeanConfidence)?;

    // Reports arrive one by one, as a monitoring service would see them.
    let reports = [
        r#"{"kind":"airspace_violation","occurred":"2025-09","countries":["PL"],"actors":[{"name":"Russia","role":"alleged_perpetrator"}],"confidence":0.9}"#,
        r#"{"kind":"airspace_violation","occurred":{"from":"2025-09","to":"2025-11"},"countries":["PL","RO"],"actors":[{"name":"Russia","role":"alleged_perpetrator"}],"confidence":0.7}"#,
        r#"{"kind":"sabotage","occurred":"2025-11","countries":["PL"],"actors":[{"name":"Russia","role":"alleged_perpetrator"}],"confidence":0.6}"#,
    ];
    let mut sabotage = None;
    for line in reports {
        let event = annals::parse_event(line)?;
        let id = event.id;
        let written = db.append(vec![event])?;
        println!("appended at seq {}", written[0].seq);
        sabotage = Some(id);
    }

    // New information raises the confidence in the sabotage attribution.
    if let Some(id) = sabotage {
        if let Some(current) = db.get(id)? {
            let mut corrected: Event = current.event;
            corrected.confidence = Some(0.8);
            db.correct(corrected)?;
        }
    }

    let (seq, state) = confidence.state();
    for (country, (sum, n)) in &state {
        println!(
            "as of seq {seq}: {country} mean confidence {:.2} over {n} events",
            sum / f64::from(*n)
        );
    }

    let autumn = Query::new().country("PL").from("2025-10")?.to("2025-12")?;
    for r in db.query(&autumn)? {
        println!(
            "PL in Oct-Dec 2025: seq {} {} {}",
            r.position.seq, r.event.kind, r.event.occurred
        );
    }

    // A brand-new event built in code rather than parsed.
    let meeting = Event::new("meeting", Occurred::parse("2025-12-03")?)
        .with_countries(["BE"])
        .with_actor("Mark Rutte", "attendee");
    db.append(vec![meeting])?;

    // The projection always equals a replay of the log.
    assert_eq!(confidence.state().1, db.replay(&MeanConfidence, None)?);
    db.verify()?;
    db.close()
}
