"""Hand a committed job to the broker, by task name, through the worker's Celery app.

The database row is the truth (DESIGN §1): if the broker is down the job simply stays
`queued` and the periodic `reconcile` task re-sends it, so a failed send never fails the POST.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from config.settings import Settings

log = logging.getLogger(__name__)

TRAIN_TASK = "weightsmith.train_job"


class Dispatcher:
    """Lazily builds the Celery app from the service's own settings (not the import-time one)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._celery: Any = None
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    @property
    def celery(self) -> Any:
        with self._lock:
            if self._celery is None:
                from worker.celery_app import make_celery

                self._celery = make_celery(self._settings)
            return self._celery

    def train_job(self, job_id: str) -> bool:
        """Send `train_job(job_id)`; call only after the job's row is committed."""
        try:
            self.celery.send_task(TRAIN_TASK, args=[job_id], retry=False)
        except Exception as exc:  # broker down or misconfigured: reconcile will re-send
            self.failed += 1
            log.warning("could not enqueue job %s (%s); reconcile will retry", job_id, exc)
            return False
        self.sent += 1
        return True

    def ping(self, timeout: float = 2.0) -> None:
        """Raise if the broker cannot be reached within about `timeout` seconds."""
        with self.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
