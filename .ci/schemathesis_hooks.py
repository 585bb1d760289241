"""Schemathesis hooks for .ci/schemathesis.sh: drop generated requests
whose parameters break a rule between parameters, which OpenAPI cannot
state, so that the positive checks test what the schema can promise.

- `from` after `to` is refused (400: the range is inverted);
- a `cursor` belongs to the page and filters it came with: one made up
  (any other) is refused (400). Paging is tested in tests/serve.rs;
- a branch is not merged into itself (400).
"""

import re

import schemathesis

_DATE = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


def _start(text):
    m = _DATE.match(text) if isinstance(text, str) else None
    if not m:
        return None
    y, mo, d = m.group(1), m.group(2) or "01", m.group(3) or "01"
    return (int(y), int(mo), int(d))


def _end(text):
    m = _DATE.match(text) if isinstance(text, str) else None
    if not m:
        return None
    y, mo, d = m.group(1), m.group(2) or "12", m.group(3) or "31"
    return (int(y), int(mo), int(d))


@schemathesis.hook
def filter_case(ctx, case):
    query = case.query if isinstance(case.query, dict) else {}
    if "cursor" in query:
        return False
    f, t = _start(query.get("from")), _end(query.get("to"))
    if f and t and t < f:
        return False
    path = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    name = path.get("name")
    return not (name is not None and query.get("into") == name)
