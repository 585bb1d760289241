//! Conversion tables for importers: FIPS 10-4, CAMEO, ISO alpha-3 and
//! numeric codes, Gleditsch-Ward numbers and country names to ISO 3166-1
//! alpha-2; CAMEO root codes to kinds.
//!
//! The tables are data (`codes/*.tsv`, made by `codes/generate.py` from the
//! code tables listed in `docs/import.md`, or transcribed as it says),
//! compiled in and parsed once.

use std::collections::HashMap;
use std::sync::OnceLock;

const COUNTRIES: &str = include_str!("codes/countries.tsv");
const CAMEO_COUNTRIES: &str = include_str!("codes/cameo_countries.tsv");
const COUNTRY_NAMES: &str = include_str!("codes/country_names.tsv");
const CAMEO_ROOTS: &str = include_str!("codes/cameo_roots.tsv");
const GLEDITSCH_WARD: &str = include_str!("codes/gleditsch_ward.tsv");

struct Tables {
    fips: HashMap<&'static str, &'static str>,
    cameo: HashMap<&'static str, &'static str>,
    numeric: HashMap<u32, &'static str>,
    alpha3: HashMap<&'static str, &'static str>,
    gw: HashMap<u32, &'static str>,
    names: HashMap<&'static str, &'static str>,
    roots: HashMap<&'static str, &'static str>,
}

/// The rows of a TSV table after its header, as fields.
fn rows(table: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    table
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').collect())
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut t = Tables {
            fips: HashMap::new(),
            cameo: HashMap::new(),
            numeric: HashMap::new(),
            alpha3: HashMap::new(),
            gw: HashMap::new(),
            names: HashMap::new(),
            roots: HashMap::new(),
        };
        for r in rows(COUNTRIES) {
            if let [iso2, iso3, numeric, fips, ..] = r.as_slice() {
                t.alpha3.insert(*iso3, *iso2);
                if let Ok(n) = numeric.parse() {
                    t.numeric.insert(n, *iso2);
                }
                for f in fips.split(' ').filter(|f| !f.is_empty()) {
                    t.fips.insert(f, *iso2);
                }
            }
        }
        for r in rows(CAMEO_COUNTRIES) {
            if let [code, iso2, ..] = r.as_slice() {
                t.cameo.insert(*code, *iso2);
            }
        }
        for r in rows(COUNTRY_NAMES) {
            if let [name, iso2] = r.as_slice() {
                t.names.insert(*name, *iso2);
            }
        }
        for r in rows(GLEDITSCH_WARD) {
            if let [gw, iso2, ..] = r.as_slice() {
                if let Ok(n) = gw.parse() {
                    t.gw.insert(n, *iso2);
                }
            }
        }
        for r in rows(CAMEO_ROOTS) {
            if let [root, kind, ..] = r.as_slice() {
                t.roots.insert(*root, *kind);
            }
        }
        t
    })
}

/// ISO alpha-2 of a FIPS 10-4 country code (GDELT's geo columns).
pub(crate) fn iso_from_fips(code: &str) -> Option<&'static str> {
    tables().fips.get(code).copied()
}

/// ISO alpha-2 of a CAMEO actor country code (`UKR`, `ROM`); `None` for
/// regions and groups (`EUR`, `AFR`, `WST`).
pub(crate) fn iso_from_cameo(code: &str) -> Option<&'static str> {
    tables().cameo.get(code).copied()
}

/// ISO alpha-2 of an ISO 3166-1 numeric code. ACLED writes Kosovo, which
/// has no ISO number, as 0.
pub(crate) fn iso_from_numeric(n: u32) -> Option<&'static str> {
    if n == 0 {
        return Some("XK");
    }
    tables().numeric.get(&n).copied()
}

/// ISO alpha-2 of an ISO 3166-1 alpha-3 code (`UKR`), any case.
pub(crate) fn iso_from_alpha3(code: &str) -> Option<&'static str> {
    tables()
        .alpha3
        .get(code.trim().to_ascii_uppercase().as_str())
        .copied()
}

/// ISO alpha-2 of a Gleditsch-Ward state number (UCDP's `country_id`,
/// `gwnoa`): the state's present-day successor (365, the Soviet Union
/// and Russia, is `RU`; 345, Yugoslavia, is `RS`).
pub(crate) fn iso_from_gleditsch_ward(n: u32) -> Option<&'static str> {
    tables().gw.get(&n).copied()
}

/// ISO alpha-2 of a country name, matched case-insensitively.
pub(crate) fn iso_from_name(name: &str) -> Option<&'static str> {
    tables()
        .names
        .get(name.trim().to_lowercase().as_str())
        .copied()
}

/// The annals kind of a two-digit CAMEO root code (`14` → `protest`).
pub(crate) fn kind_of_cameo_root(root: &str) -> Option<&'static str> {
    tables().roots.get(root).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::country::is_country_code;
    use crate::model::check_snake;

    #[test]
    fn every_table_maps_to_accepted_codes_and_kinds() {
        let t = tables();
        assert!(t.fips.len() > 240 && t.cameo.len() > 230 && t.names.len() > 300);
        assert!(t.alpha3.len() > 240 && t.gw.len() > 195);
        for iso in t
            .fips
            .values()
            .chain(t.cameo.values())
            .chain(t.numeric.values())
            .chain(t.alpha3.values())
            .chain(t.gw.values())
            .chain(t.names.values())
        {
            assert!(is_country_code(iso), "{iso}");
        }
        assert_eq!(t.roots.len(), 20);
        for kind in t.roots.values() {
            assert!(check_snake("kind", kind).is_ok(), "{kind}");
        }
    }

    #[test]
    fn known_codes() {
        // FIPS differs from ISO exactly where it matters to GDELT users.
        for (fips, iso) in [
            ("UP", "UA"),
            ("PL", "PL"),
            ("RS", "RU"),
            ("RI", "RS"),
            ("GM", "DE"),
            ("UK", "GB"),
            ("AS", "AU"),
            ("AU", "AT"),
            ("KV", "XK"),
            ("WE", "PS"),
            ("NL", "NL"),
        ] {
            assert_eq!(iso_from_fips(fips), Some(iso), "{fips}");
        }
        assert_eq!(iso_from_fips("OS"), None);
        assert_eq!(iso_from_cameo("UKR"), Some("UA"));
        assert_eq!(iso_from_cameo("ROM"), Some("RO"));
        assert_eq!(iso_from_cameo("EUR"), None);
        assert_eq!(iso_from_numeric(804), Some("UA"));
        assert_eq!(iso_from_numeric(616), Some("PL"));
        assert_eq!(iso_from_numeric(0), Some("XK"));
        assert_eq!(iso_from_name("Democratic Republic of Congo"), Some("CD"));
        assert_eq!(iso_from_name(" ukraine "), Some("UA"));
        for (gw, iso) in [
            (290, "PL"),
            (360, "RO"),
            (365, "RU"),
            (369, "UA"),
            (347, "XK"),
        ] {
            assert_eq!(iso_from_gleditsch_ward(gw), Some(iso), "{gw}");
        }
        // Where GW and COW differ from ISO order: 260 Germany, 816 Vietnam.
        assert_eq!(iso_from_gleditsch_ward(260), Some("DE"));
        assert_eq!(iso_from_gleditsch_ward(816), Some("VN"));
        assert_eq!(iso_from_gleditsch_ward(999), None);
        assert_eq!(iso_from_alpha3("UKR"), Some("UA"));
        assert_eq!(iso_from_alpha3("pol"), Some("PL"));
        assert_eq!(iso_from_alpha3("XKX"), Some("XK"));
        assert_eq!(kind_of_cameo_root("14"), Some("protest"));
        assert_eq!(kind_of_cameo_root("19"), Some("fight"));
        assert_eq!(kind_of_cameo_root("1"), None);
    }
}
