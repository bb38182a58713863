"""Fault 2: the broker restarts while jobs are queued and running.

The shared Redis on 6379 serves other tests, so this one starts its own redis-server
(append-only, fsync always, no RDB) on a free port and kills it with SIGKILL while two workers
hold running jobs and more wait in the queue; it comes back on the same port from its
append-only file. Messages still in the list survive in the AOF; messages a worker had taken
(running or prefetched) sit in Redis's unacked set until the visibility timeout, which is hours:
those jobs are finished by the worker that was running them (it keeps going while the broker
is away: progress lives in PostgreSQL) or revived by `reconcile` once queued too long.

Run twice: "kept" restarts from the AOF; "lost" deletes it first, so Redis comes back empty
and every queued job's message is gone: `reconcile` (queued grace 2 s) must re-send them.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
import sqlalchemy as sa

from store import leases as store_leases
from store.models import Job
from tests.reliability.compare import metric_rows
from tests.reliability.conftest import BackendFactory, wait_all
from tests.reliability.processes import RedisServer
from tests.worker.conftest import create_job

JOBS = 8
EPOCHS = 10


def spec(i: int) -> dict[str, Any]:
    """Digits, batch 1: about a second per job, long enough to be caught running."""
    return {
        "name": f"redis-restart-{i}",
        "dataset": "builtin:digits",
        "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"},
                             {"type": "dense", "units": 10}]},
        "optimizer": {"type": "sgd", "learning_rate": 0.05},
        "training": {"epochs": EPOCHS, "batch_size": 1, "seed": i, "validation_split": 0.2},
        "checkpoints": {"every_epochs": 1, "keep_last": 1, "keep_best": 1,
                        "monitor": "val_loss"},
    }


def statuses(b: Any, job_ids: list[str]) -> dict[str, int]:
    with b.sessions() as s:
        rows = s.execute(sa.select(Job.status, sa.func.count()).where(Job.id.in_(job_ids))
                         .group_by(Job.status))
        return {str(r[0]): int(r[1]) for r in rows}


@pytest.mark.parametrize("data", ["kept", "lost"])
def test_every_job_finishes_across_a_redis_restart(production: BackendFactory,
                                                   private_redis: RedisServer,
                                                   data: str) -> None:
    b = production(broker_url=private_redis.url)
    b.start_worker("w1")
    b.start_worker("w2")
    b.start_beat()
    job_ids = [create_job(b, spec(i)) for i in range(JOBS)]
    for job_id in job_ids:
        b.send(job_id)

    deadline = time.monotonic() + 120
    while statuses(b, job_ids).get("running", 0) < 2:
        assert time.monotonic() < deadline, b.logs()
        time.sleep(0.05)
    before = statuses(b, job_ids)
    private_redis.stop(signal.SIGKILL)
    if data == "lost":
        private_redis.wipe()  # every queued message is gone: only reconcile can revive them
    time.sleep(3.0)  # longer than the queued grace: reconcile must not need Redis to be up
    private_redis.start()
    print(f"at the restart: {before}")
    assert before.get("queued", 0) >= 2 and before.get("running", 0) == 2

    wait_all(b, job_ids, timeout=240, what="every job after the Redis restart")
    assert statuses(b, job_ids) == {"succeeded": JOBS}
    claims = 0
    with b.sessions() as s:
        for job_id in job_ids:
            assert store_leases.overlaps(s, job_id) == []
            held = store_leases.history(s, job_id)
            claims += len(held)
            assert held[-1].outcome == "succeeded"
            assert all(h.outcome == "lost" for h in held[:-1])
    revived = sum(log.read_text(errors="replace").count("reconcile: re-dispatched")
                  for log in b.log_dir.glob("w*.log"))
    print(f"{data}: {JOBS} jobs succeeded with {claims} claims in all; reconcile re-sent "
          f"{revived} times")
    if data == "lost":
        assert revived >= 1
    for job_id in job_ids:
        rows = metric_rows(b, job_id)
        assert sorted({e for e, _, _ in rows}) == list(range(1, EPOCHS + 1))
        assert len(rows) == len({(e, n) for e, n, _ in rows}) == EPOCHS * 6
