"""Which job reproduces which, and the verdict once the reproduction has run."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.models import Reproduction

VERDICT = ("identical", "first_divergent_epoch", "epochs_compared", "checkpoints_compared")


def create(s: Session, job_id: str, of_job_id: str) -> Reproduction:
    row = Reproduction(job_id=job_id, of_job_id=of_job_id)
    s.add(row)
    s.flush()
    return row


def of(s: Session, job_id: str) -> Reproduction | None:
    """The row that makes ``job_id`` a reproduction (None for an ordinary job)."""
    return s.get(Reproduction, job_id)


def record_verdict(s: Session, job_id: str, verdict: dict[str, Any]) -> None:
    s.execute(sa.update(Reproduction).where(Reproduction.job_id == job_id)
              .values(**{k: verdict[k] for k in VERDICT}))


def for_jobs(s: Session, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """`for_job` of many jobs in one query (a page of the job list): only those that have one."""
    if not job_ids:
        return {}
    rows = s.scalars(sa.select(Reproduction).where(
        sa.or_(Reproduction.job_id.in_(job_ids), Reproduction.of_job_id.in_(job_ids)))
        .order_by(Reproduction.created_at, Reproduction.job_id))
    wanted = set(job_ids)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:  # oldest first: a later reproduction of the same job replaces its "by"
        verdict = {k: getattr(row, k) for k in VERDICT}
        if row.job_id in wanted:
            out[row.job_id] = {"of": row.of_job_id, **verdict}
        if row.of_job_id in wanted and not (row.of_job_id in out
                                            and "of" in out[row.of_job_id]):
            out[row.of_job_id] = {"by": row.job_id, **verdict}
    return out


def for_job(s: Session, job_id: str) -> dict[str, Any] | None:
    """``{"of": id, ...verdict}`` for a reproduction, ``{"by": id, ...}`` for a reproduced job
    (its newest reproduction), else None. The verdict is null until the reproduction ends."""
    row = s.get(Reproduction, job_id)
    key = "of"
    if row is None:
        row = s.scalar(sa.select(Reproduction).where(Reproduction.of_job_id == job_id)
                       .order_by(Reproduction.created_at.desc(), Reproduction.job_id.desc())
                       .limit(1))
        key = "by"
    if row is None:
        return None
    other = row.of_job_id if key == "of" else row.job_id
    return {key: other, **{k: getattr(row, k) for k in VERDICT}}
