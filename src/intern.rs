//! Interned strings: kinds, countries, roles and actor keys are stored once
//! and referred to by a small number in the index and the views, which
//! keeps per-event state small and the fold free of string copies.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::model::{actor_key, Event};
use crate::time::Occurred;

/// A small, fast hasher (FxHash, as rustc uses) for the views' cells,
/// hashed many times per change: their keys are a few of our own
/// numbers, so SipHash's resistance to chosen keys buys nothing there.
/// (The string table keeps SipHash: its keys come from input.)
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        for b in chunks.remainder() {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map hashed with [`Fx`].
pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// A string's number in a [`Names`] table.
pub(crate) type Name = u32;

/// An append-only string table. Numbers are given in first-seen order, so
/// a replay of the same log builds the same table.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Names {
    names: Vec<String>,
    ids: HashMap<String, Name>,
}

impl Names {
    /// The number of `s`, adding it if new.
    pub(crate) fn intern(&mut self, s: &str) -> Name {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = Name::try_from(self.names.len()).unwrap_or(Name::MAX);
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }

    /// The number of `s`, if it was ever seen.
    pub(crate) fn get(&self, s: &str) -> Option<Name> {
        self.ids.get(s).copied()
    }

    /// The string of a number (empty if unknown, which only a bug can cause).
    pub(crate) fn name(&self, id: Name) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }

    /// How many strings the table holds.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The strings from the `from`-th on, in number order.
    pub(crate) fn since(&self, from: usize) -> &[String] {
        self.names.get(from..).unwrap_or(&[])
    }
}

/// An event's strings as numbers, computed once per change and shared by
/// the index and every view.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub kind: Name,
    /// Countries, in the event's order (already free of duplicates).
    pub countries: Vec<Name>,
    /// (actor key, role) pairs, sorted and distinct.
    pub actors: Vec<(Name, Name)>,
    /// Distinct actor keys, sorted.
    pub actor_keys: Vec<Name>,
    /// (actor key, display name) in the event's order.
    pub display: Vec<(Name, Name)>,
    pub occurred: Occurred,
    /// The place list of the location's point, if it has one.
    pub place: Option<u64>,
    /// The PRIO-GRID cell of the location's point.
    pub gid: Option<u32>,
    /// The ADMIN1 unit the location names: its country and name, joined
    /// by U+001F.
    pub admin1: Option<Name>,
    /// The place precision's code (0: not given).
    pub precision: u8,
    /// Fatalities the event reports: best, low, high.
    pub fatalities: Option<[i64; 3]>,
}

impl Keys {
    /// Interns an event's strings.
    pub(crate) fn of(names: &mut Names, e: &Event) -> Keys {
        let display: Vec<(Name, Name)> = e
            .actors
            .iter()
            .map(|a| (names.intern(&actor_key(&a.name)), names.intern(&a.name)))
            .collect();
        let mut actors: Vec<(Name, Name)> = e
            .actors
            .iter()
            .zip(&display)
            .map(|(a, (k, _))| (*k, names.intern(&a.role)))
            .collect();
        actors.sort_unstable();
        actors.dedup();
        let mut actor_keys: Vec<Name> = actors.iter().map(|(k, _)| *k).collect();
        actor_keys.dedup();
        let point = e.location.as_ref().and_then(|l| Some((l.lat?, l.lon?)));
        let precision = e.location.as_ref().and_then(|l| l.precision);
        Keys {
            kind: names.intern(&e.kind),
            countries: e.countries.iter().map(|c| names.intern(c)).collect(),
            actors,
            actor_keys,
            display,
            occurred: e.occurred,
            place: point.map(|(lat, lon)| crate::place::place_key(lat, lon, precision)),
            gid: point.map(|(lat, lon)| crate::place::prio_grid(lat, lon)),
            admin1: e.location.as_ref().and_then(|l| {
                let a = l.admin1.as_deref()?;
                let cc = l
                    .country
                    .as_deref()
                    .or(e.countries.first().map(String::as_str))
                    .unwrap_or("");
                Some(names.intern(&format!("{cc}\u{1f}{a}")))
            }),
            precision: precision.map_or(0, |p| p.code()),
            fatalities: crate::place::fatalities(&e.attrs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_stable_and_in_first_seen_order() {
        let mut n = Names::default();
        assert_eq!(n.intern("PL"), 0);
        assert_eq!(n.intern("RO"), 1);
        assert_eq!(n.intern("PL"), 0);
        assert_eq!(n.get("RO"), Some(1));
        assert_eq!(n.name(1), "RO");
        assert_eq!(n.since(1), ["RO".to_string()]);
        assert_eq!(n.len(), 2);
    }
}
