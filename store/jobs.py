"""Jobs as the API sees them: create (idempotent), read, list, and the rules of cancel and
resume (which statuses allow them, what they change, the status event they announce).

The worker's side (claim, heartbeat, finish, reconcile queries) lives in store/claims.py and
the API's one-round-trip submission in store/submissions.py.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, make_transient_to_detached

from store import events
from store.columns import utcnow
from store.errors import Conflict, InvalidValue, NotFound, QuotaExceeded
from store.models import Job
from store.pages import Page, newest_first
from store.statuses import JOB_STATUSES, RESUMABLE_STATUSES, TERMINAL_STATUSES, status_event
from store.submissions import job_row, submit_check

JOBS = cast(sa.Table, Job.__table__)


def find_by_idempotency_key(s: Session, tenant_id: str, key: str) -> Job | None:
    return s.scalars(
        sa.select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    ).one_or_none()


def job_id_for_key(s: Session, tenant_id: str, key: str) -> str | None:
    """The id of the tenant's job made with this idempotency key, or None."""
    return submit_check(s, tenant_id, key, cap=0).existing_id


def count_active_up_to(s: Session, tenant_id: str, cap: int) -> int:
    """The tenant's queued and running jobs, counted up to `cap` (the concurrency quota)."""
    return submit_check(s, tenant_id, None, cap).active


def create_job(
    s: Session,
    tenant_id: str,
    spec: dict[str, Any],
    dataset_id: str | None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    *,
    name: str | None = None,
    epochs_total: int | None = None,
    first_event: tuple[str, Mapping[str, Any]] | None = None,
) -> Job:
    """A new queued job, or the job an earlier request with the same idempotency key made.

    Same key and same `request_hash` -> that job (nothing new is stored); same key and another
    hash -> `Conflict`. `name` and `epochs_total` default to the spec's name and epochs.
    `first_event` ``(type, data)`` is stored as the job's event 1 in the same flush, which
    spares the sequence UPDATE a later `events.append` would cost. (The API submits through
    `store.submissions.submit`, one statement; this is the store's general-purpose create.)
    """
    if idempotency_key is not None:
        existing = find_by_idempotency_key(s, tenant_id, idempotency_key)
        if existing is not None:
            if existing.request_hash != request_hash:
                raise Conflict(
                    f"Idempotency-Key {idempotency_key!r} was used for job {existing.id} with"
                    " a different request body"
                )
            return existing
    now = utcnow()
    row = job_row(tenant_id, spec, dataset_id, idempotency_key, request_hash, name=name,
                  epochs_total=epochs_total, event_seq=0 if first_event is None else 1,
                  now=now)
    # A Core INSERT, not the unit of work: about a third cheaper on the API's hottest write.
    # The ORM object is then attached as persistent with every column set, so reading it
    # issues no SELECT (the same move as events.append).
    s.execute(sa.insert(JOBS), [row])
    job = Job(**row)
    make_transient_to_detached(job)
    s.add(job)
    if first_event is not None:
        events.insert_numbered(s, job.id, 1, [first_event], now)
    return job


def get(s: Session, tenant_id: str, job_id: str) -> Job | None:
    """The tenant's job, or None (missing and another tenant's look the same).

    The tenant is part of the query: another tenant's row is never loaded, so it costs what a
    missing id costs (comparing after the load made it measurably slower, issue 19).
    """
    return s.scalars(
        sa.select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id)
    ).one_or_none()


def list_page(
    s: Session,
    tenant_id: str,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """The tenant's jobs, newest first, optionally of one status."""
    query = sa.select(Job).where(Job.tenant_id == tenant_id)
    if status:
        if status not in JOB_STATUSES:
            raise ValueError(f"unknown status {status!r}; expected one of {list(JOB_STATUSES)}")
        query = query.where(Job.status == status)
    return newest_first(s, query, Job.created_at, Job.id, limit, cursor)


def _require(s: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's job (the tenant in the query, as `get`), read afresh: a worker may have
    changed it since the session saw it."""
    job = s.scalars(
        sa.select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if job is None:
        raise NotFound(f"job {job_id!r} not found")
    return job


@dataclass(frozen=True)
class Cancelled:
    job: Job
    ended: bool  # it was queued and is cancelled now; else its worker stops at the flag


def cancel(s: Session, tenant_id: str, job_id: str) -> Cancelled:
    """Cancel the tenant's job: a queued one ends `cancelled` now (with its status event,
    since no worker will announce it), a running one is flagged for its worker to stop.

    NotFound for a missing job; Conflict for one that already finished.
    """
    job = _require(s, tenant_id, job_id)
    if job.status in TERMINAL_STATUSES:
        raise Conflict(f"job {job.id} already finished ({job.status})")
    now = utcnow()
    # Conditional UPDATEs: a worker may claim the queued job between the read and here.
    ended = cast(sa.CursorResult[Any], s.execute(
        sa.update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.status == "queued")
        .values(status="cancelled", stop_reason="cancelled", finished_at=now,
                cancel_requested=True)
    )).rowcount == 1
    if ended:
        events.append(s, job_id, *status_event("cancelled", stop_reason="cancelled"), now=now)
    else:
        s.execute(sa.update(JOBS).where(JOBS.c.id == job_id, JOBS.c.status == "running")
                  .values(cancel_requested=True))
    s.refresh(job)
    return Cancelled(job, ended)


def resume(s: Session, tenant_id: str, job_id: str, extra_epochs: int = 0, *,
           max_epochs: int | None = None, active_cap: int | None = None) -> Job:
    """Queue the tenant's cancelled or failed job again, to continue from its latest
    checkpoint, and announce it with a status event.

    `extra_epochs` raises the epoch target (and the spec's training.epochs with it), up to
    `max_epochs` (else InvalidValue naming "epochs"); with `active_cap`, a tenant that has
    that many jobs queued or running is refused (QuotaExceeded). Attempts start again from
    0: the attempts cap is per run, and each claim still gets its lease row.
    """
    job = _require(s, tenant_id, job_id)
    if job.status not in RESUMABLE_STATUSES:
        raise Conflict(f"only cancelled or failed jobs resume; job {job.id} is {job.status}")
    if extra_epochs < 0:
        raise InvalidValue("epochs", "must be a positive integer")
    if max_epochs is not None and job.epochs_total + extra_epochs > max_epochs:
        raise InvalidValue("epochs", f"the job would exceed {max_epochs} epochs")
    if active_cap is not None:
        active = count_active_up_to(s, tenant_id, active_cap)
        if active >= active_cap:
            raise QuotaExceeded(active, active_cap)
    if extra_epochs:
        spec = copy.deepcopy(job.spec)
        spec.setdefault("training", {})["epochs"] = job.epochs_total + extra_epochs
        job.spec = spec
        job.epochs_total += extra_epochs
    job.status = "queued"
    job.stop_reason = None
    job.failure_reason = None
    job.cancel_requested = False
    job.finished_at = None
    job.lease_owner = None
    job.heartbeat_at = None
    job.attempts = 0
    job.queued_at = utcnow()
    s.flush()
    events.append(s, job.id, *status_event("queued"))
    return job
