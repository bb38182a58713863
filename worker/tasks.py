"""The Celery tasks: ``train_job(job_id)``, ``reconcile()`` and ``deliver_webhook(delivery_id)``.

Tasks take ids and reload everything from the database; their return values
are ignored (no result backend): progress lives in the job's rows.

Failures, by kind (docs/reliability.md):

- a bad spec, dataset or init checkpoint (SpecError, DatasetError, CheckpointError) fails the
  job at once: retrying cannot help;
- a job past its budgets (core/budget.py, checked again here) fails at once, and one that runs
  out of memory under the address-space limit derived from its estimate
  (worker/memory_limit.py) fails with that reason, without a retry;
- divergence ends the job ``failed`` with stop_reason ``diverged`` (the core reports it);
- the runtime cap (``settings.limits.max_runtime_s``) stops the job in the core between
  batches, like a spec's own ``training.max_runtime_s`` (worker/runner.py); Celery's soft
  time limit, the cap plus a margin, is the backstop: it fails the job with its reason, or
  returns ``"lease_lost"`` when the job was not ours to fail any more;
- any other exception (database blip, out of memory, a bug) is retried: the job is released
  back to ``queued`` with the error kept in ``failure_reason``, and the task is re-sent with
  Celery's ``self.retry`` after an exponential countdown (one heartbeat interval, doubling).
  We count tries with the job's own ``attempts`` (incremented by every claim) rather than
  Celery's ``max_retries``, because a worker killed mid-job (redelivery, reconcile) is an
  attempt as well and Celery never sees it. The claim past ``settings.max_attempts`` fails
  the job with ``"exceeded N attempts; last error: ..."``.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from store import webhooks as store_webhooks
from worker import store_ops, sweep_tasks, webhooks
from worker.batch_scoring import score
from worker.celery_app import (
    DELIVER_WEBHOOK_TASK,
    RECONCILE_TASK,
    SCORE_BATCH_TASK,
    TRAIN_TASK,
    settings_of,
)
from worker.engines import session_factory
from worker.memory_limit import address_space_limit
from worker.reconcile import reconcile_once
from worker.runner import JobRunner

log = logging.getLogger(__name__)

MAX_RETRY_COUNTDOWN_S = 60
def new_worker_id() -> str:
    """Unique per delivery, so a lease names exactly one run of one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def retry_countdown(settings: Settings, attempts: int) -> int:
    """Exponential backoff starting at one heartbeat interval, capped at a minute."""
    base = settings.heartbeat_interval_s * 2 ** max(attempts - 1, 0)
    return int(min(base, MAX_RETRY_COUNTDOWN_S))


# Strategy: a message for a job that is over is acked in the consumer (worker/strategy.py).
@shared_task(name=TRAIN_TASK, bind=True, acks_late=True, ignore_result=True,
             Strategy="worker.strategy:skip_finished_jobs")
def train_job(self: Any, job_id: str) -> str:
    settings = settings_of(self.app)
    sessions = session_factory(settings)
    worker_id = new_worker_id()
    try:
        # A pool child runs one task at a time: it may limit its own address space.
        outcome = JobRunner(sessions, settings, job_id, worker_id,
                            limit_memory=address_space_limit).run()
    except SoftTimeLimitExceeded:
        # The backstop: the runner has the core stop cleanly at the runtime cap, so this fires
        # only for a single batch (or a setup, or a commit) that outlasts the margin.
        log.warning("job %s: Celery's soft time limit fired", job_id)
        with sessions.begin() as s:
            ended = store_ops.finish(
                s, job_id, worker_id, "failed", "max_runtime",
                f"exceeded the runtime limit of {settings.limits.max_runtime_s} s")
        # Not ended: the lease was not ours any more (nothing was written), as below.
        outcome = "failed" if ended else "lease_lost"
    except Exception as exc:
        log.exception("job %s: unexpected error; releasing it for a retry", job_id)
        with sessions.begin() as s:
            attempts = store_ops.release_for_retry(
                s, job_id, worker_id, f"{type(exc).__name__}: {exc}")
        if attempts is None:  # the lease was not ours any more: its owner carries on
            return "lease_lost"
        countdown = retry_countdown(settings, attempts)
        raise self.retry(exc=exc, countdown=countdown, max_retries=None) from exc
    log.info("job %s: %s", job_id, outcome)
    if outcome != "skipped":  # first: the next trial of a sweep waits on it
        sweep_tasks.after_job(self.app, sessions, settings, job_id)
    send_due_webhooks(self.app, sessions)
    return outcome


def send_due_webhooks(app: Any, sessions: sessionmaker[Session], older_than_s: float = 0.0,
                      ) -> list[str]:
    """A `deliver_webhook` message for each pending delivery due ``older_than_s`` ago.

    After a job ends this sends the events its finish wrote; from `reconcile` it re-sends
    those whose message was lost. A second message for a delivery already on its way is
    harmless: only one claim of it succeeds.
    """
    with sessions() as s:
        due = store_webhooks.due(s, older_than_s=older_than_s)
    for delivery_id in due:
        app.send_task(DELIVER_WEBHOOK_TASK, args=[delivery_id])
    return due


@shared_task(name=SCORE_BATCH_TASK, bind=True, acks_late=True, ignore_result=True)
def score_batch(self: Any, batch_id: str) -> str:
    """Score a batch prediction (worker/batch_scoring.py); an unexpected error gives it back
    to the queue for a retry that resumes after its last written chunk."""
    from store import batches

    settings = settings_of(self.app)
    sessions = session_factory(settings)
    worker_id = new_worker_id()
    try:
        outcome = score(sessions, settings, batch_id, worker_id)
    except Exception as exc:
        log.exception("batch %s: unexpected error; releasing it for a retry", batch_id)
        with sessions.begin() as s:
            attempts = batches.release(s, batch_id, worker_id, f"{type(exc).__name__}: {exc}")
        if attempts is None:
            return "lease_lost"
        raise self.retry(exc=exc, countdown=retry_countdown(settings, attempts),
                         max_retries=None) from exc
    send_due_webhooks(self.app, sessions)
    return outcome


@shared_task(name=DELIVER_WEBHOOK_TASK, bind=True, acks_late=True, ignore_result=True)
def deliver_webhook(self: Any, delivery_id: str) -> float | None:
    """One attempt at a delivery; the next one is sent with its backoff as the countdown."""
    settings = settings_of(self.app)
    delay = webhooks.deliver(session_factory(settings), settings, delivery_id)
    if delay is not None:
        self.app.send_task(DELIVER_WEBHOOK_TASK, args=[delivery_id], countdown=delay)
    return delay


@shared_task(name=RECONCILE_TASK, bind=True, ignore_result=True)
def reconcile(self: Any) -> list[str]:
    settings = settings_of(self.app)
    sessions = session_factory(settings)
    send_due_webhooks(self.app, sessions, older_than_s=settings.queued_grace_s)
    sweep_tasks.send_sweep_steps(self.app, sessions)
    return reconcile_once(self.app, sessions, settings)
