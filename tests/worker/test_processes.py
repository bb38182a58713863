"""The reliability rules (docs/reliability.md) with real processes:
`celery -A worker.celery_app worker` (and beat) as subprocesses, the real NumPy core, on both
backend sets (see conftest.backend).

Jobs are tiny: the xor problem, a few epochs. "Slow" jobs use batch_size 1 on a few thousand
rows so that there is time to stop a worker or cancel mid-epoch.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import sqlalchemy as sa

from store import events
from store.models import Job, Metric
from store.statuses import TERMINAL_STATUSES as TERMINAL
from tests.worker.conftest import (
    Backend,
    cancel,
    create_job,
    job_row,
    kept_checkpoints,
    leases,
    metric_epochs,
    resume,
    upload_xor,
    wait_for,
    xor_spec,
)


def slow_job(b: Backend, epochs: int, rows: int = 3000) -> str:
    """A job of `epochs` epochs of `rows` single-row batches on an uploaded xor-like dataset."""
    dataset_id = upload_xor(b, rows, "xor-big")
    spec = xor_spec(epochs=epochs, batch_size=1, validation_split=0.1)
    spec["dataset"] = dataset_id
    return create_job(b, spec, dataset_id)


def metric_values(b: Backend, job_id: str) -> dict[tuple[int, str], float]:
    with b.sessions() as s:
        rows = s.execute(sa.select(Metric.epoch, Metric.name, Metric.value)
                         .where(Metric.job_id == job_id))
        return {(r.epoch, r.name): r.value for r in rows}


def epoch_events(b: Backend, job_id: str) -> list[int]:
    with b.sessions() as s:
        return [int(e.data["epoch"]) for e in events.after(s, job_id, 0, limit=10_000)
                if e.type == "epoch"]


def test_a_job_succeeds_and_a_resumed_job_continues(backend: Backend) -> None:
    b = backend
    b.start_worker("w1")
    job_id = create_job(b, xor_spec(epochs=3))
    b.send(job_id)
    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, what="the job to end")
    assert (job.status, job.stop_reason, job.epoch_done, job.failure_reason) == (
        "succeeded", "epochs_done", 3, None)
    assert metric_epochs(b, job_id) == [1, 2, 3]
    kept = kept_checkpoints(b, job_id)
    assert [e for k, e in kept if k == "periodic"] == [2, 3]  # keep_last=2
    assert [e for k, e in kept if k == "best"] == [job.best["epoch"]]  # keep_best=1
    assert [e for k, e in kept if k == "final"] == [3]
    before = metric_values(b, job_id)

    with b.sessions.begin() as s:
        s.execute(sa.update(Job).where(Job.id == job_id).values(status="cancelled"))
        resume(s, job_id, extra_epochs=2)
    b.send(job_id)
    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, what="the resumed job to end")
    assert (job.status, job.epoch_done, job.epochs_total) == ("succeeded", 5, 5)
    assert metric_epochs(b, job_id) == [1, 2, 3, 4, 5]
    after = metric_values(b, job_id)
    assert {k: v for k, v in after.items() if k[0] <= 3} == before  # not trained again
    assert epoch_events(b, job_id) == [1, 2, 3, 4, 5]
    assert [e for k, e in kept_checkpoints(b, job_id) if k == "final"] == [5]


def test_the_same_message_twice_runs_the_job_once(backend: Backend) -> None:
    b = backend
    b.start_worker("w1")
    b.start_worker("w2")
    job_id = slow_job(b, epochs=3, rows=1500)
    b.send(job_id)
    b.send(job_id)
    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, timeout=90, what="the job to end")
    assert job.status == "succeeded"
    time.sleep(2.0)  # let the second delivery reach a worker and be refused
    assert len(leases(b, job_id)) == 1
    assert leases(b, job_id)[0][2] == "succeeded"
    assert epoch_events(b, job_id) == [1, 2, 3]


def test_a_stopped_worker_loses_its_lease_and_another_finishes(backend: Backend) -> None:
    b = backend
    epochs = 30  # long enough that the stop lands mid-job
    first = b.start_worker("w1")
    job_id = slow_job(b, epochs=epochs)
    b.send(job_id)
    wait_for(b, job_id, lambda j: j.epoch_done >= 2, timeout=90, what="two epochs")
    os.killpg(first.pid, signal.SIGSTOP)  # the whole group: the prefork child stops beating
    stopped_at = job_row(b, job_id).epoch_done
    b.start_worker("w2")
    b.start_beat()  # reconcile re-sends the job once its heartbeat is stale
    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, timeout=120,
                   what="the second worker to finish")
    assert (job.status, job.epoch_done) == ("succeeded", epochs)
    held = leases(b, job_id)
    assert [outcome for _, _, outcome in held] == ["lost", "succeeded"]
    assert held[0][1] != held[1][1]
    # The second worker resumed from the latest checkpoint: no epoch was reported twice.
    assert epoch_events(b, job_id)[:stopped_at] == list(range(1, stopped_at + 1))
    assert epoch_events(b, job_id) == list(range(1, epochs + 1))
    assert metric_epochs(b, job_id) == list(range(1, epochs + 1))

    os.killpg(first.pid, signal.SIGCONT)  # it wakes up, sees the lost lease, writes nothing
    time.sleep(3.0)
    assert leases(b, job_id) == held
    assert job_row(b, job_id).status == "succeeded"
    assert epoch_events(b, job_id) == list(range(1, epochs + 1))


def test_cancel_stops_between_batches_and_keeps_a_checkpoint(backend: Backend) -> None:
    from core.checkpoint import load_state
    from store import checkpoints

    b = backend
    b.start_worker("w1")
    job_id = slow_job(b, epochs=50)
    b.send(job_id)
    wait_for(b, job_id, lambda j: j.epoch_done >= 1, timeout=90, what="one epoch")
    with b.sessions.begin() as s:
        cancel(s, job_id)
    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, timeout=30, what="cancelled")
    assert (job.status, job.stop_reason) == ("cancelled", "cancelled")
    assert job.epoch_done < 50
    with b.sessions() as s:
        final = [r for r in checkpoints.list_for_job(s, job_id) if r.kind == "final"]
        assert len(final) == 1
        blob = checkpoints.get_blob(s, final[0].id)
    assert blob is not None
    state: Any = load_state(blob)
    # It stopped inside an epoch, at a batch boundary, with that epoch's progress saved.
    assert state.epoch == job.epoch_done
    assert state.partial is not None and 0 <= state.partial["batch"] < 2700


def test_the_attempts_cap_fails_the_job(backend: Backend) -> None:
    b = backend
    b.start_worker("w1")
    job_id = create_job(b, xor_spec(epochs=2))
    with b.sessions.begin() as s:
        s.execute(sa.update(Job).where(Job.id == job_id).values(attempts=3))
    b.send(job_id)
    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, what="the job to fail")
    assert (job.status, job.failure_reason) == ("failed", "exceeded 3 attempts")
    assert metric_epochs(b, job_id) == []


def test_reconcile_revives_a_job_whose_message_was_dropped(backend: Backend) -> None:
    b = backend
    job_id = create_job(b, xor_spec(epochs=2))  # committed, but never sent
    b.start_worker("w1")
    b.start_beat()
    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, timeout=60,
                   what="reconcile to revive the job")
    assert (job.status, job.epoch_done) == ("succeeded", 2)
    assert len(leases(b, job_id)) == 1


def test_an_unexpected_error_is_retried_until_the_attempts_cap(backend: Backend) -> None:
    """A broken metrics table fails every epoch commit: released, retried, then failed."""
    b = backend
    job_id = create_job(b, xor_spec(epochs=2))
    with b.sessions.begin() as s:
        s.execute(sa.text("DROP TABLE metrics"))
    b.start_worker("w1")
    b.send(job_id)
    job = wait_for(b, job_id, lambda j: j.status in TERMINAL, timeout=60,
                   what="three failed tries and the cap")
    assert job.status == "failed"
    assert job.failure_reason.startswith("exceeded 3 attempts; last error: ")
    assert "metrics" in job.failure_reason
    assert [outcome for _, _, outcome in leases(b, job_id)] == [
        "released", "released", "released", "failed"]
