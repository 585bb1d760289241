//! The by-date view: per bucket of occurrence time, counts by kind and by
//! country, at day, month and year granularity.
//!
//! An event coarser than the granularity is not smeared across finer
//! buckets: it goes to the bucket of its own precision (a month-precision
//! event appears under `2025-09`, marked `month`, in the by-day view).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fold::{bump, named};
use crate::intern::{Keys, Name, Names};
use crate::time::{Granularity, Micros, Occurred, Precision, TimePoint};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct DateAgg {
    count: u64,
    by_kind: BTreeMap<Name, u64>,
    by_country: BTreeMap<Name, u64>,
}

/// A bucket: its first microsecond and its precision.
type Bucket = (Micros, Precision);

/// State of the by-date view, one map per granularity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ByDate {
    grains: [BTreeMap<Bucket, DateAgg>; 3],
}

/// One row of the by-date view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DateRow {
    /// The bucket: `2025`, `2025-09` or `2025-09-10`.
    pub bucket: String,
    /// The bucket's precision: the granularity asked for, or coarser for
    /// events known only coarsely (`span` for intervals across years,
    /// filed under the year they start in).
    #[serde(serialize_with = "precision_name")]
    pub precision: Precision,
    /// Current events in the bucket.
    pub count: u64,
    /// Those events counted by kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Those events counted by country (an event counts once per country).
    pub by_country: BTreeMap<String, u64>,
}

fn precision_name<S: serde::Serializer>(p: &Precision, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// The bucket of an occurrence at a granularity.
pub(crate) fn bucket(occurred: &Occurred, g: Granularity) -> Bucket {
    let precision = g.precision().max(occurred.precision());
    (occurred.from.truncate(precision).start, precision)
}

fn slot(g: Granularity) -> usize {
    match g {
        Granularity::Day => 0,
        Granularity::Month => 1,
        Granularity::Year => 2,
    }
}

impl ByDate {
    pub(crate) fn bump(&mut self, k: &Keys, delta: i64) {
        for g in Granularity::ALL {
            let Some(map) = self.grains.get_mut(slot(g)) else {
                continue;
            };
            let key = bucket(&k.occurred, g);
            let agg = map.entry(key).or_default();
            agg.count = agg.count.saturating_add_signed(delta);
            bump(&mut agg.by_kind, k.kind, delta);
            for c in &k.countries {
                bump(&mut agg.by_country, *c, delta);
            }
            if agg.count == 0 {
                map.remove(&key);
            }
        }
    }

    pub(crate) fn rows(&self, names: &Names, g: Granularity) -> Vec<DateRow> {
        let Some(map) = self.grains.get(slot(g)) else {
            return Vec::new();
        };
        map.iter()
            .map(|(&(start, precision), agg)| {
                let label_precision = precision.min(Precision::Year);
                DateRow {
                    bucket: TimePoint::at(start, label_precision).to_string(),
                    precision,
                    count: agg.count,
                    by_kind: named(names, &agg.by_kind),
                    by_country: named(names, &agg.by_country),
                }
            })
            .collect()
    }
}
