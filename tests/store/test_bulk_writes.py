"""Bulk metrics and events (upsert_epochs, append_many): the single-row rules, many at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import events, metrics
from store.errors import NotFound
from store.models import Job, JobEvent, Metric

from .conftest import make_job, make_tenant


def test_upsert_epochs_writes_every_epoch_and_overwrites_a_rerun(s: Session) -> None:
    job = make_job(s, make_tenant(s).id)
    other = make_job(s, job.tenant_id)
    metrics.upsert_epochs(s, job.id, [(1, {"loss": 2.0, "lr": 0.1}), (2, {"loss": 1.0}),
                                      (3, {"loss": 0.5, "accuracy": 0.75})])
    metrics.upsert_epochs(s, other.id, [(1, {"loss": 9.0})])
    # A redelivered job re-runs epochs 2-3: new values win, untouched names stay, no duplicates.
    metrics.upsert_epochs(s, job.id, [(2, {"loss": 0.9, "val_loss": 1.25}), (3, {"loss": 0.4})])
    assert s.query(Metric).filter(Metric.job_id == job.id).count() == 6
    assert metrics.history(s, job.id) == [
        {"epoch": 1, "loss": 2.0, "lr": 0.1},
        {"epoch": 2, "loss": 0.9, "val_loss": 1.25},
        {"epoch": 3, "accuracy": 0.75, "loss": 0.4},
    ]
    assert metrics.history(s, other.id) == [{"epoch": 1, "loss": 9.0}]


def test_upsert_epochs_skips_non_numbers_and_stores_non_finite_as_null(s: Session) -> None:
    job = make_job(s, make_tenant(s).id)
    metrics.upsert_epochs(s, job.id, [
        (1, {"loss": 0.1 + 0.2, "note": "hi", "flag": True, "best": None}),
        (2, {"loss": float("nan"), "grad_norm": float("-inf"), "n": 3}),
        (3, {"note": "nothing numeric"}),
    ])
    metrics.upsert_epochs(s, job.id, [])
    assert metrics.history(s, job.id) == [
        {"epoch": 1, "loss": 0.30000000000000004},
        {"epoch": 2, "grad_norm": None, "loss": None, "n": 3.0},
    ]
    assert metrics.epochs_recorded(s, job.id) == 2


def test_single_and_bulk_upserts_write_the_same_rows(s: Session) -> None:
    tenant = make_tenant(s)
    one, many = make_job(s, tenant.id), make_job(s, tenant.id)
    epochs = [(e, {"loss": 1.0 / e, "val_loss": float("inf") if e == 2 else 2.0 / e})
              for e in (1, 2, 3)]
    for epoch, values in epochs:
        metrics.upsert_epoch(s, one.id, epoch, values)
    metrics.upsert_epochs(s, many.id, epochs)
    assert metrics.history(s, one.id) == metrics.history(s, many.id)
    assert metrics.history(s, many.id)[1] == {"epoch": 2, "loss": 0.5, "val_loss": None}


def test_append_many_numbers_events_after_the_single_ones(s: Session) -> None:
    job = make_job(s, make_tenant(s).id)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    # Event 1 is the submission's "queued".
    first = events.append(s, job.id, "status", {"status": "running"}, now=when)
    assert (first.seq, first.created_at) == (2, when)
    assert events.append_many(s, job.id, [("epoch", {"epoch": 1, "loss": 0.5}),
                                          ("epoch", {"epoch": 2, "loss": float("nan")})],
                              now=when) == [3, 4]
    assert events.append_many(s, job.id, []) == []
    assert events.append(s, job.id, "status", {"status": "succeeded"}).seq == 5
    s.expire_all()
    got = events.after(s, job.id, 1)
    assert [(e.seq, e.type, e.data) for e in got] == [
        (2, "status", {"status": "running"}),
        (3, "epoch", {"epoch": 1, "loss": 0.5}),
        (4, "epoch", {"epoch": 2, "loss": None}),  # JSON has no NaN: stored as null
        (5, "status", {"status": "succeeded"}),
    ]
    assert [e.created_at for e in got[:3]] == [when] * 3
    assert s.get(Job, job.id).event_seq == 5  # type: ignore[union-attr]


def test_append_returns_the_persistent_row(s: Session) -> None:
    job = make_job(s, make_tenant(s).id)
    event = events.append(s, job.id, "status", {"status": "running"})
    assert s.get(JobEvent, (job.id, 2)) is event  # the identity map's object: no second row
    s.flush()
    assert s.query(JobEvent).count() == 2  # and the submission's "queued"


def test_append_many_to_a_missing_job_writes_nothing(s: Session) -> None:
    with pytest.raises(NotFound):
        events.append_many(s, "job_missing", [("epoch", {"epoch": 1})])
    assert s.query(JobEvent).count() == 0


def test_concurrent_bulk_and_single_appends_never_reuse_a_sequence(
    factory: sessionmaker[Session],
) -> None:
    import threading

    with factory.begin() as s:
        job_id = make_job(s, make_tenant(s).id).id
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def bulk() -> None:
        try:
            barrier.wait()
            for i in range(10):
                with factory.begin() as s:
                    events.append_many(s, job_id, [("epoch", {"i": i, "k": k}) for k in range(3)])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def single() -> None:
        try:
            barrier.wait()
            for i in range(10):
                with factory.begin() as s:
                    events.append(s, job_id, "status", {"i": i})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=bulk), threading.Thread(target=single)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with factory() as s:
        got = events.after(s, job_id, 1, limit=100)  # after the submission's "queued"
    assert [e.seq for e in got] == list(range(2, 42))
    # A batch's events are consecutive: no single append lands inside one.
    for i in range(10):
        seqs = [e.seq for e in got if e.type == "epoch" and e.data["i"] == i]
        assert seqs == list(range(seqs[0], seqs[0] + 3))


def test_append_many_stamps_each_event_with_its_own_time(s: Session) -> None:
    job = make_job(s, make_tenant(s).id)
    times = [datetime(2026, 1, 2, 3, 4, second, tzinfo=UTC) for second in (5, 6)]
    events.append_many(s, job.id, [("epoch", {"epoch": 1}), ("epoch", {"epoch": 2})],
                       times=times)
    s.expire_all()
    assert [e.created_at for e in events.after(s, job.id, 1)] == times
    with pytest.raises(ValueError, match="1 times for 2 events"):
        events.append_many(s, job.id, [("epoch", {}), ("epoch", {})], times=times[:1])


def test_bulk_metric_values_round_trip_bit_for_bit(s: Session) -> None:
    job = make_job(s, make_tenant(s).id)
    values = [0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308, -2.5e-300, 123456789.987654321]
    metrics.upsert_epochs(s, job.id, [(epoch, {"x": v, "y": -v})
                                      for epoch, v in enumerate(values, start=1)])
    s.expire_all()
    stored = metrics.history(s, job.id)
    assert [row["x"] for row in stored] == values
    assert [row["y"] for row in stored] == [-v for v in values]
