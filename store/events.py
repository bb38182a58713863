"""The per-job event log behind Server-Sent Events; `seq` is the SSE id (Last-Event-ID)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, make_transient_to_detached

from store.columns import UTCDateTime, utcnow
from store.db import dumps_json
from store.errors import NotFound
from store.models import Job, JobEvent

EVENTS = cast(sa.Table, JobEvent.__table__)


def append_many(s: Session, job_id: str, items: Iterable[tuple[str, Mapping[str, Any]]], *,
                now: datetime | None = None,
                times: Sequence[datetime] | None = None) -> list[int]:
    """Add events (``(type, data)`` pairs, in order) with the job's next sequence numbers.

    The numbers come from one ``UPDATE jobs SET event_seq = event_seq + n ... RETURNING``: the
    row lock serialises writers, so numbers are gap-free and never reused, on both databases.
    The rows go in as one statement (an executemany of a Core INSERT on SQLite, one INSERT ...
    SELECT over a JSON document on PostgreSQL), which is what lets the worker record a burst
    of short epochs cheaply. Returns the numbers given.

    Each event is stamped `now` (default: the current time), or with its own entry of `times`
    when given: the worker commits a second's epochs together and stamps each with the moment
    that epoch ended, not the moment it was written.
    """
    batch = list(items)
    if not batch:
        return []
    if times is not None and len(times) != len(batch):  # before the counter moves
        raise ValueError(f"{len(times)} times for {len(batch)} events")
    last = s.execute(
        sa.update(Job)
        .where(Job.id == job_id)
        .values(event_seq=Job.event_seq + len(batch))
        .returning(Job.event_seq)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if last is None:
        raise NotFound(f"job {job_id} does not exist")
    first = int(last) - len(batch) + 1
    insert_numbered(s, job_id, first, batch, (now or utcnow()) if times is None else times)
    return list(range(first, first + len(batch)))


def insert_numbered(s: Session, job_id: str, first: int,
                    batch: Sequence[tuple[str, Mapping[str, Any]]],
                    created_at: datetime | Sequence[datetime]) -> None:
    """Write events numbered ``first, first + 1, ...`` whose numbers the caller already owns.

    Either `append_many` took them from the job's counter, or the job is being created in this
    transaction with ``event_seq`` already at its last number (store.jobs.create_job).
    `created_at` is one time for all, or one per event.
    """
    stamps = [created_at] * len(batch) if isinstance(created_at, datetime) else created_at
    dialect = s.get_bind().dialect
    if len(batch) > 1 and dialect.name == "postgresql":
        s.execute(_PG_INSERT_FROM_JSON, {"job_id": job_id, "first": first, "events": dumps_json([
            {"type": type, "data": dict(data), "at": _utc_iso(stamp, dialect)}
            for (type, data), stamp in zip(batch, stamps, strict=True)])})
        return
    s.execute(sa.insert(EVENTS), [
        {"job_id": job_id, "seq": first + i, "type": type, "data": dict(data),
         "created_at": stamp}
        for i, ((type, data), stamp) in enumerate(zip(batch, stamps, strict=True))
    ])


def _utc_iso(stamp: datetime, dialect: sa.Dialect) -> str:
    """`stamp` as created_at's own type binds it (aware, in UTC), as ISO 8601 text."""
    utc = UTCDateTime().process_bind_param(stamp, dialect)
    assert utc is not None
    return utc.isoformat()


# PostgreSQL: a batch (a second of a small model's epochs) in one statement with one JSON
# parameter. psycopg's executemany costs ~30 us of Python per row, and its text-format
# arrays escape every string element with a regex; one JSON document is encoded in C.
_PG_INSERT_FROM_JSON = sa.text(
    "INSERT INTO job_events (job_id, seq, type, data, created_at)"
    " SELECT :job_id, :first + e.i - 1, e.v->>'type', e.v->'data', CAST(e.v->>'at' AS timestamptz)"
    " FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS e(v, i)"
)


def append(s: Session, job_id: str, type: str, data: dict[str, Any], *,
           now: datetime | None = None) -> JobEvent:
    """Add one event with the job's next sequence number (1, 2, ...): `append_many` of one."""
    created_at = now or utcnow()
    [seq] = append_many(s, job_id, [(type, data)], now=created_at)
    # The row is written; hand back its ORM object as a persistent one, without a SELECT.
    event = JobEvent(job_id=job_id, seq=seq, type=type, data=dict(data), created_at=created_at)
    make_transient_to_detached(event)
    s.add(event)
    return event


def after(s: Session, job_id: str, seq: int = 0, limit: int = 100) -> list[JobEvent]:
    """The job's events with a sequence above `seq`, oldest first."""
    return list(
        s.scalars(
            sa.select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.seq > seq)
            .order_by(JobEvent.seq)
            .limit(max(1, int(limit)))
        )
    )


def heads(s: Session | sa.Connection, job_ids: Iterable[str]) -> dict[str, tuple[int, str]]:
    """`{job id: (its last event's seq, its status)}` for those of `job_ids` that exist: what
    a process following many event streams asks once per poll, in one statement (built once:
    building it cost more than running it)."""
    ids = list(job_ids)
    if not ids:
        return {}
    rows = s.execute(_HEADS, {"ids": ids})
    return {str(r.id): (int(r.event_seq), str(r.status)) for r in rows}


_JOBS = cast(sa.Table, Job.__table__)
_HEADS = sa.select(_JOBS.c.id, _JOBS.c.event_seq, _JOBS.c.status).where(
    _JOBS.c.id.in_(sa.bindparam("ids", expanding=True)))
