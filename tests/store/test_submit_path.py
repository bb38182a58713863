"""The submit path's cheap pieces: one key lookup by id, and event 1 written with the job."""

from __future__ import annotations

import re
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store import events, jobs, submissions
from store.models import Job, JobEvent
from store.submissions import SUBMIT_CHECK, SubmitCheck

from .conftest import make_tenant, spec

QUEUED = {"status": "queued", "stop_reason": None, "failure_reason": None}


def test_job_id_for_key_finds_only_the_tenants_own_key(s: Session) -> None:
    acme, other = make_tenant(s), make_tenant(s, "other")
    job = jobs.create_job(s, acme.id, spec(), None, "key-1", "hash-a")
    assert jobs.job_id_for_key(s, acme.id, "key-1") == job.id
    assert jobs.job_id_for_key(s, acme.id, "key-2") is None
    assert jobs.job_id_for_key(s, other.id, "key-1") is None


def test_first_event_is_event_one_and_the_counter_continues_after_it(s: Session) -> None:
    tenant = make_tenant(s)
    job = jobs.create_job(s, tenant.id, spec(), None, first_event=("status", QUEUED))
    assert job.event_seq == 1
    later = events.append(s, job.id, "status", {"status": "running"})
    assert later.seq == 2
    rows = events.after(s, job.id)
    assert [(e.seq, e.type, e.data["status"]) for e in rows] == [
        (1, "status", "queued"), (2, "status", "running")]
    assert rows[0].created_at == job.created_at


def test_submit_check_reads_the_key_and_counts_active_jobs_up_to_the_cap(s: Session) -> None:
    acme, other = make_tenant(s), make_tenant(s, "other")
    keyed = jobs.create_job(s, acme.id, spec(), None, "key-1", "hash-a")
    for _ in range(3):
        jobs.create_job(s, acme.id, spec(), None)
    jobs.create_job(s, other.id, spec(), None)
    done = jobs.create_job(s, acme.id, spec(), None)
    done.status = "succeeded"
    s.flush()

    assert submissions.submit_check(s, acme.id, "key-1", cap=100) == SubmitCheck(keyed.id, 4)
    assert submissions.submit_check(s, acme.id, "key-2", cap=2) == SubmitCheck(None, 2)
    assert submissions.submit_check(s, acme.id, None, cap=0) == SubmitCheck(None, 0)
    assert submissions.submit_check(s, other.id, "key-1", cap=100) == SubmitCheck(None, 1)
    assert jobs.count_active_up_to(s, acme.id, 100) == 4
    assert jobs.count_active_up_to(s, acme.id, 3) == 3


def test_create_job_returns_a_fully_loaded_job_equal_to_its_row(
    factory: sessionmaker[Session],
) -> None:
    with factory.begin() as s:
        tenant_id = make_tenant(s).id
        job = jobs.create_job(s, tenant_id, spec(7), None, "key-1", "hash-a",
                              first_event=("status", QUEUED))
        # Written by a Core INSERT: every attribute must be set, or reading one would SELECT.
        assert sa.inspect(job).unloaded == set()
        made = {c.key: getattr(job, c.key) for c in sa.inspect(Job).column_attrs}
    with factory() as s:
        stored = s.get(Job, job.id)
        assert stored is not None
        assert {c.key: getattr(stored, c.key) for c in sa.inspect(Job).column_attrs} == made
        assert (stored.status, stored.epochs_total, stored.event_seq) == ("queued", 7, 1)


def _submit(s: Session, tenant_id: str, key: str | None = None, body: str = "hash-a",
            cap: int = 100) -> submissions.Submitted:
    return submissions.submit(s, tenant_id, spec(3), None, key, body, cap=cap,
                       first_event=("status", QUEUED))


def test_submit_stores_the_job_with_event_one_and_returns_its_row(
    factory: sessionmaker[Session],
) -> None:
    with factory.begin() as s:
        tenant_id = make_tenant(s).id
    with factory.begin() as s:
        outcome = _submit(s, tenant_id, "key-1")
    assert outcome.job is not None and (outcome.existing_id, outcome.active) == (None, 0)
    made = outcome.job
    with factory() as s:
        stored = s.get(Job, made["id"])
        assert stored is not None
        assert {c.key: getattr(stored, c.key) for c in sa.inspect(Job).column_attrs} == made
        assert (stored.status, stored.epochs_total, stored.event_seq) == ("queued", 3, 1)
        [event] = events.after(s, stored.id)
        assert (event.seq, event.type, event.data, event.created_at) == (
            1, "status", QUEUED, stored.created_at)
        # the counter goes on after event 1, as for a job made by create_job
        assert events.append(s, stored.id, "status", {"status": "running"}).seq == 2


def test_submit_finds_the_keys_job_and_stores_nothing(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        acme, other = make_tenant(s).id, make_tenant(s, "other").id
        first = _submit(s, acme, "key-1")
    assert first.job is not None
    with factory.begin() as s:
        again = _submit(s, acme, "key-1", body="hash-b", cap=1)  # key wins over a full quota
        elsewhere = _submit(s, other, "key-1")
    assert (again.job, again.existing_id) == (None, first.job["id"])
    assert elsewhere.job is not None  # keys are per tenant
    with factory() as s:
        assert s.query(Job).count() == 2 and s.query(JobEvent).count() == 2


@pytest.mark.postgres
def test_a_submit_that_loses_the_race_for_its_key_fails_and_then_finds_the_job(
    postgres_url: str,
) -> None:
    """PostgreSQL only: the race needs a second connection waiting on the unique index. The
    racer submits as the API does, on a pooled driver connection in autocommit: the driver's
    error must still come out as SQLAlchemy's IntegrityError, the API's cue to call again."""
    from store.db import make_engine, make_session_factory
    from store.models import Base

    engine = make_engine(postgres_url)
    Base.metadata.create_all(engine)
    with make_session_factory(engine).begin() as s:
        tenant_id = make_tenant(s).id
    outcome: list[BaseException | submissions.Submitted] = []

    def submit_concurrently() -> None:
        try:
            outcome.append(submissions.submit(engine, tenant_id, spec(), None, "key-1", "hash-a",
                                       cap=100, first_event=("status", QUEUED)))
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    with engine.connect() as first:
        first.begin()
        with Session(bind=first) as s:  # takes the key, not yet committed
            winner = jobs.create_job(s, tenant_id, spec(), None, "key-1", "hash-a").id
            s.flush()
        racer = threading.Thread(target=submit_concurrently)
        racer.start()  # its check cannot see the row; its INSERT waits on the unique index
        time.sleep(0.3)
        first.commit()
        racer.join(10)
    [error] = outcome
    assert isinstance(error, IntegrityError)  # the caller calls again:
    again = submissions.submit(engine, tenant_id, spec(), None, "key-1", "hash-a", cap=100,
                        first_event=("status", QUEUED))
    assert (again.job, again.existing_id) == (None, winner)
    engine.dispose()


def test_submit_refuses_a_full_quota_without_storing(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        tenant_id = make_tenant(s).id
        for _ in range(2):
            _submit(s, tenant_id)
        done = _submit(s, tenant_id).job
        assert done is not None
        s.execute(sa.update(Job).where(Job.id == done["id"]).values(status="succeeded"))
    with factory.begin() as s:
        full = _submit(s, tenant_id, "key-1", cap=2)
        room = _submit(s, tenant_id, "key-2", cap=3)
    assert (full.job, full.existing_id, full.active) == (None, None, 2)
    assert room.job is not None and room.active == 2
    with factory() as s:
        assert jobs.job_id_for_key(s, tenant_id, "key-1") is None
        assert s.query(Job).count() == 4 and s.query(JobEvent).count() == 4


def _finished_jobs(s: Session, tenant_id: str, n: int) -> None:
    s.execute(sa.insert(Job), [
        {**submissions.job_row(tenant_id, spec(), None), "status": "succeeded"} for _ in range(n)])


def test_the_quota_count_reads_only_active_jobs_through_their_partial_index(
    s: Session,
) -> None:
    """A tenant's finished jobs cost the quota check nothing (revision 0005). Before the
    partial index PostgreSQL read all 40,000 rows of this table to count 5 (3.9 ms)."""
    acme, other = make_tenant(s), make_tenant(s, "other")
    _finished_jobs(s, acme.id, 3000)
    _finished_jobs(s, other.id, 3000)
    for _ in range(5):
        jobs.create_job(s, acme.id, spec(), None)
    dialect = s.get_bind().dialect.name
    s.execute(sa.text("ANALYZE"))
    statement = SUBMIT_CHECK.params(tenant=acme.id, key="k", cap=8).compile(
        dialect=s.get_bind().dialect, compile_kwargs={"literal_binds": True})
    explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
    plan = "\n".join(str(row[-1]) for row in s.execute(sa.text(explain + str(statement))))
    assert re.search(r"\bix_jobs_tenant_active\b", plan), plan
    assert submissions.submit_check(s, acme.id, "k", cap=8) == SubmitCheck(None, 5)
