#!/usr/bin/env python3
"""Publishes a database with history (imports, a revised release, deletions,
corrections, retractions) into Delta Lake with `annals publish delta`, then
reads **every version** of the table with Polars (through the `deltalake`
package) and checks it against annals itself:

- the rows of version v are the entries 1..seq(v) exactly once, each linked
  to its predecessor (prev_hash = the previous row's hash), and the last
  hash is annals' hash of entry seq(v) (`annals prove`);
- the current events rebuilt from those rows (the last created/corrected
  version of each id, minus retracted ones) give the per-country counts of
  `annals view by-country --as-of seq(v)`;
- another engine's maintenance between publishes (the `deltalake`
  package's OPTIMIZE: compaction, then Z-order) neither breaks the next
  publish nor changes a version's rows, checkpoints written every 3
  versions are read by deltalake, and `annals publish delta --version-of
  SEQ` names the first version holding each seq.

    python3 .ci/delta_check.py target/debug/annals   # built with --features delta
"""
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter

import deltalake
import polars as pl

BIN = sys.argv[1]
FIX = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


def annals(db, *args):
    out = subprocess.run([BIN, "--db", db, *args], check=True, capture_output=True, text=True)
    return out.stdout


with tempfile.TemporaryDirectory() as tmp:
    db, table = os.path.join(tmp, "db"), os.path.join(tmp, "table")
    annals(db, "init")
    steps = [
        ("gdelt", "gdelt/v2_20191024143000.slice.CSV"),
        ("acled", "acled/acled_2022_schema.csv"),
        ("acled", "acled/acled_2022_schema.updated.csv"),
        ("acled-deletions", "acled/acled_deletions.csv"),
        ("ucdp-ged", "ucdp/ged_release_a.csv"),
        ("ucdp-ged", "ucdp/ged_release_b.csv"),
    ]
    for i, (fmt, name) in enumerate(steps):
        annals(db, "import", "--format", fmt, "--batch", "70", os.path.join(FIX, name))
        # Publishing between imports: each run continues where the table ends.
        annals(db, "publish", "delta", "--to", table, "--checkpoint-every", "3")
        # A data team's maintenance in between: it rewrites files only.
        if i == 1:
            deltalake.DeltaTable(table).optimize.compact()
        if i == 3:
            deltalake.DeltaTable(table).optimize.z_order(["seq"])
    report = json.loads(annals(db, "publish", "delta", "--to", table))
    assert report["commits"] == 0, report
    operations = [h.get("operation") for h in deltalake.DeltaTable(table).history()]
    assert operations.count("OPTIMIZE") == 2, operations
    assert any(f.endswith(".checkpoint.parquet") for f in os.listdir(os.path.join(table, "_delta_log")))

    head = json.loads(annals(db, "head"))
    dt = deltalake.DeltaTable(table)
    last = dt.version()
    checked = 0
    first_with = {}
    for v in range(1, last + 1):
        df = pl.read_delta(table, version=v).sort("seq")
        seqs = df["seq"].to_list()
        top = seqs[-1]
        first_with.setdefault(top, v)
        assert seqs == list(range(1, top + 1)), f"version {v}: seqs not 1..{top} once each"
        hashes, prevs = df["hash"].to_list(), df["prev_hash"].to_list()
        assert prevs[0] == "0" * 64, "the first entry links to the zero hash"
        assert all(prevs[i] == hashes[i - 1] for i in range(1, len(hashes))), f"version {v}: a broken link"
        # annals' hash of entry `top`, proved against its current head.
        proof = json.loads(annals(db, "prove", str(top), "--anchor-seq", str(head["seq"]), "--anchor-hash", head["hash"]))
        assert proof["ok"] and hashes[-1] == proof["hash"], (v, hashes[-1], proof)

        current = {}
        for row in df.select("id", "action", "countries").iter_rows(named=True):
            if row["action"] in ("created", "corrected"):
                current[row["id"]] = row["countries"] or []
            elif row["action"] == "retracted":
                current.pop(row["id"], None)
        ours = Counter(c for cs in current.values() for c in set(cs))
        view = annals(db, "view", "by-country", "--as-of", str(top), "--format", "jsonl")
        theirs = {r["country"]: r["count"] for r in map(json.loads, view.splitlines())}
        assert dict(ours) == theirs, f"version {v} (seq {top}): {dict(ours)} != {theirs}"
        checked += 1

    for top, v in first_with.items():
        said = json.loads(annals(db, "publish", "delta", "--to", table, "--version-of", str(top), "--format", "json"))
        assert said["version"] == v, (top, v, said)

    # seq <= N on the latest version is the replica at N, exactly.
    latest = pl.read_delta(table)
    mid = latest["seq"].max() // 2
    at_mid = latest.filter(pl.col("seq") <= mid).height
    assert at_mid == mid, (at_mid, mid)
    print(f"delta check: {checked} table versions (2 of them another engine's OPTIMIZE) read with "
          f"Polars, each equal to annals as of its seq; {latest.height} rows")
