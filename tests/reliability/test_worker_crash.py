"""Fault 1: a worker SIGKILLed in the middle of a job (DESIGN §7).

The whole process group of the first worker (Celery's main process and its prefork child) is
killed mid-epoch, as when a host dies: nothing acks or rejects the message, Redis keeps it
unacked for the whole visibility timeout, so the job is revived by the periodic `reconcile`
once its heartbeat is older than the lease (3 s here). A second worker claims it, resumes from
the latest checkpoint and finishes. Dropout and shuffling are on, so the resumed run must
restore both RNG streams exactly: the final checkpoint is compared byte for byte with an
uninterrupted in-process `core.train` of the same spec and data.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from tests.reliability.conftest import (
    BackendFactory,
    assert_bit_identical,
    assert_checkpoints_sound,
    assert_metrics_match,
    final_checkpoint_blob,
    reference_checkpoint,
)
from tests.worker.conftest import create_job, job_row, leases, metric_epochs, wait_for

EPOCHS = 8


def crash_spec() -> dict[str, Any]:
    """Digits, dropout and shuffling on, a checkpoint every epoch; ~0.4 s per epoch (batch 1)."""
    return {
        "name": "crash-digits",
        "dataset": "builtin:digits",
        "model": {"layers": [{"type": "dense", "units": 32, "activation": "relu"},
                             {"type": "dropout", "rate": 0.2},
                             {"type": "dense", "units": 10}]},
        "loss": {"type": "cross_entropy"},
        "optimizer": {"type": "adam", "learning_rate": 0.001},
        "training": {"epochs": EPOCHS, "batch_size": 1, "shuffle": True, "seed": 7,
                     "validation_split": 0.2},
        "checkpoints": {"every_epochs": 1, "keep_last": 2, "keep_best": 1,
                        "monitor": "val_loss"},
    }


def test_a_killed_worker_s_job_is_finished_by_another_bit_for_bit(
        production: BackendFactory) -> None:
    b = production()
    spec = crash_spec()
    reference = reference_checkpoint(spec)
    first = b.start_worker("w1")
    b.start_worker("w2")  # idle: prefetch 1 and one message in flight
    b.start_beat()
    job_id = create_job(b, spec)
    b.send(job_id)

    wait_for(b, job_id, lambda j: j.epoch_done >= 3, timeout=120, what="three epochs")
    time.sleep(0.15)  # into the fourth epoch: its progress since the checkpoint is lost
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    killed_at = job_row(b, job_id).epoch_done
    assert 3 <= killed_at < EPOCHS

    job = wait_for(b, job_id, lambda j: j.status in ("succeeded", "failed", "cancelled"),
                   timeout=180, what="the second worker to finish")
    assert (job.status, job.stop_reason, job.epoch_done) == ("succeeded", "epochs_done", EPOCHS)
    assert job.attempts == 2
    held = leases(b, job_id)
    assert [outcome for _, _, outcome in held] == ["lost", "succeeded"]
    assert held[0][1].split(":")[1] != held[1][1].split(":")[1]  # two different processes
    assert metric_epochs(b, job_id) == list(range(1, EPOCHS + 1))
    # one row per (epoch, name), each value equal to the uninterrupted run's, bit for bit
    assert assert_metrics_match(b, job_id, reference) == EPOCHS * 6
    assert assert_bit_identical(final_checkpoint_blob(b, job_id), reference) == 9
    kept = assert_checkpoints_sound(b, job_id)
    assert ("final", EPOCHS) in kept
    assert [e for k, e in kept if k == "periodic"] == [EPOCHS - 1, EPOCHS]
