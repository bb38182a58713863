"""Sweeps as rows: create (idempotent), read, list; the controller's conditional writes.

Invariant: every decision a sweep makes is one conditional statement on these rows, so two
controller tasks racing (a duplicate Celery message, reconcile beside a trial's end) cannot
both make it:

- a trial index is handed out by ``UPDATE sweeps SET trials_created = n + 1 WHERE
  trials_created = n`` (``claim_index``), and the trial row's primary key (sweep, index)
  backs it up;
- a trial ends once: ``UPDATE sweep_trials SET outcome = ... WHERE outcome IS NULL AND
  job_id = <the job that ended>`` (``record_end``), which also numbers the ends (TPE's
  history order);
- a rung is reported once per (sweep, trial, rung) (the unique constraint); a repeat gets
  the first report's decision (``record_rung``);
- a sweep finishes once: ``WHERE status IN ('queued', 'running')``.

Callers own the session (docs/architecture.md, "store"). ``lock`` serialises a sweep's writers
(the rung table's report order must be one order).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store.columns import utcnow
from store.errors import Conflict
from store.models import Job, Metric, Sweep, SweepEvent, SweepRung, SweepTrial
from store.pages import Page, newest_first
from store.statuses import ACTIVE_STATUSES

EVENTS = cast(sa.Table, SweepEvent.__table__)


def create(s: Session, tenant_id: str, spec: dict[str, Any], *, name: str,
           idempotency_key: str | None, request_hash: str | None,
           deadline_at: datetime | None) -> tuple[Sweep, bool]:
    """(the new queued sweep, True), or (the sweep an earlier request with this key made,
    False); the same key with another body is a Conflict."""
    if idempotency_key is not None:
        existing = s.scalars(sa.select(Sweep).where(
            Sweep.tenant_id == tenant_id, Sweep.idempotency_key == idempotency_key)
        ).one_or_none()
        if existing is not None:
            if existing.request_hash != request_hash:
                raise Conflict(f"Idempotency-Key {idempotency_key!r} was used for sweep "
                               f"{existing.id} with a different request body")
            return existing, False
    now = utcnow()
    sweep = Sweep(tenant_id=tenant_id, name=name, spec=spec, status="queued",
                  cancel_requested=False, trials_created=0, ends_seen=0, event_seq=0,
                  idempotency_key=idempotency_key, request_hash=request_hash,
                  created_at=now, deadline_at=deadline_at)
    s.add(sweep)
    s.flush()
    append_events(s, sweep.id, [("status", {"status": "queued"})])
    return sweep, True


def get(s: Session, tenant_id: str, sweep_id: str) -> Sweep | None:
    """The tenant's sweep, or None (missing and another tenant's look the same)."""
    sweep = s.get(Sweep, sweep_id)
    return sweep if sweep is not None and sweep.tenant_id == tenant_id else None


def list_page(s: Session, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page:
    query = sa.select(Sweep).where(Sweep.tenant_id == tenant_id)
    return newest_first(s, query, Sweep.created_at, Sweep.id, limit, cursor)


def lock(s: Session, sweep_id: str) -> Sweep | None:
    """The sweep, its row locked until the caller's commit (a no-op UPDATE: on SQLite it
    takes the write lock, on PostgreSQL the row lock, the same on both)."""
    found = _changed(s, sa.update(Sweep).where(Sweep.id == sweep_id)
                      .values(event_seq=Sweep.event_seq))
    if not found:
        return None
    sweep = s.get(Sweep, sweep_id, populate_existing=True)
    return sweep


def active_ids(s: Session) -> list[str]:
    """Every sweep still queued or running (for reconcile), oldest first."""
    return list(s.scalars(sa.select(Sweep.id).where(sa.text("status IN ('queued', 'running')"))
                          .order_by(Sweep.created_at, Sweep.id)))


def trials(s: Session, sweep_id: str) -> list[SweepTrial]:
    """The sweep's trials in index order."""
    return list(s.scalars(sa.select(SweepTrial).where(SweepTrial.sweep_id == sweep_id)
                          .order_by(SweepTrial.trial_index)
                          .execution_options(populate_existing=True)))


def trial_jobs(s: Session, sweep_id: str) -> dict[str, Job]:
    """The current job of each trial, by id."""
    rows = s.scalars(sa.select(Job).join(SweepTrial, SweepTrial.job_id == Job.id)
                     .where(SweepTrial.sweep_id == sweep_id)
                     .execution_options(populate_existing=True))
    return {job.id: job for job in rows}


def trial_of_job(s: Session, job_id: str) -> SweepTrial | None:
    """The trial whose current job this is, or None (an ordinary job, or a replaced attempt)."""
    return s.scalars(sa.select(SweepTrial).where(SweepTrial.job_id == job_id)).one_or_none()


def claim_index(s: Session, sweep_id: str, index: int) -> bool:
    """Take trial ``index`` if it is the next one; False if another task took it first."""
    taken = _changed(s, sa.update(Sweep)
                      .where(Sweep.id == sweep_id, Sweep.trials_created == index)
                      .values(trials_created=index + 1, status="running",
                              started_at=sa.func.coalesce(Sweep.started_at, utcnow())))
    return bool(taken)


def add_trial(s: Session, sweep_id: str, index: int, params: Mapping[str, Any],
              job_id: str) -> None:
    """The trial's row, pointing at its first job (which is marked as the sweep's)."""
    s.add(SweepTrial(sweep_id=sweep_id, trial_index=index, params=dict(params), job_id=job_id,
                     attempts=1, epochs_run=0, created_at=utcnow()))
    _mark_job(s, sweep_id, job_id)


def retry_trial(s: Session, sweep_id: str, index: int, old_job_id: str, job_id: str) -> bool:
    """Point the trial at a new job after ``old_job_id`` failed (once: conditional)."""
    moved = _changed(s, sa.update(SweepTrial)
                      .where(SweepTrial.sweep_id == sweep_id, SweepTrial.trial_index == index,
                             SweepTrial.job_id == old_job_id, SweepTrial.outcome.is_(None))
                      .values(job_id=job_id, attempts=SweepTrial.attempts + 1))
    if moved:
        _mark_job(s, sweep_id, job_id)
    return bool(moved)


def _mark_job(s: Session, sweep_id: str, job_id: str) -> None:
    _changed(s, sa.update(Job).where(Job.id == job_id).values(sweep_id=sweep_id))


def record_end(s: Session, sweep_id: str, index: int, job_id: str | None, outcome: str, *,
               value: float | None, best_epoch: int | None, epochs_run: int) -> int | None:
    """Record how the trial's job ``job_id`` ended; its end number, or None if recorded
    already (or the trial has moved to another job). ``job_id`` None: its job was deleted."""
    trial = (SweepTrial.sweep_id == sweep_id, SweepTrial.trial_index == index)
    same_job = SweepTrial.job_id.is_(None) if job_id is None else SweepTrial.job_id == job_id
    ended = _changed(s, sa.update(SweepTrial)
                     .where(*trial, same_job, SweepTrial.outcome.is_(None))
                     .values(outcome=outcome, value=_finite(value), best_epoch=best_epoch,
                             epochs_run=epochs_run, finished_at=utcnow()))
    if not ended:
        return None
    seq = int(s.execute(sa.update(Sweep).where(Sweep.id == sweep_id)
                        .values(ends_seen=Sweep.ends_seen + 1).returning(Sweep.ends_seen)
                        .execution_options(synchronize_session=False)).scalar_one())
    s.execute(sa.update(SweepTrial).where(*trial).values(end_seq=seq)
              .execution_options(synchronize_session=False))
    return seq


def rung_rows(s: Session, sweep_id: str, rung: int) -> list[SweepRung]:
    return list(s.scalars(sa.select(SweepRung).where(SweepRung.sweep_id == sweep_id,
                                                     SweepRung.rung == rung)
                          .order_by(SweepRung.seq)))


def record_rung(s: Session, sweep_id: str, index: int, rung: int, value: float,
                decide: Callable[[list[SweepRung], SweepRung], bool]) -> tuple[bool, bool]:
    """(continues, new): the trial's report at ``rung`` and its decision.

    The first report of (trial, rung) is decided by ``decide(rows of that rung so far, the
    new row)`` and stored; a repeat (a retried or resumed run) gets the stored decision.
    Call with the sweep locked, so report order is one order.
    """
    existing = s.scalars(sa.select(SweepRung).where(
        SweepRung.sweep_id == sweep_id, SweepRung.trial_index == index,
        SweepRung.rung == rung)).one_or_none()
    if existing is not None:
        return bool(existing.continues), False
    last = s.scalar(sa.select(sa.func.max(SweepRung.seq)).where(SweepRung.sweep_id == sweep_id))
    row = SweepRung(sweep_id=sweep_id, seq=int(last or 0) + 1, trial_index=index, rung=rung,
                    value=_finite(value), continues=True, created_at=utcnow())
    row.continues = decide(rung_rows(s, sweep_id, rung), row)
    s.add(row)
    s.flush()
    return bool(row.continues), True


def decisions(s: Session, sweep_id: str) -> list[SweepRung]:
    """The whole rung table in report order."""
    return list(s.scalars(sa.select(SweepRung).where(SweepRung.sweep_id == sweep_id)
                          .order_by(SweepRung.seq)))


def pruned_at(s: Session, sweep_id: str, index: int) -> int | None:
    """The rung at which the trial was stopped, if it was."""
    return s.scalar(sa.select(sa.func.min(SweepRung.rung)).where(
        SweepRung.sweep_id == sweep_id, SweepRung.trial_index == index,
        SweepRung.continues.is_(False)))


def finish(s: Session, sweep_id: str, status: str, stop_reason: str | None) -> bool:
    """End the sweep (once)."""
    done = _changed(s, sa.update(Sweep)
                    .where(Sweep.id == sweep_id, Sweep.status.in_(ACTIVE_STATUSES))
                    .values(status=status, stop_reason=stop_reason, finished_at=utcnow()))
    return bool(done)


def request_cancel(s: Session, sweep_id: str) -> None:
    s.execute(sa.update(Sweep).where(Sweep.id == sweep_id, Sweep.status.in_(ACTIVE_STATUSES))
              .values(cancel_requested=True).execution_options(synchronize_session=False))


def append_events(s: Session, sweep_id: str,
                  items: Iterable[tuple[str, Mapping[str, Any]]]) -> list[int]:
    """Add events with the sweep's next sequence numbers (one UPDATE ... RETURNING)."""
    batch = list(items)
    if not batch:
        return []
    last = s.execute(sa.update(Sweep).where(Sweep.id == sweep_id)
                     .values(event_seq=Sweep.event_seq + len(batch))
                     .returning(Sweep.event_seq)
                     .execution_options(synchronize_session=False)).scalar_one()
    first = int(last) - len(batch) + 1
    now = utcnow()
    s.execute(sa.insert(EVENTS), [
        {"sweep_id": sweep_id, "seq": first + i, "type": kind, "data": dict(data),
         "created_at": now} for i, (kind, data) in enumerate(batch)])
    return list(range(first, first + len(batch)))


def events_after(s: Session, sweep_id: str, after: int, limit: int = 500) -> list[SweepEvent]:
    return list(s.scalars(sa.select(SweepEvent)
                          .where(SweepEvent.sweep_id == sweep_id, SweepEvent.seq > after)
                          .order_by(SweepEvent.seq).limit(limit)))


def metric_series(s: Session, job_id: str, name: str) -> list[tuple[int, float | None]]:
    """(epoch, value) of one metric of a job, in epoch order (None: NaN or inf)."""
    rows = s.execute(sa.select(Metric.epoch, Metric.value)
                     .where(Metric.job_id == job_id, Metric.name == name).order_by(Metric.epoch))
    return [(int(epoch), value) for epoch, value in rows]


def _changed(s: Session, statement: sa.Update) -> int:
    """Rows an UPDATE changed (the ORM's session left alone: callers re-read what they need)."""
    result = s.execute(statement.execution_options(synchronize_session=False))
    return int(cast("sa.CursorResult[Any]", result).rowcount)


def _finite(value: float | None) -> float | None:
    """NULL for NaN/inf, as the metrics table stores them."""
    return None if value is None or not math.isfinite(value) else float(value)
