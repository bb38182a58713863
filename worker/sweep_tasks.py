"""The Celery task ``sweep_step(sweep_id)`` and the two places that send it.

It is sent when a sweep is submitted or cancelled (by the API) and for every active sweep on
each reconcile beat (``send_sweep_steps``). When one of its trials ends, the step runs at once
in the trial's own ``train_job`` task (``after_job``), which is idle by then: the next trial
is dispatched without a broker round trip and a wait for a free worker, which is most of
the time from one trial's end to the next one's first epoch (benchmarks/service/
bench_sweep.py). If that step fails, it is sent as a message, and reconcile is the backstop.
Any number of copies may run: the step decides under the sweep's row lock and each decision
is conditional (worker/sweep_controller.py, store/sweeps.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from store import jobs as store_jobs
from store import sweeps
from store.errors import Conflict
from worker import sweep_controller
from worker.celery_app import DELIVER_WEBHOOK_TASK, SWEEP_STEP_TASK, TRAIN_TASK, settings_of
from worker.engines import session_factory

log = logging.getLogger(__name__)


def run_step(app: Any, sessions: sessionmaker[Session], settings: Settings,
             sweep_id: str) -> list[str]:
    """One step: decide and commit, then cancel and dispatch; the jobs sent."""
    return _step(app, sessions, settings, lambda s: sweep_id)[1]


def _step(app: Any, sessions: sessionmaker[Session], settings: Settings,
          find: Callable[[Session], str | None]) -> tuple[str | None, list[str]]:
    """A step of the sweep ``find`` names in the step's own transaction (None: no step);
    (its id, the jobs sent)."""
    with sessions.begin() as s:
        sweep_id = find(s)
        if sweep_id is None:
            return None, []
        result = sweep_controller.step(s, sweep_id, settings.limits)
    if result.cancel:
        for tenant_id, job_id in result.cancel:
            with contextlib.suppress(Conflict), sessions.begin() as s:  # ended meanwhile
                store_jobs.cancel(s, tenant_id, job_id)
    for job_id in result.dispatch:
        app.send_task(TRAIN_TASK, args=[job_id])
    for delivery_id in result.deliveries:  # lost: reconcile re-sends due deliveries
        app.send_task(DELIVER_WEBHOOK_TASK, args=[delivery_id])
    if result.finished:
        log.info("sweep %s finished", sweep_id)
    return sweep_id, result.dispatch


@shared_task(name=SWEEP_STEP_TASK, bind=True, acks_late=True, ignore_result=True)
def sweep_step(self: Any, sweep_id: str) -> list[str]:
    settings = settings_of(self.app)
    return run_step(self.app, session_factory(settings), settings, sweep_id)


def after_job(app: Any, sessions: sessionmaker[Session], settings: Settings,
              job_id: str) -> str | None:
    """Step the sweep whose trial ``job_id`` is (after it ran), here; the sweep's id.

    A step that fails here (a database blip) is sent to the queue instead; a worker killed
    before either leaves the sweep to reconcile's step, as any lost message does.
    """
    def sweep_of(s: Session) -> str | None:  # found in the step's transaction: one session
        trial = sweeps.trial_of_job(s, job_id)
        return None if trial is None else str(trial.sweep_id)

    try:
        return _step(app, sessions, settings, sweep_of)[0]
    except Exception:
        log.exception("the sweep step after job %s failed; sending it", job_id)
    with sessions() as s:
        sweep_id = sweep_of(s)
    if sweep_id is not None:
        app.send_task(SWEEP_STEP_TASK, args=[sweep_id])
    return sweep_id


def send_sweep_steps(app: Any, sessions: sessionmaker[Session]) -> list[str]:
    """A step for every active sweep (reconcile: repairs lost messages and dead steps, and
    notices time budgets running out)."""
    with sessions() as s:
        active = sweeps.active_ids(s)
    for sweep_id in active:
        app.send_task(SWEEP_STEP_TASK, args=[sweep_id])
    return active
