"""The worker's side of a job: the lease (claim, heartbeat, finish, release) and reconcile.

Every state change is one UPDATE ... WHERE <the state we expect> RETURNING, so two workers
racing for the same job can never both win: the database decides, on SQLite (>= 3.35, for
RETURNING) and PostgreSQL alike. Each claim adds a job_leases row, the record that proves no
job ran twice at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.columns import UTCDateTime, utcnow
from store.models import Job, JobLease


@dataclass(frozen=True)
class HeartbeatResult:
    """What a heartbeat learned: does the worker still hold the lease, is a cancel pending."""

    lease_held: bool
    cancel_requested: bool

    def __bool__(self) -> bool:
        """True means carry on training."""
        return self.lease_held and not self.cancel_requested


def _claimable(now: datetime, lease_timeout_s: float) -> sa.ColumnElement[bool]:
    stale = now - timedelta(seconds=lease_timeout_s)
    return sa.or_(
        Job.status == "queued",
        sa.and_(Job.status == "running", Job.heartbeat_at < stale),
    )


def _close_leases(s: Session, job_id: str, now: datetime, outcome: str,
                  worker_id: str | None = None) -> None:
    """Close the job's open lease rows (only `worker_id`'s when given) with `outcome`."""
    where = [JobLease.job_id == job_id, JobLease.released_at.is_(None)]
    if worker_id is not None:
        where.append(JobLease.worker_id == worker_id)
    s.execute(
        sa.update(JobLease).where(*where).values(released_at=now, outcome=outcome)
        .execution_options(synchronize_session=False)
    )


def claim_job(
    s: Session,
    job_id: str,
    worker_id: str,
    lease_timeout_s: float = 60.0,
    *,
    now: datetime | None = None,
) -> Job | None:
    """Take the job's lease if it is queued, or running with a heartbeat older than the timeout.

    One UPDATE: attempts + 1, lease_owner = `worker_id`, heartbeat_at = started_at (first
    time) = `now`. Returns the refreshed job, or None when someone else holds it. (The worker
    fails a job past `settings.max_attempts` after claiming it, with its last error.)
    """
    now = now or utcnow()
    claimed = s.execute(
        sa.update(Job)
        .where(Job.id == job_id, _claimable(now, lease_timeout_s))
        .values(
            status="running",
            attempts=Job.attempts + 1,
            lease_owner=worker_id,
            heartbeat_at=now,
            started_at=sa.func.coalesce(Job.started_at, sa.literal(now, UTCDateTime())),
        )
        .returning(Job.attempts)
        .execution_options(synchronize_session=False)
    ).first()
    if claimed is None:
        return None
    # A previous holder that stopped beating lost its lease: say so in its row.
    _close_leases(s, job_id, now, "lost")
    s.add(JobLease(job_id=job_id, attempt=int(claimed.attempts), worker_id=worker_id,
                   claimed_at=now))
    s.flush()
    return s.get(Job, job_id, populate_existing=True)


def heartbeat(s: Session, job_id: str, worker_id: str,
              now: datetime | None = None) -> HeartbeatResult:
    """Renew the lease if `worker_id` still holds it, and read the cancel flag, in one UPDATE."""
    row = s.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == "running")
        .values(heartbeat_at=now or utcnow())
        .returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return HeartbeatResult(lease_held=False, cancel_requested=False)
    return HeartbeatResult(lease_held=True, cancel_requested=bool(row.cancel_requested))


def finish(
    s: Session,
    job_id: str,
    worker_id: str,
    status: str,
    stop_reason: str | None = None,
    failure_reason: str | None = None,
    *,
    now: datetime | None = None,
) -> bool:
    """End the run as `status` (succeeded, failed, cancelled) if `worker_id` holds the lease.

    False means the lease was lost: another worker owns the job and this one must not write.
    """
    now = now or utcnow()
    row = s.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == "running")
        .values(status=status, stop_reason=stop_reason, failure_reason=failure_reason,
                finished_at=now, lease_owner=None)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return False
    _close_leases(s, job_id, now, status, worker_id)
    return True


def release(s: Session, job_id: str, worker_id: str, failure_reason: str | None = None,
            *, now: datetime | None = None) -> bool:
    """Give a held job back to the queue (a retryable error); the error is kept as the reason."""
    now = now or utcnow()
    row = s.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == "running")
        .values(status="queued", lease_owner=None, heartbeat_at=None, queued_at=now,
                failure_reason=failure_reason)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return False
    _close_leases(s, job_id, now, "released", worker_id)
    return True


def update_progress(s: Session, job_id: str, epoch: int, latest: dict[str, Any],
                    best: dict[str, Any] | None = None) -> None:
    """Record the epoch reached and its metrics; `best` (with its "epoch") when it improved."""
    values: dict[str, Any] = {"epoch_done": epoch, "latest": dict(latest)}
    if best is not None:
        values["best"] = dict(best)
    s.execute(
        sa.update(Job).where(Job.id == job_id).values(**values)
        .execution_options(synchronize_session=False)
    )


def stale_or_lost(
    s: Session,
    now: datetime | None = None,
    lease_timeout_s: float = 60.0,
    queued_grace_s: float = 60.0,
) -> list[str]:
    """Ids of jobs whose message may be lost: queued longer than the grace, or a stale lease."""
    now = now or utcnow()
    query = sa.select(Job.id).where(
        sa.or_(
            sa.and_(Job.status == "queued",
                    Job.queued_at < now - timedelta(seconds=queued_grace_s)),
            sa.and_(Job.status == "running",
                    Job.heartbeat_at < now - timedelta(seconds=lease_timeout_s)),
        )
    ).order_by(Job.id)
    return list(s.scalars(query))
