"""BLAS threads per pool process: cores // concurrency, or WEIGHTSMITH_BLAS_THREADS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from worker.blas import blas_threads_for

# A child process builds a real WorkController (which sends worker_init with its concurrency)
# and runs Celery's own prefork child initializer (which sends worker_process_init), then
# reports what threadpoolctl sees. A subprocess, because the limit is process-wide.
PROBE = """
import json, sys
from celery.concurrency.prefork import process_initializer
from threadpoolctl import threadpool_info
import numpy
from config.settings import Settings
from worker.celery_app import make_celery

def blas():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

before = blas()
app = make_celery(Settings.from_env())
worker = app.WorkController(concurrency=int(sys.argv[1]), pool_cls="prefork",
                            hostname="probe@test")
process_initializer(app, "probe@test")
print(json.dumps({"before": before, "after": blas(), "concurrency": worker.concurrency}))
"""


def probe(tmp_path: Path, concurrency: int, override: str | None = None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTSMITH_")}
    env["WEIGHTSMITH_DATA_DIR"] = str(tmp_path)
    if override is not None:
        env["WEIGHTSMITH_BLAS_THREADS"] = override
    out = subprocess.run([sys.executable, "-c", PROBE, str(concurrency)], env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["before"], "NumPy's BLAS is not visible to threadpoolctl"
    return result


@pytest.mark.parametrize(("cpus", "concurrency", "threads"), [
    (2, 1, 2), (2, 2, 1), (2, 4, 1), (8, 3, 2), (16, 4, 4), (8, None, 1), (1, 1, 1),
])
def test_cores_are_divided_among_the_pool(cpus: int, concurrency: int | None,
                                          threads: int) -> None:
    assert blas_threads_for(Settings(), concurrency, cpus=cpus) == threads


def test_the_override_wins() -> None:
    assert blas_threads_for(Settings(blas_threads=3), 8, cpus=2) == 3


def test_settings_read_the_override() -> None:
    assert Settings.from_env({}).blas_threads is None
    assert Settings.from_env({"WEIGHTSMITH_BLAS_THREADS": "4"}).blas_threads == 4
    with pytest.raises(ValueError, match="WEIGHTSMITH_BLAS_THREADS: must be positive"):
        Settings.from_env({"WEIGHTSMITH_BLAS_THREADS": "0"})


def test_a_pool_child_limits_blas_to_its_share_of_the_cores(tmp_path: Path) -> None:
    cpus = os.cpu_count() or 1
    result = probe(tmp_path, concurrency=cpus)
    assert result["concurrency"] == cpus
    assert result["after"] == [1] * len(result["before"])


def test_a_pool_child_takes_the_environment_override(tmp_path: Path) -> None:
    result = probe(tmp_path, concurrency=1, override="3")
    assert result["after"] == [3] * len(result["before"])
