"""The record of who held each job's lease, and when: the proof no job ran twice at once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.columns import utcnow
from store.models import JobLease


def history(s: Session, job_id: str) -> list[JobLease]:
    """The job's claims in the order they happened."""
    return list(
        s.scalars(sa.select(JobLease).where(JobLease.job_id == job_id).order_by(JobLease.id))
    )


def overlaps(s: Session, job_id: str, now: datetime | None = None) -> list[tuple[int, int]]:
    """Pairs of lease ids whose [claimed_at, released_at) intervals overlap (should be none).

    A lease that is still open counts as running until `now`.
    """
    now = now or utcnow()
    rows = history(s, job_id)
    spans = [(r.id, r.claimed_at, r.released_at or now) for r in rows]
    return [
        (a_id, b_id)
        for i, (a_id, a_start, a_end) in enumerate(spans)
        for b_id, b_start, b_end in spans[i + 1:]
        if a_start < b_end and b_start < a_end
    ]


def record_environment(s: Session, job_id: str, worker_id: str,
                       environment: dict[str, Any]) -> None:
    """What the holder's open lease runs on (versions, host, BLAS): the manifest's source."""
    s.execute(sa.update(JobLease)
              .where(JobLease.job_id == job_id, JobLease.worker_id == worker_id,
                     JobLease.released_at.is_(None))
              .values(environment=environment)
              .execution_options(synchronize_session=False))


def last_environment(s: Session, job_id: str) -> dict[str, Any] | None:
    """The environment of the job's latest claim (the run that produced its final weights)."""
    return s.scalar(sa.select(JobLease.environment).where(JobLease.job_id == job_id)
                    .order_by(JobLease.id.desc()).limit(1))
