//! Log entries and heads: what the log holds, apart from how it is
//! encoded (`codec`) and stored (`log`, `store`).

use uuid::Uuid;

use crate::model::Event;
use crate::time::Micros;

/// A BLAKE3 chain hash.
pub type Hash = [u8; 32];

/// What a log entry does.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Body {
    /// A new event.
    Event(Event),
    /// The complete new version of an existing event (same id).
    Correction(Event),
    /// Withdraws an event.
    Retraction {
        /// The retracted event.
        id: Uuid,
        /// Why.
        reason: String,
    },
    /// An entry whose payload was erased (`annals excise`): only the id is
    /// left. The event reads as retracted from its first entry on.
    Excised {
        /// The excised event.
        id: Uuid,
    },
}

impl Body {
    /// The id of the event the entry concerns.
    pub fn id(&self) -> Uuid {
        match self {
            Body::Event(e) | Body::Correction(e) => e.id,
            Body::Retraction { id, .. } | Body::Excised { id } => *id,
        }
    }

    /// `created`, `corrected`, `retracted` or `excised`.
    pub fn action(&self) -> &'static str {
        match self {
            Body::Event(_) => "created",
            Body::Correction(_) => "corrected",
            Body::Retraction { .. } => "retracted",
            Body::Excised { .. } => "excised",
        }
    }

    /// The event version this entry carries (none for a retraction).
    pub fn event(&self) -> Option<&Event> {
        match self {
            Body::Event(e) | Body::Correction(e) => Some(e),
            Body::Retraction { .. } | Body::Excised { .. } => None,
        }
    }
}

/// Where a merged entry came from: the branch entry whose change it
/// applies (see [`crate::Annals::merge`]). Stored in the entry, so that it
/// is covered by the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The branch the change was made on.
    pub branch: String,
    /// The seq of the branch entry.
    pub seq: u64,
    /// That entry's chain hash on the branch.
    pub hash: Hash,
}

impl Origin {
    /// `{branch, seq, hash}` (hash in hex).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"branch": self.branch, "seq": self.seq, "hash": hex(&self.hash)})
    }
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Position in the log, gapless from 1.
    pub seq: u64,
    /// Transaction time (UTC microseconds): one per batch, shared by its
    /// entries, strictly increasing from batch to batch.
    pub recorded_at: Micros,
    /// What the entry does.
    pub body: Body,
    /// For an entry written by a merge, the branch entry it applies.
    pub origin: Option<Origin>,
}

impl Entry {
    /// An entry of its own (not merged from a branch).
    pub fn new(seq: u64, recorded_at: Micros, body: Body) -> Entry {
        Entry {
            seq,
            recorded_at,
            body,
            origin: None,
        }
    }

    /// `{seq, recorded_at, action, id, event | reason, merged_from?}`, the
    /// event in the interchange format: what a subscriber is handed.
    pub fn to_json(&self) -> serde_json::Value {
        let reason = match &self.body {
            Body::Retraction { reason, .. } => Some(reason.as_str()),
            _ => None,
        };
        version_json(
            self.seq,
            self.recorded_at,
            self.body.action(),
            Some(self.body.id()),
            self.body.event(),
            reason,
            self.origin.as_ref(),
        )
    }
}

/// The JSON of one version of an event: `{seq, recorded_at, action, id
/// (when given), event | reason, merged_from (when merged)}`; shared by
/// entries and history versions.
pub(crate) fn version_json(
    seq: u64,
    recorded_at: Micros,
    action: &str,
    id: Option<Uuid>,
    event: Option<&Event>,
    reason: Option<&str>,
    origin: Option<&Origin>,
) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("seq".into(), seq.into());
    m.insert(
        "recorded_at".into(),
        crate::time::format_micros(recorded_at).into(),
    );
    m.insert("action".into(), action.into());
    if let Some(id) = id {
        m.insert("id".into(), id.to_string().into());
    }
    if let Some(e) = event {
        m.insert("event".into(), crate::json::event_to_value(e, None));
    }
    if let Some(r) = reason {
        m.insert("reason".into(), r.into());
    }
    if let Some(o) = origin {
        m.insert("merged_from".into(), o.to_json());
    }
    serde_json::Value::Object(m)
}

/// The last entry of a log: what a user anchors elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Head {
    /// Seq of the last entry (0 when empty).
    pub seq: u64,
    /// Its chain hash (all zeros when empty).
    pub hash: Hash,
    /// Its transaction time (0 when empty).
    pub recorded_at: Micros,
}

impl Head {
    /// The chain hash as lowercase hex.
    pub fn hash_hex(&self) -> String {
        hex(&self.hash)
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Parses a chain hash from 64 hex digits (as [`hex`] and `annals head`
/// print it).
pub fn parse_hash(text: &str) -> crate::error::Result<Hash> {
    let bad =
        || crate::error::Error::invalid("anchor_hash", format!("`{text}` is not 64 hex digits"));
    let bytes = text.trim().as_bytes();
    if bytes.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks(2)) {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        *slot = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}
