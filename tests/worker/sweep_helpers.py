"""Drive a sweep in process: steps and trial runs from a recorded queue, in FIFO order."""

from __future__ import annotations

import copy
from typing import Any

from core.sweeps import SweepSpec
from store import sweeps, tenants
from tests.worker.conftest import Backend
from worker.celery_app import SWEEP_STEP_TASK, TRAIN_TASK
from worker.runner import JobRunner
from worker.sweep_controller import deadline
from worker.sweep_tasks import after_job, run_step

BASE: dict[str, Any] = {
    "name": "moons-trial",
    "dataset": "builtin:moons",
    "model": {"layers": [{"type": "dense", "units": 8, "activation": "tanh"},
                         {"type": "dense", "units": 2}]},
    "optimizer": {"type": "sgd", "learning_rate": 0.05},
    "training": {"epochs": 9, "batch_size": 32, "validation_split": 0.25, "seed": 3},
    "checkpoints": {"every_epochs": 1, "keep_last": 1, "keep_best": 1},
}


def sweep_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "moons-sweep",
        "base": copy.deepcopy(BASE),
        "space": {
            "optimizer.learning_rate": {"log_uniform": [1e-3, 0.5]},
            "model.layers[0].units": {"choice": [4, 8, 16]},
            "optimizer.momentum": {"uniform": [0.0, 0.9], "when": {"optimizer.type": "sgd"}},
            "optimizer.type": {"choice": ["sgd", "adam"]},
        },
        "search": {"method": "random", "seed": 7, "max_trials": 6, "max_concurrent": 2},
        "scheduler": {"type": "asha", "metric": "val_accuracy", "grace_epochs": 1,
                      "reduction_factor": 3},
        "max_retries": 1,
    }
    body.update(changes)
    return body


class Queue:
    """A stand-in for the Celery app: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send_task(self, name: str, args: list[str], **_: Any) -> None:
        self.sent.append((name, args[0]))


def create_sweep(b: Backend, body: dict[str, Any]) -> str:
    spec = SweepSpec.from_dict(body, max_trials=100, max_concurrent=8)
    with b.sessions.begin() as s:
        tenant = tenants.get_or_create(s, "test")
        sweep, _ = sweeps.create(s, tenant.id, spec.to_dict(), name=spec.name or "sweep",
                                 idempotency_key=None, request_hash=None,
                                 deadline_at=deadline(spec))
        return sweep.id


def drive(b: Backend, sweep_id: str, *, queue: Queue | None = None,
          max_messages: int = 500) -> list[str]:
    """Deliver messages until none are left; the jobs run, in order."""
    queue = queue or Queue()
    queue.sent.append((SWEEP_STEP_TASK, sweep_id))
    ran: list[str] = []
    for _ in range(max_messages):
        if not queue.sent:
            return ran
        name, arg = queue.sent.pop(0)
        if name == TRAIN_TASK:
            if JobRunner(b.sessions, b.settings, arg, "w1").run() != "skipped":
                ran.append(arg)
                after_job(queue, b.sessions, b.settings, arg)
        elif name == SWEEP_STEP_TASK:
            run_step(queue, b.sessions, b.settings, arg)
    raise AssertionError(f"still messages after {max_messages}: {queue.sent[:5]}")
