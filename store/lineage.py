"""Where a job comes from and what became of it: its fork parent, its reproduction.

Both live in tables of their own (`forks`, `reproductions`); the job resource shows them as
``parent`` and ``reproduction``, looked up here for one job or a page of them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store import reproductions
from store.models import Fork

NONE: dict[str, Any] = {"parent": None, "reproduction": None}


def parent_json(fork: Fork) -> dict[str, Any]:
    return {"job_id": fork.parent_job_id, "checkpoint_id": fork.checkpoint_id,
            "epoch": fork.epoch, "optimizer_state": fork.optimizer_state}


def create_fork(s: Session, job_id: str, parent_job_id: str, checkpoint_id: str, epoch: int,
                optimizer_state: str) -> Fork:
    fork = Fork(job_id=job_id, parent_job_id=parent_job_id, checkpoint_id=checkpoint_id,
                epoch=epoch, optimizer_state=optimizer_state)
    s.add(fork)
    s.flush()
    return fork


def fork_of(s: Session, job_id: str) -> Fork | None:
    return s.get(Fork, job_id)


def links(s: Session, job_id: str) -> dict[str, Any]:
    """``{"parent", "reproduction"}`` of one job (each None when it has none)."""
    fork = s.get(Fork, job_id)
    return {"parent": None if fork is None else parent_json(fork),
            "reproduction": reproductions.for_job(s, job_id)}


def links_of_page(s: Session, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """`links` of a page of jobs in two queries; jobs with neither are left out."""
    out: dict[str, dict[str, Any]] = {}
    if not job_ids:
        return out
    for fork in s.scalars(sa.select(Fork).where(Fork.job_id.in_(job_ids))):
        out.setdefault(fork.job_id, dict(NONE))["parent"] = parent_json(fork)
    for job_id, link in reproductions.for_jobs(s, job_ids).items():
        out.setdefault(job_id, dict(NONE))["reproduction"] = link
    return out
