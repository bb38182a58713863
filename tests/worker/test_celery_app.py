"""make_celery: the reliability settings (docs/reliability.md), per broker, and a lazy app."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import Limits, Settings
from worker.celery_app import RECONCILE_TASK, TRAIN_TASK, make_celery, settings_of


def test_embedded_broker_uses_folders_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, reconcile_interval_s=7,
                        limits=Limits(max_runtime_s=100))
    app = make_celery(settings)
    conf = app.conf
    options = conf.broker_transport_options
    assert options["data_folder_in"] == options["data_folder_out"] == str(tmp_path / "broker/queue")
    for key in ("data_folder_in", "processed_folder", "control_folder"):
        assert Path(options[key]).is_dir()
    assert conf.broker_url == "filesystem://localhost/"  # see test_the_embedded_broker_...
    assert options["polling_interval"] == 0.1
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost) == (True, True)
    assert conf.worker_prefetch_multiplier == 1
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (160, 220)
    assert (conf.task_serializer, conf.accept_content) == ("json", ["json"])
    assert conf.task_ignore_result is True
    assert conf.broker_connection_retry_on_startup is True
    assert conf.beat_schedule[RECONCILE_TASK] == {"task": RECONCILE_TASK, "schedule": 7.0}
    assert settings_of(app) is settings


def test_the_embedded_broker_connects_without_kombu_s_no_hostname_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """kombu warns "No hostname was supplied" whenever a host-less URL's details are read, as
    the worker does when it starts and connects; a worker log must not open with a warning."""
    app = make_celery(Settings(data_dir=tmp_path, broker_url="filesystem://"))
    with caplog.at_level(logging.WARNING, logger="kombu"), app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.transport.driver_type == "filesystem"  # our folder transport (transports.py)
        assert conn.hostname == "localhost"
    assert [r.getMessage() for r in caplog.records] == []
    redis = make_celery(Settings(data_dir=tmp_path, broker_url="redis://db.example:6380/2"))
    assert redis.conf.broker_url == "redis://db.example:6380/2"  # other brokers as given


def test_redis_gets_a_visibility_timeout_longer_than_any_job(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/3",
                        limits=Limits(max_runtime_s=3600))
    conf = make_celery(settings).conf
    assert conf.broker_transport_options == {"visibility_timeout": 4200}
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert not (tmp_path / "broker").exists()


def test_tasks_are_registered_by_name(tmp_path: Path) -> None:
    app = make_celery(Settings(data_dir=tmp_path))
    app.loader.import_default_modules()
    assert {TRAIN_TASK, RECONCILE_TASK} <= set(app.tasks)
    assert app.tasks[TRAIN_TASK].acks_late is True


def test_importing_the_module_reads_no_settings(tmp_path: Path) -> None:
    """A bad environment breaks only the first use of `app`, never the import."""
    env = dict(os.environ, WEIGHTSMITH_LEASE_TIMEOUT_S="soon", WEIGHTSMITH_DATA_DIR=str(tmp_path))
    code = (
        "import worker.celery_app as m\n"
        "print('imported')\n"
        "try:\n    m.app\nexcept ValueError as e:\n    print('app:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert out == ["imported", "app: WEIGHTSMITH_LEASE_TIMEOUT_S: must be an integer, got 'soon'"]


def test_a_pool_child_freezes_the_heap_it_inherits() -> None:
    import gc

    from celery.signals import worker_process_init

    from worker.celery_app import _freeze_inherited_heap

    assert _freeze_inherited_heap in [ref() for _, ref in worker_process_init.receivers]
    assert gc.get_freeze_count() == 0
    try:
        _freeze_inherited_heap()
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()


def test_the_worker_lowers_its_cpu_priority_but_never_raises_it() -> None:
    """worker_niceness is applied at the worker's start; a process may not lower its
    niceness back without root, so a smaller value leaves it where it is."""
    code = ("import os; from worker.celery_app import lower_cpu_priority as lower; "
            "now = lambda: os.getpriority(os.PRIO_PROCESS, 0); base = now(); "
            "target = min(19, base + 3); lower(target); a = now(); lower(base); lower(0); "
            "print(target, a, now())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2]).stdout.split()
    assert out[0] == out[1] == out[2], out
