"""A worker SIGKILLed in the middle of a batch prediction: every row is scored exactly once.

The whole process group of the worker holding the batch is killed (as when a host dies); the
periodic `reconcile` re-sends `score_batch` once the heartbeat is older than the lease, the
other worker claims it and resumes at the first missing chunk. The result is compared with
the network's own predict over the same rows, and the chunks with 0, 1, ..., n - 1.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from store import batches
from store import checkpoints as store_checkpoints
from store.models import BatchChunk, BatchPrediction, Tenant
from tests.reliability.compare import reference_checkpoint
from tests.reliability.conftest import BackendFactory
from tests.reliability.test_worker_crash import crash_spec
from tests.worker.conftest import Backend
from worker.celery_app import SCORE_BATCH_TASK

CHUNK_ROWS = 3  # 599 chunks of digits: a few seconds of commits, time enough to kill it


def batch_row(b: Backend, batch_id: str) -> BatchPrediction:
    with b.sessions() as s:
        row = s.get(BatchPrediction, batch_id)
        assert row is not None
        return row


def wait_batch(b: Backend, batch_id: str, predicate: Any, timeout: float, what: str
               ) -> BatchPrediction:
    deadline = time.monotonic() + timeout
    while True:
        row = batch_row(b, batch_id)
        if predicate(row):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {row.status} "
                                 f"{row.rows_done}/{row.rows_total}\n{b.logs()}")
        time.sleep(0.02)


@pytest.mark.parametrize("backends", ["production", "embedded"])
def test_a_killed_worker_s_batch_is_finished_by_another_with_each_row_once(
        request: pytest.FixtureRequest, backends: str) -> None:
    from core.checkpoint import load_checkpoint
    from core.datasets import load_builtin

    make: BackendFactory = request.getfixturevalue(backends)
    b = make()
    blob = reference_checkpoint(crash_spec(epochs=1))
    X = np.asarray(load_builtin("digits").X)
    with b.sessions.begin() as s:
        tenant = Tenant(name="acme")
        s.add(tenant)
        s.flush()
        checkpoint = store_checkpoints.import_checkpoint(s, tenant.id, blob=blob)
        batch = batches.create(s, tenant.id, checkpoint_id=checkpoint.id,
                               dataset_id="builtin:digits", result_format="npy",
                               rows_total=len(X), chunk_rows=CHUNK_ROWS)
        batch_id = batch.id
    workers = [b.start_worker("w1"), b.start_worker("w2")]
    b.start_beat()
    b.celery.send_task(SCORE_BATCH_TASK, args=[batch_id])

    row = wait_batch(b, batch_id, lambda r: r.rows_done >= 10 * CHUNK_ROWS, 120,
                     "the first chunks")
    group = os.getpgid(int(str(row.lease_owner).split(":")[1]))
    (holder,) = [w for w in workers if w.pid == group]
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    killed_at = batch_row(b, batch_id).rows_done
    assert killed_at < len(X), "the batch ended before the kill: make it longer"

    done = wait_batch(b, batch_id, lambda r: r.status in batches.TERMINAL, 180,
                      "the other worker to finish")
    assert (done.status, done.rows_done, done.attempts) == ("succeeded", len(X), 2)
    with b.sessions() as s:
        indexes = list(s.scalars(sa.select(BatchChunk.chunk_index)
                                 .where(BatchChunk.batch_id == batch_id)
                                 .order_by(BatchChunk.chunk_index)))
        outputs = b"".join(data for _, data in batches.chunks(s, batch_id))
    assert indexes == list(range(-(-len(X) // CHUNK_ROWS)))
    got = np.frombuffer(outputs, dtype=np.float64).reshape(len(X), -1)
    network = load_checkpoint(blob)
    # Bit for bit against the same chunks scored in one process (a float32 GEMM's last bits
    # depend on its batch size), and close to one predict over all the rows.
    by_chunk = np.concatenate([network.predict(X[i:i + CHUNK_ROWS])
                               for i in range(0, len(X), CHUNK_ROWS)])
    np.testing.assert_array_equal(got, by_chunk)
    np.testing.assert_allclose(got, network.predict(X), rtol=1e-5, atol=1e-6)
    print(f"{backends}: killed at {killed_at} of {len(X)} rows")
