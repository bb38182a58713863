"""Fault 3: the API dies while a client follows a job's event stream.

`weightsmith api` (gunicorn) runs as a subprocess on a free port with a worker on PostgreSQL +
Redis. A client thread follows `GET /v1/jobs/{id}/events` with service/client.py's `events()`.
Once the worker committed its first epochs, it is paused (SIGSTOP) until the client has seen
them, so the test does not depend on how fast training is; then the API is SIGKILLed (master and
workers: the stream breaks mid-flight), the worker resumes and commits more epochs while no
stream is open, and the API starts again on the same port. The client reconnects with
`Last-Event-ID` and must receive every epoch exactly once, in order, and the final status.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from service.client import Event, WeightsmithClient
from store import tenants
from tests.reliability.conftest import BackendFactory
from tests.reliability.processes import ApiProcess
from tests.worker.conftest import job_row

EPOCHS = 80


def sse_spec() -> dict[str, Any]:
    """Digits with batch 1: some seconds in all, several commits of the worker."""
    return {
        "name": "sse-restart",
        "dataset": "builtin:digits",
        "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"},
                             {"type": "dense", "units": 10}]},
        "optimizer": {"type": "sgd", "learning_rate": 0.01},
        "training": {"epochs": EPOCHS, "batch_size": 1, "seed": 0, "validation_split": 0.2},
        "checkpoints": {"every_epochs": 10, "keep_last": 1, "keep_best": 1,
                        "monitor": "val_loss"},
    }


class Follower(threading.Thread):
    """Collects a job's events with the client's reconnecting `events()`."""

    def __init__(self, client: WeightsmithClient, job_id: str) -> None:
        super().__init__(daemon=True)
        self.client, self.job_id = client, job_id
        self.events: list[tuple[float, Event]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for event in self.client.events(self.job_id):
                self.events.append((time.monotonic(), event))
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    def epochs(self) -> list[int]:
        return [int(e.data["epoch"]) for _, e in self.events if e.event == "epoch"]


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_an_sse_client_misses_no_epoch_across_an_api_restart(
        production: BackendFactory) -> None:
    b = production()
    with b.sessions.begin() as s:
        key = tenants.create_api_key(s, tenants.get_or_create(s, "sse").id)
    api = ApiProcess(b.env, b.log_dir)
    api.start()
    worker = b.start_worker("w1")
    client = WeightsmithClient(api.url, key, timeout=30.0)
    try:
        job_id = client.submit(sse_spec())["id"]
        follower = Follower(client, job_id)
        follower.start()
        wait_until(lambda: job_row(b, job_id).epoch_done >= 1, 120, "a first commit")
        os.killpg(worker.pid, signal.SIGSTOP)
        done_at_kill = job_row(b, job_id).epoch_done
        assert done_at_kill < EPOCHS
        wait_until(lambda: len(follower.epochs()) >= done_at_kill, 60, "the stream to catch up")

        api.kill()
        killed_at = time.monotonic()
        seen_before = follower.epochs()
        os.killpg(worker.pid, signal.SIGCONT)
        # Training goes on without the API: later epochs are committed with no stream open.
        wait_until(lambda: job_row(b, job_id).epoch_done > done_at_kill, 60,
                   "an epoch while the API is down")
        # Stamped before start() returns: the faster front answers the reconnecting client
        # while start() still waits for the port, so the replay may come before it returns.
        restarted_at = time.monotonic()
        api.start()

        follower.join(timeout=120)
        assert not follower.is_alive(), "the client did not reach the end of the stream"
        assert follower.error is None, repr(follower.error)
    finally:
        client.close()
        api.kill()

    print(f"epochs seen before the kill: {seen_before}; API down "
          f"{restarted_at - killed_at:.1f} s")
    assert follower.epochs() == list(range(1, EPOCHS + 1))
    ids = [e.id for _, e in follower.events]
    assert ids == sorted(set(ids)) and None not in ids  # no event twice, none without an id
    # Epochs that happened while the API was down arrived after the restart (the replay).
    replayed = [int(e.data["epoch"]) for t, e in follower.events
                if e.event == "epoch" and t >= restarted_at]
    assert seen_before == list(range(1, done_at_kill + 1))
    assert replayed[0] == done_at_kill + 1
    statuses = [e.data["status"] for _, e in follower.events if e.event == "status"]
    assert "running" in statuses and statuses[-1] == "succeeded"
    assert job_row(b, job_id).status == "succeeded"
