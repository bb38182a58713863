"""A learning-rate range test run by a real `celery worker` process on both backend sets: it
ends succeeded with the series the core computes in this process (the same bits), stores its
result and no checkpoint."""

from __future__ import annotations

from typing import Any

from core.datasets import load_builtin
from core.lr_range_test import RangeTest, RangeTestSpec
from core.spec import Spec
from core.training import train
from store import lr_range_tests
from tests.worker.conftest import Backend, create_job, kept_checkpoints, wait_for

SPEC: dict[str, Any] = {
    "name": "lr-range", "dataset": "builtin:digits",
    "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"},
                         {"type": "dropout", "rate": 0.1}, {"type": "dense", "units": 10}]},
    "optimizer": {"type": "adam"},
    "training": {"batch_size": 32, "seed": 2, "validation_split": 0.1},
}
RANGE = RangeTestSpec(1e-5, 50.0, 120)  # 1618 training rows, 51 batches an epoch: 3 epochs


def test_the_worker_runs_a_range_test_to_the_core_s_own_series(backend: Backend) -> None:
    b = backend
    digits = load_builtin("digits")
    job_spec = RANGE.job_spec(Spec.from_dict(SPEC).to_dict(), digits.X.shape[0])
    job_id = create_job(b, job_spec)
    with b.sessions.begin() as s:
        lr_range_tests.create(s, job_id, RANGE.min_lr, RANGE.max_lr, RANGE.steps)
    b.start_worker("w1")
    b.send(job_id)
    job = wait_for(b, job_id, lambda j: j.status in ("succeeded", "failed"), timeout=120,
                   what="the range test to end")
    assert job.status == "succeeded", (job.stop_reason, job.failure_reason, b.logs())

    here = RangeTest(RANGE)
    train(job_spec, digits.X, digits.y, batch_lr=here.rate)
    with b.sessions() as s:
        row = lr_range_tests.get(s, job_id)
        assert row is not None and row.result is not None
        stored = row.result
    assert job.stop_reason == here.stop_reason and job.stop_reason in (
        "loss_exceeded", "loss_not_finite")
    assert stored == here.result()  # JSON round trip of float64: the same bits
    assert 10 < len(stored["series"]) < RANGE.steps and stored["suggestion"] is not None
    assert kept_checkpoints(b, job_id) == []
