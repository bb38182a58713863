"""Celery's soft time limit, for real: a `celery worker` process (prefork pool, where the pool
parent's timer delivers the soft limit to the child as a signal) and the real NumPy core, on
both backend sets (see conftest.backend).

The runner gives every job ``WEIGHTSMITH_MAX_RUNTIME_S`` as its core budget (capping the spec's
own ``training.max_runtime_s``), and the core checks it between batches: a job of ordinary
batches stops cleanly there (tests/worker/test_runner.py). The soft limit (the same cap plus
``WEIGHTSMITH_SOFT_LIMIT_MARGIN_S``) is the backstop for what that check cannot cut short, so
the job here is ONE batch that outlasts it: the whole dataset through a wide, deep net. The
margins are shrunk to seconds here; the hard limit is far enough away that it never fires.
"""

from __future__ import annotations

import pytest

from config.settings import Settings
from store.statuses import TERMINAL_STATUSES as TERMINAL
from tests.worker.conftest import (
    Backend,
    create_job,
    job_row,
    kept_checkpoints,
    leases,
    upload_xor,
    wait_for,
    xor_spec,
)

MAX_RUNTIME_S = 2
SOFT_MARGIN_S = 1
HARD_MARGIN_S = 60
SOFT_LIMIT_S = MAX_RUNTIME_S + SOFT_MARGIN_S
LIMITS_ENV = {
    "WEIGHTSMITH_MAX_RUNTIME_S": str(MAX_RUNTIME_S),
    "WEIGHTSMITH_SOFT_LIMIT_MARGIN_S": str(SOFT_MARGIN_S),
    "WEIGHTSMITH_HARD_LIMIT_MARGIN_S": str(HARD_MARGIN_S),
    # The job below is estimated at 2.9 GB of training memory, past the 2 GiB default budget.
    "WEIGHTSMITH_MAX_TRAINING_MEMORY_BYTES": str(4 * 2**30),
}


def with_short_limits(b: Backend) -> Backend:
    """The backend with second-scale time limits, for the workers and for the sending app."""
    assert b._celery is None and not b.procs, "set the limits before anything uses them"
    b.env.update(LIMITS_ENV)
    b.settings = Settings.from_env(b.env)
    return b


def one_long_batch_job(b: Backend, epochs: int, rows: int = 8192, width: int = 2048,
                       depth: int = 8) -> str:
    """Epochs of a single full batch of `rows` through `depth` dense layers of `width` units.

    Some 1.6 TFLOP (~3 GB) a batch, made of matrix products of 0.2-1 s: it starts before the
    core's deadline (the cap) and is still running at the soft limit, which lands at the next
    product. Its first epoch never ends. A quarter of it, 2,048 rows, took ~7 s on the 2-core
    machines of sessions 1-4, but ended its epoch inside the 2 s deadline on session 5's,
    whose BLAS is 3-4x faster, and the test failed there. Four times as many rows is the margin.
    """
    dataset_id = upload_xor(b, rows, "xor-wide")
    spec = xor_spec(epochs=epochs, batch_size="full", validation_split=0.0)
    spec["dataset"] = dataset_id
    spec["model"]["layers"] = [
        *[{"type": "dense", "units": width, "activation": "tanh"}] * depth,
        {"type": "dense", "units": 2},
    ]
    spec["checkpoints"]["monitor"] = "loss"  # no validation split
    return create_job(b, spec, dataset_id)


def pid_of(worker_id: str) -> str:
    """The pool process of a lease's worker id (``host:pid:nonce``)."""
    return worker_id.split(":")[1]


def test_the_margins_default_to_one_and_two_minutes_and_come_from_the_env() -> None:
    assert (Settings().soft_limit_margin_s, Settings().hard_limit_margin_s) == (60, 120)
    settings = Settings.from_env(LIMITS_ENV)
    assert (settings.soft_limit_margin_s, settings.hard_limit_margin_s) == (1, 60)
    with pytest.raises(ValueError, match="HARD_LIMIT_MARGIN_S"):
        Settings.from_env({"WEIGHTSMITH_SOFT_LIMIT_MARGIN_S": "120"})


def test_a_job_past_the_soft_limit_fails_and_the_worker_runs_the_next(backend: Backend) -> None:
    b = with_short_limits(backend)
    conf = b.celery.conf
    assert conf.task_soft_time_limit == SOFT_LIMIT_S
    assert conf.task_time_limit == MAX_RUNTIME_S + HARD_MARGIN_S
    assert conf.task_time_limit > conf.task_soft_time_limit

    worker = b.start_worker("w1")
    job_id = one_long_batch_job(b, epochs=3)
    spec = job_row(b, job_id).spec
    assert spec["training"].get("max_runtime_s") is None  # only the service cap applies
    b.send(job_id)
    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, timeout=60,
                   what="the soft time limit to fail the job")
    # Not the core's clean stop (succeeded, max_runtime, a final checkpoint): the backstop.
    assert (job.status, job.stop_reason, job.failure_reason) == (
        "failed", "max_runtime", f"exceeded the runtime limit of {MAX_RUNTIME_S} s")
    assert job.epoch_done == 0  # stopped inside its first batch
    assert kept_checkpoints(b, job_id) == []
    # Celery's timer counts from when the pool process took the task, a little after the
    # claim stamped started_at; the hard limit is nowhere near.
    ran = (job.finished_at - job.started_at).total_seconds()
    assert SOFT_LIMIT_S - 0.5 <= ran < MAX_RUNTIME_S + HARD_MARGIN_S, ran
    held = leases(b, job_id)
    assert [outcome for _, _, outcome in held] == ["failed"]
    assert f"Soft time limit ({SOFT_LIMIT_S}s) exceeded" in b.logs()

    # The same worker, and the same pool process (the soft limit killed nothing), runs on.
    next_id = create_job(b, xor_spec(epochs=2))
    b.send(next_id)
    nxt = wait_for(b, next_id, lambda j: j.status in TERMINAL, timeout=60,
                   what="the next job to end")
    assert (nxt.status, nxt.stop_reason, nxt.epoch_done) == ("succeeded", "epochs_done", 2)
    assert worker.poll() is None
    assert pid_of(leases(b, next_id)[0][1]) == pid_of(held[0][1])
