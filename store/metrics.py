"""Per-epoch metrics, one row per (job, epoch, name), upserted so a re-run epoch overwrites."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from store.models import Metric

METRICS = cast(sa.Table, Metric.__table__)


def upsert_epochs(s: Session, job_id: str,
                  rows: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
    """Write several epochs' values (``(epoch, {name: number})`` pairs) in one statement.

    Existing (job, epoch, name) rows change, so a re-run epoch overwrites. Values that are not
    numbers (None, strings, bools) are skipped; NaN and inf are stored as NULL and read back as
    None (a diverged epoch still shows which metrics it had). A Core INSERT ... ON CONFLICT DO
    UPDATE: on SQLite an executemany (sqlite3 runs it in C); on PostgreSQL one statement
    over arrays (below).
    """
    params = [
        {"job_id": job_id, "epoch": int(epoch), "name": str(name),
         "value": float(value) if math.isfinite(value) else None}
        for epoch, values in rows
        for name, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    if not params:
        return
    if s.get_bind().dialect.name == "postgresql":
        rows_json = json.dumps([[p["epoch"], p["name"], p["value"]] for p in params])
        s.execute(_PG_UPSERT_FROM_JSON, {"job_id": job_id, "rows": rows_json})
        return
    insert = sqlite.insert(METRICS)
    s.execute(insert.on_conflict_do_update(index_elements=["job_id", "epoch", "name"],
                                           set_={"value": insert.excluded.value}), params)


# PostgreSQL: all rows in one statement with one JSON parameter, [[epoch, name, value], ...].
# An executemany costs psycopg ~30 us of Python per row (a second's worth of tiny epochs is
# ~500 rows), on the worker's commit thread, whose every network wait is a GIL hand-off with
# the training loop; a JSON document is encoded in C, and parsed in the server (a float's
# shortest repr reads back as the same double). Rows of one call are distinct (job, epoch,
# name), as ON CONFLICT DO UPDATE requires.
_PG_UPSERT_FROM_JSON = sa.text(
    "INSERT INTO metrics (job_id, epoch, name, value)"
    " SELECT :job_id, CAST(r->>0 AS integer), r->>1, CAST(r->>2 AS double precision)"
    " FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r"
    " ON CONFLICT (job_id, epoch, name) DO UPDATE SET value = excluded.value"
)


def upsert_epoch(s: Session, job_id: str, epoch: int, values: dict[str, Any]) -> None:
    """Write `values` ({name: number}) for one epoch: `upsert_epochs` of one."""
    upsert_epochs(s, job_id, [(epoch, values)])


def history(s: Session, job_id: str, after_epoch: int = 0,
            limit: int = 1000) -> list[dict[str, Any]]:
    """Epochs after `after_epoch`, oldest first, at most `limit`: [{"epoch": 1, "loss": ...}].

    A non-finite value reads as None.
    """
    epochs = (
        sa.select(Metric.epoch)
        .where(Metric.job_id == job_id, Metric.epoch > after_epoch)
        .group_by(Metric.epoch)
        .order_by(Metric.epoch)
        .limit(max(1, int(limit)))
        .subquery()
    )
    rows = s.execute(
        sa.select(Metric.epoch, Metric.name, Metric.value)
        .where(Metric.job_id == job_id, Metric.epoch.in_(sa.select(epochs.c.epoch)))
        .order_by(Metric.epoch, Metric.name)
    )
    items: dict[int, dict[str, Any]] = {}
    for epoch, name, value in rows:
        items.setdefault(epoch, {"epoch": epoch})[name] = value
    return list(items.values())


def epochs_recorded(s: Session, job_id: str) -> int:
    """How many distinct epochs have metrics (a resumed job must not count one twice)."""
    return int(
        s.scalar(sa.select(sa.func.count(sa.distinct(Metric.epoch))).where(Metric.job_id == job_id))
        or 0
    )


# Name the service uses.
