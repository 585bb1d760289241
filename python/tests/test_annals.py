import datetime
import json
import pathlib
import subprocess
import sys
import threading

import pytest

import annals
from conftest import event

pa = pytest.importorskip("pyarrow")


def test_append_query_round_trip_through_arrow_polars_pandas(db):
    events = [event(i, country=["PL", "RO"][i % 2]) for i in range(50)]
    written = db.append(events)
    assert [w["seq"] for w in written] == list(range(1, 51))
    assert all(w["new"] for w in written)

    rows = {r["id"]: r for r in db.query().to_pylist()}
    assert len(rows) == 50
    for e in events:  # every field given comes back as it was
        assert {k: rows[e["id"]][k] for k in e} == e

    table = pa.table(db.query(country="PL"))
    assert table.num_rows == 25
    assert table.column_names[:5] == ["id", "seq", "recorded_at", "corrected_seq", "kind"]
    assert set(table.column("id").to_pylist()) == {e["id"] for e in events if e["countries"] == ["PL"]}

    pl = pytest.importorskip("polars")
    df = db.query(kind="airspace_violation").to_polars()
    assert isinstance(df, pl.DataFrame) and df.height == 50
    assert sorted(df["summary"].to_list()) == sorted(e["summary"] for e in events)
    assert pl.DataFrame(db.query(country="RO")).height == 25

    pd = pytest.importorskip("pandas")
    pdf = db.query(country=["PL", "RO"], start="2025-09", end="2025-09").to_pandas()
    assert isinstance(pdf, pd.DataFrame) and len(pdf) == 50
    assert set(pdf["kind"]) == {"airspace_violation"}


def test_query_has_the_parquet_export_columns(db):
    db.append([event(1)])
    schema = pa.table(db.query()).schema
    assert [f.name for f in schema] == [
        "id", "seq", "recorded_at", "corrected_seq", "kind", "occurred", "occurred_start",
        "occurred_end", "occurred_precision", "countries", "location", "actors", "summary",
        "sources", "confidence", "tags", "attrs",
    ]
    assert str(schema.field("occurred_start").type) == "timestamp[us, tz=UTC]"


def test_json_strings_and_single_dicts_are_accepted(db):
    db.append(json.dumps(event(1)))
    db.append(event(2))
    assert db.head()["seq"] == 2
    assert len(db.head()["hash"]) == 64


def test_batches_are_atomic_and_expect_seq_is_checked(db):
    db.append([event(1)])
    with pytest.raises(annals.InvalidInput) as bad:
        db.append([event(2), dict(event(3), countries=["ZZ"])])
    assert "events[1]" in str(bad.value) and "countries" in str(bad.value)
    assert db.head()["seq"] == 1
    with pytest.raises(annals.SeqMismatch):
        db.append([event(4)], expect_seq=0)
    with pytest.raises(annals.Conflict):  # SeqMismatch is a Conflict
        db.append([event(4)], expect_seq=5)
    db.append([event(4)], expect_seq=1)
    assert db.head()["seq"] == 2


def test_correct_retract_get_history_and_as_of(db):
    e = event(1)
    db.append([e])
    seq = db.correct(e["id"], dict(e, summary="corrected"))
    assert seq == 2
    assert db.get(e["id"])["summary"] == "corrected"
    assert db.get(e["id"], as_of=1)["summary"] == "event 1"
    assert db.query(as_of=1).to_pylist()[0]["summary"] == "event 1"
    db.retract(e["id"], reason="unverified")
    assert db.query().to_pylist() == []
    assert db.get(e["id"])["retracted_seq"] == 3
    assert [v["action"] for v in db.history(e["id"])] == ["created", "corrected", "retracted"]
    assert db.history(e["id"])[2]["reason"] == "unverified"
    with pytest.raises(annals.NotFound):
        db.history("6a1f0c2e-0d5b-5c8e-9b1a-999999999999")
    with pytest.raises(annals.Conflict):
        db.correct(e["id"], dict(e, summary="again"))
    with pytest.raises(annals.InvalidInput):
        db.correct(e["id"], dict(e, id="6a1f0c2e-0d5b-5c8e-9b1a-000000000002"))
    changes = db.changes(since=1)
    assert [c["change"] for c in changes] == ["retracted"]
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    assert db.query(as_of=future).to_pylist() == []
    with pytest.raises(annals.InvalidInput):
        db.query(as_of=datetime.datetime(2025, 1, 1))


def test_a_result_is_pinned_to_its_seq(db):
    db.append([event(1)])
    r = db.query()
    db.append([event(2)])
    assert r.seq == 1
    assert pa.table(r).num_rows == 1
    assert pa.table(db.query()).num_rows == 2


def test_views_as_arrow(db):
    db.append([event(1, "PL"), event(2, "RO"), event(3, "PL", occurred="2025-10-02")])
    v = db.view("by-country")
    t = pa.table(v)
    assert t.column("country").to_pylist() == ["PL", "RO"]
    assert t.column("count").to_pylist() == [2, 1]
    assert len(v) == 2 and v.to_pylist()[0]["by_kind"] == {"airspace_violation": 2}
    assert pa.table(db.view("by-actor")).column("actor").to_pylist() == ["Russia"]
    days = db.view("by-date", granularity="day").to_pylist()
    assert {(d["bucket"], d["precision"]) for d in days} == {("2025-09", "month"), ("2025-10-02", "day")}
    assert pa.table(db.view("by-country", as_of=1)).column("country").to_pylist() == ["PL"]
    with pytest.raises(annals.InvalidInput):
        db.view("by-planet")


def test_single_rows_and_pages(db):
    many = []
    for i in range(1, 8):
        e = event(i, "PL")
        e["actors"] = [{"name": f"Actor {i}", "role": "perpetrator"}]
        many.append(e)
    db.append(many)
    row = db.view("by-country", country="PL").to_pylist()
    assert len(row) == 1 and row[0]["count"] == 7 and row[0]["more_actors"] is False
    assert db.view("by-country", country="RO").to_pylist() == []
    first = db.country_actors("PL", limit=3)
    assert [a["actor"] for a in first] == ["Actor 1", "Actor 2", "Actor 3"]
    rest = db.country_actors("PL", after=first[-1]["actor"], limit=100)
    assert [a["count"] for a in rest] == [1, 1, 1, 1]
    one = db.view("by-actor", actor="actor 5").to_pylist()
    assert [r["actor"] for r in one] == ["Actor 5"]
    page = db.view("by-actor", after="Actor 2", limit=2).to_pylist()
    assert [r["actor"] for r in page] == ["Actor 3", "Actor 4"]
    with pytest.raises(annals.InvalidInput):
        db.view("by-date", country="PL")


def test_branches_and_diff(db):
    db.append([event(1, "PL"), event(2, "RO")])
    info = db.create_branch("what-if")
    assert info["base_seq"] == 2 and info["parent"] == "main"
    db.retract(event(2)["id"], reason="hypothesis", branch="what-if")
    db.append([event(3, "LT")], branch="what-if")
    assert {r["countries"][0] for r in db.query(branch="what-if").to_pylist()} == {"PL", "LT"}
    assert {r["countries"][0] for r in db.query().to_pylist()} == {"PL", "RO"}
    diff = {d["key"]: d for d in db.diff("what-if")}
    assert set(diff) == {"LT", "RO"}
    assert diff["RO"]["branch"] is None and diff["LT"]["main"] is None
    assert [b["name"] for b in db.branches()] == ["what-if"]
    with pytest.raises(annals.Conflict):
        db.create_branch("what-if")
    db.drop_branch("what-if")
    assert db.branches() == []
    with pytest.raises(annals.NotFound):
        db.query(branch="what-if")


def test_merge_and_event_diff(db):
    db.append([event(1, "PL"), event(2, "RO")])
    db.create_branch("what-if")
    db.append([event(3, "LT")], branch="what-if")
    db.retract(event(2)["id"], reason="hypothesis", branch="what-if")
    diff = {d["id"]: d["diff"] for d in db.diff_events("what-if")}
    assert diff == {event(3)["id"]: "added", event(2)["id"]: "removed"}
    plan = db.merge("what-if", dry_run=True)
    assert plan["fast_forward"] and plan["dry_run"] and len(plan["changes"]) == 2
    assert db.head()["seq"] == 2
    report = db.merge("what-if")
    assert report["head"]["seq"] == 4
    assert {r["countries"][0] for r in db.query().to_pylist()} == {"PL", "LT"}
    assert db.history(event(3)["id"])[-1]["merged_from"]["branch"] == "what-if"
    with pytest.raises(annals.InvalidInput):
        db.merge("what-if", on_conflict="maybe")
    with pytest.raises(annals.NotFound):
        db.merge("nope")


def test_edtf_dates_keep_their_qualifiers(db):
    db.append([event(1, occurred="2025-09~"), event(2, occurred="../2025-11")])
    assert db.get(event(1)["id"])["occurred"] == "2025-09~"
    assert db.get(event(2)["id"])["occurred"] == {"from": "..", "to": "2025-11"}
    autumn = db.query(start="2025-23", end="2025-23").to_pylist()
    assert sorted(r["summary"] for r in autumn) == ["event 1", "event 2"]


def test_ucdp_release_and_sources(db):
    fixtures = pathlib.Path(__file__).parents[2] / "tests" / "fixtures"
    s = db.import_file(fixtures / "ucdp" / "ged_release_a.csv", format="ucdp-ged")
    assert s["appended"] == 6
    s = db.import_file(fixtures / "ucdp" / "ged_release_b.csv", format="ucdp-ged", retract_missing=True)
    assert (s["appended"], s["corrected"], s["retracted"]) == (1, 1, 1)
    db.append([event(1, "UA", occurred="2025-09-12")])
    rows = db.sources(country="UA", start="2025-09", end="2025-09", within=True)
    assert rows == [{"bucket": "2025-09", "precision": "month", "counts": {"hand-entered": 1, "ucdp-ged": 4}}]
    with pytest.raises(annals.InvalidInput):
        db.import_file(fixtures / "ucdp" / "ged_release_a.csv", format="gdelt", retract_missing=True)


def test_excise_erases_the_payload(tmp_path):
    path = tmp_path / "db"
    with annals.open(path) as db:
        db.append([event(1), event(2, "RO")])
        with pytest.raises(annals.InUse):
            annals.excise(path, event(2)["id"], "erasure request")
    done = annals.excise(path, event(2)["id"], "erasure request")
    assert done["entries"] == {"main": [2]} and done["reason"] == "erasure request"
    with pytest.raises(annals.NotFound):
        annals.excise(path, event(9)["id"], "nothing")
    with pytest.raises(annals.Conflict):
        annals.excise(path, event(2)["id"], "again")
    with annals.open(path) as db:
        assert db.get(event(2)["id"]) is None
        assert db.history(event(2)["id"])[0]["action"] == "excised"
        assert [r["summary"] for r in db.query().to_pylist()] == ["event 1"]
        db.verify()


def test_subscribe_backlog_then_live(db):
    db.append([event(1), event(2)])
    sub = db.subscribe(after=0, timeout=5)
    assert [next(sub)["seq"], next(sub)["seq"]] == [1, 2]
    t = threading.Timer(0.2, lambda: db.append([event(3)]))
    t.start()
    live = next(sub)
    assert live["seq"] == 3 and live["action"] == "created" and live["event"]["summary"] == "event 3"
    t.join()
    quiet = db.subscribe(after=3, timeout=0.2)
    assert list(quiet) == []


def test_import_file_with_progress_and_rejects(db, tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps(event(i)) for i in range(1, 6)]
    lines.insert(2, '{"kind": "Bad Kind", "occurred": "2025"}')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(annals.InvalidInput) as bad:
        db.import_file(path)
    assert "line 3" in str(bad.value)
    assert db.head()["seq"] == 2  # the rows before it are committed
    seen, rejects = [], []
    summary = db.import_file(str(path), skip_invalid=True, on_reject=rejects.append, progress=seen.append, batch_rows=2)
    assert summary["appended"] == 3 and summary["unchanged"] == 2 and summary["rejected"] == 1
    assert rejects[0]["line"] == 3 and "kind" in rejects[0]["reason"]
    assert seen and seen[-1]["rows"] == 6
    with pytest.raises(annals.InvalidInput):
        db.import_file(path, format="nope")


def test_callback_errors_are_raised(db, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"kind": "Bad Kind", "occurred": "2025"}\n')

    def boom(_):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        db.import_file(path, skip_invalid=True, on_reject=boom)


def test_exceptions_and_closed_handles(tmp_path):
    assert issubclass(annals.InvalidInput, annals.Error)
    assert issubclass(annals.SeqMismatch, annals.Conflict)
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(annals.BadPath):
        annals.open(file)
    with pytest.raises(annals.InvalidInput):
        annals.open(tmp_path / "db", durability="sometimes")
    with annals.open(tmp_path / "db", durability="buffered") as db:
        db.append([event(1)])
        r = db.query()
        with pytest.raises(annals.InUse):
            annals.open(tmp_path / "db")
    with pytest.raises(annals.Closed):
        db.head()
    with pytest.raises(annals.Closed):
        pa.table(r)
    db.close()  # twice is fine
    with annals.open(tmp_path / "db") as again:
        assert again.head()["seq"] == 1
        assert again.verify()["seq"] == 1
    with pytest.raises(annals.InvalidInput):
        annals.open(tmp_path / "db").get("not-a-uuid")


def test_another_process_gets_in_use(db):
    code = (
        "import sys, annals\n"
        "try:\n    annals.open(sys.argv[1])\nexcept annals.InUse as e:\n    print('in use:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, db.path], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("in use:") and db.path in out.stdout


def test_readers_run_while_a_writer_appends(db):
    db.append([event(i) for i in range(100)])
    errors, counts = [], []

    def read():
        try:
            for _ in range(20):
                n = pa.table(db.query()).num_rows
                counts.append(n)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for i in range(100, 200, 10):
        db.append([event(j) for j in range(i, i + 10)])
    for t in readers:
        t.join()
    assert errors == []
    assert all(100 <= n <= 200 and n % 10 == 0 for n in counts)
    assert db.verify()["seq"] == 200


def test_a_large_query_streams_in_bounded_batches(db):
    db.append([event(i, occurred="2025-09-%02d" % (1 + i % 28)) for i in range(30_000)])
    reader = pa.RecordBatchReader.from_stream(db.query())
    sizes = [b.num_rows for b in reader]
    assert sum(sizes) == 30_000
    assert max(sizes) <= 8192 and len(sizes) >= 4
    # Stopping early lets the producer go: the database stays usable.
    partial = pa.RecordBatchReader.from_stream(db.query())
    partial.read_next_batch()
    del partial
    db.append([event(99_999)])
    assert db.head()["seq"] == 30_001


def placed(i, lat, lon, precision=None, **extra):
    e = event(i, country="UA", kind="shelling")
    e["location"] = {"lat": lat, "lon": lon, "admin1": "Kharkiv"}
    if precision:
        e["location"]["precision"] = precision
    e["attrs"] = extra
    return e


def test_spatial_filters_and_the_view_by_place(db):
    db.append([
        placed(1, 49.99, 36.23, "exact", fatalities=3),
        placed(2, 49.0, 32.0, "country"),
        placed(3, -16.8, -179.9),
    ])
    ids = lambda t: sorted(r["id"][-1] for r in t.to_pylist())
    assert ids(db.query(near=(50.0, 36.2), radius_km=20)) == ["1"]
    assert ids(db.query(near="50,36.2", radius_km=20, place="possible")) == ["1", "2"]
    assert ids(db.query(bbox=(170, -20, -170, -10))) == ["3"]
    assert ids(db.query(bbox="170,-20,-170,-10", kind="protest")) == []
    area = {"type": "Polygon", "coordinates": [[[35, 49], [37, 49], [37, 51], [35, 51], [35, 49]]]}
    assert ids(db.query(area=area)) == ["1"]
    assert ids(db.query(area=json.dumps(area))) == ["1"]
    for bad in [dict(bbox=(1, 2, 3)), dict(near=(50, 36)), dict(place="certain"), dict(area={"type": "Point"})]:
        with pytest.raises(annals.InvalidInput):
            db.query(**bad)
    loc = pa.table(db.query(near=(50.0, 36.2), radius_km=20)).column("location").to_pylist()[0]
    assert (loc["precision"], loc["admin1"]) == ("exact", "Kharkiv")

    cells = db.view("by-place").to_pylist()
    assert len(cells) == 3 and all(r["gid"] for r in cells)
    kharkiv = [r for r in cells if r["fatalities"] is not None]
    assert len(kharkiv) == 1 and kharkiv[0]["fatalities"]["best"] == 3
    table = pa.table(db.view("by-place"))
    assert sorted(x for x in table.column("fatalities_best").to_pylist() if x is not None) == [3]
    admin1 = db.view("by-place", level="admin1", granularity="month").to_pylist()
    assert [(r["area"], r["bucket"], r["count"]) for r in admin1] == [("UA/Kharkiv", "2025-09", 3)]
    with pytest.raises(annals.InvalidInput):
        db.view("by-place", granularity="day")
