#!/usr/bin/env python3
"""The same question asked of annals and of its Delta Lake replica with
Polars: the current events concerning a country that overlap a month
(`annals query --country PL --from 2025-09 --to 2025-09`). On the table the
current state comes from the log's rows (an event's row with the highest
seq, unless it is a retraction). Beside them, Polars over the bench's Parquet export
of the current events (one file, one row per event). The answers must
agree; medians of 5 runs each.

    ANNALS_DELTA_KEEP=/tmp/d cargo bench --features delta --bench delta
    python3 benches/python/delta_query.py target/release/annals /tmp/d AE 2020-09
"""
import datetime as dt
import statistics
import subprocess
import sys
import time

import polars as pl

BIN, ROOT = sys.argv[1], sys.argv[2]
# The bench's synthetic events: countries by a Zipf law over the ISO list
# (AD first), days 2015-2024; a real database: PL 2025-09.
COUNTRY, YEAR, MONTH = (sys.argv[3], int(sys.argv[4][:4]), int(sys.argv[4][5:7])) if len(sys.argv) > 4 else ("PL", 2025, 9)
DB, TABLE = f"{ROOT}/db", f"{ROOT}/table"
START = dt.datetime(YEAR, MONTH, 1, tzinfo=dt.timezone.utc)
END = dt.datetime(YEAR + MONTH // 12, MONTH % 12 + 1, 1, tzinfo=dt.timezone.utc)
WHEN = f"{YEAR:04}-{MONTH:02}"


def through_annals():
    out = subprocess.run(
        [BIN, "--db", DB, "query", "--country", COUNTRY, "--from", WHEN, "--to", WHEN, "--format", "jsonl"],
        check=True, capture_output=True, text=True,
    ).stdout
    return out.count("\n")


def through_polars():
    # The current version of an event is its row with the highest seq: read
    # (id, seq) of every row (two columns), then full rows only where the
    # filter matches, kept if they are that latest row. A retraction row
    # has no countries, so a retracted event's latest row never matches.
    # (Sorting all rows and taking the last per id reads every column of
    # every row: 5x slower at 1M.)
    lf = pl.scan_delta(TABLE)
    latest = lf.select("id", "seq").group_by("id").agg(pl.col("seq").max())
    hits = lf.filter(
        pl.col("countries").list.contains(COUNTRY)
        & (pl.col("occurred_start") < END)
        & (pl.col("occurred_end") > START)
    )
    return hits.join(latest, on=["id", "seq"], how="semi").select(pl.len()).collect().item()


def through_parquet():
    lf = pl.scan_parquet(f"{ROOT}/events.parquet")
    hits = lf.filter(
        pl.col("countries").list.contains(COUNTRY)
        & (pl.col("occurred_start") < END)
        & (pl.col("occurred_end") > START)
    )
    return hits.select(pl.len()).collect().item()


def median_ms(f):
    times, answer = [], None
    for _ in range(5):
        t = time.perf_counter()
        answer = f()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), answer


a_ms, a = median_ms(through_annals)
p_ms, p = median_ms(through_polars)
x_ms, x = median_ms(through_parquet)
assert a == p == x, f"annals found {a} events, the Delta table {p}, the Parquet export {x}"
print(f"{COUNTRY} in {WHEN}, {a} events: annals query (CLI, a process per run) {a_ms:.0f} ms | "
      f"Polars over the Delta table {p_ms:.0f} ms ({p_ms / a_ms:.1f}x annals) | "
      f"Polars over the Parquet export {x_ms:.0f} ms (the table takes {p_ms / x_ms:.1f}x as long)")
