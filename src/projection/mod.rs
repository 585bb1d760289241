//! Projections: views folded from the log in seq order.
//!
//! The built-in views (by country, by actor, by date) live in their own
//! files; [`Projection`] is the trait for user-defined ones. Every view is a
//! fold over [`Change`]s, and each change removes the event's previous
//! version (if any) and adds its new one (if any), so that corrections and
//! retractions need no special cases and a replay from scratch reaches
//! exactly the state kept current on append.

mod by_actor;
mod by_country;
mod by_date;
mod fold;
mod user;

use serde::{Deserialize, Serialize};

use crate::intern::{Keys, Names};
use crate::time::Granularity;

pub use by_actor::ActorRow;
pub(crate) use by_actor::{ByActor, Display};
pub(crate) use by_country::ByCountry;
pub use by_country::CountryRow;
pub use by_date::DateRow;
pub(crate) use by_date::{bucket, ByDate};
pub use fold::{Change, Projection};
pub use user::Registered;
pub(crate) use user::{parse_checkpoint, projection_key, Changes, Fed, Feed};

/// The built-in views, kept together because every change feeds all three.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Views {
    pub(crate) by_country: by_country::ByCountry,
    pub(crate) by_actor: by_actor::ByActor,
    pub(crate) by_date: by_date::ByDate,
    pub(crate) display: Display,
}

/// Removes `before`'s contribution to each view and adds `after`'s.
pub(crate) fn apply_to(
    by_country: &mut by_country::ByCountry,
    by_actor: &mut by_actor::ByActor,
    by_date: &mut by_date::ByDate,
    display: &mut Display,
    before: Option<&Keys>,
    after: Option<&Keys>,
) {
    if let Some(k) = before {
        by_country.bump(k, -1);
        by_actor.bump(k, -1);
        by_date.bump(k, -1);
    }
    if let Some(k) = after {
        display.remember(k);
        by_country.bump(k, 1);
        by_actor.bump(k, 1);
        by_date.bump(k, 1);
    }
}

impl Views {
    /// Removes `before`'s contribution and adds `after`'s.
    pub(crate) fn apply(&mut self, before: Option<&Keys>, after: Option<&Keys>) {
        apply_to(
            &mut self.by_country,
            &mut self.by_actor,
            &mut self.by_date,
            &mut self.display,
            before,
            after,
        );
    }

    pub(crate) fn country_rows(&self, names: &Names) -> Vec<CountryRow> {
        self.by_country.rows(names, &self.display)
    }

    pub(crate) fn actor_rows(&self, names: &Names) -> Vec<ActorRow> {
        self.by_actor.rows(names, &self.display)
    }

    pub(crate) fn date_rows(&self, names: &Names, g: Granularity) -> Vec<DateRow> {
        self.by_date.rows(names, g)
    }
}
