from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from store import datasets, jobs, usage
from store.errors import BadCursor, Conflict
from store.models import Dataset

from .conftest import make_job, make_tenant


def add(s: Session, tenant_id: str, name: str = "d", size: int = 10) -> Dataset:
    fields: dict[str, Any] = dict(
        name=name, format="csv", n_rows=3, x_shape=[3, 2], y_shape=[3],
        kind="classification", classes=[0, 1], sha256="a" * 64, size_bytes=size,
        data=[b"z" * size],
    )
    return datasets.create(s, tenant_id, **fields)


def test_create_and_get_round_trip_the_metadata(s: Session) -> None:
    tenant = make_tenant(s)
    row = add(s, tenant.id, "iris.csv")
    got = datasets.get(s, tenant.id, row.id)
    assert got is not None and got.id.startswith("ds_")
    assert (got.name, got.n_rows, got.x_shape, got.y_shape, got.classes) == (
        "iris.csv", 3, [3, 2], [3], [0, 1])
    assert got.builtin is False


def test_another_tenants_dataset_reads_as_missing(s: Session) -> None:
    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    row = add(s, acme.id)
    assert datasets.get(s, globex.id, row.id) is None
    assert datasets.read_into(s, globex.id, row.id, bytearray) is None
    assert datasets.delete(s, globex.id, row.id) is False
    assert datasets.get(s, acme.id, row.id) is not None
    assert datasets.get(s, acme.id, "ds_nope") is None


def test_list_pages_newest_first_and_cover_every_row_once(s: Session) -> None:
    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    made = [add(s, acme.id, f"d{i}").id for i in range(7)]
    add(s, globex.id, "theirs")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        rows, cursor = datasets.list_page(s, acme.id, limit=3, cursor=cursor)
        seen += [r.id for r in rows]
        pages += 1
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(made))


def test_a_forged_cursor_is_a_bad_cursor(s: Session) -> None:
    tenant = make_tenant(s)
    with pytest.raises(BadCursor):
        datasets.list_page(s, tenant.id, cursor="not-a-cursor")
    with pytest.raises(ValueError):
        datasets.list_page(s, tenant.id, cursor="WzEsMl0")  # base64 of [1,2]


def test_delete_waits_for_active_jobs_and_keeps_the_jobs_that_used_it(s: Session) -> None:
    tenant = make_tenant(s)
    row = add(s, tenant.id)
    job = make_job(s, tenant.id, dataset_id=row.id)
    with pytest.raises(Conflict, match="used by 1 queued or running job"):
        datasets.delete(s, tenant.id, row.id)
    jobs.cancel(s, tenant.id, job.id)
    assert datasets.delete(s, tenant.id, row.id) is True
    assert datasets.delete(s, tenant.id, row.id) is False
    s.expire_all()
    assert datasets.get(s, tenant.id, row.id) is None
    kept = jobs.get(s, tenant.id, job.id)
    assert kept is not None and kept.dataset_id is None


def test_stored_bytes_counts_datasets_and_checkpoints_per_tenant(s: Session) -> None:
    from store import checkpoints

    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    add(s, acme.id, size=100)
    add(s, acme.id, size=23)
    add(s, globex.id, size=1000)
    job = make_job(s, acme.id)
    checkpoints.save_checkpoint(s, job.id, 1, "periodic", b"x" * 7)
    assert usage.stored_bytes(s, acme.id) == 130
    assert usage.stored_bytes(s, globex.id) == 1000
    assert usage.stored_bytes(s, "ten_nobody") == 0


def test_newest_named_and_with_sha256_stay_within_the_tenant(s: Session) -> None:
    acme, globex = make_tenant(s, "acme"), make_tenant(s, "globex")
    first, second = add(s, acme.id, "train"), add(s, acme.id, "train")
    add(s, globex.id, "train")
    add(s, acme.id, "test")
    assert datasets.newest_named(s, acme.id, "train") is second  # later created_at / id
    assert datasets.newest_named(s, acme.id, "nope") is None
    assert [r.id for r in datasets.with_sha256(s, acme.id, "a" * 64)] == [
        first.id, second.id, datasets.newest_named(s, acme.id, "test").id]  # type: ignore[union-attr]
    assert datasets.with_sha256(s, acme.id, "b" * 64) == []
