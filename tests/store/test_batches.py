"""store/batches.py on SQLite and PostgreSQL: claims, chunks written once, cancel, stale."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from store import batches
from store import checkpoints as store_checkpoints
from store.columns import utcnow
from store.models import BatchChunk
from tests.store.conftest import make_tenant


def new_batch(factory: sessionmaker[Session], rows: int = 10, chunk_rows: int = 4
              ) -> tuple[str, str]:
    with factory.begin() as s:
        tenant = make_tenant(s)
        checkpoint = store_checkpoints.import_checkpoint(s, tenant.id, blob=b"weights")
        row = batches.create(s, tenant.id, checkpoint_id=checkpoint.id,
                             dataset_id="builtin:digits", result_format="csv",
                             rows_total=rows, chunk_rows=chunk_rows)
        return tenant.id, row.id


def test_one_claim_wins_and_a_stale_holder_is_taken_over(
        factory: sessionmaker[Session]) -> None:
    _, batch_id = new_batch(factory)
    with factory.begin() as s:
        assert batches.claim(s, batch_id, "w1", 60) is not None
        assert batches.claim(s, batch_id, "w2", 60) is None
    later = utcnow() + timedelta(seconds=61)
    with factory.begin() as s:
        taken = batches.claim(s, batch_id, "w2", 60, now=later)
        assert taken is not None and (taken.lease_owner, taken.attempts) == ("w2", 2)
    with factory.begin() as s:  # w1 lost its lease: it may not beat, write or finish
        assert batches.heartbeat(s, batch_id, "w1") is None
        assert not batches.finish(s, batch_id, "w1", "succeeded")


def test_a_chunk_is_written_once_with_its_progress_and_errors(
        factory: sessionmaker[Session]) -> None:
    tenant, batch_id = new_batch(factory)
    with factory.begin() as s:
        batch = batches.claim(s, batch_id, "w1", 60)
        assert batch is not None
    with factory.begin() as s:
        assert batches.write_chunk(s, batch, "w1", 0, b"a" * 8, 4, [batches.RowError(
            2, "features contain NaN or infinity")]) is False  # written; no cancel pending
    with factory.begin() as s:  # the same chunk again: rows_done no longer matches
        assert batches.write_chunk(s, batch, "w1", 0, b"b" * 8, 4, []) is None
    with factory.begin() as s:  # skipping a chunk is refused as well
        assert batches.write_chunk(s, batch, "w1", 2, b"c" * 8, 2, []) is None
    with factory.begin() as s:
        assert batches.write_chunk(s, batch, "w2", 1, b"d" * 8, 4, []) is None  # not holder
        assert batches.request_cancel(s, tenant, batch_id) is not None
        assert batches.write_chunk(s, batch, "w1", 1, b"e" * 8, 4, []) is True  # cancel read
    with factory() as s:
        row = batches.get(s, tenant, batch_id)
        assert row is not None
        assert (row.rows_done, row.error_count) == (8, 1)
        assert row.errors == [{"row": 2, "message": "features contain NaN or infinity"}]
        assert list(batches.chunks(s, batch_id)) == [(4, b"a" * 8), (4, b"e" * 8)]
        assert batches.get(s, "ten_other", batch_id) is None


def test_the_primary_key_refuses_a_second_copy_of_a_chunk(
        factory: sessionmaker[Session]) -> None:
    _, batch_id = new_batch(factory)
    with factory.begin() as s:
        s.add(BatchChunk(batch_id=batch_id, chunk_index=0, rows=4, data=b"x"))
    with pytest.raises(sa.exc.IntegrityError), factory.begin() as s:
        s.add(BatchChunk(batch_id=batch_id, chunk_index=0, rows=4, data=b"y"))


def test_the_error_list_is_capped_but_every_error_is_counted(
        factory: sessionmaker[Session]) -> None:
    tenant, batch_id = new_batch(factory, rows=1000, chunk_rows=500)
    with factory.begin() as s:
        batch = batches.claim(s, batch_id, "w1", 60)
        assert batch is not None
    for index in (0, 1):
        errors = [batches.RowError(index * 500 + i, "bad") for i in range(80)]
        with factory.begin() as s:
            assert batches.write_chunk(s, batch, "w1", index, b"", 500, errors) is False
    with factory() as s:
        row = batches.get(s, tenant, batch_id)
        assert row is not None and row.error_count == 160
        assert [e["row"] for e in row.errors] == [*range(80), *range(500, 520)]
        assert len(row.errors) == batches.MAX_LISTED_ERRORS


def test_cancel_ends_a_queued_batch_and_flags_a_running_one(
        factory: sessionmaker[Session]) -> None:
    tenant, queued = new_batch(factory)
    _, running = new_batch(factory)
    with factory.begin() as s:
        assert batches.claim(s, running, "w1", 60) is not None
    with factory.begin() as s:
        row = batches.request_cancel(s, tenant, queued)
        assert row is not None and row.status == "cancelled"
        assert batches.request_cancel(s, "ten_other", running) is None
        row = batches.request_cancel(s, tenant, running)
        assert row is not None and (row.status, row.cancel_requested) == ("running", True)
        assert batches.heartbeat(s, running, "w1") is True


def test_stale_lists_lost_messages_and_silent_holders_and_attempts_run_out(
        factory: sessionmaker[Session]) -> None:
    _, queued = new_batch(factory)
    _, running = new_batch(factory)
    with factory.begin() as s:
        assert batches.claim(s, running, "w1", 60) is not None
    later = utcnow() + timedelta(seconds=120)
    with factory() as s:
        assert batches.stale(s, lease_timeout_s=60, queued_grace_s=60) == []
        assert batches.stale(s, lease_timeout_s=60, queued_grace_s=60,
                             now=later) == sorted([queued, running])
    with factory.begin() as s:
        assert batches.release(s, running, "w1", "OSError: disk") == 1
        assert batches.claim(s, running, "w2", 60, max_attempts=1) is None
        assert batches.fail_exhausted(s, running, 1, 60)
    with factory() as s:
        row = s.get(batches.BatchPrediction, running)
        assert row is not None and row.status == "failed"
        assert row.failure_reason == "gave up after 1 attempts; last error: OSError: disk"
