"""The bridge from training callbacks to the store, in-process, with FakeTrainer for core.train.

The lease, heartbeat, cancel and checkpoint-policy machinery is checked here batch by batch;
test_processes.py repeats the important cases with the real core in real worker processes.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core.errors import DatasetError
from core.spec import Spec
from store import claims
from store.columns import utcnow
from store.models import Job
from tests.worker.conftest import (
    Backend,
    cancel,
    create_job,
    job_row,
    kept_checkpoints,
    leases,
    metric_epochs,
    resume,
    xor_spec,
)
from tests.worker.fakes import FakeTrainer, decode
from worker import store_ops
from worker.runner import JobRunner


class Ticks:
    """A clock that moves 0.25 s per reading: every should_stop polls the database."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


def fake_data(_s: Any, claimed: store_ops.Claimed, _settings: Any) -> tuple[Any, Any, Any]:
    return Spec.from_dict(claimed.spec), None, None


def runner(b: Backend, job_id: str, trainer: FakeTrainer, worker: str = "w1") -> JobRunner:
    return JobRunner(b.sessions, b.settings, job_id, worker, train_fn=trainer,
                     data_fn=fake_data, estimate_fn=None, clock=Ticks())


def final_blob(b: Backend, job_id: str) -> bytes:
    with b.sessions() as s:
        blob = store_ops.latest_checkpoint_blob(s, job_id)
    assert blob is not None
    return blob


def test_a_job_runs_to_succeeded_with_metrics_and_the_policy_checkpoints(
    sqlite_backend: Backend,
) -> None:
    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=4))
    # Epoch 3 is the best by val_loss; epochs 1, 2 and 4 are not.
    trainer = FakeTrainer(losses=[0.9, 0.8, 0.1, 0.5])
    assert runner(b, job_id, trainer).run() == "succeeded"
    job = job_row(b, job_id)
    assert (job.status, job.stop_reason, job.epoch_done, job.attempts) == (
        "succeeded", "epochs_done", 4, 1)
    assert job.best["epoch"] == 3
    assert job.latest["loss"] == 0.5
    assert metric_epochs(b, job_id) == [1, 2, 3, 4]
    # keep_last=2 periodic, keep_best=1 best, and the final one.
    assert kept_checkpoints(b, job_id) == [
        ("best", 3), ("final", 4), ("periodic", 3), ("periodic", 4)]
    assert leases(b, job_id) == [(1, "w1", "succeeded")]


def test_cancel_stops_at_the_next_batch_and_keeps_a_checkpoint(sqlite_backend: Backend) -> None:
    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=5))

    def cancel_in_epoch_2_batch_1(epoch: int, batch: int) -> None:
        if (epoch, batch) == (1, 1):
            with b.sessions.begin() as s:
                cancel(s, job_id)

    trainer = FakeTrainer(batches=6, on_batch=cancel_in_epoch_2_batch_1)
    assert runner(b, job_id, trainer).run() == "cancelled"
    job = job_row(b, job_id)
    assert (job.status, job.stop_reason, job.epoch_done) == ("cancelled", "cancelled", 1)
    # Batch index 1 ran, so should_stop stopped it before batch index 2: within one batch.
    assert decode(final_blob(b, job_id)) == (1, 2)
    assert ("final", 1) in kept_checkpoints(b, job_id)


@pytest.mark.postgres
@pytest.mark.redis
def test_a_poll_connection_the_database_dropped_is_replaced(postgres_backend: Backend) -> None:
    b = postgres_backend
    job_id = create_job(b, xor_spec(epochs=5))
    dropped: list[int] = []

    def drop_then_cancel(epoch: int, batch: int) -> None:
        if (epoch, batch) == (0, 2):  # polls have run: the run holds its poll connection
            assert run._poll_conn is not None
            pid = run._poll_conn.connection.driver_connection.info.backend_pid
            with b.sessions() as s:
                dropped.append(s.scalar(sa.text("SELECT pg_terminate_backend(:pid)::int"),
                                        {"pid": pid}))
        if (epoch, batch) == (1, 1):
            with b.sessions.begin() as s:
                cancel(s, job_id)

    run = runner(b, job_id, FakeTrainer(batches=6, on_batch=drop_then_cancel))
    assert run.run() == "cancelled"  # the next poll reconnected, and a later one saw the flag
    assert dropped == [1] and run._poll_conn is None  # closed with the run
    job = job_row(b, job_id)
    assert (job.status, job.epoch_done, job.attempts) == ("cancelled", 1, 1)


def test_resume_continues_from_the_cancel_checkpoint(sqlite_backend: Backend) -> None:
    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=3))

    def cancel_at(epoch: int, batch: int) -> None:
        if (epoch, batch) == (1, 0):
            with b.sessions.begin() as s:
                cancel(s, job_id)

    trainer = FakeTrainer(on_batch=cancel_at)
    assert runner(b, job_id, trainer).run() == "cancelled"
    with b.sessions.begin() as s:
        resume(s, job_id, extra_epochs=2)
    trainer.on_batch = None
    assert runner(b, job_id, trainer, worker="w2").run() == "succeeded"
    assert trainer.calls[1]["resume"] == (1, 1)
    job = job_row(b, job_id)
    assert (job.status, job.epoch_done, job.epochs_total) == ("succeeded", 5, 5)
    assert metric_epochs(b, job_id) == [1, 2, 3, 4, 5]
    assert [kind for kind, _ in kept_checkpoints(b, job_id)].count("final") == 1


def test_a_second_delivery_while_running_is_skipped(sqlite_backend: Backend) -> None:
    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=2))
    outcomes: list[str] = []

    def deliver_again(epoch: int, batch: int) -> None:
        if (epoch, batch) == (0, 1):
            outcomes.append(runner(b, job_id, FakeTrainer(), worker="w2").run())

    assert runner(b, job_id, FakeTrainer(on_batch=deliver_again)).run() == "succeeded"
    assert outcomes == ["skipped"]
    assert leases(b, job_id) == [(1, "w1", "succeeded")]


def test_a_worker_that_lost_its_lease_stops_and_writes_nothing(sqlite_backend: Backend) -> None:
    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=3))

    def steal(epoch: int, batch: int) -> None:
        if (epoch, batch) == (1, 2):
            # Epoch 1's commit runs on the writer thread: let it land, then take the job over.
            deadline = time.monotonic() + 10
            while job_row(b, job_id).epoch_done < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            with b.sessions.begin() as s:
                s.execute(sa.update(Job).where(Job.id == job_id)
                          .values(heartbeat_at=utcnow() - timedelta(seconds=60)))
                assert claims.claim_job(s, job_id, "thief", b.settings.lease_timeout_s)

    assert runner(b, job_id, FakeTrainer(on_batch=steal)).run() == "lease_lost"
    job = job_row(b, job_id)
    assert (job.status, job.lease_owner, job.epoch_done) == ("running", "thief", 1)
    assert metric_epochs(b, job_id) == [1]
    assert "final" not in [kind for kind, _ in kept_checkpoints(b, job_id)]
    assert leases(b, job_id) == [(1, "w1", "lost"), (2, "thief", None)]


def test_the_attempts_cap_fails_the_job_with_its_reason(sqlite_backend: Backend) -> None:
    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=2))
    with b.sessions.begin() as s:
        s.execute(sa.update(Job).where(Job.id == job_id)
                  .values(attempts=3, failure_reason="OSError: disk full"))
    trainer = FakeTrainer()
    assert runner(b, job_id, trainer).run() == "failed"
    job = job_row(b, job_id)
    assert job.status == "failed"
    assert job.failure_reason == "exceeded 3 attempts; last error: OSError: disk full"
    assert trainer.calls == []


def test_a_bad_dataset_fails_at_once_and_an_unexpected_error_is_released(
    sqlite_backend: Backend,
) -> None:
    b = sqlite_backend
    bad, flaky = create_job(b, xor_spec()), create_job(b, xor_spec())

    def no_data(*_: Any) -> Any:
        raise DatasetError("row 7: label 3 is out of range")

    r = JobRunner(b.sessions, b.settings, bad, "w1", train_fn=FakeTrainer(), data_fn=no_data)
    assert r.run() == "failed"
    assert job_row(b, bad).failure_reason == "DatasetError: row 7: label 3 is out of range"

    def boom(*_: Any) -> Any:
        raise RuntimeError("database went away")

    r = JobRunner(b.sessions, b.settings, flaky, "w1", train_fn=FakeTrainer(), data_fn=boom)
    with pytest.raises(RuntimeError):
        r.run()
    with b.sessions.begin() as s:
        assert store_ops.release_for_retry(s, flaky, "w1", "RuntimeError: database went away") == 1
    job = job_row(b, flaky)
    assert (job.status, job.lease_owner, job.attempts) == ("queued", None, 1)
    assert leases(b, flaky) == [(1, "w1", "released")]


def xor_data(_s: Any, claimed: store_ops.Claimed, _settings: Any) -> tuple[Any, Any, Any]:
    import numpy as np

    from core.spec import Spec

    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 2))
    return Spec.from_dict(claimed.spec), X, (X[:, 0] * X[:, 1] > 0).astype(np.int64)


def test_real_core_cancel_then_resume_equals_an_uninterrupted_run(
    sqlite_backend: Backend,
) -> None:
    """Through the bridge and the store, a resume continues bit for bit (docs/reliability.md)."""
    import numpy as np

    from core.checkpoint import load_checkpoint

    b = sqlite_backend
    spec = {**xor_spec(epochs=4, batch_size=4), "dataset": "ds_in_memory"}  # see xor_data
    straight, interrupted = create_job(b, spec), create_job(b, spec)
    r = JobRunner(b.sessions, b.settings, straight, "w1", data_fn=xor_data, clock=Ticks())
    assert r.run() == "succeeded"

    class CancelMidway(JobRunner):
        """Asks for a cancel before batch 20: epoch 2 of 4 (12 batches per epoch)."""

        batches = 0

        def should_stop(self) -> bool:
            self.batches += 1
            if self.batches == 20:
                with b.sessions.begin() as s:
                    cancel(s, interrupted)
            return super().should_stop()

    r2 = CancelMidway(b.sessions, b.settings, interrupted, "w2", data_fn=xor_data, clock=Ticks())
    assert r2.run() == "cancelled"
    assert job_row(b, interrupted).epoch_done == 1
    with b.sessions.begin() as s:
        resume(s, interrupted)
    r3 = JobRunner(b.sessions, b.settings, interrupted, "w3", data_fn=xor_data, clock=Ticks())
    assert r3.run() == "succeeded"

    a = load_checkpoint(final_blob(b, straight)).params
    c = load_checkpoint(final_blob(b, interrupted)).params
    assert sorted(a) == sorted(c) == ["0.bias", "0.weight", "1.bias", "1.weight"]
    for name in a:
        np.testing.assert_array_equal(a[name], c[name])
    assert metric_values_equal(b, straight, interrupted)


def metric_values_equal(b: Backend, one: str, other: str) -> bool:
    from store import metrics

    with b.sessions() as s:
        first = [(m["epoch"], m["loss"], m["val_loss"]) for m in metrics.history(s, one)]
        second = [(m["epoch"], m["loss"], m["val_loss"]) for m in metrics.history(s, other)]
    assert len(first) == 4
    return first == second


def test_short_epochs_are_committed_together_with_only_the_kept_checkpoints(
    sqlite_backend: Backend,
) -> None:
    """A clock that never moves: every epoch is pending until the end, then one commit."""
    from store import events

    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=6))
    trainer = FakeTrainer(losses=[0.9, 0.2, 0.8, 0.7, 0.6, 0.5])  # the best is epoch 2
    seen: list[int] = []

    def watch(epoch: int, batch: int) -> None:
        if batch == 0:
            seen.append(len(metric_epochs(b, job_id)))

    trainer.on_batch = watch
    r = JobRunner(b.sessions, b.settings, job_id, "w1", train_fn=trainer, data_fn=fake_data,
                  estimate_fn=None,
                  clock=lambda: 0.0)
    assert r.run() == "succeeded"
    assert seen == [0, 0, 0, 0, 0, 0]  # nothing was written while training
    # Epochs 3 and 4 would be pruned by 5 and 6 (keep_last=2): their state is not even
    # copied. Epoch 1 was a best until epoch 2 (keep_best=1): copied, never serialised.
    assert trainer.copied == [1, 2, 5, 6]
    assert trainer.serialised == [2, 5, 6]
    assert metric_epochs(b, job_id) == [1, 2, 3, 4, 5, 6]
    assert kept_checkpoints(b, job_id) == [
        ("best", 2), ("final", 6), ("periodic", 5), ("periodic", 6)]
    with b.sessions() as s:
        log = [(e.seq, e.type, e.data.get("epoch")) for e in events.after(s, job_id)]
    # queued (the submission), running, six epochs, succeeded.
    assert log == [(1, "status", None), (2, "status", None),
                   *[(i + 2, "epoch", i) for i in range(1, 7)], (9, "status", None)]
    assert job_row(b, job_id).best["epoch"] == 2


@pytest.mark.parametrize(("interval_s", "written_while_training"), [(1.0, True), (1e9, False)])
def test_the_commit_interval_setting_decides_when_epochs_are_written(
    sqlite_backend: Backend, interval_s: float, written_while_training: bool,
) -> None:
    """The clock moves 0.25 s per reading: commits come every few epochs at 1 s, and not
    until the end with an interval longer than the run."""
    import dataclasses

    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=8))
    trainer = FakeTrainer()
    seen: list[int] = []

    def watch(epoch: int, batch: int) -> None:
        if batch == 0:
            seen.append(len(metric_epochs(b, job_id)))

    trainer.on_batch = watch
    settings = dataclasses.replace(b.settings, commit_interval_s=interval_s)
    r = JobRunner(b.sessions, settings, job_id, "w1", train_fn=trainer, data_fn=fake_data,
                  estimate_fn=None,
                  clock=Ticks())
    assert r.run() == "succeeded"
    assert any(seen) is written_while_training
    assert metric_epochs(b, job_id) == list(range(1, 9))


def test_the_service_runtime_cap_stops_a_job_cleanly_in_the_core(
    sqlite_backend: Backend,
) -> None:
    """No training.max_runtime_s in the spec: settings.limits.max_runtime_s is its budget.

    The core stops between batches, so the job ends as a spec's own budget ends it (succeeded,
    stop_reason max_runtime) with a resumable final checkpoint, long before Celery's soft
    limit (the cap plus its margin) would fail it and lose the epochs since the last commit.
    """
    import time

    from config.settings import Limits
    from core.checkpoint import load_state

    b = sqlite_backend
    settings = b.settings.with_overrides(limits=Limits(max_runtime_s=1))
    epochs = 100_000  # minutes of training, were it not for the cap
    spec = {**xor_spec(epochs=epochs, batch_size=4), "dataset": "ds_in_memory"}  # see xor_data
    job_id = create_job(b, spec)
    began = time.monotonic()
    r = JobRunner(b.sessions, settings, job_id, "w1", data_fn=xor_data)
    assert r.run() == "succeeded"
    took = time.monotonic() - began
    assert 1.0 <= took < 1.0 + settings.soft_limit_margin_s, took
    job = job_row(b, job_id)
    assert (job.status, job.stop_reason, job.failure_reason) == (
        "succeeded", "max_runtime", None)
    assert 0 < job.epoch_done < epochs
    assert job.spec["training"].get("max_runtime_s") is None  # the stored spec is untouched
    assert ("final", job.epoch_done) in kept_checkpoints(b, job_id)
    state = load_state(final_blob(b, job_id))
    assert state.epoch == job.epoch_done
    assert state.spec["training"]["max_runtime_s"] is None  # nor is the checkpoint's
    assert len(metric_epochs(b, job_id)) == job.epoch_done
    assert leases(b, job_id) == [(1, "w1", "succeeded")]


@pytest.mark.parametrize("still_ours", [True, False])
def test_the_soft_time_limit_reports_what_finish_did(
    sqlite_backend: Backend, monkeypatch: pytest.MonkeyPatch, still_ours: bool,
) -> None:
    """worker.tasks.train_job's backstop: "failed" when it failed the job, "lease_lost" when
    another worker had taken the job over (and nothing was written)."""
    from celery.exceptions import SoftTimeLimitExceeded

    from worker import engines, tasks
    from worker.celery_app import TRAIN_TASK, make_celery

    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=2))

    class OverrunRunner(JobRunner):
        def run(self) -> str:
            with self.sessions.begin() as s:
                assert store_ops.claim(s, self.job_id, self.worker_id, self.settings)
                if not still_ours:
                    s.execute(sa.update(Job).where(Job.id == job_id)
                              .values(heartbeat_at=utcnow() - timedelta(seconds=60)))
                    assert claims.claim_job(s, job_id, "thief", b.settings.lease_timeout_s)
            raise SoftTimeLimitExceeded()

    monkeypatch.setattr(tasks, "JobRunner", OverrunRunner)
    app = make_celery(b.settings)
    app.loader.import_default_modules()
    try:
        outcome = app.tasks[TRAIN_TASK](job_id)
    finally:
        engine = engines.ENGINES.pop(b.settings.database_url, None)
        if engine is not None:
            engine.dispose()
    job = job_row(b, job_id)
    if still_ours:
        assert outcome == "failed"
        assert (job.status, job.stop_reason, job.failure_reason) == (
            "failed", "max_runtime",
            f"exceeded the runtime limit of {b.settings.limits.max_runtime_s} s")
    else:
        assert outcome == "lease_lost"
        assert (job.status, job.lease_owner, job.stop_reason) == ("running", "thief", None)


def test_a_restored_run_s_final_checkpoint_carries_the_restored_epoch_s_metrics(
    sqlite_backend: Backend,
) -> None:
    """restore_best puts the best epoch's weights in the final checkpoint: its metrics too."""
    import numpy as np

    from core.checkpoint import load_checkpoint
    from store import checkpoints, metrics

    b = sqlite_backend
    spec = {**xor_spec(epochs=8, batch_size=4,
                       early_stopping={"monitor": "val_loss", "patience": 100,
                                       "restore_best": True}),
            "dataset": "ds_in_memory", "optimizer": {"type": "sgd", "learning_rate": 2.0}}
    spec["checkpoints"] = {"every_epochs": 1, "keep_last": 8, "keep_best": 1,
                           "monitor": "val_loss"}
    job_id = create_job(b, spec)
    r = JobRunner(b.sessions, b.settings, job_id, "w1", data_fn=xor_data, clock=Ticks())
    assert r.run() == "succeeded"
    with b.sessions() as s:
        history = {m["epoch"]: m for m in metrics.history(s, job_id)}
        rows = checkpoints.list_for_job(s, job_id)
        final = next(c for c in rows if c.kind == "final")
        periodic = {c.epoch: c for c in rows if c.kind == "periodic"}
        blobs = {c.id: checkpoints.get_blob(s, c.id) for c in rows}
    best = min(history, key=lambda e: history[e]["val_loss"])
    assert best < 8  # the set-up must move past its best epoch, else the test proves nothing
    assert final.epoch == 8  # where the run stopped: a resume continues from there
    assert final.metrics["val_loss"] == history[best]["val_loss"] != history[8]["val_loss"]
    assert final.metrics["loss"] == history[best]["loss"]
    restored = load_checkpoint(blobs[final.id]).params
    of_best = load_checkpoint(blobs[periodic[best].id]).params
    for name in of_best:
        np.testing.assert_array_equal(restored[name], of_best[name])


def blow_up_data(_s: Any, claimed: store_ops.Claimed, _settings: Any) -> tuple[Any, Any, Any]:
    import numpy as np

    from core.spec import Spec

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4))
    return Spec.from_dict(claimed.spec), X, X @ np.array([1.0, -2.0, 0.5, 3.0])


def test_a_finite_loss_blow_up_ends_the_job_diverged(sqlite_backend: Backend) -> None:
    """Loss 2e4 -> 1e9 -> 3e13 stays finite; settings.divergence_factor (1e4) ends it.

    Issue 19: such a run ended `succeeded`. Now it fails with stop_reason `diverged`, the
    epochs before it are kept (metrics, periodic checkpoints) and no final checkpoint of the
    blown-up weights is written.
    """
    b = sqlite_backend
    spec = {
        "name": "blow-up", "dataset": "ds_in_memory",
        "model": {"layers": [{"type": "dense", "units": 1}]},
        "loss": {"type": "mse"},
        "optimizer": {"type": "sgd", "learning_rate": 1.2},
        "training": {"epochs": 4, "batch_size": 8, "validation_split": 0.0,
                     "dtype": "float64"},
    }
    job_id = create_job(b, spec)
    assert b.settings.divergence_factor == 1e4
    r = JobRunner(b.sessions, b.settings, job_id, "w1", data_fn=blow_up_data)
    assert r.run() == "failed"
    job = job_row(b, job_id)
    assert (job.status, job.stop_reason) == ("failed", "diverged")
    assert "at epoch 2 is more than 10000 times the first epoch's" in job.failure_reason
    assert metric_epochs(b, job_id) == [1, 2]
    assert all(kind != "final" for kind, _ in kept_checkpoints(b, job_id))


@pytest.mark.parametrize("which", ["sqlite_backend", "postgres_backend"])
def test_a_checkpoint_over_the_storage_quota_stops_the_job_and_keeps_the_last_one(
    request: pytest.FixtureRequest, which: str,
) -> None:
    """keep_last 2, keep_best 1: epoch 1 stores two rows of one checkpoint, epoch 2 would
    make three. A quota of 2.5 checkpoints lets the first commit through and stops the job at
    the second (stop_reason quota), with epoch 1's checkpoints kept and nothing more stored;
    with room made, resume continues from them."""
    import dataclasses

    from config.settings import Limits
    from store import usage

    b: Backend = request.getfixturevalue(which)  # the savepoint on both databases
    every_epoch = b.settings.with_overrides(commit_interval_s=1e-9)  # a commit per epoch
    spec = {**xor_spec(epochs=6), "dataset": "ds_in_memory"}
    probe = create_job(b, spec)
    assert JobRunner(b.sessions, every_epoch, probe, "w0", data_fn=xor_data).run() == "succeeded"
    tenant = job_row(b, probe).tenant_id
    with b.sessions() as s:
        size = min(c.size_bytes for c in store_ops.checkpoints.list_for_job(s, probe))
        used_before = usage.stored_bytes(s, tenant)
    quota = used_before + 2 * size + size // 2
    tight = dataclasses.replace(every_epoch, limits=Limits(max_stored_bytes=quota))
    job_id = create_job(b, spec)
    assert JobRunner(b.sessions, tight, job_id, "w1", data_fn=xor_data).run() == "failed"
    job = job_row(b, job_id)
    assert (job.status, job.stop_reason) == ("failed", "quota")
    assert job.failure_reason.startswith(
        f"the next checkpoint would take the tenant past its storage quota of {quota:,} bytes")
    assert kept_checkpoints(b, job_id) == [("best", 1), ("periodic", 1)]
    assert metric_epochs(b, job_id)[:2] == [1, 2]  # the epochs are recorded all the same
    with b.sessions() as s:
        assert usage.stored_bytes(s, tenant) <= quota
    from store import jobs

    with b.sessions.begin() as s:
        jobs.resume(s, tenant, job_id)
    assert JobRunner(b.sessions, every_epoch, job_id, "w2", data_fn=xor_data).run() == "succeeded"
    assert ("final", 6) in kept_checkpoints(b, job_id)
