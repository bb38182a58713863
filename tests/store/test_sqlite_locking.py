"""SQLite specifics of make_engine: transactions that read then write never lose an update."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, make_session_factory
from store.models import Base, Job

from .conftest import make_job, make_tenant


@pytest.fixture
def sqlite_factory(tmp_path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    Base.metadata.create_all(engine)
    return make_session_factory(engine)


def test_read_modify_write_transactions_serialise(sqlite_factory: sessionmaker[Session]) -> None:
    """A reads a counter, B commits an increment meanwhile, A writes its increment.

    With pysqlite's default deferred BEGIN, A either fails with "database is locked" when it
    upgrades to a writer or (without WAL snapshots) loses B's update. BEGIN IMMEDIATE makes
    B wait for A: both increments land.
    """
    with sqlite_factory.begin() as s:
        job_id = make_job(s, make_tenant(s).id).id
    a_has_read = threading.Event()
    errors: list[BaseException] = []

    def increment_slowly() -> None:
        try:
            with sqlite_factory.begin() as s:
                job = s.get(Job, job_id)
                assert job is not None
                seen = job.event_seq
                a_has_read.set()
                time.sleep(0.3)
                job.event_seq = seen + 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def increment() -> None:
        try:
            a_has_read.wait(5)
            with sqlite_factory.begin() as s:
                job = s.get(Job, job_id)
                assert job is not None
                job.event_seq += 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=increment_slowly), threading.Thread(target=increment)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with sqlite_factory() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.event_seq == 3  # 1 (the submission's event) + 2
