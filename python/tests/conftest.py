import pytest

import annals


@pytest.fixture
def db(tmp_path):
    d = annals.open(tmp_path / "db")
    yield d
    d.close()


def event(i, country="PL", kind="airspace_violation", occurred="2025-09"):
    return {
        "id": f"6a1f0c2e-0d5b-5c8e-9b1a-{i:012d}",
        "kind": kind,
        "occurred": occurred,
        "countries": [country],
        "actors": [{"name": "Russia", "role": "alleged_perpetrator"}],
        "summary": f"event {i}",
    }
