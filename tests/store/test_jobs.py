from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import claims, events, jobs
from store.columns import utcnow
from store.errors import Conflict, InvalidValue, NotFound, QuotaExceeded
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
    assert jobs.get(s, globex.id, job.id) is None
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
    second, cursor2 = jobs.list_page(s, acme.id, limit=2, cursor=cursor)
    third, cursor3 = jobs.list_page(s, acme.id, limit=2, cursor=cursor2)
    assert [j.id for j in first + second + third] == list(reversed(made))
    assert cursor3 is None and len(third) == 1
    jobs.cancel(s, acme.id, made[1])
    cancelled, nxt = jobs.list_page(s, acme.id, status="cancelled")
    assert [j.id for j in cancelled] == [made[1]] and nxt is None
    with pytest.raises(ValueError, match="unknown status"):
        jobs.list_page(s, acme.id, status="exploded")


def test_count_active_counts_queued_and_running_of_one_tenant(s: Session) -> None:
    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    a1, _a2, a3 = (make_job(s, acme.id) for _ in range(3))
    make_job(s, globex.id)
    claims.claim_job(s, a1.id, "w1", 60)
    jobs.cancel(s, acme.id, a3.id)
    assert jobs.count_active_up_to(s, acme.id, 100) == 2
    assert jobs.count_active_up_to(s, globex.id, 100) == 1


def status_events(s: Session, job_id: str) -> list[dict[str, object]]:
    return [e.data for e in events.after(s, job_id) if e.type == "status"]


def test_cancel_ends_a_queued_job_and_flags_a_running_one(s: Session) -> None:
    tenant, other = make_tenant(s), make_tenant(s, "globex")
    queued, running = make_job(s, tenant.id), make_job(s, tenant.id)
    claims.claim_job(s, running.id, "w1", 60)
    q = jobs.cancel(s, tenant.id, queued.id)
    assert q.ended and (q.job.status, q.job.stop_reason, q.job.finished_at is not None) == (
        "cancelled", "cancelled", True)
    # Nobody runs it, so the cancel announces the end itself (after the submit's "queued").
    assert status_events(s, queued.id) == [
        {"status": "queued", "stop_reason": None, "failure_reason": None},
        {"status": "cancelled", "stop_reason": "cancelled", "failure_reason": None}]
    r = jobs.cancel(s, tenant.id, running.id)
    assert not r.ended and (r.job.status, r.job.cancel_requested, r.job.finished_at) == (
        "running", True, None)
    assert claims.heartbeat(s, running.id, "w1").cancel_requested is True
    assert len(status_events(s, running.id)) == 1  # its worker will announce the end
    with pytest.raises(Conflict, match="already finished"):
        jobs.cancel(s, tenant.id, queued.id)
    with pytest.raises(NotFound):
        jobs.cancel(s, tenant.id, "job_missing")
    with pytest.raises(NotFound):
        jobs.cancel(s, other.id, running.id)


def test_resume_requeues_with_more_epochs_and_fresh_attempts(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id, epochs=5)
    claims.claim_job(s, job.id, "w1", 60)
    assert claims.finish(s, job.id, "w1", "cancelled", "cancelled")
    resumed = jobs.resume(s, tenant.id, job.id, extra_epochs=3)
    assert (resumed.status, resumed.epochs_total, resumed.spec["training"]["epochs"]) == (
        "queued", 8, 8)
    assert (resumed.attempts, resumed.stop_reason, resumed.finished_at) == (0, None, None)
    assert resumed.cancel_requested is False
    assert status_events(s, job.id)[-1] == {
        "status": "queued", "stop_reason": None, "failure_reason": None}
    again = claims.claim_job(s, job.id, "w2", 60)
    assert again is not None and again.attempts == 1


def test_only_cancelled_or_failed_jobs_resume(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    with pytest.raises(Conflict, match="queued"):
        jobs.resume(s, tenant.id, job.id)
    claims.claim_job(s, job.id, "w1", 60)
    claims.finish(s, job.id, "w1", "succeeded", "epochs_done")
    with pytest.raises(Conflict, match="succeeded"):
        jobs.resume(s, tenant.id, job.id)


def test_resume_keeps_the_epoch_limit_and_the_quota(s: Session) -> None:
    tenant = make_tenant(s)
    job, busy = make_job(s, tenant.id, epochs=5), make_job(s, tenant.id)
    jobs.cancel(s, tenant.id, job.id)
    with pytest.raises(InvalidValue, match="exceed 7 epochs") as too_long:
        jobs.resume(s, tenant.id, job.id, 3, max_epochs=7)
    assert too_long.value.field == "epochs"
    with pytest.raises(QuotaExceeded, match="1 jobs are queued or running; the limit is 1"):
        jobs.resume(s, tenant.id, job.id, active_cap=1)
    jobs.cancel(s, tenant.id, busy.id)
    assert jobs.resume(s, tenant.id, job.id, 2, max_epochs=7, active_cap=1).status == "queued"


def test_resumed_job_survives_a_new_transaction(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        tenant = make_tenant(s)
        job = make_job(s, tenant.id, epochs=2)
        jobs.cancel(s, tenant.id, job.id)
        jobs.resume(s, tenant.id, job.id, extra_epochs=4)
        job_id = job.id
    with factory() as s:
        row = s.get(Job, job_id)
        assert row is not None
        assert (row.status, row.epochs_total, row.spec["training"]["epochs"]) == ("queued", 6, 6)
