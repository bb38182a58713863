"""The per-job event log behind Server-Sent Events; `seq` is the SSE id (Last-Event-ID)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.errors import NotFound
from store.models import Job, JobEvent


def append(s: Session, job_id: str, type: str, data: dict[str, Any]) -> JobEvent:
    """Add an event with the job's next sequence number (1, 2, ...).

    The number comes from ``UPDATE jobs SET event_seq = event_seq + 1 ... RETURNING``: the row
    lock serialises writers, so numbers are gap-free and never reused, on both databases.
    """
    seq = s.execute(
        sa.update(Job)
        .where(Job.id == job_id)
        .values(event_seq=Job.event_seq + 1)
        .returning(Job.event_seq)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if seq is None:
        raise NotFound(f"job {job_id} does not exist")
    event = JobEvent(job_id=job_id, seq=int(seq), type=type, data=dict(data))
    s.add(event)
    s.flush()
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
