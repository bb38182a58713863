"""Re-dispatch jobs whose broker message was lost (docs/reliability.md).

The filesystem transport forgets an unacked message when its worker is killed, and Redis holds
one back for the whole visibility timeout; the database knows better. Every
``reconcile_interval_s`` beat runs this: a job ``queued`` for longer than ``queued_grace_s``, or
``running`` with a heartbeat older than ``lease_timeout_s``, gets a fresh ``train_job`` message.

A re-sent message for a job that is in fact still queued behind others costs one failed claim
and nothing more: the claim, not this module, guarantees a job runs once at a time.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from worker import store_ops
from worker.celery_app import SCORE_BATCH_TASK, TRAIN_TASK

log = logging.getLogger(__name__)


def reconcile_once(app: Any, sessions: sessionmaker[Session], settings: Settings) -> list[str]:
    """Send ``train_job`` for each stranded job; the ids sent, oldest first."""
    with sessions() as s:
        job_ids = store_ops.stranded(s, settings)
    for job_id in job_ids:
        app.send_task(TRAIN_TASK, args=[job_id])
    if job_ids:
        log.warning("reconcile: re-dispatched %d stranded job(s): %s", len(job_ids), job_ids)
    resend_stranded_batches(app, sessions, settings)
    return job_ids


def resend_stranded_batches(app: Any, sessions: sessionmaker[Session], settings: Settings,
                            ) -> list[str]:
    """Send ``score_batch`` for each batch queued past the grace or with a silent holder."""
    from store import batches

    with sessions() as s:
        batch_ids = batches.stale(s, lease_timeout_s=settings.lease_timeout_s,
                                  queued_grace_s=settings.queued_grace_s)
    for batch_id in batch_ids:
        app.send_task(SCORE_BATCH_TASK, args=[batch_id])
    if batch_ids:
        log.warning("reconcile: re-dispatched %d stranded batch(es): %s", len(batch_ids),
                    batch_ids)
    return batch_ids
