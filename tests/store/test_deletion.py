"""store.deletion on migrated SQLite and PostgreSQL: a finished job goes with its rows (the
checkpoints' parts by the migrations' trigger, through the foreign keys' cascade), and what a
queued or running job needs stays."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from store import checkpoints, claims, deletion, events, jobs, metrics, usage
from store.db import make_engine, make_session_factory
from store.errors import Conflict, NotFound
from store.migrate import upgrade_to_head

from .conftest import make_tenant, spec


@pytest.fixture
def migrated(db_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade_to_head(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def count(s: Session, table: str) -> int:
    return int(s.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_finished_job_goes_with_everything_it_stored(
    migrated: sessionmaker[Session],
) -> None:
    with migrated.begin() as s:
        tenant = make_tenant(s).id
        job = jobs.create_job(s, tenant, spec(), None)
        metrics.upsert_epoch(s, job.id, 1, {"loss": 0.5})
        events.append(s, job.id, "epoch", {"epoch": 1})
        checkpoints.save_checkpoint(s, job.id, 1, "periodic", b"x" * 20_000)
        job_id = job.id
    with migrated.begin() as s, pytest.raises(Conflict, match="is queued; only a finished"):
        deletion.delete_job(s, tenant, job_id)
    with migrated.begin() as s:
        jobs.cancel(s, tenant, job_id)
    with migrated.begin() as s, pytest.raises(NotFound):
        deletion.delete_job(s, "ten_other", job_id)
    with migrated.begin() as s:
        assert usage.stored_bytes(s, tenant) == 20_000
        deletion.delete_job(s, tenant, job_id)
    with migrated() as s:
        assert usage.stored_bytes(s, tenant) == 0
        for table in ("jobs", "checkpoints", "checkpoint_parts", "metrics", "job_events"):
            assert count(s, table) == 0, table


def test_a_running_jobs_checkpoint_and_a_warm_start_stay(
    migrated: sessionmaker[Session],
) -> None:
    with migrated.begin() as s:
        tenant = make_tenant(s).id
        imported = checkpoints.import_checkpoint(s, tenant, blob=b"w" * 100).id
        warm = jobs.create_job(s, tenant, {**spec(), "init_checkpoint": imported}, None).id
        running = jobs.create_job(s, tenant, spec(), None).id
        assert claims.claim_job(s, running, "w1") is not None
        own = checkpoints.save_checkpoint(s, running, 1, "periodic", b"r" * 100).id
    with migrated.begin() as s, pytest.raises(Conflict, match=f"job {warm} starts from"):
        deletion.delete_checkpoint(s, tenant, imported)
    with migrated.begin() as s, pytest.raises(Conflict, match="queued or running"):
        deletion.delete_checkpoint(s, tenant, own)
    with migrated.begin() as s:
        jobs.cancel(s, tenant, warm)
    with migrated.begin() as s:
        deletion.delete_checkpoint(s, tenant, imported)
    with migrated() as s:
        assert count(s, "checkpoints") == 1 and usage.stored_bytes(s, tenant) == 100
