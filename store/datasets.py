"""Uploaded datasets, tenant-scoped: another tenant's id reads as missing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from store import registry
from store.byte_parts import DATASET_PARTS
from store.errors import Conflict
from store.models import Dataset, Job
from store.pages import Page, newest_first
from store.statuses import ACTIVE_STATUSES


def create(
    s: Session,
    tenant_id: str,
    *,
    name: str,
    format: str,
    n_rows: int,
    x_shape: list[int],
    y_shape: list[int],
    kind: str,
    classes: list[Any] | None,
    sha256: str,
    size_bytes: int,
    data: Iterable[bytes | memoryview] | None,
    builtin: bool = False,
) -> Dataset:
    """Store a parsed dataset and return the flushed row. `data` is its stored bytes
    (core.datasets.stored: the arrays' .npy frames) as any number of buffers, streamed into
    dataset_parts; `size_bytes` must be their length. None stores no bytes (a builtin)."""
    row = Dataset(
        tenant_id=tenant_id, name=name, format=format, n_rows=n_rows, x_shape=list(x_shape),
        y_shape=list(y_shape), kind=kind, classes=classes, sha256=sha256,
        size_bytes=size_bytes, builtin=builtin,
    )
    s.add(row)
    s.flush()
    if data is not None:
        written = DATASET_PARTS.write(s, row.id, data)
        if written != size_bytes:
            raise ValueError(f"dataset {row.id}: {written} bytes written, size_bytes says"
                             f" {size_bytes}")
    return row


def get(s: Session, tenant_id: str, dataset_id: str) -> Dataset | None:
    """The tenant's dataset or None; the tenant is in the query (see jobs.get)."""
    return s.scalars(
        sa.select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
    ).one_or_none()


def newest_named(s: Session, tenant_id: str, name: str) -> Dataset | None:
    """The tenant's newest dataset called `name` (names need not be unique: an upload under
    a name already taken makes the name mean the new data), or None."""
    query = (sa.select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.name == name)
             .order_by(Dataset.created_at.desc(), Dataset.id.desc()).limit(1))
    return s.scalars(query).first()


def with_sha256(s: Session, tenant_id: str, sha256: str) -> list[Dataset]:
    """The tenant's datasets uploaded as bytes with this sha256, oldest first."""
    query = (sa.select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.sha256 == sha256)
             .order_by(Dataset.created_at, Dataset.id))
    return list(s.scalars(query))


def read_into(s: Session, tenant_id: str, dataset_id: str,
              allocate: Callable[[int], memoryview]) -> memoryview | None:
    """The tenant's dataset's stored bytes, copied part by part into `allocate(size_bytes)`
    (a writable buffer the caller owns: the memory of the arrays it will use), which is
    returned; None if there is no such dataset or it stores no bytes (a builtin).

    No bytes object of the whole is ever made: a job start on a 188 MB upload read it as one
    value, then inflated an npz from it (issue 18). On PostgreSQL the parts come by binary
    COPY (store.byte_parts).
    """
    row = get(s, tenant_id, dataset_id)
    if row is None or row.builtin:
        return None
    buffer = allocate(int(row.size_bytes))
    return buffer if DATASET_PARTS.read_into(s, dataset_id, buffer) else None


def list_page(s: Session, tenant_id: str, limit: int = 50, cursor: str | None = None) -> Page:
    """The tenant's datasets, newest first, without their bytes."""
    query = sa.select(Dataset).where(Dataset.tenant_id == tenant_id)
    return newest_first(s, query, Dataset.created_at, Dataset.id, limit, cursor)


def delete(s: Session, tenant_id: str, dataset_id: str) -> bool:
    """Delete the tenant's dataset; False if there is none. Jobs that used it keep their
    results (dataset_id -> NULL). Conflict while a queued or running job uses it (it would
    fail when a worker goes to load the data) or while a model version records it."""
    busy = s.scalar(
        sa.select(sa.func.count()).select_from(Job).where(
            Job.dataset_id == dataset_id, Job.tenant_id == tenant_id,
            Job.status.in_(ACTIVE_STATUSES))
    )
    if busy:
        raise Conflict(f"dataset {dataset_id} is used by {busy} queued or running job(s);"
                       " cancel them or wait")
    held = registry.versions_holding(s, dataset_id=dataset_id)
    if held:  # a registered version records which data made it
        raise Conflict(f"dataset {dataset_id} trained the model version(s) {', '.join(held)}")
    result = s.execute(
        sa.delete(Dataset)
        .where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
        .execution_options(synchronize_session="fetch")
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
