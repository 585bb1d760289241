"""Schemathesis hooks for .ci/schemathesis.sh: drop generated requests
whose parameters break a rule between parameters, which OpenAPI cannot
state, so that the positive checks test what the schema can promise.

- `from` after `to` is refused (400: the range is inverted);
- a `cursor` belongs to the page and filters it came with: one made up
  (any other) is refused (400). Paging is tested in tests/serve.rs;
- a branch is not merged into itself (400);
- the views' paging: on `/views/by-country`, `actors` needs a `country`
  and `after`/`limit` need `actors=true`; on `/views/by-actor`, one
  `actor` is not paged (`after`/`limit` go without it). Each misuse is
  refused (400), tested in tests/serve.rs.
- the spatial filters: one area at a time (bbox, near, or the body of
  `POST /events/area`), `near` with `radius_km` and back, `place` only
  with an area, a box's south at most its north. Each misuse is refused
  (400), tested in tests/places.rs.
"""

import re

import schemathesis

_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


def _bound(text, month, day):
    """(year, month, day) of a date, its missing parts filled in."""
    m = _DATE.match(text) if isinstance(text, str) else None
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2) or month), int(m.group(3) or day))


def _true(v):
    return v is True or (isinstance(v, str) and v == "true")


def _views_paging_ok(path, query):
    paged = "after" in query or "limit" in query
    if path == "/views/by-country":
        actors = _true(query.get("actors"))
        if actors and "country" not in query:
            return False
        return actors or not paged
    if path == "/views/by-actor":
        return not ("actor" in query and paged)
    return True


def _spatial_ok(path, query):
    areas = ("bbox" in query) + ("near" in query) + (path == "/events/area")
    if areas > 1:
        return False
    if ("near" in query) != ("radius_km" in query):
        return False
    if "place" in query and areas == 0:
        return False
    bbox = query.get("bbox")
    if isinstance(bbox, str):
        try:
            _, south, _, north = (float(x) for x in bbox.split(","))
        except ValueError:
            return True
        if south > north:
            return False
    return True


@schemathesis.hook
def filter_case(ctx, case):
    query = case.query if isinstance(case.query, dict) else {}
    op_path = getattr(getattr(case, "operation", None), "path", "")
    if not _views_paging_ok(op_path, query):
        return False
    if not _spatial_ok(op_path, query):
        return False
    if "cursor" in query:
        return False
    f, t = _bound(query.get("from"), 1, 1), _bound(query.get("to"), 12, 31)
    if f and t and t < f:
        return False
    path = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    name = path.get("name")
    return not (name is not None and query.get("into") == name)
