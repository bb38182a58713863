"""Checkpoint writes in one batch; their bytes in parts, read in PostgreSQL's binary format
(issue 3)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from store import checkpoint_parts, checkpoints
from store.db import make_engine, make_session_factory
from store.migrate import upgrade_to_head
from store.models import ID, Base, Checkpoint, CheckpointPart

from .conftest import make_job, make_tenant


def statements(s: Session) -> list[str]:
    """The SQL the session's engine sends from now on (appended as it goes)."""
    sent: list[str] = []
    bind = s.get_bind()

    @event.listens_for(bind, "before_cursor_execute")
    def _log(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        sent.append(sql.split()[0].upper())

    return sent


def test_save_many_writes_every_checkpoint_in_one_insert_without_reading_the_job(
    s: Session,
) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    s.flush()
    sent = statements(s)
    rows = checkpoints.save_many(s, job.id, tenant.id, {"layers": []}, [
        (4, "periodic", b"four", {"val_loss": 0.4}),
        (5, "periodic", b"five", {"val_loss": 0.5}),
        (5, "best", b"five", {"val_loss": 0.5}),
    ])
    # The rows in one INSERT and their bytes in one more statement (on PostgreSQL a COPY
    # through the driver, which SQLAlchemy's events do not see); no SELECT of the job.
    assert sent == ["INSERT"] * (1 if s.get_bind().dialect.name == "postgresql" else 2)
    assert [(r.epoch, r.kind, r.size_bytes, r.tenant_id) for r in rows] == [
        (4, "periodic", 4, tenant.id), (5, "periodic", 4, tenant.id), (5, "best", 4, tenant.id)]
    assert rows[0].sha256 == hashlib.sha256(b"four").hexdigest()
    assert rows[2].model_spec == {"layers": []}
    assert sorted((c.epoch, c.kind) for c in checkpoints.list_for_job(s, job.id)) == [
        (4, "periodic"), (5, "best"), (5, "periodic")]
    assert checkpoints.get_blob(s, rows[1].id) == b"five"
    with pytest.raises(ValueError, match="kind"):
        checkpoints.save_many(s, job.id, tenant.id, None, [(1, "sometimes", b"", None)])


def test_save_many_of_nothing_sends_nothing(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    s.flush()
    sent = statements(s)
    assert checkpoints.save_many(s, job.id, tenant.id, None, []) == []
    assert sent == []


def test_blobs_come_back_byte_for_byte(factory: sessionmaker[Session]) -> None:
    """Every byte value (and a few MB) survives the binary read, on both databases."""
    blob = bytes(range(256)) * 8 + os.urandom(3_000_000)
    with factory.begin() as s:
        job = make_job(s, make_tenant(s).id)
        row = checkpoints.save_checkpoint(s, job.id, 1, "periodic", blob, {"val_loss": 0.1})
    with factory() as s:
        assert checkpoints.get_blob(s, row.id) == blob
        latest = checkpoints.latest_for_job(s, job.id)
        assert latest is not None and latest.id == row.id
        whole, rest = divmod(len(blob), checkpoint_parts.PART_BYTES)
        assert part_sizes(s, row.id) == [checkpoint_parts.PART_BYTES] * whole + [rest]
        assert checkpoints.get_blob(s, "ckpt_missing") is None
        assert checkpoints.latest_for_job(s, "job_missing") is None


def part_sizes(s: Session, checkpoint_id: str) -> list[int]:
    return [len(data) for data in s.scalars(
        sa.select(CheckpointPart.data).where(CheckpointPart.checkpoint_id == checkpoint_id)
        .order_by(CheckpointPart.seq))]


@pytest.mark.parametrize("size", [0, 1, checkpoint_parts.PART_BYTES,
                                  checkpoint_parts.PART_BYTES + 1])
def test_bytes_at_the_part_boundaries_come_back_whole(s: Session, size: int) -> None:
    job = make_job(s, make_tenant(s).id)
    blob = os.urandom(size)
    row = checkpoints.save_checkpoint(s, job.id, 1, "periodic", blob)
    assert checkpoints.get_blob(s, row.id) == blob
    assert row.size_bytes == size
    assert len(part_sizes(s, row.id)) == max(1, -(-size // checkpoint_parts.PART_BYTES))


@pytest.fixture(params=["create_all", "alembic"])
def schema(request: pytest.FixtureRequest, db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a database built by `create_all` (as the tests' are) or by the migrations
    (as users' are): the parts' trigger and PostgreSQL storage must hold in both."""
    engine = make_engine(db_url)
    if request.param == "create_all":
        Base.metadata.create_all(engine)
    else:
        upgrade_to_head(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_deleting_checkpoints_deletes_their_parts(schema: sessionmaker[Session]) -> None:
    """Pruned checkpoints and a deleted job's take their bytes with them (the trigger of
    revision 0004; parts have no foreign key)."""
    with schema.begin() as s:
        job = make_job(s, make_tenant(s).id)
        rows = checkpoints.save_many(s, job.id, job.tenant_id, None, [
            (1, "periodic", b"one", None), (2, "periodic", os.urandom(20_000), None)])
        other = checkpoints.save_many(s, make_job(s, job.tenant_id).id, job.tenant_id, None, [
            (1, "periodic", b"kept", None)])
        checkpoints.delete_many(s, [rows[0].id])
    with schema() as s:
        assert checkpoints.get_blob(s, rows[0].id) is None
        assert len(part_sizes(s, rows[1].id)) == 3
    with schema.begin() as s:
        s.execute(sa.text("DELETE FROM jobs WHERE id = :id"), {"id": job.id})
    with schema() as s:
        assert s.scalars(sa.select(CheckpointPart.checkpoint_id)).all() == [other[0].id]


def test_a_full_part_fits_a_page_beside_the_longest_id(schema: sessionmaker[Session]) -> None:
    """With storage PLAIN (revision 0004) PostgreSQL refuses a row longer than a page (8160
    bytes) rather than moving it out of line: a full part beside a 40-character id must fit."""
    longest_id = "ckpt_" + "x" * (ID.length - len("ckpt_"))
    blob = os.urandom(2 * checkpoint_parts.PART_BYTES)
    with schema.begin() as s:
        tenant = make_tenant(s)
        s.add(Checkpoint(id=longest_id, tenant_id=tenant.id, epoch=0, kind="imported",
                         size_bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest()))
        s.flush()
        checkpoint_parts.write(s, [(longest_id, blob)])
    with schema() as s:
        assert checkpoints.get_blob(s, longest_id) == blob
