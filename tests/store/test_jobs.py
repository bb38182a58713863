from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import jobs
from store.columns import utcnow
from store.errors import Conflict, NotFound
from store.models import Job

from .conftest import make_job, make_tenant, spec


def test_create_job_takes_name_and_epochs_from_the_spec(s: Session) -> None:
    tenant = make_tenant(s)
    job = jobs.create_job(s, tenant.id, spec(epochs=12), None)
    assert job.id.startswith("job_")
    assert (job.name, job.epochs_total, job.status, job.attempts) == ("digits-mlp", 12, "queued", 0)
    assert (job.epoch_done, job.event_seq, job.cancel_requested) == (0, 0, False)
    assert job.created_at == job.queued_at and job.started_at is None


def test_same_idempotency_key_and_body_give_the_same_job(s: Session) -> None:
    tenant = make_tenant(s)
    first = jobs.create_job(s, tenant.id, spec(), None, "key-1", "hash-a")
    again = jobs.create_job(s, tenant.id, spec(), None, "key-1", "hash-a")
    assert again.id == first.id
    assert s.query(Job).count() == 1
    assert jobs.find_by_idempotency_key(s, tenant.id, "key-1") is first


def test_same_idempotency_key_with_another_body_conflicts(s: Session) -> None:
    tenant = make_tenant(s)
    jobs.create_job(s, tenant.id, spec(), None, "key-1", "hash-a")
    with pytest.raises(Conflict, match="key-1"):
        jobs.create_job(s, tenant.id, spec(epochs=9), None, "key-1", "hash-b")
    assert s.query(Job).count() == 1


def test_idempotency_keys_are_per_tenant(s: Session) -> None:
    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    a = jobs.create_job(s, acme.id, spec(), None, "key-1", "hash-a")
    g = jobs.create_job(s, globex.id, spec(), None, "key-1", "hash-b")
    assert a.id != g.id
    assert jobs.find_by_idempotency_key(s, globex.id, "key-1") is g


def test_another_tenants_job_reads_as_missing(s: Session) -> None:
    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    job = make_job(s, acme.id)
    assert jobs.get(s, acme.id, job.id) is job
    assert jobs.get_job(s, globex.id, job.id) is None
    assert jobs.get(s, acme.id, "job_missing") is None


def test_list_page_is_newest_first_with_cursor_and_status_filter(s: Session) -> None:
    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    base = utcnow()
    made = []
    for i in range(5):
        job = make_job(s, acme.id)
        # Two jobs share a timestamp: the id breaks the tie without skipping either.
        job.created_at = base + timedelta(seconds=min(i, 3))
        made.append(job.id)
    make_job(s, globex.id)
    s.flush()
    first, cursor = jobs.list_page(s, acme.id, limit=2)
    second, cursor2 = jobs.list_jobs(s, acme.id, limit=2, cursor=cursor)
    third, cursor3 = jobs.list_page(s, acme.id, limit=2, cursor=cursor2)
    assert [j.id for j in first + second + third] == list(reversed(made))
    assert cursor3 is None and len(third) == 1
    jobs.request_cancel(s, made[1])
    cancelled, nxt = jobs.list_page(s, acme.id, status="cancelled")
    assert [j.id for j in cancelled] == [made[1]] and nxt is None
    with pytest.raises(ValueError, match="unknown status"):
        jobs.list_page(s, acme.id, status="exploded")


def test_count_active_counts_queued_and_running_of_one_tenant(s: Session) -> None:
    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    a1, _a2, a3 = (make_job(s, acme.id) for _ in range(3))
    make_job(s, globex.id)
    jobs.claim_job(s, a1.id, "w1", 60)
    jobs.request_cancel(s, a3.id)
    assert jobs.count_active_up_to(s, acme.id, 100) == 2
    assert jobs.count_active_up_to(s, globex.id, 100) == 1


def test_cancel_ends_a_queued_job_and_flags_a_running_one(s: Session) -> None:
    tenant = make_tenant(s)
    queued, running = make_job(s, tenant.id), make_job(s, tenant.id)
    jobs.claim_job(s, running.id, "w1", 60)
    q = jobs.request_cancel(s, queued.id)
    assert (q.status, q.stop_reason, q.finished_at is not None) == ("cancelled", "cancelled", True)
    r = jobs.request_cancel(s, running.id)
    assert (r.status, r.cancel_requested, r.finished_at) == ("running", True, None)
    assert jobs.heartbeat(s, running.id, "w1").cancel_requested is True
    again = jobs.request_cancel(s, queued.id)
    assert again.status == "cancelled"
    with pytest.raises(NotFound):
        jobs.request_cancel(s, "job_missing")


def test_resume_requeues_with_more_epochs_and_fresh_attempts(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id, epochs=5)
    jobs.claim_job(s, job.id, "w1", 60)
    assert jobs.finish(s, job.id, "w1", "cancelled", "cancelled")
    resumed = jobs.resume_job(s, job.id, extra_epochs=3)
    assert (resumed.status, resumed.epochs_total, resumed.spec["training"]["epochs"]) == (
        "queued", 8, 8)
    assert (resumed.attempts, resumed.stop_reason, resumed.finished_at) == (0, None, None)
    assert resumed.cancel_requested is False
    again = jobs.claim_job(s, job.id, "w2", 60)
    assert again is not None and again.attempts == 1


def test_only_cancelled_or_failed_jobs_resume(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    with pytest.raises(Conflict, match="queued"):
        jobs.prepare_resume(s, job)
    jobs.claim_job(s, job.id, "w1", 60)
    jobs.finish(s, job.id, "w1", "succeeded", "epochs_done")
    with pytest.raises(Conflict, match="succeeded"):
        jobs.resume_job(s, job.id)


def test_resumed_job_survives_a_new_transaction(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        tenant = make_tenant(s)
        job = make_job(s, tenant.id, epochs=2)
        jobs.request_cancel(s, job.id)
        jobs.resume_job(s, job.id, extra_epochs=4)
        job_id = job.id
    with factory() as s:
        row = s.get(Job, job_id)
        assert row is not None
        assert (row.status, row.epochs_total, row.spec["training"]["epochs"]) == ("queued", 6, 6)
