"""Batch predictions: the row's lease, progress and result chunks.

The invariant: every row of the dataset is scored exactly once, whatever crashes. A chunk is
written in the same transaction as the UPDATE that advances ``rows_done``, and that UPDATE
names the lease owner and the rows done it expects; the chunk's primary key (batch_id,
chunk_index) refuses a second copy. A worker that lost its lease writes nothing, and a worker
that takes a stale batch over resumes at the first missing chunk (``rows_done // chunk_rows``).
As in store/claims.py, each state change is one conditional UPDATE ... RETURNING.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.columns import UTCDateTime, utcnow
from store.models import BatchChunk, BatchPrediction
from store.resources import isoformat
from store.statuses import TERMINAL_STATUSES

FORMATS = ("csv", "npy")
TERMINAL = TERMINAL_STATUSES
DEFAULT_CHUNK_ROWS = 4096
MAX_LISTED_ERRORS = 100  # the row keeps the first ones; error_count counts them all


@dataclass(frozen=True)
class RowError:
    """A row that could not be scored: its index in the dataset and why."""

    row: int
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "message": self.message}


def create(s: Session, tenant_id: str, *, checkpoint_id: str, dataset_id: str, result_format: str,
           rows_total: int, loss: str | None = None,
           chunk_rows: int = DEFAULT_CHUNK_ROWS) -> BatchPrediction:
    if result_format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    row = BatchPrediction(tenant_id=tenant_id, checkpoint_id=checkpoint_id,
                          dataset_id=dataset_id, loss=loss, format=result_format, status="queued",
                          rows_total=rows_total, rows_done=0, chunk_rows=chunk_rows,
                          error_count=0, errors=[], cancel_requested=False, attempts=0)
    s.add(row)
    s.flush()
    return row


def get(s: Session, tenant_id: str, batch_id: str) -> BatchPrediction | None:
    """The tenant's batch (another tenant's id is None, as a missing one)."""
    row = s.get(BatchPrediction, batch_id, populate_existing=True)
    return row if row is not None and row.tenant_id == tenant_id else None


def _claimable(now: datetime, lease_timeout_s: float) -> sa.ColumnElement[bool]:
    stale = now - timedelta(seconds=lease_timeout_s)
    return sa.or_(BatchPrediction.status == "queued",
                  sa.and_(BatchPrediction.status == "running",
                          BatchPrediction.heartbeat_at < stale))


def claim(s: Session, batch_id: str, worker_id: str, lease_timeout_s: float = 60.0, *,
          max_attempts: int | None = None, now: datetime | None = None,
          ) -> BatchPrediction | None:
    """Take the batch if it is queued or its holder stopped beating (and, with
    ``max_attempts``, has claims left); None if someone else has it."""
    now = now or utcnow()
    conditions = [BatchPrediction.id == batch_id, _claimable(now, lease_timeout_s)]
    if max_attempts is not None:
        conditions.append(BatchPrediction.attempts < max_attempts)
    row = s.execute(
        sa.update(BatchPrediction)
        .where(*conditions)
        .values(status="running", attempts=BatchPrediction.attempts + 1,
                lease_owner=worker_id, heartbeat_at=now,
                started_at=sa.func.coalesce(BatchPrediction.started_at,
                                            sa.literal(now, UTCDateTime())))
        .returning(BatchPrediction.id)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return None
    return s.get(BatchPrediction, batch_id, populate_existing=True)


def heartbeat(s: Session, batch_id: str, worker_id: str, *,
              now: datetime | None = None) -> bool | None:
    """Renew the lease and read the cancel flag: None if the lease is lost, else the flag."""
    row = s.execute(
        sa.update(BatchPrediction)
        .where(BatchPrediction.id == batch_id, BatchPrediction.lease_owner == worker_id,
               BatchPrediction.status == "running")
        .values(heartbeat_at=now or utcnow())
        .returning(BatchPrediction.cancel_requested)
        .execution_options(synchronize_session=False)
    ).first()
    return None if row is None else bool(row.cancel_requested)


def write_chunk(s: Session, batch: BatchPrediction, worker_id: str, chunk_index: int,
                outputs: bytes | memoryview, rows: int, errors: list[RowError]) -> bool | None:
    """Store one chunk and advance ``rows_done`` by ``rows``, if the lease is still ours.

    Call inside the transaction that should hold both. ``outputs`` may be a view of the
    caller's buffer (no copy is made): it is written before this returns. The same UPDATE
    beats the heartbeat and reads the cancel flag, which it returns; None (nothing written)
    when the lease was lost or the chunk is not the next one. The error list grows to
    MAX_LISTED_ERRORS.
    """
    expected_done = chunk_index * batch.chunk_rows
    listed = list(batch.errors or [])
    room = max(MAX_LISTED_ERRORS - len(listed), 0)
    listed += [e.to_json() for e in errors[:room]]
    now = utcnow()
    values: dict[str, Any] = {"rows_done": expected_done + rows, "heartbeat_at": now}
    if errors:  # the list is rewritten only when it grows
        values.update(error_count=BatchPrediction.error_count + len(errors), errors=listed)
    advanced = s.execute(
        sa.update(BatchPrediction)
        .where(BatchPrediction.id == batch.id, BatchPrediction.lease_owner == worker_id,
               BatchPrediction.status == "running",
               BatchPrediction.rows_done == expected_done)
        .values(**values)
        .returning(BatchPrediction.cancel_requested)
        .execution_options(synchronize_session=False)
    ).first()
    if advanced is None:
        return None
    # A Core INSERT: no ORM object to track for a row that is never read back here.
    s.execute(sa.insert(BatchChunk).values(batch_id=batch.id, chunk_index=chunk_index,
                                           rows=rows, data=outputs))
    batch.errors = listed
    return bool(advanced.cancel_requested)


def finish(s: Session, batch_id: str, worker_id: str, status: str,
           failure_reason: str | None = None, *, now: datetime | None = None) -> bool:
    """End a held batch as ``status``; False if the lease was lost (nothing written)."""
    row = s.execute(
        sa.update(BatchPrediction)
        .where(BatchPrediction.id == batch_id, BatchPrediction.lease_owner == worker_id,
               BatchPrediction.status == "running")
        .values(status=status, failure_reason=failure_reason, finished_at=now or utcnow(),
                lease_owner=None)
        .returning(BatchPrediction.id)
        .execution_options(synchronize_session=False)
    ).first()
    return row is not None


def request_cancel(s: Session, tenant_id: str, batch_id: str) -> BatchPrediction | None:
    """Cancel a queued batch at once, or flag a running one for its worker; None if not ours.

    A terminal batch is returned unchanged.
    """
    now = utcnow()
    s.execute(
        sa.update(BatchPrediction)
        .where(BatchPrediction.id == batch_id, BatchPrediction.tenant_id == tenant_id,
               BatchPrediction.status == "queued")
        .values(status="cancelled", cancel_requested=True, finished_at=now)
        .execution_options(synchronize_session=False))
    s.execute(
        sa.update(BatchPrediction)
        .where(BatchPrediction.id == batch_id, BatchPrediction.tenant_id == tenant_id,
               BatchPrediction.status == "running")
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False))
    return get(s, tenant_id, batch_id)


def chunks(s: Session, batch_id: str) -> Iterator[tuple[int, bytes]]:
    """(rows, outputs) of each stored chunk in order, one chunk read at a time."""
    indexes = list(s.scalars(sa.select(BatchChunk.chunk_index)
                             .where(BatchChunk.batch_id == batch_id)
                             .order_by(BatchChunk.chunk_index)))
    for index in indexes:
        rows, data = s.execute(sa.select(BatchChunk.rows, BatchChunk.data)
                               .where(BatchChunk.batch_id == batch_id,
                                      BatchChunk.chunk_index == index)).one()
        yield int(rows), bytes(data)


def stale(s: Session, *, lease_timeout_s: float, queued_grace_s: float,
          now: datetime | None = None) -> list[str]:
    """Batches whose message may be lost: queued past the grace, or a silent holder."""
    now = now or utcnow()
    return list(s.scalars(sa.select(BatchPrediction.id).where(sa.or_(
        sa.and_(BatchPrediction.status == "queued",
                BatchPrediction.queued_at < now - timedelta(seconds=queued_grace_s)),
        sa.and_(BatchPrediction.status == "running",
                BatchPrediction.heartbeat_at < now - timedelta(seconds=lease_timeout_s)),
    )).order_by(BatchPrediction.id)))


def release(s: Session, batch_id: str, worker_id: str, reason: str) -> int | None:
    """Give a held batch back to the queue after an error; its attempts so far, or None if
    the lease was not ours. The chunks already written stay: the next claim resumes after them.
    """
    row = s.execute(
        sa.update(BatchPrediction)
        .where(BatchPrediction.id == batch_id, BatchPrediction.lease_owner == worker_id,
               BatchPrediction.status == "running")
        .values(status="queued", lease_owner=None, heartbeat_at=None, queued_at=utcnow(),
                failure_reason=reason)
        .returning(BatchPrediction.attempts)
        .execution_options(synchronize_session=False)
    ).first()
    return None if row is None else int(row.attempts)


def fail_exhausted(s: Session, batch_id: str, max_attempts: int, lease_timeout_s: float) -> bool:
    """Fail a claimable batch that used its ``max_attempts`` claims, keeping the last error."""
    now = utcnow()
    row = s.execute(
        sa.update(BatchPrediction)
        .where(BatchPrediction.id == batch_id, BatchPrediction.attempts >= max_attempts,
               _claimable(now, lease_timeout_s))
        .values(status="failed", finished_at=now, lease_owner=None,
                failure_reason=sa.func.coalesce(
                    sa.literal(f"gave up after {max_attempts} attempts; last error: ")
                    + BatchPrediction.failure_reason,
                    sa.literal(f"gave up after {max_attempts} attempts")))
        .returning(BatchPrediction.id)
        .execution_options(synchronize_session=False)
    ).first()
    return row is not None


def batch_prediction_json(row: BatchPrediction) -> dict[str, Any]:
    """The batch as the API shows it and as its webhook event carries it."""
    return {
        "id": row.id,
        "status": row.status,
        "checkpoint_id": row.checkpoint_id,
        "dataset_id": row.dataset_id,
        "format": row.format,
        "rows_total": int(row.rows_total),
        "rows_done": int(row.rows_done),
        "error_count": int(row.error_count),
        "errors": list(row.errors or []),
        "errors_listed_max": MAX_LISTED_ERRORS,
        "failure_reason": row.failure_reason,
        "attempts": int(row.attempts),
        "created_at": isoformat(row.created_at),
        "started_at": isoformat(row.started_at),
        "finished_at": isoformat(row.finished_at),
    }
