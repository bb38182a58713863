from __future__ import annotations

import multiprocessing
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store import claims, leases
from store.columns import utcnow
from store.models import Job

from .conftest import make_job, make_tenant

TIMEOUT = 60


def test_two_threads_racing_for_each_job_only_one_wins(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        tenant = make_tenant(s)
        job_ids = [make_job(s, tenant.id).id for _ in range(6)]
    contenders = 4
    winners: dict[str, list[str]] = {job_id: [] for job_id in job_ids}
    errors: list[BaseException] = []
    barrier = threading.Barrier(contenders)

    def contend(worker: str) -> None:
        try:
            barrier.wait()
            for job_id in job_ids:
                with factory.begin() as s:
                    if claims.claim_job(s, job_id, worker, TIMEOUT) is not None:
                        winners[job_id].append(worker)
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert {job_id: len(w) for job_id, w in winners.items()} == dict.fromkeys(job_ids, 1)
    with factory() as s:
        for job_id in job_ids:
            row = s.get(Job, job_id)
            assert row is not None
            assert (row.status, row.attempts, row.lease_owner) == (
                "running", 1, winners[job_id][0])
            assert [lease.worker_id for lease in leases.history(s, job_id)] == winners[job_id]


def test_claim_sets_the_lease_and_records_it(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    now = utcnow()
    claimed = claims.claim_job(s, job.id, "w1", TIMEOUT, now=now)
    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.lease_owner) == ("running", 1, "w1")
    assert claimed.heartbeat_at == now and claimed.started_at == now
    [lease] = leases.history(s, job.id)
    assert (lease.attempt, lease.worker_id, lease.claimed_at, lease.released_at) == (
        1, "w1", now, None)


def test_a_stale_lease_is_taken_over_and_the_old_holder_is_locked_out(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    t0 = utcnow()
    claims.claim_job(s, job.id, "w1", TIMEOUT, now=t0)
    assert claims.claim_job(s, job.id, "w2", TIMEOUT, now=t0 + timedelta(seconds=59)) is None
    taken = claims.claim_job(s, job.id, "w2", TIMEOUT, now=t0 + timedelta(seconds=61))
    assert taken is not None and (taken.attempts, taken.lease_owner) == (2, "w2")
    assert taken.started_at == t0  # the first start is kept
    assert claims.heartbeat(s, job.id, "w1").lease_held is False
    assert claims.finish(s, job.id, "w1", "succeeded", "epochs_done") is False
    assert claims.finish(s, job.id, "w2", "succeeded", "epochs_done") is True
    history = [(r.attempt, r.worker_id, r.outcome) for r in leases.history(s, job.id)]
    assert history == [(1, "w1", "lost"), (2, "w2", "succeeded")]
    assert leases.overlaps(s, job.id) == []


def test_heartbeat_keeps_a_lease_fresh(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    t0 = utcnow()
    claims.claim_job(s, job.id, "w1", TIMEOUT, now=t0)
    beat = claims.heartbeat(s, job.id, "w1", now=t0 + timedelta(seconds=50))
    assert beat.lease_held and not beat.cancel_requested and bool(beat)
    assert claims.claim_job(s, job.id, "w2", TIMEOUT, now=t0 + timedelta(seconds=100)) is None
    assert claims.claim_job(s, job.id, "w2", TIMEOUT, now=t0 + timedelta(seconds=111)) is not None


def test_release_requeues_only_for_the_holder(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    claims.claim_job(s, job.id, "w1", TIMEOUT)
    assert claims.release(s, job.id, "w2", "nope") is False
    assert claims.release(s, job.id, "w1", "OSError: disk") is True
    row = s.get(Job, job.id, populate_existing=True)
    assert row is not None
    assert (row.status, row.lease_owner, row.failure_reason) == ("queued", None, "OSError: disk")
    assert [r.outcome for r in leases.history(s, job.id)] == ["released"]


def test_finish_records_status_reasons_and_time(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    claims.claim_job(s, job.id, "w1", TIMEOUT)
    t = utcnow()
    assert claims.finish(s, job.id, "w1", "failed", "diverged", "loss is nan at epoch 3", now=t)
    row = s.get(Job, job.id, populate_existing=True)
    assert row is not None
    assert (row.status, row.stop_reason, row.failure_reason, row.finished_at) == (
        "failed", "diverged", "loss is nan at epoch 3", t)
    assert row.lease_owner is None
    assert claims.claim_job(s, job.id, "w2", TIMEOUT, now=t + timedelta(hours=1)) is None


def test_update_progress_writes_epoch_latest_and_best(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    claims.update_progress(s, job.id, 2, {"loss": 0.5}, {"epoch": 2, "loss": 0.5})
    claims.update_progress(s, job.id, 3, {"loss": 0.7})
    row = s.get(Job, job.id, populate_existing=True)
    assert row is not None
    assert (row.epoch_done, row.latest, row.best) == (3, {"loss": 0.7}, {"epoch": 2, "loss": 0.5})


def test_stale_or_lost_finds_old_queued_and_silent_running_jobs(s: Session) -> None:
    tenant = make_tenant(s)
    t0 = utcnow()
    fresh, old_queued, live, silent, done = (make_job(s, tenant.id) for _ in range(5))
    old_queued.queued_at = t0 - timedelta(seconds=120)
    s.flush()
    claims.claim_job(s, live.id, "w1", TIMEOUT, now=t0)
    claims.claim_job(s, silent.id, "w2", TIMEOUT, now=t0 - timedelta(seconds=90))
    claims.claim_job(s, done.id, "w3", TIMEOUT, now=t0 - timedelta(seconds=90))
    claims.finish(s, done.id, "w3", "succeeded", "epochs_done")
    found = claims.stale_or_lost(s, now=t0, lease_timeout_s=60, queued_grace_s=60)
    assert sorted(found) == sorted([old_queued.id, silent.id])
    assert fresh.id not in found
    later = claims.stale_or_lost(s, now=t0 + timedelta(seconds=61), lease_timeout_s=60,
                               queued_grace_s=60)
    assert sorted(later) == sorted([fresh.id, old_queued.id, live.id, silent.id])


def _claim_in_process(url: str, job_ids: list[str], worker: str, start: Any, out: Any) -> None:
    from store.db import make_engine, make_session_factory

    engine = make_engine(url)
    factory = make_session_factory(engine)
    start.wait(30)
    won = []
    for job_id in job_ids:
        with factory.begin() as s:
            if claims.claim_job(s, job_id, worker, TIMEOUT) is not None:
                won.append(job_id)
    engine.dispose()
    out.put((worker, won))


def test_separate_processes_racing_never_share_a_job(
    db_url: str, factory: sessionmaker[Session]
) -> None:
    with factory.begin() as s:
        tenant = make_tenant(s)
        job_ids = [make_job(s, tenant.id).id for _ in range(10)]
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_in_process, args=(db_url, job_ids, f"p{i}", start, out))
             for i in range(3)]
    for p in procs:
        p.start()
    start.set()
    results = dict(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    claimed = sorted(job_id for won in results.values() for job_id in won)
    assert claimed == sorted(job_ids)  # every job claimed exactly once
    with factory() as s:
        for worker, won in results.items():
            for job_id in won:
                history = [(r.worker_id, r.attempt) for r in leases.history(s, job_id)]
                assert history == [(worker, 1)]
