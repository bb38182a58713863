"""Deleting a finished job or a checkpoint, the way a tenant frees storage (issue 19).

The rule: nothing a queued or running job needs may go. A job is deleted only once finished
(with it go its checkpoints, metrics, events and leases: foreign keys cascade, and a trigger
deletes each checkpoint's parts). A checkpoint is deleted unless its job is queued or running
(its resume point) or a queued or running job of the tenant starts from it (a fork of it, or
``init_checkpoint``: a retry loads it again). A checkpoint a registered model version serves
(store/registry.py) stays too, and so does the job that made one. The status test is part of
the DELETE itself, so a resume racing the deletion either comes first (409) or finds nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store import registry
from store.errors import Conflict, NotFound
from store.models import Checkpoint, Fork, Job
from store.statuses import ACTIVE_STATUSES, TERMINAL_STATUSES


def _warm_starting(s: Session, tenant_id: str, checkpoint_ids: set[str]) -> str | None:
    """An active job of the tenant that starts from one of `checkpoint_ids`: a fork of it,
    or a job whose spec names it as init_checkpoint.

    The spec is read in Python: a tenant has at most max_concurrent_jobs active jobs, and
    JSON paths are spelled differently by each database.
    """
    if not checkpoint_ids:
        return None
    forked = s.scalar(sa.select(Fork.job_id).join(Job, Job.id == Fork.job_id).where(
        Fork.checkpoint_id.in_(sorted(checkpoint_ids)), Job.tenant_id == tenant_id,
        Job.status.in_(ACTIVE_STATUSES)).limit(1))
    if forked is not None:
        return str(forked)
    rows = s.execute(sa.select(Job.id, Job.spec).where(
        Job.tenant_id == tenant_id, Job.status.in_(ACTIVE_STATUSES)))
    for job_id, spec in rows:
        if isinstance(spec, dict) and spec.get("init_checkpoint") in checkpoint_ids:
            return str(job_id)
    return None


def delete_job(s: Session, tenant_id: str, job_id: str) -> None:
    """Delete a finished job with its checkpoints, metrics and events.

    Raises NotFound (no such job of the tenant) or Conflict (queued or running, or one of
    its checkpoints warm-starts an active job).
    """
    status = s.scalar(sa.select(Job.status).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if status is None:
        raise NotFound(job_id)
    own = set(s.scalars(sa.select(Checkpoint.id).where(Checkpoint.job_id == job_id)))
    held = registry.versions_holding(s, job_id=job_id)
    if held or registry.held_checkpoints(s, sorted(own)):
        raise Conflict(f"job {job_id} made the registered model version(s) "
                       f"{', '.join(held) or 'of its checkpoints'}, which keep their weights")
    user = _warm_starting(s, tenant_id, own)
    if user is not None:
        raise Conflict(f"job {user} starts from a checkpoint of job {job_id}; delete it after "
                       f"that job has finished")
    deleted = s.execute(sa.delete(Job).where(
        Job.id == job_id, Job.tenant_id == tenant_id, Job.status.in_(TERMINAL_STATUSES)))
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"job {job_id} is {status}; only a finished job can be deleted "
                       "(cancel it first)")


def delete_checkpoint(s: Session, tenant_id: str, checkpoint_id: str) -> None:
    """Delete one checkpoint (trained or imported) unless an active job needs it.

    Raises NotFound or Conflict, as :func:`delete_job`.
    """
    job_id = s.scalar(sa.select(Checkpoint.job_id).where(
        Checkpoint.id == checkpoint_id, Checkpoint.tenant_id == tenant_id))
    exists = job_id is not None or s.scalar(sa.select(sa.literal(1)).where(
        Checkpoint.id == checkpoint_id, Checkpoint.tenant_id == tenant_id))
    if not exists:
        raise NotFound(checkpoint_id)
    if registry.held_checkpoints(s, [checkpoint_id]):
        raise Conflict(f"checkpoint {checkpoint_id} is a registered model version's weights")
    user = _warm_starting(s, tenant_id, {checkpoint_id})
    if user is not None:
        raise Conflict(f"job {user} starts from checkpoint {checkpoint_id}; delete it after "
                       "that job has finished")
    finished = sa.or_(Checkpoint.job_id.is_(None), Checkpoint.job_id.in_(
        sa.select(Job.id).where(Job.status.in_(TERMINAL_STATUSES))))
    deleted = s.execute(sa.delete(Checkpoint).where(
        Checkpoint.id == checkpoint_id, Checkpoint.tenant_id == tenant_id, finished))
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise Conflict(f"checkpoint {checkpoint_id} belongs to job {job_id}, which is queued "
                       "or running and may resume from it")
