"""Hand a committed job to the broker, by task name, through the worker's Celery app.

The database row is the truth (docs/reliability.md): if the broker is down the job simply
stays `queued` and the periodic `reconcile` task re-sends it, so a failed send never fails the POST.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery.utils.nodenames import anon_nodename
from kombu.transport import redis as kombu_redis
from kombu.utils.uuid import uuid

from config.settings import Settings
from worker.celery_app import DELIVER_WEBHOOK_TASK, SCORE_BATCH_TASK, SWEEP_STEP_TASK, TRAIN_TASK

log = logging.getLogger(__name__)

# A POST must not hang on a dead broker: one quick connection attempt, then the job waits for
# reconcile. After a failure, sends are skipped for a few seconds instead of each one waiting.
CONNECT_TIMEOUT_S = 1.0
FAILOVER_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                    "interval_max": 0.5}
BACKOFF_S = 5.0


class PublishChannel(kombu_redis.Channel):
    """kombu's Redis channel, keeping one `redis.Redis` client instead of one per publish.

    Celery already reuses a producer (and so this channel and its connection pool) from
    `app.producer_pool` for every `send_task`; but the channel's `conn_or_acquire` still builds
    a fresh client for each `LPUSH`, copying ~170 response callbacks, about a third of a
    publish's CPU. The client only wraps the channel's own pool, so keeping it changes nothing
    else: connections are still checked out per command, and a reconnect closes the channel.
    """

    _publisher: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        if self._publisher is None:
            self._publisher = self._create_client()  # type: ignore[no-untyped-call]
        yield self._publisher


class PublishTransport(kombu_redis.Transport):
    """The Redis transport with `PublishChannel`; for `redis://` brokers of publish-only apps."""

    Channel = PublishChannel


class Dispatcher:
    """Lazily builds the Celery app from the service's own settings (not the import-time one)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._celery: Any = None
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self._down_until = 0.0
        self._origin: str | None = None  # this host's name, as Celery's messages carry it

    @property
    def celery(self) -> Any:
        if self._celery is not None:  # built: no lock on every send
            return self._celery
        with self._lock:
            if self._celery is None:
                from worker.celery_app import make_celery

                app = make_celery(self._settings)
                # This Celery app only publishes (the worker builds its own): fail fast.
                app.conf.broker_connection_timeout = CONNECT_TIMEOUT_S
                app.conf.broker_transport_options = {
                    **(app.conf.broker_transport_options or {}), **FAILOVER_OPTIONS,
                }
                if str(self._settings.broker_url).startswith("redis://"):
                    app.conf.broker_transport = PublishTransport
                self._celery = app
            return self._celery

    def train_job(self, job_id: str) -> bool:
        """Send `train_job(job_id)`; call only after the job's row is committed."""
        return self._send(self._publish, job_id)

    def deliver_webhook(self, delivery_id: str) -> bool:
        """Send `deliver_webhook(delivery_id)`; call only after its outbox row is committed."""
        return self._send(
            lambda i: self.celery.send_task(DELIVER_WEBHOOK_TASK, args=[i]), delivery_id)

    def score_batch(self, batch_id: str) -> bool:
        """Send `score_batch(batch_id)`; call only after the batch's row is committed."""
        return self._send(
            lambda i: self.celery.send_task(SCORE_BATCH_TASK, args=[i]), batch_id)

    def sweep_step(self, sweep_id: str) -> bool:
        """Send `sweep_step(sweep_id)`; call only after the sweep's change is committed."""
        return self._send(
            lambda i: self.celery.send_task(SWEEP_STEP_TASK, args=[i]), sweep_id)

    def _send(self, publish: Callable[[str], Any], row_id: str) -> bool:
        if time.monotonic() < self._down_until:
            self.failed += 1
            return False
        try:
            publish(row_id)
        except Exception as exc:  # broker down or misconfigured: reconcile will re-send
            self.failed += 1
            self._down_until = time.monotonic() + BACKOFF_S
            log.warning("could not enqueue %s (%s); reconcile will retry", row_id, exc)
            return False
        self.sent += 1
        return True

    def _publish(self, job_id: str) -> None:
        """What `Celery.send_task` does for this task, without what it does not need.

        The message is Celery's own (`create_task_message`, protocol 2) and goes out through
        Celery's producer pool and `send_task_message`, to the default queue. Skipped: the
        router (no routes are configured), the parent-task lookup (the API runs no task),
        the result backend and AsyncResult (results are ignored); a third of send_task's
        CPU. The first send declares the queue (its binding in Redis), as Celery always
        does; later ones skip it: kombu would only find it cached, after copying and
        re-binding the Queue object, a quarter of a publish's CPU. argsrepr/kwargsrepr
        (what logs show of a task) come ready-made: saferepr cost a tenth of a publish.
        """
        app = self.celery
        if self._origin is None:
            self._origin = anon_nodename()
        task_id = uuid()
        message = app.amqp.create_task_message(
            task_id, TRAIN_TASK, [job_id], {}, argsrepr=f"[{job_id!r}]", kwargsrepr="{}",
            origin=self._origin, ignore_result=None,  # as send_task leaves it: the task decides
        )
        with app.producer_or_acquire() as producer, \
                producer.connection._reraise_as_library_errors():
            app.amqp.send_task_message(producer, TRAIN_TASK, message, retry=False,
                                       declare=[] if self.sent else None)

    def ping(self, timeout: float = 2.0) -> None:
        """Raise if the broker cannot be reached within about `timeout` seconds."""
        with self.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
