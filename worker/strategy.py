"""Messages for jobs that are over are dropped in the consumer, before the pool (issue 19).

A message for a cancelled, finished or deleted job used to go the whole way: to a pool
process, into a task whose claim found nothing to do ("skipped"), then the ack. With late
acks and a prefetch of one, nothing else was fetched meanwhile, and the folder broker polls
again only 0.1 s after (kombu's polling interval): a tenant's stale messages (a cancel storm,
reconcile's re-sends) delayed every other tenant's jobs, about ten per second. This Celery
task strategy reads the job's status first (one indexed SELECT on a read-only session in the
consumer process) and acks such a message at once. Anything else, or a database that cannot
be read, goes to Celery's default strategy: the claim stays the rule that decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from celery.worker.strategy import default

from store.statuses import TERMINAL_STATUSES

log = logging.getLogger(__name__)



def job_id_of(message: Any) -> str | None:
    """The job id a train_job message carries (protocol 2: [args, kwargs, embed])."""
    try:
        args = message.decode()[0]
    except Exception:  # Celery reports undecodable bodies itself
        return None
    return args[0] if isinstance(args, list | tuple) and args and isinstance(args[0], str) \
        else None


def is_over(settings: Any, job_id: str) -> bool:
    """True if the job is finished, cancelled or gone; False if it may still run."""
    from store.models import Job
    from worker.engines import read_sessions

    with read_sessions(settings)() as s:
        status = s.scalar(sa.select(Job.status).where(Job.id == job_id))
    return status is None or status in TERMINAL_STATUSES


def skip_finished_jobs(task: Any, app: Any, consumer: Any, **kwargs: Any) -> Callable[..., Any]:
    """Celery's default strategy behind a status check of the message's job."""
    from worker.celery_app import settings_of

    handle = default(task, app, consumer, **kwargs)
    settings = settings_of(app)
    errors = consumer.connection_errors

    def handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any,
                **options: Any) -> Any:
        job_id = job_id_of(message)
        try:
            over = job_id is not None and is_over(settings, job_id)
        except Exception as exc:  # the database is down: let the task find out
            log.warning("job %s: status unreadable (%s); running the task", job_id, exc)
            over = False
        if over:
            log.info("job %s: over (finished, cancelled or deleted); message dropped", job_id)
            ack(log, errors)
            return None
        return handle(message, body, ack, reject, callbacks, **options)

    return handler
