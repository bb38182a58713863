"""Per-layer diagnostics by epoch (table ``job_diagnostics``) and a job's ``warnings``.

The rows and the warning rule are core.diagnostics'; the store keeps them as given: one row per
(job, epoch) whose ``layers`` is that epoch's list of per-layer dicts, upserted so a re-run
epoch (a retry after a crash) overwrites, and ``jobs.warnings`` as a list, oldest first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from store.models import Job, JobDiagnostics

TABLE = cast(sa.Table, JobDiagnostics.__table__)
Entry = tuple[int, list[dict[str, Any]]]


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None (JSONB refuses NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record(s: Session, job_id: str, entries: Iterable[tuple[int, Sequence[Mapping[str, Any]]]]
           ) -> None:
    """Write several epochs' rows, ``(epoch, [layer dicts])``, in one statement."""
    params = [{"job_id": job_id, "epoch": int(epoch),
               "layers": [{k: _clean(v) for k, v in row.items()} for row in layers]}
              for epoch, layers in entries]
    if not params:
        return
    insert = (postgresql.insert if s.get_bind().dialect.name == "postgresql"
              else sqlite.insert)(TABLE)
    s.execute(insert.on_conflict_do_update(index_elements=["job_id", "epoch"],
                                           set_={"layers": insert.excluded.layers}), params)


def series(s: Session, job_id: str, *, after_epoch: int = 0, before_epoch: int | None = None,
           limit: int | None = None, newest: bool = False) -> list[Entry]:
    """``(epoch, layers)`` oldest first: epochs after ``after_epoch`` (and before
    ``before_epoch``), at most ``limit`` of them, the newest such ones if ``newest``."""
    query = sa.select(JobDiagnostics.epoch, JobDiagnostics.layers).where(
        JobDiagnostics.job_id == job_id, JobDiagnostics.epoch > after_epoch)
    if before_epoch is not None:
        query = query.where(JobDiagnostics.epoch < before_epoch)
    order = JobDiagnostics.epoch.desc() if newest else JobDiagnostics.epoch
    query = query.order_by(order)
    if limit is not None:
        query = query.limit(max(1, int(limit)))
    rows = [(int(epoch), list(layers)) for epoch, layers in s.execute(query)]
    return rows[::-1] if newest else rows


def warnings(s: Session, job_id: str) -> list[dict[str, Any]]:
    """The job's warnings, oldest first ([] when none, or no such job)."""
    return list(s.scalar(sa.select(Job.warnings).where(Job.id == job_id)) or [])


def set_warnings(s: Session, job_id: str, items: Sequence[Mapping[str, Any]]) -> None:
    s.execute(sa.update(Job).where(Job.id == job_id).values(
        warnings=[{k: _clean(v) for k, v in w.items()} for w in items]))
