"""Checkpoint writes in one batch and blob reads in PostgreSQL's binary format (issue 3)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from store import checkpoints
from store.models import Checkpoint

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
    assert sent == ["INSERT"]  # one batched statement, no SELECT of the job
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
        assert bytes(latest.blob) == blob
        assert checkpoints.get_blob(s, "ckpt_missing") is None
        assert checkpoints.latest_for_job(s, "job_missing") is None


def test_a_blob_added_but_not_flushed_is_read_back(s: Session) -> None:
    tenant = make_tenant(s)
    job = make_job(s, tenant.id)
    row = Checkpoint(id="ckpt_unflushed", job_id=job.id, tenant_id=tenant.id, epoch=2,
                     kind="best", metrics={}, size_bytes=3, sha256="0" * 64,
                     blob=b"\x00\x01\x02", model_spec=None)
    s.add(row)
    assert checkpoints.get_blob(s, row.id) == b"\x00\x01\x02"


def test_latest_without_blob_leaves_it_deferred(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        job = make_job(s, make_tenant(s).id)
        checkpoints.save_checkpoint(s, job.id, 1, "periodic", b"one")
    with factory() as s:
        latest = checkpoints.latest_for_job(s, job.id, with_blob=False)
        assert latest is not None and "blob" in sa.inspect(latest).unloaded
        assert checkpoints.get_blob(s, latest.id) == b"one"
