"""EpochBuffer on its own: trimming by the policy, a commit's checkpoints in one INSERT."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from core.spec import CheckpointPolicy
from store import diagnostics
from store.models import Checkpoint, Job
from tests.worker.conftest import Backend, create_job, job_row, kept_checkpoints, xor_spec
from tests.worker.fakes import FakeReport
from worker import store_ops
from worker.epoch_buffer import EpochBuffer

POLICY = CheckpointPolicy(every_epochs=1, keep_last=2, keep_best=1, monitor="val_loss")


def report(epoch: int, loss: float, best: bool, epochs: int = 100) -> FakeReport:
    return FakeReport(epoch, epochs, {"val_loss": loss}, best, f"blob{epoch}".encode())


def held(buffer: EpochBuffer) -> list[tuple[int, list[str], bytes | None]]:
    return [(p.epoch, p.kinds, p.checkpoint and p.checkpoint())
            for p in buffer.pending if p.kinds or p.checkpoint]


def test_only_the_newest_periodic_and_best_checkpoints_keep_their_bytes() -> None:
    buffer = EpochBuffer("job_x", POLICY)
    bests = {1, 2, 5, 9}
    for epoch in range(1, 11):
        buffer.add(report(epoch, 1.0 / epoch, epoch in bests), since_commit=0.0,
                   committing=True)
    assert len(buffer.pending) == 10
    # keep_last=2 periodic (9, 10) and keep_best=1 best (9, the newest best).
    assert held(buffer) == [(9, ["periodic", "best"], b"blob9"), (10, ["periodic"], b"blob10")]
    assert [(h.epoch, h.kind) for h in buffer.held] == [(9, "periodic"), (9, "best"),
                                                        (10, "periodic")]


def test_keep_zero_saves_no_kind() -> None:
    buffer = EpochBuffer("job_x", dataclasses.replace(POLICY, keep_last=0, keep_best=0))
    sent: list[int] = []
    for epoch in range(1, 4):
        r = report(epoch, 0.5, True)
        buffer.add(r, since_commit=0.0, committing=True)
        sent += r.copied
    assert sent == [] and held(buffer) == []


def test_a_commit_with_the_final_checkpoint_is_one_insert_and_keeps_the_policy(
    sqlite_backend: Backend,
) -> None:
    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=6))
    buffer = EpochBuffer(job_id, POLICY, tenant_id=job_row(b, job_id).tenant_id,
                         model_spec={"layers": []})
    for epoch, loss in enumerate([0.9, 0.2, 0.8, 0.7, 0.6, 0.5], start=1):
        buffer.add(report(epoch, loss, epoch <= 2, epochs=6), since_commit=0.0,
                   committing=True)
    inserts: list[int] = []

    def count(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith("INSERT INTO CHECKPOINTS"):
            inserts.append(len(params) if many else 1)

    engine = b.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        with b.sessions.begin() as s:
            buffer.flush(s, (6, b"final6", {"val_loss": 0.5}))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(inserts) == 1  # periodic 5, periodic 6, best 2 and final 6 together
    assert kept_checkpoints(b, job_id) == [
        ("best", 2), ("final", 6), ("periodic", 5), ("periodic", 6)]
    with b.sessions() as s:
        assert store_ops.latest_checkpoint_blob(s, job_id) in (b"blob6", b"final6")
        rows = s.scalars(sa.select(Checkpoint).where(Checkpoint.job_id == job_id)).all()
        assert [r.model_spec for r in rows] == [{"layers": []}] * 4
    assert buffer.pending == [] and buffer.held == []


def test_without_the_claim_the_tenant_and_model_come_from_the_job(
    sqlite_backend: Backend,
) -> None:
    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=2))
    buffer = EpochBuffer(job_id, POLICY)
    buffer.add(report(1, 0.4, True, epochs=2), since_commit=0.0, committing=True)
    with b.sessions.begin() as s:
        buffer.flush(s)
    job = job_row(b, job_id)
    with b.sessions() as s:
        rows = s.scalars(sa.select(Checkpoint).where(Checkpoint.job_id == job_id)).all()
        assert sorted((r.kind, r.epoch) for r in rows) == [("best", 1), ("periodic", 1)]
        # The stored spec: the submission's, normalised by core.spec.
        assert [r.model_spec for r in rows] == [job.spec["model"]] * 2
        assert {r.tenant_id for r in rows} == {job.tenant_id}


def test_each_epoch_event_carries_the_time_its_epoch_ended(sqlite_backend: Backend) -> None:
    from store import events
    from store.columns import utcnow

    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=3))
    buffer = EpochBuffer(job_id, POLICY, tenant_id=job_row(b, job_id).tenant_id,
                         model_spec={"layers": []})
    ended = []
    for epoch in (1, 2, 3):
        time.sleep(0.02)
        buffer.add(report(epoch, 1.0 / epoch, True, epochs=3), since_commit=0.0,
                   committing=False)
        ended.append(utcnow())
    time.sleep(0.05)
    committed = utcnow()
    with b.sessions.begin() as s:
        buffer.flush(s)
    with b.sessions() as s:
        stamps = [e.created_at for e in events.after(s, job_id) if e.type == "epoch"]
    assert len(stamps) == 3
    for stamp, before, after in zip(stamps, [None, *ended[:-1]], ended, strict=True):
        assert stamp <= after < committed
        assert before is None or stamp > before


def test_a_new_run_continues_a_diagnostics_streak_from_the_stored_epochs(
    sqlite_backend: Backend,
) -> None:
    """Two epochs of too-small updates committed by one run, a third by the next (a resume
    builds a new buffer): the warning comes at the third, read back from the store."""
    b = sqlite_backend
    job_id = create_job(b, xor_spec(epochs=4))
    rows = [{"layer": 0, "type": "dense", "weight_norm": 1.0, "grad_norm": 0.1,
             "update_ratio": 1e-7, "dead_fraction": 0.0}]
    for epochs in ([1, 2], [3], [4]):  # one buffer per run
        buffer = EpochBuffer(job_id, POLICY)
        for epoch in epochs:
            r = report(epoch, 0.5, False, epochs=4)
            r.diagnostics = rows  # type: ignore[attr-defined]
            buffer.add(r, since_commit=0.0, committing=True)
        with b.sessions.begin() as s:
            buffer.flush(s)
            found = [(w["layer"], w["kind"], w["epoch"]) for w in s.scalar(
                sa.select(Job.warnings).where(Job.id == job_id)) or []]
        assert found == ([] if epochs == [1, 2] else [(0, "update_ratio_low", 3)])
    with b.sessions() as s:
        assert [e for e, _ in diagnostics.series(s, job_id)] == [1, 2, 3, 4]
