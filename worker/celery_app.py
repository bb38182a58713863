"""The Celery app, built from :class:`config.settings.Settings` in one function.

``make_celery(settings)`` is what the service and the tests call. ``celery -A worker.celery_app``
needs a module-level ``app``; it is built lazily on first access (PEP 562 ``__getattr__``), so
importing this module reads no environment and opens no connection (settings are read in a
function, never at import time).

Reliability settings follow docs/reliability.md: late acks, reject on worker loss, prefetch 1,
a Redis visibility timeout longer than the longest allowed job, soft and hard time limits,
JSON only. No result backend: progress lives in the database rows, not in Celery results.
"""

from __future__ import annotations

import gc
import os
from typing import Any

from celery import Celery, current_app
from celery.signals import worker_init, worker_process_init

from config.settings import Settings
from worker.transports import transport_for

TRAIN_TASK = "weightsmith.train_job"
RECONCILE_TASK = "weightsmith.reconcile"
DELIVER_WEBHOOK_TASK = "weightsmith.deliver_webhook"
SCORE_BATCH_TASK = "weightsmith.score_batch"
SWEEP_STEP_TASK = "weightsmith.sweep_step"

# Redis must not re-deliver a message whose task can still legitimately be running.
VISIBILITY_MARGIN_S = 600
FILESYSTEM_POLL_S = 0.1


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Transport options for the configured broker (filesystem folders, Redis visibility)."""
    if settings.is_embedded_broker:
        folders = {
            "data_folder_in": settings.broker_dir / "queue",
            "data_folder_out": settings.broker_dir / "queue",
            "processed_folder": settings.broker_dir / "processed",
            "control_folder": settings.broker_dir / "control",
        }
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {name: str(path) for name, path in folders.items()}
        # Keeping processed messages would grow the data dir without bound.
        options["store_processed"] = False
        # The folder is polled (default every second): a tenth keeps commit-to-running short.
        options["polling_interval"] = FILESYSTEM_POLL_S
        return options
    # At least twice the hard limit's margin, so a configured margin never outgrows it.
    margin = max(VISIBILITY_MARGIN_S, 2 * settings.hard_limit_margin_s)
    return {"visibility_timeout": settings.limits.max_runtime_s + margin}


def broker_url(settings: Settings) -> str:
    """The broker URL with a host: the embedded ``filesystem://`` gets ``localhost``.

    kombu's virtual transports (the filesystem one among them) fill in ``localhost`` for a
    URL without a host, warning "No hostname was supplied" each time a connection's details
    are read (``kombu.connection.Connection._info``): at every worker start, and again in
    its logs as it connects. The folder transport ignores the host, so naming one changes
    nothing but the warning.
    """
    url = settings.broker_url
    rest = url[len("filesystem://"):]
    if settings.is_embedded_broker and rest.split("/", 1)[0] == "":
        return "filesystem://localhost/" + rest.lstrip("/")
    return url


def make_celery(settings: Settings) -> Celery:
    """A Celery app for ``settings``; tasks come from ``worker.tasks`` (by name; it imports
    ``worker.sweep_tasks``)."""
    app = Celery("weightsmith", broker=broker_url(settings), include=["worker.tasks"])
    max_runtime = settings.limits.max_runtime_s
    app.conf.update(
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # The soft limit fires first so the task can record a failure; the hard limit is the
        # backstop. Their margins are settings (Settings checks that hard > soft).
        task_soft_time_limit=max_runtime + settings.soft_limit_margin_s,
        task_time_limit=max_runtime + settings.hard_limit_margin_s,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_default_queue="weightsmith",
        worker_hijack_root_logger=False,
        beat_schedule={
            RECONCILE_TASK: {
                "task": RECONCILE_TASK,
                "schedule": float(settings.reconcile_interval_s),
            }
        },
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    )
    transport = transport_for(settings.broker_url)
    if transport is not None:  # kombu's, except that a bad message is dropped, not fatal
        app.conf.broker_transport = transport
    if settings.is_embedded_broker:
        # Broadcast control messages over files are polled by every worker for nothing.
        app.conf.worker_enable_remote_control = False
    app.weightsmith_settings = settings
    return app


def settings_of(app: Celery) -> Settings:
    """The settings an app was built from (apps not made by make_celery read the env)."""
    settings = getattr(app, "weightsmith_settings", None)
    return settings if isinstance(settings, Settings) else Settings.from_env()


@worker_process_init.connect
def _dispose_inherited_pools(**_: Any) -> None:
    """A forked pool child must not reuse the parent's database connections."""
    from worker.engines import dispose_engines

    dispose_engines()


@worker_process_init.connect
def _freeze_inherited_heap(**_: Any) -> None:
    """Leave the objects a pool child starts with out of every garbage collection.

    A child inherits ~100,000 objects (Celery, SQLAlchemy, the core), and training allocates
    fast enough to set off full collections, each one walking all of them: ~2-3% of a digits
    MLP's training time in such a process, against ~0% once they are frozen (measured with
    gc.callbacks). They live as long as the process anyway. Python's gc docs recommend
    gc.freeze() for forked workers.
    """
    gc.freeze()


# The pool size, recorded by the parent before it forks; the children inherit it.
_pool_concurrency: int | None = None


@worker_init.connect
def _record_concurrency(sender: Any = None, **_: Any) -> None:
    global _pool_concurrency
    concurrency = getattr(sender, "concurrency", None)
    _pool_concurrency = concurrency if isinstance(concurrency, int) else None


@worker_init.connect
def _lower_cpu_priority(sender: Any = None, **_: Any) -> None:
    """Give the worker (and the pool it forks) ``settings.worker_niceness``: where training
    shares the cores with the API, the API's requests are served first (issue 19)."""
    lower_cpu_priority(settings_of(current_app).worker_niceness)


def lower_cpu_priority(niceness: int) -> None:
    """Raise this process's niceness to ``niceness`` (never lower it: that needs root)."""
    if niceness > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, niceness)


@worker_process_init.connect
def _limit_blas_threads(**_: Any) -> None:
    """Share the cores among the pool's processes (see worker/blas.py for why)."""
    from worker.blas import blas_threads_for, limit_blas_threads

    limit_blas_threads(blas_threads_for(settings_of(current_app), _pool_concurrency))


_lazy_app: Celery | None = None


def __getattr__(name: str) -> Celery:
    """``app`` is built from the environment the first time someone asks for it."""
    global _lazy_app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _lazy_app is None:
        settings = Settings.from_env()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        _lazy_app = make_celery(settings)
    return _lazy_app
