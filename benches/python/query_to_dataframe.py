"""Query N events into a DataFrame three ways, in one process, alternating:

1. annals' Arrow stream: polars.DataFrame(db.query(...)), no file;
2. `annals export --format parquet` (the CLI) + polars.read_parquet;
3. Python's sqlite3 (same events, one row each, lists as JSON text) +
   pandas.read_sql.

Usage: python3 query_to_dataframe.py PATH/TO/annals [N] [RUNS]
ANNALS_BENCH_QUICK=1 runs 2,000 events once (CI: it must keep working).
Prints medians in ms and each baseline's time divided by annals' stream's
(above 1: the stream is faster).
"""

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import pandas as pd
import polars as pl

import annals

QUICK = os.environ.get("ANNALS_BENCH_QUICK") == "1"
binary = sys.argv[1]
n = 2_000 if QUICK else int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
runs = 1 if QUICK else int(sys.argv[3]) if len(sys.argv) > 3 else 5
COUNTRIES = ["PL", "RO", "UA", "LT", "LV", "EE", "MD", "DE"]
KINDS = ["airspace_violation", "sabotage", "protest", "meeting"]


def event(i):
    return {
        "id": f"6a1f0c2e-0d5b-5c8e-9b1a-{i:012d}",
        "kind": KINDS[i % len(KINDS)],
        "occurred": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "countries": [COUNTRIES[i % len(COUNTRIES)]],
        "actors": [{"name": f"actor {i % 500}", "role": "initiator"}],
        "summary": f"Synthetic event {i} for the query benchmark.",
        "confidence": 0.5,
    }


def timed(f):
    start = time.perf_counter()
    out = f()
    return (time.perf_counter() - start) * 1000, out


with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "db")
    events = [event(i) for i in range(n)]
    with annals.open(path, durability="buffered") as db:
        for i in range(0, n, 50_000):
            db.append(events[i : i + 50_000])

    sql = sqlite3.connect(os.path.join(tmp, "events.sqlite"))
    sql.execute(
        "CREATE TABLE events (id TEXT PRIMARY KEY, seq INTEGER, kind TEXT, occurred TEXT,"
        " countries TEXT, actors TEXT, summary TEXT, confidence REAL)"
    )
    sql.executemany(
        "INSERT INTO events VALUES (?,?,?,?,?,?,?,?)",
        [
            (e["id"], i + 1, e["kind"], e["occurred"], json.dumps(e["countries"]),
             json.dumps(e["actors"]), e["summary"], e["confidence"])
            for i, e in enumerate(events)
        ],
    )
    sql.commit()

    out = os.path.join(tmp, "out.parquet")
    figures = {"arrow": [], "parquet": [], "sqlite": []}
    for _ in range(runs):
        with annals.open(path) as db:
            ms, df = timed(lambda: pl.DataFrame(db.query()))
        assert df.height == n
        figures["arrow"].append(ms)

        def export_then_read():
            subprocess.run(
                [binary, "--db", path, "export", "--format", "parquet", "--out", out],
                check=True, stdout=subprocess.DEVNULL,
            )
            return pl.read_parquet(out)

        ms, df = timed(export_then_read)
        assert df.height == n
        figures["parquet"].append(ms)

        ms, df = timed(lambda: pd.read_sql("SELECT * FROM events ORDER BY occurred, seq", sql))
        assert len(df) == n
        figures["sqlite"].append(ms)

    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"{n} events, median of {runs} runs (ms):")
    print(f"  annals query -> Arrow stream -> polars.DataFrame  {med['arrow']:9.1f}")
    print(f"  annals export parquet (CLI) + polars.read_parquet {med['parquet']:9.1f}"
          f"  (ratio to annals' stream: {med['parquet'] / med['arrow']:.2f})")
    print(f"  sqlite3 + pandas.read_sql                         {med['sqlite']:9.1f}"
          f"  (ratio to annals' stream: {med['sqlite'] / med['arrow']:.2f})")
