"""Fault 1: a worker SIGKILLed in the middle of a job (docs/reliability.md).

Two ways to die mid-epoch:

- "host": the whole process group of the worker running the job (Celery's main process and
  its prefork child), as when a host dies: nothing acks or rejects the message, Redis keeps it
  unacked for the whole visibility timeout, so the job is revived by the periodic `reconcile`
  once its heartbeat is older than the lease (tests/worker/conftest.py FAST_ENV);
- "child": only the prefork child, as the OOM killer does: the main process sees the child
  lost and, with `task_reject_on_worker_lost`, requeues the message at once; that early
  delivery finds the lease still fresh and is refused, and `reconcile` revives the job once
  the heartbeat is stale.

Another process claims it, resumes from the latest checkpoint and finishes. Both on PostgreSQL +
Redis and on the embedded set (SQLite + the kombu filesystem broker, which forgets a killed
worker's unacked message: `reconcile` is the only way back there). Dropout and
shuffling are on, so the resumed run must restore both RNG streams exactly: the final
checkpoint is compared byte for byte with an uninterrupted in-process `core.train` of the
same spec and data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from store import leases as store_leases
from store.statuses import TERMINAL_STATUSES
from tests.reliability.compare import (
    assert_bit_identical,
    assert_checkpoints_sound,
    assert_metrics_match,
    final_checkpoint_blob,
    reference_checkpoint,
)
from tests.reliability.conftest import BackendFactory
from tests.worker.conftest import (
    Backend,
    create_job,
    job_row,
    leases,
    metric_epochs,
    wait_for,
)

EPOCHS = 40


def crash_spec(epochs: int = EPOCHS) -> dict[str, Any]:
    """Digits, dropout and shuffling on, a checkpoint every epoch; batch 1, so 40 epochs take
    a few seconds (0.08 s each in process), several commits of the worker (one a second)."""
    return {
        "name": "crash-digits",
        "dataset": "builtin:digits",
        "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                             {"type": "dropout", "rate": 0.2},
                             {"type": "dense", "units": 10}]},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "adam", "learning_rate": 0.001},
        "training": {"epochs": epochs, "batch_size": 1, "shuffle": True, "seed": 7,
                     "validation_split": 0.2},
        "checkpoints": {"every_epochs": 1, "keep_last": 2, "keep_best": 1,
                        "monitor": "val_loss"},
    }


def workers_holding(b: Backend, job_id: str,
                    workers: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """The worker process whose group contains the lease owner's pid."""
    owner = str(job_row(b, job_id).lease_owner)
    group = os.getpgid(int(owner.split(":")[1]))
    (holder,) = [w for w in workers if w.pid == group]
    return holder


@pytest.mark.parametrize(("backends", "victim"), [
    ("production", "host"), ("production", "child"), ("embedded", "host")])
def test_a_killed_worker_s_job_is_finished_by_another_bit_for_bit(
        request: pytest.FixtureRequest, backends: str, victim: str) -> None:
    make: BackendFactory = request.getfixturevalue(backends)
    b = make()
    spec = crash_spec()
    reference = reference_checkpoint(spec)
    workers = [b.start_worker("w1"), b.start_worker("w2")]  # prefetch 1: one takes the job
    b.start_beat()
    job_id = create_job(b, spec)
    b.send(job_id)

    wait_for(b, job_id, lambda j: j.epoch_done >= 1, timeout=120, what="a first commit")
    time.sleep(0.1)  # into later epochs: their progress since the last commit is lost
    # The lease names the prefork child ("host:pid:delivery").
    child = int(str(job_row(b, job_id).lease_owner).split(":")[1])
    if victim == "host":
        holder = workers_holding(b, job_id, workers)
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    else:
        os.kill(child, signal.SIGKILL)
    killed_time = datetime.now(UTC)
    killed_at = job_row(b, job_id).epoch_done
    assert 1 <= killed_at < EPOCHS

    job = wait_for(b, job_id, lambda j: j.status in TERMINAL_STATUSES,
                   timeout=180, what="the second worker to finish")
    assert (job.status, job.stop_reason, job.epoch_done) == ("succeeded", "epochs_done", EPOCHS)
    assert job.attempts == 2
    held = leases(b, job_id)
    assert [outcome for _, _, outcome in held] == ["lost", "succeeded"]
    assert held[0][1].split(":")[1] != held[1][1].split(":")[1]  # two different processes
    with b.sessions() as s:
        taken_over = store_leases.history(s, job_id)[1].claimed_at
    refused = sum(log.read_text(errors="replace").count(": skipped")
                  for log in b.log_dir.glob("w*.log"))
    print(f"{backends} {victim}: killed after epoch {killed_at} of {EPOCHS}; taken over "
          f"{(taken_over - killed_time).total_seconds():.1f} s after the kill; "
          f"{refused} early redelivery refused")
    if victim == "child":  # the requeued message came before the lease went stale
        assert refused >= 1
    assert metric_epochs(b, job_id) == list(range(1, EPOCHS + 1))
    # one row per (epoch, name), each value equal to the uninterrupted run's, bit for bit
    assert assert_metrics_match(b, job_id, reference) == EPOCHS * 6
    assert assert_bit_identical(final_checkpoint_blob(b, job_id), reference) == 9
    kept = assert_checkpoints_sound(b, job_id)
    assert ("final", EPOCHS) in kept
    assert [e for k, e in kept if k == "periodic"] == [EPOCHS - 1, EPOCHS]
