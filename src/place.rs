//! Where: areas a query asks about (a box, a disc, polygons), how a place
//! at a precision relates to an area, and the key under which the index
//! keeps a place (a point on a Z-order curve).
//!
//! A place is a point with a precision, and the precision stands for a
//! disc around the point (see [`PlacePrecision::radius_km`]), as a fuzzy
//! date stands for an interval. An area then holds a place *possibly*
//! (the disc meets it) or *certainly* (the disc lies inside); by default a
//! query asks that the point lie inside and that the place be no coarser
//! than the area, so that a country's centroid never answers a 10 km
//! question unless asked (docs/places.md).

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{check_coord, PlacePrecision};

/// Mean Earth radius (IUGG), km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;
/// Km per degree of latitude (and of longitude at the equator).
const KM_PER_DEGREE: f64 = EARTH_RADIUS_KM * std::f64::consts::PI / 180.0;
/// The largest radius: about half the Earth's circumference (20,015 km),
/// beyond which a disc holds the whole globe.
pub const MAX_RADIUS_KM: f64 = 20_015.0;
/// Most vertices an area's polygons may have together.
pub const MAX_AREA_VERTICES: usize = 100_000;

/// An area a query asks about.
#[derive(Debug, Clone, PartialEq)]
pub enum Area {
    /// A box in longitude and latitude. `west > east` crosses the
    /// antimeridian (`170,-20,-170,20` spans 20 degrees around it).
    BBox {
        /// Western edge, degrees in [-180, 180].
        west: f64,
        /// Southern edge, degrees in [-90, 90].
        south: f64,
        /// Eastern edge, degrees in [-180, 180].
        east: f64,
        /// Northern edge, degrees in [-90, 90], at least `south`.
        north: f64,
    },
    /// Within a great-circle distance of a point.
    Near {
        /// Latitude of the centre.
        lat: f64,
        /// Longitude of the centre.
        lon: f64,
        /// Radius, km (positive).
        radius_km: f64,
    },
    /// Inside any of the polygons (GeoJSON rings of `[lon, lat]`, the
    /// first ring of each the outer edge, the others holes; edges straight
    /// in longitude and latitude, as RFC 7946 draws them).
    Polygons(Vec<Vec<Vec<[f64; 2]>>>),
}

/// How a place must relate to the area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlaceMatch {
    /// The point lies inside and the place is no coarser than the area
    /// (its precision's radius at most the area's scale): the default.
    #[default]
    Point,
    /// The place's disc meets the area: it may have happened inside.
    Possible,
    /// The place's disc lies inside the area: it certainly happened inside.
    Certain,
}

impl PlaceMatch {
    /// `point`, `possible` or `certain`.
    pub fn parse(s: &str) -> Result<PlaceMatch> {
        match s {
            "point" => Ok(PlaceMatch::Point),
            "possible" => Ok(PlaceMatch::Possible),
            "certain" => Ok(PlaceMatch::Certain),
            other => Err(Error::invalid(
                "place",
                format!("`{other}` is not one of point, possible, certain"),
            )),
        }
    }

    /// The name [`PlaceMatch::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            PlaceMatch::Point => "point",
            PlaceMatch::Possible => "possible",
            PlaceMatch::Certain => "certain",
        }
    }
}

/// Great-circle distance in km (haversine).
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// `lon - from` folded into (-180, 180].
fn lon_delta(lon: f64, from: f64) -> f64 {
    let d = (lon - from).rem_euclid(360.0);
    if d > 180.0 {
        d - 360.0
    } else {
        d
    }
}

fn numbers(field: &str, text: &str, n: usize) -> Result<Vec<f64>> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() != n {
        return Err(Error::invalid(
            field,
            format!("expected {n} comma-separated numbers, found `{text}`"),
        ));
    }
    parts
        .iter()
        .map(|p| {
            p.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| Error::invalid(field, format!("`{p}` is not a number")))
        })
        .collect()
}

impl Area {
    /// A box from `W,S,E,N` (the CLI's `--bbox`, HTTP's `bbox=`).
    pub fn parse_bbox(text: &str) -> Result<Area> {
        let v = numbers("bbox", text, 4)?;
        let a = Area::BBox {
            west: v[0],
            south: v[1],
            east: v[2],
            north: v[3],
        };
        a.validate()?;
        Ok(a)
    }

    /// A disc from `LAT,LON` and a radius in km.
    pub fn parse_near(text: &str, radius_km: f64) -> Result<Area> {
        let v = numbers("near", text, 2)?;
        let a = Area::Near {
            lat: v[0],
            lon: v[1],
            radius_km,
        };
        a.validate()?;
        Ok(a)
    }

    /// Polygons from GeoJSON text: a Polygon or MultiPolygon geometry, or
    /// a Feature or FeatureCollection of them.
    pub fn parse_geojson(text: &str) -> Result<Area> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid("area", format!("not JSON: {e}")))?;
        let mut polys = Vec::new();
        collect_polygons(&v, &mut polys)?;
        if polys.is_empty() {
            return Err(Error::invalid(
                "area",
                "no Polygon or MultiPolygon in the GeoJSON",
            ));
        }
        let a = Area::Polygons(polys);
        a.validate()?;
        Ok(a)
    }

    /// Checks coordinates, the box's order and the radius.
    pub fn validate(&self) -> Result<()> {
        match self {
            Area::BBox {
                west,
                south,
                east,
                north,
            } => {
                check_coord("bbox.west", Some(*west), 180.0)?;
                check_coord("bbox.south", Some(*south), 90.0)?;
                check_coord("bbox.east", Some(*east), 180.0)?;
                check_coord("bbox.north", Some(*north), 90.0)?;
                if south > north {
                    return Err(Error::invalid(
                        "bbox",
                        format!("south ({south}) is north of north ({north})"),
                    ));
                }
            }
            Area::Near {
                lat,
                lon,
                radius_km,
            } => {
                check_coord("near.lat", Some(*lat), 90.0)?;
                check_coord("near.lon", Some(*lon), 180.0)?;
                if !(*radius_km > 0.0 && *radius_km <= MAX_RADIUS_KM) {
                    return Err(Error::invalid(
                        "radius_km",
                        format!("{radius_km} is not a radius in (0, {MAX_RADIUS_KM:.0}] km"),
                    ));
                }
            }
            Area::Polygons(polys) => {
                let mut vertices = 0;
                for (i, p) in polys.iter().enumerate() {
                    if p.is_empty() {
                        return Err(Error::invalid(
                            format!("area.polygon[{i}]"),
                            "a polygon needs its outer ring",
                        ));
                    }
                    for (j, ring) in p.iter().enumerate() {
                        if ring.len() < 4 {
                            return Err(Error::invalid(
                                format!("area.polygon[{i}].ring[{j}]"),
                                "a ring needs at least 4 positions (the first repeated last)",
                            ));
                        }
                        vertices += ring.len();
                        for [lon, lat] in ring {
                            check_coord("area", Some(*lon), 180.0)?;
                            check_coord("area", Some(*lat), 90.0)?;
                        }
                    }
                }
                if vertices > MAX_AREA_VERTICES {
                    return Err(Error::invalid(
                        "area",
                        format!("{vertices} vertices; at most {MAX_AREA_VERTICES}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the point lies inside (edges included).
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        match self {
            Area::BBox {
                west,
                south,
                east,
                north,
            } => (*south..=*north).contains(&lat) && lon_in(lon, *west, *east),
            Area::Near {
                lat: c_lat,
                lon: c_lon,
                radius_km,
            } => distance_km(lat, lon, *c_lat, *c_lon) <= *radius_km,
            Area::Polygons(polys) => polys.iter().any(|p| {
                p.iter()
                    .filter(|ring| ring_contains(ring, lat, lon))
                    .count()
                    % 2
                    == 1
            }),
        }
    }

    /// Km from the point to the area's edge (0 on it; an approximation
    /// within a fraction of a percent at the scales places have).
    fn edge_distance_km(&self, lat: f64, lon: f64) -> f64 {
        match self {
            Area::BBox {
                west,
                south,
                east,
                north,
            } => {
                if self.contains(lat, lon) {
                    let mut d = ((lat - south).min(north - lat)) * KM_PER_DEGREE;
                    if !(*west <= -180.0 && *east >= 180.0) {
                        for m in [west, east] {
                            let dl = lon_delta(lon, *m).abs().to_radians().min(FRAC_PI_2);
                            let cross = (dl.sin() * lat.to_radians().cos()).asin();
                            d = d.min(cross * EARTH_RADIUS_KM);
                        }
                    }
                    d
                } else {
                    let c_lat = lat.clamp(*south, *north);
                    let c_lon = if lon_in(lon, *west, *east) {
                        lon
                    } else if lon_delta(lon, *west).abs() <= lon_delta(lon, *east).abs() {
                        *west
                    } else {
                        *east
                    };
                    distance_km(lat, lon, c_lat, c_lon)
                }
            }
            Area::Near {
                lat: c_lat,
                lon: c_lon,
                radius_km,
            } => (distance_km(lat, lon, *c_lat, *c_lon) - radius_km).abs(),
            Area::Polygons(polys) => {
                // Edges measured in a plane tangent at the point: exact
                // enough within the radii of places (at most 1,000 km).
                let k = lat.to_radians().cos() * KM_PER_DEGREE;
                let mut best = f64::INFINITY;
                for ring in polys.iter().flatten() {
                    for w in ring.windows(2) {
                        let a = (lon_delta(w[0][0], lon) * k, (w[0][1] - lat) * KM_PER_DEGREE);
                        let b = (lon_delta(w[1][0], lon) * k, (w[1][1] - lat) * KM_PER_DEGREE);
                        best = best.min(segment_distance(a, b));
                    }
                }
                best
            }
        }
    }

    /// The area's scale, km: a disc's radius, half the shorter side of a
    /// box (or of the box around polygons). A place coarser than this is
    /// left out of a default ([`PlaceMatch::Point`]) query.
    pub fn scale_km(&self) -> f64 {
        match self {
            Area::Near { radius_km, .. } => *radius_km,
            _ => {
                let boxes = self.boxes();
                let (mut h, mut w) = (0.0f64, 0.0f64);
                for (west, south, east, north) in &boxes {
                    h = h.max((north - south) * KM_PER_DEGREE);
                    let mid = ((north + south) / 2.0).to_radians().cos();
                    w += (east - west) * KM_PER_DEGREE * mid;
                }
                h.min(w) / 2.0
            }
        }
    }

    /// Whether a place (its point, its precision) answers the query.
    pub fn admits(&self, mode: PlaceMatch, lat: f64, lon: f64, p: PlacePrecision) -> bool {
        self.admits_at(mode, self.scale_km(), lat, lon, p)
    }

    /// [`Area::admits`] with the area's scale worked out once.
    pub(crate) fn admits_at(
        &self,
        mode: PlaceMatch,
        scale: f64,
        lat: f64,
        lon: f64,
        p: PlacePrecision,
    ) -> bool {
        let r = p.radius_km();
        match mode {
            PlaceMatch::Point => r <= scale && self.contains(lat, lon),
            PlaceMatch::Possible => {
                self.contains(lat, lon) || (r > 0.0 && self.edge_distance_km(lat, lon) <= r)
            }
            PlaceMatch::Certain => {
                self.contains(lat, lon) && (r == 0.0 || self.edge_distance_km(lat, lon) >= r)
            }
        }
    }

    /// Boxes `(west, south, east, north)` that together hold the area,
    /// none crossing the antimeridian.
    pub(crate) fn boxes(&self) -> Vec<(f64, f64, f64, f64)> {
        match self {
            Area::BBox {
                west,
                south,
                east,
                north,
            } => split((*west, *south, *east, *north)),
            Area::Near {
                lat,
                lon,
                radius_km,
            } => grown((*lon, *lat, *lon, *lat), *radius_km),
            Area::Polygons(polys) => {
                let mut b = (180.0f64, 90.0f64, -180.0f64, -90.0f64);
                for [lon, lat] in polys.iter().flatten().flatten() {
                    b = (b.0.min(*lon), b.1.min(*lat), b.2.max(*lon), b.3.max(*lat));
                }
                vec![b]
            }
        }
    }

    /// The boxes holding every point a place at radius `r` km may stand
    /// at and still answer `mode`.
    pub(crate) fn search_boxes(&self, mode: PlaceMatch, r: f64) -> Vec<(f64, f64, f64, f64)> {
        if mode != PlaceMatch::Possible || r == 0.0 {
            return self.boxes();
        }
        self.boxes().into_iter().flat_map(|b| grown(b, r)).collect()
    }
}

const FRAC_PI_2: f64 = std::f64::consts::FRAC_PI_2;

fn lon_in(lon: f64, west: f64, east: f64) -> bool {
    if west <= east {
        (west..=east).contains(&lon)
    } else {
        lon >= west || lon <= east
    }
}

/// A box crossing the antimeridian as two that do not.
fn split((w, s, e, n): (f64, f64, f64, f64)) -> Vec<(f64, f64, f64, f64)> {
    if w <= e {
        vec![(w, s, e, n)]
    } else {
        vec![(w, s, 180.0, n), (-180.0, s, e, n)]
    }
}

/// A box (not crossing the antimeridian) grown by `km` on every side,
/// split where it then crosses.
fn grown((w, s, e, n): (f64, f64, f64, f64), km: f64) -> Vec<(f64, f64, f64, f64)> {
    let dlat = km / KM_PER_DEGREE;
    let (s, n) = (s - dlat, n + dlat);
    if s <= -90.0 || n >= 90.0 {
        // A pole is inside: every longitude.
        return vec![(-180.0, s.max(-90.0), 180.0, n.min(90.0))];
    }
    let widest = s.abs().max(n.abs()).to_radians().cos();
    let dlon = km / (KM_PER_DEGREE * widest);
    if e - w + 2.0 * dlon >= 360.0 {
        return vec![(-180.0, s, 180.0, n)];
    }
    let (w, e) = (w - dlon, e + dlon);
    let wrap = |x: f64| {
        if x < -180.0 {
            x + 360.0
        } else if x > 180.0 {
            x - 360.0
        } else {
            x
        }
    };
    split((wrap(w), s, wrap(e), n))
}

/// Even-odd ray casting in longitude and latitude.
fn ring_contains(ring: &[[f64; 2]], lat: f64, lon: f64) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let ([x1, y1], [x2, y2]) = (w[0], w[1]);
        if (y1 > lat) != (y2 > lat) && lon < x1 + (lat - y1) / (y2 - y1) * (x2 - x1) {
            inside = !inside;
        }
    }
    inside
}

/// Distance from the origin to the segment `a`-`b`, in the plane.
fn segment_distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (-(a.0 * dx + a.1 * dy) / len2).clamp(0.0, 1.0)
    };
    (a.0 + t * dx).hypot(a.1 + t * dy)
}

fn ring_of(field: &str, v: &Value) -> Result<Vec<[f64; 2]>> {
    let pts = v
        .as_array()
        .ok_or_else(|| Error::invalid(field, "a ring must be an array of positions"))?;
    pts.iter()
        .map(|p| {
            let xs = p.as_array().map(Vec::as_slice).unwrap_or_default();
            let nums: Vec<f64> = xs.iter().filter_map(Value::as_f64).collect();
            match nums.as_slice() {
                [x, y] | [x, y, _] if nums.len() == xs.len() => Ok([*x, *y]),
                _ => Err(Error::invalid(
                    field,
                    "a position must be [lon, lat] or [lon, lat, altitude] numbers",
                )),
            }
        })
        .collect()
}

fn polygon_of(v: &Value) -> Result<Vec<Vec<[f64; 2]>>> {
    v.as_array()
        .ok_or_else(|| Error::invalid("area", "a Polygon's coordinates must be an array of rings"))?
        .iter()
        .map(|r| ring_of("area", r))
        .collect()
}

fn collect_polygons(v: &Value, out: &mut Vec<Vec<Vec<[f64; 2]>>>) -> Result<()> {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    let coords = || {
        v.get("coordinates")
            .ok_or_else(|| Error::invalid("area", format!("a {kind} without coordinates")))
    };
    match kind {
        "Polygon" => out.push(polygon_of(coords()?)?),
        "MultiPolygon" => {
            for p in coords()?
                .as_array()
                .ok_or_else(|| Error::invalid("area", "MultiPolygon coordinates must be an array"))?
            {
                out.push(polygon_of(p)?);
            }
        }
        "Feature" => {
            let g = v.get("geometry").filter(|g| {
                matches!(
                    g.get("type").and_then(Value::as_str),
                    Some("Polygon" | "MultiPolygon")
                )
            });
            let g = g.ok_or_else(|| {
                Error::invalid(
                    "area",
                    "a Feature's geometry must be a Polygon or MultiPolygon",
                )
            })?;
            collect_polygons(g, out)?;
        }
        "FeatureCollection" => {
            let features = v
                .get("features")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::invalid("area", "a FeatureCollection without features"))?;
            for f in features {
                if f.get("type").and_then(Value::as_str) != Some("Feature") {
                    return Err(Error::invalid(
                        "area",
                        "a FeatureCollection's features must be Features",
                    ));
                }
                collect_polygons(f, out)?;
            }
        }
        other => {
            return Err(Error::invalid(
                "area",
                format!("a GeoJSON `{other}`; expected a Polygon, MultiPolygon, Feature or FeatureCollection"),
            ))
        }
    }
    Ok(())
}

/// The PRIO-GRID cell (0.5 degrees; id 1 at the south-west corner,
/// counting east, then north) that holds a point.
pub fn prio_grid(lat: f64, lon: f64) -> u32 {
    let row = ((lat + 90.0) / 0.5).floor().clamp(0.0, 359.0) as u32;
    let col = ((lon + 180.0) / 0.5).floor().clamp(0.0, 719.0) as u32;
    row * 720 + col + 1
}

/// The centre of a PRIO-GRID cell: latitude, longitude.
pub fn prio_grid_centre(gid: u32) -> (f64, f64) {
    let i = gid.saturating_sub(1);
    (
        -90.0 + (f64::from(i / 720) + 0.5) * 0.5,
        -180.0 + (f64::from(i % 720) + 0.5) * 0.5,
    )
}

/// The fatalities an event's attributes report, as (best, low, high):
/// `fatalities` (ACLED, or any event that says so), else UCDP GED's
/// `best` with its `low` and `high`. Integers or integer strings.
pub(crate) fn fatalities(attrs: &serde_json::Map<String, Value>) -> Option<[i64; 3]> {
    let int = |k: &str| -> Option<i64> {
        match attrs.get(k)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    if let Some(f) = int("fatalities") {
        return Some([f, f, f]);
    }
    let best = int("best")?;
    Some([
        best,
        int("low").unwrap_or(best),
        int("high").unwrap_or(best),
    ])
}

// The index's place keys: the precision, then the point on a Z-order
// curve, so that a box is a few ranges of keys per precision.

/// The place lists' mark in a posting list number (see index.rs: country
/// lists use only the low 32 bits under kind 0).
pub(crate) const PLACE_LIST: u64 = 1 << 61;
/// Bits per axis: 360 degrees in 2^29 steps of 7.5 cm.
const AXIS_BITS: u32 = 29;
const AXIS_MAX: u32 = (1 << AXIS_BITS) - 1;
const CURVE_BITS: u32 = 2 * AXIS_BITS;

fn quantize(v: f64, lo: f64, span: f64) -> u32 {
    let q = ((v - lo) / span * f64::from(1u32 << AXIS_BITS)).floor();
    q.clamp(0.0, f64::from(AXIS_MAX)) as u32
}

fn dequantize(q: u32, lo: f64, span: f64) -> f64 {
    lo + (f64::from(q) + 0.5) / f64::from(1u32 << AXIS_BITS) * span
}

/// Spreads the bits of `x` to the even bits of the result.
fn spread(x: u32) -> u64 {
    let mut v = u64::from(x);
    v = (v | v << 16) & 0x0000_ffff_0000_ffff;
    v = (v | v << 8) & 0x00ff_00ff_00ff_00ff;
    v = (v | v << 4) & 0x0f0f_0f0f_0f0f_0f0f;
    v = (v | v << 2) & 0x3333_3333_3333_3333;
    (v | v << 1) & 0x5555_5555_5555_5555
}

fn squeeze(v: u64) -> u32 {
    let mut v = v & 0x5555_5555_5555_5555;
    v = (v | v >> 1) & 0x3333_3333_3333_3333;
    v = (v | v >> 2) & 0x0f0f_0f0f_0f0f_0f0f;
    v = (v | v >> 4) & 0x00ff_00ff_00ff_00ff;
    v = (v | v >> 8) & 0x0000_ffff_0000_ffff;
    (v | v >> 16) as u32
}

fn morton(x: u32, y: u32) -> u64 {
    spread(x) | spread(y) << 1
}

fn list_base(p: PlacePrecision) -> u64 {
    PLACE_LIST | u64::from(p.code()) << CURVE_BITS
}

/// The index key of a place; a point without a precision counts as exact.
pub(crate) fn place_key(lat: f64, lon: f64, p: Option<PlacePrecision>) -> u64 {
    let x = quantize(lon, -180.0, 360.0);
    let y = quantize(lat, -90.0, 180.0);
    list_base(p.unwrap_or(PlacePrecision::Exact)) | morton(x, y)
}

/// The place a key stands for: latitude, longitude (to 7.5 cm: the
/// point every spatial test uses, in the index and on events alike) and
/// precision. `None` if the key is not a place key.
pub(crate) fn place_of_key(key: u64) -> Option<(f64, f64, PlacePrecision)> {
    if key >> 61 != 1 {
        return None;
    }
    let code = ((key >> CURVE_BITS) & 0b111) as u8;
    let p = PlacePrecision::from_code(code)?;
    let m = key & ((1 << CURVE_BITS) - 1);
    Some((
        dequantize(squeeze(m >> 1), -90.0, 180.0),
        dequantize(squeeze(m), -180.0, 360.0),
        p,
    ))
}

/// The point a spatial test uses for a location's coordinates.
pub(crate) fn tested_point(lat: f64, lon: f64) -> (f64, f64) {
    place_of_key(place_key(lat, lon, None)).map_or((lat, lon), |(a, b, _)| (a, b))
}

/// Inclusive key ranges holding every place of precision `p` inside the
/// boxes (a few dozen ranges per box: whole curve cells, some partly
/// outside, so hits are tested after).
pub(crate) fn key_ranges(boxes: &[(f64, f64, f64, f64)], p: PlacePrecision) -> Vec<(u64, u64)> {
    let base = list_base(p);
    let mut out = Vec::new();
    for (w, s, e, n) in boxes {
        let (x0, x1) = (quantize(*w, -180.0, 360.0), quantize(*e, -180.0, 360.0));
        let (y0, y1) = (quantize(*s, -90.0, 180.0), quantize(*n, -90.0, 180.0));
        let side = (x1 - x0).max(y1 - y0) + 1;
        // Stop where cells are a quarter to an eighth of the box: at most
        // some 100 cells meet its edge.
        let depth = (AXIS_BITS - (31 - side.leading_zeros()).min(AXIS_BITS) + 3).min(AXIS_BITS);
        cover(0, 0, 0, depth, (x0, x1, y0, y1), &mut out);
    }
    out.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(out.len());
    for (lo, hi) in out {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
        .into_iter()
        .map(|(lo, hi)| (base | lo, base | hi))
        .collect()
}

fn cover(
    level: u32,
    px: u32,
    py: u32,
    depth: u32,
    b: (u32, u32, u32, u32),
    out: &mut Vec<(u64, u64)>,
) {
    let shift = AXIS_BITS - level;
    let size = 1u64 << shift;
    let (nx0, ny0) = (u64::from(px) << shift, u64::from(py) << shift);
    let (nx1, ny1) = (nx0 + size - 1, ny0 + size - 1);
    let (x0, x1, y0, y1) = (
        u64::from(b.0),
        u64::from(b.1),
        u64::from(b.2),
        u64::from(b.3),
    );
    if nx1 < x0 || nx0 > x1 || ny1 < y0 || ny0 > y1 {
        return;
    }
    let inside = nx0 >= x0 && nx1 <= x1 && ny0 >= y0 && ny1 <= y1;
    if inside || level >= depth {
        let lo = morton(nx0 as u32, ny0 as u32);
        out.push((lo, lo + (size * size - 1)));
        return;
    }
    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        cover(level + 1, px * 2 + dx, py * 2 + dy, depth, b, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_round_trip_to_a_few_centimetres() {
        for (lat, lon) in [
            (50.45, 30.52),
            (-33.9, 151.2),
            (90.0, 180.0),
            (-90.0, -180.0),
        ] {
            for p in PlacePrecision::ALL {
                let (a, b, q) = place_of_key(place_key(lat, lon, Some(p))).unwrap();
                assert_eq!(q, p);
                assert!(
                    (a - lat).abs() < 1e-6 && (b - lon).abs() < 1e-6,
                    "{lat},{lon}"
                );
            }
        }
        assert_eq!(place_of_key(42), None);
    }

    #[test]
    fn distances_are_great_circle() {
        // Kyiv to Kharkiv: about 410 km.
        let d = distance_km(50.45, 30.52, 49.99, 36.23);
        assert!((405.0..415.0).contains(&d), "{d}");
        assert!(distance_km(0.0, 179.9, 0.0, -179.9) < 23.0);
    }

    #[test]
    fn a_box_may_cross_the_antimeridian() {
        let a = Area::parse_bbox("170,-20,-170,20").unwrap();
        assert!(a.contains(0.0, 179.0) && a.contains(0.0, -175.0));
        assert!(!a.contains(0.0, 0.0) && !a.contains(0.0, 160.0));
        assert_eq!(a.boxes().len(), 2);
        assert!(Area::parse_bbox("0,10,1,5").is_err());
        assert!(Area::parse_bbox("0,10,1").is_err());
        assert!(Area::parse_bbox("0,10,1,x").is_err());
        assert!(Area::parse_bbox("-181,0,1,1").is_err());
    }

    #[test]
    fn precision_decides_possible_certain_and_the_default() {
        let kharkiv = Area::parse_near("49.99,36.23", 10.0).unwrap();
        // A country centroid 5 km away: inside, but far too coarse.
        let (lat, lon) = (49.99, 36.30);
        assert!(!kharkiv.admits(PlaceMatch::Point, lat, lon, PlacePrecision::Country));
        assert!(kharkiv.admits(PlaceMatch::Possible, lat, lon, PlacePrecision::Country));
        assert!(!kharkiv.admits(PlaceMatch::Certain, lat, lon, PlacePrecision::Country));
        assert!(kharkiv.admits(PlaceMatch::Point, lat, lon, PlacePrecision::Exact));
        assert!(kharkiv.admits(PlaceMatch::Certain, lat, lon, PlacePrecision::Exact));
        // A town 15 km out: possibly inside only if near it.
        let (lat, lon) = (49.99, 36.44);
        assert!(!kharkiv.admits(PlaceMatch::Possible, lat, lon, PlacePrecision::Exact));
        assert!(kharkiv.admits(PlaceMatch::Possible, lat, lon, PlacePrecision::Near));
    }

    #[test]
    fn polygons_with_holes() {
        let a = Area::parse_geojson(
            r#"{"type":"Feature","geometry":{"type":"Polygon","coordinates":[
              [[0,0],[10,0],[10,10],[0,10],[0,0]],
              [[4,4],[6,4],[6,6],[4,6],[4,4]]]}}"#,
        )
        .unwrap();
        assert!(a.contains(1.0, 1.0));
        assert!(!a.contains(5.0, 5.0));
        assert!(!a.contains(11.0, 1.0));
        assert!(Area::parse_geojson(r#"{"type":"Point","coordinates":[0,0]}"#).is_err());
        assert!(Area::parse_geojson("[").is_err());
    }

    fn ranges_hold(boxes: &[(f64, f64, f64, f64)], key: u64, ranges: &[(u64, u64)]) -> bool {
        let _ = boxes;
        ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&key))
    }

    proptest! {
        /// Every point inside a box has its key inside the box's ranges,
        /// so the index never misses what a scan would find.
        #[test]
        fn ranges_cover_every_point_inside(
            w in -180.0f64..180.0, s in -90.0f64..90.0,
            dw in 0.0f64..40.0, dh in 0.0f64..20.0,
            fx in 0.0f64..=1.0, fy in 0.0f64..=1.0,
        ) {
            let (e, n) = ((w + dw).min(180.0), (s + dh).min(90.0));
            let (lon, lat) = (w + (e - w) * fx, s + (n - s) * fy);
            let boxes = vec![(w, s, e, n)];
            let ranges = key_ranges(&boxes, PlacePrecision::Near);
            prop_assert!(ranges.len() <= 200, "{} ranges", ranges.len());
            prop_assert!(ranges_hold(&boxes, place_key(lat, lon, Some(PlacePrecision::Near)), &ranges));
        }

        /// A circle's search boxes hold every point of the circle.
        #[test]
        fn circle_boxes_hold_the_circle(
            lat in -89.0f64..89.0, lon in -180.0f64..180.0, r in 1.0f64..3000.0,
            bearing in 0.0f64..360.0, f in 0.0f64..1.0,
        ) {
            let a = Area::Near { lat, lon, radius_km: r };
            // A point at distance f*r along the bearing.
            let d = f * r / EARTH_RADIUS_KM;
            let (p1, l1, b) = (lat.to_radians(), lon.to_radians(), bearing.to_radians());
            let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * b.cos()).asin();
            let l2 = l1 + (b.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
            let (plat, plon) = (p2.to_degrees(), lon_delta(l2.to_degrees(), 0.0));
            prop_assume!(a.contains(plat, plon));
            let inside = a.boxes().iter().any(|(w, s, e, n)| {
                (*s..=*n).contains(&plat) && (*w..=*e).contains(&plon)
            });
            prop_assert!(inside, "{plat},{plon} outside {:?}", a.boxes());
        }
    }
}
