//! The storage encoding of log entries: a fixed envelope (format version,
//! seq, the predecessor's hash, this entry's hash) around a bincode payload.
//! See `docs/format.md` for the byte layout.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::entry::{Body, Entry, Hash, Origin};
use crate::error::{Error, Result};
use crate::model::{Actor, Event, Location, PlacePrecision, Source};
use crate::time::{Mark, Micros, Occurred, Precision, TimePoint};

/// Version byte of the entry envelope written now. Version 2 chains a
/// digest of the payload instead of the payload itself, so that an
/// event's payload can later be erased (a legal erasure request) while the
/// chain still verifies from the digest. Version 1 entries (annals before
/// December 2026) are still read and verified.
pub const FORMAT_VERSION: u8 = 2;
/// The first format, whose chain hash covers the payload bytes.
const FORMAT_V1: u8 = 1;
/// Version 2 with the entry's merge origin after the entry, in the
/// payload (so covered by the chain): written only for merged entries, so
/// that every other entry stays byte for byte what version 2 wrote.
const FORMAT_MERGED: u8 = 3;
/// An excised entry: the payload of a version 2 or 3 entry replaced by its
/// BLAKE3 digest (what the chain hash covers, so the chain still
/// verifies), then bincode of `(recorded_at, id)`.
const FORMAT_EXCISED: u8 = 4;
/// Bytes before the payload: version, seq, previous hash, hash.
pub const HEADER_BYTES: usize = 1 + 8 + 32 + 32;
/// Largest encoded entry, so that an entry always fits one chunk and a
/// chunk stays a modest sled value.
pub const MAX_ENTRY_BYTES: usize = 96 * 1024;

/// Payload extensions: fields added to the location after the entry
/// format was fixed, each a tag byte and its value after the entry (and
/// origin), in tag order. Written only when an event has the field, so
/// that every other entry stays byte for byte what earlier versions
/// wrote; covered by the chain like the rest of the payload. Tag 1: the
/// place precision's code (one byte).
const EXT_PLACE_PRECISION: u8 = 1;
/// Tag 2: the location's ADMIN1 name (a bincode string).
const EXT_ADMIN1: u8 = 2;

const HASH_DOMAIN: &[u8] = b"annals/entry/v1";
const HASH_DOMAIN_V2: &[u8] = b"annals/entry/v2";

#[derive(Serialize, Deserialize)]
struct StoredEntry<'a> {
    recorded_at: i64,
    body: StoredBody<'a>,
}

/// A merged entry's origin: branch, seq, hash.
type StoredOrigin<'a> = (Cow<'a, str>, u64, [u8; 32]);

#[derive(Serialize, Deserialize)]
enum StoredBody<'a> {
    Event(StoredEvent<'a>),
    Correction(StoredEvent<'a>),
    Retraction { id: [u8; 16], reason: Cow<'a, str> },
}

type StoredPoint = (i64, u8);
/// A source: name, url, reported_at.
type StoredSource<'a> = (Cow<'a, str>, Option<Cow<'a, str>>, Option<StoredPoint>);

#[derive(Serialize, Deserialize)]
struct StoredEvent<'a> {
    id: [u8; 16],
    kind: Cow<'a, str>,
    from: StoredPoint,
    to: StoredPoint,
    countries: Vec<Cow<'a, str>>,
    location: Option<StoredLocation<'a>>,
    actors: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    summary: Option<Cow<'a, str>>,
    sources: Vec<StoredSource<'a>>,
    confidence: Option<f64>,
    tags: Vec<Cow<'a, str>>,
    /// `attrs` as compact JSON text: bincode cannot decode a
    /// `serde_json::Value` (it needs a self-describing format).
    attrs: Cow<'a, str>,
}

#[derive(Serialize, Deserialize)]
struct StoredLocation<'a> {
    name: Option<Cow<'a, str>>,
    country: Option<Cow<'a, str>>,
    lat: Option<f64>,
    lon: Option<f64>,
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// The precision code in the low four bits, the EDTF mark in the high
/// four (zero for a plain date: entries from before EDTF read the same).
fn stored_point(p: TimePoint) -> StoredPoint {
    (p.start, p.precision.code() | p.mark.bits())
}

fn stored_event(e: &Event) -> StoredEvent<'_> {
    StoredEvent {
        id: *e.id.as_bytes(),
        kind: Cow::Borrowed(&e.kind),
        from: stored_point(e.occurred.from),
        to: stored_point(e.occurred.to),
        countries: e
            .countries
            .iter()
            .map(|c| Cow::Borrowed(c.as_str()))
            .collect(),
        location: e.location.as_ref().map(|l| StoredLocation {
            name: l.name.as_deref().map(Cow::Borrowed),
            country: l.country.as_deref().map(Cow::Borrowed),
            lat: l.lat,
            lon: l.lon,
        }),
        actors: e
            .actors
            .iter()
            .map(|a| {
                (
                    Cow::Borrowed(a.name.as_str()),
                    Cow::Borrowed(a.role.as_str()),
                )
            })
            .collect(),
        summary: e.summary.as_deref().map(Cow::Borrowed),
        sources: e
            .sources
            .iter()
            .map(|s| {
                (
                    Cow::Borrowed(s.name.as_str()),
                    s.url.as_deref().map(Cow::Borrowed),
                    s.reported_at.map(stored_point),
                )
            })
            .collect(),
        confidence: e.confidence,
        tags: e.tags.iter().map(|t| Cow::Borrowed(t.as_str())).collect(),
        attrs: Cow::Owned(serde_json::to_string(&e.attrs).unwrap_or_default()),
    }
}

fn point_from(seq: u64, (start, code): StoredPoint) -> Result<TimePoint> {
    Precision::from_code(code & 0x0f)
        .and_then(|p| TimePoint::from_parts(start, p))
        .zip(Mark::from_bits(code))
        .map(|(p, mark)| TimePoint { mark, ..p })
        .ok_or_else(|| Error::corruption(seq, format!("bad time point ({start}, {code})")))
}

fn event_from(seq: u64, s: StoredEvent<'_>) -> Result<Event> {
    let from = point_from(seq, s.from)?;
    let to = point_from(seq, s.to)?;
    let occurred = if from == to {
        Occurred::point(from)
    } else {
        Occurred::range(from, to).map_err(|e| Error::corruption(seq, e.to_string()))?
    };
    let attrs = match serde_json::from_str(&s.attrs) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(Error::corruption(seq, "attrs are not a JSON object")),
    };
    let sources = s
        .sources
        .into_iter()
        .map(|(name, url, at)| {
            Ok(Source {
                name: name.into_owned(),
                url: url.map(Cow::into_owned),
                reported_at: at.map(|p| point_from(seq, p)).transpose()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Event {
        id: Uuid::from_bytes(s.id),
        kind: s.kind.into_owned(),
        occurred,
        countries: s.countries.into_iter().map(Cow::into_owned).collect(),
        location: s.location.map(|l| Location {
            name: l.name.map(Cow::into_owned),
            country: l.country.map(Cow::into_owned),
            lat: l.lat,
            lon: l.lon,
            precision: None,
            admin1: None,
        }),
        actors: s
            .actors
            .into_iter()
            .map(|(name, role)| Actor {
                name: name.into_owned(),
                role: role.into_owned(),
            })
            .collect(),
        summary: s.summary.map(Cow::into_owned),
        sources,
        confidence: s.confidence,
        tags: s.tags.into_iter().map(Cow::into_owned).collect(),
        attrs,
    })
}

/// The chain hash of a current (version 2) entry: BLAKE3 over a domain
/// tag, the seq, the predecessor's hash and the BLAKE3 digest of the
/// payload.
pub fn chain_hash(seq: u64, prev: &Hash, payload: &[u8]) -> Hash {
    chain_hash_of_digest(seq, prev, blake3::hash(payload).as_bytes())
}

/// The version 2 chain hash from the payload's digest alone: what lets an
/// erased payload's entry still verify.
pub fn chain_hash_of_digest(seq: u64, prev: &Hash, digest: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(HASH_DOMAIN_V2);
    h.update(&seq.to_be_bytes());
    h.update(prev);
    h.update(digest);
    *h.finalize().as_bytes()
}

/// The chain hash of a version 1 entry: over the payload bytes.
fn chain_hash_v1(seq: u64, prev: &Hash, payload: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(HASH_DOMAIN);
    h.update(&seq.to_be_bytes());
    h.update(prev);
    h.update(payload);
    *h.finalize().as_bytes()
}

/// Encodes an entry into its stored bytes, chained to `prev`. Returns the
/// bytes and the entry's hash. Fails if the entry exceeds
/// [`MAX_ENTRY_BYTES`].
pub fn encode_entry(entry: &Entry, prev: &Hash) -> Result<(Vec<u8>, Hash)> {
    let body = match &entry.body {
        Body::Event(e) => StoredBody::Event(stored_event(e)),
        Body::Correction(e) => StoredBody::Correction(stored_event(e)),
        Body::Retraction { id, reason } => StoredBody::Retraction {
            id: *id.as_bytes(),
            reason: Cow::Borrowed(reason),
        },
        Body::Excised { id } => {
            return Err(Error::Internal(format!(
            "entry {}: an excised entry is made from a stored one, never written for event {id}",
            entry.seq
        )))
        }
    };
    let stored = StoredEntry {
        recorded_at: entry.recorded_at,
        body,
    };
    let mut bytes = vec![0u8; HEADER_BYTES];
    let encoding = |e| Error::internal(format!("encoding entry {}: {e}", entry.seq));
    bincode::serde::encode_into_std_write(&stored, &mut bytes, config()).map_err(encoding)?;
    let version = match &entry.origin {
        None => FORMAT_VERSION,
        Some(o) => {
            let origin: StoredOrigin<'_> = (Cow::Borrowed(&o.branch), o.seq, o.hash);
            bincode::serde::encode_into_std_write(origin, &mut bytes, config())
                .map_err(encoding)?;
            FORMAT_MERGED
        }
    };
    if let Body::Event(e) | Body::Correction(e) = &entry.body {
        if let Some(l) = &e.location {
            if let Some(p) = l.precision {
                bytes.extend_from_slice(&[EXT_PLACE_PRECISION, p.code()]);
            }
            if let Some(a) = &l.admin1 {
                bytes.push(EXT_ADMIN1);
                bincode::serde::encode_into_std_write(a.as_str(), &mut bytes, config())
                    .map_err(encoding)?;
            }
        }
    }
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(Error::invalid(
            "-",
            format!(
                "the event is {} bytes encoded; the limit of one entry is {MAX_ENTRY_BYTES} \
                 (summary, actors, tags, sources and attrs together; see docs/format.md)",
                bytes.len()
            ),
        )
        .at(format!("event {}", entry.body.id())));
    }
    let hash = chain_hash(
        entry.seq,
        prev,
        bytes.get(HEADER_BYTES..).unwrap_or_default(),
    );
    write_header(&mut bytes, version, entry.seq, prev, &hash);
    Ok((bytes, hash))
}

fn write_header(bytes: &mut [u8], version: u8, seq: u64, prev: &Hash, hash: &Hash) {
    if let Some(h) = bytes.get_mut(..HEADER_BYTES) {
        h[0] = version;
        h[1..9].copy_from_slice(&seq.to_be_bytes());
        h[9..41].copy_from_slice(prev);
        h[41..73].copy_from_slice(hash);
    }
}

/// The envelope of a stored entry, checked against its own hash.
pub struct Envelope<'a> {
    /// The predecessor's hash, as stored.
    pub prev: Hash,
    /// This entry's chain hash (verified against the payload).
    pub hash: Hash,
    /// The bincode payload.
    pub payload: &'a [u8],
    /// The format version byte.
    pub version: u8,
}

/// Splits and checks the envelope of the entry stored under `seq`: version,
/// seq and hash. Does not check the link to the predecessor.
pub fn open_envelope(seq: u64, bytes: &[u8]) -> Result<Envelope<'_>> {
    let (Some(header), Some(payload)) = (bytes.get(..HEADER_BYTES), bytes.get(HEADER_BYTES..))
    else {
        return Err(Error::corruption(
            seq,
            format!("entry is {} bytes, shorter than its header", bytes.len()),
        ));
    };
    let mut seq_bytes = [0u8; 8];
    let mut prev = [0u8; 32];
    let mut hash = [0u8; 32];
    seq_bytes.copy_from_slice(&header[1..9]);
    prev.copy_from_slice(&header[9..41]);
    hash.copy_from_slice(&header[41..73]);
    let expected = match header[0] {
        FORMAT_VERSION | FORMAT_MERGED => chain_hash(seq, &prev, payload),
        FORMAT_EXCISED => {
            let digest = payload
                .get(..32)
                .and_then(|d| <Hash>::try_from(d).ok())
                .ok_or_else(|| Error::corruption(seq, "excised entry shorter than its digest"))?;
            chain_hash_of_digest(seq, &prev, &digest)
        }
        FORMAT_V1 => chain_hash_v1(seq, &prev, payload),
        other => {
            return Err(Error::corruption(
                seq,
                format!("unknown format version {other}"),
            ))
        }
    };
    let stored_seq = u64::from_be_bytes(seq_bytes);
    if stored_seq != seq {
        return Err(Error::corruption(
            seq,
            format!("entry stored under seq {seq} says it is seq {stored_seq}"),
        ));
    }
    if expected != hash {
        return Err(Error::corruption(
            seq,
            "checksum mismatch: the entry's bytes changed",
        ));
    }
    Ok(Envelope {
        prev,
        hash,
        payload,
        version: header[0],
    })
}

/// Decodes and checks the entry stored under `seq`.
pub fn decode_entry(seq: u64, bytes: &[u8]) -> Result<(Entry, Envelope<'_>)> {
    let env = open_envelope(seq, bytes)?;
    let undecodable = |e| Error::corruption(seq, format!("undecodable entry: {e}"));
    if env.version == FORMAT_EXCISED {
        let stub = env.payload.get(32..).unwrap_or_default();
        let ((recorded_at, id), used): ((i64, [u8; 16]), usize) =
            bincode::serde::decode_from_slice(stub, config()).map_err(undecodable)?;
        if used != stub.len() {
            return Err(Error::corruption(seq, "trailing bytes after the entry"));
        }
        let body = Body::Excised {
            id: Uuid::from_bytes(id),
        };
        return Ok((Entry::new(seq, recorded_at as Micros, body), env));
    }
    let (stored, mut used): (StoredEntry<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(env.payload, config()).map_err(undecodable)?;
    let mut origin = None;
    if env.version == FORMAT_MERGED {
        let rest = env.payload.get(used..).unwrap_or_default();
        let ((branch, from_seq, hash), n): (StoredOrigin<'_>, usize) =
            bincode::serde::borrow_decode_from_slice(rest, config()).map_err(undecodable)?;
        used += n;
        origin = Some(Origin {
            branch: branch.into_owned(),
            seq: from_seq,
            hash,
        });
    }
    let (mut precision, mut admin1) = (None, None);
    let mut last_tag = 0;
    while let Some(&tag) = env.payload.get(used) {
        if tag <= last_tag {
            return Err(Error::corruption(seq, "trailing bytes after the entry"));
        }
        last_tag = tag;
        let rest = env.payload.get(used + 1..).unwrap_or_default();
        match tag {
            EXT_PLACE_PRECISION => {
                let code = rest.first().copied().unwrap_or(0);
                precision = Some(PlacePrecision::from_code(code).ok_or_else(|| {
                    Error::corruption(seq, format!("unknown place precision code {code}"))
                })?);
                used += 2;
            }
            EXT_ADMIN1 => {
                let (a, n): (String, usize) =
                    bincode::serde::decode_from_slice(rest, config()).map_err(undecodable)?;
                admin1 = Some(a);
                used += 1 + n;
            }
            _ => return Err(Error::corruption(seq, "trailing bytes after the entry")),
        }
    }
    let extended = precision.is_some() || admin1.is_some();
    let with_precision = |mut e: Event| -> Result<Event> {
        if extended {
            let l = e
                .location
                .as_mut()
                .ok_or_else(|| Error::corruption(seq, "a place extension without a location"))?;
            l.precision = precision;
            l.admin1 = admin1.clone();
        }
        Ok(e)
    };
    let body = match stored.body {
        StoredBody::Event(e) => Body::Event(with_precision(event_from(seq, e)?)?),
        StoredBody::Correction(e) => Body::Correction(with_precision(event_from(seq, e)?)?),
        StoredBody::Retraction { .. } if extended => {
            return Err(Error::corruption(seq, "a place extension on a retraction"))
        }
        StoredBody::Retraction { id, reason } => Body::Retraction {
            id: Uuid::from_bytes(id),
            reason: reason.into_owned(),
        },
    };
    let entry = Entry {
        seq,
        recorded_at: stored.recorded_at as Micros,
        body,
        origin,
    };
    Ok((entry, env))
}

/// The stored bytes of entry `seq` with its payload erased: the same
/// header (seq, link, hash), the payload's digest in place of the payload,
/// then the entry's time and event id. `None` if it is already excised.
/// Version 1 entries chain the payload itself, so they cannot be excised.
pub fn excise_entry(seq: u64, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    let (entry, env) = decode_entry(seq, bytes)?;
    match env.version {
        FORMAT_EXCISED => return Ok(None),
        FORMAT_V1 => {
            return Err(Error::Conflict {
                at: format!("seq {seq}"),
                reason: "the entry predates storage format 2 (its chain hash covers the payload \
                         itself), so it cannot be erased without breaking the chain"
                    .into(),
            })
        }
        _ => {}
    }
    let mut out = vec![0u8; HEADER_BYTES];
    out.extend_from_slice(blake3::hash(env.payload).as_bytes());
    let stub = (entry.recorded_at, *entry.body.id().as_bytes());
    bincode::serde::encode_into_std_write(stub, &mut out, config())
        .map_err(|e| Error::internal(format!("encoding excised entry {seq}: {e}")))?;
    write_header(&mut out, FORMAT_EXCISED, seq, &env.prev, &env.hash);
    Ok(Some(out))
}

/// Version byte of a chunk.
pub const CHUNK_VERSION: u8 = 1;
/// Entries are packed into chunks of about this many bytes: the unit a
/// read by seq fetches and checks, small so that a query's scattered
/// reads cost little beyond the entries they want (scale bench at 3M
/// events, country + month p50: 72.6 ms with 64 KiB chunks, 42.2 ms with
/// 16 KiB). An
/// entry larger than this (up to [`MAX_ENTRY_BYTES`]) gets a chunk of its
/// own.
pub const TARGET_CHUNK_BYTES: usize = 16 * 1024;
const CHUNK_HEADER_BYTES: usize = 1 + 4;

/// Packs encoded entries of consecutive seqs, the first being `first_seq`,
/// into chunks keyed by their first seq. Layout of a chunk: version byte,
/// entry count (u32 LE), the end offset of each entry (u32 LE, relative to
/// the end of the offset table), then the entries.
pub fn pack_chunks(first_seq: u64, entries: Vec<Vec<u8>>) -> Vec<(u64, Vec<u8>)> {
    let mut chunks = Vec::new();
    let mut group: Vec<Vec<u8>> = Vec::new();
    let mut group_bytes = 0usize;
    let mut group_first = first_seq;
    for (i, e) in entries.into_iter().enumerate() {
        if !group.is_empty() && group_bytes + e.len() + 4 > TARGET_CHUNK_BYTES {
            chunks.push((group_first, chunk_bytes(&group)));
            group.clear();
            group_bytes = 0;
            group_first = first_seq + i as u64;
        }
        group_bytes += e.len() + 4;
        group.push(e);
    }
    if !group.is_empty() {
        chunks.push((group_first, chunk_bytes(&group)));
    }
    chunks
}

/// A chunk of the given encoded entries (see [`pack_chunks`]).
pub(crate) fn chunk_bytes(entries: &[Vec<u8>]) -> Vec<u8> {
    let data: usize = entries.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(CHUNK_HEADER_BYTES + 4 * entries.len() + data);
    out.push(CHUNK_VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    let mut end = 0u32;
    for e in entries {
        end += e.len() as u32;
        out.extend_from_slice(&end.to_le_bytes());
    }
    for e in entries {
        out.extend_from_slice(e);
    }
    out
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
}

/// The stored bytes of each entry of a chunk whose first seq is `first`.
pub fn unpack_chunk(first: u64, chunk: &[u8]) -> Result<Vec<&[u8]>> {
    let bad = |why: &str| Error::corruption(first, format!("chunk starting at seq {first}: {why}"));
    if chunk.first() != Some(&CHUNK_VERSION) {
        return Err(bad("unknown chunk version"));
    }
    let count = u32_at(chunk, 1).ok_or_else(|| bad("truncated header"))? as usize;
    let data_start = CHUNK_HEADER_BYTES
        .checked_add(count.checked_mul(4).ok_or_else(|| bad("bad entry count"))?)
        .ok_or_else(|| bad("bad entry count"))?;
    let data = chunk
        .get(data_start..)
        .ok_or_else(|| bad("truncated offset table"))?;
    let mut entries = Vec::with_capacity(count);
    let mut start = 0usize;
    for i in 0..count {
        let end =
            u32_at(chunk, CHUNK_HEADER_BYTES + 4 * i).ok_or_else(|| bad("truncated"))? as usize;
        let e = data
            .get(start..end)
            .ok_or_else(|| bad("entry offsets out of bounds"))?;
        entries.push(e);
        start = end;
    }
    if start != data.len() {
        return Err(bad("bytes after the last entry"));
    }
    if count == 0 {
        return Err(bad("empty chunk"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        let e = crate::json::parse_event(
            r#"{"kind":"sabotage","occurred":{"from":"2025-11","to":"2025-11-17"},"countries":["PL"],"actors":[{"name":"Russia","role":"alleged_perpetrator"}],"attrs":{"x":[1,{"y":null}]}}"#,
        )
        .unwrap();
        Entry::new(5, 1_700_000_000_000_000, Body::Event(e))
    }

    fn merged() -> Entry {
        Entry {
            origin: Some(Origin {
                branch: "what-if".into(),
                seq: 9,
                hash: [4; 32],
            }),
            ..sample()
        }
    }

    /// A located event with and without the place extensions.
    fn placed(precision: bool, admin1: bool) -> Entry {
        let mut e = crate::json::parse_event(
            r#"{"kind":"shelling","occurred":"2025-09","location":{"name":"Kharkiv","lat":49.99,"lon":36.23}}"#,
        )
        .unwrap();
        e.id = Uuid::from_u128(42);
        if let Some(l) = &mut e.location {
            l.precision = precision.then_some(PlacePrecision::Admin2);
            l.admin1 = admin1.then(|| "Kharkiv oblast".to_string());
        }
        Entry::new(5, 1_700_000_000_000_000, Body::Event(e))
    }

    #[test]
    fn place_extensions_round_trip_and_leave_other_entries_as_they_were() {
        let prev = [7u8; 32];
        let (plain, _) = encode_entry(&placed(false, false), &prev).unwrap();
        for (p, a) in [(true, false), (false, true), (true, true)] {
            let entry = placed(p, a);
            let (bytes, _) = encode_entry(&entry, &prev).unwrap();
            // The entry as before, then the extensions.
            assert_eq!(
                bytes.get(HEADER_BYTES..plain.len()),
                plain.get(HEADER_BYTES..)
            );
            assert_eq!(decode_entry(5, &bytes).unwrap().0, entry);
        }
        // An unknown tag, a tag out of order or a bad code is damage.
        for tail in [&[9u8][..], &[2, 1, b'x', 1, 3], &[1, 77]] {
            let mut bytes = plain.clone();
            bytes.extend_from_slice(tail);
            let hash = chain_hash(5, &prev, &bytes[HEADER_BYTES..]);
            write_header(&mut bytes, FORMAT_VERSION, 5, &prev, &hash);
            assert!(decode_entry(5, &bytes).is_err(), "{tail:?}");
        }
    }

    #[test]
    fn round_trip_and_chain() {
        let prev = [7u8; 32];
        for entry in [sample(), merged()] {
            let (bytes, hash) = encode_entry(&entry, &prev).unwrap();
            let (back, env) = decode_entry(5, &bytes).unwrap();
            assert_eq!(back, entry);
            assert_eq!(env.prev, prev);
            assert_eq!(env.hash, hash);
            let merged = entry.origin.is_some();
            assert_eq!(bytes[0], if merged { FORMAT_MERGED } else { 2 });
        }
    }

    #[test]
    fn chunks_pack_and_unpack() {
        let entries: Vec<Vec<u8>> = (0..300u32)
            .map(|i| vec![i as u8; 1000 + i as usize])
            .collect();
        let chunks = pack_chunks(10, entries.clone());
        assert!(chunks.len() > 1);
        let mut next = 10;
        let mut all = Vec::new();
        for (first, bytes) in &chunks {
            assert_eq!(*first, next);
            assert!(bytes.len() <= TARGET_CHUNK_BYTES + 8);
            let got = unpack_chunk(*first, bytes).unwrap();
            next += got.len() as u64;
            all.extend(got.into_iter().map(<[u8]>::to_vec));
        }
        assert_eq!(all, entries);
        let (_, bytes) = &chunks[0];
        for cut in 0..bytes.len() {
            // Truncation is always caught (the offsets no longer fit).
            assert!(unpack_chunk(10, &bytes[..cut]).is_err());
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        for entry in [sample(), merged()] {
            flipped_bits_are_detected(&entry);
        }
    }

    fn flipped_bits_are_detected(entry: &Entry) {
        let (bytes, _) = encode_entry(entry, &[0u8; 32]).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(matches!(
                    decode_entry(5, &b),
                    Err(Error::Corruption { seq: 5, .. })
                ));
            }
        }
        assert!(decode_entry(6, &bytes).is_err());
        assert!(decode_entry(5, &bytes[..10]).is_err());
    }

    #[test]
    fn an_excised_entry_keeps_its_hash_and_loses_its_payload() {
        let prev = [9u8; 32];
        for entry in [sample(), merged()] {
            let (bytes, hash) = encode_entry(&entry, &prev).unwrap();
            let stub = excise_entry(5, &bytes).unwrap().unwrap();
            let (back, env) = decode_entry(5, &stub).unwrap();
            assert_eq!((env.prev, env.hash), (prev, hash));
            assert_eq!(
                back.body,
                Body::Excised {
                    id: entry.body.id()
                }
            );
            assert_eq!(back.recorded_at, entry.recorded_at);
            assert!(!stub.windows(6).any(|w| w == b"Russia"));
            assert!(excise_entry(5, &stub).unwrap().is_none());
            // The digest is covered like any payload (the time and id after
            // it are not: see docs/format.md).
            for i in 0..HEADER_BYTES + 32 {
                let mut b = stub.clone();
                b[i] ^= 1;
                assert!(decode_entry(5, &b).is_err(), "byte {i}");
            }
        }
    }

    #[test]
    fn version_1_entries_still_verify_and_v2_chains_a_digest() {
        let prev = [3u8; 32];
        let original = sample();
        let (mut bytes, hash) = encode_entry(&original, &prev).unwrap();
        let payload = bytes[HEADER_BYTES..].to_vec();
        assert_eq!(
            hash,
            chain_hash_of_digest(5, &prev, blake3::hash(&payload).as_bytes())
        );
        // The same payload as a version 1 entry.
        let v1 = chain_hash_v1(5, &prev, &payload);
        bytes[0] = FORMAT_V1;
        bytes[41..73].copy_from_slice(&v1);
        let (entry, env) = decode_entry(5, &bytes).unwrap();
        assert_eq!((entry, env.hash), (original, v1));
        // A version 1 entry with a version 2 hash is damage.
        bytes[41..73].copy_from_slice(&hash);
        assert!(decode_entry(5, &bytes).is_err());
    }
}
