//! Projections: views folded from the log in seq order.
//!
//! The built-in views (by country, by actor, by date) are counts under
//! keys (`cells`), summed over the layers that hold them (runs on disk,
//! changes in memory); each view's file reads its rows from those cells.
//! [`Projection`] is the trait for user-defined ones. Every view is a
//! fold over [`Change`]s, and each change removes the event's previous
//! version (if any) and adds its new one (if any), so that corrections and
//! retractions need no special cases and a replay from scratch reaches
//! exactly the state kept current on append.

mod by_actor;
mod by_country;
mod by_date;
mod by_place;
mod cells;
mod fold;
mod user;

use crate::intern::{Keys, Names};
use crate::runfile::Cell;

pub use by_actor::ActorRow;
pub(crate) use by_actor::{actor_row, actor_rows};
pub(crate) use by_country::{country_actors, country_row, country_rows};
pub use by_country::{CountryActor, CountryRow, ACTORS_IN_ROW};
pub(crate) use by_date::date_rows;
pub use by_date::DateRow;
pub(crate) use by_place::place_rows;
pub use by_place::{place_granularity, Fatalities, PlaceLevel, PlaceRow};
pub(crate) use cells::{count_rows, Cells, Display, Layered, Part};
pub(crate) use fold::bucket;
pub use fold::{Change, Projection};
pub use user::Registered;
pub(crate) use user::{parse_checkpoint, projection_key, Changes, Fed, Feed};

/// A fold of changes in memory: the cells they changed, and the display
/// names of the actors they named (on top of those known before).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Views {
    pub(crate) cells: Cells,
    pub(crate) display: Display,
}

impl Views {
    /// Changes to the cells of `parts`, folded on top of views whose
    /// actors are shown as in `display`.
    pub(crate) fn over(display: Display, parts: &[Part]) -> Views {
        Views {
            cells: Cells::only(parts),
            display,
        }
    }

    /// Removes `before`'s contribution and adds `after`'s.
    pub(crate) fn apply(&mut self, before: Option<&Keys>, after: Option<&Keys>) {
        self.cells.apply(&mut self.display, before, after);
    }

    /// The changed cells, as sorted keys.
    pub(crate) fn encode(&self, names: &Names) -> Vec<Cell> {
        self.cells.encode(names, &self.display, &Part::ALL)
    }
}
