"""A job past its budget fails at once; one whose estimate was wrong runs out of memory under
its address-space limit and fails with that reason; either way the worker lives on (issue 19).

Real `celery worker` processes on the embedded backends; the jobs are stored directly (as an
older release or a lowered limit would leave them), past the API's own checks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.worker.conftest import (
    ROOT,
    Backend,
    create_job,
    make_backend,
    running,
    wait_for,
    xor_spec,
)

TERMINAL = ("succeeded", "failed", "cancelled")


def padded_conv(padding: int) -> dict[str, Any]:
    side = 8 + 2 * padding
    return {
        "name": "padded", "dataset": "builtin:digits_images",
        "model": {"layers": [
            {"type": "conv2d", "filters": 1, "kernel_size": 1, "padding": padding},
            {"type": "max_pool2d", "pool_size": side // 4},
            {"type": "flatten"},
            {"type": "dense", "units": 10},
        ]},
        "training": {"epochs": 1, "batch_size": 32},
    }


def deep_relus(n: int) -> dict[str, Any]:
    return {"name": "deep", "dataset": "builtin:digits",
            "model": {"layers": [{"type": "dense", "units": 10},
                                 *({"type": "activation", "activation": "relu"}
                                   for _ in range(n))]},
            "training": {"epochs": 1, "batch_size": 32}}


@pytest.fixture
def embedded(tmp_path: Path) -> Any:
    def make(**env: str) -> Backend:
        b = make_backend("embedded", tmp_path, None, None)
        b.env.update({f"WEIGHTSMITH_{k.upper()}": v for k, v in env.items()})
        return b
    return make


def run_job(b: Backend, spec: dict[str, Any], timeout: float = 120) -> Any:
    job_id = create_job(b, spec)
    b.send(job_id)
    return wait_for(b, job_id, lambda j: j.status in TERMINAL, timeout=timeout,
                    what="the job to end")


@pytest.mark.parametrize(("padding", "estimate"), [
    (1200, "2,969,303,488 bytes (2.77 GiB)"),
    (100_000, "20,481,638,922,688 bytes (18.6 TiB)"),
])
def test_a_job_past_its_budget_fails_at_once_in_the_worker(
    embedded: Any, padding: int, estimate: str,
) -> None:
    """Padding 100000 was retried three times and failed with "Unable to allocate 4.66 TiB";
    padding 1200 drove the worker to 4.5 GB."""
    with running(embedded(), show_logs=True) as b:
        worker = b.start_worker("w1")
        job = run_job(b, padded_conv(padding))
        assert (job.status, job.attempts) == ("failed", 1)
        assert (f"model.layers[0]: training needs an estimated {estimate} of memory"
                in job.failure_reason)
        assert worker.poll() is None
        assert run_job(b, xor_spec(epochs=2)).status == "succeeded"


def test_a_wrong_estimate_fails_the_job_under_its_memory_limit(embedded: Any) -> None:
    """10^5 ReLU layers (650 parameters): estimated at 0.26 GB of training memory, they
    take ~1.3 GB in one epoch here (7.2 GB in the issue's probe): per-layer scratch the dry
    run does not model. With the layer cap raised out of the way and the headroom lowered to
    128 MiB (the default 1 GiB would let this one through), the limit is what stops them."""
    env = {"max_layers": "200000", "job_memory_headroom_bytes": str(128 * 2**20)}
    with running(embedded(**env), show_logs=True) as b:
        worker = b.start_worker("w1")
        job = run_job(b, deep_relus(100_000), timeout=240)
        assert (job.status, job.attempts) == ("failed", 1), job.failure_reason
        assert job.failure_reason.startswith("MemoryError: the job ran out of memory under its "
                                             "limit of "), job.failure_reason
        assert "(estimated training memory 256," in job.failure_reason
        assert worker.poll() is None
        # the limit was lifted with the job: the same pool process runs the next one
        assert run_job(b, xor_spec(epochs=2)).status == "succeeded"


def test_the_limit_holds_inside_the_block_and_is_restored_after() -> None:
    script = """
import resource, numpy as np
from worker.memory_limit import address_space_limit, mapped_bytes
before = resource.getrlimit(resource.RLIMIT_AS)
with address_space_limit(mapped_bytes() + 200 * 2**20) as limit:
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == limit
    try:
        np.ones(400 * 2**20 // 8)
        print("allocated")
    except MemoryError:
        print("refused")
np.ones(400 * 2**20 // 8)
print(resource.getrlimit(resource.RLIMIT_AS) == before)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["refused", "True"]
