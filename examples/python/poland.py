"""Airspace violations and sabotage around Poland, per month, from Python.

Imports the GDELT sample of ../shared/data when present (else the small
fixture in tests/fixtures), asks annals for the events, draws events per
month per country to poland.png with matplotlib, and compares a what-if
branch with main.

    pip install ./python matplotlib polars pyarrow
    python3 examples/python/poland.py
"""

import glob
import os
import tempfile

import polars as pl

import annals

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NEIGHBOURS = ["PL", "UA", "BY", "LT", "DE", "CZ", "SK", "RO"]

files = sorted(glob.glob(os.path.join(ROOT, "..", "shared", "data", "**", "*.export.CSV*"), recursive=True))
files = [f for f in files if "excel" not in f] or [
    os.path.join(ROOT, "tests", "fixtures", "gdelt", "v2_20191024143000.slice.CSV"),
    os.path.join(ROOT, "tests", "fixtures", "gdelt", "v2_20190121220000.slice.CSV.zip"),
]

with tempfile.TemporaryDirectory() as tmp, annals.open(os.path.join(tmp, "db")) as db:
    for f in files:
        summary = db.import_file(f, format="gdelt", skip_invalid=True, progress=True)
        print(f"{os.path.basename(f)}: {summary['appended']} events")

    hits = db.query(country=NEIGHBOURS).to_polars()
    monthly = (
        hits.explode("countries")
        .filter(pl.col("countries").is_in(NEIGHBOURS))
        .with_columns(pl.col("occurred_start").dt.strftime("%Y-%m").alias("month"))
        .group_by("month", "countries")
        .len()
        .sort("month", "countries")
    )
    print(monthly.pivot(on="countries", index="month", values="len").fill_null(0))
    kinds = hits.group_by("kind").len().sort("len", descending=True).head(5)
    print("most frequent kinds around Poland:\n", kinds)

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        wide = monthly.pivot(on="countries", index="month", values="len").fill_null(0).to_pandas()
        wide.set_index("month").plot(kind="bar", stacked=True, figsize=(8, 4), title="Events per month")
        plt.tight_layout()
        plt.savefig("poland.png")
        print("wrote poland.png")
    except ImportError:
        print("matplotlib not installed: no plot")

    # What if the first three of these reports were wrong? Retract them on a
    # branch and compare its by-country view with main's.
    db.create_branch("what-if")
    first = hits.head(3)["id"].to_list()
    for event_id in first:
        db.retract(event_id, reason="hypothesis: misattributed", branch="what-if")
    for row in db.diff("what-if", view="by-country"):
        before = (row["main"] or {}).get("count", 0)
        after = (row["branch"] or {}).get("count", 0)
        print(f"what-if {row['key']}: {before} -> {after} events")
