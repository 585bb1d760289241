"""annals: an embeddable, event-sourced timeline database, from Python.

    import annals
    with annals.open("timeline.db") as db:
        db.append([{"kind": "sabotage", "occurred": "2025-11", "countries": ["PL"]}])
        df = db.query(country="PL", start="2025").to_polars()

Query and view results implement the Arrow PyCapsule stream protocol
(``__arrow_c_stream__``): ``polars.DataFrame(r)``, ``pyarrow.table(r)`` and
``duckdb.sql("select * from r")`` read them without a copy through files.
"""

from ._annals import (
    BadPath,
    Closed,
    Conflict,
    Corruption,
    Database,
    Error,
    Events,
    InUse,
    InvalidInput,
    NotFound,
    Poisoned,
    SeqMismatch,
    StorageError,
    Subscription,
    View,
    excise,
    open,
)

__all__ = [
    "open",
    "excise",
    "Database",
    "Events",
    "View",
    "Subscription",
    "Error",
    "InvalidInput",
    "Conflict",
    "SeqMismatch",
    "NotFound",
    "Corruption",
    "InUse",
    "BadPath",
    "StorageError",
    "Poisoned",
    "Closed",
]
