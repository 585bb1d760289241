#!/usr/bin/env python3
"""Opens annals' Parquet and CSV exports with DuckDB and checks them against
annals' own view: row count = current events, per-country counts = the
by-country view, and the nested columns read as lists of structs.

    python3 .ci/duckdb_check.py target/debug/annals
"""
import json
import os
import subprocess
import sys
import tempfile

import duckdb

BIN = sys.argv[1]
FIX = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


def annals(db, *args):
    out = subprocess.run([BIN, "--db", db, *args], check=True, capture_output=True, text=True)
    return out.stdout


with tempfile.TemporaryDirectory() as tmp:
    db = os.path.join(tmp, "db")
    annals(db, "init")
    for fmt, name in [
        ("gdelt", "gdelt/v2_20191024143000.slice.CSV"),
        ("gdelt", "gdelt/v2_20190121220000.slice.CSV.zip"),
        ("gdelt", "gdelt/v1_sample_mixed.slice.tsv"),
        ("gdelt", "gdelt/v1_20151207.slice.CSV.gz"),
        ("gdelt", "gdelt/georgia_R-export.slice.csv"),
        ("acled", "acled/acled_2022_schema.csv"),
        ("acled", "acled/acled_2022_schema.updated.csv"),
        ("acled", "acled/acled_2016_schema.csv"),
        ("acled-deletions", "acled/acled_deletions.csv"),
    ]:
        annals(db, "import", "--format", fmt, os.path.join(FIX, name))
    parquet = os.path.join(tmp, "events.parquet")
    csv = os.path.join(tmp, "events.csv")
    annals(db, "export", "--format", "parquet", "--out", parquet)
    annals(db, "export", "--format", "csv", "--out", csv)

    stats = json.loads(annals(db, "stats", "--format", "json"))
    view = {r["country"]: r["count"] for r in map(json.loads, annals(db, "view", "by-country", "--format", "jsonl").splitlines())}

    con = duckdb.connect()
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{parquet}')").fetchone()[0]
    assert rows == stats["current"], (rows, stats)
    per_country = dict(con.execute(
        f"SELECT c, count(*) FROM (SELECT unnest(countries) AS c FROM read_parquet('{parquet}')) GROUP BY c"
    ).fetchall())
    assert per_country == view, (per_country, view)
    name, role = con.execute(
        f"SELECT a.name, a.role FROM (SELECT unnest(actors) AS a FROM read_parquet('{parquet}') "
        "WHERE kind = 'shelling_artillery_missile_attack') LIMIT 1"
    ).fetchone()
    assert (name, role) == ("Military Forces of Russia (2000-)", "actor1"), (name, role)
    typ = con.execute(f"SELECT typeof(occurred_start) FROM read_parquet('{parquet}') LIMIT 1").fetchone()[0]
    assert typ.startswith("TIMESTAMP"), typ
    fatalities = con.execute(
        f"SELECT sum(CAST(json_extract(attrs, '$.fatalities') AS INTEGER)) FROM read_parquet('{parquet}')"
    ).fetchone()[0]
    assert fatalities is not None
    csv_rows = con.execute(f"SELECT count(*) FROM read_csv('{csv}', header = true)").fetchone()[0]
    assert csv_rows == rows, (csv_rows, rows)
    print(f"duckdb {duckdb.__version__}: {rows} rows, {len(view)} countries match annals' by-country view")
