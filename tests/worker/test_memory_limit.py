"""A job past its budget fails at once; one whose estimate was wrong runs out of memory under
its address-space limit and fails with that reason; either way the worker lives on (issue 19).

Real `celery worker` processes on the embedded backends; the jobs are stored directly (as an
older release or a lowered limit would leave them), past the API's own checks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.hostile_payloads import PADDED_CONV_ESTIMATES, deep_relus, padded_conv
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


@pytest.mark.parametrize(("padding", "estimate"), PADDED_CONV_ESTIMATES.items())
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


WRONG_ESTIMATE = """
import json, sys
from config.settings import Settings
from store import jobs, tenants
from store.db import make_engine, make_session_factory
from store.migrate import upgrade_to_head
from store.models import Job
from worker.memory_limit import address_space_limit
from worker.runner import JobRunner

settings = Settings(data_dir=sys.argv[1], job_memory_headroom_bytes=64 * 2**20)
upgrade_to_head(settings.database_url)
sessions = make_session_factory(make_engine(settings.database_url))
out = {}
for name, spec, estimate in json.loads(sys.argv[2]):
    with sessions.begin() as s:
        job_id = jobs.create_job(s, tenants.get_or_create(s, "t").id, spec, None).id
    kwargs = {} if estimate is None else {"estimate_fn": lambda *_, e=estimate: e}
    outcome = JobRunner(sessions, settings, job_id, "w", limit_memory=address_space_limit,
                        **kwargs).run()
    with sessions() as s:
        job = s.get(Job, job_id)
        out[name] = [outcome, job.status, job.attempts, job.failure_reason]
print(json.dumps(out))
"""


def test_a_wrong_estimate_fails_the_job_under_its_memory_limit(tmp_path: Path) -> None:
    """The runner as the pool child runs it (limit_memory set), with an estimate that is
    wrong on purpose: 1 byte for a conv whose 16 x 128 x 128 feature maps take hundreds of
    MB. The job fails at once with MemoryError's reason (no retry), the limit is lifted, and
    the same process then runs a job with its real estimate. (The 10^5-ReLU case of the
    issue is no longer one: the dry run now models each layer's scratch, and estimates it at
    1.8 GB against ~1.3 GB measured.)"""
    big = {"name": "big", "dataset": "builtin:digits_images",
           "model": {"layers": [{"type": "conv2d", "filters": 16, "kernel_size": 3,
                                 "padding": 61}, {"type": "flatten"},
                                {"type": "dense", "units": 10}]},
           "training": {"epochs": 1, "batch_size": 32}}
    cases = [["wrong", big, 1], ["real", xor_spec(epochs=2), None]]
    run = subprocess.run([sys.executable, "-c", WRONG_ESTIMATE, str(tmp_path), json.dumps(cases)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    outcome, status, attempts, reason = out["wrong"]
    assert (outcome, status, attempts) == ("failed", "failed", 1), reason
    assert reason.startswith("MemoryError: the job ran out of memory under its limit of ")
    assert "(estimated training memory 1 bytes; the estimate was wrong)" in reason
    assert out["real"][:3] == ["succeeded", "succeeded", 1]


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


def test_a_hundred_thousand_layers_are_refused_by_the_worker_too(embedded: Any) -> None:
    """Stored past the API (which refuses it before parsing), the worker's claim refuses it."""
    with running(embedded(), show_logs=True) as b:
        b.start_worker("w1")
        job = run_job(b, deep_relus(100_000))
        assert (job.status, job.attempts) == ("failed", 1)
        assert "model.layers: 100,001 layers; a model has at most 1,000" in job.failure_reason
