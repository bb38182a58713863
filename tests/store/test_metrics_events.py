from __future__ import annotations

import threading

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import events, metrics
from store.errors import NotFound
from store.models import Metric

from .conftest import make_job, make_tenant


def test_upsert_overwrites_an_epochs_values_and_keeps_the_others(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    metrics.upsert_epoch(s, job.id, 1, {"loss": 2.0, "accuracy": 0.25, "lr": 0.1})
    metrics.upsert_epoch(s, job.id, 2, {"loss": 1.0})
    # A redelivered job runs epoch 1 again: the new numbers win, nothing is duplicated.
    metrics.upsert_epoch(s, job.id, 1, {"loss": 1.5, "val_loss": 1.75})
    assert s.query(Metric).count() == 5
    assert metrics.history(s, job.id) == [
        {"epoch": 1, "accuracy": 0.25, "loss": 1.5, "lr": 0.1, "val_loss": 1.75},
        {"epoch": 2, "loss": 1.0},
    ]
    assert metrics.epochs_recorded(s, job.id) == 2


def test_history_pages_by_epoch(s: Session) -> None:
    tenant = make_tenant(s)
    job, other = make_job(s, tenant.id), make_job(s, tenant.id)
    for epoch in range(1, 8):
        metrics.upsert_epoch(s, job.id, epoch, {"loss": 1 / epoch, "seconds": 0.5})
    metrics.upsert_epoch(s, other.id, 1, {"loss": 9.0})
    page = metrics.history(s, job.id, after_epoch=2, limit=3)
    assert [item["epoch"] for item in page] == [3, 4, 5]
    assert page[0] == {"epoch": 3, "loss": 1 / 3, "seconds": 0.5}
    assert [i["epoch"] for i in metrics.history(s, job.id, after_epoch=5)] == [6, 7]
    assert metrics.history(s, job.id, after_epoch=7) == []


def test_values_are_float64_non_finite_are_none_and_non_numbers_skipped(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    metrics.upsert_epoch(s, job.id, 1, {"loss": 0.1 + 0.2, "note": "hi", "best": None,
                                        "flag": True, "n": 3, "val_loss": float("nan"),
                                        "grad_norm": float("inf")})
    [item] = metrics.history(s, job.id)
    assert item["loss"] == 0.30000000000000004
    assert item["n"] == 3.0
    assert item["val_loss"] is None and item["grad_norm"] is None
    assert set(item) == {"epoch", "loss", "n", "val_loss", "grad_norm"}


def test_events_get_gap_free_sequences_per_job(s: Session) -> None:
    tenant = make_tenant(s)
    a, b = make_job(s, tenant.id), make_job(s, tenant.id)
    # Event 1 of each job is its submission's "queued".
    seqs = [events.append(s, a.id, "epoch", {"epoch": i}).seq for i in range(1, 4)]
    assert seqs == [2, 3, 4]
    assert events.append(s, b.id, "status", {"status": "running"}).seq == 2
    after = events.after(s, a.id, 2)
    assert [(e.seq, e.type, e.data) for e in after] == [
        (3, "epoch", {"epoch": 2}), (4, "epoch", {"epoch": 3})]
    assert [(e.seq, e.type) for e in events.after(s, a.id, 0, limit=2)] == [
        (1, "status"), (2, "epoch")]
    with pytest.raises(NotFound):
        events.append(s, "job_missing", "status", {})


def test_concurrent_appends_never_reuse_a_sequence(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        job_id = make_job(s, make_tenant(s).id).id
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def writer(name: str) -> None:
        try:
            barrier.wait()
            for i in range(10):
                with factory.begin() as s:
                    events.append(s, job_id, "epoch", {"writer": name, "i": i})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with factory() as s:
        assert [e.seq for e in events.after(s, job_id, 1, limit=100)] == list(range(2, 32))
