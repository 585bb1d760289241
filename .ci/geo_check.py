#!/usr/bin/env python3
"""Opens annals' GeoParquet export with GeoPandas and checks it against
annals: one row per current event, a WKB point at each event's longitude
and latitude (none without both), CRS WGS 84 (OGC:CRS84), the `geo`
metadata's bounding box; then checks annals' spatial queries against
GeoPandas and an independent great-circle distance: a box (with
GeoPandas' `cx`), a box across the antimeridian, and 300 km around Kyiv
(places coarser than the radius left out, as annals does by default).

    python3 .ci/geo_check.py target/debug/annals
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import geopandas
import pyarrow.parquet as pq

BIN = sys.argv[1]
FIX = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
RADIUS = {None: 0, "exact": 0, "near": 10, "admin2": 50, "admin1": 250, "country": 1000}


def annals(db, *args, stdin=None):
    out = subprocess.run([BIN, "--db", db, *args], check=True, capture_output=True, text=True, input=stdin)
    return out.stdout


def ids(db, *args):
    return {json.loads(line)["id"] for line in annals(db, "query", "--format", "jsonl", *args).splitlines()}


def haversine(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


with tempfile.TemporaryDirectory() as tmp:
    db = os.path.join(tmp, "db")
    annals(db, "init")
    for fmt, name in [
        ("gdelt", "gdelt/v2_20191024143000.slice.CSV"),
        ("gdelt", "gdelt/v1_sample_mixed.slice.tsv"),
        ("acled", "acled/acled_2022_schema.csv"),
        ("acled", "acled/acled_2016_schema.csv"),
        ("ucdp-ged", "ucdp/ged_release_a.csv"),
    ]:
        annals(db, "import", "--format", fmt, os.path.join(FIX, name))
    # Places on both sides of the antimeridian (Fiji, Taveuni, Samoa).
    pacific = [
        {"kind": "storm", "occurred": "2025-09", "location": {"lat": -17.7, "lon": 178.4, "precision": "exact"}},
        {"kind": "storm", "occurred": "2025-09", "location": {"lat": -16.8, "lon": -179.9, "precision": "near"}},
        {"kind": "storm", "occurred": "2025-09", "location": {"lat": -13.8, "lon": -171.8}},
    ]
    annals(db, "append", stdin="\n".join(json.dumps(e) for e in pacific))
    path = os.path.join(tmp, "events.parquet")
    annals(db, "export", "--format", "geoparquet", "--out", path)

    stats = json.loads(annals(db, "stats", "--format", "json"))
    gdf = geopandas.read_parquet(path)
    assert len(gdf) == stats["current"], (len(gdf), stats)
    assert gdf.geometry.name == "geometry"
    assert gdf.crs is not None and gdf.crs.equals("OGC:CRS84"), gdf.crs
    located = gdf[gdf.geometry.notna()]
    assert len(located) > 100, len(located)
    for _, row in gdf.iterrows():
        loc = row["location"]
        if loc is not None and loc["lat"] is not None and loc["lon"] is not None:
            assert (row.geometry.x, row.geometry.y) == (loc["lon"], loc["lat"]), (row.geometry, loc)
        else:
            assert row.geometry is None, row
    geo = json.loads(pq.read_metadata(path).metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry", geo
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB" and col["geometry_types"] == ["Point"], col
    assert [round(x, 9) for x in col["bbox"]] == [round(x, 9) for x in located.total_bounds], (col, located.total_bounds)
    precisions = {r["precision"] for r in located["location"]}
    assert {"exact", "near", "admin1"} <= precisions, precisions

    # A box large enough that no precision is coarser than it: exactly the
    # points inside, as GeoPandas' cx selects them.
    box = located.cx[-30:60, 20:72]
    want = set(box["id"])
    got = ids(db, "--bbox", "-30,20,60,72")
    assert got == want, (len(got), len(want), got ^ want)

    # Across the antimeridian.
    got = ids(db, "--bbox", "170,-20,-170,-10")
    xs = [(r["id"], r.geometry.x, r.geometry.y) for _, r in located.iterrows()]
    want = {i for i, x, y in xs if -20 <= y <= -10 and (x >= 170 or x <= -170)}
    assert got == want and len(want) == 3, (got, want)

    # 300 km around Kyiv by great-circle distance, coarse places left out.
    got = ids(db, "--near", "50.45,30.52", "--radius", "300")
    want, unsure = set(), set()
    for _, r in located.iterrows():
        d = haversine(50.45, 30.52, r.geometry.y, r.geometry.x)
        if RADIUS[r["location"]["precision"]] <= 300 and d <= 300:
            want.add(r["id"])
        if abs(d - 300) < 0.01:
            unsure.add(r["id"])
    assert (got ^ want) <= unsure, got ^ want
    print(
        f"geopandas {geopandas.__version__}: {len(gdf)} rows, {len(located)} points, "
        f"bbox {len(box)} / antimeridian 3 / 300 km {len(want)} events match annals' queries"
    )
